/**
 * Helpers shared by the benchmarks: option parsing, summaries, and process
 * measurement from /proc (CPU from /proc/<pid>/stat and the threads'
 * schedstat, RSS from /proc/<pid>/status), timing gst-launch-1.0 until
 * PLAYING, and timing createPipeline + startPipeline on our server. For the
 * RTSP benchmarks (bench/push.ts, bench/publish.ts): child processes with
 * stdout and stderr apart, the server's stats broadcasts, a joiner's time to
 * its first frame, ffprobe readers and their frames counted against the clip
 * (with why a reader is short), and the CPU of a group of processes and of
 * the machine.
 */
import type { Reply, ServerProcess, TestClient } from "../test/helpers.ts";

// ---------------------------------------------------------------- options

/**
 * Parses `--name N` / `--name=N` into a copy of `defaults`; every option is a
 * non-negative number, floored unless its name is in `fractional`.
 */
export function parseNumberOptions<T extends { [K in keyof T]: number }>(
  args: string[],
  defaults: T,
  fractional: (keyof T)[] = [],
): T {
  const options: T = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const match = args[i].match(/^--([a-z][a-z-]*)(?:=(.*))?$/);
    const key = match?.[1] as keyof T | undefined;
    if (!match || key === undefined || !Object.hasOwn(options, key)) {
      throw new Error(
        `Unknown argument '${args[i]}'; accepted: ${
          Object.keys(options).map((k) => `--${k} N`).join(", ")
        }`,
      );
    }
    const text = match[2] ?? args[++i];
    const value = Number(text);
    if (text === undefined || !Number.isFinite(value) || value < 0) {
      throw new Error(`--${String(key)} takes a number, got '${text}'`);
    }
    options[key] = (fractional.includes(key) ? value : Math.floor(value)) as T[keyof T];
  }
  return options;
}

// ---------------------------------------------------------------- figures

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

export interface Summary {
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
  count: number;
}

export function summarize(values: number[]): Summary {
  return {
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    mean: mean(values),
    min: Math.min(...values),
    max: Math.max(...values),
    count: values.length,
  };
}

export const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)} ms`;
export const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
export const sleep = (milliseconds: number) => new Promise((r) => setTimeout(r, milliseconds));
export const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");

// ---------------------------------------------------------------- /proc

export const clockTicks = await (async () => {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" })
      .output();
    const value = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isInteger(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

export function cmdline(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((s) => s !== "");
  } catch {
    return [];
  }
}

function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone, or no children file
  }
  return pids;
}

/** The pid whose command line matches, searching `pid` and then its descendants. */
export function findProcess(pid: number, matches: (args: string[]) => boolean): number | null {
  if (matches(cmdline(pid))) return pid;
  for (const child of childPids(pid)) {
    const found = findProcess(child, matches);
    if (found !== null) return found;
  }
  return null;
}

/** The pid of the server's `deno run ... src/main.ts` (startServer's child, or under it). */
export function serverProcessId(server: ServerProcess): number {
  const pid = findProcess(server.pid, (a) => a.includes("run") && a.at(-1) === "src/main.ts");
  if (pid === null) {
    throw new Error(
      `No 'deno run ... src/main.ts' at or under pid ${server.pid}: ${
        cmdline(server.pid).join(" ")
      }`,
    );
  }
  return pid;
}

/** utime + stime of every thread of the process, in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces; fields after its ')' start at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // fields 14 (utime) and 15 (stime)
}

export function rssKib(pid: number): number {
  return rssParts(pid).rssKib;
}

/**
 * VmRSS and two of its parts, in KiB: RssAnon, the process's own memory (heaps, stacks), and
 * RssFile, pages of mapped files (the executable and libraries: clean, shared with every process
 * that maps the same file, and dropped first when memory is short).
 */
export function rssParts(pid: number): { rssKib: number; anonKib: number; fileKib: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) => {
    const match = status.match(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m"));
    if (!match) throw new Error(`No ${name} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rssKib: field("VmRSS"), anonKib: field("RssAnon"), fileKib: field("RssFile") };
}

/**
 * CPU time per thread id, in seconds, with the thread's name (comm). From
 * schedstat (nanoseconds): per-thread utime/stime are whole ticks, and with
 * hundreds of threads each using a little the truncation would hide most of it.
 */
function threadSeconds(pid: number): Map<string, { name: string; seconds: number }> {
  const threads = new Map<string, { name: string; seconds: number }>();
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${task.name}`;
    try {
      const stat = Deno.readTextFileSync(`${dir}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      let seconds: number;
      try {
        seconds = Number(Deno.readTextFileSync(`${dir}/schedstat`).split(" ")[0]) / 1e9;
      } catch {
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        seconds = (Number(fields[11]) + Number(fields[12])) / clockTicks;
      }
      threads.set(task.name, { name, seconds });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

/**
 * Thread names grouped: GStreamer names a streaming thread after its pad
 * ("videotestsrc12:src"); the process's first thread is the JS main thread
 * in Deno and the bus loop in gst-launch-1.0; everything else (tokio
 * workers running nonblocking FFI calls, V8 helpers, GLib pools) is "other".
 */
function threadGroup(pid: number, tid: string, name: string): string {
  // comm is cut at 15 characters: "videotestsrc12:" and, from element 100 on, "videotestsrc100".
  if (name.includes(":") || /^[a-z]+\d+$/i.test(name)) return "streaming";
  if (tid === String(pid)) return "main";
  return "other";
}

export interface Usage {
  /** Percent of one core over the window. */
  cpuPercent: number;
  /**
   * The same, split by threadGroup(), and "ended": the threads that exited during the window (the
   * total less the others, so it also holds the total's rounding to whole clock ticks).
   */
  cpuByGroup: Record<string, number>;
  /** Mean of the RSS samples over the window, in KiB. */
  rssKib: number;
  rssPeakKib: number;
  /** Means of the same samples' RssAnon and RssFile (rssParts), in KiB. */
  anonKib: number;
  fileKib: number;
  /** Length of the window, in seconds. */
  seconds: number;
}

export interface UsageMeter {
  /** Takes one RSS sample. */
  sample(): void;
  /** Ends the window (with a last RSS sample) and returns its figures. */
  stop(): Usage;
}

/** Starts a measurement window on `pid` that lasts until stop(). */
export function startUsage(pid: number): UsageMeter {
  const samples = [rssParts(pid)];
  const startThreads = threadSeconds(pid);
  const startTicks = cpuTicks(pid);
  const startedAt = performance.now();
  return {
    sample: () => samples.push(rssParts(pid)),
    stop: () => {
      samples.push(rssParts(pid));
      const rss = samples.map((sample) => sample.rssKib);
      const ticks = cpuTicks(pid) - startTicks;
      const endThreads = threadSeconds(pid);
      const seconds = (performance.now() - startedAt) / 1000;
      const percent = (delta: number) => (delta / clockTicks) / seconds * 100;
      const cpuByGroup: Record<string, number> = { streaming: 0, main: 0, other: 0 };
      for (const [tid, { name, seconds: after }] of endThreads) {
        const group = threadGroup(pid, tid, name);
        cpuByGroup[group] += (after - (startThreads.get(tid)?.seconds ?? 0)) / seconds * 100;
      }
      // A thread that exited during the window is not listed at the end, but the process's total
      // keeps its time: streaming threads of pipelines deleted meanwhile, idle pool threads.
      const listed = Object.values(cpuByGroup).reduce((sum, value) => sum + value, 0);
      cpuByGroup.ended = Math.max(0, percent(ticks) - listed);
      return {
        cpuPercent: percent(ticks),
        cpuByGroup,
        rssKib: mean(rss),
        rssPeakKib: Math.max(...rss),
        anonKib: mean(samples.map((sample) => sample.anonKib)),
        fileKib: mean(samples.map((sample) => sample.fileKib)),
        seconds,
      };
    },
  };
}

/** CPU and RSS of `pid` over a window of `windowSeconds`, RSS sampled every second. */
export async function measure(pid: number, windowSeconds: number): Promise<Usage> {
  const meter = startUsage(pid);
  const end = performance.now() + windowSeconds * 1000;
  for (let now = performance.now(); now < end; now = performance.now()) {
    await sleep(Math.min(1000, end - now));
    if (performance.now() < end) meter.sample();
  }
  return meter.stop();
}

/** "streaming 12.3%, main 4.5%, other 6.7%" */
export function cpuSplit(usage: Usage): string {
  return Object.entries(usage.cpuByGroup).map(([group, value]) => `${group} ${value.toFixed(1)}%`)
    .join(", ");
}

/** Stops the benchmark's server, printing its last lines when it did not exit cleanly. */
export async function stopServer(server: ServerProcess): Promise<void> {
  const code = await server.stop();
  if (code !== 0) {
    console.error(
      `Server exited with ${code}; its last lines:\n${server.logs.slice(-20).join("\n")}`,
    );
  }
}

// ---------------------------------------------------------------- gst-launch-1.0

/** Every gst-launch-1.0 launchUntilPlaying started and nobody reaped yet; see killAllLaunched. */
const launched = new Set<Deno.ChildProcess>();

export interface Launch {
  child: Deno.ChildProcess;
  /** Milliseconds from spawn until gst-launch-1.0 reported PLAYING. */
  playingAfter: number;
  output: () => string;
  kill: () => Promise<void>;
}

/**
 * Spawns gst-launch-1.0 and resolves once the pipeline has reached PLAYING.
 *
 * What gst-launch-1.0 1.22 prints for `videotestsrc ! fakesink` (with -m one
 * sees the bus messages in between):
 *
 *   Setting pipeline to PAUSED ...
 *   Pipeline is PREROLLING ...        (a live pipeline prints "Pipeline is live
 *   Pipeline is PREROLLED ...          and does not need PREROLL ..." instead)
 *   Setting pipeline to PLAYING ...   printed BEFORE gst_element_set_state(PLAYING)
 *   Redistribute latency...           the sink's LATENCY message
 *   New clock: GstSystemClock         the pipeline's NEW_CLOCK message
 *
 * "Setting pipeline to PLAYING ..." only says the change is about to be
 * asked for. gst-launch-1.0 prints from its main thread, which calls
 * gst_element_set_state(PLAYING) synchronously right after that line and
 * only then runs the bus loop that prints "Redistribute latency..." and "New
 * clock"; NEW_CLOCK is posted by the pipeline inside its PAUSED->PLAYING
 * change. So "New clock" marks PLAYING reached: the set_state call has
 * returned and the pipeline did its PAUSED->PLAYING change (with -m the
 * elements' and pipeline's state-changed ...->PLAYING messages follow it
 * within microseconds). It is also printed for live pipelines, where
 * "Redistribute latency..." may be missing, so one marker serves both kinds.
 */
export async function launchUntilPlaying(args: string[], timeoutMs = 20000): Promise<Launch> {
  const startedAt = performance.now();
  const child = new Deno.Command("gst-launch-1.0", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  launched.add(child);
  let text = "";
  let marked: (at: number) => void;
  const playing = new Promise<number>((resolve) => (marked = resolve));
  const pump = async (stream: ReadableStream<Uint8Array>, watch: boolean) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const at = performance.now();
      text += chunk;
      if (!watch) continue;
      const lines = (pending + chunk).split("\n");
      pending = lines.pop() ?? "";
      if (lines.some((line) => line.startsWith("New clock"))) marked(at - startedAt);
    }
  };
  const pumps = Promise.all([pump(child.stdout, true), pump(child.stderr, false)]);
  const reaped = child.status.then(async (status) => {
    await pumps.catch(() => {});
    launched.delete(child);
    return status;
  });
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await reaped;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const playingAfter = await Promise.race([
      playing,
      reaped.then((status) => {
        throw new Error(
          `gst-launch-1.0 exited (${status.code}) before PLAYING:\n${text.slice(-2000)}`,
        );
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`gst-launch-1.0 not PLAYING after ${timeoutMs} ms:\n${text}`)),
          timeoutMs,
        );
      }),
    ]);
    return { child, playingAfter, output: () => text, kill };
  } catch (error) {
    await kill();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Kills and reaps every gst-launch-1.0 still running (for `finally` and SIGINT). */
export async function killAllLaunched(): Promise<void> {
  await Promise.all([...launched].map(async (child) => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status.catch(() => {});
    launched.delete(child);
  }));
}

// ---------------------------------------------------------------- our server

/** The reply, or an Error naming `what` and the server's error. */
export function expectOk(reply: Reply, what: string): Reply {
  if (!reply.ok) {
    throw new Error(`${what} failed: ${reply.error?.code}: ${reply.error?.message}`);
  }
  return reply;
}

/** Times of one create + start, from sending createPipeline. */
export interface StartTimes {
  /** Until createPipeline's reply (with `oneRequest`, the same as playingMs). */
  createdMs: number;
  /** Until the reply that says PLAYING. */
  playingMs: number;
}

/**
 * Create + start, timed from sending createPipeline to the reply that says PLAYING: the
 * startPipeline reply, or with `oneRequest` createPipeline's own (desiredState "playing").
 * `pipeline` is createPipeline's: gst-launch text or elements (and links).
 */
export async function createAndStart(
  client: TestClient,
  id: string,
  pipeline: string | { elements: unknown[]; links?: unknown[] },
  oneRequest = false,
): Promise<StartTimes> {
  const startedAt = performance.now();
  const created = expectOk(
    await client.request(
      "createPipeline",
      oneRequest ? { id, pipeline, desiredState: "playing" } : { id, pipeline },
    ),
    `create ${id}`,
  );
  const createdMs = performance.now() - startedAt;
  const started = oneRequest
    ? created
    : expectOk(await client.request("startPipeline", { id }), `start ${id}`);
  const playingMs = oneRequest ? createdMs : performance.now() - startedAt;
  if (started.payload?.state !== "PLAYING") {
    throw new Error(`start ${id} replied ${JSON.stringify(started.payload)}, not PLAYING`);
  }
  return { createdMs, playingMs };
}

/** The steady-state pipeline of issue 14: a live source of small frames into a fakesink. */
export const LIVE_LAUNCH = "videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! fakesink";

/** Creates and starts `count` LIVE_LAUNCH pipelines `live0`, `live1`, ... one after the other. */
export async function startLivePipelines(client: TestClient, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    expectOk(
      await client.request("createPipeline", { id: `live${i}`, pipeline: LIVE_LAUNCH }),
      `create live${i}`,
    );
    expectOk(await client.request("startPipeline", { id: `live${i}` }), `start live${i}`);
    client.received.length = 0;
  }
}

// ---------------------------------------------------------------- /proc counts

/** Resident memory, open file descriptors and threads of one process. */
export interface ProcessCounts {
  /** VmRSS from /proc/<pid>/status, in KiB. */
  rssKib: number;
  /** Entries of /proc/<pid>/fd. */
  fds: number;
  /** The Threads: line of /proc/<pid>/status. */
  threads: number;
}

export function processCounts(pid: number): ProcessCounts {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rss = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  const threads = status.match(/^Threads:\s+(\d+)/m);
  if (!rss || !threads) throw new Error(`No VmRSS or Threads in /proc/${pid}/status`);
  let fds = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) fds++;
  return { rssKib: Number(rss[1]), fds, threads: Number(threads[1]) };
}

/** Tallies names into a map of name to count. */
function tally(names: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/**
 * Open descriptors by kind: the link target with numbers dropped
 * ("socket", "pipe", "anon_inode:[eventfd]", "/dev/null", a file's path).
 */
export function fdKinds(pid: number): Map<string, number> {
  const kinds: string[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      kinds.push(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`).replace(/:\[\d+\]$/, ""));
    } catch {
      // closed between the listing and the read
    }
  }
  return tally(kinds);
}

/** Threads by name (comm), digits dropped: "tokio-runtime-w", "videotestsrc:src", "gmain". */
export function threadNames(pid: number): Map<string, number> {
  const names: string[] = [];
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      names.push(
        Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim()
          .replace(/\d+/g, "#"),
      );
    } catch {
      // ended between the listing and the read
    }
  }
  return tally(names);
}

/** "socket +3, pipe -1": the names whose counts differ from `before` to `after`. */
export function tallyChange(before: Map<string, number>, after: Map<string, number>): string {
  const names = new Set([...before.keys(), ...after.keys()]);
  const changes: string[] = [];
  for (const name of [...names].sort()) {
    const delta = (after.get(name) ?? 0) - (before.get(name) ?? 0);
    if (delta !== 0) changes.push(`${name} ${delta > 0 ? "+" : ""}${delta}`);
  }
  return changes.length ? changes.join(", ") : "none";
}

// ---------------------------------------------------------------- child processes

/** Every child spawn() started and nobody reaped yet; see killChildren. */
const children = new Set<Deno.ChildProcess>();

export interface Line {
  /** performance.now() when the chunk holding the line's end arrived. */
  at: number;
  text: string;
  stream: "stdout" | "stderr";
}

export interface Exit {
  /** The exit code (Deno gives 128 + the signal's number when a signal ended the process). */
  code: number;
  /** The signal that ended it, if one did. */
  signal: Deno.Signal | null;
  /** performance.now() when the exit was seen. */
  at: number;
}

export interface Child {
  process: Deno.ChildProcess;
  spawnedAt: number;
  /** The lines of stdout and stderr, each as it arrived. */
  lines: Line[];
  /** Everything it printed so far, stdout and stderr, line by line. */
  output(): string;
  /** What it printed on stdout only, as printed. */
  stdout(): string;
  /** The last `count` lines it printed on stderr, joined with " | ". */
  stderrTail(count?: number): string;
  exited: Promise<Exit>;
  /** The signal we sent it (kill, reap), if we did. */
  readonly killedWith: Deno.Signal | null;
  kill(signal?: Deno.Signal): Promise<void>;
}

/** Spawns a child with stdout and stderr read apart, and keeps it for killChildren. */
export function spawn(command: string, args: string[], stdin: "null" | "piped" = "null"): Child {
  const spawnedAt = performance.now();
  const process = new Deno.Command(command, { args, stdin, stdout: "piped", stderr: "piped" })
    .spawn();
  children.add(process);
  const lines: Line[] = [];
  const out: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, name: Line["stream"]) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      if (name === "stdout") out.push(chunk);
      const at = performance.now();
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const text of parts) lines.push({ at, text, stream: name });
    }
    if (pending) lines.push({ at: performance.now(), text: pending, stream: name });
  };
  const pumps = Promise.all([pump(process.stdout, "stdout"), pump(process.stderr, "stderr")]);
  const exited = process.status.then(async (status) => {
    const at = performance.now();
    await pumps.catch(() => {});
    children.delete(process);
    return { code: status.code, signal: status.signal, at };
  });
  let killedWith: Deno.Signal | null = null;
  return {
    process,
    spawnedAt,
    lines,
    output: () => lines.map((line) => line.text).join("\n"),
    stdout: () => out.join(""),
    stderrTail: (count = 3) =>
      lines.filter((line) => line.stream === "stderr" && line.text.trim() !== "").slice(-count)
        .map((line) => line.text.trim()).join(" | "),
    exited,
    get killedWith() {
      return killedWith;
    },
    async kill(signal: Deno.Signal = "SIGKILL") {
      try {
        process.kill(signal);
        killedWith ??= signal;
      } catch {
        // already exited
      }
      await exited;
    },
  };
}

/** Kills and reaps every child spawn() started and nobody reaped yet (for `finally` and SIGINT). */
export async function killChildren(): Promise<void> {
  await Promise.all([...children].map(async (child) => {
    try {
      if (child.stdin) await child.stdin.close().catch(() => {});
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status.catch(() => {});
    children.delete(child);
  }));
}

/** Runs to the end; throws with the output when the exit code is not 0. */
export async function runChecked(command: string, args: string[]): Promise<Child> {
  const child = spawn(command, args);
  const { code } = await child.exited;
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${code}:\n${child.output().slice(-2000)}`);
  }
  return child;
}

/** Resolves with the value, or null after `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number): Promise<T | null> {
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

/**
 * Waits up to `timeoutMs` for the child to end by itself; then SIGTERM (ffprobe then prints
 * what it has and exits), and SIGKILL 3 s later. The exit, or null when it had to be ended.
 */
export async function reap(child: Child, timeoutMs: number): Promise<Exit | null> {
  const ended = await within(child.exited, timeoutMs);
  if (ended !== null) return ended;
  await within(child.kill("SIGTERM"), 3000);
  await child.kill("SIGKILL");
  return null;
}

/** "exit 0", "exit 1", "killed by SIGKILL (exit 137)", "did not end within 20 s; we sent SIGTERM". */
export function describeEnd(child: Child, exit: Exit | null, timeoutMs: number): string {
  if (exit === null) {
    return `did not end within ${(timeoutMs / 1000).toFixed(0)} s; we sent ${
      child.killedWith ?? "a signal"
    }`;
  }
  if (exit.signal !== null) {
    return `ended by ${exit.signal}${
      child.killedWith === exit.signal ? " (ours)" : ""
    } (exit ${exit.code})`;
  }
  return `exit ${exit.code}`;
}

// ---------------------------------------------------------------- the server's stats

// deno-lint-ignore no-explicit-any
export type PipelineStats = Record<string, any>;

/** Keeps the latest `stats` broadcast of one WebSocket client. */
export class StatsWatcher {
  latest:
    | {
      at: number;
      pipelines: PipelineStats[];
      recordings: { path: string; bytesWritten: number }[];
    }
    | null = null;
  #waiters: (() => void)[] = [];

  constructor(readonly client: TestClient) {
    client.socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data));
      client.received.length = 0; // we look at stats only, and keep the latest
      if (message.type !== "stats") return;
      const { pipelines, recordings = [] } = message.payload;
      this.latest = { at: performance.now(), pipelines, recordings };
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

// ---------------------------------------------------------------- a joiner's first frame

export interface Join {
  /** Spawn to the first decoded frame. */
  firstFrame: number;
  /** Spawn to the PLAY reply. */
  setup: number;
  /** Spawn to exit. */
  exit: number;
}

/**
 * One RTSP/TCP client that joins and decodes one frame: `gst-launch-1.0 -m rtspsrc
 * protocols=tcp latency=0 ! rtph264depay wait-for-keyframe=true ! avdec_h264
 * output-corrupt=false ! fakesink num-buffers=1`. Without those two settings the "first frame"
 * is a P frame decoded against nothing (grey garbage) within ~30 ms of PLAY. Times from the
 * client's own output: "Sent PLAY request" (its setup: process start, GStreamer init, OPTIONS,
 * DESCRIBE, SETUP, PLAY) and the EOS after the first frame at the sink. A failure is told as a
 * string, with its times after `from` when given.
 */
export async function joinOnce(
  url: string,
  from?: number,
  timeoutMs = 15000,
): Promise<Join | string> {
  // deno-fmt-ignore
  const client = spawn("gst-launch-1.0", [
    "-m", "rtspsrc", `location=${url}`, "protocols=tcp", "latency=0", "!",
    "rtph264depay", "wait-for-keyframe=true", "!", "avdec_h264", "output-corrupt=false",
    "!", "fakesink", "num-buffers=1",
  ]);
  const ended = await within(client.exited, timeoutMs);
  if (ended === null) await client.kill();
  const at = (marker: string) => client.lines.find((line) => line.text.startsWith(marker))?.at;
  const played = at("Progress: (request) Sent PLAY request");
  const frame = at("Got EOS from element");
  if (ended?.code !== 0 || played === undefined || frame === undefined) {
    const after = (at: number, since: number) => `${((at - since) / 1000).toFixed(1)} s`;
    const when = from === undefined
      ? ""
      : ` (spawned ${after(client.spawnedAt, from)} after the first frames, ended ${
        after(performance.now(), from)
      })`;
    return `${ended === null ? "timed out" : `exit ${ended.code}`}${when}: ${
      client.output().split("\n").slice(-3).join(" | ")
    }`;
  }
  return {
    firstFrame: frame - client.spawnedAt,
    setup: played - client.spawnedAt,
    exit: ended.at - client.spawnedAt,
  };
}

// ---------------------------------------------------------------- readers and frames lost

/** One packet (frame) of a video stream as ffprobe lists it. */
export interface Packet {
  size: number;
  key: boolean;
}

/**
 * ffprobe's arguments that list every packet of the first video stream on stdout, one line
 * each: `packet|size=1234|flags=K_`, followed over RTSP by an empty `|side_data|` section (which
 * then ends the line with a blank line after it). ffprobe's log (-v error: "Missing reference
 * picture" from a reader that starts mid-GOP, connection errors) goes to stderr and is never
 * parsed.
 */
const LIST_PACKETS = [
  "-v",
  "error",
  "-select_streams",
  "v:0",
  "-show_entries",
  "packet=size,flags",
  "-of",
  "compact=p=1:nk=0",
];

/**
 * The packets in ffprobe's stdout (LIST_PACKETS): lines that start `packet|size=N|flags=F`;
 * every other line is skipped, and so is a last line without its newline (cut short by a kill).
 */
export function parsePackets(stdout: string): Packet[] {
  const packets: Packet[] = [];
  const lines = stdout.split("\n");
  lines.pop(); // after the last newline: "" or a line cut short
  for (const line of lines) {
    const match = line.match(/^packet\|size=(\d+)\|flags=([A-Z_]+)(?:\||\r?$)/);
    if (match) packets.push({ size: Number(match[1]), key: match[2].includes("K") });
  }
  return packets;
}

/** The packets of a file's first video stream, by ffprobe (no decoding). */
export async function probePackets(path: string): Promise<Packet[]> {
  const probe = await runChecked("ffprobe", [...LIST_PACKETS, path]);
  const packets = parsePackets(probe.stdout());
  if (packets.length === 0 || !packets[0].key) {
    throw new Error(`ffprobe found no packets, or no key frame first, in ${path}`);
  }
  return packets;
}

/**
 * An RTSP/TCP reader: `ffprobe -rtsp_transport tcp` listing every packet it gets (demuxed, not
 * decoded, which is what lets 50 of them run on 2 cores); it ends when the server ends the
 * stream.
 */
export function startReader(url: string): Child {
  return spawn("ffprobe", [...LIST_PACKETS, "-rtsp_transport", "tcp", url]);
}

export interface ReaderEnd {
  packets: Packet[];
  /** Its exit; null when it did not end by itself within the timeout and we ended it. */
  exit: Exit | null;
  /** "exit 0", "did not end within 20 s; we sent SIGTERM", ... */
  end: string;
  /** Whether it ended by itself with exit 0. */
  clean: boolean;
  /** Its last lines on stderr. */
  stderrTail: string;
}

/** Waits for a reader to end (reap: SIGTERM, then SIGKILL after `timeoutMs`) and reads its list. */
export async function endReader(reader: Child, timeoutMs: number): Promise<ReaderEnd> {
  const exit = await reap(reader, timeoutMs);
  return {
    packets: parsePackets(reader.stdout()),
    exit,
    end: describeEnd(reader, exit, timeoutMs),
    clean: exit !== null && exit.code === 0 && exit.signal === null,
    stderrTail: reader.stderrTail(),
  };
}

/**
 * Where each packet a reader listed sits in the clip, found by size: the server passes P and B
 * frames through unchanged, so their sizes in the clip and at the reader are equal up to a
 * constant (the same few bytes added or dropped on every frame), and a run of ANCHOR_RUN equal
 * differences anchors the reader's list in the clip. From the anchor each packet is looked for
 * walking forward (and, for those before the anchor, backward) within SEARCH_AHEAD frames: a P
 * frame where its size fits, a key frame at the next key frame (key frames carry parameter sets
 * the server may add). A packet that finds no place is "unplaced".
 */
export interface Placement {
  listed: number;
  /** Clip index of each listed packet, -1 for one that found no place; [] when no anchor. */
  places: number[];
}

const ANCHOR_RUN = 5;
/** How far from the last placed frame a frame is looked for. */
const SEARCH_AHEAD = 600;

export function place(clip: Packet[], listed: Packet[]): Placement {
  let anchor: { at: number; clipAt: number; delta: number } | null = null;
  for (let j = 0; j + ANCHOR_RUN <= listed.length && anchor === null; j++) {
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
  if (anchor === null) return { listed: listed.length, places: [] };
  const { at, clipAt, delta } = anchor;
  const fits = (packet: Packet, i: number) =>
    clip[i].key === packet.key && (packet.key || clip[i].size + delta === packet.size);
  const places = new Array<number>(listed.length).fill(-1);
  places[at] = clipAt;
  for (let j = at + 1, cursor = clipAt; j < listed.length; j++) {
    for (let i = cursor + 1; i < clip.length && i <= cursor + SEARCH_AHEAD; i++) {
      if (fits(listed[j], i)) {
        places[j] = cursor = i;
        break;
      }
    }
  }
  for (let j = at - 1, cursor = clipAt; j >= 0; j--) {
    for (let i = cursor - 1; i >= 0 && i >= cursor - SEARCH_AHEAD; i--) {
      if (fits(listed[j], i)) {
        places[j] = cursor = i;
        break;
      }
    }
  }
  return { listed: listed.length, places };
}

export interface Account {
  /** Packets the reader listed. */
  listed: number;
  /** Listed packets that found no place in the clip (see place()). */
  unplaced: number;
  /** Clip indices of its first and last placed packets; null when none was placed. */
  first: number | null;
  last: number | null;
  /** Clip index of its first key frame; null when it listed none that was placed. */
  firstKey: number | null;
  /** Placed packets before its first key frame: a decoder cannot use them (it joined mid-GOP). */
  beforeKey: number;
  /** The frames it should have got: clip indices from..to-1. */
  from: number;
  to: number;
  expected: number;
  /** Of those, the frames it got. */
  got: number;
  /** The frames of from..to-1 it did not get: before its first, between, after its last. */
  lostAtStart: number;
  lostInside: number;
  lostAtEnd: number;
  /** The first few indices in the clip of the frames lost. */
  missing: number[];
}

export const MISSING_KEPT = 10;

/**
 * Counts a reader's frames against clip indices from..to-1: `from` a number (where the reader
 * joined, when the bench knows it), or "first-key" (its first key frame: a reader that joined
 * while frames flowed is not counted short of the frames sent before it was there).
 */
export function account(
  clip: Packet[],
  listed: Packet[],
  range: { from: number | "first-key"; to?: number },
): Account {
  const { places } = place(clip, listed);
  const placed = places.filter((index) => index >= 0);
  const keyAt = places.findIndex((index, j) => index >= 0 && listed[j].key);
  const firstKey = keyAt < 0 ? null : places[keyAt];
  const first = placed.length ? placed[0] : null;
  const from = range.from === "first-key" ? (firstKey ?? clip.length) : range.from;
  const to = Math.min(range.to ?? clip.length, clip.length);
  const have = new Set(placed.filter((index) => index >= from && index < to));
  const inRange = [...have].sort((a, b) => a - b);
  const missing: number[] = [];
  let lostAtStart = 0;
  let lostInside = 0;
  let lostAtEnd = 0;
  for (let i = from; i < to; i++) {
    if (have.has(i)) continue;
    if (missing.length < MISSING_KEPT) missing.push(i);
    if (inRange.length === 0 || i > inRange[inRange.length - 1]) lostAtEnd++;
    else if (i < inRange[0]) lostAtStart++;
    else lostInside++;
  }
  return {
    listed: listed.length,
    unplaced: places.length === 0 ? listed.length : places.length - placed.length,
    first,
    last: placed.length ? placed[placed.length - 1] : null,
    firstKey,
    beforeKey: keyAt < 0 ? placed.length : places.slice(0, keyAt).filter((i) => i >= 0).length,
    from,
    to,
    expected: Math.max(0, to - from),
    got: have.size,
    lostAtStart,
    lostInside,
    lostAtEnd,
    missing,
  };
}

/** "1797-1799" style ranges of sorted indices. */
function ranges(indices: number[]): string {
  const parts: string[] = [];
  for (let k = 0; k < indices.length;) {
    let end = k;
    while (end + 1 < indices.length && indices[end + 1] === indices[end] + 1) end++;
    parts.push(end === k ? `${indices[k]}` : `${indices[k]}-${indices[end]}`);
    k = end + 1;
  }
  return parts.join(", ");
}

/**
 * Why a reader is counted failed or short, in words; null when it got every frame and ended
 * cleanly. `gop`: frames per key-frame interval, to say what a mid-GOP join costs a decoder.
 */
export function whyShort(a: Account, end: ReaderEnd, gop: number): string | null {
  const lost = a.expected - a.got;
  if (end.clean && a.firstKey !== null && lost === 0) return null;
  const parts: string[] = [end.end];
  if (a.listed === 0) parts.push("listed no packet");
  else if (a.first === null) {
    parts.push(`none of its ${a.listed} packets could be placed in the clip (no anchor)`);
  } else {
    parts.push(`got ${a.got} of ${a.expected} (clip frames ${a.from}-${a.to - 1})`);
    if (a.firstKey === null) parts.push(`no key frame among its ${a.listed} packets`);
    if (a.lostAtStart > 0) {
      parts.push(
        `${a.lostAtStart} lost at the start (its first frame is clip frame ${a.first}: it played ` +
          "late, or the server dropped them)",
      );
    }
    if (a.lostInside > 0) parts.push(`${a.lostInside} lost inside the stream`);
    if (a.lostAtEnd > 0) {
      parts.push(
        `${a.lostAtEnd} lost at the end (its last frame is clip frame ${a.last}: ${
          end.clean
            ? "it read on to the end of the stream, so the server did not send them: in " +
              "flight inside the server when the stream ended?"
            : "it ended before the stream did"
        })`,
      );
    }
    if (lost > 0) {
      parts.push(`missing ${ranges(a.missing)}${lost > a.missing.length ? ", ..." : ""}`);
    }
    if (a.unplaced > 0) parts.push(`${a.unplaced} listed packets unplaced`);
  }
  if (a.beforeKey > 0 && a.firstKey !== null) {
    parts.push(
      `${a.beforeKey} frames before its first key frame (clip frame ${a.firstKey}; key frames ` +
        `every ${gop}): joined mid-GOP, listed but not decodable`,
    );
  }
  if (end.stderrTail) parts.push(`stderr: ${end.stderrTail.slice(0, 300)}`);
  return parts.join("; ");
}

/** "readers 1, 4, 7: <reason>" for readers that share a reason, most common first. */
export function groupReasons(reasons: (string | null)[], label = "reader"): string[] {
  const groups = new Map<string, number[]>();
  reasons.forEach((reason, index) => {
    if (reason !== null) groups.set(reason, [...(groups.get(reason) ?? []), index]);
  });
  return [...groups].sort((x, y) => y[1].length - x[1].length).map(([reason, who]) =>
    `${label}${who.length > 1 ? "s" : ""} ${ranges(who)}: ${reason}`
  );
}

// ---------------------------------------------------------------- machine and group CPU

/** Busy and total jiffies of the whole machine (the "cpu" line of /proc/stat). */
export function machineTicks(): { busy: number; total: number } {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = values[3] + values[4]; // idle + iowait
  return { busy: total - idle, total };
}

/** Percent of all cores busy between two machineTicks(). */
export function machineBusy(from: { busy: number; total: number }, to = machineTicks()): number {
  return ((to.busy - from.busy) / (to.total - from.total)) * 100;
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
export class GroupMeter {
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

const INSIDE_NETNS = "BENCH_INSIDE_OWN_NETNS";

/**
 * Runs the calling script again inside a network namespace of its own with only loopback (the
 * network rule for WebRTC: ICE must not reach the machine's LAN address), and exits with its
 * status; returns at once when already inside. Needs root.
 */
export async function inOwnNetwork(script: string): Promise<void> {
  if (Deno.env.get(INSIDE_NETNS) === "1") return;
  const { code } = await new Deno.Command("unshare", {
    args: [
      "--net",
      "--",
      "sh",
      "-c",
      'ip link set lo up && exec "$0" run --allow-all "$@"',
      Deno.execPath(),
      new URL(script).pathname,
      ...Deno.args,
    ],
    env: { [INSIDE_NETNS]: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

/** Where the benches keep the clips they generate (not checked in). */
export const workDir = new URL("./.work/", import.meta.url).pathname;

/**
 * Encodes testsrc2 720p30 H.264 Annex-B at `bitrate` with a key frame every `gop` frames into
 * bench/.work/`name`, once (kept for later runs).
 */
export async function generateClip(
  name: string,
  seconds: number,
  bitrate: string,
  gop: number,
): Promise<string> {
  const path = `${workDir}${name}`;
  try {
    if (Deno.statSync(path).size > 0) return path;
  } catch {
    // not there yet
  }
  Deno.mkdirSync(workDir, { recursive: true });
  console.log(`Generating ${path} (${seconds} s, ${bitrate}b/s) ...`);
  const partial = `${path}.partial`;
  // deno-fmt-ignore
  await runChecked("ffmpeg", [
    "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
    "-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
    "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
    "-g", String(gop), "-keyint_min", String(gop), "-sc_threshold", "0",
    "-f", "h264", partial,
  ]);
  Deno.renameSync(partial, path);
  return path;
}
