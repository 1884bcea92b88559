/** Spans across recorded segments (pure): which segments, where the cut starts and stops. */
import assert from "node:assert/strict";
import {
  checkDescriptors,
  MAX_SPAN_SEGMENTS,
  parseSpanTime,
  parseStreamsHistory,
  SpanError,
  spanOf,
  type SpanSegment,
  spanStreams,
  withStreams,
} from "../src/domain/recording_span.ts";

const T0 = Date.parse("2026-12-03T07:00:00Z");
/** Segments of 10 s from T0, with a 60 s gap (the path was down) before the fourth. */
const segments: SpanSegment[] = [0, 10, 20, 90, 100].map((offset, at) => ({
  file: `seg${at}.mp4`,
  format: "mp4",
  start: T0 + offset * 1000,
  end: T0 + (offset + 10) * 1000,
}));

Deno.test("spanOf: the segments a span overlaps, and where it starts and stops in them", () => {
  const whole = spanOf(segments, null, null);
  assert.equal(whole.segments.length, 5);
  assert.deepEqual([whole.startMs, whole.stopMs], [0, null]);
  // From 5 s into the second to 3 s into the fourth: the gap is not in the played timeline.
  const cut = spanOf(segments, T0 + 15_000, T0 + 93_000);
  assert.deepEqual(cut.segments.map((s) => s.file), ["seg1.mp4", "seg2.mp4", "seg3.mp4"]);
  assert.equal(cut.startMs, 5_000);
  assert.equal(cut.stopMs, 20_000 + 3_000);
  // Whole segments exactly: no cut at either end; a boundary touches no neighbour.
  const exact = spanOf(segments, T0 + 10_000, T0 + 30_000);
  assert.deepEqual(exact.segments.map((s) => s.file), ["seg1.mp4", "seg2.mp4"]);
  assert.deepEqual([exact.startMs, exact.stopMs], [0, null]);
  // Inside the gap: nothing.
  assert.equal(spanOf(segments, T0 + 40_000, T0 + 50_000).segments.length, 0);
});

Deno.test("spanOf: refuses 'to' not after 'from', and more segments than it opens at once", () => {
  assert.throws(() => spanOf(segments, T0 + 5_000, T0 + 5_000), /'to' must be later than 'from'/);
  const many: SpanSegment[] = Array.from({ length: MAX_SPAN_SEGMENTS + 1 }, (_, at) => ({
    file: `s${at}.ts`,
    format: "ts",
    start: T0 + at * 1000,
    end: T0 + (at + 1) * 1000,
  }));
  assert.throws(
    () => spanOf(many, null, null),
    (error) =>
      error instanceof SpanError && error.status === 400 && /at most 256/.test(error.message),
  );
  assert.equal(
    spanOf(many, null, T0 + MAX_SPAN_SEGMENTS * 1000).segments.length,
    MAX_SPAN_SEGMENTS,
  );
});

Deno.test("parseSpanTime: ISO times and segment name stamps; anything else named", () => {
  assert.equal(parseSpanTime("from", "2026-12-03T07:30:00Z"), Date.parse("2026-12-03T07:30:00Z"));
  assert.equal(
    parseSpanTime("from", "2026-12-03T07-30-00.250Z"),
    Date.parse("2026-12-03T07:30:00.250Z"),
  );
  assert.equal(parseSpanTime("to", null), null);
  assert.equal(parseSpanTime("to", ""), null);
  for (const bad of ["yesterday", "1733211000", "2026-13-45T00:00:00Z"]) {
    assert.throws(() => parseSpanTime("to", bad), /'to' is .*: expected a UTC time/);
  }
  // Times Date.parse takes but rolls over into others.
  for (const bad of ["2026-02-30T00:00:00Z", "2026-04-31T00-00-00.000Z", "2026-12-07T24:00:00Z"]) {
    assert.throws(() => parseSpanTime("to", bad), /'to' is .*, no such time: expected a UTC time/);
  }
  assert.equal(parseSpanTime("to", "2028-02-29T23:59:59Z"), Date.parse("2028-02-29T23:59:59Z"));
});

Deno.test("checkDescriptors: a span is refused when its files would leave too few descriptors", () => {
  // 4 per segment and 256 kept: 100 segments need 656 free.
  checkDescriptors(100, { open: 1000 - 656, limit: 1000 });
  checkDescriptors(100, null); // cannot be told: not refused
  assert.throws(
    () => checkDescriptors(100, { open: 1000 - 655, limit: 1000 }),
    (error: unknown) =>
      error instanceof SpanError && error.status === 503 && error.code === "TOO_MANY_OPEN_FILES" &&
      /Playing 100 segments takes about 400 file descriptors, and this server has 655 of its 1000 left/
        .test(error.message) &&
      /ulimit -n/.test(error.message),
  );
});

Deno.test("streams history: each segment is read with the streams it was recorded with", () => {
  // Written before histories: one set for every segment.
  const old = parseStreamsHistory('{"video":"h264","audio":"aac"}');
  assert.deepEqual(old, [{ since: null, video: "h264", audio: "aac" }]);
  assert.deepEqual(spanStreams("cam", old, [T0]), { video: "h264", audio: "aac" });
  // The same streams again add nothing; others are kept from when their run began.
  assert.equal(withStreams(old, { video: "h264", audio: "aac" }, "2026-12-03T07:01:00.000Z"), old);
  const changed = withStreams(old, { video: "h265", audio: null }, "2026-12-03T07:01:00.000Z");
  assert.equal(changed.length, 2);
  assert.deepEqual(parseStreamsHistory(JSON.stringify(changed)), changed);
  assert.deepEqual(spanStreams("cam", changed, [T0, T0 + 50_000]), { video: "h264", audio: "aac" });
  assert.deepEqual(spanStreams("cam", changed, [T0 + 90_000]), { video: "h265", audio: null });
  // A span across the change cannot be read with one set of parsers: refused, naming both.
  assert.throws(
    () => spanStreams("cam", changed, [T0 + 50_000, T0 + 90_000]),
    (error: unknown) =>
      error instanceof SpanError && error.status === 409 &&
      error.message ===
        "The span of '/cam' holds segments recorded with different streams (h264 + aac, then " +
          "h265 from 2026-12-03T07:01:00.000Z); ask for a span recorded with one",
  );
});
