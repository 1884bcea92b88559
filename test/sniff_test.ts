/**
 * sniff() (src/domain/sniff.ts) on bodies made by the tools senders use: ffmpeg writes every
 * format to a pipe, as a push sender would, and the hints are run as written to check they make
 * what they promise.
 */
import assert from "node:assert/strict";
import {
  conversionHint,
  needsMore,
  sniff,
  SNIFF_BYTES,
  type SniffedFormat,
} from "../src/domain/sniff.ts";

const testsrc = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "1"];
const x264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];
const x265 = ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"];
/** MP4 and MOV need a seekable output unless fragmented. */
const fragmented = ["-movflags", "frag_keyframe+empty_moov"];

async function ffmpeg(args: string[]): Promise<Uint8Array> {
  const made = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.equal(made.code, 0, `ffmpeg ${args.join(" ")}`);
  assert.ok(made.stdout.length > 0, `ffmpeg ${args.join(" ")} wrote nothing`);
  return made.stdout;
}

/** Each sample is made once, by the first test that asks for it. */
const made = new Map<string, Promise<Uint8Array>>();
const recipes: Record<string, string[]> = {
  h264: [...testsrc, ...x264, "-f", "h264", "-"],
  h265: [...testsrc, ...x265, "-f", "hevc", "-"],
  "h264-no-bframes": [...testsrc, ...x264, "-bf", "0", "-f", "h264", "-"],
  "h265-no-bframes": [...testsrc, ...x265, "-bf", "0", "-f", "hevc", "-"],
  "mpegts-h264": [...testsrc, ...x264, "-f", "mpegts", "-"],
  "mpegts-h265": [...testsrc, ...x265, "-f", "mpegts", "-"],
  "mp4-h264": [...testsrc, ...x264, "-f", "mp4", ...fragmented, "-"],
  "mov-h264": [...testsrc, ...x264, "-f", "mov", ...fragmented, "-"],
  "flv-h264": [...testsrc, ...x264, "-f", "flv", "-"],
  "matroska-h264": [...testsrc, ...x264, "-f", "matroska", "-"],
  "matroska-h265": [...testsrc, ...x265, "-f", "matroska", "-"],
  "webm-vp9": [...testsrc, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-f", "webm", "-"],
  "raw-yuv420p": [...testsrc, "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"],
  "raw-rgb24": [...testsrc, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
  /** A flat frame of 0x47 bytes: an MPEG-TS sync byte every 188 bytes. */
  "raw-flat-0x47": [
    ...["-f", "lavfi", "-i", "color=c=0x474747:size=320x240:rate=30", "-t", "0.1"],
    ...["-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
  ],
};
function sample(name: keyof typeof recipes): Promise<Uint8Array> {
  if (!made.has(name)) made.set(name, ffmpeg(recipes[name]));
  return made.get(name)!;
}

function assertSniffs(bytes: Uint8Array, format: SniffedFormat, label: string, what: string) {
  assert.deepEqual(sniff(bytes), { format, label }, what);
}

function random(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  // getRandomValues fills at most 64 KiB per call.
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(length, at + 65536)));
  }
  return bytes;
}

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

Deno.test("sniff() recognises each container ffmpeg writes to a pipe", async () => {
  const expected: [keyof typeof recipes, SniffedFormat, string][] = [
    ["mpegts-h264", "mpegts", "MPEG-TS"],
    ["mpegts-h265", "mpegts", "MPEG-TS"],
    ["mp4-h264", "mp4", "MP4/MOV"],
    ["mov-h264", "mp4", "MP4/MOV"],
    ["flv-h264", "flv", "FLV"],
    ["matroska-h264", "matroska", "Matroska/WebM"],
    ["matroska-h265", "matroska", "Matroska/WebM"],
    ["webm-vp9", "matroska", "Matroska/WebM"],
  ];
  for (const [name, format, label] of expected) {
    const bytes = await sample(name);
    assertSniffs(bytes, format, label, name);
    assertSniffs(bytes.subarray(0, SNIFF_BYTES), format, label, `${name}, first SNIFF_BYTES`);
    assert.equal(needsMore(bytes.subarray(0, 1024), false), false, `${name}: 1 KiB decides`);
  }
});

Deno.test("sniff() tells H.264 from H.265 Annex-B, from the whole body or its first 1 KiB", async () => {
  const h264 = await sample("h264");
  const h265 = await sample("h265");
  assertSniffs(h264, "h264", "H.264 Annex-B", "libx264");
  assertSniffs(h265, "h265", "H.265 Annex-B", "libx265");
  assertSniffs(h264.subarray(0, 1024), "h264", "H.264 Annex-B", "libx264, 1 KiB");
  assertSniffs(h265.subarray(0, 1024), "h265", "H.265 Annex-B", "libx265, 1 KiB");
  // Both begin with their parameter sets, which settle the answer.
  assert.equal(needsMore(h264.subarray(0, 1024), false), false);
  assert.equal(needsMore(h265.subarray(0, 1024), false), false);
});

Deno.test("sniff() finds Annex-B after the parameter sets, and with a 3-byte start code", async () => {
  const h264 = await sample("h264");
  const h265 = await sample("h265");
  /** The NAL types after each 3-byte start code (00 00 01) of `bytes`, with where they start. */
  const nals = (bytes: Uint8Array, typeOf: (header: number) => number) => {
    const found: { at: number; type: number }[] = [];
    for (let i = 0; i + 3 < bytes.length; i++) {
      if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) {
        found.push({ at: i, type: typeOf(bytes[i + 3]) });
      }
    }
    return found;
  };
  // From the first slice on: a 3-byte start code, and no parameter set at all (a second of x264
  // or x265 has them only before its first frame).
  const fromFirstSlice = (
    bytes: Uint8Array,
    typeOf: (header: number) => number,
    isSlice: (type: number) => boolean,
    parameterSets: number[],
  ) => {
    const first = nals(bytes, typeOf).find(({ type }) => isSlice(type));
    assert.ok(first && first.at > 0, "a slice after the stream's start");
    const body = bytes.subarray(first.at);
    const sets = nals(body, typeOf).filter(({ type }) => parameterSets.includes(type));
    assert.deepEqual(sets, [], "parameter sets after the first slice");
    return body;
  };
  const h264Body = fromFirstSlice(h264, (h) => h & 0x1f, (t) => t === 1 || t === 5, [7, 8]);
  const h265Body = fromFirstSlice(h265, (h) => (h >> 1) & 0x3f, (t) => t < 32, [32, 33, 34]);
  assertSniffs(h264Body, "h264", "H.264 Annex-B", "libx264 from its first slice");
  assertSniffs(h265Body, "h265", "H.265 Annex-B", "libx265 from its first slice");
});

Deno.test("sniff() finds MPEG-TS that starts mid-packet", async () => {
  for (const name of ["mpegts-h264", "mpegts-h265"] as const) {
    const ts = await sample(name);
    for (const skip of [1, 100, 187, 188, 189]) {
      assertSniffs(ts.subarray(skip), "mpegts", "MPEG-TS", `${name} without ${skip} bytes`);
    }
    // Two packets and the start of a third: enough to say MPEG-TS (not to settle it) when they
    // start at a packet; from mid-packet, random bytes would pass as often, so read on.
    assertSniffs(ts.subarray(0, 188 + 188 + 10), "mpegts", "MPEG-TS", `${name}, 2 packets`);
    const midPacket = ts.subarray(100, 100 + 88 + 188 + 10);
    assertSniffs(midPacket, "unknown", "unknown", `${name}, 2 packets from mid-packet`);
    assert.equal(needsMore(midPacket, false), true, "2 packets from mid-packet: read on");
    assert.equal(needsMore(ts.subarray(0, 2 * 188), false), true, "two packets: read on");
    assert.equal(needsMore(ts.subarray(0, 2 * 188), true), false, "two packets, ended");
    assert.equal(needsMore(ts.subarray(0, 3 * 188), false), false, "three packets settle it");
    assertSniffs(ts.subarray(0, 188), "unknown", "unknown", `${name}, one packet`);
  }
});

Deno.test("sniff() calls raw video unknown", async () => {
  const flat = await sample("raw-flat-0x47");
  assert.ok(flat.every((byte) => byte === 0x47));
  assertSniffs(flat, "unknown", "unknown", "a flat frame of 0x47");
  for (const name of ["raw-yuv420p", "raw-rgb24"] as const) {
    const raw = await sample(name);
    assertSniffs(raw, "unknown", "unknown", name);
    // Every line of the frame, in case one of them reads as something.
    const line = name === "raw-rgb24" ? 320 * 3 : 320;
    for (let at = 0; at < 240 * line; at += line) {
      assert.equal(sniff(raw.subarray(at)).format, "unknown", `${name} from byte ${at}`);
    }
  }
});

Deno.test("sniff() calls random bytes unknown", () => {
  for (const length of [0, 1, 7, 8, 188, 376, 377, 564, 1024, SNIFF_BYTES, 3 * SNIFF_BYTES]) {
    for (let round = 0; round < 20; round++) {
      const bytes = random(length);
      assert.equal(sniff(bytes).format, "unknown", `${length} random bytes`);
    }
  }
});

Deno.test("sniff() calls text unknown", () => {
  const texts = [
    '{"type":"createPipeline","payload":{}}',
    "<!DOCTYPE html><html><body>FLV ftyp</body></html>",
    "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "FLV", // the signature without its version byte
  ];
  for (const text of texts) {
    const bytes = new TextEncoder().encode(text.repeat(1000));
    assertSniffs(bytes, "unknown", "unknown", text);
  }
});

Deno.test("sniff() wants two start codes or a parameter set before it says Annex-B", () => {
  const h264Slice = [0, 0, 1, 0x41, 0x9a];
  // One accidental start code at the front of random bytes (escaped so it stays the only one).
  const once = concat(h264Slice, random(4096).map((byte) => byte === 0 ? 0x80 : byte));
  assertSniffs(once, "unknown", "unknown", "one slice start code");
  assert.equal(needsMore(once, false), true);
  assert.equal(needsMore(once, true), false);
  assertSniffs(concat(h264Slice, h264Slice), "h264", "H.264 Annex-B", "two slices");
  assert.equal(needsMore(concat(h264Slice, h264Slice), false), true, "no parameter set yet");
  assertSniffs(concat([0, 0, 0, 1, 0x67, 0x64, 0, 0x1f]), "h264", "H.264 Annex-B", "an SPS");
  // A start code in the middle of other bytes is not a stream start.
  assertSniffs(concat([1, 2, 3], h264Slice, h264Slice), "unknown", "unknown", "no start");
});

Deno.test("sniff() counts the NAL headers that fit one codec only", () => {
  const nal = (...header: number[]) => [0, 0, 0, 1, ...header, 0xaa, 0xbb];
  const cases: [string, number[][], SniffedFormat][] = [
    ["H.265 AUD", [[0x46, 0x01], [0x46, 0x01]], "h265"],
    ["H.265 VPS SPS PPS", [[0x40, 0x01], [0x42, 0x01], [0x44, 0x01]], "h265"],
    ["H.265 IDR_W_RADL", [[0x26, 0x01], [0x26, 0x01]], "h265"],
    ["H.264 SPS PPS IDR", [[0x67], [0x68], [0x65]], "h264"],
    ["H.264 SPS PPS IDR, low ref_idc", [[0x27], [0x28], [0x25]], "h264"],
    ["H.264 SPS PPS IDR, ref_idc 2", [[0x47], [0x48], [0x45]], "h264"],
    ["H.264 AUD and slices", [[0x09, 0xf0], [0x41], [0x21], [0x01]], "h264"],
    // An H.264 SEI (0x06 0x05) also reads as an H.265 TSA_N slice: it decides nothing.
    ["SEI only", [[0x06, 0x05], [0x06, 0x05]], "unknown"],
    ["H.264 IDR with ref_idc 0", [[0x05], [0x05]], "unknown"],
    ["H.265 with a layer id", [[0x40, 0x09], [0x42, 0x09]], "unknown"],
    ["H.265 with TemporalId+1 0", [[0x46, 0x00], [0x46, 0x00]], "unknown"],
    ["forbidden bit", [[0xe7], [0xe8]], "unknown"],
  ];
  for (const [what, headers, format] of cases) {
    assert.equal(sniff(concat(...headers.map((header) => nal(...header)))).format, format, what);
  }
  // Parameter sets outweigh slices: an H.264 SPS and PPS, then three slices that read as H.265.
  const mixed = concat(nal(0x67), nal(0x68), nal(0x02, 0x01), nal(0x02, 0x01), nal(0x02, 0x01));
  assert.equal(sniff(mixed).format, "h264");
});

Deno.test("sniff() takes MPEG-TS before Annex-B, and a magic number before either", async () => {
  // Cut at the first access unit delimiter inside the first video packet: the body then starts
  // with a start code and H.264 NAL headers, and is still MPEG-TS.
  const ts = await sample("mpegts-h264");
  const aud = ts.findIndex((_, i) =>
    ts[i] === 0 && ts[i + 1] === 0 && ts[i + 2] === 0 && ts[i + 3] === 1 && ts[i + 4] === 0x09
  );
  assert.ok(aud > 0);
  assert.equal(sniff(ts.subarray(aud)).format, "mpegts");
  assert.equal(sniff(ts.subarray(aud, aud + 180)).format, "h264", "less than a packet is not TS");
  // An Annex-B body whose bytes happen to begin an FLV header is FLV.
  const h264 = await sample("h264");
  assert.equal(sniff(concat([0x46, 0x4c, 0x56, 1], h264)).format, "flv");
});

Deno.test("needsMore() reads on while the answer is open and bytes may still come", async () => {
  assert.equal(needsMore(new Uint8Array(0), false), true);
  assert.equal(needsMore(new Uint8Array(0), true), false);
  assert.equal(needsMore(random(SNIFF_BYTES - 1), false), true);
  assert.equal(needsMore(random(SNIFF_BYTES), false), false);
  assert.equal(needsMore(random(100), true), false);
  const flv = await sample("flv-h264");
  assert.equal(needsMore(flv.subarray(0, 3), false), true, "FLV without its version byte");
  assert.equal(needsMore(flv.subarray(0, 4), false), false);
});

Deno.test("conversionHint() says nothing for the declared format or an unknown body", () => {
  for (const declared of ["h264", "h265", "mpegts"] as const) {
    assert.equal(conversionHint(declared, declared), null);
    assert.equal(conversionHint("unknown", declared), null);
  }
});

Deno.test("conversionHint() names the Content-Type for a body of another accepted format", () => {
  assert.equal(conversionHint("mpegts", "h264"), "send it with Content-Type video/mp2t");
  assert.equal(conversionHint("mpegts", "h265"), "send it with Content-Type video/mp2t");
  assert.equal(conversionHint("h265", "h264"), "send it with Content-Type video/h265");
  assert.equal(conversionHint("h264", "h265"), "send it with Content-Type video/h264");
  assert.match(conversionHint("h264", "mpegts")!, /^send it with Content-Type video\/h264, /);
  assert.match(conversionHint("h265", "mpegts")!, /^send it with Content-Type video\/h265, /);
});

/** Runs the ffmpeg command a hint gives (up to a parenthesis) on `input`, and sniffs its output. */
async function sniffHintOutput(hint: string, input: Uint8Array): Promise<SniffedFormat> {
  const command = hint.match(/ffmpeg (.*?)(?: \(|$)/)?.[1];
  assert.ok(command, `no ffmpeg command in: ${hint}`);
  const path = await Deno.makeTempFile({ prefix: "sniff_test_" });
  try {
    await Deno.writeFile(path, input);
    const args = command.split(" ").map((arg) => arg === "INPUT" ? path : arg);
    return sniff(await ffmpeg(args)).format;
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("conversionHint()'s ffmpeg commands make the declared format", async () => {
  const cases: [keyof typeof recipes, SniffedFormat, "h264" | "h265" | "mpegts"][] = [
    ["mp4-h264", "mp4", "h264"],
    ["flv-h264", "flv", "h264"],
    ["matroska-h264", "matroska", "h264"],
    ["matroska-h265", "matroska", "h265"],
    ["mp4-h264", "mp4", "mpegts"],
    ["matroska-h265", "matroska", "mpegts"],
    ["h264-no-bframes", "h264", "mpegts"],
    ["h265-no-bframes", "h265", "mpegts"],
  ];
  for (const [name, found, declared] of cases) {
    const bytes = await sample(name);
    assert.equal(sniff(bytes).format, found, name);
    const hint = conversionHint(found, declared);
    assert.ok(hint, `${name} as ${declared}`);
    assert.equal(await sniffHintOutput(hint, bytes), declared, `${name} as ${declared}: ${hint}`);
  }
});

Deno.test("sniff() recognises H.264 in AVC form (lengths, no start codes), as h264parse gives souphttpclientsink", async () => {
  const output = await new Deno.Command("gst-launch-1.0", {
    args: [
      ..."-q videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240 ! x264enc".split(" "),
      ..."! h264parse ! video/x-h264,stream-format=avc,alignment=au ! fdsink fd=1".split(" "),
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(output.stdout.length > 1000, "gst-launch-1.0 wrote no stream");
  assertSniffs(output.stdout, "avc", "H.264 in AVC form (4-byte lengths, no start codes)", "AVC");
  assertSniffs(
    output.stdout.subarray(0, 1024),
    "avc",
    "H.264 in AVC form (4-byte lengths, no start codes)",
    "its first 1 KiB",
  );
  const hint = conversionHint("avc", "h264");
  assert.ok(hint?.includes("stream-format=byte-stream"), `hint: ${hint}`);
  // The same bytes with one length broken are not AVC.
  const broken = output.stdout.slice();
  broken[3] ^= 0x40;
  assert.notEqual(sniff(broken).format, "avc");
});
