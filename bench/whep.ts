/**
 * WHEP in Chromium against the same stream read over RTSP, in one run:
 *
 * 1. Time to the first decoded frame over 20 joins (from the page's call to the player to the
 *    video's first frame, `requestVideoFrameCallback`), for a managed pipeline with an encoder
 *    (720p, key frame every 10 s: the viewer gets one because its join asks for one) and for a
 *    push with a 2 s key-frame interval. Baseline: an RTSP reader of each (`joinOnce`:
 *    gst-launch-1.0 that decodes only from a key frame), from spawn to its first decoded frame,
 *    so it includes starting gst-launch-1.0. An RTSP reader's PLAY asks the managed pipeline's
 *    encoder for a key frame too (since 2026-12-07; before, it waited for the encoder's next
 *    one, 8.5 s at p50); a push has no encoder to ask, so its readers wait for its next one.
 * 2. The server's CPU and RSS with 1, 10 and 20 WHEP viewers of the 720p stream, next to 1, 10
 *    and 20 RTSP readers (gst-launch-1.0 rtspsrc ! fakesink) of it.
 *
 * WebRTC runs only to loopback here (the network rule), so the script runs itself again inside
 * a network namespace with only loopback (root needed):
 *
 *     deno run -A bench/whep.ts [--joins N] [--window SECONDS]
 */
import type { Page } from "playwright-core";
import { launchChromium } from "../test/browser.ts";
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  expectOk,
  inOwnNetwork,
  joinOnce,
  measure,
  mib,
  ms,
  parseNumberOptions,
  serverProcessId,
  stopServer,
  summarize,
} from "./measure.ts";

await inOwnNetwork(import.meta.url);

const options = parseNumberOptions(Deno.args, { joins: 20, window: 10 });

/** The camera's key-frame interval: key-int-max=300 at 30 fps. */
const CAMERA_KEY_FRAME_MS = 10_000;
const CAMERA = "videotestsrc is-live=true pattern=ball ! " +
  "video/x-raw,width=1280,height=720,framerate=30/1 ! " +
  "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=300 bitrate=4000 ! " +
  "rtspserversink path=cam";

/** One join: ms from the call to playWhep to the first frame shown, then the session ends. */
async function join(page: Page, path: string): Promise<number> {
  return await page.evaluate(`(async () => {
    const { playWhep } = await import("/console/whep-player.js");
    const video = document.createElement("video");
    Object.assign(video, { muted: true, autoplay: true, playsInline: true });
    document.body.append(video);
    const started = performance.now();
    const shown = new Promise((resolve) => video.requestVideoFrameCallback(() => resolve(performance.now())));
    const player = await playWhep(video, ${JSON.stringify(`/whep/${path}`)});
    const firstFrame = await Promise.race([shown, new Promise((_, reject) => setTimeout(() => reject(new Error("no frame in 20 s")), 20000))]);
    await player.stop();
    video.remove();
    return firstFrame - started;
  })()`) as number;
}

/** ms from spawning an RTSP reader of the path to its first decoded frame (from a key frame). */
async function rtspFirstFrame(server: ServerProcess, path: string): Promise<number> {
  // A source that cannot be asked for a key frame may make the reader wait a whole interval.
  const result = await joinOnce(`${server.rtspUrl}/${path}`, undefined, CAMERA_KEY_FRAME_MS + 5000);
  if (typeof result === "string") throw new Error(`The RTSP reader got no frame: ${result}`);
  return result.firstFrame;
}

function line(label: string, values: number[]): string {
  const s = summarize(values);
  return `${label.padEnd(52)} p50 ${ms(s.p50).padStart(9)}  p99 ${ms(s.p99).padStart(9)}`;
}

/** Ends a child process that may have ended by itself already. */
function stopChild(child: Deno.ChildProcess, signal: Deno.Signal = "SIGTERM"): void {
  try {
    child.kill(signal);
  } catch {
    // it has exited already
  }
}

/** The viewers the stats count for the camera once they reach `wanted`, or after 30 s. */
async function viewerCount(
  client: TestClient,
  field: "webrtcViewers" | "rtspClients",
  wanted: number,
): Promise<number> {
  let count = 0;
  const deadline = performance.now() + 30_000;
  while (count < wanted && performance.now() < deadline) {
    const stats = await client.nextStats((p) => p.id === "cam");
    const cam = (stats.payload.pipelines as { id: string; [key: string]: unknown }[])
      .find((p) => p.id === "cam");
    count = Number(cam?.[field] ?? 0);
  }
  return count;
}

async function main() {
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  const browser = await launchChromium({ webrtc: true });
  const push = new Deno.Command("ffmpeg", {
    args: [
      ...["-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30"],
      ...[
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "60",
        "-bf",
        "0",
      ],
      ...["-pix_fmt", "yuv420p", "-f", "h264", `${server.httpUrl}/push/pushed`],
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const readers: Deno.ChildProcess[] = [];
  try {
    expectOk(await client.request("createPipeline", { id: "cam", pipeline: CAMERA }), "create");
    expectOk(await client.request("startPipeline", { id: "cam" }), "start");
    const page = await browser.newPage();
    await page.goto(`${server.httpUrl}/healthz`);
    // The first join of each path (and one RTSP read) warms it up; not counted.
    for (const path of ["cam", "pushed"]) {
      for (let attempt = 0;; attempt++) {
        try {
          await join(page, path);
          break;
        } catch (error) {
          if (attempt > 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    }
    await rtspFirstFrame(server, "cam");

    console.log(`Time to the first decoded frame, ${options.joins} joins each:`);
    const whepCam: number[] = [];
    const whepPush: number[] = [];
    const rtspCam: number[] = [];
    const rtspPush: number[] = [];
    for (let i = 0; i < options.joins; i++) {
      whepCam.push(await join(page, "cam"));
      whepPush.push(await join(page, "pushed"));
      rtspCam.push(await rtspFirstFrame(server, "cam"));
      rtspPush.push(await rtspFirstFrame(server, "pushed"));
    }
    console.log(line("WHEP, managed pipeline (720p, asks for a key frame)", whepCam));
    console.log(line("WHEP, push (720p, key frame every 2 s)", whepPush));
    console.log(line("RTSP, managed pipeline (720p, asks for a key frame)", rtspCam));
    console.log(line("RTSP, push (720p, waits for a key frame)", rtspPush));
    const p50Ratio = (whep: number[], rtsp: number[]) =>
      (summarize(whep).p50 / summarize(rtsp).p50).toFixed(2);
    console.log(
      `  ratio WHEP/RTSP at p50: managed pipeline ${p50Ratio(whepCam, rtspCam)}, push ${
        p50Ratio(whepPush, rtspPush)
      } (the RTSP figures include starting gst-launch-1.0)`,
    );
    await page.close();

    const pid = serverProcessId(server);
    console.log(`\nServer CPU (% of one core) and RSS over ${options.window} s, 720p stream:`);
    for (const viewers of [1, 10, 20]) {
      const ended = server.logs.filter((l) => l.includes("WHEP session")).length;
      const pages: Page[] = [];
      for (let i = 0; i < viewers; i++) {
        const viewer = await browser.newPage();
        await viewer.goto(`${server.httpUrl}/healthz`);
        await viewer.evaluate(`(async () => {
          const { playWhep } = await import("/console/whep-player.js");
          const video = document.createElement("video");
          Object.assign(video, { muted: true, autoplay: true });
          document.body.append(video);
          globalThis.player = await playWhep(video, "/whep/cam");
        })()`);
        pages.push(viewer);
      }
      const whepViewers = await viewerCount(client, "webrtcViewers", viewers);
      const whep = await measure(pid, options.window);
      for (const viewer of pages) {
        await viewer.evaluate("player.stop()");
        await viewer.close();
      }
      await client.nextStats((p) => p.id === "cam" && p.webrtcViewers === 0);
      for (let i = 0; i < viewers; i++) {
        readers.push(
          new Deno.Command("gst-launch-1.0", {
            args: [
              "-q",
              "rtspsrc",
              `location=${server.rtspUrl}/cam`,
              "protocols=tcp",
              "!",
              "fakesink",
            ],
            stdout: "null",
            stderr: "null",
          }).spawn(),
        );
      }
      const rtspViewers = await viewerCount(client, "rtspClients", viewers);
      const rtsp = await measure(pid, options.window);
      for (const reader of readers.splice(0)) {
        stopChild(reader);
        await reader.status;
      }
      console.log(
        `${String(viewers).padStart(2)} viewers: WHEP ${whep.cpuPercent.toFixed(1)}% ${
          mib(whep.rssKib)
        } (${whepViewers} connected)   RTSP ${rtsp.cpuPercent.toFixed(1)}% ${
          mib(rtsp.rssKib)
        } (${rtspViewers} connected)   CPU ratio ${
          (whep.cpuPercent / Math.max(rtsp.cpuPercent, 0.1)).toFixed(2)
        }`,
      );
      for (const line of server.logs.filter((l) => l.includes("WHEP session")).slice(ended)) {
        console.log(`   ${line}`);
      }
    }
  } finally {
    for (const reader of readers) stopChild(reader, "SIGKILL");
    stopChild(push, "SIGKILL");
    await push.status;
    await browser.close();
    await client.close();
    await stopServer(server);
  }
}

await main();
