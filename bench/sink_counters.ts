/**
 * What reading a sink's counters costs the main thread, as a stats round does for every sink
 * (issue 14): `gst_base_sink_get_stats` (the server's way since 2026-12-05) beside the baseline
 * of reading the `stats` property through a GValue (the way before, still used for sinks that are
 * not GstBaseSinks), over --sinks fakesinks, --rounds times by turns.
 *
 *   deno run --allow-all bench/sink_counters.ts [--sinks 600] [--rounds 20]
 */
import { initGstreamer } from "../src/gst/init.ts";
import { baseSinkCounters, discardFloating, structureCounters } from "../src/gst/element.ts";
import { cstr, lib } from "../src/gst/native.ts";
import { parseNumberOptions, percentile } from "./measure.ts";

const options = parseNumberOptions(Deno.args, { sinks: 600, rounds: 20 });
initGstreamer();
const { gst } = lib();
const sinks = Array.from(
  { length: options.sinks },
  () => gst.gst_element_factory_make(cstr("fakesink"), null)!,
);
const fields = { rendered: cstr("rendered"), dropped: cstr("dropped") };
const statsProperty = cstr("stats");

/** Microseconds a sink, for one pass over all of them. */
function pass(read: (sink: Deno.PointerObject) => unknown): number {
  const startedAt = performance.now();
  for (const sink of sinks) read(sink);
  return (performance.now() - startedAt) * 1000 / sinks.length;
}

const viaProperty: number[] = [];
const viaBaseSink: number[] = [];
for (let round = 0; round < options.rounds; round++) {
  viaProperty.push(pass((sink) => structureCounters(sink, statsProperty, fields)));
  viaBaseSink.push(pass((sink) => baseSinkCounters(sink, fields)));
}
discardFloating(sinks);
const p50 = (times: number[]) => percentile(times, 50);
console.log(
  [
    `=== a sink's counters, ${options.sinks} fakesinks, ${options.rounds} passes each (p50 of passes) ===`,
    `  gst_base_sink_get_stats (ours)      ${p50(viaBaseSink).toFixed(2)} µs a sink`,
    `  the stats property through a GValue ${p50(viaProperty).toFixed(2)} µs a sink`,
    `  ours vs the property: ${(p50(viaBaseSink) / p50(viaProperty)).toFixed(2)}x`,
  ].join("\n"),
);
