/**
 * What a non-live pipeline served over RTSP costs when nobody reads it: `videotestsrc ! x264enc !
 * rtspserversink` (no `is-live`) in our server at the defaults, playing with no reader and then
 * paused, beside one gst-launch-1.0 running the same chain into a udpsink that syncs to the clock
 * (what a player would do with it). Before 2026-12-07 the relay's valve, closed with no reader,
 * paced nothing, and the encoder ran flat out in both states (docs/protocol.md, "Serving a pipeline
 * over RTSP"). Prints the server's CPU beside the baseline's, as a ratio.
 *
 *   deno run --allow-all bench/served_pace.ts [--window 10] [--settle 2]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import {
  expectOk,
  killAllLaunched,
  launchUntilPlaying,
  measure,
  parseNumberOptions,
  serverProcessId,
  sleep,
  stopServer,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, { window: 10, settle: 2 });
const CHAIN = "videotestsrc ! video/x-raw,width=320,height=240,framerate=30/1 ! " +
  "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30";

async function cpuOver(pid: number): Promise<number> {
  await sleep(options.settle * 1000);
  return (await measure(pid, options.window)).cpuPercent;
}

const baseline = await launchUntilPlaying(
  `${CHAIN} ! rtph264pay ! udpsink host=127.0.0.1 port=9 sync=true`.split(" "),
);
let baselinePercent: number;
try {
  baselinePercent = await cpuOver(baseline.child.pid);
} finally {
  await killAllLaunched();
}

const dataDir = await Deno.makeTempDir({ prefix: "served-pace-bench-" });
const server = await startServer({ GSTREAMER_DATA_DIR: dataDir });
try {
  const client = await TestClient.connect(server.url);
  const pid = serverProcessId(server);
  const id = "pace";
  expectOk(
    await client.request("createPipeline", {
      id,
      pipeline: `${CHAIN} ! rtspserversink path=${id}`,
    }),
    "create",
  );
  const idle = await cpuOver(pid);
  expectOk(await client.request("startPipeline", { id }), "start");
  const playing = await cpuOver(pid);
  expectOk(await client.request("pausePipeline", { id }), "pause");
  const paused = await cpuOver(pid);
  await client.close();

  const row = (label: string, percent: number, against: string) =>
    console.log(`  ${label.padEnd(36)} ${percent.toFixed(1).padStart(6)} % of a core${against}`);
  console.log(`CPU over ${options.window} s windows (${CHAIN}, nobody reading):`);
  row("gst-launch-1.0, udpsink sync=true", baselinePercent, "");
  row("our server, the pipeline stopped", idle, "");
  row(
    "our server, playing, no reader",
    playing,
    ` (${(playing / baselinePercent).toFixed(2)}x gst-launch-1.0)`,
  );
  row("our server, paused", paused, ` (less its stopped figure: ${(paused - idle).toFixed(1)} %)`);
} finally {
  await stopServer(server);
  await Deno.remove(dataDir, { recursive: true });
}
