/**
 * ActiveTimer (src/domain/active_timer.ts): ticks only while its owner is busy, stops by itself
 * when it is not, starts again on wake(), and never after close(). That it stopped is an absence,
 * so it is checked over a window of ten intervals: a running timer would ask busy() about ten
 * times in it. The timer is unref'd (it never keeps the server alive); the window's own timeout
 * keeps the test's event loop open.
 */
import assert from "node:assert/strict";
import { ActiveTimer } from "../src/domain/active_timer.ts";

const INTERVAL_MS = 2;
const window = () => new Promise((resolve) => setTimeout(resolve, 10 * INTERVAL_MS));

/** A timer whose owner is busy while `state.busy`; counts its ticks and its busy() calls. */
function watched() {
  const state = { busy: true, ticks: 0, asked: 0 };
  const waiting: { until: () => boolean; resolve: () => void }[] = [];
  const check = () => {
    for (const w of waiting.filter((w) => w.until())) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve();
    }
  };
  const timer = new ActiveTimer(INTERVAL_MS, () => {
    state.ticks++;
    check();
  }, () => {
    state.asked++;
    queueMicrotask(check);
    return state.busy;
  });
  // Held open by a timeout of its own until the condition holds (the timer is unref'd).
  const until = (condition: () => boolean) =>
    new Promise<void>((resolve) => {
      const keepAlive = setTimeout(() => {}, 20_000);
      waiting.push({
        until: condition,
        resolve: () => {
          clearTimeout(keepAlive);
          resolve();
        },
      });
      check();
    });
  return { state, timer, until };
}

Deno.test("an ActiveTimer ticks while its owner is busy and stops by itself when it is not", async () => {
  const { state, timer, until } = watched();
  timer.wake();
  timer.wake(); // a second wake while running must not start a second interval
  await until(() => state.ticks >= 3);
  state.busy = false;
  const askedBefore = state.asked;
  await until(() => state.asked > askedBefore);
  const asked = state.asked;
  const ticks = state.ticks;
  await window();
  assert.equal(state.ticks, ticks, "no tick once idle");
  // The run that found it idle asks twice at most (before and after its tick); then it is stopped.
  assert.ok(state.asked - asked <= 1, `busy() asked ${state.asked - asked} more times`);
  timer.close();
});

Deno.test("an ActiveTimer starts again on wake, and never after close", async () => {
  const { state, timer, until } = watched();
  state.busy = false;
  timer.wake();
  await until(() => state.asked >= 1);
  assert.equal(state.ticks, 0, "no tick while idle");
  state.busy = true;
  timer.wake();
  await until(() => state.ticks >= 2);
  timer.close();
  timer.wake();
  const asked = state.asked;
  await window();
  assert.equal(state.asked, asked, "closed: woken, it does not run");
});
