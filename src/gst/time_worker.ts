/**
 * The thread that asks pipelines for their position and duration (src/gst/time_queries.ts): a
 * query can wait on a streaming thread, so it never runs on the main thread, and one message per
 * stats round costs the main thread less than one pool call per pipeline. The main thread holds a
 * reference to every pipeline of a batch until its answer is back.
 */
/// <reference lib="deno.worker" />
import { gstTimeQuerySymbols } from "../../ffi/gstreamer.ts";
import { openLibrary } from "../../ffi/loader.ts";
import {
  FORMAT_TIME,
  NANOSECONDS_PER_MS,
  type TimeAnswer,
  type TimeBatch,
} from "./time_queries.ts";

const gst = openLibrary("gstreamer-1.0", gstTimeQuerySymbols).symbols;

const out = new BigInt64Array(1);

/** Milliseconds, or null where GStreamer does not know (or the answer is negative). */
function ask(query: typeof gst.gst_element_query_position, address: bigint): number | null {
  const ok = query(Deno.UnsafePointer.create(address), FORMAT_TIME, out);
  return ok !== 0 && out[0] >= 0n ? Number(out[0] / NANOSECONDS_PER_MS) : null;
}

self.onmessage = (event: MessageEvent<TimeBatch>) => {
  const { seq, addresses, durations } = event.data;
  self.postMessage(
    {
      seq,
      positions: addresses.map((address) => ask(gst.gst_element_query_position, address)),
      durations: addresses.map((address, i) =>
        durations[i] ? ask(gst.gst_element_query_duration, address) : null
      ),
    } satisfies TimeAnswer,
  );
};
