/** src/domain/phases.ts: what a phase's time covers. */
import assert from "node:assert/strict";
import { type Phase, timed } from "../src/domain/phases.ts";

/** Spins for `milliseconds`: synchronous work, as a build's elements or the store's SQL are. */
function spin(milliseconds: number): void {
  const until = performance.now() + milliseconds;
  while (performance.now() < until) { /* spin */ }
}

Deno.test("a phase's time includes the work its function does before its promise", async () => {
  const observed: [Phase, number][] = [];
  const value = await timed((phase, ms) => observed.push([phase, ms]), "build", () => {
    spin(20);
    return Promise.resolve("built");
  });
  assert.equal(value, "built");
  assert.equal(observed.length, 1);
  assert.equal(observed[0][0], "build");
  // A lower bound that the spin guarantees, whatever the machine's load.
  assert.ok(observed[0][1] >= 20, `observed ${observed[0][1]} ms`);
});

Deno.test("a phase that fails is not observed, and its failure reaches the caller", async () => {
  const observed: [Phase, number][] = [];
  const failing = timed(
    (phase, ms) => observed.push([phase, ms]),
    "store_write",
    () => Promise.reject(new Error("disk full")),
  );
  await assert.rejects(failing, /disk full/);
  assert.deepEqual(observed, []);
});
