/**
 * RTSP readers that close their connection and come back at once (a player restarted, a
 * connection lost): once a first reader got the path's stream, `--readers` readers of it, one
 * after the other, each DESCRIBE, SETUP over TCP, PLAY, its first RTP packet, then a close without
 * TEARDOWN. For each: refused or not, the time from its DESCRIBE to PLAY's response (a media made
 * anew for it takes most of that) and to its first RTP packet (which also waits for the next
 * frame: the path runs at 15 frames a second). Servers with GSTREAMER_RTSP_LINGER_MS=0 (a media
 * goes down when its last reader leaves, as gst-rtsp-server does: what the server did before the
 * setting) and at the default take turns over `--rounds` rounds.
 *
 * Then what holding a media costs: a 1280x720 path of about 20 Mbit/s, the server's CPU over
 * `--window` seconds with no reader, with one reader over TCP, right after it left (its media held
 * at the default), and once the linger is over, at both settings.
 *
 *   deno run --allow-all bench/rtsp_rejoin.ts [--readers 40] [--rounds 3] [--window 3]
 */
import { cameraLaunch, startServer, TestClient, waitUntil } from "../test/helpers.ts";
import { RtspConn } from "../test/rtsp_client.ts";
import {
  expectOk,
  measure,
  ms,
  parseNumberOptions,
  percentile,
  serverProcessId,
  sleep,
  stopServer,
  within,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, { readers: 40, rounds: 3, window: 3 });
const settings = { "GSTREAMER_RTSP_LINGER_MS=0": "0", "the default (5000)": "5000" };
/** A reader served whose first RTP packet has not come by then is counted as refused. */
const RTP_DEADLINE_MS = 5000;

interface Tally {
  toPlay: number[];
  toRtp: number[];
  refused: Map<string, number>;
}
const tallies = new Map<string, Tally>(
  Object.keys(settings).map((name) => [name, { toPlay: [], toRtp: [], refused: new Map() }]),
);

/** One reader: DESCRIBE to PLAY's response and to its first RTP packet, in ms, or why refused. */
async function join(
  base: string,
  path: string,
): Promise<{ toPlay: number; toRtp: number } | string> {
  const conn = await RtspConn.open(base);
  const startedAt = performance.now();
  try {
    await conn.play(path);
    const toPlay = performance.now() - startedAt;
    const rtp = await within(conn.firstRtp().then(() => true), RTP_DEADLINE_MS);
    if (rtp === null) return `no RTP within ${RTP_DEADLINE_MS} ms of PLAY`;
    return { toPlay, toRtp: performance.now() - startedAt };
  } catch (error) {
    return (error as Error).message.split("\n").slice(0, 2).join(" ").replace(/rtsp:\S+/, path);
  } finally {
    conn.close(); // no TEARDOWN
  }
}

/** Serves `launch` at `path` and waits until a first reader gets it (its encoder has started). */
async function servePath(
  client: TestClient,
  base: string,
  path: string,
  launch: string,
): Promise<void> {
  expectOk(
    await client.request("createPipeline", { id: path, pipeline: launch, desiredState: "playing" }),
    `createPipeline ${path}`,
  );
  await waitUntil(
    async () => typeof await join(base, path) !== "string",
    15000,
    `a first reader of /${path}`,
  );
}

for (let round = 1; round <= options.rounds; round++) {
  for (const [name, linger] of Object.entries(settings)) {
    const tally = tallies.get(name)!;
    const server = await startServer({ GSTREAMER_RTSP_LINGER_MS: linger });
    const client = await TestClient.connect(server.url);
    try {
      await servePath(client, server.rtspUrl, "cam", cameraLaunch("cam"));
      for (let i = 0; i < options.readers; i++) {
        const joined = await join(server.rtspUrl, "cam");
        if (typeof joined === "string") {
          tally.refused.set(joined, (tally.refused.get(joined) ?? 0) + 1);
        } else {
          tally.toPlay.push(joined.toPlay);
          tally.toRtp.push(joined.toRtp);
        }
      }
    } finally {
      await client.close();
      await stopServer(server);
    }
  }
  console.log(`round ${round} of ${options.rounds} done`);
}

const p50 = (values: number[]) => values.length === 0 ? NaN : percentile(values, 50);
const p90 = (values: number[]) => values.length === 0 ? NaN : percentile(values, 90);
console.log(`${options.readers} readers that come back at once, ${options.rounds} rounds:`);
for (const [name, tally] of tallies) {
  const refused = [...tally.refused.values()].reduce((a, b) => a + b, 0);
  console.log(
    `  ${name.padEnd(26)} refused ${refused} of ${options.readers * options.rounds}` +
      (refused > 0 ? ` (${[...tally.refused].map(([why, n]) => `${n}x ${why}`).join("; ")})` : "") +
      `; the ${tally.toPlay.length} served, from DESCRIBE: PLAY's response p50 ${
        ms(p50(tally.toPlay))
      } (p90 ${ms(p90(tally.toPlay))}), first RTP p50 ${ms(p50(tally.toRtp))} (p90 ${
        ms(p90(tally.toRtp))
      })`,
  );
}
const [before, after] = [...tallies.values()];
const ratio = (key: "toPlay" | "toRtp") => (p50(after[key]) / p50(before[key])).toFixed(2);
console.log(
  `  default against 0, p50 of the served: PLAY's response ${ratio("toPlay")}x, ` +
    `first RTP ${ratio("toRtp")}x`,
);

const BIG_CAMERA = "videotestsrc is-live=true pattern=snow ! " +
  "video/x-raw,width=1280,height=720,framerate=30/1 ! " +
  "x264enc tune=zerolatency bitrate=20000 speed-preset=ultrafast key-int-max=30 ! " +
  "rtspserversink path=big";
console.log(
  `The server's CPU (% of one core) over ${options.window} s, a 1280x720 20 Mbit/s path:`,
);
for (const [name, linger] of Object.entries(settings)) {
  const server = await startServer({ GSTREAMER_RTSP_LINGER_MS: linger });
  const client = await TestClient.connect(server.url);
  const pid = serverProcessId(server);
  try {
    await servePath(client, server.rtspUrl, "big", BIG_CAMERA);
    // That reader's media is let go (or held, then let go) before the first window.
    await sleep(Number(linger) + 2000);
    const cpu = async () => (await measure(pid, options.window)).cpuPercent.toFixed(1);
    const idle = await cpu();
    const reader = await RtspConn.open(server.rtspUrl);
    await reader.play("big");
    void reader.drain();
    const reading = await cpu();
    reader.close();
    const justLeft = await cpu();
    await sleep(Math.max(0, Number(linger) + 1000 - options.window * 1000));
    const after = await cpu();
    console.log(
      `  ${name.padEnd(26)} no reader ${idle}, one reader ${reading}, ` +
        `0 to ${options.window} s after it left ${justLeft}, after the linger ${after}`,
    );
  } finally {
    await client.close();
    await stopServer(server);
  }
}
