/**
 * RTSP readers over TCP that stop reading, against the other readers of their path: a 1280x720
 * H.264 path of about 20 Mbit/s, `--stalled` readers that play it over TCP and never read, then
 * fresh readers over UDP one at a time, 5 s apart (ffmpeg, `--read` seconds each), whose frames
 * are counted, with the server's connections to the stalled readers (`ss`) and its RSS. Run once
 * with GSTREAMER_RTSP_WRITE_TIMEOUT_MS=0 (the system's: what the server did before the setting) and
 * once at the default (10 s), one after the other in this run.
 *
 *   deno run --allow-all bench/rtsp_stall.ts [--stalled 20] [--rounds 4] [--read 3]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import { RtspConn } from "../test/rtsp_client.ts";
import {
  expectOk,
  mib,
  parseNumberOptions,
  rssKib,
  serverProcessId,
  sleep,
  stopServer,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, { stalled: 20, rounds: 4, read: 3 });
const CAMERA = "videotestsrc is-live=true pattern=snow ! " +
  "video/x-raw,width=1280,height=720,framerate=30/1 ! " +
  "x264enc tune=zerolatency bitrate=20000 speed-preset=ultrafast key-int-max=30 ! " +
  "rtspserversink path=cam";

/** The server's established connections on `port`, and the bytes queued to send on them. */
async function serverConnections(port: string): Promise<{ count: number; queuedBytes: number }> {
  const out = await new Deno.Command("ss", {
    args: ["-tnH", "state", "established", `( sport = :${port} )`],
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean);
  const queued = lines.map((line) => Number(line.trim().split(/\s+/)[1]));
  return { count: lines.length, queuedBytes: queued.reduce((a, b) => a + b, 0) };
}

/**
 * The video frames ffmpeg reads over UDP from `url` in `seconds`, or why it read none: a reader
 * that gets nothing waits for ever, so it is killed after `seconds` + 10 s.
 */
async function udpFrames(url: string, seconds: number): Promise<string> {
  const killAfterMs = (seconds + 10) * 1000;
  const startedAt = performance.now();
  const output = await new Deno.Command("ffmpeg", {
    args: [
      ...["-hide_banner", "-rtsp_transport", "udp", "-i", url],
      ...["-t", String(seconds), "-c", "copy", "-f", "null", "-"],
    ],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(killAfterMs),
  }).output();
  const text = new TextDecoder().decode(output.stderr);
  const frames = [...text.matchAll(/frame=\s*(\d+)/g)].pop()?.[1] ?? "0";
  // ffmpeg takes the kill's SIGTERM and exits by itself.
  if (performance.now() - startedAt >= killAfterMs) {
    return `${frames} frames, then nothing until killed after ${killAfterMs / 1000} s`;
  }
  const took = ((performance.now() - startedAt) / 1000).toFixed(1);
  if (output.code === 0) return `${frames} frames (ffmpeg done in ${took} s)`;
  const why = text.trim().split("\n").filter((line) => !line.startsWith("frame=")).at(-1);
  return `${frames} frames, ffmpeg exit ${output.code}: ${why}`;
}

/** Plays `path` over TCP and never reads; a 503 (a media going down) is asked again. */
async function stalledReader(base: string, path: string): Promise<RtspConn> {
  for (let attempt = 1;; attempt++) {
    const reader = await RtspConn.open(base);
    try {
      await reader.play(path);
      return reader;
    } catch (error) {
      reader.close();
      if (attempt >= 20) throw error;
      await sleep(100);
    }
  }
}

async function run(writeTimeoutMs: string): Promise<void> {
  const server = await startServer({ GSTREAMER_RTSP_WRITE_TIMEOUT_MS: writeTimeoutMs });
  const client = await TestClient.connect(server.url);
  try {
    expectOk(
      await client.request("createPipeline", {
        id: "cam",
        desiredState: "playing",
        pipeline: CAMERA,
      }),
      "create cam",
    );
    const url = `${server.rtspUrl}/cam`;
    const port = new URL(server.rtspUrl).port;
    const pid = serverProcessId(server);
    const line = async (label: string) => {
      const frames = await udpFrames(url, options.read);
      const { count, queuedBytes } = await serverConnections(port);
      console.log(
        `  ${label.padEnd(22)} UDP reader: ${frames}; ` +
          `server holds ${count} TCP connections, ${(queuedBytes / 1e6).toFixed(1)} MB unsent; ` +
          `RSS ${mib(rssKib(pid))}`,
      );
    };
    console.log(`GSTREAMER_RTSP_WRITE_TIMEOUT_MS=${writeTimeoutMs}:`);
    await line("no stalled reader");
    const stalled: RtspConn[] = [];
    for (let i = 0; i < options.stalled; i++) {
      stalled.push(await stalledReader(server.rtspUrl, "cam"));
    }
    const stalledAt = performance.now();
    for (let round = 1; round <= options.rounds; round++) {
      await sleep(5000);
      // Each round also lasts as long as its reader (up to --read + 10 s): the label is the
      // reader's spawn, measured since the stalled readers came in.
      const since = ((performance.now() - stalledAt) / 1000).toFixed(0);
      await line(`${options.stalled} stalled, +${since} s`);
    }
    for (const reader of stalled) reader.close();
    await sleep(1000);
    await line("stalled readers closed");
  } finally {
    await client.close();
    await stopServer(server);
  }
}

console.log(
  `${options.stalled} RTSP readers over TCP that stop reading a 20 Mbit/s path; ` +
    "a fresh UDP reader's frames (30 a second when nothing holds it up):",
);
await run("0");
await run("10000");
