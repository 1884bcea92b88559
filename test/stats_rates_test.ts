/** Rates in stats (src/domain/stats.ts): taken over windows long enough to mean something. */
import assert from "node:assert/strict";
import { ByteRate, SinkRates } from "../src/domain/stats.ts";

const sink = (rendered: number) => [{ element: "sink", rendered, dropped: 0 }];

Deno.test("frames per second come from windows of at least 500 ms, however close the rounds", () => {
  const rates = new SinkRates();
  assert.equal(rates.next(sink(0), 0)[0].fps, null, "no rate before a window ends");
  // Rounds 40 ms apart (two clients at different phases): one or two frames each, no rate yet.
  assert.equal(rates.next(sink(1), 40)[0].fps, null);
  assert.equal(rates.next(sink(3), 80)[0].fps, null);
  assert.equal(rates.next(sink(30), 1000)[0].fps, 30);
  // A round 40 ms later keeps the rate of the last whole window rather than 0 or 75.
  assert.equal(rates.next(sink(30), 1040)[0].fps, 30);
  assert.equal(rates.next(sink(33), 1080)[0].fps, 30);
  assert.equal(rates.next(sink(45), 1500)[0].fps, 30);
  // The count goes back (the pipeline ran again): no rate until a new window ends.
  assert.equal(rates.next(sink(2), 1600)[0].fps, null);
  assert.equal(rates.next(sink(17), 2100)[0].fps, 30);
});

Deno.test("a byte rate in bits per second starts where it is told to", () => {
  const rate = new ByteRate(0, 0);
  assert.equal(rate.next(1000, 100), undefined, "the first window has not ended");
  assert.equal(rate.next(125_000, 1000), 1_000_000);
  assert.equal(rate.next(125_100, 1010), 1_000_000);
  assert.equal(new ByteRate().next(5000, 0), undefined, "no start given: the first call starts");
});
