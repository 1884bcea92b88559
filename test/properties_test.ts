/** Each property type set from JSON with its real GType, read back through the server. */
import assert from "node:assert/strict";
import { startServer, TestClient } from "./helpers.ts";

const server = await startServer();
const client = await TestClient.connect(server.url);

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, server.logs.slice(-20).join("\n"));
});

let counter = 0;

/** Creates a one-element pipeline with `properties`, reads `read` back, deletes it. */
async function roundTrip(
  type: string,
  properties: Record<string, unknown>,
  read: string,
): Promise<{ error: { code: string; message: string } } | { value: unknown }> {
  const id = `props-${++counter}`;
  const created = await client.request("createPipeline", {
    id,
    pipeline: { elements: [{ type, name: "el", properties }] },
  });
  if (!created.ok) return { error: created.error! };
  const reply = await client.request("getElementProperty", { id, element: "el", property: read });
  await client.request("deletePipeline", { id });
  assert.equal(reply.ok, true, JSON.stringify(reply.error));
  return { value: reply.payload.value };
}

async function expectValue(
  type: string,
  property: string,
  given: unknown,
  expected: unknown,
) {
  const result = await roundTrip(type, { [property]: given }, property);
  if ("error" in result) {
    assert.fail(`${type}.${property}=${JSON.stringify(given)}: ${JSON.stringify(result.error)}`);
  }
  assert.deepEqual(result.value, expected, `${type}.${property}=${JSON.stringify(given)}`);
}

async function expectInvalid(type: string, property: string, given: unknown, pattern?: RegExp) {
  const result = await roundTrip(type, { [property]: given }, property);
  assert.ok("error" in result, `${type}.${property}=${JSON.stringify(given)} was accepted`);
  assert.equal(result.error.code, "INVALID_PROPERTY_VALUE");
  assert.match(result.error.message, new RegExp(property));
  if (pattern) assert.match(result.error.message, pattern);
}

Deno.test("string properties", async () => {
  await expectValue("rtspsrc", "user-agent", "some agent, é", "some agent, é");
  await expectInvalid("rtspsrc", "user-agent", 5, /string/);
});

Deno.test("int properties are range checked", async () => {
  await expectValue("videotestsrc", "num-buffers", 100, 100);
  await expectValue("videotestsrc", "num-buffers", "250", 250);
  await expectValue("videotestsrc", "num-buffers", -1, -1);
  await expectInvalid("videotestsrc", "num-buffers", -2, /-1 to 2147483647/);
  await expectInvalid("videotestsrc", "num-buffers", 2147483648, /-1 to 2147483647/);
  await expectInvalid("videotestsrc", "num-buffers", 1.5, /integer/);
  await expectInvalid("videotestsrc", "num-buffers", "12abc");
  await expectInvalid("videotestsrc", "num-buffers", true);
});

Deno.test("a property name two element types share is each type's own", async () => {
  // The server keeps the specs it has found, by class: x264enc's guint bitrate (kbit/s) must never
  // answer for opusenc's gint bitrate (bit/s), in either order.
  await expectValue("x264enc", "bitrate", 3000, 3000);
  await expectInvalid("opusenc", "bitrate", 3000, /4000 to 650000/);
  await expectValue("opusenc", "bitrate", 600000, 600000);
  await expectInvalid("x264enc", "bitrate", 3000000, /1 to 2048000/);
  await expectInvalid("x264enc", "bitrate", -1, /1 to 2048000/);
});

Deno.test("uint properties", async () => {
  await expectValue("videotestsrc", "foreground-color", 4278190335, 4278190335);
  await expectInvalid("videotestsrc", "foreground-color", -1, /0 to 4294967295/);
  await expectInvalid("videotestsrc", "foreground-color", 4294967296);
});

Deno.test("int64 and uint64 properties", async () => {
  await expectValue("videotestsrc", "timestamp-offset", 5000000000, 5000000000);
  await expectValue(
    "videotestsrc",
    "timestamp-offset",
    "9223372036854775807",
    "9223372036854775807",
  );
  await expectInvalid("videotestsrc", "timestamp-offset", -1, /0 to 9223372036854775807/);
  await expectValue("fakesink", "throttle-time", "18446744073709551615", "18446744073709551615");
  await expectValue("fakesink", "throttle-time", 1000, 1000);
  await expectValue("videotestsrc", "num-buffers", "012", 12); // decimal, not octal
  await expectInvalid("fakesink", "throttle-time", -3);
  // GST_CLOCK_TIME_NONE, which these setters assert against, and sums that wrap to it (a
  // CRITICAL): refused.
  await expectInvalid("fakesink", "render-delay", "18446744073709551615", /146 years/);
  await expectInvalid("compositor", "latency", "18446744073709551615", /146 years/);
  await expectInvalid("compositor", "latency", "18446744073676218282", /146 years/);
  await expectInvalid("compositor", "min-upstream-latency", "18446744073709551615", /146 years/);
  await expectValue("fakesink", "render-delay", "4611686018427387903", "4611686018427387903");
});

Deno.test("float and double properties", async () => {
  await expectValue("alpha", "angle", 45.5, 45.5);
  await expectInvalid("alpha", "angle", 91, /0 to 90/);
  await expectValue("audiotestsrc", "freq", 1000.25, 1000.25);
  await expectValue("audiotestsrc", "freq", "880", 880);
  await expectInvalid("audiotestsrc", "freq", -5);
  await expectInvalid("audiotestsrc", "freq", "loud");
});

Deno.test('boolean properties take JSON booleans and "true"/"false"', async () => {
  await expectValue("videotestsrc", "is-live", true, true);
  await expectValue("videotestsrc", "is-live", "true", true);
  await expectValue("fakesink", "sync", "false", false);
  await expectValue("fakesink", "sync", false, false);
  await expectInvalid("fakesink", "sync", "yes-please", /boolean/);
  await expectInvalid("fakesink", "sync", 1, /boolean/);
});

Deno.test("enum properties take a nick, a name or a number", async () => {
  await expectValue("videotestsrc", "pattern", "ball", "ball");
  await expectValue("videotestsrc", "pattern", 18, "ball");
  await expectValue("videotestsrc", "pattern", "Random (television snow)", "snow");
  await expectInvalid("videotestsrc", "pattern", "bal", /smpte, snow/);
  await expectInvalid("videotestsrc", "pattern", 999);
});

Deno.test("flags properties take 'a+b'", async () => {
  await expectValue("x264enc", "analyse", "i4x4+i8x8", "i4x4+i8x8");
  await expectInvalid("x264enc", "analyse", "i4x4+bogus", /joined by '\+'/);
});

Deno.test("caps properties take caps strings", async () => {
  await expectValue("capsfilter", "caps", "video/x-raw,width=320", "video/x-raw, width=(int)320");
  await expectInvalid("capsfilter", "caps", "not caps at all ,,", /caps/);
});

Deno.test("caps and structures whose name GStreamer would assert on are refused, not a CRITICAL", async () => {
  // The parser reads these names, then gst_structure_new_empty asserts on them: under
  // G_DEBUG=fatal-criticals (as the server runs here) that would abort the process.
  for (const caps of ["1abc", "video/x-raw;9", '"-x",a=1', 'video/x-raw, a=(string)"b;c"; -y']) {
    await expectInvalid("capsfilter", "caps", caps, /not a media type or structure name/);
  }
  await expectValue("capsfilter", "caps", "ANY", "ANY");
  await expectValue(
    "capsfilter",
    "caps",
    'video/x-raw, a=(string)"b;9"',
    'video/x-raw, a=(string)"b\\;9"',
  );
});

Deno.test("caps fields GStreamer would assert on are refused, not a CRITICAL", async () => {
  // Each of these aborts gst-launch-1.0 under G_DEBUG=fatal-criticals (src/gst/caps_text.ts).
  const refused: [string, RegExp][] = [
    ['video/x-raw,a=(structure)"1bad, x=1"', /not a media type or structure name/],
    ['video/x-raw,a=(GstStructure)"1bad;"', /not a media type or structure name/],
    ['video/x-raw,a=(GstCaps)"1bad"', /not a media type or structure name/],
    ["video/x-raw,a=(structure)[1bad, x=1]", /not a media type or structure name/],
    ["video/x-raw,w=(int)[5,1]", /start below its end/],
    ["video/x-raw,w=[5,5]", /start below its end/],
    ["video/x-raw,w={2,[5,1]}", /start below its end/],
    ["video/x-raw,w=<[5,1]>", /start below its end/],
    ["video/x-raw,w=(int)[1,5,0]", /step above 0/],
    ["video/x-raw,w=(int)[1,5,-3]", /step above 0/],
    ["video/x-raw,w=(int)[1,5,2]", /multiples of its step/],
    ["video/x-raw,w=(double)[5,1]", /start below its end/],
    ["video/x-raw,w=[5.0,1.0]", /start below its end/],
    ["video/x-raw,framerate=(fraction)[30/1,1/1]", /start below its end/],
    ["video/x-raw,framerate=[1/2,1/2]", /start below its end/],
    ["video/x-raw,w=(buffer)zz", /hex digits/],
    ["video/x-raw,w=(buffer)0g", /hex digits/],
    ['video/x-raw,w=(GstTagList)"1taglist"', /taglist, tag=value/],
    // Found by a review: leading zeros are octal and 0x hex to GStreamer, words it reads as
    // numbers, GLib's type names, NaN and infinities, and casts inside lists and ranges.
    ["x,r=(int)[9,010]", /start below its end/],
    ["x,r=(int)[0,16,0x3]", /multiples of its step/],
    ["x,r=(int)[max,min]", /start below its end/],
    ["x,r=(int)[big_endian,little_endian]", /start below its end/],
    ["x,r=(gint)[10,1]", /start below its end/],
    ["x,r=(gint64)[5,1]", /start below its end/],
    ["x,r=(gdouble)[2.0,1.0]", /start below its end/],
    ["x,r=(GstFraction)[2/1,1/1]", /start below its end/],
    ["x,r=(fraction)[2,1]", /fractions/],
    ["x,r=(double)[1e400,2]", /start below its end/],
    ["x,r=[nan,1.0]", /start below its end/],
    ["x,r=(double)[1,nan]", /start below its end/],
    ["x,r={(int)[5,1]}", /start below its end/],
    ["x,r=<(int)[5,1]>", /start below its end/],
    ["x,r=[(int)5,(int)1]", /start below its end/],
    ['x,s={(structure)"1bad"}', /not a media type or structure name/],
    ["x,s={(buffer)zz}", /hex digits/],
    ["x,s=(GstBuffer)zz", /hex digits/],
  ];
  for (const [caps, message] of refused) {
    await expectInvalid("capsfilter", "caps", caps, message);
  }
  // What the same fields look like when they are right.
  await expectValue(
    "capsfilter",
    "caps",
    "video/x-raw(memory:SystemMemory),width=[16,4096,2],framerate=[1/1,60/1],codec_data=(buffer)01ab",
    // (memory:SystemMemory) is the default: GStreamer writes it out of the caps.
    "video/x-raw, width=(int)[ 16, 4096, 2 ], " +
      "framerate=(fraction)[ 1/1, 60/1 ], codec_data=(buffer)01ab",
  );
  // Octal as GStreamer reads it: [010, 9] is [8, 9].
  await expectValue("capsfilter", "caps", "x,r=(int)[010,9]", "x, r=(int)[ 8, 9 ]");
  // Other properties GStreamer parses as values: a GstBuffer, an array of ranges.
  await expectInvalid("srtpenc", "key", "zz", /hex digits/);
  await expectInvalid("rtpptdemux", "ignored-payload-types", "<[5,1]>", /start below its end/);
});

Deno.test("fraction properties take 'n/d'", async () => {
  await expectValue("vp8enc", "timebase", "1/90000", "1/90000");
  await expectInvalid("vp8enc", "timebase", "fast", /fraction/);
});

Deno.test("read-only properties are refused clearly", async () => {
  const result = await roundTrip("fakesink", { "last-sample": "x" }, "sync");
  assert.ok("error" in result);
  assert.equal(result.error.code, "INVALID_PROPERTY_VALUE");
  assert.match(result.error.message, /read-only/);
});

Deno.test("setElementProperty changes a property while playing", async () => {
  const id = "live-set";
  await client.request("createPipeline", {
    id,
    pipeline: {
      elements: [
        { type: "videotestsrc", name: "src", properties: { "is-live": true } },
        { type: "fakesink" },
      ],
    },
  });
  assert.equal((await client.request("startPipeline", { id })).payload.state, "PLAYING");
  const set = await client.request("setElementProperty", {
    id,
    element: "src",
    property: "pattern",
    value: "snow",
  });
  assert.equal(set.ok, true, JSON.stringify(set.error));
  assert.equal(set.payload.value, "snow");
  const bad = await client.request("setElementProperty", {
    id,
    element: "src",
    property: "pattern",
    value: "nope",
  });
  assert.equal(bad.error?.code, "INVALID_PROPERTY_VALUE");
  await client.request("deletePipeline", { id });
});

Deno.test("a sample property reads as what it holds, not its bytes (a frame is megabytes)", async () => {
  const id = `props-${++counter}`;
  const created = await client.request("createPipeline", {
    id,
    pipeline: "videotestsrc ! video/x-raw,format=RGB,width=1920,height=1080 ! " +
      "fakesink name=s enable-last-sample=true",
    desiredState: "paused",
  });
  assert.equal(created.ok, true, JSON.stringify(created.error));
  try {
    const reply = await client.request("getElementProperty", {
      id,
      element: "s",
      property: "last-sample",
    });
    assert.equal(reply.ok, true, JSON.stringify(reply.error));
    assert.match(
      reply.payload.value,
      /^GstSample of 6220800 bytes, video\/x-raw, format=\(string\)RGB/,
    );
  } finally {
    await client.request("deletePipeline", { id });
  }
});
