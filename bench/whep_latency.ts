/**
 * Glass-to-glass latency of WHEP (Chromium) against RTSP (gst-launch-1.0 rtspsrc), for the same
 * managed pipeline, in the same run, watched at the same time:
 *
 *     deno run -A bench/whep_latency.ts [--flips N] [--min-gap MS] [--max-gap MS] [--tcp 0|1]
 *
 * Method: a picture change the bench makes and both viewers detect (not clockoverlay, not RTP
 * timestamps). The server runs a managed pipeline whose picture is one solid colour,
 *
 *     videotestsrc is-live=true pattern=solid-color name=src ! 640x360 30 fps !
 *     x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rtspserversink path=lat
 *
 * and the bench flips the colour between black and white with `setElementProperty`
 * (`foreground-color` of `src`) over the WebSocket API, at irregular intervals (--min-gap to
 * --max-gap ms), recording T0 just before it sends the request. Two viewers watch at once:
 *
 * - WHEP: a Chromium page plays /whep/lat with the server's player (/console/whep-player.js)
 *   and reads the centre of every frame it shows (`requestVideoFrameCallback`, drawn to a
 *   canvas); the time of the first callback with the new colour is the detection time.
 * - RTSP baseline: `gst-launch-1.0 -q rtspsrc latency=0 ! rtph264depay ! avdec_h264 !
 *   videoconvert ! videoscale ! GRAY8 16x16 ! fdsink sync=false` on rtsp://127.0.0.1:PORT/lat;
 *   the bench reads its frames from stdout and takes the time a frame with the new colour
 *   arrives.
 *
 * Latency = detection time - T0: it includes the request reaching the server, the change
 * taking effect at the next frame (0 to 33 ms at 30 fps), encoding, the server, the transport,
 * decoding and, for the browser, its jitter buffer and the display callback. All times are
 * wall-clock milliseconds (performance.timeOrigin + performance.now()); the page's clock is
 * checked against the bench's by round trips, and corrected by the offset found.
 *
 * WebRTC runs only to loopback (the network rule), so the script runs itself again inside a
 * network namespace with only loopback (root needed).
 */
import type { Page } from "playwright-core";
import { launchChromium } from "../test/browser.ts";
import { startServer, TestClient, waitUntil } from "../test/helpers.ts";
import {
  expectOk,
  inOwnNetwork,
  ms,
  parseNumberOptions,
  sleep,
  stopServer,
  summarize,
  verdict,
} from "./measure.ts";

await inOwnNetwork(import.meta.url);

const options = parseNumberOptions(Deno.args, {
  flips: 20,
  "min-gap": 1000,
  "max-gap": 2500,
  tcp: 0,
  warmup: 2,
});

/** The WHEP target of issue 11, on loopback. */
const TARGET_MS = 200;
const BLACK = 0xff000000;
const WHITE = 0xffffffff;
/** The RTSP reader's frames: GRAY8, SIDE x SIDE, one byte a pixel (stride SIDE: a multiple of 4). */
const SIDE = 16;
/** How long a viewer has to show a flip before it counts as missed. */
const MISS_MS = 5000;

const PIPELINE = `videotestsrc is-live=true pattern=solid-color foreground-color=${BLACK} ` +
  "name=src ! video/x-raw,width=640,height=360,framerate=30/1 ! " +
  "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rtspserversink path=lat";

/** Wall-clock ms, the same clock the page reads (performance.timeOrigin + performance.now()). */
const wallClock = () => performance.timeOrigin + performance.now();

/** A viewer's change of colour: `at` is its detection time on the bench's clock. */
interface Change {
  bright: boolean;
  at: number;
  /** WHEP only, on the bench's clock: when the frame's last packet arrived (rVFC receiveTime). */
  received?: number;
  /** WHEP only: when Chromium expects the frame on screen (rVFC expectedDisplayTime). */
  expectedDisplay?: number;
}

// ---------------------------------------------------------------- RTSP baseline

interface RtspWatcher {
  changes: Change[];
  frames(): number;
  stderr(): string;
  stop(): Promise<void>;
}

function watchRtsp(url: string, tcp: boolean): RtspWatcher {
  const child = new Deno.Command("gst-launch-1.0", {
    args: [
      "-q",
      "rtspsrc",
      `location=${url}`,
      "latency=0",
      ...(tcp ? ["protocols=tcp"] : []),
      "!",
      "rtph264depay",
      "!",
      "avdec_h264",
      "!",
      "videoconvert",
      "!",
      "videoscale",
      "!",
      `video/x-raw,format=GRAY8,width=${SIDE},height=${SIDE}`,
      "!",
      "fdsink",
      "fd=1",
      "sync=false",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const changes: Change[] = [];
  let frames = 0;
  let errors = "";
  const frameBytes = SIDE * SIDE;
  const centre = (SIDE / 2) * SIDE + SIDE / 2;
  const readFrames = (async () => {
    let pending = new Uint8Array(0);
    let bright: boolean | null = null;
    for await (const chunk of child.stdout) {
      const at = wallClock();
      const data = new Uint8Array(pending.length + chunk.length);
      data.set(pending);
      data.set(chunk, pending.length);
      let offset = 0;
      for (; offset + frameBytes <= data.length; offset += frameBytes) {
        frames++;
        const now = data[offset + centre] >= 128;
        if (now !== bright) {
          if (bright !== null) changes.push({ bright: now, at });
          bright = now;
        }
      }
      pending = data.slice(offset);
    }
  })();
  const readErrors = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      errors = (errors + text).slice(-2000);
    }
  })();
  return {
    changes,
    frames: () => frames,
    stderr: () => errors,
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch {
        // it has exited already
      }
      await child.status;
      await Promise.all([readFrames, readErrors]).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------- WHEP in Chromium

/**
 * Plays `whepUrl` in `page` and reports every change of the centre's brightness of the frames
 * shown to `report` (times on the page's clock). Page code as text: it runs in the browser.
 */
async function watchWhep(
  page: Page,
  whepUrl: string,
  report: (change: { bright: boolean; at: number; received: number; expected: number }) => void,
): Promise<void> {
  await page.exposeFunction("reportChange", report);
  await page.evaluate(`(async () => {
    const { playWhep } = await import("/console/whep-player.js");
    const video = document.createElement("video");
    Object.assign(video, { muted: true, autoplay: true, playsInline: true, id: "video" });
    document.body.append(video);
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 4;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const clock = (t) => t === undefined ? NaN : performance.timeOrigin + t;
    let bright = null;
    globalThis.shown = 0;
    const onFrame = (now, frame) => {
      const at = clock(now);
      const w = video.videoWidth, h = video.videoHeight;
      if (w > 0 && h > 0) {
        // The centre 32x32 of the frame shown, scaled to 4x4; its red channel is enough for grey.
        context.drawImage(video, w / 2 - 16, h / 2 - 16, 32, 32, 0, 0, 4, 4);
        const pixels = context.getImageData(0, 0, 4, 4).data;
        let sum = 0;
        for (let i = 0; i < pixels.length; i += 4) sum += pixels[i];
        const now = sum / 16 >= 128;
        globalThis.shown++;
        if (now !== bright) {
          if (bright !== null) {
            reportChange({
              bright: now,
              at,
              received: clock(frame.receiveTime),
              expected: clock(frame.expectedDisplayTime),
            });
          }
          bright = now;
        }
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    globalThis.player = await playWhep(video, ${JSON.stringify(whepUrl)});
  })()`);
}

/** The page's clock minus the bench's, from the round trip with the shortest time. */
async function pageClockOffset(page: Page): Promise<{ offset: number; roundTrip: number }> {
  let best = { offset: 0, roundTrip: Infinity };
  for (let i = 0; i < 30; i++) {
    const sent = wallClock();
    const pageTime = await page.evaluate("performance.timeOrigin + performance.now()") as number;
    const back = wallClock();
    if (back - sent < best.roundTrip) {
      best = { offset: pageTime - (sent + back) / 2, roundTrip: back - sent };
    }
  }
  return best;
}

/** Chromium's receive-side counters of the video (inbound-rtp), summed so far. */
interface InboundVideo {
  framesDecoded: number;
  framesDropped: number;
  jitterBufferDelay: number;
  jitterBufferTargetDelay: number;
  jitterBufferMinimumDelay: number;
  jitterBufferEmittedCount: number;
  totalDecodeTime: number;
  totalProcessingDelay: number;
  totalAssemblyTime: number;
  framesAssembledFromMultiplePackets: number;
}

async function inboundVideo(page: Page): Promise<InboundVideo> {
  return await page.evaluate(`(async () => {
    const stats = await player.connection.getStats();
    for (const report of stats.values()) {
      if (report.type !== "inbound-rtp" || report.kind !== "video") continue;
      return {
        framesDecoded: report.framesDecoded ?? 0,
        framesDropped: report.framesDropped ?? 0,
        jitterBufferDelay: report.jitterBufferDelay ?? 0,
        jitterBufferTargetDelay: report.jitterBufferTargetDelay ?? 0,
        jitterBufferMinimumDelay: report.jitterBufferMinimumDelay ?? 0,
        jitterBufferEmittedCount: report.jitterBufferEmittedCount ?? 0,
        totalDecodeTime: report.totalDecodeTime ?? 0,
        totalProcessingDelay: report.totalProcessingDelay ?? 0,
        totalAssemblyTime: report.totalAssemblyTime ?? 0,
        framesAssembledFromMultiplePackets: report.framesAssembledFromMultiplePackets ?? 0,
      };
    }
    throw new Error("no inbound video");
  })()`) as InboundVideo;
}

// ---------------------------------------------------------------- flips

/** The first change to `bright` detected after `since`, waiting up to MISS_MS for it. */
async function changeAfter(
  changes: Change[],
  bright: boolean,
  since: number,
): Promise<Change | null> {
  try {
    return await waitUntil(
      () => changes.find((c) => c.bright === bright && c.at > since) ?? null,
      MISS_MS,
      "a change",
    );
  } catch {
    return null;
  }
}

function row(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))
    .join("  ");
}

async function main() {
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  const browser = await launchChromium({ webrtc: true });
  let rtsp: RtspWatcher | null = null;
  try {
    expectOk(await client.request("createPipeline", { id: "lat", pipeline: PIPELINE }), "create");
    expectOk(await client.request("startPipeline", { id: "lat" }), "start");
    const setColour = async (colour: number) =>
      expectOk(
        await client.request("setElementProperty", {
          id: "lat",
          element: "src",
          property: "foreground-color",
          value: colour,
        }),
        "setElementProperty",
      );

    const page = await browser.newPage();
    page.on("pageerror", (error) => console.error(`page: ${error.message}`));
    await page.goto(`${server.httpUrl}/healthz`);
    let clock = await pageClockOffset(page);
    const whepChanges: Change[] = [];
    await watchWhep(page, "/whep/lat", (change) => {
      whepChanges.push({
        bright: change.bright,
        at: change.at - clock.offset,
        received: change.received - clock.offset,
        expectedDisplay: change.expected - clock.offset,
      });
    });
    rtsp = watchRtsp(`${server.rtspUrl}/lat`, options.tcp > 0);
    const watcher = rtsp;
    await waitUntil(
      async () => (await page.evaluate("globalThis.shown") as number) > 60,
      30000,
      "60 frames in Chromium",
    );
    await waitUntil(() => watcher.frames() > 60, 30000, "60 frames from rtspsrc")
      .catch((error) => {
        throw new Error(`${error.message}\n${watcher.stderr()}`);
      });
    clock = await pageClockOffset(page);
    const clockBefore = clock;

    const whep: number[] = [];
    const rtspLatency: number[] = [];
    const arrival: number[] = [];
    const display: number[] = [];
    const requestTrip: number[] = [];
    const missed = { whep: 0, rtsp: 0 };
    let bright = false;
    let statsBefore: InboundVideo | null = null;
    const total = options.warmup + options.flips;
    for (let flip = 0; flip < total; flip++) {
      if (flip === options.warmup) statsBefore = await inboundVideo(page);
      const gap = options["min-gap"] +
        Math.random() * Math.max(0, options["max-gap"] - options["min-gap"]);
      await sleep(gap);
      bright = !bright;
      const t0 = wallClock();
      await setColour(bright ? WHITE : BLACK);
      const replied = wallClock();
      const [seenWhep, seenRtsp] = await Promise.all([
        changeAfter(whepChanges, bright, t0),
        changeAfter(watcher.changes, bright, t0),
      ]);
      if (flip < options.warmup) continue;
      requestTrip.push(replied - t0);
      if (seenWhep) {
        whep.push(seenWhep.at - t0);
        if (Number.isFinite(seenWhep.received)) arrival.push(seenWhep.received! - t0);
        if (Number.isFinite(seenWhep.expectedDisplay)) display.push(seenWhep.expectedDisplay! - t0);
      } else missed.whep++;
      if (seenRtsp) rtspLatency.push(seenRtsp.at - t0);
      else missed.rtsp++;
    }
    const statsAfter = await inboundVideo(page);
    const clockAfter = await pageClockOffset(page);

    const w = summarize(whep);
    const r = summarize(rtspLatency);
    const widths = [26, 14, 22, 16];
    console.log(
      `Glass-to-glass latency, ${options.flips} black/white flips of a managed pipeline ` +
        "(640x360, 30 fps, x264enc zerolatency), both viewers watching at once.",
    );
    console.log(
      "Method: the bench sets foreground-color of videotestsrc over the WebSocket API at T0; " +
        "latency = when a viewer first has the new colour - T0.",
    );
    console.log(
      "  WHEP: Chromium, /console/whep-player.js, requestVideoFrameCallback time of the first " +
        "frame with the new colour (centre read back through a canvas).",
    );
    console.log(
      `  RTSP: gst-launch-1.0 rtspsrc latency=0${
        options.tcp > 0 ? " protocols=tcp" : ""
      } ! rtph264depay ! avdec_h264 ! GRAY8 16x16 ! fdsink, time the decoded frame reaches ` +
        "the bench.\n",
    );
    // A nearest-rank p99 of up to 100 values is their max: of the flips each side detected.
    const detected = w.count === r.count ? `${w.count}` : `${w.count} / ${r.count}`;
    const p99Label = Math.max(w.count, r.count) <= 100 ? `p99 (max of ${detected})` : "p99";
    console.log(row(["figure", "WHEP", "RTSP baseline", "ratio WHEP/RTSP"], widths));
    for (
      const [label, a, b] of [
        ["p50", w.p50, r.p50],
        [p99Label, w.p99, r.p99],
        ["mean", w.mean, r.mean],
        ["min", w.min, r.min],
      ] as [string, number, number][]
    ) {
      console.log(row([label, ms(a), ms(b), (a / b).toFixed(2)], widths));
    }
    console.log(
      row(["detected", `${w.count}/${options.flips}`, `${r.count}/${options.flips}`, ""], widths),
    );
    console.log(
      `\nTarget: WHEP p50 < ${TARGET_MS} ms on loopback: ${verdict(w.p50 < TARGET_MS)} ` +
        `(p50 ${ms(w.p50)})`,
    );

    console.log("\nWhere the WHEP latency goes (from T0, p50):");
    if (arrival.length > 0) {
      console.log(
        `  last packet of the frame received (rVFC receiveTime)   ${ms(summarize(arrival).p50)}`,
      );
    }
    console.log(`  frame callback in the page (the figure above)            ${ms(w.p50)}`);
    if (display.length > 0) {
      console.log(
        `  expected on screen (rVFC expectedDisplayTime)            ${ms(summarize(display).p50)}`,
      );
    }
    if (statsBefore) {
      const d = (key: keyof InboundVideo) => statsAfter[key] - statsBefore![key];
      const perFrame = (key: keyof InboundVideo, count: keyof InboundVideo) =>
        d(count) > 0 ? ms((1000 * d(key)) / d(count)) : "n/a";
      console.log(
        `  Chromium inbound-rtp over the flips: jitter buffer ${
          perFrame("jitterBufferDelay", "jitterBufferEmittedCount")
        }/frame (target ${perFrame("jitterBufferTargetDelay", "jitterBufferEmittedCount")}, ` +
          `minimum ${perFrame("jitterBufferMinimumDelay", "jitterBufferEmittedCount")}), ` +
          `decode ${perFrame("totalDecodeTime", "framesDecoded")}/frame, ` +
          `receive to decoded ${perFrame("totalProcessingDelay", "framesDecoded")}/frame, ` +
          `${d("framesDecoded")} frames decoded, ${d("framesDropped")} dropped`,
      );
    }
    console.log(
      `  request T0 to setElementProperty reply: p50 ${ms(summarize(requestTrip).p50)}` +
        ` (the property is set in between)`,
    );
    console.log(
      `Clocks: page - bench ${clockBefore.offset.toFixed(2)} ms before, ` +
        `${clockAfter.offset.toFixed(2)} ms after (round trips ${
          clockBefore.roundTrip.toFixed(1)
        }/${clockAfter.roundTrip.toFixed(1)} ms); page times corrected by the offset found.`,
    );
    if (missed.whep + missed.rtsp > 0) {
      console.log(
        `Missed (no change within ${MISS_MS} ms): WHEP ${missed.whep}, RTSP ${missed.rtsp}`,
      );
    }
    console.log(`\nWHEP samples (ms): ${whep.map((v) => v.toFixed(0)).join(" ")}`);
    console.log(`RTSP samples (ms): ${rtspLatency.map((v) => v.toFixed(0)).join(" ")}`);
    await page.evaluate("player.stop()");
    await page.close();
  } finally {
    await rtsp?.stop();
    await browser.close();
    await client.close();
    await stopServer(server);
  }
}

await main();
