/**
 * BusWatch (src/gst/bus_watch.ts), in-process with real GStreamer: the main thread is called when a
 * Pipeline's bus holds a message (also for a pipeline made after the thread started waiting: the
 * thread is woken to take the new set, which is not a round), not while every bus is empty, and no longer for a bus whose pipeline is disposed. An absence is
 * checked over a window of ten rounds' minimum interval.
 */
import assert from "node:assert/strict";
import { initGstreamer } from "../src/gst/init.ts";
import { BusWatch } from "../src/gst/bus_watch.ts";
import { Pipeline, State } from "../src/gst/pipeline.ts";

initGstreamer();

const MIN_INTERVAL_MS = 5;
const ALL_MESSAGES = -1;
const window = () => new Promise((resolve) => setTimeout(resolve, 10 * MIN_INTERVAL_MS));

Deno.test("the bus watch wakes the main thread when a bus has messages, and only then", async () => {
  const pipelines: Pipeline[] = [];
  let rounds = 0;
  let drained = 0;
  let roundDone = () => {};
  const watch = new BusWatch(() => {
    rounds++;
    for (const pipeline of pipelines) drained += pipeline.popMessages(ALL_MESSAGES).length;
    roundDone();
  }, MIN_INTERVAL_MS);
  const nextRound = () =>
    new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error("no round in 10 s")), 10_000);
      roundDone = () => {
        clearTimeout(deadline);
        resolve();
      };
    });
  try {
    await window();
    assert.equal(rounds, 0, "no bus has a message yet");

    // Made while the thread waits on the set without it: the thread must be woken to watch it.
    const pipeline = new Pipeline("watched");
    pipelines.push(pipeline);
    await window();
    assert.equal(rounds, 0, "an empty pipeline posts nothing");
    const round = nextRound();
    await pipeline.setState(State.PAUSED); // posts its state changes on its bus
    await round;
    assert.ok(drained > 0, "the round found the state-change messages");

    await window();
    const afterDrain = rounds;
    await window();
    assert.equal(rounds, afterDrain, "no round while every bus is empty");

    // Disposed: its messages (the change to NULL) must not be waited for any more.
    pipelines.length = 0;
    await pipeline.dispose();
    const second = new Pipeline("second");
    pipelines.push(second);
    const secondRound = nextRound();
    await second.setState(State.PAUSED);
    await secondRound;
    pipelines.length = 0;
    await second.dispose();
    await window();
    const settled = rounds;
    await window();
    assert.equal(rounds, settled, "a disposed pipeline's bus wakes nothing");
  } finally {
    await watch.close();
  }
});
