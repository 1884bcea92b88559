/**
 * Push benchmark (DESIGN.md, "Tests and benchmarks"): POST /push/{name}
 * against GStreamer doing the same work, in the same run.
 *
 * Part 1, ingest throughput: one unpaced POST of a ~60 MB 720p30 H.264
 * Annex-B file (fetch streaming the file as the body, no RTSP client), timed
 * from the request's start to the reply, against `gst-launch-1.0 filesrc !
 * h264parse ! fakesink` on the same file timed from spawn to exit. Best of
 * --runs alternating runs each. A second, informative baseline runs the push
 * pipeline's own chain in gst-launch-1.0 (filesrc ! h264parse ! identity !
 * rtph264pay ! udpsink to a loopback port nobody reads), which is the work
 * the server does per byte. Target: ours >= 0.5 x the h264parse baseline.
 *
 * Part 2, time to first frame for a joiner: a paced push (`ffmpeg -re
 * -stream_loop -1` of a 30 fps clip with a key frame every 60 frames, so it
 * lasts as long as the joins take); --joins times, after a random delay
 * within one key-frame interval (so joins fall at random points of the GOP),
 * `gst-launch-1.0 -m rtspsrc protocols=tcp latency=0 ! rtph264depay
 * wait-for-keyframe=true ! avdec_h264 output-corrupt=false ! fakesink
 * num-buffers=1`. Without those two settings the "first frame" is a P frame
 * decoded against nothing (grey garbage) within ~30 ms of PLAY. Times taken
 * from the client's own output: spawn to the PLAY reply ("Sent PLAY request",
 * the client's setup: process start, GStreamer init, OPTIONS, DESCRIBE, SETUP,
 * PLAY) and spawn to the first decoded frame at the sink (EOS after
 * num-buffers=1); their difference is the wait for a decodable frame. A
 * joiner waits for the next key frame: uniform over one key-frame interval,
 * so interval / 2 on average is the floor. Target: p50 after PLAY <= the
 * key-frame interval.
 *
 * Part 3, fan-out: one paced push read by --clients RTSP clients over TCP
 * (`ffprobe -rtsp_transport tcp -show_entries packet=size,flags`, which lists
 * every packet it gets without decoding; see startReader in bench/measure.ts).
 * The pushing ffmpeg reads the clip from our stdin, which we write one access
 * unit per 1/30 s: first a few frames until the server has the stream (the
 * RTSP path only serves once the payloader has caps), then nothing until every
 * client shows in the stats (rtspClients), then the rest paced. (`ffmpeg -re`
 * cannot do this: after a pause it sends everything it fell behind in at
 * once.) Each client should receive every frame the server passed after it
 * connected: clip frames `primed` to the end. Its listed packets are put back
 * in their places in the clip by size (account in bench/measure.ts), so a
 * frame lost is a frame of the clip, at the start, inside or at the end, and
 * the frames it got before its first key frame (it joined mid-GOP) are
 * counted: the server sent them, though a decoder could not use them. Only
 * stdout is parsed; ffprobe's errors (a decoder's "Missing reference
 * picture" while it probes a stream that starts mid-GOP) go to stderr, and
 * the report prints their tail, the exit and the frames missing for every
 * client counted short or failed. Server CPU from /proc over the paced
 * window, with the clients' CPU and the machine's busy time beside it.
 * Target: no frame lost.
 *
 * Targets are reported as PASS/MISS; a miss never fails the run.
 *
 *   deno run --allow-all bench/push.ts [--size-mb 60] [--runs 3] [--joins 20]
 *     [--clients 50] [--clip 30]
 */
import dgram from "node:dgram";
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  type Account,
  account,
  type Child,
  cpuSplit,
  endReader,
  generateClip,
  GroupMeter,
  groupReasons,
  joinOnce,
  killChildren,
  machineBusy,
  machineTicks,
  mib,
  ms,
  type Packet,
  parseNumberOptions,
  type PipelineStats,
  probePackets,
  type ReaderEnd,
  runChecked,
  serverProcessId,
  sleep,
  spawn,
  startReader,
  startUsage,
  StatsWatcher,
  stopServer,
  summarize,
  type Summary,
  type Usage,
  verdict,
  whyShort,
  within,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  /** Part 1: size of the ingest file in MB (8 Mb/s, so also its length in seconds). */
  "size-mb": number;
  /** Part 1: runs of ours and of each baseline (the best counts). */
  runs: number;
  /** Part 2: RTSP clients that join one after the other. */
  joins: number;
  /** Part 3: RTSP clients reading one push at once. */
  clients: number;
  /** Parts 2 and 3: length of the paced clip in seconds. */
  clip: number;
}

function parseOptions(args: string[]): Options {
  const options = parseNumberOptions<Options>(args, {
    "size-mb": 60,
    runs: 3,
    joins: 20,
    clients: 50,
    clip: 30,
  });
  if (Object.values(options).some((value) => value < 1)) {
    throw new Error("Every option needs at least 1");
  }
  return options;
}

const FPS = 30;
const GOP = 60;
const keyFrameIntervalMs = (GOP / FPS) * 1000;
const MB = 1e6;

// ---------------------------------------------------------------- media

/** ffprobe's count of decoded frames in the file (cached beside it). */
async function frameCount(path: string): Promise<number> {
  const cache = `${path}.frames`;
  try {
    if (Deno.statSync(cache).mtime! >= Deno.statSync(path).mtime!) {
      return Number(Deno.readTextFileSync(cache));
    }
  } catch {
    // not counted yet
  }
  // deno-fmt-ignore
  const probe = await runChecked("ffprobe", [
    "-v", "error", "-count_frames", "-select_streams", "v:0",
    "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path,
  ]);
  const count = Number(probe.stdout().trim());
  if (!Number.isInteger(count) || count <= 0) throw new Error(`ffprobe said '${probe.output()}'`);
  Deno.writeTextFileSync(cache, String(count));
  return count;
}

/**
 * Splits an Annex-B H.264 stream into access units (each with its leading
 * start code): a unit ends before an AUD, SPS, PPS or SEI, or before a slice
 * whose first_mb_in_slice is 0, that follows a slice.
 */
function accessUnits(data: Uint8Array): Uint8Array[] {
  const units: Uint8Array[] = [];
  let unitStart = 0;
  let hasSlice = false;
  for (let i = 0; i + 4 < data.length; i++) {
    if (data[i] !== 0 || data[i + 1] !== 0 || data[i + 2] !== 1) continue;
    const start = i > 0 && data[i - 1] === 0 ? i - 1 : i;
    const type = data[i + 3] & 0x1f;
    const slice = type === 1 || type === 5;
    // first_mb_in_slice is ue(v): 0 is coded as a single 1 bit.
    const opens = (slice && (data[i + 4] & 0x80) !== 0) || (type >= 6 && type <= 9) ||
      (type >= 14 && type <= 18);
    if (hasSlice && opens) {
      units.push(data.subarray(unitStart, start));
      unitStart = start;
      hasSlice = false;
    }
    if (slice) hasSlice = true;
    i += 2;
  }
  if (unitStart < data.length) units.push(data.subarray(unitStart));
  return units;
}

// ---------------------------------------------------------------- part 1

interface Ingest {
  file: string;
  bytes: number;
  ffprobeFrames: number;
  /** Milliseconds per run. */
  ours: number[];
  parse: number[];
  relay: number[];
  replies: PipelineStats[];
}

async function partOne(server: ServerProcess, options: Options): Promise<Ingest> {
  const seconds = options["size-mb"]; // 8 Mb/s is 1 MB/s
  const file = await generateClip(`ingest-720p30-8M-${seconds}s.h264`, seconds, "8M", GOP);
  const bytes = Deno.statSync(file).size;
  const ffprobeFrames = await frameCount(file);
  // A loopback port nobody reads, as the server's relay port is while no RTSP client is there.
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  const result: Ingest = {
    file,
    bytes,
    ffprobeFrames,
    ours: [],
    parse: [],
    relay: [],
    replies: [],
  };
  console.log(`Part 1: ${options.runs} x POST of ${(bytes / MB).toFixed(1)} MB and baselines ...`);
  for (let run = 0; run < options.runs; run++) {
    const body = await Deno.open(file);
    const startedAt = performance.now();
    const response = await fetch(`${server.httpUrl}/push/ingest-${run}`, {
      method: "POST",
      headers: { "content-type": "video/h264" },
      body: body.readable,
    });
    const reply = await response.json();
    result.ours.push(performance.now() - startedAt);
    if (response.status !== 200) {
      throw new Error(`POST replied ${response.status}: ${JSON.stringify(reply)}`);
    }
    result.replies.push(reply);

    let child = await runChecked("gst-launch-1.0", [
      "-q",
      "filesrc",
      `location=${file}`,
      "!",
      "h264parse",
      "!",
      "fakesink",
    ]);
    result.parse.push((await child.exited).at - child.spawnedAt);
    // deno-fmt-ignore
    child = await runChecked("gst-launch-1.0", [
      "-q", "filesrc", `location=${file}`, "!", "h264parse", "config-interval=-1", "!",
      "identity", "silent=true", "!", "rtph264pay", "config-interval=-1", "pt=96", "!",
      "udpsink", "host=127.0.0.1", `port=${port}`, "sync=false", "async=false",
    ]);
    result.relay.push((await child.exited).at - child.spawnedAt);
  }
  return result;
}

// ---------------------------------------------------------------- part 2

interface Joins {
  /** Spawn to the first decoded frame. */
  firstFrame: Summary;
  /** Spawn to the PLAY reply. */
  setup: Summary;
  /** PLAY reply to the first decoded frame. */
  afterPlay: Summary;
  /** Spawn to exit. */
  exit: Summary;
  failures: string[];
  pushFps: number;
}

async function partTwo(
  server: ServerProcess,
  stats: StatsWatcher,
  clip: string,
  options: Options,
): Promise<Joins> {
  const name = "ttff";
  // The clip again and again on ffmpeg's stdin, for as long as the joins take (-stream_loop
  // cannot seek a raw H.264 input); -re paces it.
  // deno-fmt-ignore
  const pusher = spawn("ffmpeg", [
    "-v", "error", "-re", "-framerate", String(FPS), "-f", "h264", "-i", "pipe:0",
    "-c", "copy", "-flush_packets", "1", "-f", "h264",
    "-content_type", "video/h264", `${server.httpUrl}/push/${name}`,
  ], "piped");
  const clipBytes = Deno.readFileSync(clip);
  const writer = pusher.process.stdin.getWriter();
  let looping = true;
  const feeding = (async () => {
    while (looping) await writer.write(clipBytes);
  })().catch(() => {}); // ends when ffmpeg does
  const firstFrame: number[] = [];
  const setup: number[] = [];
  const afterPlay: number[] = [];
  const exit: number[] = [];
  const failures: string[] = [];
  let pushFps = NaN;
  try {
    const running = await Promise.race([
      stats.until(name, (p) => p?.frames > 0, 20000, `frames of push '${name}'`),
      pusher.exited.then(({ code }) => {
        throw new Error(`The pushing ffmpeg exited ${code}:\n${pusher.output()}`);
      }),
    ]);
    const from = { frames: running!.frames, at: stats.latest!.at };
    console.log(`Part 2: ${options.joins} joins of a paced push ...`);
    const url = `${server.rtspUrl}/${name}`;
    for (let join = 0; join < options.joins; join++) {
      await sleep(Math.random() * keyFrameIntervalMs);
      const result = await joinOnce(url);
      if (typeof result === "string") {
        failures.push(`join ${join}: ${result}`);
        continue;
      }
      firstFrame.push(result.firstFrame);
      setup.push(result.setup);
      afterPlay.push(result.firstFrame - result.setup);
      exit.push(result.exit);
    }
    await stats.next();
    const to = { frames: stats.pipeline(name)?.frames, at: stats.latest!.at };
    pushFps = (to.frames - from.frames) / ((to.at - from.at) / 1000);
  } finally {
    // SIGTERM: ffmpeg ends the body, the server ends the push and replies.
    looping = false;
    await pusher.kill("SIGTERM");
    await feeding;
  }
  await stats.until(name, (p) => p === undefined, 15000, `push '${name}' to end`);
  if (firstFrame.length === 0) throw new Error(`No join saw a frame:\n${failures.join("\n")}`);
  return {
    firstFrame: summarize(firstFrame),
    setup: summarize(setup),
    afterPlay: summarize(afterPlay),
    exit: summarize(exit),
    failures,
    pushFps,
  };
}

// ---------------------------------------------------------------- part 3

/** One fan-out client: its frames counted against the clip, how it ended, why it is short. */
interface Reader {
  account: Account;
  end: ReaderEnd;
  /** Why it is counted short or failed; null when it got every frame and ended cleanly. */
  reason: string | null;
  /** It ended badly (exit code, signal, timeout) or none of its packets found its place. */
  failed: boolean;
}

interface FanOut {
  clients: number;
  /** Frames in the clip, all of which the pusher is given. */
  frames: number;
  /** Frames the server had passed before the clients connected (priming). */
  primed: number;
  /** Clip frames primed..frames-1, sent after the clients connected. */
  expectedEach: number;
  /** The server's count of frames at the push's end (its log line), if it printed one. */
  serverFrames: number | null;
  serverEndLine: string;
  readers: Reader[];
  usage: Usage;
  /** Percent of one core, over the paced window. */
  readersCpu: number;
  /** Percent of all cores, over the paced window. */
  machineBusy: number;
  pushFps: number;
  minClientsInWindow: number;
  lastServerFrames: number | null;
}

/** How long a client may take to end after the push did. */
const READER_END_MS = 20000;

async function partThree(
  server: ServerProcess,
  stats: StatsWatcher,
  serverPid: number,
  clip: string,
  clipPackets: Packet[],
  options: Options,
): Promise<FanOut> {
  const name = "fanout";
  const units = accessUnits(Deno.readFileSync(clip));
  // -probesize 32 -analyzeduration 0: ffmpeg otherwise holds ~5 s of frames before it sends any.
  // deno-fmt-ignore
  const pusher = spawn("ffmpeg", [
    "-v", "error", "-probesize", "32", "-analyzeduration", "0", "-framerate", String(FPS),
    "-f", "h264", "-i", "pipe:0", "-c", "copy", "-flush_packets", "1", "-f", "h264",
    "-content_type", "video/h264", `${server.httpUrl}/push/${name}`,
  ], "piped");
  const writer = pusher.process.stdin.getWriter();
  const clients: Child[] = [];
  try {
    const pusherGone = pusher.exited.then(({ code }) => {
      throw new Error(`The pushing ffmpeg exited ${code}:\n${pusher.output()}`);
    });
    pusherGone.catch(() => {}); // awaited in the races below; its end after them is expected
    // Prime: frames one by one until the server has passed one, then on until an extra client
    // (not counted) is in. The first client of a path builds the shared RTSP media, and its
    // DESCRIBE waits for a frame to come through it; clients after it are answered without.
    const url = `${server.rtspUrl}/${name}`;
    let opener: Child | undefined;
    let written = 0;
    while (!((stats.pipeline(name)?.rtspClients ?? 0) >= 1)) {
      if (written >= 2 * GOP) {
        throw new Error(
          `No RTSP client in after ${written} frames written; stats: ${
            JSON.stringify(stats.pipeline(name))
          }; opener: ${opener?.output()}`,
        );
      }
      if (!opener && stats.pipeline(name)?.frames > 0) clients.push(opener = startReader(url));
      await Promise.race([writer.write(units[written++]), pusherGone]);
      await sleep(100);
    }
    // The count is settled when two broadcasts agree.
    let primed = stats.pipeline(name)!.frames;
    for (;;) {
      await Promise.race([stats.next(), pusherGone]);
      const now = stats.pipeline(name)!.frames;
      if (now === primed) break;
      primed = now;
    }

    console.log(
      `Part 3: ${options.clients} RTSP clients on one push (${written} frames primed) ...`,
    );
    const measured: Child[] = [];
    for (let i = 0; i < options.clients; i++) clients.push(startReader(url));
    measured.push(...clients.slice(1));
    const sessions = options.clients + 1;
    await Promise.race([
      stats.until(
        name,
        (p) => p?.rtspClients === sessions,
        30000,
        `${sessions} RTSP clients`,
      ),
      pusherGone,
    ]);
    await sleep(1000); // the PLAY that follows each SETUP
    if (stats.pipeline(name)!.frames !== primed) {
      throw new Error(
        `Frames moved from ${primed} to ${stats.pipeline(name)!.frames} while paused`,
      );
    }

    console.log(`Part 3: pushing ${units.length - written} frames paced at ${FPS} fps ...`);
    const meter = startUsage(serverPid);
    const readerMeter = new GroupMeter(measured.map((client) => client.process.pid));
    const machineFrom = machineTicks();
    const sampler = setInterval(() => {
      meter.sample();
      readerMeter.sample();
    }, 1000);
    let minClientsInWindow = sessions;
    let pacing = true;
    const counting = (async () => {
      while (pacing) {
        await stats.next();
        const entry = stats.pipeline(name);
        if (!pacing || !entry) return;
        minClientsInWindow = Math.min(minClientsInWindow, entry.rtspClients ?? 0);
      }
    })();
    const fromFrames = { frames: primed, at: performance.now() };
    let usage: Usage;
    let readersSeconds: number;
    let busy: number;
    let lastServerFrames: number | null = null;
    try {
      const pacedFrom = performance.now();
      for (let i = written; i < units.length; i++) {
        const due = pacedFrom + ((i - written) * 1000) / FPS;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        await Promise.race([writer.write(units[i]), pusherGone]);
      }
      lastServerFrames = stats.pipeline(name)?.frames ?? null;
      usage = meter.stop();
      readersSeconds = readerMeter.seconds();
      busy = machineBusy(machineFrom);
    } finally {
      pacing = false;
      clearInterval(sampler);
    }
    const pushFps = ((lastServerFrames ?? NaN) - fromFrames.frames) /
      ((stats.latest!.at - fromFrames.at) / 1000);
    await writer.close();
    // The body ends, the push ends, the clients get the end of the stream.
    await within(pusher.exited, 15000);
    await within(counting, 15000);
    const serverEndLine = await server.waitForLog(`Push '${name}' ended`, 15000).catch(() => "");
    const framesMatch = serverEndLine.match(/(\d+) frames in/);
    // Every client connected (and was paused) before clip frame `primed` left the server, so it
    // should get primed..end: the frames sent before it joined are not its to lose.
    const readers = await Promise.all(measured.map(async (client): Promise<Reader> => {
      const end = await endReader(client, READER_END_MS);
      const counted = account(clipPackets, end.packets, { from: primed, to: units.length });
      return {
        account: counted,
        end,
        reason: whyShort(counted, end, GOP),
        failed: !end.clean || counted.first === null,
      };
    }));
    return {
      clients: options.clients,
      frames: units.length,
      primed,
      expectedEach: units.length - primed,
      serverFrames: framesMatch ? Number(framesMatch[1]) : null,
      serverEndLine,
      readers,
      usage,
      readersCpu: (readersSeconds / usage.seconds) * 100,
      machineBusy: busy,
      pushFps,
      minClientsInWindow,
      lastServerFrames,
    };
  } finally {
    await writer.close().catch(() => {});
    await pusher.kill();
    await Promise.all(clients.map((client) => client.kill()));
  }
}

// ---------------------------------------------------------------- report

interface Results {
  serverStartMs: number;
  ingest: Ingest;
  clipFrames: number;
  joins: Joins;
  fanOut: FanOut;
}

function report(r: Results): void {
  const { ingest, joins, fanOut } = r;
  const rate = (milliseconds: number) => ingest.bytes / MB / (milliseconds / 1000);
  const best = (values: number[]) => Math.min(...values);
  const list = (values: number[]) => values.map((v) => rate(v).toFixed(0)).join(", ");
  const ours = rate(best(ingest.ours));
  const parse = rate(best(ingest.parse));
  const relay = rate(best(ingest.relay));
  const ratio = ours / parse;
  const replyFrames = ingest.replies.map((reply) => reply.frames);
  const s = (value: number) => `${(value / 1000).toFixed(2)} s`;
  const counts = fanOut.readers.map((reader) => reader.account);
  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
  const got = counts.map((a) => a.got);
  const expectedTotal = fanOut.expectedEach * fanOut.clients;
  const receivedTotal = sum(got);
  const failed = fanOut.readers.filter((reader) => reader.failed).length;
  const short = fanOut.readers.filter((reader) => !reader.failed && reader.reason !== null).length;
  const lost = expectedTotal - receivedTotal;
  const beforeKey = [...new Set(counts.filter((a) => a.first !== null).map((a) => a.beforeKey))];
  const cores = navigator.hardwareConcurrency;
  const lines = [
    "",
    "=== push benchmark ===",
    `server start to listening: ${ms(r.serverStartMs)}`,
    `part 1: ${(ingest.bytes / MB).toFixed(1)} MB 720p30 H.264 (${ingest.file}), best of ` +
    `${ingest.ours.length} runs; ours = fetch POST start to reply, baselines = spawn to exit`,
    `ingest: ours ${ours.toFixed(0)} MB/s, gst-launch filesrc ! h264parse ! fakesink ` +
    `${parse.toFixed(0)} MB/s, ratio ${ratio.toFixed(2)} (target >= 0.5): ${verdict(ratio >= 0.5)}`,
    `ingest per run (MB/s): ours ${list(ingest.ours)}; h264parse ${list(ingest.parse)}; ` +
    `push chain in gst-launch (h264parse ! identity ! rtph264pay ! udpsink) ${list(ingest.relay)}`,
    `ingest vs the push chain in gst-launch: ${relay.toFixed(0)} MB/s, ratio ${
      (ours / relay).toFixed(2)
    }`,
    `ingest frames: server replied ${replyFrames.join(", ")}; ffprobe -count_frames ` +
    `${ingest.ffprobeFrames}: ${
      verdict(replyFrames.every((frames) => frames === ingest.ffprobeFrames))
    }`,
    `part 2: ${joins.firstFrame.count + joins.failures.length} joins (${joins.firstFrame.count} ` +
    `saw a frame, ${joins.failures.length} failed) of a paced push ` +
    `(${joins.pushFps.toFixed(1)} fps in stats), gst-launch rtspsrc tcp client`,
    `time to first frame (spawn to first decoded frame): p50 ${s(joins.firstFrame.p50)}, p99 ${
      s(joins.firstFrame.p99)
    }, mean ${s(joins.firstFrame.mean)}`,
    `  of which client setup (spawn to PLAY reply): p50 ${s(joins.setup.p50)}, p99 ${
      s(joins.setup.p99)
    }; spawn to exit: p50 ${s(joins.exit.p50)}`,
    `after PLAY: p50 ${s(joins.afterPlay.p50)}, p99 ${s(joins.afterPlay.p99)}, mean ${
      s(joins.afterPlay.mean)
    }, min ${s(joins.afterPlay.min)}; key-frame interval ${s(keyFrameIntervalMs)} ` +
    `(mean wait floor ${s(keyFrameIntervalMs / 2)}), p50 ratio ${
      (joins.afterPlay.p50 / keyFrameIntervalMs).toFixed(2)
    } (target <= 1): ${verdict(joins.afterPlay.p50 <= keyFrameIntervalMs)}`,
    ...joins.failures.slice(0, 5).map((failure) => `  failed ${failure.slice(0, 300)}`),
    `part 3: ${fanOut.clients} ffprobe RTSP/TCP clients (+1 that opened the path, not counted), ` +
    `${fanOut.frames} frames in the clip, ` +
    `${fanOut.primed} passed before the clients connected, paced at ` +
    `${fanOut.pushFps.toFixed(1)} fps in stats, rtspClients >= ${fanOut.minClientsInWindow} ` +
    `in the window`,
    `fan-out frames: expected ${expectedTotal} (${fanOut.expectedEach} each: clip frames ` +
    `${fanOut.primed}-${fanOut.frames - 1}, sent after the clients connected), received ` +
    `${receivedTotal}, lost ${lost} (${short} clients short, ${failed} failed; per client ` +
    `min ${Math.min(...got)} max ${Math.max(...got)}) (target 0 lost): ${
      verdict(lost <= 0 && failed === 0)
    }`,
    `  where lost: ${sum(counts.map((a) => a.lostAtStart))} at the start, ` +
    `${sum(counts.map((a) => a.lostInside))} inside, ${sum(counts.map((a) => a.lostAtEnd))} ` +
    `at the end; frames the server counted: ${fanOut.serverFrames ?? "?"} of ${fanOut.frames} ` +
    `(${fanOut.serverEndLine || "no end line"}); counted by placing each listed packet in the ` +
    `clip by its size`,
    `  each client joined at clip frame ${fanOut.primed}, key frames every ${GOP}: its first ` +
    `${beforeKey.join(" or ") || "-"} frames came before a key frame (counted: the server sent ` +
    `them; a decoder drops them, which is what a frame-decoding count would miss)`,
    ...groupReasons(fanOut.readers.map((reader) => reader.reason), "  client")
      .map((line) => line.slice(0, 600)),
    `fan-out server CPU over ${fanOut.usage.seconds.toFixed(1)} s: ` +
    `${fanOut.usage.cpuPercent.toFixed(1)}% of one core (${cpuSplit(fanOut.usage)}), ` +
    `RSS ${mib(fanOut.usage.rssKib)} (peak ${mib(fanOut.usage.rssPeakKib)}); the ` +
    `${fanOut.clients} clients ${fanOut.readersCpu.toFixed(0)}% of one core; machine busy ` +
    `${fanOut.machineBusy.toFixed(0)}% of all ${cores} cores${
      fanOut.machineBusy >= 90 ? " (saturated: losses then say as much about the machine)" : ""
    }`,
  ];
  console.log(lines.join("\n"));
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  let server: ServerProcess | undefined;
  let client: TestClient | undefined;
  const interrupted = async () => {
    await killChildren();
    await server?.stop();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const clip = await generateClip(
      `clip-720p30-2M-g${GOP}-${options.clip}s.h264`,
      options.clip,
      "2M",
      GOP,
    );
    const clipPackets = await probePackets(clip);
    const clipFrames = clipPackets.length;
    const startedAt = performance.now();
    server = await startServer();
    const serverStartMs = performance.now() - startedAt;
    const serverPid = serverProcessId(server);
    client = await TestClient.connect(server.url);
    const stats = new StatsWatcher(client);
    const ingest = await partOne(server, options);
    const joins = await partTwo(server, stats, clip, options);
    const fanOut = await partThree(server, stats, serverPid, clip, clipPackets, options);
    if (fanOut.frames !== clipFrames) {
      console.warn(
        `WARNING: ${fanOut.frames} access units in the clip, ffprobe says ${clipFrames}`,
      );
    }
    report({ serverStartMs, ingest, clipFrames, joins, fanOut });
  } finally {
    await killChildren();
    await client?.close().catch(() => {});
    if (server) await stopServer(server);
    Deno.removeSignalListener("SIGINT", interrupted);
  }
}

if (import.meta.main) await main();
