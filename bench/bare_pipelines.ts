/**
 * How much of the steady-state CPU gap in control_plane.ts is GStreamer's
 * own: N bare live pipelines built through our FFI layer in this process
 * (no server, no stats, no WebSocket) beside one gst-launch-1.0 process
 * running the same N chains, measured over the same window.
 *
 *   deno run --allow-all bench/bare_pipelines.ts [N=200] [window seconds=10]
 */
import { initGstreamer } from "../src/gst/init.ts";
import { linkElements, Pipeline, State, StateChange } from "../src/gst/pipeline.ts";
import { setProperty } from "../src/gst/property.ts";
import { clockTicks, cpuTicks } from "./measure.ts";

const count = Number(Deno.args[0] ?? 200);
const windowSeconds = Number(Deno.args[1] ?? 10);
const chain = [
  "videotestsrc",
  "is-live=true",
  "!",
  "video/x-raw,width=64,height=48",
  "!",
  "fakesink",
];

function cpuSeconds(pid: number): number {
  return cpuTicks(pid) / clockTicks;
}

initGstreamer();
const pipelines: Pipeline[] = [];
for (let i = 0; i < count; i++) {
  const pipeline = new Pipeline(`bare${i}`);
  const source = pipeline.addElement("videotestsrc", "source")!;
  setProperty({ object: source, label: "source" }, "is-live", true);
  const filter = pipeline.addElement("capsfilter", "filter")!;
  setProperty({ object: filter, label: "filter" }, "caps", "video/x-raw,width=64,height=48");
  const sink = pipeline.addElement("fakesink", "sink")!;
  if (!linkElements(source, filter) || !linkElements(filter, sink)) throw new Error("link failed");
  // A pipeline that never plays would use next to no CPU and flatter the figure.
  if ((await pipeline.setState(State.PLAYING)) === StateChange.FAILURE) {
    throw new Error(`bare${i}: setting PLAYING failed`);
  }
  pipelines.push(pipeline);
}
const launch = new Deno.Command("gst-launch-1.0", {
  args: Array.from({ length: count }, () => chain).flat(),
  stdout: "null",
  stderr: "null",
}).spawn();
try {
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const start = {
    self: cpuSeconds(Deno.pid),
    launch: cpuSeconds(launch.pid),
    at: performance.now(),
  };
  await new Promise((resolve) => setTimeout(resolve, windowSeconds * 1000));
  const wall = (performance.now() - start.at) / 1000;
  const ours = ((cpuSeconds(Deno.pid) - start.self) / wall) * 100;
  const baseline = ((cpuSeconds(launch.pid) - start.launch) / wall) * 100;
  console.log(
    `${count} bare pipelines in this process: ${ours.toFixed(1)}% of one core; ` +
      `gst-launch-1.0 with ${count} chains: ${baseline.toFixed(1)}%; ratio ${
        (ours / baseline).toFixed(2)
      }`,
  );
} finally {
  launch.kill();
  await launch.status;
  await Promise.all(pipelines.map((pipeline) => pipeline.dispose()));
}
