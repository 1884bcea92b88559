/**
 * Graph pipelines against the real server and real GStreamer: links between
 * named elements and pads, request pads (tee, mpegtsmux), sometimes pads
 * (qtdemux, tsdemux, decodebin, uridecodebin) linked when they appear, link
 * errors at create time and when a pad appears, caps on links, and gst-launch
 * text: a corpus of lines that build the same pipelines as their element
 * form, parse errors, and the launch text of getPipeline created again.
 */
import assert from "node:assert/strict";
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
import { RtspConn } from "./rtsp_client.ts";

// ---------------------------------------------------------------------------------------------
// Media made with gst-launch-1.0, the server and one client for the file

const mediaDir = await Deno.makeTempDir({ prefix: "graph_test_" });

async function gstLaunch(line: string): Promise<void> {
  const made = await run("gst-launch-1.0", ["-q", ...line.split(" ")]);
  assert.equal(made.code, 0, `gst-launch-1.0 ${line}\n${made.stdout}${made.stderr}`);
}

const video = (buffers: number) =>
  `videotestsrc num-buffers=${buffers} ! video/x-raw,width=320,height=240,framerate=30/1 ! ` +
  "x264enc speed-preset=ultrafast key-int-max=30 ! h264parse";
const audio = (buffers: number) =>
  `audiotestsrc num-buffers=${buffers} samplesperbuffer=4410 ! audio/x-raw,rate=44100 ! ` +
  "voaacenc ! aacparse";
/** 2 s of H.264 and AAC in MP4 (streams video_0 and audio_0) and in MPEG-TS; 1 s of H.264 alone. */
await gstLaunch(
  `${video(60)} ! mp4mux name=m ! filesink location=${mediaDir}/clip.mp4 ${audio(20)} ! m.`,
);
await gstLaunch(
  `${video(60)} ! mpegtsmux name=m ! filesink location=${mediaDir}/clip.ts ${audio(20)} ! m.`,
);
await gstLaunch(`${video(30)} ! mp4mux ! filesink location=${mediaDir}/video.mp4`);

const server = await startServer({
  GSTREAMER_MEDIA_DIR: mediaDir,
  // Tests wait on stats (sinks rendering): every 250 ms rather than every second.
  GSTREAMER_STATS_INTERVAL_MS: "250",
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

interface Element {
  type: string;
  name?: string;
  properties?: Record<string, unknown>;
}
interface Link {
  from: string;
  to: string;
  caps?: string;
}

async function create(id: string, pipeline: string | { elements: Element[]; links?: Link[] }) {
  return expectOk(await client.request("createPipeline", { id, pipeline }));
}

/** Starts the pipeline and waits for its EOS and its return to NULL, with no error on the way. */
async function runToEos(id: string): Promise<void> {
  const started = expectOk(await client.request("startPipeline", { id }));
  assert.equal(started.payload.state, "PLAYING", JSON.stringify(started.payload));
  const ended = await client.waitFor<ServerEvent>(
    (m) => (m.type === "pipelineEos" || m.type === "pipelineError") && m.payload?.id === id,
    20000,
    `EOS of ${id}`,
  );
  assert.equal(ended.type, "pipelineEos", `${id} failed: ${JSON.stringify(ended.payload)}`);
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
}

async function remove(...ids: string[]): Promise<void> {
  for (const id of ids) expectOk(await client.request("deletePipeline", { id }));
}

async function details(id: string) {
  return expectOk(await client.request("getPipeline", { id })).payload;
}

async function graph(id: string): Promise<string> {
  const dot = expectOk(await client.request("getPipelineGraph", { id })).payload.dot;
  assert.equal(typeof dot, "string");
  return dot as string;
}

interface DotEdge {
  from: string;
  to: string;
  label: string;
}

/** The pad-to-pad edges of a DOT graph, with their labels (the negotiated caps, when known). */
function dotEdges(dot: string): DotEdge[] {
  const edges: DotEdge[] = [];
  for (const match of dot.matchAll(/^\s*(\S+) -> (\S+)(?: \[([^\]]*)\])?/gm)) {
    const label = match[3]?.match(/label="([^"]*)"/)?.[1] ?? "";
    edges.push({ from: match[1], to: match[2], label: label.replaceAll("\\l", "\n") });
  }
  return edges;
}

/** The DOT node id of a pad: `<element>_<pointer>_<pad>_<pointer>` ('-' in names becomes '_'). */
function padNode(element: string, pad: string): RegExp {
  const clean = (text: string) => text.replace(/[^A-Za-z0-9_]/g, "_");
  return new RegExp(`^${clean(element)}_0x[0-9a-f]+_${clean(pad)}_0x[0-9a-f]+$`);
}

function edgeInto(dot: string, element: string, pad: string): DotEdge {
  const node = padNode(element, pad);
  const edge = dotEdges(dot).find((e) => node.test(e.to));
  assert.ok(edge, `no edge into ${element}.${pad} in\n${dot}`);
  return edge;
}

function waitForSinks(id: string, sinks: string[]) {
  return client.nextStats((p) =>
    p.id === id &&
    sinks.every((name) =>
      p.sinks.some((s: { element: string; rendered: number }) =>
        s.element === name && s.rendered > 0
      )
    ), 20000);
}

// ---------------------------------------------------------------------------------------------
// Request pads

Deno.test("a tee in element form feeds two branches, and both sinks render", async () => {
  const id = freshId("tee");
  const links: Link[] = [
    { from: "src", to: "t" },
    { from: "t", to: "q1" },
    { from: "q1", to: "s1" },
    { from: "t", to: "q2" },
    { from: "q2", to: "s2" },
  ];
  await create(id, {
    elements: [
      { type: "videotestsrc", name: "src", properties: { "is-live": true } },
      { type: "tee", name: "t" },
      { type: "queue", name: "q1" },
      { type: "fakesink", name: "s1" },
      { type: "queue", name: "q2" },
      { type: "fakesink", name: "s2" },
    ],
    links,
  });
  expectOk(await client.request("startPipeline", { id }));
  await waitForSinks(id, ["s1", "s2"]);
  const info = await details(id);
  assert.deepEqual(info.links, links);
  assert.deepEqual(info.elements.map((e: { name: string }) => e.name), [
    "src",
    "t",
    "q1",
    "s1",
    "q2",
    "s2",
  ]);
  // The tee's pads were requested from its src_%u template, one per branch.
  const dot = await graph(id);
  assert.match(edgeInto(dot, "q1", "sink").from, padNode("t", "src_0"));
  assert.match(edgeInto(dot, "q2", "sink").from, padNode("t", "src_1"));
  await remove(id);
});

Deno.test("mpegtsmux takes two encoders on request pads, by template and by name", async () => {
  const id = freshId("tsmux");
  await create(id, {
    elements: [
      { type: "videotestsrc", name: "v", properties: { "is-live": true } },
      {
        type: "x264enc",
        name: "venc",
        properties: { "speed-preset": "ultrafast", tune: "zerolatency" },
      },
      { type: "audiotestsrc", name: "a", properties: { "is-live": true } },
      { type: "voaacenc", name: "aenc" },
      { type: "aacparse", name: "aparse" },
      { type: "mpegtsmux", name: "mux" },
      { type: "fakesink", name: "out" },
    ],
    links: [
      { from: "v", to: "venc", caps: "video/x-raw,width=160,height=120" },
      { from: "venc", to: "mux.sink_%d" },
      { from: "a", to: "aenc" },
      { from: "aenc", to: "aparse" },
      // mpegtsmux takes the number of a named pad as the stream's PID.
      { from: "aparse", to: "mux.sink_300" },
      { from: "mux", to: "out" },
    ],
  });
  expectOk(await client.request("startPipeline", { id }));
  await waitForSinks(id, ["out"]);
  const dot = await graph(id);
  const named = edgeInto(dot, "mux", "sink_300");
  assert.match(named.from, padNode("aparse", "src"));
  assert.match(named.label, /^audio\/mpeg/);
  const byTemplate = dotEdges(dot).find((e) =>
    /^mux_0x[0-9a-f]+_sink_\d+_0x/.test(e.to) && padNode("venc", "src").test(e.from)
  );
  assert.ok(byTemplate, `no edge from venc into a mux sink pad in\n${dot}`);
  assert.doesNotMatch(byTemplate.to, /_sink_300_/, "the template gave the video a pad of its own");
  assert.match(byTemplate.label, /^video\/x-h264/);
  // Both live sources end on sendEos; the muxer drains both streams and the run ends.
  expectOk(await client.request("sendEos", { id }));
  await client.event("pipelineEos", (p) => p.id === id);
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  await remove(id);
});

// ---------------------------------------------------------------------------------------------
// Sometimes pads

Deno.test("qtdemux's pads are linked by name when they appear, and the file plays to EOS", async () => {
  const id = freshId("qtdemux");
  await create(id, {
    elements: [
      { type: "filesrc", properties: { location: "clip.mp4" } },
      { type: "qtdemux", name: "d" },
      { type: "queue", name: "vq" },
      { type: "h264parse" },
      { type: "avdec_h264" },
      { type: "fakesink", name: "vsink" },
      { type: "queue", name: "aq" },
      { type: "aacparse" },
      { type: "avdec_aac" },
      { type: "fakesink", name: "asink" },
    ],
    links: [
      { from: "filesrc0", to: "d" },
      { from: "d.video_0", to: "vq" },
      { from: "vq", to: "h264parse3" },
      { from: "h264parse3", to: "avdec_h2644" },
      { from: "avdec_h2644", to: "vsink" },
      { from: "d.audio_0", to: "aq" },
      { from: "aq", to: "aacparse7" },
      { from: "aacparse7", to: "avdec_aac8" },
      { from: "avdec_aac8", to: "asink" },
    ],
  });
  // PAUSED is reached once every sink holds a buffer: both pads were linked when they appeared.
  const paused = expectOk(await client.request("pausePipeline", { id }));
  assert.deepEqual(paused.payload, { id, state: "PAUSED" });
  const dot = await graph(id);
  assert.match(edgeInto(dot, "vq", "sink").from, padNode("d", "video_0"));
  assert.match(edgeInto(dot, "vq", "sink").label, /^video\/x-h264/);
  assert.match(edgeInto(dot, "aq", "sink").from, padNode("d", "audio_0"));
  assert.match(edgeInto(dot, "aq", "sink").label, /^audio\/mpeg/);
  await runToEos(id);
  // A second run links the pads again (they are made anew).
  await runToEos(id);
  await remove(id);
});

Deno.test("decodebin and uridecodebin pads are linked to the branch that takes them", async () => {
  const decodebin = freshId("decodebin");
  const uridecodebin = freshId("uridecodebin");
  const branches: Element[] = [
    { type: "queue", name: "vq" },
    { type: "videoconvert" },
    { type: "fakesink", name: "vsink" },
    { type: "queue", name: "aq" },
    { type: "audioconvert" },
    { type: "fakesink", name: "asink" },
  ];
  await create(decodebin, {
    elements: [
      { type: "filesrc", name: "src", properties: { location: "clip.mp4" } },
      { type: "decodebin", name: "dec" },
      ...branches,
    ],
    links: [
      { from: "src", to: "dec" },
      // The audio branch is listed first: a pad that does not fit a branch goes on to the next.
      { from: "dec", to: "aq" },
      { from: "aq", to: "audioconvert6" },
      { from: "audioconvert6", to: "asink" },
      { from: "dec", to: "vq" },
      { from: "vq", to: "videoconvert3" },
      { from: "videoconvert3", to: "vsink" },
    ],
  });
  await create(uridecodebin, {
    elements: [
      { type: "uridecodebin", name: "dec", properties: { uri: `file://${mediaDir}/clip.mp4` } },
      ...branches,
    ],
    links: [
      { from: "dec", to: "vq" },
      { from: "vq", to: "videoconvert2" },
      { from: "videoconvert2", to: "vsink" },
      { from: "dec", to: "aq" },
      { from: "aq", to: "audioconvert5" },
      { from: "audioconvert5", to: "asink" },
    ],
  });
  for (const id of [decodebin, uridecodebin]) {
    const paused = expectOk(await client.request("pausePipeline", { id }));
    assert.deepEqual(paused.payload, { id, state: "PAUSED" }, `${id}: both sinks prerolled`);
    const dot = await graph(id);
    assert.match(edgeInto(dot, "vq", "sink").label, /^video\/x-raw/);
    assert.match(edgeInto(dot, "aq", "sink").label, /^audio\/x-raw/);
    await runToEos(id);
  }
  await remove(decodebin, uridecodebin);
});

Deno.test("a demuxer pad that cannot link where it is sent is a pipelineError when it appears", async () => {
  const id = freshId("unlinkable-pad");
  await create(
    id,
    "filesrc location=clip.mp4 ! qtdemux name=d d.video_0 ! queue name=q ! audioconvert ! fakesink",
  );
  const reply = await client.request("startPipeline", { id });
  const error = await client.event("pipelineError", (p) => p.id === id);
  assert.equal(error.payload.element, "d");
  assert.match(error.payload.message, /'d\.video_0'/);
  assert.match(error.payload.message, /'q'/);
  assert.match(error.payload.message, /video\/x-h264/, "the message gives the pad's caps");
  // The error happens while the pipeline prerolls: the start fails with it as the cause.
  const failed = expectError(reply, "STATE_CHANGE_FAILED");
  assert.equal((failed.details?.error as { message: string }).message, error.payload.message);
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  const info = await details(id);
  assert.equal(info.state, "NULL");
  assert.equal(info.lastError.message, error.payload.message);
  await remove(id);
});

Deno.test("a decodebin with no pad for a branch reports it once its pads are all there", async () => {
  const id = freshId("no-matching-pad");
  await create(id, {
    elements: [
      { type: "filesrc", name: "src", properties: { location: "video.mp4" } },
      { type: "decodebin", name: "dec" },
      { type: "audioconvert", name: "ac" },
      { type: "fakesink" },
    ],
    links: [{ from: "src", to: "dec" }, { from: "dec", to: "ac" }, { from: "ac", to: "fakesink3" }],
  });
  const reply = await client.request("startPipeline", { id });
  const error = await client.event("pipelineError", (p) => p.id === id);
  assert.equal(error.payload.element, "dec");
  assert.match(error.payload.message, /No pad of 'dec' could link to 'ac'/);
  assert.match(error.payload.message, /src_0 \(video\/x-raw/, "the message names the pads seen");
  expectError(reply, "STATE_CHANGE_FAILED");
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  await remove(id);
});

/**
 * Serves `served` (launch text ending in an rtspserversink of the path given) and, once its path is
 * described (its streams have started: AAC's RTP caps come with the first frame), starts `reader`
 * (launch text reading the URL given); returns the reader's first pipelineError. Both are removed.
 */
async function readingError(
  served: (path: string) => string,
  reader: (url: string) => string,
): Promise<ServerEvent["payload"]> {
  const path = freshId("served");
  await create(path, served(path));
  expectOk(await client.request("startPipeline", { id: path }));
  // Described first: until its stream has begun a DESCRIBE gets 503. The probe's connection stays
  // open until the reader is done, so that the shared media it prepared stays prepared.
  const probe = await RtspConn.open(server.rtspUrl);
  try {
    await waitUntil(
      () =>
        probe.request("DESCRIBE", `${server.rtspUrl}/${path}`, { Accept: "application/sdp" })
          .then(() => true, () => false),
      15000,
      `/${path} described`,
    );
    const id = freshId("reader");
    await create(id, reader(`${server.rtspUrl}/${path}`));
    void client.request("startPipeline", { id });
    const error = await client.event("pipelineError", (p) => p.id === id);
    await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
    await remove(id, path);
    return error.payload;
  } finally {
    probe.close();
  }
}

Deno.test("an rtspsrc with no pad for a branch reports it, naming the pads that came", async () => {
  const error = await readingError(
    (path) => `audiotestsrc is-live=true ! avenc_aac ! aacparse ! rtspserversink path=${path}`,
    (url) => `rtspsrc location=${url} protocols=tcp ! rtph264depay ! fakesink`,
  );
  // Reported at once: rtspsrc stops on the audio nothing takes (not after LATE_PAD_GRACE_MS).
  assert.match(error.element, /^rtspsrc\d+$/, `debug: ${error.debug}`);
  assert.match(
    error.message,
    /^No pad of 'rtspsrc\d+' could link to 'rtph264depay\d+'; pads that appeared: recv_rtp_src_0_\d+_\d+ \(application\/x-rtp, media=\(string\)audio/,
    // rtspsrc's own errors say which step failed only in their debug text (CI, 2026-12-04).
    `debug: ${error.debug}`,
  );
});

Deno.test("an rtspsrc branch no stream fits is reported while the other branch plays", async () => {
  const error = await readingError(
    (path) =>
      "videotestsrc is-live=true ! x264enc tune=zerolatency speed-preset=ultrafast ! " +
      `rtspserversink path=${path}`,
    (url) =>
      `rtspsrc name=src location=${url} protocols=tcp ! rtph264depay ! fakesink  ` +
      "src. ! rtpmp4gdepay name=aac ! fakesink",
  );
  // The video plays, so rtspsrc reports nothing: the wait for a late pad ends in the error.
  assert.equal(error.element, "src", `debug: ${error.debug}`);
  assert.equal(
    error.message,
    "No pad of 'src' could link to 'aac'; no matching pad appeared",
    `debug: ${error.debug}`,
  );
});

Deno.test("a tsdemux in launch text links its video pad to the only branch, and plays to EOS", async () => {
  const id = freshId("tsdemux");
  await create(
    id,
    "filesrc location=clip.ts ! tsdemux name=d d. ! queue ! h264parse ! avdec_h264 ! fakesink",
  );
  await runToEos(id);
  await remove(id);
});

// ---------------------------------------------------------------------------------------------
// Link errors at create time

Deno.test("a link between incompatible pads is LINK_FAILED with the caps of both ends", async () => {
  const id = freshId("link-failed");
  const error = expectError(
    await client.request("createPipeline", {
      id,
      pipeline: {
        elements: [
          { type: "audiotestsrc", name: "a" },
          { type: "videoconvert", name: "v" },
          { type: "fakesink", name: "s" },
        ],
        links: [{ from: "a", to: "v" }, { from: "v", to: "s" }],
      },
    }),
    "LINK_FAILED",
  );
  assert.match(error.message, /'a'.*'v'/);
  assert.equal(error.details?.from, "a");
  assert.equal(error.details?.to, "v");
  assert.equal(error.details?.link, 0);
  assert.match(String(error.details?.fromCaps), /^audio\/x-raw/);
  assert.match(String(error.details?.toCaps), /^video\/x-raw/);
  // Nothing of it stays behind.
  expectError(await client.request("getPipeline", { id }), "PIPELINE_NOT_FOUND");
});

Deno.test("a link from a pad an element does not have is LINK_FAILED", async () => {
  const error = expectError(
    await client.request("createPipeline", {
      id: freshId("no-such-pad"),
      pipeline: {
        elements: [{ type: "videotestsrc", name: "src" }, { type: "fakesink", name: "s" }],
        links: [{ from: "src.video_0", to: "s" }],
      },
    }),
    "LINK_FAILED",
  );
  assert.equal(error.details?.from, "src.video_0");
  assert.match(error.message, /no such static src pad/);
});

Deno.test("links that make a loop are LINK_FAILED (GStreamer would recurse round it and crash)", async () => {
  const before = await client.request("getPipelines", {});
  const error = expectError(
    await client.request("createPipeline", {
      id: freshId("loop"),
      pipeline: {
        elements: [
          { type: "videotestsrc", name: "v" },
          { type: "funnel", name: "f" },
          { type: "tee", name: "t" },
          { type: "queue", name: "q" },
          { type: "fakesink", name: "s" },
        ],
        links: [
          { from: "v", to: "f" },
          { from: "f", to: "t" },
          { from: "t", to: "q" },
          { from: "q", to: "f" },
          { from: "t", to: "s" },
        ],
      },
    }),
    "LINK_FAILED",
  );
  assert.deepEqual(error.details?.loop, ["f", "t", "q", "f"]);
  assert.equal(error.details?.path, "payload.pipeline.links[3]");
  // The same loop in launch text.
  const launched = expectError(
    await client.request("createPipeline", {
      id: freshId("loop-launch"),
      pipeline: "videotestsrc ! funnel name=f ! tee name=t ! queue ! f. t. ! fakesink",
    }),
    "LINK_FAILED",
  );
  assert.match(launched.message, /make a loop/);
  assert.deepEqual(
    (await client.request("getPipelines", {})).payload,
    before.payload,
    "a refused create left a pipeline",
  );
  // Through rtpsession, whose send and receive paths are separate, a loop runs: RTP sent, then
  // depayloaded, payloaded again and received by the same session.
  const relay = freshId("rtp-relay");
  expectOk(
    await client.request("createPipeline", {
      id: relay,
      pipeline: "rtpsession name=s videotestsrc num-buffers=30 ! x264enc tune=zerolatency ! " +
        "rtph264pay ! s.send_rtp_sink s.send_rtp_src ! rtph264depay ! h264parse ! rtph264pay ! " +
        "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264 ! s.recv_rtp_sink " +
        "s.recv_rtp_src ! rtph264depay ! fakesink",
    }),
  );
  expectOk(await client.request("deletePipeline", { id: relay }));
});

Deno.test("caps on a link that neither end can take are LINK_FAILED", async () => {
  const error = expectError(
    await client.request("createPipeline", {
      id: freshId("caps-failed"),
      pipeline: {
        elements: [{ type: "videotestsrc", name: "src" }, { type: "fakesink", name: "s" }],
        links: [{ from: "src", to: "s", caps: "audio/x-raw" }],
      },
    }),
    "LINK_FAILED",
  );
  assert.equal(error.details?.link, 0);
  assert.match(error.message, /'src'/);
  assert.match(String(error.details?.fromCaps), /^video\/x-raw/);
});

Deno.test("a link naming no element is INVALID_REQUEST with the path of the link end", async () => {
  const elements = [{ type: "videotestsrc", name: "src" }, { type: "fakesink", name: "s" }];
  const from = expectError(
    await client.request("createPipeline", {
      id: freshId("bad-link"),
      pipeline: { elements, links: [{ from: "src", to: "s" }, { from: "nope", to: "s" }] },
    }),
    "INVALID_REQUEST",
  );
  assert.equal(from.details?.path, "payload.pipeline.links[1].from");
  assert.match(from.message, /payload\.pipeline\.links\[1\]\.from/);
  assert.match(from.message, /"nope"/);
  assert.deepEqual(from.details?.elements, ["src", "s"]);
  const to = expectError(
    await client.request("createPipeline", {
      id: freshId("bad-link"),
      pipeline: { elements, links: [{ from: "src", to: "sink.sink" }] },
    }),
    "INVALID_REQUEST",
  );
  assert.equal(to.details?.path, "payload.pipeline.links[0].to");
  const empty = expectError(
    await client.request("createPipeline", {
      id: freshId("bad-link"),
      pipeline: { elements, links: [{ from: "", to: "s" }] },
    }),
    "INVALID_REQUEST",
  );
  assert.equal(empty.details?.path, "payload.pipeline.links[0].from");
});

// ---------------------------------------------------------------------------------------------
// Caps on links

Deno.test("caps on a link constrain what flows over it", async () => {
  const constrained = freshId("caps-link");
  const free = freshId("caps-free");
  const elements = [
    { type: "videotestsrc", name: "src", properties: { "is-live": true } },
    { type: "fakesink", name: "sink" },
  ];
  const caps = "video/x-raw,width=176,height=144";
  await create(constrained, { elements, links: [{ from: "src", to: "sink", caps }] });
  await create(free, { elements, links: [{ from: "src", to: "sink" }] });
  expectOk(await client.request("startPipeline", { id: constrained }));
  expectOk(await client.request("startPipeline", { id: free }));
  await waitForSinks(constrained, ["sink"]);
  await waitForSinks(free, ["sink"]);

  const negotiated = edgeInto(await graph(constrained), "sink", "sink").label;
  assert.match(negotiated, /width: 176\n/);
  assert.match(negotiated, /height: 144\n/);
  // Without the caps, videotestsrc gives its default size.
  const unconstrained = edgeInto(await graph(free), "sink", "sink").label;
  assert.match(unconstrained, /width: 320\n/);
  assert.match(unconstrained, /height: 240\n/);

  // getPipeline gives the link with its caps and only the elements of the description...
  const info = await details(constrained);
  assert.deepEqual(info.links, [{ from: "src", to: "sink", caps }]);
  assert.deepEqual(info.elements.map((e: { name: string }) => e.name), ["src", "sink"]);
  assert.match(info.launch, /src .*! video\/x-raw,width=176,height=144 ! .*sink/);
  // ...while the caps filter that carries them is there to read.
  const filterCaps = expectOk(
    await client.request("getElementProperty", {
      id: constrained,
      element: "src-caps0",
      property: "caps",
    }),
  );
  assert.equal(filterCaps.payload.value, "video/x-raw, width=(int)176, height=(int)144");
  await remove(constrained, free);
});

// ---------------------------------------------------------------------------------------------
// Launch text

interface CorpusLine {
  label: string;
  line: string;
  elements: Element[];
  links: Link[];
}

/**
 * gst-launch lines written the way people write them (recipes, the man page), for
 * what runs here with fake sinks, each with the same pipeline in element form, by
 * hand: typed JSON values where gst-launch has text.
 */
const corpus: CorpusLine[] = [
  {
    label: "a tee with two branches",
    line:
      "videotestsrc num-buffers=30 ! tee name=t t. ! queue ! fakesink t. ! queue ! videoconvert ! fakesink",
    elements: [
      { type: "videotestsrc", properties: { "num-buffers": 30 } },
      { type: "tee", name: "t" },
      { type: "queue" },
      { type: "fakesink" },
      { type: "queue" },
      { type: "videoconvert" },
      { type: "fakesink" },
    ],
    links: [
      { from: "videotestsrc0", to: "t" },
      { from: "t", to: "queue2" },
      { from: "queue2", to: "fakesink3" },
      { from: "t", to: "queue4" },
      { from: "queue4", to: "videoconvert5" },
      { from: "videoconvert5", to: "fakesink6" },
    ],
  },
  {
    label: "qtdemux with pad references",
    line: "filesrc location=clip.mp4 ! qtdemux name=demux " +
      "demux.video_0 ! queue ! h264parse ! avdec_h264 ! videoconvert ! fakesink " +
      "demux.audio_0 ! queue ! aacparse ! avdec_aac ! audioconvert ! fakesink",
    elements: [
      { type: "filesrc", properties: { location: "clip.mp4" } },
      { type: "qtdemux", name: "demux" },
      { type: "queue" },
      { type: "h264parse" },
      { type: "avdec_h264" },
      { type: "videoconvert" },
      { type: "fakesink" },
      { type: "queue" },
      { type: "aacparse" },
      { type: "avdec_aac" },
      { type: "audioconvert" },
      { type: "fakesink" },
    ],
    links: [
      { from: "filesrc0", to: "demux" },
      { from: "demux.video_0", to: "queue2" },
      { from: "queue2", to: "h264parse3" },
      { from: "h264parse3", to: "avdec_h2644" },
      { from: "avdec_h2644", to: "videoconvert5" },
      { from: "videoconvert5", to: "fakesink6" },
      { from: "demux.audio_0", to: "queue7" },
      { from: "queue7", to: "aacparse8" },
      { from: "aacparse8", to: "avdec_aac9" },
      { from: "avdec_aac9", to: "audioconvert10" },
      { from: "audioconvert10", to: "fakesink11" },
    ],
  },
  {
    label: "caps filters",
    line: "videotestsrc num-buffers=30 pattern=smpte ! videorate ! video/x-raw,framerate=15/1 ! " +
      "videoscale ! video/x-raw,width=160,height=120 ! videoconvert ! fakesink",
    elements: [
      { type: "videotestsrc", properties: { "num-buffers": 30, pattern: "smpte" } },
      { type: "videorate" },
      { type: "videoscale" },
      { type: "videoconvert" },
      { type: "fakesink" },
    ],
    links: [
      { from: "videotestsrc0", to: "videorate1" },
      { from: "videorate1", to: "videoscale2", caps: "video/x-raw,framerate=15/1" },
      { from: "videoscale2", to: "videoconvert3", caps: "video/x-raw,width=160,height=120" },
      { from: "videoconvert3", to: "fakesink4" },
    ],
  },
  {
    label: "quoted caps with types and spaces",
    line:
      'audiotestsrc num-buffers=20 wave=ticks ! "audio/x-raw, rate=(int)16000, channels=(int)1" ! audioconvert ! fakesink',
    elements: [
      { type: "audiotestsrc", properties: { "num-buffers": 20, wave: "ticks" } },
      { type: "audioconvert" },
      { type: "fakesink" },
    ],
    links: [
      {
        from: "audiotestsrc0",
        to: "audioconvert1",
        caps: "audio/x-raw, rate=(int)16000, channels=(int)1",
      },
      { from: "audioconvert1", to: "fakesink2" },
    ],
  },
  {
    label: "quoted property values, double and single",
    line: "videotestsrc num-buffers=10 ! " +
      'capsfilter caps="video/x-raw, width=(int)160, height=(int)120" ! ' +
      "x264enc option-string='bframes=0:ref=1' speed-preset=ultrafast ! fakesink",
    elements: [
      { type: "videotestsrc", properties: { "num-buffers": 10 } },
      { type: "capsfilter", properties: { caps: "video/x-raw,width=160,height=120" } },
      { type: "x264enc", properties: { "option-string": "bframes=0:ref=1", "speed-preset": 1 } },
      { type: "fakesink" },
    ],
    links: [
      { from: "videotestsrc0", to: "capsfilter1" },
      { from: "capsfilter1", to: "x264enc2" },
      { from: "x264enc2", to: "fakesink3" },
    ],
  },
  {
    label: "mpegtsmux fed by a video and an audio encoder",
    line: "videotestsrc num-buffers=30 ! x264enc speed-preset=ultrafast ! h264parse ! " +
      "mpegtsmux name=mux alignment=7 ! fakesink " +
      "audiotestsrc num-buffers=30 ! voaacenc ! aacparse ! mux.",
    elements: [
      { type: "videotestsrc", properties: { "num-buffers": 30 } },
      { type: "x264enc", properties: { "speed-preset": "ultrafast" } },
      { type: "h264parse" },
      { type: "mpegtsmux", name: "mux", properties: { alignment: 7 } },
      { type: "fakesink" },
      { type: "audiotestsrc", properties: { "num-buffers": 30 } },
      { type: "voaacenc" },
      { type: "aacparse" },
    ],
    links: [
      { from: "videotestsrc0", to: "x264enc1" },
      { from: "x264enc1", to: "h264parse2" },
      { from: "h264parse2", to: "mux" },
      { from: "mux", to: "fakesink4" },
      { from: "audiotestsrc5", to: "voaacenc6" },
      { from: "voaacenc6", to: "aacparse7" },
      { from: "aacparse7", to: "mux" },
    ],
  },
  {
    label: "mpegtsmux with named request pads written before the muxer",
    line: "videotestsrc num-buffers=30 ! x264enc speed-preset=ultrafast ! mux.sink_65 " +
      "audiotestsrc num-buffers=30 ! opusenc ! mux.sink_66 " +
      "mpegtsmux name=mux ! fakesink",
    elements: [
      { type: "videotestsrc", properties: { "num-buffers": 30 } },
      { type: "x264enc", properties: { "speed-preset": "ultrafast" } },
      { type: "audiotestsrc", properties: { "num-buffers": 30 } },
      { type: "opusenc" },
      { type: "mpegtsmux", name: "mux" },
      { type: "fakesink" },
    ],
    links: [
      { from: "videotestsrc0", to: "x264enc1" },
      { from: "x264enc1", to: "mux.sink_65" },
      { from: "audiotestsrc2", to: "opusenc3" },
      { from: "opusenc3", to: "mux.sink_66" },
      { from: "mux", to: "fakesink5" },
    ],
  },
  {
    label: "uridecodebin with a branch per stream",
    line: `uridecodebin uri=file://${mediaDir}/clip.mp4 name=dec ` +
      "dec. ! queue ! videoconvert ! videoscale ! fakesink " +
      "dec. ! queue ! audioconvert ! audioresample ! fakesink",
    elements: [
      { type: "uridecodebin", name: "dec", properties: { uri: `file://${mediaDir}/clip.mp4` } },
      { type: "queue" },
      { type: "videoconvert" },
      { type: "videoscale" },
      { type: "fakesink" },
      { type: "queue" },
      { type: "audioconvert" },
      { type: "audioresample" },
      { type: "fakesink" },
    ],
    links: [
      { from: "dec", to: "queue1" },
      { from: "queue1", to: "videoconvert2" },
      { from: "videoconvert2", to: "videoscale3" },
      { from: "videoscale3", to: "fakesink4" },
      { from: "dec", to: "queue5" },
      { from: "queue5", to: "audioconvert6" },
      { from: "audioconvert6", to: "audioresample7" },
      { from: "audioresample7", to: "fakesink8" },
    ],
  },
  {
    label: "tee pads by name, an encoder branch and a raw branch, over a shell line break",
    line: "audiotestsrc num-buffers=20 ! tee name=t \\\n" +
      "t.src_0 ! queue ! audioconvert ! opusenc bitrate=64000 ! oggmux ! fakesink \\\n" +
      "t.src_1 ! queue ! fakesink sync=false",
    elements: [
      { type: "audiotestsrc", properties: { "num-buffers": 20 } },
      { type: "tee", name: "t" },
      { type: "queue" },
      { type: "audioconvert" },
      { type: "opusenc", properties: { bitrate: 64000 } },
      { type: "oggmux" },
      { type: "fakesink" },
      { type: "queue" },
      { type: "fakesink", properties: { sync: false } },
    ],
    links: [
      { from: "audiotestsrc0", to: "t" },
      { from: "t.src_0", to: "queue2" },
      { from: "queue2", to: "audioconvert3" },
      { from: "audioconvert3", to: "opusenc4" },
      { from: "opusenc4", to: "oggmux5" },
      { from: "oggmux5", to: "fakesink6" },
      { from: "t.src_1", to: "queue7" },
      { from: "queue7", to: "fakesink8" },
    ],
  },
  {
    label: "tsdemux with a reference and no pad",
    line:
      "filesrc location=clip.ts ! tsdemux name=d d. ! queue ! h264parse ! avdec_h264 ! fakesink",
    elements: [
      { type: "filesrc", properties: { location: "clip.ts" } },
      { type: "tsdemux", name: "d" },
      { type: "queue" },
      { type: "h264parse" },
      { type: "avdec_h264" },
      { type: "fakesink" },
    ],
    links: [
      { from: "filesrc0", to: "d" },
      { from: "d", to: "queue2" },
      { from: "queue2", to: "h264parse3" },
      { from: "h264parse3", to: "avdec_h2644" },
      { from: "avdec_h2644", to: "fakesink5" },
    ],
  },
];

/** What must be the same for two pipelines of one layout (the rest is their identity). */
function layout(info: { elements: unknown; links: unknown }) {
  return { elements: info.elements, links: info.links };
}

for (const [index, entry] of corpus.entries()) {
  Deno.test(`launch text and element form build the same pipeline: ${entry.label}`, async () => {
    const fromText = `launch-${index}-text`;
    const fromElements = `launch-${index}-elements`;
    const again = `launch-${index}-again`;
    await create(fromText, entry.line);
    await create(fromElements, { elements: entry.elements, links: entry.links });
    const text = await details(fromText);
    const elements = await details(fromElements);
    assert.deepStrictEqual(layout(text), layout(elements));
    assert.deepStrictEqual(text.links, entry.links);
    assert.ok(text.elements.every((e: { state: string }) => e.state === "NULL"));

    // getPipeline's launch text, created again, gives the same layout.
    assert.equal(typeof text.launch, "string");
    await create(again, text.launch);
    assert.deepStrictEqual(layout(await details(again)), layout(text), text.launch);

    for (const id of [fromText, fromElements, again]) await runToEos(id);
    await remove(fromText, fromElements, again);
  });
}

Deno.test("the launch text of an element-form pipeline builds the same pipeline", async () => {
  const original = freshId("round-trip");
  const copy = freshId("round-trip-copy");
  await create(original, {
    elements: [
      { type: "videotestsrc", name: "cam_1", properties: { "is-live": true } },
      { type: "tee", name: "split" },
      { type: "queue", name: "qa", properties: { "max-size-buffers": 3, leaky: "downstream" } },
      { type: "fakesink", name: "preview", properties: { sync: true } },
      { type: "queue", name: "qb" },
      { type: "x264enc", name: "enc", properties: { "speed-preset": "ultrafast", tune: 4 } },
      { type: "mpegtsmux", name: "mux" },
      { type: "fakesink", name: "out" },
    ],
    links: [
      { from: "cam_1", to: "split", caps: "video/x-raw, width=(int)160, height=(int)120" },
      { from: "split.src_0", to: "qa" },
      { from: "qa", to: "preview" },
      { from: "split.src_1", to: "qb" },
      { from: "qb", to: "enc" },
      { from: "enc", to: "mux.sink_100" },
      { from: "mux", to: "out" },
    ],
  });
  const info = await details(original);
  assert.equal(typeof info.launch, "string");
  await create(copy, info.launch);
  const copied = await details(copy);
  assert.deepStrictEqual(layout(copied), layout(info), info.launch);
  assert.equal(copied.launch, info.launch, "the text is stable");
  expectOk(await client.request("startPipeline", { id: copy }));
  await waitForSinks(copy, ["preview", "out"]);
  await remove(original, copy);
});

Deno.test("a pipeline that launch syntax cannot write has launch null, and still runs", async () => {
  const id = freshId("no-launch");
  // A '.' in a name would read as a pad reference in launch text.
  await create(id, {
    elements: [
      { type: "videotestsrc", name: "cam.1", properties: { "num-buffers": 5 } },
      { type: "fakesink", name: "out" },
    ],
    links: [{ from: "cam.1", to: "out" }],
  });
  const info = await details(id);
  assert.equal(info.launch, null);
  assert.deepEqual(info.links, [{ from: "cam.1", to: "out" }]);
  await runToEos(id);
  await remove(id);
});

Deno.test("launch text that does not parse is INVALID_REQUEST with the offset and what was expected", async () => {
  const cases: { line: string; offset: number; expected: RegExp }[] = [
    { line: "videotestsrc ! ! fakesink", offset: 15, expected: /element/ },
    { line: "videotestsrc !", offset: 14, expected: /element/ },
    { line: 'videotestsrc ! capsfilter caps="video/x-raw ! fakesink', offset: 31, expected: /"/ },
    { line: "videotestsrc ! queue ! ( fakesink )", offset: 23, expected: /./ },
    { line: "videotestsrc pattern= ! fakesink", offset: 22, expected: /value/ },
  ];
  for (const { line, offset, expected } of cases) {
    const error = expectError(
      await client.request("createPipeline", { id: freshId("parse"), pipeline: line }),
      "INVALID_REQUEST",
    );
    assert.equal(error.details?.path, "payload.pipeline", line);
    assert.equal(error.details?.offset, offset, `${line}: ${error.message}`);
    assert.equal(typeof error.details?.expected, "string", line);
    assert.match(String(error.details?.expected), expected, `${line}: ${error.message}`);
    assert.match(error.message, new RegExp(`character ${offset}\\b`), line);
  }
});

Deno.test("launch text with a reference to no element is INVALID_REQUEST", async () => {
  const error = expectError(
    await client.request("createPipeline", {
      id: freshId("parse"),
      pipeline: "videotestsrc ! tee name=t nosuch. ! queue ! fakesink",
    }),
    "INVALID_REQUEST",
  );
  assert.equal(error.details?.path, "payload.pipeline");
  assert.equal(typeof error.details?.offset, "number");
  assert.match(error.message, /nosuch/);
});

Deno.test("launch text with an unknown element is UNKNOWN_ELEMENT with suggestions", async () => {
  const error = expectError(
    await client.request("createPipeline", {
      id: freshId("unknown"),
      pipeline: "videotestsrc ! videoconvrt ! fakesink",
    }),
    "UNKNOWN_ELEMENT",
  );
  assert.equal(error.details?.type, "videoconvrt");
  assert.ok((error.details?.suggestions as string[]).includes("videoconvert"));
});
