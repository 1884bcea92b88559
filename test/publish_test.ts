/**
 * RTSP publishing (ANNOUNCE/RECORD) with real clients: ffmpeg -f rtsp and GStreamer's
 * rtspclientsink publish, ffprobe reads every publish back at the same URL and counts its
 * frames, and the WebSocket client sees the publish as a pipeline of kind "publish" (listed,
 * in stats, in events) until the publisher leaves.
 */
import assert from "node:assert/strict";
import {
  cameraLaunch,
  expectError,
  expectOk,
  freshId,
  type Reply,
  type ServerEvent,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { rawAnnounce, writeAll } from "./rtsp_client.ts";

/** Every child process is killed after this long, so a hang fails the test instead of blocking it. */
const CHILD_TIMEOUT_MS = 30_000;
/** Tests of known server bugs are skipped unless PUBLISH_TEST_KNOWN_BUGS=1; drop the flag once fixed. */
const knownBugs = Deno.env.get("PUBLISH_TEST_KNOWN_BUGS") === "1";

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

function spawn(command: string, args: string[], env: Record<string, string> = {}): Child {
  const process = new Deno.Command(command, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  running.add(process);
  const timer = setTimeout(() => kill(process), CHILD_TIMEOUT_MS);
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

function kill(process: Deno.ChildProcess, signal: Deno.Signal = "SIGKILL"): void {
  try {
    process.kill(signal);
  } catch {
    // already gone
  }
}

async function exec(command: string, args: string[]): Promise<Finished> {
  const result = await spawn(command, args).finished;
  assert.equal(result.code, 0, `${command} ${args.join(" ")}\n${result.stderr}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Test media, made once for the file

const dir = await Deno.makeTempDir({ prefix: "publish_test_" });
const clips = {
  /** 8 s of H.264 640x360 at 30 frame/s (a key frame every 30 frames) and AAC. */
  h264: `${dir}/h264_aac.mp4`,
  /** The same, 3 s: for publishes that only need to show the name is free again. */
  short: `${dir}/h264_aac_short.mp4`,
  /** The same, 1 s: for many publishes in a row. */
  tiny: `${dir}/h264_aac_tiny.mp4`,
  /** 5 s of H.265 640x360 at 30 frame/s and Opus. */
  h265: `${dir}/h265_opus.mkv`,
};
const testsrc = ["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"];
const sine = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
const x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p"];
await Promise.all([
  exec("ffmpeg", ["-v", "error", "-y", ...testsrc, ...sine, "-t", "8", ...x264, clips.h264]),
  exec("ffmpeg", ["-v", "error", "-y", ...testsrc, ...sine, "-t", "3", ...x264, clips.short]),
  exec("ffmpeg", ["-v", "error", "-y", ...testsrc, ...sine, "-t", "1", ...x264, clips.tiny]),
  exec("ffmpeg", [
    ...["-v", "error", "-y", ...testsrc, ...sine, "-t", "5"],
    ...["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    // Closed GOPs without B-frames: a reader joining at a key frame decodes from there cleanly.
    ...["-x265-params", "log-level=error:keyint=30:min-keyint=30:open-gop=0:bframes=0"],
    ...["-c:a", "libopus", clips.h265],
  ]),
]);

// ---------------------------------------------------------------------------------------------
// The server and the WebSocket client (one for every test but the auth one)

// Stats every 250 ms rather than every second: the tests wait on stats broadcasts.
const server = await startServer({ GSTREAMER_STATS_INTERVAL_MS: "250" });
const client = await TestClient.connect(server.url);

Deno.test.afterEach(() => {
  for (const process of running) kill(process);
});

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, server.logs.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

/** A test's view of one server: URLs, its log and its WebSocket client's events. */
class View {
  constructor(readonly server: ServerProcess, readonly client: TestClient) {}

  /** rtsp://[user:password@]HOST:PORT/{name}. */
  url(name: string, credentials?: { user: string; password: string }): string {
    const url = new URL(`${this.server.rtspUrl}/${name}`);
    if (credentials) {
      url.username = encodeURIComponent(credentials.user);
      url.password = encodeURIComponent(credentials.password);
    }
    return url.href;
  }

  logs = () => `\n--- server log ---\n${this.server.logs.join("\n")}`;

  /** Where the events of a publish begin (names are used again, so older events must not match). */
  mark = () => this.client.received.length;

  /** An event of `type` for `name` received after `since` (already or to come) that matches. */
  eventSince(
    since: number,
    type: string,
    name: string,
    predicate: (payload: ServerEvent["payload"]) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<ServerEvent> {
    const matches = (m: ServerEvent | Reply) =>
      m.type === type && (m as ServerEvent).payload?.id === name &&
      predicate((m as ServerEvent).payload);
    const found = this.client.received.slice(since).find(matches);
    if (found) return Promise.resolve(found as ServerEvent);
    return this.client.waitForNext<ServerEvent>(matches, timeoutMs, `${type} for ${name}`);
  }

  eventsSince(since: number, type: string, name: string): ServerEvent[] {
    return this.client.received.slice(since).filter((m) =>
      m.type === type && (m as ServerEvent).payload?.id === name
    ) as ServerEvent[];
  }

  /** The next stats broadcast's entry for the publish `name` that matches. */
  async publishStats(name: string, predicate: (entry: Stats) => boolean = () => true) {
    const stats = await this.client.nextStats((entry) =>
      entry.id === name && entry.kind === "publish" && predicate(entry)
    );
    return stats.payload.pipelines.find((entry: Stats) => entry.id === name);
  }

  async listed(name: string) {
    const reply = expectOk(await this.client.request("getPipelines"), this.logs);
    return reply.payload.pipelines.find((pipeline: { id: string }) => pipeline.id === name);
  }

  /** The entry for the publish `name` in the latest stats broadcast after `since` that has one. */
  latestStats(since: number, name: string): Stats | undefined {
    for (let at = this.client.received.length - 1; at >= since; at--) {
      const message = this.client.received[at] as ServerEvent;
      if (message.type !== "stats") continue;
      const entry = message.payload.pipelines.find((entry: Stats) => entry.id === name);
      if (entry) return entry;
    }
    return undefined;
  }

  /**
   * The end of the publish `name`: its readers were sent EOS (pipelineEos) and it was deleted
   * (pipelineDeleted), in that order, with no pipelineError; it is no longer listed.
   */
  async ended(since: number, name: string, timeoutMs = 20_000): Promise<void> {
    const deleted = await this.eventSince(since, "pipelineDeleted", name, () => true, timeoutMs);
    const received = this.client.received;
    const eos = this.eventsSince(since, "pipelineEos", name);
    assert.equal(eos.length, 1, `one pipelineEos for ${name}${this.logs()}`);
    assert.ok(received.indexOf(eos[0]) < received.indexOf(deleted), "EOS came before the delete");
    assert.deepEqual(this.eventsSince(since, "pipelineError", name), [], `pipelineError ${name}`);
    assert.equal(await this.listed(name), undefined, `${name} is still listed`);
  }

  /** Waits for a server log line with "refused" for `name`, printed after `since` lines. */
  async refusedLine(since: number, name: string): Promise<string> {
    const line = await this.server.waitForLog(`/${name} refused`);
    assert.ok(this.server.logs.indexOf(line) >= since, `an old refusal: ${line}`);
    return line;
  }
}

const view = new View(server, client);

// deno-lint-ignore no-explicit-any
type Stats = any;

// ---------------------------------------------------------------------------------------------
// Publishers and readers

interface Publishing {
  /** Where the publish's events begin. */
  since: number;
  sender: Child;
  /** Its first stats entry that counts frames. */
  stats: Stats;
}

/**
 * Starts `publisher` (which publishes to `name`) and waits until the publish is PLAYING, listed
 * with kind "publish", and its stats count frames. A publisher that exits first fails the test.
 */
async function startPublish(v: View, name: string, publisher: () => Child): Promise<Publishing> {
  const since = v.mark();
  const sender = publisher();
  const exit: { result?: Finished } = {};
  void sender.finished.then((result) => (exit.result = result));
  const state = await waitUntil(
    (): { stats: Stats } | { exited: Finished } | null => {
      const stats = v.latestStats(since, name);
      if (stats?.frames > 0) return { stats };
      const exited = exit.result;
      return exited ? { exited } : null;
    },
    20_000,
    `the publish ${name} to count frames`,
  );
  if (!("stats" in state)) {
    assert.fail(
      `The publisher of ${name} ended before it was recording:\n${state.exited.stderr}${v.logs()}`,
    );
  }
  const created = await v.eventSince(since, "pipelineCreated", name);
  assert.equal(created.payload.kind, "publish", JSON.stringify(created.payload));
  await v.eventSince(since, "pipelineStateChanged", name, (p) => p.new === "PLAYING");
  const listed = await v.listed(name);
  assert.equal(listed?.kind, "publish", JSON.stringify(listed));
  assert.equal(listed?.state, "PLAYING", JSON.stringify(listed));
  return { since, sender, stats: state.stats };
}

/** ffmpeg publishing `clip` at its own rate (-re) to `url`; TCP unless told UDP (ffmpeg's default). */
function ffmpegPublish(
  clip: string,
  url: string,
  options: { transport?: "tcp" | "udp"; loop?: boolean; codecs?: string[] } = {},
): Child {
  return spawn("ffmpeg", [
    ...["-v", "error", "-nostdin", "-re", ...(options.loop ? ["-stream_loop", "-1"] : [])],
    ...["-i", clip, ...(options.codecs ?? ["-c", "copy"]), "-f", "rtsp"],
    ...(options.transport === "udp" ? [] : ["-rtsp_transport", "tcp"]),
    url,
  ]);
}

interface ProbedStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  nb_read_frames: number;
}

/**
 * ffprobe reading an RTSP URL, decoding and counting every frame: to the end of the stream, or
 * for `seconds` of it when given (a stream that has no end; a key frame comes every second).
 */
function ffprobe(url: string, transport: "tcp" | "udp" = "tcp", seconds?: number): Child {
  return spawn("ffprobe", [
    ...["-v", "error", "-rtsp_transport", transport, "-count_frames"],
    ...(seconds === undefined ? [] : ["-read_intervals", `%+${seconds}`]),
    ...["-show_entries", "stream=codec_type,codec_name,width,height,nb_read_frames"],
    ...["-of", "json", url],
  ]);
}

function streamsOf(result: Finished, context: () => string): ProbedStream[] {
  assert.equal(result.code, 0, `ffprobe failed: ${result.stderr}${context()}`);
  const streams = JSON.parse(result.stdout).streams as ProbedStream[];
  return streams.map((stream) => ({ ...stream, nb_read_frames: Number(stream.nb_read_frames) }));
}

function streamOf(streams: ProbedStream[], type: "video" | "audio"): ProbedStream {
  const found = streams.find((stream) => stream.codec_type === type);
  assert.ok(found, `ffprobe found no ${type} stream: ${JSON.stringify(streams)}`);
  return found;
}

function assertExited(result: Finished, what: string, context: () => string): void {
  assert.equal(result.code, 0, `${what} failed: ${result.stderr}${context()}`);
}

/** Frame counts seen by readers, printed at the end of each test for the report. */
function report(what: string, streams: ProbedStream[]): void {
  const counts = streams.map((s) => `${s.codec_name} ${s.nb_read_frames}`).join(", ");
  console.log(`  ${what}: ${counts}`);
}

/**
 * Publishes with `publisher` (started here, after the mark) to `name`, reads it back with
 * ffprobe once the publish is PLAYING with frames, waits for both to end and for the publish to
 * be deleted. Returns what ffprobe read and the stats entry seen while it ran.
 */
async function publishAndRead(
  v: View,
  name: string,
  publisher: () => Child,
  readerUrl: string,
  transport: "tcp" | "udp" = "tcp",
): Promise<{ streams: ProbedStream[]; stats: Stats }> {
  const { since, sender, stats } = await startPublish(v, name, publisher);
  const reader = ffprobe(readerUrl, transport);
  const sent = await sender.finished;
  assertExited(sent, "the publisher", v.logs);
  // The reader ends by itself: the end of the publish reaches it as EOS.
  const streams = streamsOf(await reader.finished, v.logs);
  await v.ended(since, name);
  return { streams, stats };
}

function assertH264Aac(streams: ProbedStream[], width = 640, height = 360): void {
  const video = streamOf(streams, "video");
  assert.equal(video.codec_name, "h264");
  assert.equal(video.width, width);
  assert.equal(video.height, height);
  assert.ok(video.nb_read_frames > 0, JSON.stringify(video));
  const audio = streamOf(streams, "audio");
  assert.equal(audio.codec_name, "aac");
  assert.ok(audio.nb_read_frames > 0, JSON.stringify(audio));
}

/** Publishes the short clip to `name` and reads it back: the name is free again. */
async function publishesAgain(v: View, name: string): Promise<void> {
  const { streams } = await publishAndRead(
    v,
    name,
    () => ffmpegPublish(clips.short, v.url(name)),
    v.url(name),
  );
  assertH264Aac(streams);
  report(`${name} published again`, streams);
}

// ---------------------------------------------------------------------------------------------
// Tests

Deno.test("ffmpeg publishes H.264 + AAC over TCP; ffprobe reads it to its end; the name is free again", async () => {
  const name = freshId("tcp");
  const { streams } = await publishAndRead(
    view,
    name,
    () => ffmpegPublish(clips.h264, view.url(name)),
    view.url(name),
  );
  assertH264Aac(streams);
  report(name, streams);
  await publishesAgain(view, name);
});

Deno.test("ffmpeg publishes H.264 + AAC over UDP; ffprobe reads it over UDP", async () => {
  const name = freshId("udp");
  const { streams } = await publishAndRead(
    view,
    name,
    () => ffmpegPublish(clips.h264, view.url(name), { transport: "udp" }),
    view.url(name),
    "udp",
  );
  assertH264Aac(streams);
  report(name, streams);
});

Deno.test("GStreamer's rtspclientsink publishes H.264; ffprobe reads it", async () => {
  const name = freshId("gst");
  const { since, sender } = await startPublish(
    view,
    name,
    () =>
      spawn("gst-launch-1.0", [
        ..."-e videotestsrc num-buffers=300 is-live=true".split(" "),
        ..."! video/x-raw,width=320,height=240,framerate=30/1".split(" "),
        ..."! x264enc tune=zerolatency key-int-max=30 ! h264parse".split(" "),
        ...["!", "rtspclientsink", `location=${view.url(name)}`],
      ]),
  );
  const reader = ffprobe(view.url(name));
  // The publish ends when gst-launch, after its 300 buffers, tears down (or goes silent: below).
  await view.ended(since, name, 30_000);
  const streams = streamsOf(await reader.finished, view.logs);
  assert.equal(streams.length, 1, JSON.stringify(streams));
  const video = streamOf(streams, "video");
  assert.equal(video.codec_name, "h264");
  assert.equal(video.width, 320);
  assert.equal(video.height, 240);
  assert.ok(video.nb_read_frames > 0, JSON.stringify(video));
  report(name, streams);
  const end = server.logs.find((line) => line.startsWith(`Publish '${name}' from `)) ?? "";
  assert.match(end, /: 300 frames, /, `every buffer arrived: ${end}`);
  if (/\(publisher left\)/.test(end)) {
    assertExited(await sender.finished, "gst-launch", view.logs);
    return;
  }
  /*
   * Sometimes (in about one suite run in four, on a loaded machine; never alone, nor with
   * GST_DEBUG on) gst-launch does not end after its 300 buffers: it never gets the EOS message
   * from rtspclientsink, so it sends no TEARDOWN, and the server ends the publish after 10 s of
   * silence. The server did its part (every frame in, EOS to the reader, the name freed); the
   * hang is the client's. PUBLISH_TEST_KNOWN_BUGS=1 makes it fail the test.
   */
  assert.match(end, /\(publisher silent\)/, end);
  kill(sender.process);
  const hung = await sender.finished;
  const note = `gst-launch did not end after its 300 buffers; the server ended the publish as ` +
    `silent (${end}); gst-launch's output:\n${hung.stdout}${hung.stderr}`;
  if (knownBugs) assert.fail(note);
  console.log(`  ${name}: ${note}`);
});

Deno.test("ffmpeg publishes H.265 + Opus; ffprobe reads hevc and opus", async () => {
  const name = freshId("hevc");
  const { streams, stats } = await publishAndRead(
    view,
    name,
    () => ffmpegPublish(clips.h265, view.url(name)),
    view.url(name),
  );
  assert.equal(stats.format, "H.265 + Opus", JSON.stringify(stats));
  const video = streamOf(streams, "video");
  assert.equal(video.codec_name, "hevc");
  assert.equal(video.width, 640);
  assert.equal(video.height, 360);
  assert.ok(video.nb_read_frames > 0, JSON.stringify(video));
  const audio = streamOf(streams, "audio");
  assert.equal(audio.codec_name, "opus");
  assert.ok(audio.nb_read_frames > 0, JSON.stringify(audio));
  report(name, streams);
});

Deno.test("publishing to a name a pipeline serves or has is refused with 409; the pipeline goes on", async (t) => {
  const path = freshId("camera");
  const id = freshId("camera-pipeline");
  expectOk(await client.request("createPipeline", { id, pipeline: cameraLaunch(path) }), view.logs);
  try {
    expectOk(await client.request("startPipeline", { id }), view.logs);
    // Read once first: the camera serves its path.
    const before = streamOf(
      streamsOf(await ffprobe(view.url(path), "tcp", 2).finished, view.logs),
      "video",
    );
    assert.ok(before.nb_read_frames > 0, JSON.stringify(before));

    for (const [what, name] of [["the path it serves", path], ["its id", id]]) {
      await t.step(`a publish to ${what} gets 409`, async () => {
        const since = view.mark();
        const logSince = server.logs.length;
        const result = await ffmpegPublish(clips.short, view.url(name)).finished;
        assert.notEqual(result.code, 0, "the publish was let in");
        assert.match(result.stderr, /method ANNOUNCE failed: 409 Conflict/, result.stderr);
        const line = await view.refusedLine(logSince, name);
        assert.match(line, /409/, line);
        assert.deepEqual(view.eventsSince(since, "pipelineCreated", name), []);
      });
    }

    await t.step("the camera pipeline is unaffected", async () => {
      const listed = await view.listed(id);
      assert.equal(listed?.kind, "pipeline", JSON.stringify(listed));
      assert.equal(listed?.state, "PLAYING", JSON.stringify(listed));
      const after = streamOf(
        streamsOf(await ffprobe(view.url(path), "tcp", 2).finished, view.logs),
        "video",
      );
      assert.equal(after.codec_name, "h264");
      assert.ok(after.nb_read_frames > 0, JSON.stringify(after));
      report(`${path} after the refusals`, [after]);
    });
  } finally {
    expectOk(await client.request("deletePipeline", { id }), view.logs);
  }
});

Deno.test("a second publisher to a name being published gets 409; the first publish goes on", async () => {
  const name = freshId("taken");
  const { since, sender: first, stats: running } = await startPublish(
    view,
    name,
    () => ffmpegPublish(clips.h264, view.url(name), { loop: true }),
  );

  const logSince = server.logs.length;
  const second = await ffmpegPublish(clips.short, view.url(name)).finished;
  assert.notEqual(second.code, 0, "the second publisher was let in");
  assert.match(second.stderr, /method ANNOUNCE failed: 409 Conflict/, second.stderr);
  assert.match(await view.refusedLine(logSince, name), /409/);

  // The first publish still runs: its frames keep growing, and a reader gets them.
  const later = await view.publishStats(name, (entry) => entry.frames > running.frames);
  assert.equal(later.recording, true, JSON.stringify(later));
  assert.equal(view.eventsSince(since, "pipelineCreated", name).length, 1);
  const streams = streamsOf(await ffprobe(view.url(name), "tcp", 2).finished, view.logs);
  assertH264Aac(streams);
  report(`${name} after the refusal`, streams);

  // ffmpeg ends a publish on SIGINT with TEARDOWN.
  kill(first.process, "SIGINT");
  await first.finished;
  await view.ended(since, name);
});

Deno.test("unsupported codecs are refused with 415", async (t) => {
  const cases: [string, string[]][] = [
    ["MPEG-4 part 2 video", ["-an", "-c:v", "mpeg4"]],
    ["G.711 mu-law audio alone", ["-vn", "-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"]],
    ["H.264 with G.711 mu-law audio", ["-c:v", "copy", "-c:a", "pcm_mulaw", "-ar", "8000"]],
  ];
  for (const [what, codecs] of cases) {
    await t.step(what, async () => {
      const name = freshId("codec");
      const since = view.mark();
      const logSince = server.logs.length;
      const result = await ffmpegPublish(clips.short, view.url(name), { codecs }).finished;
      assert.notEqual(result.code, 0, "the publish was let in");
      assert.match(
        result.stderr,
        /method ANNOUNCE failed: 415 Unsupported Media Type/,
        result.stderr,
      );
      assert.match(await view.refusedLine(logSince, name), /415/);
      assert.deepEqual(view.eventsSince(since, "pipelineCreated", name), []);
      assert.equal(await view.listed(name), undefined);
    });
  }
});

Deno.test("a publish to an invalid name is refused with 400", async () => {
  const logSince = server.logs.length;
  // Names are letters, digits, '.', '_' and '-': a nested path is not one.
  const result = await ffmpegPublish(clips.short, view.url("nested/name")).finished;
  assert.notEqual(result.code, 0, "the publish was let in");
  // ffmpeg prints the reason phrase of statuses above 400 only.
  assert.match(result.stderr, /Server returned 400 Bad Request/, result.stderr);
  assert.match(await view.refusedLine(logSince, "nested/name"), /400/);
});

Deno.test("a publisher killed mid-stream ends the publish: its reader gets EOS, the name is freed", async () => {
  const name = freshId("killed");
  const { since, sender: publisher, stats } = await startPublish(
    view,
    name,
    () => ffmpegPublish(clips.h264, view.url(name), { loop: true }),
  );
  // The publisher's own RTSP session counts among the publish's rtspClients.
  const { rtspClients } = stats;
  const reader = ffprobe(view.url(name));
  // Kill only once the reader is a client of the publish and more than a GOP (30 frames, so a
  // key frame) has flowed since.
  const counted = await view.publishStats(name, (entry) => entry.rtspClients > rtspClients);
  await view.publishStats(name, (entry) => entry.frames > counted.frames + 45);
  kill(publisher.process, "SIGKILL");
  const killed = await publisher.finished;
  assert.match(killed.stderr, /ended by SIGKILL/);
  const streams = streamsOf(await reader.finished, view.logs);
  assertH264Aac(streams);
  report(`${name} until the kill`, streams);
  await view.ended(since, name);
  assert.ok(
    server.logs.some((line) =>
      line.includes(`Publish '${name}'`) && line.includes("publisher left")
    ),
    `no 'publisher left' line for ${name}${view.logs()}`,
  );
  await publishesAgain(view, name);
});

Deno.test("a publish the server ends closes its publisher's connection: ffmpeg stops sending", async () => {
  const name = freshId("let-go");
  const { since, sender } = await startPublish(
    view,
    name,
    () => ffmpegPublish(clips.h264, view.url(name), { loop: true }),
  );
  let exited: { code: number; stderr: string } | null = null;
  void sender.finished.then((result) => (exited = result));
  expectOk(await client.request("deletePipeline", { id: name }), view.logs);
  await view.eventSince(since, "pipelineDeleted", name, () => true, 20_000);
  // Left connected, it went on sending into a media nobody read, holding a client thread, its
  // sockets and an RTP session until it quit by itself.
  await waitUntil(() => exited, 15_000, `ffmpeg to lose its connection after ${name} ended`);
  assert.notEqual(exited!.code, 0, exited!.stderr);
  await publishesAgain(view, name);
});

Deno.test("a running publish has stats: kind publish, format, recording, frames growing", async () => {
  const name = freshId("stats");
  const { since, sender: publisher } = await startPublish(
    view,
    name,
    () => ffmpegPublish(clips.h264, view.url(name)),
  );
  const first = await view.publishStats(name, (entry) => entry.recording === true);
  const next = await view.publishStats(name, (entry) => entry.frames > first.frames);
  for (const entry of [first, next]) {
    assert.equal(entry.kind, "publish", JSON.stringify(entry));
    assert.equal(entry.format, "H.264 + AAC", JSON.stringify(entry));
    assert.equal(entry.recording, true, JSON.stringify(entry));
    assert.equal(entry.from, "127.0.0.1", JSON.stringify(entry));
    assert.ok(entry.bytesIn > 0, JSON.stringify(entry));
  }
  assert.ok(next.bytesIn > first.bytesIn, `${JSON.stringify(first)} then ${JSON.stringify(next)}`);
  const withRate = await view.publishStats(name, (entry) => entry.bitrate > 0);
  console.log(`  ${name} stats: ${JSON.stringify(withRate)}`);
  const streams = streamsOf(await ffprobe(view.url(name)).finished, view.logs);
  assertH264Aac(streams);
  report(name, streams);
  assertExited(await publisher.finished, "the publisher", view.logs);
  await view.ended(since, name);
});

/** Publishes in a row in the regression test below. */
const ROW = 15;

/*
 * Regression (6f27be6): an accepted ANNOUNCE raced the publish pipeline it starts, whose
 * rtspserversink mounted the served factory at the path while gst-rtsp-server was still making
 * the record media: the publisher got a bare 415 (the record builder gone: an empty bin) or 503
 * (the served factory found instead), about one publish in six once ~18 had run. The served
 * factory now waits for the record media. A server logging gst-rtsp-server's doings is slow to
 * make it, which made the race likely.
 */
Deno.test({
  name: "publishes in a row are all accepted, the served path never taking the ANNOUNCE's place",
  fn: async () => {
    // The race is lost when the server's RTSP thread is slow to build the record media, as on a
    // loaded machine: a server of its own logging gst-rtsp-server's doings makes that likely.
    const rowServer = await startServer({
      GSTREAMER_STATS_INTERVAL_MS: "250",
      GST_DEBUG: "rtspclient:4,rtspmountpoints:6,rtspmediafactory:4,rtspmedia:3",
      GST_DEBUG_FILE: `${dir}/row-server-gst.log`,
    });
    await using rowClient = await TestClient.connect(rowServer.url);
    const view = new View(rowServer, rowClient);
    const server = rowServer;
    for (let attempt = 1; attempt <= ROW; attempt++) {
      const name = freshId("row");
      const since = view.mark();
      const result = await ffmpegPublish(clips.tiny, view.url(name)).finished;
      if (result.code === 0) {
        await view.ended(since, name);
        continue;
      }
      // The name is kept by a publish whose publisher is gone: it comes back with 409.
      const again = await ffmpegPublish(clips.tiny, view.url(name)).finished;
      const lines = server.logs.filter((line) => line.includes(`'${name}'`));
      await rowClient.close();
      await rowServer.stop();
      assert.fail(
        `publish ${attempt} of ${ROW} to ${name} failed:\n${result.stderr}\n` +
          `server log for ${name}:\n${lines.join("\n")}\n` +
          `publishing to ${name} again at once:\n${again.stderr}`,
      );
    }
    await rowClient.close();
    assert.equal(await rowServer.stop(), 0, rowServer.logs.join("\n"));
  },
});

/** rawAnnounce (rtsp_client.ts) of `name` on the server `v` shows: `path` replaces the name in the URL. */
function announceOn(
  v: View,
  name: string,
  {
    path = name,
    contentType = "application/sdp",
    stream = undefined as readonly string[] | undefined,
    body = undefined as string | undefined,
  } = {},
): Promise<{ status: string; conn: Deno.Conn }> {
  return rawAnnounce(v.url(path), contentType, stream, body);
}

/*
 * A publisher that comes back as soon as its publish ended (an encoder that reconnects at once).
 * Before b62aa5c the hub checked a new ANNOUNCE against the registry only: one accepted between
 * the old pipeline's delete and the old session's end was then forgotten by that end
 * (`#sessions.delete(name)`) and never ended: its pipeline stayed PLAYING for good, the name
 * taken. Now the ending publish holds the name (409 "is ending") until its session is gone.
 * The comeback here retries its ANNOUNCE until accepted and never records; a client then deletes
 * that second publish, which must end as the first did (a "Publish ... ended" line).
 */
Deno.test("a publisher back as soon as its name is free gets a publish that ends", async () => {
  const name = freshId("back");
  const { since, sender } = await startPublish(
    view,
    name,
    () => ffmpegPublish(clips.tiny, view.url(name)),
  );
  assertExited(await sender.finished, "the first publisher", view.logs);
  // Comes back at once, again and again, until let in.
  let back: Deno.Conn | null = null;
  for (let attempt = 1; back === null; attempt++) {
    const { status, conn } = await announceOn(view, name);
    if (status === "RTSP/1.0 200 OK") back = conn;
    else {
      conn.close();
      assert.match(
        status,
        /^RTSP\/1.0 409 Conflict: ('.+' is already being published|the publish of '.+' is ending)/,
        `attempt ${attempt}`,
      );
      assert.ok(attempt < 5000, "the name was never free again");
    }
  }
  try {
    // Once the first publish is over, a client deletes the second: its publish must end (the
    // server notices within 250 ms and prints the end, as for the first).
    await view.eventSince(since, "pipelineDeleted", name);
    await waitUntil(
      async () => (await view.listed(name))?.state === "PLAYING",
      10_000,
      `the second publish of ${name} to be PLAYING`,
    );
    expectOk(await client.request("deletePipeline", { id: name }), view.logs);
    const ends = () =>
      server.logs.filter((line) => line.startsWith(`Publish '${name}' from `)).length;
    await waitUntil(() => ends() === 2, 5_000, `the end of the second publish of ${name}`)
      .catch((error) => {
        const lines = server.logs.filter((line) => line.includes(`'${name}'`));
        error.message += `; server log for ${name}:\n${lines.join("\n")}`;
        throw error;
      });
  } finally {
    back.close();
  }
});

/*
 * gst-rtsp-server checks an ANNOUNCE again after the server accepted it. Before 2026-12-04 a
 * Content-Type it refuses (400), or a percent-escaped path it could not find (404), left a publish
 * holding the name for 20 s: the publisher's corrected ANNOUNCE got 409 meanwhile.
 */
Deno.test("an ANNOUNCE gst-rtsp-server would refuse is refused first, and makes no publish", async () => {
  const name = freshId("refused");
  for (
    const [options, expected] of [
      [
        { contentType: "text/plain" },
        /^RTSP\/1.0 400 Bad Request: the ANNOUNCE body is text\/plain/,
      ],
      [{ path: name.replace(/^r/, "%72") }, /^RTSP\/1.0 400 Bad Request: invalid stream name/],
      // A known codec on the wrong m= line or at the wrong clock rate would fail to link later.
      [
        { stream: ["m=application 0 RTP/AVP 96", "a=rtpmap:96 H264/90000"] },
        /^RTSP\/1.0 415 Unsupported Media Type: stream 0 is application H.264, but H.264 is video/,
      ],
      [
        { stream: ["m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/1000"] },
        /^RTSP\/1.0 415 Unsupported Media Type: stream 0 has an RTP clock rate of 1000 .* 90000/,
      ],
      // GStreamer 1.22's AAC depayloaders free the buffer they decode a bad config into (a
      // CRITICAL at the SETUP): the server aborted.
      [
        {
          stream: [
            "m=audio 0 RTP/AVP 97",
            "a=rtpmap:97 MPEG4-GENERIC/48000/2",
            "a=fmtp:97 streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;" +
            "indexdeltalength=3;config=ZZZZ",
          ],
        },
        /^RTSP\/1.0 415 Unsupported Media Type: stream 0 has config=ZZZZ .* not hexadecimal/,
      ],
      [
        {
          stream: ["m=audio 0 RTP/AVP 97", "a=rtpmap:97 MP4A-LATM/48000/2", "a=fmtp:97 config=4g"],
        },
        /^RTSP\/1.0 415 Unsupported Media Type: stream 0 has config=4g/,
      ],
      // More streams than a publish has ports for: it was 503 "try again", every time.
      [
        {
          stream: [0, 1, 2, 3, 4].flatMap((pt) => [
            `m=video 0 RTP/AVP ${96 + pt}`,
            `a=rtpmap:${96 + pt} H264/90000`,
            `a=control:streamid=${pt}`,
          ]),
        },
        /^RTSP\/1.0 400 Bad Request: the publish has 5 streams; a publish takes at most 4/,
      ],
      // GstSDP asserts on these (size 0 after the C string's end): the server aborted.
      [{ body: "" }, /^RTSP\/1.0 400 Bad Request: the ANNOUNCE body is not an SDP/],
      [{ body: "\0v=0\r\n" }, /^RTSP\/1.0 400 Bad Request: the ANNOUNCE body is not an SDP/],
    ] as const
  ) {
    const { status, conn } = await announceOn(view, name, options);
    conn.close();
    assert.match(status, expected, `${JSON.stringify(options)}: ${status}`);
    assert.equal(await view.listed(name), undefined, `a publish after ${JSON.stringify(options)}`);
  }
  const { status, conn } = await announceOn(view, name);
  try {
    assert.equal(status, "RTSP/1.0 200 OK", "the corrected ANNOUNCE");
    // A publish cannot be paused (that was ok, and then ended the publish a moment later).
    const paused = expectError(
      await client.request("pausePipeline", { id: name }),
      "INVALID_STATE",
    );
    assert.match(paused.message, /is a publish: it plays as its sender sends and cannot be paused/);
  } finally {
    conn.close();
  }
  expectOk(await client.request("deletePipeline", { id: name }), view.logs);
});

/*
 * A publish deleted by a client ends a moment later. Before 2026-12-04 its end deleted the
 * pipeline of its name, which by then could be another client's new pipeline (row and all).
 */
Deno.test("a publish deleted by a client ends without deleting the pipeline that took its name", async () => {
  const name = freshId("taken");
  const { status, conn } = await announceOn(view, name);
  try {
    assert.equal(status, "RTSP/1.0 200 OK");
    await waitUntil(
      async () => (await view.listed(name))?.state === "PLAYING",
      10_000,
      `the publish of ${name} to be PLAYING`,
    );
    expectOk(await client.request("deletePipeline", { id: name }), view.logs);
    expectOk(
      await client.request("createPipeline", { id: name, pipeline: "fakesrc ! fakesink" }),
      view.logs,
    );
    await server.waitForLog(`Publish '${name}' from `);
    const listed = await view.listed(name);
    assert.equal(
      listed?.kind,
      "pipeline",
      `${name} after the publish ended: ${JSON.stringify(listed)}`,
    );
    // The publisher (an ANNOUNCE and nothing more) has its connection closed by the server; not
    // closed within 10 s, the read fails.
    const giveUp = setTimeout(() => conn.close(), 10_000);
    const rest = new Uint8Array(4096);
    while ((await conn.read(rest)) !== null);
    clearTimeout(giveUp);
  } finally {
    try {
      conn.close();
    } catch {
      // closed already
    }
    await client.request("deletePipeline", { id: name });
  }
});

/**
 * A publisher whose publish ends while it sends requests: until 2026-12-06 the server closed its
 * connection from another thread while the publisher's client thread read from it, a CRITICAL
 * (g_pollable_input_stream_read_nonblocking), which aborts the server under fatal-criticals.
 */
Deno.test("a publisher that keeps sending requests while its publish is deleted does not crash the server", async () => {
  // A race: several attempts, the requests flowing for 0.3 to 0.7 s before the delete.
  for (let attempt = 0; attempt < 12; attempt++) {
    const name = freshId("busy");
    const { status, conn } = await announceOn(view, name);
    assert.equal(status, "RTSP/1.0 200 OK");
    const reading = (async () => {
      const rest = new Uint8Array(65536);
      try {
        while ((await conn.read(rest)) !== null);
      } catch {
        // closed
      }
    })();
    let sending = true;
    let cseq = 10;
    const requests = (async () => {
      try {
        while (sending) {
          let batch = "";
          for (let i = 0; i < 20; i++) {
            batch += `PLAY ${view.url(name)} RTSP/1.0\r\nCSeq: ${cseq++}\r\n\r\n`;
          }
          await writeAll(conn, batch);
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      } catch {
        // closed by the server
      }
    })();
    await waitUntil(() => cseq > 200, 10_000, "requests sent on the publisher's connection");
    await new Promise((resolve) => setTimeout(resolve, 300 + 100 * (attempt % 5)));
    expectOk(await client.request("deletePipeline", { id: name }), view.logs);
    // The server closes the publisher's connection (within 10 s, or the read is given up).
    const giveUp = setTimeout(() => conn.close(), 10_000);
    await reading;
    clearTimeout(giveUp);
    sending = false;
    await requests;
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
  // Still serving: it did not abort.
  expectOk(await client.request("getPipelines", {}), view.logs);
});

// ---------------------------------------------------------------------------------------------
// Auth: a server of its own

const VIEWER = { user: "viewer", password: "viewer-pw-0123" };
const CAM = { user: "cam", password: "cam-pw-4567" };
const TOKEN = "publish-token-0123456789abcdef";

Deno.test("publish auth: none 401, a reader 403, the publisher and the token publish", async (t) => {
  const authServer = await startServer({
    GSTREAMER_STATS_INTERVAL_MS: "250",
    GSTREAMER_RTSP_USER: VIEWER.user,
    GSTREAMER_RTSP_PASSWORD: VIEWER.password,
    GSTREAMER_RTSP_PUBLISH_USER: CAM.user,
    GSTREAMER_RTSP_PUBLISH_PASSWORD: CAM.password,
    GSTREAMER_AUTH_TOKEN: TOKEN,
  });
  try {
    // With a token the WebSocket needs it too (here as the `token` query parameter).
    await using authClient = await TestClient.connect(
      `${authServer.url}?token=${encodeURIComponent(TOKEN)}`,
    );
    const v = new View(authServer, authClient);
    const tokenCredentials = { user: "token", password: TOKEN };

    const refusals: [string, { user: string; password: string } | undefined, RegExp][] = [
      // Without credentials no request is answered: ffmpeg's first one, OPTIONS, gets the 401.
      ["no credentials", undefined, /method OPTIONS failed: 401 Unauthorized/],
      ["a wrong publisher password", { ...CAM, password: "wrong" }, /401 Unauthorized/],
      ["the reader's credentials", VIEWER, /method ANNOUNCE failed: 403 Forbidden/],
    ];
    for (const [what, credentials, expected] of refusals) {
      await t.step(`${what}: refused`, async () => {
        const name = freshId("auth-refused");
        const since = v.mark();
        const result = await ffmpegPublish(clips.short, v.url(name, credentials)).finished;
        assert.notEqual(result.code, 0, "the publish was let in");
        assert.match(result.stderr, expected, result.stderr);
        assert.deepEqual(v.eventsSince(since, "pipelineCreated", name), []);
      });
    }

    const publishers: [string, { user: string; password: string }][] = [
      ["the publish user", CAM],
      ["user 'token' with the API token", tokenCredentials],
    ];
    for (const [what, credentials] of publishers) {
      await t.step(`${what} publishes; the reader reads it back`, async () => {
        const name = freshId("auth-published");
        const { streams } = await publishAndRead(
          v,
          name,
          () => ffmpegPublish(clips.short, v.url(name, credentials)),
          v.url(name, VIEWER),
        );
        assertH264Aac(streams);
        report(`${name} (${credentials.user})`, streams);
      });
    }
    assert.ok(
      !authServer.logs.some((line) =>
        [VIEWER.password, CAM.password, TOKEN].some((secret) => line.includes(secret))
      ),
      "a secret was printed",
    );
  } finally {
    assert.equal(await authServer.stop(), 0, authServer.logs.join("\n"));
  }
});

Deno.test("a publish whose video pauses while its audio goes on is not ended as silent", async () => {
  const name = freshId("stall");
  // A video frame every 12 s (a camera that sends on motion) beside steady audio.
  const { since, sender } = await startPublish(
    view,
    name,
    () =>
      spawn("gst-launch-1.0", [
        ..."-e rtspclientsink name=s".split(" "),
        `location=${view.url(name)}`,
        // Only the key frames of an encoder that makes one every 12 s (a source at 1/12 fps
        // would make gst-launch hold the audio 12 s too: its latency).
        ..."videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1".split(" "),
        ..."! x264enc tune=zerolatency key-int-max=360".split(" "),
        ..."! identity drop-buffer-flags=delta-unit ! h264parse ! s.".split(" "),
        ..."audiotestsrc is-live=true ! avenc_aac ! aacparse ! s.".split(" "),
      ]),
  );
  try {
    // Past the 10 s a publish without data is given (it ended as silent at 10 s before), and
    // on to its second key frame.
    await client.nextStats(
      (entry) => entry.id === name && entry.uptime >= 12.5,
      20_000,
    ).catch((error) => {
      const ends = server.logs.filter((line) => line.startsWith(`Publish '${name}' from `));
      throw new Error(`${error.message}; ${ends.join("; ")}`);
    });
    assert.deepEqual(view.eventsSince(since, "pipelineDeleted", name), []);
  } finally {
    kill(sender.process);
    await sender.finished;
  }
  await view.ended(since, name, 30_000);
});
