/**
 * Live control against the real server and real GStreamer: properties changed
 * while PLAYING with an effect a TCP client sees, typed reads, refusals,
 * pause and resume, end of stream, seeking, the DOT graph, getPipeline's
 * element details, introspection over the protocol, and per-client
 * subscriptions (events, pipelines, stats interval).
 */
import assert from "node:assert/strict";
import { eventTypes } from "../src/api/protocol.ts";
import {
  expectError,
  expectOk as expectReplyOk,
  freshId,
  type Reply,
  run,
  type ServerEvent,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// Media, the server and one client for the file

const mediaDir = await Deno.makeTempDir({ prefix: "live_control_test_" });
{
  /** 10 s of 160x120 H.264 in MP4, a key frame every second. */
  const made = await run("gst-launch-1.0", [
    "-q",
    ...("videotestsrc num-buffers=300 ! video/x-raw,width=160,height=120,framerate=30/1 ! " +
      "x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! mp4mux ! " +
      `filesink location=${mediaDir}/ten-seconds.mp4`).split(" "),
  ]);
  assert.equal(made.code, 0, made.stderr);
}

const STATS_INTERVAL_MS = 250;
const server = await startServer({
  GSTREAMER_MEDIA_DIR: mediaDir,
  GSTREAMER_STATS_INTERVAL_MS: String(STATS_INTERVAL_MS),
  // A start blocked in a change of state fails after this (30 s by default): the test's FIFOs.
  GSTREAMER_STATE_CHANGE_TIMEOUT_MS: "5000",
});
const client = await TestClient.connect(server.url);
const logs = () => `\n--- server log (last 40 lines) ---\n${server.logs.slice(-40).join("\n")}`;
const expectOk = (reply: Reply) => expectReplyOk(reply, logs);

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, logs());
  await Deno.remove(mediaDir, { recursive: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

async function create(id: string, pipeline: unknown): Promise<void> {
  expectOk(await client.request("createPipeline", { id, pipeline }));
}

async function start(id: string): Promise<void> {
  const started = expectOk(await client.request("startPipeline", { id }));
  assert.deepEqual(started.payload, { id, state: "PLAYING" });
}

async function remove(...ids: string[]): Promise<void> {
  for (const id of ids) expectOk(await client.request("deletePipeline", { id }));
}

async function details(id: string) {
  return expectOk(await client.request("getPipeline", { id })).payload;
}

// deno-lint-ignore no-explicit-any
type Stats = any;

/** The pipeline's entry in the next stats broadcast that matches. */
async function nextStats(id: string, predicate: (p: Stats) => boolean = () => true) {
  const message = await client.nextStats((p) => p.id === id && predicate(p), 15000);
  return message.payload.pipelines.find((p: { id: string }) => p.id === id);
}

function rendered(pipeline: Stats, sink: string): number {
  return pipeline.sinks.find((s: { element: string }) => s.element === sink)?.rendered ?? 0;
}

async function getProperty(id: string, element: string, property: string): Promise<unknown> {
  const reply = expectOk(await client.request("getElementProperty", { id, element, property }));
  assert.deepEqual(
    { id: reply.payload.id, element: reply.payload.element, property: reply.payload.property },
    { id, element, property },
  );
  return reply.payload.value;
}

/**
 * Reads fixed-size frames from a TCP server until one satisfies `done`; fails after
 * `timeoutMs` with what it saw. Returns every frame read.
 */
async function readFramesUntil(
  conn: Deno.Conn,
  frameSize: number,
  done: (frame: Uint8Array) => boolean,
  timeoutMs: number,
  what: string,
): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  let pending = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    for (;;) {
      const read = await Promise.race([conn.read(chunk), deadline]);
      if (read === "timeout") {
        const last = frames.at(-1);
        throw new Error(
          `No frame that is ${what} within ${timeoutMs} ms; ${frames.length} frames, ` +
            `the last: ${last ? [...last.slice(0, 8)].join(",") : "none"}`,
        );
      }
      if (read === null) throw new Error(`The server closed the connection before ${what}`);
      const joined = new Uint8Array(pending.length + read);
      joined.set(pending);
      joined.set(chunk.subarray(0, read), pending.length);
      let offset = 0;
      for (; offset + frameSize <= joined.length; offset += frameSize) {
        const frame = joined.slice(offset, offset + frameSize);
        frames.push(frame);
        if (done(frame)) return frames;
      }
      pending = joined.slice(offset);
    }
  } finally {
    clearTimeout(timer);
  }
}

const every = (value: number) => (frame: Uint8Array) => frame.every((byte) => byte === value);

// ---------------------------------------------------------------------------------------------
// Properties while playing

Deno.test("setElementProperty while PLAYING changes what flows: black frames become white", async () => {
  const id = freshId("tcp");
  await create(
    id,
    "videotestsrc name=src is-live=true pattern=black ! " +
      "video/x-raw,format=GRAY8,width=8,height=8,framerate=30/1 ! " +
      "tcpserversink name=out host=127.0.0.1 port=0",
  );
  await start(id);
  const port = await getProperty(id, "out", "current-port");
  assert.equal(typeof port, "number");
  assert.ok((port as number) > 0, `bound port ${port}`);

  // Each buffer is one 8x8 GRAY8 frame, 64 bytes; a new client starts at a buffer.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: port as number });
  try {
    // In GRAY8, videotestsrc's black is 16 and its white 235 (video range).
    const first = await readFramesUntil(conn, 64, () => true, 10000, "any frame");
    assert.ok(every(16)(first[0]), `a black frame: ${first[0]}`);

    const set = expectOk(
      await client.request("setElementProperty", {
        id,
        element: "src",
        property: "pattern",
        value: "white",
      }),
    );
    assert.deepEqual(set.payload, { id, element: "src", property: "pattern", value: "white" });
    const frames = await readFramesUntil(conn, 64, every(235), 10000, "white");
    // Frames change whole: each one is all black or all white, never torn or garbled.
    for (const frame of frames) assert.ok(every(16)(frame) || every(235)(frame), `${frame}`);
    // And stay white.
    const after = await readFramesUntil(conn, 64, () => true, 10000, "any frame");
    assert.ok(every(235)(after[0]), `${after[0]}`);
  } finally {
    conn.close();
  }
  assert.equal(await getProperty(id, "src", "pattern"), "white");
  const src = (await details(id)).elements.find((e: { name: string }) => e.name === "src");
  assert.equal(src.properties.pattern, "white", "getPipeline shows the value set while playing");
  await remove(id);
});

Deno.test("getElementProperty returns typed JSON values", async () => {
  const id = freshId("typed");
  await create(id, {
    elements: [
      {
        type: "videotestsrc",
        name: "src",
        properties: { "num-buffers": "250", "is-live": "true", pattern: 18 },
      },
      { type: "capsfilter", name: "filter", properties: { caps: "video/x-raw,width=64" } },
      { type: "fakesink", name: "sink" },
    ],
  });
  assert.equal(await getProperty(id, "src", "num-buffers"), 250);
  assert.equal(await getProperty(id, "src", "is-live"), true);
  assert.equal(await getProperty(id, "src", "pattern"), "ball");
  assert.equal(await getProperty(id, "src", "foreground-color"), 0xffffffff);
  assert.equal(await getProperty(id, "filter", "caps"), "video/x-raw, width=(int)64");
  assert.equal(await getProperty(id, "sink", "last-message"), null);
  expectError(
    await client.request("getElementProperty", { id, element: "src", property: "nope" }),
    "UNKNOWN_PROPERTY",
  );
  const missing = expectError(
    await client.request("getElementProperty", { id, element: "nope", property: "name" }),
    "ELEMENT_NOT_FOUND",
  );
  assert.deepEqual(missing.details?.elements, ["src", "filter", "sink"]);
  await remove(id);
});

Deno.test("read-only and construct-only properties are refused with a clear message", async () => {
  const fakesink = expectOk(await client.request("inspectElement", { type: "fakesink" }));
  const lastMessage = fakesink.payload.properties.find((p: { name: string }) =>
    p.name === "last-message"
  );
  assert.deepEqual(lastMessage.flags, ["readable"], "last-message is read-only");
  const compositor = expectOk(await client.request("inspectElement", { type: "compositor" }));
  const forceLive = compositor.payload.properties.find((p: { name: string }) =>
    p.name === "force-live"
  );
  assert.ok(forceLive.flags.includes("construct-only"), JSON.stringify(forceLive.flags));

  const id = freshId("refusals");
  await create(id, "videotestsrc is-live=true ! compositor name=mix ! fakesink name=sink");
  await start(id);
  const readOnly = expectError(
    await client.request("setElementProperty", {
      id,
      element: "sink",
      property: "last-message",
      value: "hello",
    }),
    "INVALID_PROPERTY_VALUE",
  );
  assert.match(readOnly.message, /'last-message'/);
  assert.match(readOnly.message, /read-only/);
  assert.equal(readOnly.details?.property, "last-message");
  const constructOnly = expectError(
    await client.request("setElementProperty", {
      id,
      element: "mix",
      property: "force-live",
      value: true,
    }),
    "INVALID_PROPERTY_VALUE",
  );
  assert.match(constructOnly.message, /'force-live'/);
  assert.match(constructOnly.message, /only be set when the element is made/);
  assert.equal(await getProperty(id, "mix", "force-live"), false, "unchanged");
  const name = expectError(
    await client.request("setElementProperty", {
      id,
      element: "mix",
      property: "name",
      value: "x",
    }),
    "INVALID_PROPERTY_VALUE",
  );
  assert.match(name.message, /fixed/);
  await remove(id);
});

Deno.test("a construct-only property can be set when the pipeline is created, as gst-launch-1.0 does", async () => {
  // `gst-launch-1.0 videotestsrc num-buffers=3 ! compositor force-live=true ! fakesink` runs.
  const id = freshId("construct-only");
  const reply = await client.request("createPipeline", {
    id,
    pipeline: "videotestsrc ! compositor name=mix force-live=true ! fakesink",
  });
  expectOk(reply);
  assert.equal(await getProperty(id, "mix", "force-live"), true);
  await remove(id);
});

// ---------------------------------------------------------------------------------------------
// Pause, resume, end of stream

Deno.test("pausePipeline holds the pipeline in PAUSED and startPipeline resumes it", async () => {
  const id = freshId("pause");
  await create(id, "videotestsrc name=src ! fakesink name=sink sync=true");
  await start(id);
  const playing = await nextStats(id, (p) => rendered(p, "sink") > 0);
  assert.equal(playing.state, "PLAYING");

  const paused = expectOk(await client.request("pausePipeline", { id }));
  assert.deepEqual(paused.payload, { id, state: "PAUSED" });
  await client.event(
    "pipelineStateChanged",
    (p) => p.id === id && p.old === "PLAYING" && p.new === "PAUSED",
  );
  const info = await details(id);
  assert.equal(info.state, "PAUSED");
  assert.equal(info.desiredState, "paused");
  assert.equal(info.elements.length, 2);
  for (const element of info.elements) {
    assert.equal(element.state, "PAUSED", JSON.stringify(element));
    assert.equal(element.pending, undefined, JSON.stringify(element));
  }
  // Nothing moves while paused: two stats in a row give the same position.
  const one = await nextStats(id);
  const two = await nextStats(id);
  assert.equal(one.state, "PAUSED");
  assert.equal(typeof one.position, "number");
  assert.equal(two.position, one.position);
  assert.equal(rendered(two, "sink"), rendered(one, "sink"));

  await start(id);
  const resumed = await nextStats(id, (p) => p.position > one.position);
  assert.equal(resumed.state, "PLAYING");
  const again = await details(id);
  assert.equal(again.desiredState, "playing");
  assert.ok(again.elements.every((e: { state: string }) => e.state === "PLAYING"));
  await remove(id);
});

Deno.test("sendEos on a live source ends the run: pipelineEos, then NULL", async () => {
  const id = freshId("eos");
  await create(id, "videotestsrc is-live=true ! fakesink name=sink");
  await start(id);
  await nextStats(id, (p) => rendered(p, "sink") > 0);
  const reply = expectOk(await client.request("sendEos", { id }));
  assert.deepEqual(reply.payload, { id });
  await client.event("pipelineEos", (p) => p.id === id);
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  const info = await details(id);
  assert.equal(info.state, "NULL");
  assert.equal(info.desiredState, "stopped");
  assert.equal(info.lastError, null);
  assert.ok(!client.received.some((m) => m.type === "pipelineError" && m.payload?.id === id));
  await remove(id);
});

Deno.test("sendEos and seek on a pipeline that is not running are INVALID_STATE", async () => {
  const id = freshId("not-running");
  await create(id, "videotestsrc ! fakesink");
  for (const [type, payload] of [["sendEos", { id }], ["seek", { id, position: 1000 }]] as const) {
    const error = expectError(await client.request(type, payload), "INVALID_STATE");
    assert.deepEqual(error.details, { id, state: "NULL" }, type);
    assert.match(error.message, /NULL/);
  }
  expectError(await client.request("sendEos", { id: "no-such" }), "PIPELINE_NOT_FOUND");
  expectError(await client.request("seek", { id: "no-such", position: 0 }), "PIPELINE_NOT_FOUND");
  const rate = expectError(
    await client.request("seek", { id, position: 0, rate: 0 }),
    "INVALID_REQUEST",
  );
  assert.equal(rate.details?.path, "payload.rate");
  const position = expectError(
    await client.request("seek", { id, position: -1 }),
    "INVALID_REQUEST",
  );
  assert.equal(position.details?.path, "payload.position");
  await remove(id);
});

// ---------------------------------------------------------------------------------------------
// Seeking

Deno.test("seek in a paused file moves its position, and it plays on from there", async () => {
  const id = freshId("seek");
  await create(
    id,
    "filesrc location=ten-seconds.mp4 ! qtdemux name=d " +
      "d.video_0 ! queue ! h264parse ! avdec_h264 ! fakesink name=sink sync=true",
  );
  const paused = expectOk(await client.request("pausePipeline", { id }));
  assert.deepEqual(paused.payload, { id, state: "PAUSED" });
  const before = await nextStats(id, (p) => p.position !== null);
  assert.ok(before.position < 1000, `starts at the beginning: ${before.position}`);
  assert.equal(before.duration, 10000);

  const seek = expectOk(await client.request("seek", { id, position: 5000 }));
  assert.deepEqual(seek.payload, { id, position: 5000, rate: 1 });
  const moved = await nextStats(id, (p) => p.position >= 5000);
  assert.equal(moved.state, "PAUSED");
  assert.ok(moved.position < 6000, `position ${moved.position}`);

  await start(id);
  const playing = await nextStats(id, (p) => p.state === "PLAYING" && rendered(p, "sink") > 0);
  assert.ok(playing.position >= 5000, `plays on from 5 s: ${playing.position}`);
  // A seek while PLAYING, close to the end, brings the end of stream.
  expectOk(await client.request("seek", { id, position: 9500 }));
  await client.event("pipelineEos", (p) => p.id === id);
  await remove(id);
});

Deno.test("a paused file served over RTSP with no reader takes seeks, and stops", async () => {
  // The relay's valve, closed while nobody reads, dropped FLUSH_START: its udpsink, holding the
  // file's end of stream in PAUSED, never let go, so a seek waited its 5 s and the stop for ever.
  const id = freshId("seek-served");
  await create(
    id,
    `filesrc location=ten-seconds.mp4 ! qtdemux ! h264parse ! rtspserversink path=${id}`,
  );
  expectOk(await client.request("pausePipeline", { id }));
  for (const position of [3000, 6000]) {
    const seek = expectOk(await client.request("seek", { id, position }));
    assert.deepEqual(seek.payload, { id, position, rate: 1 });
    const moved = await nextStats(id, (p) => p.position >= position);
    assert.ok(moved.position < position + 1000, `position ${moved.position} after ${position}`);
  }
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.deepEqual(stopped.payload, { id, state: "NULL" });
  await remove(id);
});

Deno.test("a forward seek after a backward one plays on past where the backward one began", async () => {
  // The backward seek (rate -1 from 3 s) sets the segment's stop to 3 s; a forward seek that kept
  // it would start at 5 s past that stop, which GStreamer refuses with a CRITICAL.
  const id = freshId("seek-back");
  await create(id, "videotestsrc ! fakesink name=sink sync=true");
  expectOk(await client.request("pausePipeline", { id }));
  expectOk(await client.request("seek", { id, position: 3000, rate: -1 }));
  const forward = expectOk(await client.request("seek", { id, position: 5000 }));
  assert.deepEqual(forward.payload, { id, position: 5000, rate: 1 });
  await start(id);
  const playing = await nextStats(id, (p) => p.state === "PLAYING" && p.position > 5200);
  assert.ok(rendered(playing, "sink") > 0);
  await remove(id);
});

Deno.test("a seek without flush is taken while data flows: playback goes on from there", async () => {
  const id = freshId("seek-noflush");
  await create(id, "videotestsrc ! fakesink name=sink sync=true");
  await start(id);
  await nextStats(id, (p) => rendered(p, "sink") > 0);
  const seek = expectOk(await client.request("seek", { id, position: 5000, flush: false }));
  assert.deepEqual(seek.payload, { id, position: 5000, rate: 1 });
  const moved = await nextStats(id, (p) => p.position >= 5000);
  assert.equal(moved.state, "PLAYING");
  await remove(id);
});

Deno.test("a seek without flush that the source cannot take fails in time, and the pipeline still stops", async () => {
  // The first buffer is stamped an hour ahead: the sink waits on the clock for it, holding the
  // source's stream lock, under which alone a seek without flush can be taken.
  const id = freshId("seek-stuck");
  await create(id, "videotestsrc timestamp-offset=3600000000000 ! fakesink name=sink sync=true");
  await start(id);
  const error = expectError(
    await client.request("seek", { id, position: 1000, flush: false }),
    "SEEK_FAILED",
  );
  assert.deepEqual(error.details, { id, position: 1000, rate: 1, timedOut: true });
  assert.match(error.message, /did not take the seek to 1000 ms within \d+ ms/);
  // The seek still waits inside GStreamer: another is refused rather than racing it.
  const again = expectError(
    await client.request("seek", { id, position: 2000 }),
    "SEEK_FAILED",
  );
  assert.deepEqual(again.details, {
    id,
    position: 2000,
    rate: 1,
    untaken: "the seek to 1000 ms",
  });
  // The stop is not held behind it, and ends it.
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.equal(stopped.payload.state, "NULL");
  assert.equal((await details(id)).lastError, null);
  await remove(id);
});

Deno.test("a flushing seek that an element drops fails in time, and the pipeline still stops", async () => {
  // The valve lets the file's end of stream through (it is sticky), and the paused sink holds it,
  // and with it the demuxer's stream lock; the valve drops the seek's flush, and the stop's from
  // the source, so only a flush sent into the sink itself frees it. The stop waited for ever.
  const id = freshId("seek-dropped");
  await create(
    id,
    "filesrc location=ten-seconds.mp4 ! qtdemux ! h264parse ! " +
      "valve drop=true drop-mode=forward-sticky-events ! fakesink",
  );
  expectOk(await client.request("pausePipeline", { id }));
  const error = expectError(await client.request("seek", { id, position: 3000 }), "SEEK_FAILED");
  assert.equal(error.details?.timedOut, true);
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.equal(stopped.payload.state, "NULL");
  await remove(id);
});

Deno.test("an end of stream the source cannot take fails in time, holds no state change, and the pipeline still stops", async () => {
  // As above: the sink waits an hour on the clock, holding the source's stream lock, which an end
  // of stream sent to a source waits for, holding the pipeline's state lock meanwhile.
  const id = freshId("eos-stuck");
  await create(id, "videotestsrc timestamp-offset=3600000000000 ! fakesink name=sink sync=true");
  await start(id);
  const error = expectError(await client.request("sendEos", { id }), "INVALID_STATE");
  assert.deepEqual(error.details, { id, state: "PLAYING", timedOut: true });
  // A pause would wait on the state lock behind it: refused.
  const pause = expectError(await client.request("pausePipeline", { id }), "INVALID_STATE");
  assert.equal(pause.details?.untaken, "the end of stream");
  // A refusal changes nothing: still playing, and still wished so.
  const after = await details(id);
  assert.equal(after.state, "PLAYING");
  assert.equal(after.desiredState, "playing");
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.equal(stopped.payload.state, "NULL");
  // Started again, it runs as before.
  await start(id);
  await remove(id);
});

Deno.test("a stop or delete does not wait for a start that cannot finish, nor for what was queued behind it", async () => {
  // The valve drops every buffer: the sink never prerolls, and a start would wait its whole
  // timeout (then reply with PLAYING pending); the stop, and what was asked before it, waited too.
  const pipeline = "videotestsrc ! valve drop=true ! fakesink";
  const id = freshId("never-prerolls");
  await create(id, pipeline);
  const starting = client.request("startPipeline", { id });
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "READY");
  const pausing = client.request("pausePipeline", { id });
  const seeking = client.request("seek", { id, position: 1000 });
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.equal(stopped.payload.state, "NULL");
  const started = expectError(await starting, "STATE_CHANGE_FAILED");
  assert.equal(started.message, `Pipeline '${id}' did not reach PLAYING: a stop came first`);
  assert.equal(started.details?.stoppedBy, "a stop");
  assert.equal(expectError(await pausing, "STATE_CHANGE_FAILED").details?.stoppedBy, "a stop");
  assert.equal(expectError(await seeking, "SEEK_FAILED").details?.stoppedBy, "a stop");
  const after = await details(id);
  assert.equal(after.state, "NULL");
  assert.equal(after.desiredState, "stopped");
  // A start asked after the stop is a start of its own: it waits, and a delete ends it.
  const again = client.request("startPipeline", { id });
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "READY");
  expectOk(await client.request("deletePipeline", { id }));
  assert.equal(expectError(await again, "STATE_CHANGE_FAILED").details?.stoppedBy, "a delete");
});

Deno.test("a state change an element blocks in fails the start in time; stop and delete answer, and it goes to NULL once unblocked", async () => {
  // filesrc opens its file in the change to PAUSED, and opening a FIFO nobody writes waits (as a
  // source connecting to a server that does not answer does), holding GStreamer's state lock.
  const fifos = ["blocked.fifo", "blocked-deleted.fifo", "blocked-restart.fifo"];
  for (const fifo of fifos) {
    const made = await new Deno.Command("mkfifo", { args: [`${mediaDir}/${fifo}`] }).output();
    assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
  }
  const feed = async (fifo: string) => {
    // Opening for writing waits for the reader (filesrc), and lets its open return.
    const writer = await Deno.open(`${mediaDir}/${fifo}`, { write: true });
    writer.close();
  };
  const id = freshId("blocked");
  await create(id, `filesrc location=${fifos[0]} ! fakesink`);
  const started = expectError(await client.request("startPipeline", { id }), "STATE_CHANGE_FAILED");
  assert.equal(started.details?.blocked, "the change to PAUSED");
  assert.match(started.message, /has not returned within 5000 ms \(an element is blocked in it/);
  // Refused, not queued behind it.
  const again = expectError(await client.request("startPipeline", { id }), "INVALID_STATE");
  assert.equal(again.details?.untaken, "the change to PAUSED");
  const stopped = expectError(await client.request("stopPipeline", { id }), "STATE_CHANGE_FAILED");
  assert.equal(stopped.details?.blocked, "the change to PAUSED");
  assert.match(stopped.message, /It goes to NULL once that returns/);
  await feed(fifos[0]);
  await waitUntil(async () => (await details(id)).state === "NULL", 10000, "NULL once unblocked");
  assert.equal((await details(id)).desiredState, "stopped");
  // Started again, it reads what the FIFO gives (nothing: its end) and ends.
  await remove(id);

  // A delete does not wait for it either; the pipeline is freed once the change returns.
  const deletedId = freshId("blocked-deleted");
  await create(deletedId, `filesrc location=${fifos[1]} ! fakesink`);
  const starting = client.request("startPipeline", { id: deletedId });
  await client.event("pipelineStateChanged", (p) => p.id === deletedId && p.new === "READY");
  expectOk(await client.request("deletePipeline", { id: deletedId }));
  assert.equal(expectError(await starting, "STATE_CHANGE_FAILED").details?.stoppedBy, "a delete");
  const ids = (await client.request("getPipelines")).payload.pipelines.map((p: { id: string }) =>
    p.id
  );
  assert.ok(!ids.includes(deletedId), "gone from the list at once");
  await feed(fifos[1]);

  // With a restart policy it is started again once the change returns (the restart in between
  // was refused, as any start is while the change is blocked).
  const restarting = freshId("blocked-restart");
  expectOk(
    await client.request("createPipeline", {
      id: restarting,
      pipeline: `filesrc location=${fifos[2]} ! fakesink`,
      restart: "always",
    }),
  );
  const failed = expectError(
    await client.request("startPipeline", { id: restarting }),
    "STATE_CHANGE_FAILED",
  );
  assert.equal(failed.details?.blocked, "the change to PAUSED");
  // Its policy's first restart comes while the change is still blocked, and is refused.
  await server.waitForLog(`Restarting pipeline '${restarting}' (restart 1)`);
  const fed = client.received.length;
  await feed(fifos[2]);
  // To NULL once the change returned, then started again (its next open waits once more).
  const states = () =>
    client.received.slice(fed).filter((message) =>
      message.type === "pipelineStateChanged" &&
      (message as { payload: { id: string } }).payload.id === restarting
    ).map((message) => (message as { payload: { new: string } }).payload.new);
  await waitUntil(
    () => states().join(" ").match(/NULL.* READY/) !== null,
    20000,
    "a start after the change returned",
  );
  await remove(restarting);
  await feed(fifos[2]);
});

Deno.test("a pause refused behind an untaken end of stream changes nothing; the end's restart comes", async () => {
  // The sink waits 6 s on the clock: the end of stream is taken then, after sendEos timed out.
  const id = freshId("eos-late");
  expectOk(
    await client.request("createPipeline", {
      id,
      pipeline: "videotestsrc timestamp-offset=6000000000 ! fakesink sync=true",
      restart: "always",
    }),
  );
  await start(id);
  const ending = client.request("sendEos", { id });
  // Sent while sendEos waits: queued behind it, then refused in the queue.
  const pause = client.request("pausePipeline", { id });
  assert.equal(expectError(await ending, "INVALID_STATE").details?.timedOut, true);
  assert.equal(expectError(await pause, "INVALID_STATE").details?.untaken, "the end of stream");
  assert.equal((await details(id)).desiredState, "playing", "the refused pause changed nothing");
  // Taken once the sink's wait ends: the run ends, and its policy starts it again.
  await client.event("pipelineRestarting", (p) => p.id === id);
  const after = await details(id);
  assert.equal(after.desiredState, "playing");
  await remove(id);
});

Deno.test("a start or pause sent right after sendEos begins a new run, which the end does not stop", async () => {
  for (
    const [i, request] of ["startPipeline", "pausePipeline"].flatMap((r) => [r, r, r]).entries()
  ) {
    const id = freshId(`eos-then-${i}`);
    await create(id, "videotestsrc is-live=true ! fakesink");
    await start(id);
    // Sent together: the end of stream is taken, then the request runs, maybe before the end is
    // read from the bus. It ended the run, so the request begins another.
    const [ended, wished] = await Promise.all([
      client.request("sendEos", { id }),
      client.request(request, { id }),
    ]);
    expectOk(ended);
    const state = request === "startPipeline" ? "PLAYING" : "PAUSED";
    assert.equal(expectOk(wished).payload.state, state, `${request} after sendEos`);
    // A stats round later (the end read by then), it is still where the reply said.
    assert.equal((await nextStats(id)).state, state, `${request} after sendEos, a round later`);
    assert.equal((await details(id)).desiredState, state.toLowerCase());
    await remove(id);
  }
});

Deno.test("seek on a live source that cannot seek is SEEK_FAILED", async () => {
  const id = freshId("seek-udp");
  await create(id, "udpsrc name=src port=0 ! fakesink");
  // Live: PAUSED without waiting for data.
  const paused = expectOk(await client.request("pausePipeline", { id }));
  assert.equal(paused.payload.state, "PAUSED");
  const error = expectError(
    await client.request("seek", { id, position: 1000 }),
    "SEEK_FAILED",
  );
  assert.deepEqual(error.details, { id, position: 1000, rate: 1, live: true });
  assert.equal((await details(id)).state, "PAUSED");
  await remove(id);
});

Deno.test("seek on a live videotestsrc is SEEK_FAILED, and the pipeline plays on", async () => {
  const id = freshId("seek-live");
  await create(id, "videotestsrc is-live=true ! fakesink name=sink");
  await start(id);
  const before = await nextStats(id, (p) => rendered(p, "sink") > 0);
  // An hour ahead: a live source that took the seek would hold its frames that long.
  const reply = await client.request("seek", { id, position: 3_600_000 });
  try {
    expectError(reply, "SEEK_FAILED");
    // Plays on: more frames than before the seek, and still PLAYING.
    const after = await nextStats(id, (p) => rendered(p, "sink") > rendered(before, "sink"));
    assert.equal(after.state, "PLAYING");
  } finally {
    await remove(id);
  }
});

// ---------------------------------------------------------------------------------------------
// The graph and the element details

Deno.test("getPipelineGraph gives the pipeline as DOT", async () => {
  const id = freshId("dot");
  await create(id, "videotestsrc name=camera ! videoconvert name=convert ! fakesink name=screen");
  const stopped = expectOk(await client.request("getPipelineGraph", { id }));
  assert.equal(stopped.payload.id, id);
  const dot: string = stopped.payload.dot;
  assert.ok(dot.startsWith("digraph"), dot.slice(0, 40));
  assert.match(dot, new RegExp(`label="<GstPipeline>\\\\n${id}\\\\n`));
  for (const name of ["camera", "convert", "screen"]) {
    assert.match(dot, new RegExp(`\\\\n${name}\\\\n`), `the graph names ${name}`);
  }
  // While playing, the links carry the negotiated caps.
  await start(id);
  const playing: string = expectOk(await client.request("getPipelineGraph", { id })).payload.dot;
  assert.match(playing, /camera_0x[0-9a-f]+_src_0x[0-9a-f]+ -> convert_0x[0-9a-f]+_sink_/);
  assert.match(playing, /label="video\/x-raw\\l/);
  expectError(await client.request("getPipelineGraph", { id: "no-such" }), "PIPELINE_NOT_FOUND");
  await remove(id);
});

Deno.test("getPipeline gives each element's live state and the properties that were set", async () => {
  const id = freshId("elements");
  await create(id, {
    elements: [
      { type: "videotestsrc", name: "src", properties: { pattern: "ball", "is-live": true } },
      { type: "queue", name: "q" },
      { type: "fakesink", name: "sink" },
    ],
  });
  const created = await details(id);
  assert.deepEqual(
    created.elements.map(({ name, type, state }: Record<string, string>) => ({
      name,
      type,
      state,
    })),
    [
      { name: "src", type: "videotestsrc", state: "NULL" },
      { name: "q", type: "queue", state: "NULL" },
      { name: "sink", type: "fakesink", state: "NULL" },
    ],
  );
  // What was set, typed; untouched properties (horizontal-speed, num-buffers) are left out.
  assert.deepEqual(created.elements[0].properties, { pattern: "ball", "is-live": true });
  assert.deepEqual(created.elements[1].properties, {});
  assert.deepEqual(created.links, [{ from: "src", to: "q" }, { from: "q", to: "sink" }]);
  assert.equal(
    created.launch,
    "videotestsrc name=src pattern=ball is-live=true ! queue name=q ! fakesink name=sink",
  );

  await start(id);
  expectOk(
    await client.request("setElementProperty", {
      id,
      element: "q",
      property: "max-size-buffers",
      value: 5,
    }),
  );
  const playing = await details(id);
  assert.ok(playing.elements.every((e: { state: string }) => e.state === "PLAYING"));
  assert.deepEqual(playing.elements[1].properties, { "max-size-buffers": 5 });
  await remove(id);
});

Deno.test("getPipeline leaves out properties an untouched element has by default", async () => {
  // gst-inspect-1.0 gives fakesink's sync as "Default: false" and videoconvert's qos as
  // "Default: true": an element that was not given them has not changed them.
  const id = freshId("untouched");
  await create(id, "videotestsrc ! videoconvert ! fakesink");
  const info = await details(id);
  assert.equal(info.elements.length, 3);
  for (const element of info.elements) {
    assert.deepEqual(element.properties, {}, `${element.name}: ${JSON.stringify(element)}`);
  }
  await remove(id);
});

// ---------------------------------------------------------------------------------------------
// Introspection

Deno.test("listElements filters the element factories by name, long name or klass", async () => {
  const all = expectOk(await client.request("listElements", {})).payload.elements;
  const names = all.map((e: { name: string }) => e.name);
  assert.deepEqual(names, [...names].sort());
  const testSources = expectOk(await client.request("listElements", { filter: "testsrc" })).payload
    .elements;
  const testNames = testSources.map((e: { name: string }) => e.name);
  assert.ok(testNames.includes("videotestsrc") && testNames.includes("audiotestsrc"), testNames);
  assert.ok(testSources.length < all.length);
  for (const element of testSources) {
    const text = `${element.name} ${element.longName} ${element.klass}`.toLowerCase();
    assert.ok(text.includes("testsrc"), JSON.stringify(element));
  }
  const videoTest = testSources.find((e: { name: string }) => e.name === "videotestsrc");
  assert.equal(videoTest.klass, "Source/Video");
  const videoSinks = expectOk(await client.request("listElements", { filter: "sink/video" }))
    .payload.elements;
  assert.ok(videoSinks.some((e: { name: string }) => e.name === "autovideosink"));
  assert.ok(videoSinks.every((e: { klass: string }) => /sink\/video/i.test(e.klass)));
  const none = expectOk(await client.request("listElements", { filter: "no-such-element-xyz" }));
  assert.deepEqual(none.payload.elements, []);
});

Deno.test("inspectElement describes videotestsrc: pattern values, defaults, pad templates", async () => {
  const reply = expectOk(await client.request("inspectElement", { type: "videotestsrc" }));
  const info = reply.payload;
  assert.equal(info.name, "videotestsrc");
  assert.equal(info.klass, "Source/Video");
  const pattern = info.properties.find((p: { name: string }) => p.name === "pattern");
  assert.equal(pattern.type, "GstVideoTestSrcPattern");
  assert.equal(pattern.default, "smpte");
  const nicks = pattern.values.map((v: { nick: string }) => v.nick);
  for (const nick of ["smpte", "snow", "black", "white", "ball"]) assert.ok(nicks.includes(nick));
  assert.deepEqual(
    pattern.values.find((v: { nick: string }) => v.nick === "ball"),
    { value: 18, name: "Moving ball", nick: "ball" },
  );
  const numBuffers = info.properties.find((p: { name: string }) => p.name === "num-buffers");
  assert.deepEqual(
    [numBuffers.type, numBuffers.minimum, numBuffers.maximum, numBuffers.default],
    ["gint", -1, 2147483647, -1],
  );
  assert.deepEqual(
    info.padTemplates.map(({ name, direction, presence }: Record<string, string>) => ({
      name,
      direction,
      presence,
    })),
    [{ name: "src", direction: "src", presence: "always" }],
  );
  assert.match(info.padTemplates[0].caps, /^video\/x-raw/);
});

Deno.test("rtspserversink, the server's own type, is listed and inspected like the others", async () => {
  // It was UNKNOWN_ELEMENT ("closest: tcpserversink"), though the docs tell users to put it in.
  const listed = expectOk(await client.request("listElements", { filter: "Sink/Network" }));
  const names = listed.payload.elements.map((e: { name: string }) => e.name);
  assert.ok(names.includes("rtspserversink"), names.join(", "));
  assert.deepEqual(names, [...names].sort(), "sorted with the others");
  const info = expectOk(await client.request("inspectElement", { type: "rtspserversink" })).payload;
  assert.equal(info.klass, "Sink/Network");
  const path = info.properties.find((p: { name: string }) => p.name === "path");
  assert.equal(path.type, "gchararray");
  assert.match(path.blurb, /1 to 64 characters/);
  assert.deepEqual(info.padTemplates.length, 1);
  assert.equal(info.padTemplates[0].direction, "sink");
  assert.match(info.padTemplates[0].caps, /video\/x-h264.*audio\/x-opus/);
});

Deno.test("inspectElement of an unknown type is UNKNOWN_ELEMENT with suggestions", async () => {
  const error = expectError(
    await client.request("inspectElement", { type: "videotestsrcc" }),
    "UNKNOWN_ELEMENT",
  );
  assert.equal(error.details?.type, "videotestsrcc");
  assert.equal((error.details?.suggestions as string[])[0], "videotestsrc");
  assert.match(error.message, /videotestsrc/);
  const empty = expectError(
    await client.request("inspectElement", { type: "" }),
    "INVALID_REQUEST",
  );
  assert.equal(empty.details?.path, "payload.type");
});

// ---------------------------------------------------------------------------------------------
// Subscriptions

Deno.test("a client subscribed to some events of some pipelines gets only those", async () => {
  const p1 = freshId("p1");
  const p2 = freshId("p2");
  await using subscriber = await TestClient.connect(server.url);
  const subscribed = expectOk(
    await subscriber.request("subscribe", { events: ["pipelineStateChanged"], pipelines: [p1] }),
  );
  assert.deepEqual(subscribed.payload, {
    events: ["pipelineStateChanged"],
    pipelines: [p1],
    statsIntervalMs: STATS_INTERVAL_MS,
  });
  const mark = subscriber.received.length;
  const everything = client.received.length;

  await create(p1, "videotestsrc is-live=true ! fakesink name=sink");
  await create(p2, "videotestsrc is-live=true ! fakesink name=sink");
  // p2 changes state, and runs long enough for stats to go out (to the others) twice.
  await start(p2);
  await nextStats(p2, (p) => rendered(p, "sink") > 0);
  await nextStats(p2);
  expectOk(await client.request("stopPipeline", { id: p2 }));
  await client.event("pipelineStateChanged", (p) => p.id === p2 && p.new === "NULL");
  // Then p1 changes state: once the subscriber has it, anything of p2 would have come before.
  await start(p1);
  await subscriber.waitFor(
    (m) => m.type === "pipelineStateChanged" && m.payload.id === p1 && m.payload.new === "PLAYING",
    15000,
    "p1 PLAYING",
  );
  const got = subscriber.received.slice(mark) as ServerEvent[];
  assert.deepEqual(
    got.map((m) => ({ type: m.type, ...m.payload })),
    [
      { type: "pipelineStateChanged", id: p1, old: "NULL", new: "READY" },
      { type: "pipelineStateChanged", id: p1, old: "READY", new: "PAUSED" },
      { type: "pipelineStateChanged", id: p1, old: "PAUSED", new: "PLAYING" },
    ],
  );

  // A client that never subscribed got all of it: both pipelines' events, and stats.
  const all = client.received.slice(everything) as ServerEvent[];
  for (const id of [p1, p2]) {
    assert.ok(all.some((m) => m.type === "pipelineCreated" && m.payload.id === id), id);
    assert.ok(
      all.some((m) => m.type === "pipelineStateChanged" && m.payload.id === id),
      id,
    );
  }
  assert.ok(all.some((m) => m.type === "stats"));
  await remove(p1, p2);
});

Deno.test("each client gets stats at its own interval, for its own pipelines", async () => {
  const watched = freshId("watched");
  const other = freshId("other");
  await create(watched, "videotestsrc is-live=true ! fakesink");
  await create(other, "videotestsrc is-live=true ! fakesink");
  await using slow = await TestClient.connect(server.url);
  await using fast = await TestClient.connect(server.url);
  const slowReply = expectOk(await slow.request("subscribe", { statsIntervalMs: 60000 }));
  assert.equal(slowReply.payload.statsIntervalMs, 60000);
  assert.equal(slowReply.payload.pipelines, null);
  const fastReply = expectOk(
    await fast.request("subscribe", { statsIntervalMs: 200, pipelines: [watched] }),
  );
  assert.equal(fastReply.payload.statsIntervalMs, 200);
  const slowMark = slow.received.length;
  const fastMark = fast.received.length;
  // The fast client's own stats are the clock: five of them, while the slow one gets none.
  const isStats = (m: { type: string }) => m.type === "stats";
  await waitUntil(
    () => fast.received.slice(fastMark).filter(isStats).length >= 5,
    15000,
    "five stats for the 200 ms client",
  );
  assert.equal(slow.received.slice(slowMark).filter(isStats).length, 0);
  for (const message of fast.received.slice(fastMark).filter(isStats) as ServerEvent[]) {
    assert.deepEqual(message.payload.pipelines.map((p: { id: string }) => p.id), [watched]);
    assert.equal(typeof message.payload.server.rssBytes, "number");
  }
  // Subscribing again with no interval goes back to the server's.
  const reset = expectOk(await fast.request("subscribe", {}));
  assert.equal(reset.payload.statsIntervalMs, STATS_INTERVAL_MS);
  assert.equal(reset.payload.pipelines, null);
  assert.deepEqual(reset.payload.events, [...eventTypes]);
  await remove(watched, other);
});

Deno.test("an invalid subscribe is INVALID_REQUEST and leaves the subscription as it was", async () => {
  await using subscriber = await TestClient.connect(server.url);
  expectOk(await subscriber.request("subscribe", { events: ["pipelineDeleted"] }));
  const cases: [unknown, string][] = [
    [{ statsIntervalMs: 50 }, "payload.statsIntervalMs"],
    [{ statsIntervalMs: 60001 }, "payload.statsIntervalMs"],
    [{ statsIntervalMs: 250.5 }, "payload.statsIntervalMs"],
    [{ events: ["pipelineCreated", "nope"] }, "payload.events[1]"],
    [{ events: "stats" }, "payload.events"],
    [{ pipelines: [7] }, "payload.pipelines[0]"],
  ];
  for (const [payload, path] of cases) {
    const error = expectError(await subscriber.request("subscribe", payload), "INVALID_REQUEST");
    assert.equal(error.details?.path, path, JSON.stringify(payload));
  }
  const mark = subscriber.received.length;
  const id = freshId("after-invalid");
  await create(id, "videotestsrc ! fakesink");
  await remove(id);
  await subscriber.waitFor(
    (m) => m.type === "pipelineDeleted" && m.payload.id === id,
    15000,
    "pipelineDeleted",
  );
  assert.deepEqual(
    subscriber.received.slice(mark).map((m) => m.type),
    ["pipelineDeleted"],
    "still only pipelineDeleted",
  );
});
