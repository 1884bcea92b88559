/**
 * What a start costs before any server code (issue 14): `videotestsrc ! fakesink` parsed and
 * brought to PLAYING in this process, either with synchronous calls on one thread (the C floor's
 * way) or as the server does it, with each call on Deno's FFI pool (PAUSED, PLAYING, then the wait
 * for PLAYING: three hops to a pool thread and back). The pool's way is also timed with an idle
 * pause before every 50 cycles, as a server meets requests between quiet moments: a thread woken
 * after idling can be slow to run on a virtual machine.
 *
 *   deno run --allow-all bench/hops.ts [--cycles 400] [--pause-ms 300]
 */
import { gstSymbols } from "../ffi/gstreamer.ts";
import { openLibrary } from "../ffi/loader.ts";
import { ms, parseNumberOptions, percentile, sleep } from "./measure.ts";

const options = parseNumberOptions(Deno.args, { cycles: 400, "pause-ms": 300 });
const { gst_init_check, gst_parse_launch, gst_object_unref } = openLibrary("gstreamer-1.0", {
  gst_init_check: gstSymbols.gst_init_check,
  gst_parse_launch: { parameters: ["buffer", "pointer"], result: "pointer" },
  gst_object_unref: gstSymbols.gst_object_unref,
}).symbols;
const sync = openLibrary("gstreamer-1.0", {
  gst_element_set_state: { parameters: ["pointer", "i32"], result: "i32" },
  gst_element_get_state: { parameters: ["pointer", "pointer", "pointer", "u64"], result: "i32" },
}).symbols;
const pool = openLibrary("gstreamer-1.0", {
  gst_element_set_state: { parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  gst_element_get_state: {
    parameters: ["pointer", "pointer", "pointer", "u64"],
    result: "i32",
    nonblocking: true,
  },
}).symbols;

const PAUSED = 3, PLAYING = 4, NULL = 1;
const TIMEOUT_NS = 5_000_000_000n;
if (gst_init_check(null, null, new Uint8Array(8)) === 0) throw new Error("gst_init failed");
const launch = new TextEncoder().encode("videotestsrc ! fakesink\0");

async function cycles(way: "sync" | "pool", pauseMs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = -5; i < options.cycles; i++) {
    if (pauseMs > 0 && i % 50 === 0) await sleep(pauseMs);
    const startedAt = performance.now();
    const pipeline = gst_parse_launch(launch, null);
    if (pipeline === null) throw new Error("parse failed");
    if (way === "sync") {
      sync.gst_element_set_state(pipeline, PLAYING);
      sync.gst_element_get_state(pipeline, null, null, TIMEOUT_NS);
    } else {
      await pool.gst_element_set_state(pipeline, PAUSED);
      await pool.gst_element_set_state(pipeline, PLAYING);
      await pool.gst_element_get_state(pipeline, null, null, TIMEOUT_NS);
    }
    if (i >= 0) times.push(performance.now() - startedAt);
    await pool.gst_element_set_state(pipeline, NULL);
    gst_object_unref(pipeline);
  }
  return times;
}

const line = (label: string, times: number[]) =>
  `  ${label.padEnd(44)} ${
    [50, 80, 90, 99].map((p) => `p${p} ${ms(percentile(times, p))}`).join(", ")
  }`;
const oneThread = await cycles("sync", 0);
const onPool = await cycles("pool", 0);
const afterIdle = await cycles("pool", options["pause-ms"]);
console.log(
  [
    `create -> PLAYING of 'videotestsrc ! fakesink' in this process, ${options.cycles} cycles each:`,
    line("synchronous calls on one thread", oneThread),
    line("three pool calls (PAUSED, PLAYING, wait)", onPool),
    line(`the same, ${options["pause-ms"]} ms idle every 50 cycles`, afterIdle),
  ].join("\n"),
);
