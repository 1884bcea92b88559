/**
 * Helpers shared by the benchmarks: option parsing, summaries, and process
 * measurement from /proc (CPU from /proc/<pid>/stat and the threads'
 * schedstat, RSS from /proc/<pid>/status), timing gst-launch-1.0 until
 * PLAYING, and timing createPipeline + startPipeline on our server.
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
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!match) throw new Error(`No VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
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
  /** The same, split by threadGroup(). */
  cpuByGroup: Record<string, number>;
  /** Mean of the RSS samples over the window, in KiB. */
  rssKib: number;
  rssPeakKib: number;
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
  const rss: number[] = [rssKib(pid)];
  const startThreads = threadSeconds(pid);
  const startTicks = cpuTicks(pid);
  const startedAt = performance.now();
  return {
    sample: () => rss.push(rssKib(pid)),
    stop: () => {
      rss.push(rssKib(pid));
      const ticks = cpuTicks(pid) - startTicks;
      const endThreads = threadSeconds(pid);
      const seconds = (performance.now() - startedAt) / 1000;
      const percent = (delta: number) => (delta / clockTicks) / seconds * 100;
      const cpuByGroup: Record<string, number> = { streaming: 0, main: 0, other: 0 };
      for (const [tid, { name, seconds: after }] of endThreads) {
        const group = threadGroup(pid, tid, name);
        cpuByGroup[group] += (after - (startThreads.get(tid)?.seconds ?? 0)) / seconds * 100;
      }
      return {
        cpuPercent: percent(ticks),
        cpuByGroup,
        rssKib: mean(rss),
        rssPeakKib: Math.max(...rss),
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

/**
 * Create + start, timed from sending createPipeline to the startPipeline reply;
 * `pipeline` is createPipeline's: gst-launch text or elements (and links).
 */
export async function createAndStart(
  client: TestClient,
  id: string,
  pipeline: string | { elements: unknown[]; links?: unknown[] },
): Promise<number> {
  const startedAt = performance.now();
  expectOk(await client.request("createPipeline", { id, pipeline }), `create ${id}`);
  const start = expectOk(await client.request("startPipeline", { id }), `start ${id}`);
  const elapsed = performance.now() - startedAt;
  if (start.payload?.state !== "PLAYING") {
    throw new Error(`start ${id} replied ${JSON.stringify(start.payload)}, not PLAYING`);
  }
  return elapsed;
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
