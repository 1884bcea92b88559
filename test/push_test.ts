/**
 * `POST /push/{name}` with real clients: ffmpeg pushes over HTTP (a chunked POST), ffprobe
 * reads the stream back over RTSP, and fetch() sends what ffmpeg cannot (a reply to read,
 * garbage, an aborted body).
 */
import assert from "node:assert/strict";
import { expectOk, type Reply, type ServerEvent, startServer, TestClient } from "./helpers.ts";
import { RtspConn } from "./rtsp_client.ts";

/** Every child process is killed after this long, so a hang fails the test instead of blocking it. */
const CHILD_TIMEOUT_MS = 30_000;
/** Tests of known server bugs are skipped unless PUSH_TEST_KNOWN_BUGS=1; drop the flag once fixed. */
const knownBugs = Deno.env.get("PUSH_TEST_KNOWN_BUGS") === "1";
/** Frames between key frames in every clip. */
const GOP = 15;

// ---------------------------------------------------------------------------------------------
// Children with a timeout

interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

interface Child {
  process: Deno.ChildProcess;
  finished: Promise<Finished>;
}

/** Children still running; a failed test leaves some, which the next test must not meet. */
const running = new Set<Deno.ChildProcess>();

function spawn(
  command: string,
  args: string[],
  options: { stdin?: boolean; timeoutMs?: number } = {},
): Child {
  const process = new Deno.Command(command, {
    args,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  running.add(process);
  const timer = setTimeout(() => {
    try {
      process.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? CHILD_TIMEOUT_MS);
  const finished = Promise.all([
    process.status,
    new Response(process.stdout).text(),
    new Response(process.stderr).text(),
  ]).then(([status, stdout, stderr]) => {
    clearTimeout(timer);
    running.delete(process);
    const killed = status.signal ? `\n(${command} ended by ${status.signal})` : "";
    return { code: status.code, stdout, stderr: stderr + killed };
  });
  return { process, finished };
}

async function exec(command: string, args: string[]): Promise<Finished> {
  const result = await spawn(command, args).finished;
  assert.equal(result.code, 0, `${command} ${args.join(" ")}\n${result.stderr}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Test media, made once for the file

const dir = await Deno.makeTempDir({ prefix: "push_test_" });
const media = {
  /** 5 s of H.264 at 30 frame/s, a key frame every 15 frames, no B-frames. */
  long: `${dir}/long.h264`,
  /** The same, 2 s. */
  short: `${dir}/short.h264`,
  /** 3 s of MPEG-TS: H.264 video and AAC audio. */
  ts: `${dir}/clip.ts`,
  /** 3 s of H.265. */
  h265: `${dir}/clip.h265`,
};
const testsrc = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"];
const x264 = ["-c:v", "libx264", "-g", String(GOP), "-bf", "0", "-pix_fmt", "yuv420p"];
await Promise.all([
  exec("ffmpeg", ["-v", "error", "-y", ...testsrc, "-t", "5", ...x264, "-f", "h264", media.long]),
  exec("ffmpeg", ["-v", "error", "-y", ...testsrc, "-t", "2", ...x264, "-f", "h264", media.short]),
  exec("ffmpeg", [
    ...["-v", "error", "-y", ...testsrc],
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", ...x264],
    ...["-c:a", "aac", "-f", "mpegts", media.ts],
  ]),
  exec("ffmpeg", [
    ...["-v", "error", "-y", ...testsrc, "-t", "3", "-c:v", "libx265", "-pix_fmt", "yuv420p"],
    ...["-x265-params", `log-level=error:keyint=${GOP}:min-keyint=${GOP}:bframes=0`],
    ...["-f", "hevc", media.h265],
  ]),
]);

/** Byte offsets where each access unit (frame with its parameter sets) of an H.264 byte stream starts. */
function accessUnits(bytes: Uint8Array): { offset: number; key: boolean }[] {
  const units: { offset: number; key: boolean }[] = [];
  let pending: number | null = null; // first non-slice NAL unit since the last slice
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] !== 0 || bytes[i + 1] !== 0 || bytes[i + 2] !== 1) continue;
    const start = i > 0 && bytes[i - 1] === 0 ? i - 1 : i;
    const type = bytes[i + 3] & 0x1f;
    if (type === 1 || type === 5) {
      units.push({ offset: pending ?? start, key: type === 5 });
      pending = null;
    } else {
      pending ??= start;
    }
    i += 2;
  }
  return units;
}

const longBytes = await Deno.readFile(media.long);
const longUnits = accessUnits(longBytes);

/** Frames in a file as ffprobe decodes them. */
async function framesIn(path: string): Promise<number> {
  const { stdout } = await exec("ffprobe", [
    ...["-v", "error", "-select_streams", "v:0", "-count_frames"],
    ...["-show_entries", "stream=nb_read_frames", "-of", "json", path],
  ]);
  return Number(JSON.parse(stdout).streams[0].nb_read_frames);
}

// The splitter and the decoder agree on the clip, and it is what the tests assume.
assert.equal(longUnits.length, await framesIn(media.long));
assert.equal(longUnits.length, 150);
assert.deepEqual(
  longUnits.flatMap((unit, index) => unit.key ? [index] : []),
  Array.from({ length: 10 }, (_, k) => k * GOP),
);

// ---------------------------------------------------------------------------------------------
// The server and the WebSocket client, one for the file

// Stats every 250 ms rather than every second: the tests wait on stats broadcasts.
const server = await startServer({ GSTREAMER_STATS_INTERVAL_MS: "250" });
const client = await TestClient.connect(server.url);

Deno.test.afterEach(() => {
  for (const process of running) {
    try {
      process.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, server.logs.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

const pushUrl = (name: string) => `${server.httpUrl}/push/${name}`;
const rtspUrl = (name: string) => `${server.rtspUrl}/${name}`;
const logs = () => `\n--- server log ---\n${server.logs.join("\n")}`;

type Format = "h264" | "ts" | "h265";
/** ffmpeg's output options for each pushed format (raw H.264 goes with no Content-Type, as ffmpeg 5.1 sends it: recognised from its bytes). */
const outputOptions: Record<Format, string[]> = {
  h264: ["-c", "copy", "-f", "h264"],
  ts: ["-c", "copy", "-content_type", "video/mp2t", "-f", "mpegts"],
  h265: ["-c", "copy", "-content_type", "video/h265", "-f", "hevc"],
};

/** ffmpeg pushing a file at its own frame rate (-re) to `url`. */
function pushFile(path: string, url: string, format: Format = "h264"): Child {
  const input = ["-v", "error", "-nostdin", "-re", "-i", path];
  return spawn("ffmpeg", [...input, ...outputOptions[format], url]);
}

/**
 * ffmpeg pushing raw H.264 that the test writes to its stdin. It opens the POST once it has
 * probed one whole frame (-probesize 32 -analyzeduration 0 keep it from wanting more).
 */
function pushStdin(url: string): Child & { stdin: WritableStreamDefaultWriter<Uint8Array> } {
  const child = spawn("ffmpeg", [
    ...["-v", "error", "-re", "-probesize", "32", "-analyzeduration", "0"],
    ...["-f", "h264", "-i", "pipe:0", ...outputOptions.h264, url],
  ], { stdin: true });
  return { ...child, stdin: child.process.stdin.getWriter() };
}

interface ProbedStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  r_frame_rate: string;
  nb_read_frames: number;
}

/** ffprobe reading an RTSP path to its end, decoding and counting every frame. */
function read(name: string, transport: "tcp" | "udp" = "tcp"): Child {
  return spawn("ffprobe", [
    ...["-v", "error", "-rtsp_transport", transport, "-count_frames"],
    ...["-show_entries", "stream=codec_type,codec_name,width,height,r_frame_rate,nb_read_frames"],
    ...["-of", "json", rtspUrl(name)],
  ]);
}

/**
 * ffprobe reading an MPEG-TS push: the stats cannot tell when its parser has given its first
 * packets, so a DESCRIBE answered 400 before then is tried again at the next stats broadcast.
 */
async function readTs(name: string): Promise<ProbedStream[]> {
  for (let attempt = 1;; attempt++) {
    const result = await read(name).finished;
    if (result.code === 0 || attempt === 5 || !/400 Bad Request/.test(result.stderr)) {
      return parseStreams(result);
    }
    await pushStats(name);
  }
}

function parseStreams(result: Finished): ProbedStream[] {
  assert.equal(result.code, 0, `ffprobe failed: ${result.stderr}${logs()}`);
  const streams = JSON.parse(result.stdout).streams as ProbedStream[];
  return streams.map((stream) => ({ ...stream, nb_read_frames: Number(stream.nb_read_frames) }));
}

function videoOf(result: Finished): ProbedStream {
  const video = parseStreams(result).find((stream) => stream.codec_type === "video");
  assert.ok(video, "ffprobe found no video stream");
  return video;
}

async function videoRead(reader: Child): Promise<ProbedStream> {
  return videoOf(await reader.finished);
}

async function assertSent(sender: Child): Promise<void> {
  const result = await sender.finished;
  assert.equal(result.code, 0, `ffmpeg failed: ${result.stderr}${logs()}`);
}

// deno-lint-ignore no-explicit-any
type Stats = any;
const pushStats = (name: string, predicate: (entry: Stats) => boolean = () => true) =>
  client.nextStats((entry) => entry.id === name && entry.kind === "push" && predicate(entry));

/** Resolves when `name` reaches PLAYING; call it before the push starts (names come back). */
function playing(name: string): Promise<ServerEvent> {
  return client.waitForNext<ServerEvent>(
    (m) =>
      m.type === "pipelineStateChanged" && (m as ServerEvent).payload.id === name &&
      (m as ServerEvent).payload.new === "PLAYING",
    15000,
    `pipelineStateChanged ${name} -> PLAYING`,
  );
}

/** Where the events of a push begin (names are used again, so older events must not match). */
const mark = () => client.received.length;

/** An event of one of `types` for `name`, received after `since` (already or to come). */
function eventSince(since: number, types: string[], name: string): Promise<ServerEvent> {
  const matches = (m: ServerEvent | Reply) =>
    types.includes(m.type) && (m as ServerEvent).payload?.id === name;
  const found = client.received.slice(since).find(matches);
  if (found) return Promise.resolve(found as ServerEvent);
  return client.waitForNext<ServerEvent>(matches, 15000, `${types.join(" or ")} for ${name}`);
}

/** The end of the push `name`: pipelineEos or pipelineDeleted, whichever comes first. */
const ended = (since: number, name: string) =>
  eventSince(since, ["pipelineEos", "pipelineDeleted"], name);
const deleted = (since: number, name: string) => eventSince(since, ["pipelineDeleted"], name);

/**
 * Resolves once the parser of the push `name` has given its first output: raw video counts
 * frames; MPEG-TS (frames null) shows bytes in, and its reader retries (see `readTs`). Before
 * that the server answers DESCRIBE with 400 Bad Request (a server bug: it should wait or 503).
 */
const servable = (name: string) =>
  pushStats(name, (entry) => entry.frames === null ? entry.bytesIn > 0 : entry.frames > 0);

/** A sender that goes away ends the stream; it is not a stream error. */
function assertNoError(since: number, name: string): void {
  const errors = client.received.slice(since).filter((m) =>
    m.type === "pipelineError" && (m as ServerEvent).payload.id === name
  );
  assert.deepEqual(errors, [], `pipelineError for ${name}`);
}

async function pipelineIds(): Promise<string[]> {
  const reply = await client.request("getPipelines");
  assert.equal(reply.ok, true, JSON.stringify(reply.error));
  return reply.payload.pipelines.map((pipeline: { id: string }) => pipeline.id);
}

/** A TCP proxy for one connection that copies bytes unchanged, passes the sender's half-close on, and keeps the server's reply, which ffmpeg never reads. */
function replyProxy(): { url: (name: string) => string; reply: Promise<HttpReply> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const target = new URL(server.httpUrl);
  const reply = (async () => {
    const sender = await listener.accept();
    listener.close();
    const upstream = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
    try {
      const upload = sender.readable
        .pipeTo(upstream.writable, { preventClose: true, preventAbort: true })
        .catch(() => {}) // a reset sender still ends the body
        .then(() => upstream.closeWrite())
        .catch(() => {});
      const answer = await readHttpReply(upstream.readable);
      await upload;
      return answer;
    } finally {
      for (const conn of [upstream, sender]) {
        try {
          conn.close();
        } catch {
          // already closed with its stream
        }
      }
    }
  })();
  reply.catch(() => {}); // awaited by the test; a failure must not surface before that
  const { port } = listener.addr as Deno.NetAddr;
  return { url: (name) => `http://127.0.0.1:${port}/push/${name}`, reply };
}

interface HttpReply {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** Reads one HTTP/1.1 response with a Content-Length from a byte stream. */
async function readHttpReply(stream: ReadableStream<Uint8Array>): Promise<HttpReply> {
  const reader = stream.getReader();
  let text = "";
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const headEnd = text.indexOf("\r\n\r\n");
      if (headEnd >= 0) {
        const head = text.slice(0, headEnd);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1]);
        const body = text.slice(headEnd + 4);
        if (body.length >= length) {
          return { status: Number(head.split(" ")[1]), body: JSON.parse(body.slice(0, length)) };
        }
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`The server closed before a whole reply: ${JSON.stringify(text)}`);
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

function assertPushReply(body: unknown, name: string, bytes: number, frames: number): void {
  const reply = body as { durationMs: unknown };
  assert.equal(typeof reply.durationMs, "number", JSON.stringify(body));
  // Timed from before its pipeline starts: a push that carried frames lasted at least that start.
  assert.ok((reply.durationMs as number) > 0, JSON.stringify(body));
  // What the server saw of the stream: the clips are 320x240 H.264 at 30 frame/s.
  const detected = { format: "H.264", codec: "H.264", width: 320, height: 240, framerate: "30/1" };
  assert.deepEqual(body, { name, bytes, frames, durationMs: reply.durationMs, detected });
}

/**
 * Pushes raw H.264 with ffmpeg while `readers` ffprobe read it, every reader being connected
 * before the measured frames are written to ffmpeg's stdin.
 *
 * Why not connect the readers before the very first frame: ffmpeg opens its POST only once it
 * has probed a whole frame and the start of the next (with -nofind_stream_info it opens the
 * POST at once but then fails with "dimensions not set"), the server cannot describe the RTSP
 * path before a frame has left its parser (DESCRIBE gets 400 Bad Request until then), and a
 * first DESCRIBE does not finish while no data flows (it waits for packets). So the clip starts
 * with a lead-in, fed GOP
 * by GOP so that data keeps flowing at 30 frame/s while the readers connect; the rest, which
 * begins with a key frame, is written only after the push is PLAYING and a stats broadcast
 * counts every reader as an RTSP client. What is measured is every frame from the first key
 * frame that left the server after that broadcast (with two frames to spare): a reader joining
 * mid-GOP cannot decode before a key frame.
 */
async function pushWhileReading(
  name: string,
  readers: number,
  reader: () => Child,
  query = "",
): Promise<{ sender: Child; results: Finished[]; measured: number; since: number }> {
  const since = mark();
  const started = playing(name);
  const sender = pushStdin(pushUrl(name) + query);
  const gop = (from: number, to: number) =>
    longBytes.subarray(longUnits[from].offset, longUnits[to]?.offset ?? longBytes.length);
  let written = 2 * GOP;
  let reading: Child[] = [];
  let connectedAt: number; // frames that had left the server when every reader was connected
  await sender.stdin.write(gop(0, written));
  await started;
  for (;;) {
    const stats = await pushStats(name);
    const entry = stats.payload.pipelines.find((pipeline: Stats) => pipeline.id === name);
    if (reading.length > 0 && entry.rtspClients === readers) {
      connectedAt = entry.frames;
      break;
    }
    if (reading.length === 0 && entry.frames > 0) {
      reading = Array.from({ length: readers }, reader);
    }
    // Keep more than a GOP queued ahead of what the server has parsed.
    if (entry.frames >= written - GOP - 5) {
      assert.ok(
        written + 2 * GOP <= longUnits.length,
        `the readers were not connected after ${written} frames: ${JSON.stringify(entry)}`,
      );
      await sender.stdin.write(gop(written, written + GOP));
      written += GOP;
    }
  }
  await sender.stdin.write(gop(written, longUnits.length));
  await sender.stdin.close();
  const results = await Promise.all(reading.map((child) => child.finished));
  const firstKey = Math.ceil((connectedAt + 2) / GOP) * GOP;
  return { sender, results, measured: longUnits.length - firstKey, since };
}

function assertMostFrames(stream: ProbedStream, measured: number): void {
  assert.ok(
    stream.nb_read_frames >= Math.ceil(0.98 * measured),
    `read ${stream.nb_read_frames} of the ${measured} frames sent after the reader connected`,
  );
  assert.ok(stream.nb_read_frames <= longUnits.length, `read ${stream.nb_read_frames} frames`);
}

/**
 * ffprobe's frame rate guess, from the timestamps of the first frames it reads, is 30/1 most of
 * the time but sometimes 359/12, 179/6 or 30000/1001: the server passes the sender's jitter on
 * (see the known-bug spacing test). Within 1% of 30 until that is fixed; then assert "30/1".
 */
function assertFrameRate(stream: ProbedStream): void {
  const [num, den] = stream.r_frame_rate.split("/").map(Number);
  assert.ok(Math.abs(num / den - 30) <= 0.3, `r_frame_rate ${stream.r_frame_rate}`);
}

function assertClip(stream: ProbedStream, codec = "h264"): void {
  assert.equal(stream.codec_name, codec);
  assert.equal(stream.width, 320);
  assert.equal(stream.height, 240);
}

/**
 * Pushes the short clip with ffmpeg to `path` (of the HTTP server), reads it back from the
 * RTSP path `name` with ffprobe, and runs `during` while the push is PLAYING.
 */
async function pushAndRead(
  path: string,
  name: string,
  during: () => Promise<void> = async () => {},
): Promise<ProbedStream> {
  const since = mark();
  const started = playing(name);
  const sender = pushFile(media.short, `${server.httpUrl}${path}`);
  await started;
  await during();
  await servable(name);
  const stream = await videoRead(read(name));
  await assertSent(sender);
  assertClip(stream);
  assert.ok(stream.nb_read_frames > 0, "the reader decoded no frame");
  await deleted(since, name);
  return stream;
}

/** After a fault: a new push to `name` is served (ffprobe decodes it) and then goes away. */
async function assertServesNewPush(name: string): Promise<void> {
  await pushAndRead(`/push/${name}`, name);
  assert.ok(!(await pipelineIds()).includes(name), `'${name}' is still listed after its push`);
}

async function post(
  path: string,
  body: BodyInit,
  contentType = "video/h264",
): Promise<{ status: number; body: { error?: Reply["error"] } & Record<string, unknown> }> {
  const response = await fetch(`${server.httpUrl}${path}`, {
    method: "POST",
    headers: { "content-type": contentType },
    body,
  });
  return { status: response.status, body: await response.json() };
}

/** A body that gives `bytes` in chunks, the way a streaming sender does (fetch sends it chunked). */
function chunked(bytes: Uint8Array, size = 4096): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Tests

for (const transport of ["tcp", "udp"] as const) {
  Deno.test(`a raw H.264 push paced by ffmpeg is read over RTSP/${transport.toUpperCase()} with its frames`, async () => {
    const name = `paced-${transport}`;
    const { sender, results, measured, since } = await pushWhileReading(
      name,
      1,
      () => read(name, transport),
    );
    await assertSent(sender);
    const stream = videoOf(results[0]);
    assertClip(stream);
    assertFrameRate(stream);
    assertMostFrames(stream, measured);
    await deleted(since, name);
  });
}

Deno.test({
  name: "a push with ?framerate=30/1 keeps its frames 1/30 s apart over RTSP",
  // KNOWN LIMIT: each chunk is stamped with its arrival time, so frames carry the sender's jitter
  // (ffmpeg -re sends in 10 ms steps: gaps of 30.5, 30.5, 40.8 ms); h264parse in 1.22 does not
  // time frames from a stated rate when the input has no timestamps (it stamps them all 0).
  ignore: !knownBugs,
  fn: async () => {
    const { sender, results: [result], since } = await pushWhileReading(
      "spacing",
      1,
      () =>
        spawn("ffprobe", [
          ...["-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0"],
          ...["-show_entries", "packet=pts_time", "-of", "json", rtspUrl("spacing")],
        ]),
      "?framerate=30/1",
    );
    await assertSent(sender);
    assert.equal(result.code, 0, result.stderr);
    const times = (JSON.parse(result.stdout).packets as { pts_time?: string }[])
      .map((packet) => Number(packet.pts_time)).filter((time) => time > 0);
    const gaps = times.slice(1).map((time, index) => Math.round((time - times[index]) * 1e4) / 10);
    assert.ok(gaps.length >= 100, `${gaps.length} gaps`);
    const uneven = gaps.filter((gap) => Math.abs(gap - 1000 / 30) > 2);
    assert.deepEqual(uneven, [], `gaps (ms) off 33.3 by more than 2 ms, of ${gaps.length}`);
    await deleted(since, "spacing");
  },
});

Deno.test("the reply to a chunked push counts every byte and frame", async () => {
  // ffmpeg does not read the reply; fetch with a stream body sends chunked and reads it.
  const reply = await post("/push/fetched", chunked(longBytes));
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assertPushReply(reply.body, "fetched", longBytes.length, longUnits.length);
});

Deno.test({
  name: "an unpaced ffmpeg push, which half-closes after its last chunk, gets its full reply",
  // KNOWN LIMIT (Deno 2.9.6 node:http): a sender that half-closes after its final 0-chunk is
  // reported as aborted and its socket closed, so the reply is lost. The server takes every byte
  // (see the test below); ffmpeg never reads the reply anyway.
  ignore: !knownBugs,
  fn: async () => {
    for (const attempt of [1, 2, 3]) {
      const name = `unpaced-${attempt}`;
      const proxy = replyProxy(); // copies bytes and the half-close; keeps the reply
      const sender = spawn("ffmpeg", [
        ...["-v", "error", "-nostdin", "-f", "h264", "-i", media.long],
        ...outputOptions.h264,
        proxy.url(name),
      ]);
      await assertSent(sender);
      const reply = await proxy.reply;
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assertPushReply(reply.body, name, longBytes.length, longUnits.length);
    }
  },
});

Deno.test("an unpaced ffmpeg push, which half-closes after its last chunk, loses no byte", async () => {
  const name = "unpaced";
  const sender = spawn("ffmpeg", [
    ...["-v", "error", "-nostdin", "-f", "h264", "-i", media.long],
    ...outputOptions.h264,
    pushUrl(name),
  ]);
  await assertSent(sender);
  // The reply cannot reach ffmpeg (see above); the server logs what it took when the push ends.
  const line = await server.waitForLog(`Push '${name}' ended`);
  assert.match(
    line,
    new RegExp(`\\(eos\\): ${longBytes.length} bytes, ${longUnits.length} frames`),
  );
});

Deno.test("an MPEG-TS push with AAC audio is read over RTSP with its video and audio", async () => {
  const since = mark();
  const started = playing("ts");
  const sender = pushFile(media.ts, pushUrl("ts"), "ts");
  await started;
  await servable("ts");
  const streams = await readTs("ts");
  await assertSent(sender);
  const video = streams.find((stream) => stream.codec_type === "video");
  const audio = streams.find((stream) => stream.codec_type === "audio");
  assert.equal(video?.codec_name, "h264", JSON.stringify(streams));
  assert.equal(audio?.codec_name, "aac", JSON.stringify(streams));
  assert.ok(video.nb_read_frames > 0 && audio.nb_read_frames > 0, JSON.stringify(streams));
  await deleted(since, "ts");
});

Deno.test("an H.265 push is read over RTSP as HEVC", async () => {
  const since = mark();
  const started = playing("hevc");
  const sender = pushFile(media.h265, pushUrl("hevc"), "h265");
  await started;
  await servable("hevc");
  const stream = await videoRead(read("hevc"));
  await assertSent(sender);
  assertClip(stream, "hevc");
  assert.ok(stream.nb_read_frames > 0, JSON.stringify(stream));
  await deleted(since, "hevc");
});

Deno.test("ten RTSP clients read one push at once", async () => {
  // pushWhileReading waits for a stats broadcast with rtspClients 10 before the measured part.
  const { sender, results, measured, since } = await pushWhileReading("ten", 10, () => read("ten"));
  await assertSent(sender);
  assert.equal(results.length, 10);
  for (const stream of results.map(videoOf)) {
    assertClip(stream);
    assertMostFrames(stream, measured);
  }
  await deleted(since, "ten");
});

Deno.test({
  name: "a push whose sender idles does not hold up the RTSP clients of another push",
  // A DESCRIBE of a path that gets no packets waits for them; RTSP clients have threads of their
  // own, so meanwhile the other paths answer.
  fn: async () => {
    let sending!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        sending = controller;
        controller.enqueue(longBytes.slice(0, longUnits[3].offset)); // three frames, then nothing
      },
    });
    const started = playing("idle");
    const idle = fetch(pushUrl("idle"), {
      method: "POST",
      headers: { "content-type": "video/h264" },
      body,
    });
    idle.catch(() => {}); // settled below; a failure before then must not surface on its own
    await started;
    await servable("idle");
    // Sent before the other push starts, so the server has it before any of that push's clients.
    const waiting = await RtspConn.open(server.rtspUrl);
    await waiting.send("DESCRIBE", rtspUrl("idle"), { Accept: "application/sdp" });
    const answered = waiting.drain(); // counts what the server sends it
    await pushAndRead("/push/other", "other");
    assert.equal(waiting.drained, 0, "the idle path's DESCRIBE was answered");
    sending.close();
    assert.equal((await idle).status, 200);
    waiting.close();
    await answered;
  },
});

Deno.test("a client that joins after several key frames decodes the rest", async () => {
  const since = mark();
  const started = playing("late");
  const sender = pushFile(media.long, pushUrl("late"));
  await started;
  const passed = 4 * GOP; // four key frames have left the server
  await pushStats("late", (entry) => entry.frames >= passed);
  const stream = await videoRead(read("late"));
  await assertSent(sender);
  assertClip(stream);
  assert.ok(stream.nb_read_frames > 0, "the late reader decoded no frame");
  assert.ok(
    stream.nb_read_frames <= longUnits.length - passed,
    `the late reader read ${stream.nb_read_frames} frames, more than were left`,
  );
  await deleted(since, "late");
});

Deno.test("a sender killed mid-stream ends the push cleanly and frees the name", async () => {
  const since = mark();
  const started = playing("killed");
  const sender = pushFile(media.long, pushUrl("killed"));
  await started;
  await servable("killed");
  const reader = read("killed");
  await pushStats("killed", (entry) => entry.rtspClients >= 1 && entry.frames >= 2 * GOP);
  sender.process.kill("SIGKILL");
  assert.notEqual((await sender.finished).code, 0);
  await ended(since, "killed");
  await deleted(since, "killed");
  // The reader is told the stream ended and stops by itself with what it got.
  const stream = await videoRead(reader);
  assert.ok(stream.nb_read_frames > 0, JSON.stringify(stream));
  assert.ok(!(await pipelineIds()).includes("killed"));
  assertNoError(since, "killed");
  await assertServesNewPush("killed");
});

Deno.test("a fetch body aborted mid-stream ends the push cleanly and frees the name", async () => {
  const abort = new AbortController();
  const half = longBytes.subarray(0, longUnits[75].offset);
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(half.slice()); // and never closes: the sender is still "sending"
    },
  });
  const since = mark();
  const started = playing("aborted");
  const response = fetch(pushUrl("aborted"), {
    method: "POST",
    headers: { "content-type": "video/h264" },
    body,
    signal: abort.signal,
  });
  await started;
  await pushStats("aborted", (entry) => entry.frames > 0);
  abort.abort();
  await assert.rejects(response);
  await ended(since, "aborted");
  await deleted(since, "aborted");
  assert.ok(!(await pipelineIds()).includes("aborted"));
  assertNoError(since, "aborted");
  await assertServesNewPush("aborted");
});

/** The server's open sockets (entries of /proc/PID/fd that are sockets). */
async function serverSockets(): Promise<number> {
  let sockets = 0;
  for await (const entry of Deno.readDir(`/proc/${server.pid}/fd`)) {
    const target = await Deno.readLink(`/proc/${server.pid}/fd/${entry.name}`).catch(() => "");
    if (target.startsWith("socket:")) sockets++;
  }
  return sockets;
}

/** A body that repeats the long clip in 64 KiB chunks, a millisecond apart, and never ends. */
function endlessClip(): ReadableStream<Uint8Array> {
  const chunkBytes = 64 * 1024;
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const end = Math.min(at + chunkBytes, longBytes.length);
      controller.enqueue(longBytes.slice(at, end));
      at = end === longBytes.length ? 0 : end;
    },
  });
}

// Before the close lingered, about one in eight of these fetches failed with "Broken pipe" or
// "Connection reset by peer" and no status: the server destroyed the socket right after the
// reply while the body still came, and TCP's reset made the client drop the reply.
Deno.test("pushes deleted mid-body get their 410 every time, and their connections close", async () => {
  const pushes = 48;
  const atOnce = 8;
  const socketsBefore = await serverSockets();
  const outcomes = new Map<string, number>();
  const deleteMidBody = async (name: string) => {
    const started = playing(name);
    const replied = fetch(pushUrl(name), {
      method: "POST",
      headers: { "content-type": "video/h264" },
      body: endlessClip(),
    }).then(
      async (response) => `${response.status} ${(await response.json()).error?.code}`,
      (error) => `no reply: ${error} (${error.cause})`,
    );
    await started;
    expectOk(await client.request("deletePipeline", { id: name }));
    const outcome = await replied;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  };
  for (let first = 0; first < pushes; first += atOnce) {
    await Promise.all(
      Array.from({ length: atOnce }, (_, k) => deleteMidBody(`deleted-mid-body-${first + k}`)),
    );
  }
  assert.deepEqual(Object.fromEntries(outcomes), { "410 STREAM_ENDED": pushes });
  // Each refused connection lingers, then closes: none stays open.
  const deadline = performance.now() + 15_000;
  while ((await serverSockets()) > socketsBefore && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(await serverSockets(), socketsBefore, "server sockets after the refused pushes");
});

/**
 * A raw sender of an endless chunked push to `name` that keeps sending after the reply. `refuse`
 * runs once the request is out (it makes the server answer). Returns the reply, read whole up to
 * the server's FIN, once a write has failed: how the server cut it off, and how many writes went
 * through after the reply was read.
 */
async function sendPastTheReply(name: string, refuse: () => Promise<void>) {
  const url = new URL(pushUrl(name));
  const connection = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const encoder = new TextEncoder();
  const chunk = (bytes: Uint8Array) =>
    new Uint8Array([...encoder.encode(`${bytes.length.toString(16)}\r\n`), ...bytes, 13, 10]);
  await connection.write(encoder.encode(
    `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: video/h264\r\n` +
      "Transfer-Encoding: chunked\r\n\r\n",
  ));
  const piece = chunk(longBytes.subarray(0, 16 * 1024));
  let replyRead = false;
  let writesAfterReply = 0;
  const sending = (async () => {
    await connection.write(chunk(longBytes));
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await connection.write(piece);
      if (replyRead) writesAfterReply++;
    }
  })().catch((error) => error as Error);
  // A server that never ends the exchange fails the test rather than hang it.
  let gaveUp = false;
  const deadline = setTimeout(() => {
    gaveUp = true;
    connection.close();
  }, 15_000);
  try {
    await refuse();
    // The reply whole, then the end of what the server sends (its FIN), while the body still goes.
    const received: number[] = [];
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await connection.read(buffer).catch(() => null);
      if (n === null) break;
      received.push(...buffer.subarray(0, n));
    }
    assert.ok(!gaveUp, "the server did not end the exchange within 15 s");
    replyRead = true;
    const reply = new TextDecoder().decode(new Uint8Array(received));
    return { reply, cutOff: await sending, writesAfterReply: () => writesAfterReply };
  } finally {
    clearTimeout(deadline);
    if (!gaveUp) connection.close();
  }
}

/** The reply ends the exchange; the body is read and dropped a while, then the sender is cut off. */
function assertCutOffAfter(
  { reply, cutOff, writesAfterReply }: Awaited<ReturnType<typeof sendPastTheReply>>,
  status: number,
  code: string,
): void {
  assert.match(reply, new RegExp(`^HTTP/1\\.1 ${status} `));
  assert.match(reply, /\r\nconnection: close\r\n/i);
  assert.equal(JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4)).error.code, code);
  // The server does not take the body forever: within its linger time a write fails.
  assert.ok(cutOff instanceof Error, String(cutOff));
  assert.match(cutOff.name, /ConnectionReset|BrokenPipe/, String(cutOff));
  // It was read and dropped meanwhile (a few hundred writes here; one before the close lingered,
  // when the first write after the reply met a reset).
  console.log(`writes that went through after the ${status}: ${writesAfterReply()}`);
  assert.ok(writesAfterReply() >= 10, `${writesAfterReply()} writes went through after the reply`);
}

Deno.test("a sender that goes on sending after its push's 410 reads the reply and an end, and is cut off", async () => {
  const started = playing("keeps-sending");
  const sent = await sendPastTheReply("keeps-sending", async () => {
    await started;
    expectOk(await client.request("deletePipeline", { id: "keeps-sending" }));
  });
  assertCutOffAfter(sent, 410, "STREAM_ENDED");
});

// Before, a refusal made before the body was read left the connection open: the server read and
// dropped an endless body for as long as it came.
Deno.test("a sender refused before its body is read (409, name in use) is cut off too", async () => {
  expectOk(
    await client.request("createPipeline", { id: "held-name", pipeline: "fakesrc ! fakesink" }),
  );
  try {
    const sent = await sendPastTheReply("held-name", () => Promise.resolve());
    assertCutOffAfter(sent, 409, "STREAM_IN_USE");
  } finally {
    expectOk(await client.request("deletePipeline", { id: "held-name" }));
  }
});

Deno.test("garbage posted as H.264 is refused with 422 before any pipeline is made", async () => {
  const garbage = new Uint8Array(1024 * 1024);
  for (let offset = 0; offset < garbage.length; offset += 65536) {
    crypto.getRandomValues(garbage.subarray(offset, offset + 65536));
  }
  const created = server.logs.length;
  const reply = await post("/push/garbage", garbage);
  assert.equal(reply.status, 422, JSON.stringify(reply.body));
  assert.equal(reply.body.error?.code, "UNRECOGNISED_STREAM", JSON.stringify(reply.body));
  assert.match(reply.body.error?.message ?? "", /The body is not H\.264/);
  assert.ok(!(await pipelineIds()).includes("garbage"));
  await server.waitForLog("/push/garbage from");
  assert.ok(
    server.logs.slice(created).some((line) => /refused: 422 UNRECOGNISED_STREAM/.test(line)),
    "the refusal is not in the server log",
  );
  await assertServesNewPush("garbage");
});

Deno.test("bad pushes are refused with their codes and change nothing; POST /push serves 'live'", async () => {
  // A name in use: 409 while the first push runs, which goes on unharmed.
  await pushAndRead("/push/busy", "busy", async () => {
    const second = await post("/push/busy", longBytes.slice(0, 4096));
    assert.equal(second.status, 409, JSON.stringify(second.body));
    assert.equal(second.body.error?.code, "STREAM_IN_USE");
  });

  const refused: [string, BodyInit, string, number, string][] = [
    ["/push/bad%20name", longBytes.slice(0, 4096), "video/h264", 400, "INVALID_NAME"],
    [`/push/${"a".repeat(65)}`, longBytes.slice(0, 4096), "video/h264", 400, "INVALID_NAME"],
    ["/push/text", "some text", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"],
    ["/push/rate?framerate=abc", longBytes.slice(0, 4096), "video/h264", 400, "INVALID_FRAMERATE"],
  ];
  for (const [path, body, contentType, status, code] of refused) {
    const reply = await post(path, body, contentType);
    assert.equal(reply.status, status, `${path}: ${JSON.stringify(reply.body)}`);
    assert.equal(reply.body.error?.code, code, `${path}: ${JSON.stringify(reply.body)}`);
    assert.equal(typeof reply.body.error?.message, "string");
  }
  const get = await fetch(pushUrl("x"));
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST, PUT");
  assert.equal((await get.json()).error?.code, "METHOD_NOT_ALLOWED");
  assert.deepEqual(await pipelineIds(), []);

  // No name: the stream is "live", at rtsp://HOST:PORT/live.
  await pushAndRead("/push", "live");
  await assertServesNewPush("after-refusals");
});

Deno.test("a push to a name a pipeline holds gets 409 saying which pipeline and how", async () => {
  // A stopped pipeline holds its id, and a pipeline with an rtspserversink holds its path.
  const camera = (path: string) =>
    `videotestsrc is-live=true ! x264enc tune=zerolatency ! rtspserversink path=${path}`;
  expectOk(
    await client.request("createPipeline", { id: "parked", pipeline: camera("parked-path") }),
  );
  const byId = await post("/push/parked", longBytes.slice(0, 4096));
  assert.equal(byId.status, 409, JSON.stringify(byId.body));
  assert.equal(byId.body.error?.code, "STREAM_IN_USE");
  assert.match(byId.body.error?.message ?? "", /A pipeline named 'parked' exists \(it is NULL\)/);
  assert.equal(byId.body.error?.details?.state, "NULL");
  const byPath = await post("/push/parked-path", longBytes.slice(0, 4096));
  assert.equal(byPath.status, 409, JSON.stringify(byPath.body));
  assert.match(
    byPath.body.error?.message ?? "",
    /RTSP path 'parked-path' is served by pipeline 'parked'/,
  );
  assert.equal(byPath.body.error?.details?.servedBy, "parked");
  expectOk(await client.request("deletePipeline", { id: "parked" }));
  assert.deepEqual(await pipelineIds(), []);
});

Deno.test("a running push is listed with kind push and has push stats", async () => {
  await pushAndRead("/push/listed", "listed", async () => {
    const reply = await client.request("getPipelines");
    const listed = reply.payload.pipelines.find((pipeline: { id: string }) =>
      pipeline.id === "listed"
    );
    assert.equal(listed?.kind, "push", JSON.stringify(reply.payload));
    const stats = await pushStats(
      "listed",
      (entry) => entry.bytesIn > 0 && entry.frames > 0 && entry.bitrate > 0,
    );
    const entry = stats.payload.pipelines.find((pipeline: { id: string }) =>
      pipeline.id === "listed"
    );
    assert.equal(entry.kind, "push");
    assert.ok(entry.bytesIn <= (await Deno.stat(media.short)).size, JSON.stringify(entry));
  });
});

Deno.test("a push deleted mid-body says in its 410 what it had detected", async () => {
  const name = "deleted-detected";
  const replied = fetch(pushUrl(name), {
    method: "POST",
    headers: { "content-type": "video/h264" },
    body: endlessClip(),
  }).then(async (response) => ({ status: response.status, body: await response.json() }));
  await client.nextStats((entry) => entry.id === name && entry.frames > 30);
  expectOk(await client.request("deletePipeline", { id: name }));
  const { status, body } = await replied;
  assert.equal(status, 410);
  // Read while it ran: a stopped pipeline's pads have no caps left.
  assert.equal(body.error.details.detected.codec, "H.264", JSON.stringify(body));
  assert.equal(body.error.details.detected.width, 320, JSON.stringify(body));
});
