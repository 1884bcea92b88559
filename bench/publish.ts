/**
 * Publish benchmark: one RTSP publish (ANNOUNCE/RECORD, `ffmpeg -re -c copy -f rtsp
 * -rtsp_transport tcp`) of a 1080p30 ~8 Mbit/s H.264 clip read by --readers RTSP/TCP clients,
 * and in the same run the same clip sent the other way the server takes a stream, `POST
 * /push/{name}` (`ffmpeg -re -c copy -f h264`, Content-Type video/h264), read the same way.
 * The two are printed side by side, with publish/push as the ratio.
 *
 * Each run: the sender starts; once the server's stats show frames flowing, --readers
 * `ffprobe -rtsp_transport tcp -show_entries packet=size,flags` connect at once (they demux and
 * list every packet without decoding, which is what lets 50 of them run on 2 cores). Halfway
 * through, a late joiner (`gst-launch-1.0 rtspsrc protocols=tcp latency=0 ! rtph264depay
 * wait-for-keyframe=true ! avdec_h264 output-corrupt=false ! fakesink num-buffers=1`, as in
 * bench/push.ts part 2) times spawn to the PLAY reply and to its first decoded frame; a joiner
 * waits for the next key frame, uniform over one key-frame interval (1 s here), so one sample
 * says little and --joiners N runs N of them one after the other.
 *
 * Frames lost: a reader starts wherever it joined, and frames before its first key frame do not
 * count. Every packet a reader lists is put back in its place in the clip by its size: the
 * server passes P and B frames through unchanged, so their sizes in the clip (ffprobe on the
 * file) and at the reader are equal up to a constant, and a run of five equal differences finds
 * where the reader's first key frame sits in the clip. What the reader should have got is every
 * frame of the clip from there to the end; what it got is what it listed that finds its place,
 * walking forward. Lost = should - got. A packet that finds no place is counted as "unplaced".
 *
 * Server CPU: utime + stime of the server process from /proc, from the moment every reader shows
 * in the stats (rtspClients) until the sender exits. In the same window the whole machine's busy
 * time (/proc/stat), the readers' and the sender's, so a saturated machine shows as such.
 *
 *   deno run --allow-all bench/publish.ts [--seconds 60] [--readers 50] [--joiners 1]
 *
 * PUBLISH_SECONDS and READERS in the environment set the defaults of --seconds and --readers.
 */
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  clockTicks,
  cpuSplit,
  cpuTicks,
  mib,
  parseNumberOptions,
  serverProcessId,
  sleep,
  startUsage,
  stopServer,
  type Usage,
  verdict,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  /** Length of the clip, in seconds. */
  seconds: number;
  /** RTSP/TCP clients reading each stream for its whole length. */
  readers: number;
  /** Late joiners per run, one after the other from halfway. */
  joiners: number;
}

function parseOptions(args: string[]): Options {
  const fromEnv = (name: string, fallback: number) => {
    const text = Deno.env.get(name);
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a whole number >= 1`);
    return value;
  };
  const options = parseNumberOptions<Options>(args, {
    seconds: fromEnv("PUBLISH_SECONDS", 60),
    readers: fromEnv("READERS", 50),
    joiners: 1,
  });
  if (options.seconds < 4) throw new Error("--seconds needs at least 4");
  if (options.readers < 1 || options.joiners < 1) {
    throw new Error("--readers and --joiners need at least 1");
  }
  return options;
}

const FPS = 30;
const GOP = 30;
const BITRATE = "8M";
const keyFrameIntervalMs = (GOP / FPS) * 1000;

// ---------------------------------------------------------------- child processes

/** Every child we started and have not reaped yet; killed in `finally`. */
const children = new Set<Deno.ChildProcess>();

interface Line {
  /** performance.now() when the chunk holding the line's end arrived. */
  at: number;
  text: string;
}

interface Child {
  process: Deno.ChildProcess;
  spawnedAt: number;
  lines: Line[];
  /** Everything the child printed so far, stdout and stderr. */
  output(): string;
  /** What it printed on stdout only. */
  stdout(): string;
  /** Exit code and when it was seen. */
  exited: Promise<{ code: number; at: number }>;
  kill(signal?: Deno.Signal): Promise<void>;
}

function spawn(command: string, args: string[]): Child {
  const spawnedAt = performance.now();
  const process = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(process);
  const lines: Line[] = [];
  const out: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, keep?: string[]) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      keep?.push(chunk);
      const at = performance.now();
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const text of parts) lines.push({ at, text });
    }
    if (pending) lines.push({ at: performance.now(), text: pending });
  };
  const pumps = Promise.all([pump(process.stdout, out), pump(process.stderr)]);
  const exited = process.status.then(async (status) => {
    const at = performance.now();
    await pumps.catch(() => {});
    children.delete(process);
    return { code: status.code, at };
  });
  return {
    process,
    spawnedAt,
    lines,
    output: () => lines.map((line) => line.text).join("\n"),
    stdout: () => out.join(""),
    exited,
    async kill(signal: Deno.Signal = "SIGKILL") {
      try {
        process.kill(signal);
      } catch {
        // already exited
      }
      await exited;
    },
  };
}

async function killAll(): Promise<void> {
  await Promise.all([...children].map(async (child) => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status.catch(() => {});
    children.delete(child);
  }));
}

/** Runs to the end; throws with the output when the exit code is not 0. */
async function runChecked(command: string, args: string[]): Promise<Child> {
  const child = spawn(command, args);
  const { code } = await child.exited;
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${code}:\n${child.output().slice(-2000)}`);
  }
  return child;
}

/** Resolves with the value, or null after `timeoutMs`. */
async function within<T>(promise: Promise<T>, timeoutMs: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends a child that did not end by itself: SIGTERM (ffprobe then prints what it has), then SIGKILL. */
async function reap(child: Child, timeoutMs: number): Promise<{ code: number } | null> {
  const ended = await within(child.exited, timeoutMs);
  if (ended !== null) return ended;
  try {
    child.process.kill("SIGTERM");
  } catch {
    // exited meanwhile
  }
  if ((await within(child.exited, 3000)) === null) await child.kill();
  return null;
}

// ---------------------------------------------------------------- the clip

const workDir = new URL("./.work/", import.meta.url).pathname;

interface Packet {
  size: number;
  key: boolean;
}

interface Clip {
  path: string;
  packets: Packet[];
  /** Mean bitrate over the clip, in bit/s. */
  bitrate: number;
}

/** ffprobe's packets of the first video stream: "size,flags" lines (others, side data, skipped). */
function parsePackets(text: string): Packet[] {
  const packets: Packet[] = [];
  for (const line of text.split("\n")) {
    const match = line.match(/^(\d+),([A-Z_]+)/);
    if (match) packets.push({ size: Number(match[1]), key: match[2].includes("K") });
  }
  return packets;
}

/**
 * testsrc2 1080p30 with moving noise (plain testsrc2 needs far less than 8 Mbit/s), libx264
 * veryfast at 8 Mbit/s, a key frame every 30 frames, in MP4 (the senders get timestamps from
 * the file), into bench/.work/ once.
 */
async function makeClip(seconds: number): Promise<Clip> {
  const path = `${workDir}publish-1080p30-${BITRATE}-g${GOP}-${seconds}s.mp4`;
  let exists = false;
  try {
    exists = Deno.statSync(path).size > 0;
  } catch {
    // not there yet
  }
  if (!exists) {
    Deno.mkdirSync(workDir, { recursive: true });
    console.log(
      `Generating ${path} (${seconds} s of 1080p30 at ${BITRATE}b/s; about 1x real time on 2 cores) ...`,
    );
    const partial = `${path}.partial.mp4`;
    // deno-fmt-ignore
    await runChecked("ffmpeg", [
      "-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=1920x1080:rate=${FPS}`,
      "-vf", "noise=alls=8:allf=t", "-t", String(seconds),
      "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
      "-b:v", BITRATE, "-maxrate", BITRATE, "-bufsize", "16M",
      "-g", String(GOP), "-keyint_min", String(GOP), "-sc_threshold", "0",
      "-an", "-movflags", "+faststart", partial,
    ]);
    Deno.renameSync(partial, path);
  }
  // deno-fmt-ignore
  const probe = await runChecked("ffprobe", [
    "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=size,flags",
    "-of", "csv=p=0", path,
  ]);
  const packets = parsePackets(probe.stdout());
  if (packets.length === 0 || !packets[0].key) {
    throw new Error(`ffprobe found no packets, or no key frame first, in ${path}`);
  }
  const bytes = packets.reduce((sum, packet) => sum + packet.size, 0);
  return { path, packets, bitrate: (bytes * 8) / (packets.length / FPS) };
}

// ---------------------------------------------------------------- frames lost

interface Account {
  /** Packets listed (every one, before the first key frame too). */
  listed: number;
  /** Index in the clip of the reader's first key frame; null when none was placed. */
  firstKey: number | null;
  /** Frames of the clip from that key frame to the end. */
  expected: number;
  /** Of those, the frames the reader got. */
  got: number;
  /** Listed packets after the first key frame that found no place in the clip. */
  unplaced: number;
  /** Indices in the clip of the frames lost (the first few). */
  missing: number[];
}

const ANCHOR_RUN = 5;
/** How far ahead of the last placed frame a frame is looked for. */
const SEARCH_AHEAD = 10 * GOP;
const MISSING_KEPT = 10;

/** Puts a reader's packets back in their places in the clip (see the header). */
function account(clip: Packet[], listed: Packet[]): Account {
  const none = {
    listed: listed.length,
    firstKey: null,
    expected: 0,
    got: 0,
    unplaced: 0,
    missing: [],
  };
  const k0 = listed.findIndex((packet) => packet.key);
  if (k0 < 0) return none;
  const keys = clip.flatMap((packet, index) => (packet.key ? [index] : []));
  // Anchor: ANCHOR_RUN non-key packets in a row whose sizes differ from a run of the clip's by one
  // constant (the server may add or drop the same few bytes to every frame).
  let anchor: { at: number; clipAt: number; delta: number } | null = null;
  for (let j = k0 + 1; j + ANCHOR_RUN <= listed.length && anchor === null; j++) {
    const run = listed.slice(j, j + ANCHOR_RUN);
    if (run.some((packet) => packet.key)) continue;
    for (let i = 0; i + ANCHOR_RUN <= clip.length; i++) {
      if (clip[i].key) continue;
      const delta = run[0].size - clip[i].size;
      if (run.every((packet, n) => !clip[i + n].key && packet.size - clip[i + n].size === delta)) {
        anchor = { at: j, clipAt: i, delta };
        break;
      }
    }
  }
  if (anchor === null) return none;
  // The reader's first key frame: the clip's last key frame before the anchor, one more back for
  // every key frame the reader listed between the two.
  const keysBetween = listed.slice(k0 + 1, anchor.at).filter((packet) => packet.key).length;
  const keyBefore = keys.findLastIndex((index) => index < anchor.clipAt);
  const firstKey = keys[Math.max(0, keyBefore - keysBetween)];
  let cursor = firstKey;
  let got = 1;
  let unplaced = 0;
  const missing: number[] = [];
  for (let j = k0 + 1; j < listed.length; j++) {
    const packet = listed[j];
    let place = -1;
    for (let i = cursor + 1; i < clip.length && i <= cursor + SEARCH_AHEAD; i++) {
      if (clip[i].key !== packet.key) continue;
      if (packet.key || clip[i].size + anchor.delta === packet.size) {
        place = i;
        break;
      }
    }
    if (place < 0) {
      unplaced++;
      continue;
    }
    got++;
    for (let i = cursor + 1; i < place && missing.length < MISSING_KEPT; i++) missing.push(i);
    cursor = place;
  }
  for (let i = cursor + 1; i < clip.length && missing.length < MISSING_KEPT; i++) missing.push(i);
  return {
    listed: listed.length,
    firstKey,
    expected: clip.length - firstKey,
    got,
    unplaced,
    missing,
  };
}

// ---------------------------------------------------------------- the server's stats

// deno-lint-ignore no-explicit-any
type PipelineStats = Record<string, any>;

/** Keeps the latest `stats` broadcast of one WebSocket client (as in bench/push.ts). */
class StatsWatcher {
  latest: { at: number; pipelines: PipelineStats[] } | null = null;
  #waiters: (() => void)[] = [];

  constructor(readonly client: TestClient) {
    client.socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data));
      client.received.length = 0; // we look at stats only, and keep the latest
      if (message.type !== "stats") return;
      this.latest = { at: performance.now(), pipelines: message.payload.pipelines };
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  pipeline(id: string): PipelineStats | undefined {
    return this.latest?.pipelines.find((p) => p.id === id);
  }

  next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Waits for a broadcast where `predicate` holds for the pipeline's entry (undefined when absent). */
  async until(
    id: string,
    predicate: (pipeline: PipelineStats | undefined) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<PipelineStats | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (!this.latest || !predicate(this.pipeline(id))) {
      const left = deadline - performance.now();
      if (left <= 0 || (await within(this.next(), left)) === null) {
        throw new Error(
          `Timed out after ${timeoutMs} ms waiting for ${what}; last stats of '${id}': ${
            JSON.stringify(this.pipeline(id))
          }`,
        );
      }
    }
    return this.pipeline(id);
  }
}

// ---------------------------------------------------------------- machine CPU

/** Busy and total jiffies of the whole machine (the "cpu" line of /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = values[3] + values[4]; // idle + iowait
  return { busy: total - idle, total };
}

/** utime + stime of a process, or null once it is gone. */
function ticksOf(pid: number): number | null {
  try {
    return cpuTicks(pid);
  } catch {
    return null;
  }
}

/** CPU time of a set of processes over a window, each read last while it was still there. */
class GroupMeter {
  #start = new Map<number, number>();
  #last = new Map<number, number>();

  constructor(pids: number[]) {
    for (const pid of pids) {
      const ticks = ticksOf(pid);
      if (ticks === null) continue;
      this.#start.set(pid, ticks);
      this.#last.set(pid, ticks);
    }
  }

  sample(): void {
    for (const pid of this.#start.keys()) {
      const ticks = ticksOf(pid);
      if (ticks !== null) this.#last.set(pid, ticks);
    }
  }

  /** Seconds of CPU used in the window. */
  seconds(): number {
    this.sample();
    let ticks = 0;
    for (const [pid, start] of this.#start) ticks += this.#last.get(pid)! - start;
    return ticks / clockTicks;
  }
}

// ---------------------------------------------------------------- one run

type Kind = "publish" | "push";

interface Joiner {
  /** Spawn to the first decoded frame. */
  firstFrame: number;
  /** Spawn to the PLAY reply. */
  setup: number;
}

interface RunResult {
  kind: Kind;
  name: string;
  /** Frames the server counted for the stream (its end-of-stream log line). */
  serverFrames: number | null;
  serverEndLine: string;
  /** Milliseconds from the sender's spawn to frames in the stats. */
  flowingAfter: number;
  /** Milliseconds from the readers' spawn to all of them in the stats. */
  readersInAfter: number | null;
  /** Readers in the stats at each broadcast while they connected (ms after their spawn). */
  arrivals: { at: number; clients: number }[];
  readersSeen: number;
  minClientsInWindow: number;
  accounts: (Account & { code: number | null; tail: string })[];
  joiners: Joiner[];
  joinerFailures: string[];
  usage: Usage;
  /** Percent of one core over the window. */
  readersCpu: number;
  senderCpu: number;
  /** Percent of all cores busy over the window. */
  machineBusy: number;
  /** Bitrate in the stats (publish: its "bitrate"; push: bytes over time), bit/s. */
  statsBitrate: number | null;
  senderExit: number | null;
  senderOutput: string;
}

function senderArgs(kind: Kind, clip: string, server: ServerProcess, name: string): string[] {
  // deno-fmt-ignore
  return kind === "publish"
    ? [
      "-v", "error", "-re", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp",
      `${server.rtspUrl}/${name}`,
    ]
    : [
      "-v", "error", "-re", "-i", clip, "-c", "copy", "-bsf:v", "h264_mp4toannexb",
      "-flush_packets", "1", "-f", "h264", "-content_type", "video/h264",
      `${server.httpUrl}/push/${name}`,
    ];
}

/** One late joiner; a failure is told with its times after `from` (the first frames). */
async function lateJoin(url: string, from: number): Promise<Joiner | string> {
  // deno-fmt-ignore
  const client = spawn("gst-launch-1.0", [
    "-m", "rtspsrc", `location=${url}`, "protocols=tcp", "latency=0", "!",
    "rtph264depay", "wait-for-keyframe=true", "!", "avdec_h264", "output-corrupt=false",
    "!", "fakesink", "num-buffers=1",
  ]);
  const ended = await within(client.exited, 15000);
  if (ended === null) await client.kill();
  const at = (marker: string) => client.lines.find((line) => line.text.startsWith(marker))?.at;
  const played = at("Progress: (request) Sent PLAY request");
  const frame = at("Got EOS from element");
  if (ended?.code !== 0 || played === undefined || frame === undefined) {
    const after = (at: number) => `${((at - from) / 1000).toFixed(1)} s`;
    return `${ended === null ? "timed out" : `exit ${ended.code}`} (spawned ${
      after(client.spawnedAt)
    } after the first frames, ended ${after(performance.now())}): ${
      client.output().split("\n").slice(-3).join(" | ")
    }`;
  }
  return { firstFrame: frame - client.spawnedAt, setup: played - client.spawnedAt };
}

async function runOne(
  kind: Kind,
  server: ServerProcess,
  serverPid: number,
  stats: StatsWatcher,
  clip: Clip,
  options: Options,
): Promise<RunResult> {
  const name = `bench-${kind}`;
  const url = `${server.rtspUrl}/${name}`;
  console.log(`${kind}: sending ${clip.packets.length} frames at ${FPS} fps ...`);
  const sender = spawn("ffmpeg", senderArgs(kind, clip.path, server, name));
  const readers: Child[] = [];
  try {
    const senderGone = sender.exited.then(({ code }) => {
      throw new Error(`The sending ffmpeg exited ${code} early:\n${sender.output()}`);
    });
    senderGone.catch(() => {}); // raced below; its end after them is expected
    await Promise.race([
      stats.until(name, (p) => p?.frames > 0, 20000, `frames of ${kind} '${name}'`),
      senderGone,
    ]);
    const flowingAt = performance.now();
    const flowingAfter = flowingAt - sender.spawnedAt;

    // Late joiners, one after the other from halfway through the clip
    // (timed from the first frames, whether or not the readers are in by then).
    const joiners: Joiner[] = [];
    const joinerFailures: string[] = [];
    const joining = (async () => {
      const halfway = flowingAt + (options.seconds * 1000) / 2;
      await sleep(Math.max(0, halfway - performance.now()));
      for (let n = 0; n < options.joiners; n++) {
        if (n > 0) await sleep(Math.random() * keyFrameIntervalMs);
        const result = await lateJoin(url, flowingAt);
        if (typeof result === "string") joinerFailures.push(result);
        else joiners.push(result);
      }
    })();

    console.log(`${kind}: frames flow; starting ${options.readers} readers ...`);
    const readersAt = performance.now();
    for (let i = 0; i < options.readers; i++) {
      // deno-fmt-ignore
      readers.push(spawn("ffprobe", [
        "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
        "-show_entries", "packet=size,flags", "-of", "csv=p=0", url,
      ]));
    }
    let readersInAfter: number | null = null;
    const arrivals: { at: number; clients: number }[] = [];
    for (const deadline = readersAt + 30000; performance.now() < deadline;) {
      await Promise.race([within(stats.next(), deadline - performance.now()), senderGone]);
      const clients = stats.pipeline(name)?.rtspClients ?? 0;
      arrivals.push({ at: performance.now() - readersAt, clients });
      if (clients >= options.readers) {
        readersInAfter = performance.now() - readersAt;
        break;
      }
    }
    if (readersInAfter === null) {
      console.warn(`${kind}: not every reader showed in the stats within 30 s`);
    }
    const readersSeen = stats.pipeline(name)?.rtspClients ?? 0;

    // The window: from every reader in until the sender exits.
    const meter = startUsage(serverPid);
    const readerMeter = new GroupMeter(readers.map((reader) => reader.process.pid));
    const senderMeter = new GroupMeter([sender.process.pid]);
    const machineFrom = machineTicks();
    let minClientsInWindow = readersSeen;
    let statsBitrate: number | null = null;
    const bitrates: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await within(stats.next(), 1500);
        if (!sampling) return;
        meter.sample();
        readerMeter.sample();
        senderMeter.sample();
        const entry = stats.pipeline(name);
        if (!entry) continue;
        minClientsInWindow = Math.min(minClientsInWindow, entry.rtspClients ?? 0);
        if (typeof entry.bitrate === "number" && entry.bitrate > 0) bitrates.push(entry.bitrate);
      }
    })();

    const senderEnd = await within(sender.exited, options.seconds * 1000 + 60000);
    const machineTo = machineTicks();
    const usage = meter.stop();
    const readersSeconds = readerMeter.seconds();
    const senderSeconds = senderMeter.seconds();
    sampling = false;
    await sampler;
    if (senderEnd === null) await sender.kill();
    if (bitrates.length > 0) statsBitrate = bitrates.reduce((a, b) => a + b, 0) / bitrates.length;
    await joining;

    const endLine = await server.waitForLog(
      kind === "publish" ? `Publish '${name}' from` : `Push '${name}' ended`,
      15000,
    ).catch(() => "");
    const framesMatch = endLine.match(/(\d+) frames/);

    const accounts = await Promise.all(readers.map(async (reader) => {
      const ended = await reap(reader, 20000);
      const listed = parsePackets(reader.stdout());
      return {
        ...account(clip.packets, listed),
        code: ended?.code ?? null,
        tail: reader.output().split("\n").filter((line) => !/^\d+,/.test(line) && line !== "")
          .slice(-2).join(" | "),
      };
    }));
    await stats.until(name, (p) => p === undefined, 15000, `${kind} '${name}' to end`)
      .catch((error) => console.warn((error as Error).message));
    return {
      kind,
      name,
      serverFrames: framesMatch ? Number(framesMatch[1]) : null,
      serverEndLine: endLine,
      flowingAfter,
      readersInAfter,
      arrivals,
      readersSeen,
      minClientsInWindow,
      accounts,
      joiners,
      joinerFailures,
      usage,
      readersCpu: (readersSeconds / usage.seconds) * 100,
      senderCpu: (senderSeconds / usage.seconds) * 100,
      machineBusy: ((machineTo.busy - machineFrom.busy) / (machineTo.total - machineFrom.total)) *
        100,
      statsBitrate,
      senderExit: senderEnd?.code ?? null,
      senderOutput: sender.output(),
    };
  } finally {
    await sender.kill();
    await Promise.all(readers.map((reader) => reader.kill()));
  }
}

// ---------------------------------------------------------------- report

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

interface Figures {
  placed: (Account & { code: number | null; tail: string })[];
  failed: number;
  lostTotal: number;
  lostWorst: number;
  shortReaders: number;
  unplaced: number;
  minGot: number;
  medianGot: number;
  firstFrame: number;
  afterPlay: number;
}

function figures(run: RunResult): Figures {
  const placed = run.accounts.filter((a) => a.firstKey !== null && a.code === 0);
  const lost = placed.map((a) => a.expected - a.got);
  const got = placed.map((a) => a.got);
  return {
    placed,
    failed: run.accounts.length - placed.length,
    lostTotal: lost.reduce((sum, value) => sum + value, 0),
    lostWorst: lost.length ? Math.max(...lost) : NaN,
    shortReaders: lost.filter((value) => value > 0).length,
    unplaced: placed.reduce((sum, a) => sum + a.unplaced, 0),
    minGot: got.length ? Math.min(...got) : NaN,
    medianGot: median(got),
    firstFrame: median(run.joiners.map((j) => j.firstFrame)),
    afterPlay: median(run.joiners.map((j) => j.firstFrame - j.setup)),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row, index) => {
    const line = row.map((cell, column) => cell.padEnd(widths[column])).join(" | ").trimEnd();
    return index === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("-|-")}` : line;
  }).join("\n");
}

function report(clip: Clip, options: Options, serverStartMs: number, runs: RunResult[]): void {
  const [publish, push] = runs;
  const [a, b] = runs.map(figures);
  const cores = navigator.hardwareConcurrency;
  const ratio = (x: number, y: number) => (Number.isFinite(x / y) ? (x / y).toFixed(2) : "-");
  const f0 = (value: number) => (Number.isFinite(value) ? value.toFixed(0) : "-");
  const f1 = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : "-");
  const joinCell = (run: RunResult, f: Figures) =>
    run.joiners.length === 0
      ? `none (${run.joinerFailures.length} failed)`
      : `${f0(f.firstFrame)} (after PLAY ${f0(f.afterPlay)})`;
  const lostCell = (f: Figures) =>
    `${f.lostTotal} (worst reader ${Number.isFinite(f.lostWorst) ? f.lostWorst : "-"}, ` +
    `${f.shortReaders} readers short)`;
  const rows = [
    ["figure", "publish (RTSP ANNOUNCE/RECORD)", "push (POST /push, video/h264)", "publish/push"],
    [
      "frames sent (clip) / counted by the server",
      ...runs.map((r) => `${clip.packets.length} / ${r.serverFrames ?? "?"}`),
      "",
    ],
    [
      "readers placed / started (in the stats)",
      ...runs.map((r, i) => `${[a, b][i].placed.length} / ${r.accounts.length} (${r.readersSeen})`),
      "",
    ],
    [
      "frames per reader from its first key frame, min / median",
      ...[a, b].map((f) => `${f0(f.minGot)} / ${f0(f.medianGot)}`),
      "",
    ],
    ["frames lost, all readers (target 0)", lostCell(a), lostCell(b), ""],
    [
      "server CPU, % of one core",
      f1(publish.usage.cpuPercent),
      f1(push.usage.cpuPercent),
      ratio(publish.usage.cpuPercent, push.usage.cpuPercent),
    ],
    [
      "server RSS, mean / peak",
      ...runs.map((r) => `${mib(r.usage.rssKib)} / ${mib(r.usage.rssPeakKib)}`),
      "",
    ],
    [
      `late joiner, spawn to first decoded frame, ms${options.joiners > 1 ? " (median)" : ""}`,
      joinCell(publish, a),
      joinCell(push, b),
      ratio(a.firstFrame, b.firstFrame),
    ],
    [
      `readers' CPU, % of one core; machine busy, % of all ${cores} cores`,
      ...runs.map((r) => `${f0(r.readersCpu)}; ${f0(r.machineBusy)}`),
      "",
    ],
  ];
  const lines = [
    "",
    `=== publish benchmark: ${options.seconds} s of 1080p${FPS} H.264 at ` +
    `${(clip.bitrate / 1e6).toFixed(1)} Mbit/s (key frame every ${GOP} frames), ` +
    `${options.readers} RTSP/TCP readers ===`,
    `clip: ${clip.path}, ${clip.packets.length} frames; server start to listening ` +
    `${f0(serverStartMs)} ms`,
    table(rows),
    "",
    ...runs.map((r, i) => {
      const f = [a, b][i];
      return `${r.kind}: frames in the stats ${f0(r.flowingAfter)} ms after the sender's spawn; ` +
        `readers in the stats ${
          r.arrivals.map((x) => `${x.clients} at ${(x.at / 1000).toFixed(1)} s`).join(", ")
        } after their spawn; readers in the stats >= ${r.minClientsInWindow} in the window of ` +
        `${r.usage.seconds.toFixed(1)} s; ` +
        `server CPU split ${cpuSplit(r.usage)}; bitrate in the stats ` +
        `${r.statsBitrate === null ? "-" : `${(r.statsBitrate / 1e6).toFixed(1)} Mbit/s`}; ` +
        `${f.unplaced} listed packets unplaced; ${f.failed} readers failed; sender exit ` +
        `${r.senderExit ?? "killed"}; late joiners ${
          r.joiners.map((j) => `${f0(j.firstFrame)} (setup ${f0(j.setup)})`).join(", ") || "-"
        } ms; server: ${r.serverEndLine || "no end line"}`;
    }),
    `frames lost, publish: ${verdict(a.lostTotal === 0 && a.failed === 0)}; push: ${
      verdict(b.lostTotal === 0 && b.failed === 0)
    }. A joiner waits for the next key frame: ${f0(keyFrameIntervalMs / 2)} ms on average ` +
    `after PLAY, up to ${f0(keyFrameIntervalMs)} ms; one joiner is one sample of that.`,
  ];
  // Percent of one core: the machine's busy time less ours (server, readers, sender).
  const others = (r: RunResult) =>
    r.machineBusy * cores - r.usage.cpuPercent - r.readersCpu - r.senderCpu;
  lines.push(
    `machine, % of one core (${cores} cores = ${cores * 100}%): ${
      runs.map((r) =>
        `${r.kind}: busy ${f0(r.machineBusy * cores)}, of which server ${
          f0(r.usage.cpuPercent)
        }, ` +
        `${options.readers} readers ${f0(r.readersCpu)}, sender ${f0(r.senderCpu)}, other ` +
        `processes ${f0(others(r))}`
      ).join("; ")
    }`,
  );
  const saturated = runs.filter((r) => r.machineBusy >= 90);
  if (saturated.length > 0) {
    lines.push(
      `WARNING: the machine was saturated (${
        saturated.map((r) => `${f0(r.machineBusy)}% of all cores busy during the ${r.kind} run`)
          .join(", ")
      }): losses, CPU and first-frame times then say as much about the machine as about the ` +
        `server. ${
          saturated.some((r) => r.readersCpu >= others(r))
            ? "The readers took most of it: try READERS=20 (or --readers 20)."
            : "Most of it was other processes than this bench's: run it again on a quiet machine."
        }`,
    );
  }
  for (const [run, f] of runs.map((r, i) => [r, [a, b][i]] as const)) {
    const where = new Map<number, number>();
    for (const account of f.placed) {
      for (const index of account.missing) where.set(index, (where.get(index) ?? 0) + 1);
    }
    if (where.size > 0) {
      lines.push(
        `  ${run.kind}: frames lost, by index in the clip (0 to ${clip.packets.length - 1}) ` +
          `x readers that lost it (first ${MISSING_KEPT} per reader): ${
            [...where].sort((x, y) => x[0] - y[0]).slice(0, 20).map(([i, n]) => `${i}x${n}`)
              .join(", ")
          }`,
      );
    }
    for (const account of run.accounts.filter((x) => !f.placed.includes(x)).slice(0, 3)) {
      lines.push(
        `  ${run.kind} reader failed: exit ${account.code ?? "killed"}, ${account.listed} ` +
          `packets listed: ${account.tail.slice(0, 300)}`,
      );
    }
    for (const failure of run.joinerFailures.slice(0, 3)) {
      lines.push(`  ${run.kind} late joiner failed: ${failure.slice(0, 300)}`);
    }
    if (run.senderExit !== 0) {
      lines.push(`  ${run.kind} sender: ${run.senderOutput.slice(-500)}`);
    }
  }
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  let server: ServerProcess | undefined;
  let client: TestClient | undefined;
  // The server's default disk store, in a directory of its own (nothing restored, nothing left).
  const dataDir = await Deno.makeTempDir({ prefix: "bench-publish-" });
  const interrupted = async () => {
    await killAll();
    await server?.stop();
    Deno.removeSync(dataDir, { recursive: true });
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const clip = await makeClip(options.seconds);
    const startedAt = performance.now();
    server = await startServer({ GSTREAMER_DATA_DIR: dataDir });
    const serverStartMs = performance.now() - startedAt;
    const serverPid = serverProcessId(server);
    client = await TestClient.connect(server.url);
    const stats = new StatsWatcher(client);
    const runs: RunResult[] = [];
    for (const kind of ["publish", "push"] as const) {
      runs.push(await runOne(kind, server, serverPid, stats, clip, options));
      await sleep(2000); // let the server settle between runs
    }
    report(clip, options, serverStartMs, runs);
  } finally {
    await killAll();
    await client?.close().catch(() => {});
    if (server) await stopServer(server);
    Deno.removeSignalListener("SIGINT", interrupted);
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
