/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * bench/hops.ts's Worker way, run only as a Worker: the server's three calls (PAUSED, PLAYING, the
 * wait for PLAYING) made synchronously on this one thread, as a helper thread of our own would
 * make them. The pipeline's address and the results cross in shared memory, and Atomics wakes
 * each side: the leanest hand-off JavaScript has, one futex wake each way.
 *
 * The message gives the shared buffer and where its words are (`WorkerSlots` in bench/hops.ts); a
 * start asked for with address 0 ends the Worker.
 */
import { openLibrary } from "../ffi/loader.ts";

const PAUSED = 3, PLAYING = 4, ASYNC = 2;
const TIMEOUT_NS = 5_000_000_000n;

const gst = openLibrary("gstreamer-1.0", {
  gst_element_set_state: { parameters: ["pointer", "i32"], result: "i32" },
  gst_element_get_state: { parameters: ["pointer", "pointer", "pointer", "u64"], result: "i32" },
}).symbols;

self.onmessage = (
  event: MessageEvent<{ shared: SharedArrayBuffer; slots: Record<string, number> }>,
) => {
  const { shared, slots } = event.data;
  const words = new Int32Array(shared);
  const address = new BigInt64Array(shared, slots.addressByte, 1);
  for (;;) {
    Atomics.wait(words, slots.asked, 0);
    Atomics.store(words, slots.asked, 0);
    const pipeline = Deno.UnsafePointer.create(address[0]);
    if (pipeline !== null) {
      gst.gst_element_set_state(pipeline, PAUSED);
      let result = gst.gst_element_set_state(pipeline, PLAYING);
      if (result === ASYNC) result = gst.gst_element_get_state(pipeline, null, null, TIMEOUT_NS);
      Atomics.store(words, slots.result, result);
    }
    Atomics.store(words, slots.done, 1);
    Atomics.notify(words, slots.done);
    // No pipeline: the bench is done.
    if (pipeline === null) return self.close();
  }
};
