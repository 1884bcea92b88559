/**
 * Push bodies of every format a sender may send by mistake or by design, with real clients:
 * fetch and curl post files, ffmpeg pushes paced, curl and fetch PUT (with Content-Range
 * continuations) and GStreamer's souphttpclientsink sends a live encoder's output. Wrong formats
 * are refused (415 with the fix, or 422) before any pipeline is made; accepted pushes are read
 * back over RTSP with ffprobe, or their frames counted in the reply or the server's log.
 */
import assert from "node:assert/strict";
import { type Reply, type ServerEvent, startServer, TestClient } from "./helpers.ts";

/** Every child process is killed after this long, so a hang fails the test instead of blocking it. */
const CHILD_TIMEOUT_MS = 30_000;
/** Frames between key frames in every clip. */
const GOP = 15;
/** How long a push sent as PUTs waits for the next PUT (PUT_IDLE_MS in src/transport/push.ts). */
const PUT_IDLE_MS = 3000;

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

const dir = await Deno.makeTempDir({ prefix: "push_formats_test_" });
const media = {
  /** 3 s of Annex-B H.264, 320x240 at 30 frame/s, a key frame every GOP frames, no B-frames. */
  clip: `${dir}/clip.h264`,
  /** The same, 10 s: fed to a PUT GOP by GOP while a reader connects. */
  long: `${dir}/long.h264`,
  /** The clip's video in other containers. */
  mp4: `${dir}/clip.mp4`,
  fragmentedMp4: `${dir}/fragmented.mp4`,
  ts: `${dir}/clip.ts`,
  flv: `${dir}/clip.flv`,
  mkv: `${dir}/clip.mkv`,
  /** Six raw yuv420p frames (ffmpeg -f rawvideo). */
  yuv: `${dir}/clip.yuv`,
};
const testsrc = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"];
const x264 = ["-c:v", "libx264", "-g", String(GOP), "-bf", "0", "-pix_fmt", "yuv420p"];
const quiet = ["-v", "error", "-y"];
const raw = ["-pix_fmt", "yuv420p", "-f", "rawvideo"];
await Promise.all([
  exec("ffmpeg", [...quiet, ...testsrc, "-t", "3", ...x264, "-f", "h264", media.clip]),
  exec("ffmpeg", [...quiet, ...testsrc, "-t", "10", ...x264, "-f", "h264", media.long]),
  exec("ffmpeg", [...quiet, ...testsrc, "-t", "0.2", ...raw, media.yuv]),
]);
const fromClip = [...quiet, "-f", "h264", "-framerate", "30", "-i", media.clip, "-c", "copy"];
await Promise.all([
  exec("ffmpeg", [...fromClip, "-movflags", "+faststart", "-f", "mp4", media.mp4]),
  exec("ffmpeg", [
    ...fromClip,
    ...["-movflags", "frag_keyframe+empty_moov", "-f", "mp4", media.fragmentedMp4],
  ]),
  exec("ffmpeg", [...fromClip, "-f", "mpegts", media.ts]),
  exec("ffmpeg", [...fromClip, "-f", "flv", media.flv]),
  exec("ffmpeg", [...fromClip, "-f", "matroska", media.mkv]),
]);

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  // getRandomValues fills at most 64 KiB per call.
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(length, at + 65536)));
  }
  return bytes;
}

const clipBytes = await Deno.readFile(media.clip);
const longBytes = await Deno.readFile(media.long);
const random = randomBytes(200 * 1024);
const randomFile = `${dir}/random.bin`;
await Deno.writeFile(randomFile, random);

/** Frames in a file as ffprobe decodes them. */
async function framesIn(path: string): Promise<number> {
  const { stdout } = await exec("ffprobe", [
    ...["-v", "error", "-select_streams", "v:0", "-count_frames"],
    ...["-show_entries", "stream=nb_read_frames", "-of", "json", path],
  ]);
  return Number(JSON.parse(stdout).streams[0].nb_read_frames);
}

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

const clipFrames = await framesIn(media.clip);
const longUnits = accessUnits(longBytes);
// The clips are what the tests assume.
assert.equal(clipFrames, 90);
assert.equal(longUnits.length, await framesIn(media.long));
assert.equal(longUnits.length, 300);
assert.ok(longUnits.every((unit, index) => unit.key === (index % GOP === 0)));

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
  stopping = true;
  await client.close();
  fresh.close();
  assert.equal(await server.stop(), 0, server.logs.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

const pushUrl = (name: string) => `${server.httpUrl}/push/${name}`;
const rtspUrl = (name: string) => `${server.rtspUrl}/${name}`;
const logs = () => `\n--- server log ---\n${server.logs.join("\n")}`;

// A server that ends before afterAll stops it (a crash, or a signal from elsewhere) fails every
// test after; say so once, with its log, instead of leaving only timeouts.
let stopping = false;
server.exited.then((code) => {
  if (!stopping) console.error(`The server exited with code ${code} during the tests${logs()}`);
});

// ---------------------------------------------------------------------------------------------
// Events and stats

/** Where the events of a push begin (older events must not match). */
const mark = () => client.received.length;

/** An event of one of `types` for `name`, received after `since` (already or to come). */
function eventSince(since: number, types: string[], name: string): Promise<ServerEvent> {
  const matches = (m: ServerEvent | Reply) =>
    types.includes(m.type) && (m as ServerEvent).payload?.id === name;
  const found = client.received.slice(since).find(matches);
  if (found) return Promise.resolve(found as ServerEvent);
  return client.waitForNext<ServerEvent>(matches, 15000, `${types.join(" or ")} for ${name}`);
}

const deleted = (since: number, name: string) => eventSince(since, ["pipelineDeleted"], name);

/** Resolves when `name` reaches PLAYING; call it before the push starts. */
function playing(name: string): Promise<ServerEvent> {
  return client.waitForNext<ServerEvent>(
    (m) =>
      m.type === "pipelineStateChanged" && (m as ServerEvent).payload.id === name &&
      (m as ServerEvent).payload.new === "PLAYING",
    15000,
    `pipelineStateChanged ${name} -> PLAYING`,
  );
}

// deno-lint-ignore no-explicit-any
type Stats = any;

/** The entry of the push `name` in the next stats broadcast whose entry matches. */
async function pushStats(name: string, predicate: (entry: Stats) => boolean = () => true) {
  const stats = await client.nextStats((entry) =>
    entry.id === name && entry.kind === "push" && predicate(entry)
  );
  return stats.payload.pipelines.find((entry: Stats) => entry.id === name);
}

/** Resolves once the parser of the push `name` has given frames: before that DESCRIBE gets 400. */
const servable = (name: string) => pushStats(name, (entry) => entry.frames > 0);

async function pipelines(): Promise<{ id: string; kind: string }[]> {
  const reply = await client.request("getPipelines");
  assert.equal(reply.ok, true, JSON.stringify(reply.error));
  return reply.payload.pipelines;
}

const pipelineIds = async () => (await pipelines()).map((pipeline) => pipeline.id);

// ---------------------------------------------------------------------------------------------
// Readers

interface ProbedStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  nb_read_frames: number;
}

/** ffprobe reading an RTSP path to its end, decoding and counting every frame. */
function read(name: string): Child {
  return spawn("ffprobe", [
    ...["-v", "error", "-rtsp_transport", "tcp", "-count_frames"],
    ...["-show_entries", "stream=codec_type,codec_name,width,height,nb_read_frames"],
    ...["-of", "json", rtspUrl(name)],
  ]);
}

function videoOf(result: Finished): ProbedStream {
  assert.equal(result.code, 0, `ffprobe failed: ${result.stderr}${logs()}`);
  const video = (JSON.parse(result.stdout).streams as ProbedStream[])
    .find((stream) => stream.codec_type === "video");
  assert.ok(video, `ffprobe found no video stream: ${result.stdout}`);
  return { ...video, nb_read_frames: Number(video.nb_read_frames) };
}

/** What a reader of a pushed clip must see: H.264, 320x240, some frames decoded. */
function assertReadBack(result: Finished): void {
  const stream = videoOf(result);
  assert.equal(stream.codec_name, "h264", JSON.stringify(stream));
  assert.equal(stream.width, 320, JSON.stringify(stream));
  assert.equal(stream.height, 240, JSON.stringify(stream));
  assert.ok(stream.nb_read_frames > 0, `the reader decoded no frame: ${JSON.stringify(stream)}`);
}

// ---------------------------------------------------------------------------------------------
// Senders

interface HttpReply {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/**
 * fetch with a connection of its own for every request. The server closes the connection after
 * many refusals while its reply says keep-alive (see the BUG test below), so a request sent on a
 * reused connection may be taken with its reply lost, and fetch then sends it again.
 */
const fresh = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

/** A fetch to /push/{name}; no Content-Type unless `headers` has one (a Uint8Array body gets none). */
async function send(
  method: string,
  name: string,
  body: BodyInit | null,
  headers: Record<string, string> = {},
): Promise<HttpReply> {
  const response = await fetch(pushUrl(name), { method, headers, body, client: fresh });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** curl with the reply's body and status on stdout; `args` end with the URL. */
async function curl(args: string[], stdin?: (child: Child) => Promise<void>): Promise<HttpReply> {
  const child = spawn("curl", ["-sS", "-w", "\n%{http_code}", ...args], { stdin: !!stdin });
  await stdin?.(child);
  const result = await child.finished;
  assert.equal(result.code, 0, `curl ${args.join(" ")}: ${result.stderr}${logs()}`);
  const at = result.stdout.lastIndexOf("\n");
  return {
    status: Number(result.stdout.slice(at + 1)),
    headers: new Headers(),
    body: JSON.parse(result.stdout.slice(0, at)),
  };
}

/** The headers a request made by `sender` carries, as a local HTTP server receives them. */
async function headersSent(sender: (url: string) => Promise<unknown>): Promise<Headers> {
  let received: Headers | undefined;
  const listening = Promise.withResolvers<number>();
  const capture = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => listening.resolve(port),
  }, async (request) => {
    received = request.headers;
    await request.arrayBuffer();
    return Response.json({});
  });
  try {
    await sender(`http://127.0.0.1:${await listening.promise}/push/capture`);
  } finally {
    await capture.shutdown();
  }
  assert.ok(received, "the capture server got no request");
  return received;
}

const detectedClip = {
  format: "H.264",
  codec: "H.264",
  width: 320,
  height: 240,
  framerate: "30/1",
};

/** The final reply of a push of the whole clip: every byte and frame, and what the parser saw. */
function assertClipReply(reply: HttpReply, name: string): void {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(typeof reply.body.durationMs, "number", JSON.stringify(reply.body));
  assert.deepEqual(reply.body, {
    name,
    bytes: clipBytes.length,
    frames: clipFrames,
    durationMs: reply.body.durationMs,
    detected: detectedClip,
  });
}

/**
 * A body refused before any pipeline existed: no pipeline listed, no pipelineCreated for the
 * name, and the refusal (`status` `code`) in the server's log.
 */
async function assertRefusedBeforePipeline(
  method: string,
  name: string,
  status: number,
  code: string,
): Promise<string> {
  // getPipelines is answered after any event emitted before it (one socket, in order).
  assert.deepEqual(await pipelineIds(), [], `pipelines after refusing ${name}`);
  const created = client.received.filter((m) =>
    m.type === "pipelineCreated" && (m as ServerEvent).payload.id === name
  );
  assert.deepEqual(created, [], `pipelineCreated for the refused push ${name}`);
  const line = await server.waitForLog(`${method} /push/${name} from`);
  assert.match(line, new RegExp(`refused: ${status} ${code}: `), line);
  return line;
}

/**
 * Feeds a raw H.264 clip to `write` GOP by GOP, as the server parses it, until a reader it
 * started has been counted as an RTSP client for two stats broadcasts (its PLAY is then done:
 * sessions are counted at SETUP), then writes the rest. A live relay gives a reader only what
 * flows after it joined, so the rest is what it reads.
 */
async function feedWhileReading(
  name: string,
  write: (bytes: Uint8Array) => Promise<void>,
  started: Promise<unknown>,
): Promise<Child> {
  const gop = (from: number, to: number) =>
    longBytes.subarray(longUnits[from].offset, longUnits[to]?.offset ?? longBytes.length);
  let written = 2 * GOP;
  await write(gop(0, written));
  await started;
  let reader: Child | undefined;
  let counted = 0;
  for (;;) {
    const entry = await pushStats(name);
    if (reader && entry.rtspClients >= 1 && ++counted === 2) break;
    if (!reader && entry.frames > 0) reader = read(name);
    // Keep more than a GOP queued ahead of what the server has parsed, so packets flow.
    if (entry.frames >= written - GOP - 5) {
      assert.ok(
        written + 3 * GOP <= longUnits.length,
        `the reader was not connected after ${written} frames: ${JSON.stringify(entry)}`,
      );
      await write(gop(written, written + GOP));
      written += GOP;
    }
  }
  await write(gop(written, longUnits.length));
  return reader!;
}

// ---------------------------------------------------------------------------------------------
// 1. A declared type the body is not: refused before any pipeline exists

const wrongFormats: {
  name: string;
  file: string;
  declared: string;
  status: 415 | 422;
  message: RegExp[];
}[] = [
  {
    name: "mp4-faststart",
    file: media.mp4,
    declared: "video/h264",
    status: 415,
    message: [/MP4/, /h264_mp4toannexb/],
  },
  {
    name: "mp4-fragmented",
    file: media.fragmentedMp4,
    declared: "video/h264",
    status: 415,
    message: [/MP4/, /h264_mp4toannexb/],
  },
  {
    name: "ts-as-h264",
    file: media.ts,
    declared: "video/h264",
    status: 415,
    message: [/MPEG-TS/, /video\/mp2t/],
  },
  {
    name: "h264-as-h265",
    file: media.clip,
    declared: "video/h265",
    status: 415,
    message: [/H\.264 Annex-B, not H\.265/, /video\/h264/],
  },
  {
    name: "flv-as-h264",
    file: media.flv,
    declared: "video/h264",
    status: 415,
    message: [/FLV/, /h264_mp4toannexb/],
  },
  {
    name: "mkv-as-h264",
    file: media.mkv,
    declared: "video/h264",
    status: 415,
    message: [/Matroska/, /h264_mp4toannexb/],
  },
  {
    name: "random-as-ts",
    file: randomFile,
    declared: "video/mp2t",
    status: 422,
    message: [/not MPEG-TS/],
  },
  {
    name: "yuv-as-h264",
    file: media.yuv,
    declared: "video/h264",
    status: 422,
    message: [/not H\.264/, /raw frames/],
  },
];

for (const wrong of wrongFormats) {
  const file = wrong.file.slice(dir.length + 1);
  Deno.test(`${file} posted as ${wrong.declared} is refused with ${wrong.status} before any pipeline`, async () => {
    assert.deepEqual(await pipelineIds(), [], "pipelines before the push");
    const reply = await send("POST", wrong.name, await Deno.readFile(wrong.file), {
      "content-type": wrong.declared,
    });
    assert.equal(reply.status, wrong.status, JSON.stringify(reply.body));
    const code = wrong.status === 415 ? "UNSUPPORTED_MEDIA_TYPE" : "UNRECOGNISED_STREAM";
    assert.equal(reply.body.error?.code, code, JSON.stringify(reply.body));
    for (const pattern of wrong.message) assert.match(reply.body.error.message, pattern);
    const line = await assertRefusedBeforePipeline("POST", wrong.name, wrong.status, code);
    for (const pattern of wrong.message) assert.match(line, pattern);
  });
}

Deno.test("a Content-Type the push takes none of is refused with 415 naming the types, whatever its name", async () => {
  // "constructor" and "tostring" are names every JavaScript object answers to.
  for (const declared of ["video/bogus", "constructor", "tostring"]) {
    const reply = await send("POST", "unknown-type", clipBytes, { "content-type": declared });
    assert.equal(reply.status, 415, JSON.stringify(reply.body));
    assert.equal(
      reply.body.error.message.split(";")[0],
      `Content-Type '${declared}' is not taken`,
      JSON.stringify(reply.body),
    );
    assert.ok(reply.body.error.details.accepted.includes("video/h264"));
  }
  assert.deepEqual(await pipelineIds(), []);
});

// ---------------------------------------------------------------------------------------------
// 2. No declared type: the format is recognised from the first bytes

Deno.test("fetch sends no Content-Type for a Uint8Array body; curl -H 'Content-Type:' sends none", async () => {
  const fetched = await headersSent(async (url) => {
    const response = await fetch(url, {
      method: "POST",
      body: clipBytes.slice(0, 100),
      client: fresh,
    });
    await response.body?.cancel();
  });
  assert.equal(fetched.get("content-type"), null, JSON.stringify([...fetched]));
  const curled = await headersSent((url) =>
    curl(["-H", "Content-Type:", "--data-binary", `@${media.clip}`, url])
  );
  assert.equal(curled.get("content-type"), null, JSON.stringify([...curled]));
});

/** How a body with no format of its own is sent: fetch with no Content-Type, or curl with application/octet-stream. */
const undeclaredSenders: Record<string, (name: string, file: string) => Promise<HttpReply>> = {
  "no Content-Type (fetch)": async (name, file) => send("POST", name, await Deno.readFile(file)),
  "application/octet-stream (curl)": (name, file) =>
    curl([
      ...["-H", "Content-Type: application/octet-stream", "--data-binary", `@${file}`],
      pushUrl(name),
    ]),
};

for (const [how, sender] of Object.entries(undeclaredSenders)) {
  const tag = how.startsWith("no") ? "none" : "octet";

  Deno.test(`H.264 with ${how} is recognised: 200 saying H.264 320x240 at 30/1`, async () => {
    const name = `undeclared-h264-${tag}`;
    const since = mark();
    const reply = await sender(name, media.clip);
    assertClipReply(reply, name);
    await deleted(since, name);
  });

  Deno.test(`MPEG-TS with ${how} is recognised: 200 saying MPEG-TS`, async () => {
    const name = `undeclared-ts-${tag}`;
    const since = mark();
    const reply = await sender(name, media.ts);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.name, name);
    assert.equal(reply.body.bytes, (await Deno.stat(media.ts)).size, JSON.stringify(reply.body));
    // An MPEG-TS parser gives groups of packets, not frames: the reply says null.
    assert.equal(reply.body.frames, null, JSON.stringify(reply.body));
    assert.equal(reply.body.detected?.format, "MPEG-TS", JSON.stringify(reply.body));
    await deleted(since, name);
  });

  Deno.test(`random bytes with ${how} are refused with 422 before any pipeline`, async () => {
    const name = `undeclared-random-${tag}`;
    const reply = await sender(name, randomFile);
    assert.equal(reply.status, 422, JSON.stringify(reply.body));
    assert.equal(reply.body.error?.code, "UNRECOGNISED_STREAM");
    assert.match(reply.body.error.message, /not H\.264, H\.265 \(Annex-B\) or MPEG-TS/);
    assert.equal(reply.body.error.details?.declared, null, JSON.stringify(reply.body));
    await assertRefusedBeforePipeline("POST", name, 422, "UNRECOGNISED_STREAM");
  });

  Deno.test(`MP4 with ${how} is refused with 415 naming MP4 before any pipeline`, async () => {
    const name = `undeclared-mp4-${tag}`;
    const reply = await sender(name, media.mp4);
    assert.equal(reply.status, 415, JSON.stringify(reply.body));
    assert.equal(reply.body.error?.code, "UNSUPPORTED_MEDIA_TYPE");
    assert.match(reply.body.error.message, /MP4/);
    assert.match(reply.body.error.message, /h264_mp4toannexb/);
    assert.equal(reply.body.error.details?.detected, "MP4/MOV", JSON.stringify(reply.body));
    assert.equal(reply.body.error.details?.declared, null, JSON.stringify(reply.body));
    await assertRefusedBeforePipeline("POST", name, 415, "UNSUPPORTED_MEDIA_TYPE");
  });
}

// ---------------------------------------------------------------------------------------------
// 3. A paced push with no Content-Type

Deno.test("a paced ffmpeg push with no Content-Type is read over RTSP while it runs", async () => {
  const name = "paced-undeclared";
  const since = mark();
  const started = playing(name);
  // -v debug prints the request ffmpeg sends, so the test can tell it has no Content-Type.
  const sender = spawn("ffmpeg", [
    ...["-v", "debug", "-nostdin", "-re", "-f", "h264", "-i", media.clip],
    ...["-c", "copy", "-f", "h264", pushUrl(name)],
  ]);
  await started;
  await servable(name);
  const reader = read(name);
  const sent = await sender.finished;
  assert.equal(sent.code, 0, `ffmpeg failed: ${sent.stderr.slice(-3000)}${logs()}`);
  const request = sent.stderr.match(/request: (POST [^\n]*\n(?:[^\n]+\n)*)/)?.[1];
  assert.ok(request, "ffmpeg -v debug printed no request");
  assert.doesNotMatch(request, /content-type/i, request);
  assertReadBack(await reader.finished);
  const line = await server.waitForLog(`Push '${name}' ended`);
  assert.match(line, new RegExp(`\\(eos\\): ${clipBytes.length} bytes, ${clipFrames} frames`));
  await deleted(since, name);
});

// ---------------------------------------------------------------------------------------------
// 4. PUT

Deno.test("curl -T of a whole clip is answered with continueAt and the push ends after the idle time", async () => {
  const name = "put-curl";
  const since = mark();
  const reply = await curl(["-T", media.clip, pushUrl(name)]);
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(reply.body.name, name);
  assert.equal(reply.body.bytes, clipBytes.length, JSON.stringify(reply.body));
  assert.equal(reply.body.continueAt, clipBytes.length, JSON.stringify(reply.body));
  assert.equal(reply.body.endsAfterIdleMs, PUT_IDLE_MS, JSON.stringify(reply.body));
  await deleted(since, name);
  // Nobody reads the end of a PUT push; the server logs what it took.
  const line = await server.waitForLog(`Push '${name}' ended`);
  assert.match(line, new RegExp(`\\(eos\\): ${clipBytes.length} bytes, ${clipFrames} frames`));
});

Deno.test("a PUT from curl -T - is read over RTSP while it runs and ends after the idle time", async () => {
  const name = "put-read";
  const since = mark();
  const started = playing(name);
  let reader!: Child;
  const reply = await curl(["-T", "-", pushUrl(name)], async (child) => {
    const stdin = child.process.stdin.getWriter();
    reader = await feedWhileReading(name, (bytes) => stdin.write(bytes), started);
    await stdin.close();
  });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(reply.body.continueAt, longBytes.length, JSON.stringify(reply.body));
  assert.equal(reply.body.endsAfterIdleMs, PUT_IDLE_MS, JSON.stringify(reply.body));
  await deleted(since, name);
  // The reader is told the stream ended when the push ends.
  assertReadBack(await reader.finished);
});

Deno.test({
  name: "a reader started right after an unpaced PUT's reply reads frames",
  // KNOWN LIMIT (not fixed here): the relay to RTSP readers is live (udpsink sync=false, see
  // src/domain/mounts.ts) and keeps nothing for late readers, so an unpaced PUT (curl -T sends
  // the file in one burst) has relayed every frame before its reply. A reader started then gets
  // its DESCRIBE held until the push ends after PUT_IDLE_MS, then SETUP 404 Not Found.
  ignore: true,
  fn: async () => {
    const name = "put-late-reader";
    const since = mark();
    const reply = await curl(["-T", media.clip, pushUrl(name)]);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const reader = read(name);
    await deleted(since, name);
    assertReadBack(await reader.finished);
  },
});

// ---------------------------------------------------------------------------------------------
// 5. PUT continuations

const half = Math.floor(clipBytes.length / 2);
const firstHalf = clipBytes.slice(0, half);
const secondHalf = clipBytes.slice(half);
const restRange = `bytes ${half}-${clipBytes.length - 1}/${clipBytes.length}`;

/** The reply to a PUT the push goes on after. */
function assertContinued(reply: HttpReply, name: string, bytes: number): void {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  assert.equal(typeof reply.body.frames, "number", JSON.stringify(reply.body));
  assert.deepEqual(reply.body, {
    name,
    bytes,
    frames: reply.body.frames,
    continueAt: bytes,
    endsAfterIdleMs: PUT_IDLE_MS,
  });
}

Deno.test("two PUTs, the second a Content-Range with the total, make one push answered in full", async () => {
  const name = "put-halves";
  const since = mark();
  const first = await send("PUT", name, firstHalf, { "content-type": "video/h264" });
  assertContinued(first, name, half);
  const second = await send("PUT", name, secondHalf, { "content-range": restRange });
  assertClipReply(second, name);
  await deleted(since, name);
});

Deno.test("a continuation for a name with no push gets 409 RANGE_NOT_CONTINUED", async () => {
  const name = "put-no-push";
  const reply = await send("PUT", name, clipBytes.slice(100, 200), {
    "content-range": "bytes 100-199/*",
  });
  assert.equal(reply.status, 409, JSON.stringify(reply.body));
  assert.equal(reply.body.error?.code, "RANGE_NOT_CONTINUED");
  assert.deepEqual(reply.body.error.details, { name, from: 100, expected: null });
  await assertRefusedBeforePipeline("PUT", name, 409, "RANGE_NOT_CONTINUED");
});

Deno.test("a continuation at a wrong offset gets 409 with the right one, and the push goes on", async () => {
  const name = "put-wrong-offset";
  const since = mark();
  assertContinued(await send("PUT", name, firstHalf, { "content-type": "video/h264" }), name, half);
  const wrong = await send("PUT", name, clipBytes.slice(half + 100), {
    "content-range": `bytes ${half + 100}-${clipBytes.length - 1}/${clipBytes.length}`,
  });
  assert.equal(wrong.status, 409, JSON.stringify(wrong.body));
  assert.equal(wrong.body.error?.code, "RANGE_NOT_CONTINUED");
  assert.equal(wrong.body.error.details?.expected, half, JSON.stringify(wrong.body));
  // The refused PUT took nothing: the right one ends the push with every byte and frame.
  const right = await send("PUT", name, secondHalf, { "content-range": restRange });
  assertClipReply(right, name);
  await deleted(since, name);
});

/** A PUT of the clip from byte `from` to its end (with the total), as raw HTTP/1.1. */
function rawPut(name: string, from: number): Uint8Array {
  const body = clipBytes.subarray(from);
  const head = new TextEncoder().encode(
    `PUT /push/${name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n` +
      `Content-Range: bytes ${from}-${clipBytes.length - 1}/${clipBytes.length}\r\n\r\n`,
  );
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}

/** The HTTP/1.1 replies (each with a Content-Length) read from `conn` until it ends or `count` came. */
async function rawReplies(conn: Deno.Conn, count: number): Promise<HttpReply[]> {
  const replies: HttpReply[] = [];
  const timer = setTimeout(() => conn.close(), 15000); // a hang fails the test instead of blocking it
  const reader = conn.readable.getReader();
  let text = ""; // the replies are ASCII: one character a byte
  const decoder = new TextDecoder();
  try {
    while (replies.length < count) {
      const headEnd = text.indexOf("\r\n\r\n");
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, headEnd))?.[1]);
      if (headEnd >= 0 && text.length >= headEnd + 4 + length) {
        const lines = text.slice(0, headEnd).split("\r\n");
        const headers = new Headers(
          lines.slice(1).map((line) => {
            const colon = line.indexOf(":");
            return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] as [string, string];
          }),
        );
        const body = JSON.parse(text.slice(headEnd + 4, headEnd + 4 + length));
        replies.push({ status: Number(lines[0].split(" ")[1]), headers, body });
        text = text.slice(headEnd + 4 + length);
        continue;
      }
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return replies;
}

Deno.test({
  name: "a PUT right after a refused one on the same connection is answered, or left to send again",
  // A refusal after which the server closes the connection says `Connection: close`, so a
  // keep-alive client does not send its next request on it, unanswered (fetch under load did).
  fn: async () => {
    const name = "put-after-refusal";
    const since = mark();
    assertContinued(
      await send("PUT", name, firstHalf, { "content-type": "video/h264" }),
      name,
      half,
    );
    const { hostname, port } = new URL(server.httpUrl);
    const conn = await Deno.connect({ hostname, port: Number(port) });
    try {
      const [wrong, right] = [rawPut(name, half + 100), rawPut(name, half)];
      const both = new Uint8Array(wrong.length + right.length);
      both.set(wrong);
      both.set(right, wrong.length);
      const writer = conn.writable.getWriter();
      await writer.write(both).catch(() => {}); // the server may close before taking it all
      writer.releaseLock();
      const replies = await rawReplies(conn, 2);
      assert.equal(replies[0]?.status, 409, JSON.stringify(replies));
      assert.equal(replies[0].body.error?.details?.expected, half, JSON.stringify(replies));
      if (replies.length === 2) {
        assertClipReply(replies[1], name);
      } else {
        const connection = replies[0].headers.get("connection");
        if (connection !== "close") {
          const ended = await server.waitForLog(`Push '${name}' ended`, 5000)
            .catch(() => "no end logged");
          assert.fail(
            `the server closed the connection after a reply that said '${connection}'; ` +
              `the PUT sent after it on that connection got no reply. Server: ${ended}`,
          );
        }
        // Nothing after the refusal was taken: the continuation sent again ends the push.
        assertClipReply(await send("PUT", name, secondHalf, { "content-range": restRange }), name);
      }
    } finally {
      try {
        conn.close();
      } catch {
        // closed by the timer
      }
    }
    await deleted(since, name);
  },
});

Deno.test("a Content-Range in other units gets 400 INVALID_CONTENT_RANGE", async () => {
  const name = "put-items";
  const reply = await send("PUT", name, clipBytes.slice(0, 100), {
    "content-type": "video/h264",
    "content-range": "items 1-2/3",
  });
  assert.equal(reply.status, 400, JSON.stringify(reply.body));
  assert.equal(reply.body.error?.code, "INVALID_CONTENT_RANGE");
  await assertRefusedBeforePipeline("PUT", name, 400, "INVALID_CONTENT_RANGE");
});

Deno.test("a Content-Range whose length is not the body's gets 400 INVALID_CONTENT_RANGE", async () => {
  const name = "put-disagreeing";
  const reply = await send("PUT", name, clipBytes.slice(0, 1000), {
    "content-type": "video/h264",
    "content-range": "bytes 0-9/10",
  });
  assert.equal(reply.status, 400, JSON.stringify(reply.body));
  assert.equal(reply.body.error?.code, "INVALID_CONTENT_RANGE");
  assert.match(reply.body.error.message, /is 10 bytes, but the body is 1000/);
  await assertRefusedBeforePipeline("PUT", name, 400, "INVALID_CONTENT_RANGE");
});

// ---------------------------------------------------------------------------------------------
// 6 and 7. GStreamer's souphttpclientsink

Deno.test("souphttpclientsink pushing x264enc byte-stream is read over RTSP and ends after the idle time", async () => {
  const name = "soup";
  const since = mark();
  const started = playing(name);
  // No h264parse: souphttpclientsink drops the buffers it flags HEADER (parameter sets, key frames).
  const sender = spawn("gst-launch-1.0", [
    ..."-e videotestsrc num-buffers=240 is-live=true".split(" "),
    ..."! video/x-raw,width=320,height=240,framerate=30/1".split(" "),
    ..."! x264enc tune=zerolatency key-int-max=30".split(" "),
    ..."! video/x-h264,stream-format=byte-stream".split(" "),
    ...["!", "souphttpclientsink", `location=${pushUrl(name)}`],
  ]);
  await started;
  await servable(name);
  const reader = read(name);
  const listed = (await pipelines()).find((pipeline) => pipeline.id === name);
  assert.equal(listed?.kind, "push", JSON.stringify(listed));
  const sent = await sender.finished;
  assert.equal(sent.code, 0, `gst-launch-1.0 failed: ${sent.stdout}${sent.stderr}${logs()}`);
  await deleted(since, name);
  assertReadBack(await reader.finished);
  // Every buffer the encoder made reached the server as a frame.
  const line = await server.waitForLog(`Push '${name}' ended`);
  assert.match(line, /\(eos\): \d+ bytes, 240 frames/);
});

Deno.test("the issue's pipeline, x264enc ! h264parse ! souphttpclientsink, is refused with 415 naming AVC", async () => {
  const name = "soup-avc";
  // As the issue wrote it; h264parse gives AVC (4-byte lengths, no start codes).
  const sender = spawn("gst-launch-1.0", [
    ..."videotestsrc num-buffers=60 ! x264enc ! h264parse !".split(" "),
    ...["souphttpclientsink", `location=${pushUrl(name)}`],
  ]);
  await sender.finished; // its exit code depends on how souphttpclientsink takes the refusal
  const line = await assertRefusedBeforePipeline("PUT", name, 415, "UNSUPPORTED_MEDIA_TYPE");
  assert.match(line, /AVC/);
  assert.match(line, /stream-format=byte-stream/);
});

// ---------------------------------------------------------------------------------------------
// 8. Other methods

Deno.test("DELETE /push/x gets 405 with Allow: POST, PUT", async () => {
  const reply = await send("DELETE", "x", null);
  assert.equal(reply.status, 405, JSON.stringify(reply.body));
  assert.equal(reply.headers.get("allow"), "POST, PUT");
  assert.equal(reply.body.error?.code, "METHOD_NOT_ALLOWED");
  await assertRefusedBeforePipeline("DELETE", "x", 405, "METHOD_NOT_ALLOWED");
});
