/**
 * Soak benchmark: many pipeline lifecycles and push sessions against one
 * server, watching the server process for leaks.
 *
 * Cycles: createPipeline -> startPipeline -> stopPipeline -> deletePipeline
 * of `videotestsrc num-buffers=N ! fakesink` (each with a fresh id), over one
 * WebSocket, --in-flight cycles at a time. Pushes: POST /push/{name} (a fresh
 * name each) of a short 320x240 H.264 Annex-B clip made once with ffmpeg into
 * bench/.work/, sent with fetch from memory (a Uint8Array body, so the sender
 * does not half-close and gets the reply), --push-in-flight at a time.
 *
 * The server runs as in production: persistence in a fresh temporary
 * GSTREAMER_DATA_DIR (removed at the end), and GSTREAMER_MAX_REQUESTS_PER_SECOND=0
 * so the per-client request limit does not throttle the cycles.
 *
 * Phases: warm-up (the first --warmup-cycles cycles and --warmup-pushes
 * pushes), then the rest. Each phase has its own WebSocket and HTTP client,
 * closed at the phase's end, so every reading is taken with no client
 * connected. The server's RSS (VmRSS), open descriptors (/proc/<pid>/fd) and
 * threads are read when it listens, after warm-up and at the end; before
 * the last two the server is left to settle: read every second until the
 * descriptor and thread counts have not fallen for --quiet seconds (idle
 * worker threads of tokio and GLib end after 10 to 15 s), at most --settle
 * seconds. Targets: RSS grows by less than 10 MB (10^7 bytes) from after
 * warm-up to the end; descriptors and threads at the end no higher than
 * after warm-up; no failed request.
 *
 * Baseline in the same run: --baseline runs of `gst-launch-1.0 -q
 * videotestsrc num-buffers=N ! fakesink`, --in-flight at a time, spawn to
 * exit; per-cycle time of both (wall time / cycles or runs completed) and the
 * ratio (only when neither side had a failure).
 *
 * Targets are reported as PASS/MISS; a miss never fails the run.
 *
 *   deno run --allow-all bench/soak.ts [--cycles 10000] [--pushes 1000]
 *     [--warmup-cycles 500] [--warmup-pushes 50] [--in-flight 8]
 *     [--push-in-flight 4] [--num-buffers 10] [--baseline 100] [--quiet 20]
 *     [--settle 120]
 */
import { type Reply, type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  fdKinds,
  mib,
  ms,
  parseNumberOptions,
  type ProcessCounts,
  processCounts,
  serverProcessId,
  sleep,
  stopServer,
  summarize,
  type Summary,
  tallyChange,
  threadNames,
  verdict,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  cycles: number;
  pushes: number;
  "warmup-cycles": number;
  "warmup-pushes": number;
  /** Cycles in flight at once (and gst-launch-1.0 processes in the baseline). */
  "in-flight": number;
  "push-in-flight": number;
  /** num-buffers of the cycles' videotestsrc (and of the baseline's). */
  "num-buffers": number;
  /** gst-launch-1.0 runs in the baseline. */
  baseline: number;
  /** Seconds without a fall in descriptors or threads that count as settled. */
  quiet: number;
  /** Longest wait for the server to settle, in seconds. */
  settle: number;
}

function parseOptions(args: string[]): Options {
  const options = parseNumberOptions<Options>(args, {
    cycles: 10000,
    pushes: 1000,
    "warmup-cycles": 500,
    "warmup-pushes": 50,
    "in-flight": 8,
    "push-in-flight": 4,
    "num-buffers": 10,
    baseline: 100,
    quiet: 20,
    settle: 120,
  });
  if (options["in-flight"] < 1 || options["push-in-flight"] < 1 || options["num-buffers"] < 1) {
    throw new Error("--in-flight, --push-in-flight and --num-buffers need at least 1");
  }
  return options;
}

const RSS_TARGET_BYTES = 10e6;
const CLIP_FRAMES = 120;

// ---------------------------------------------------------------- helpers

/** Runs work(0 .. count-1) with at most `limit` in flight. */
async function eachIndex(
  count: number,
  limit: number,
  work: (index: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

/** Failures by kind, with the first few messages kept as examples. */
class Failures {
  readonly byKind = new Map<string, number>();
  readonly examples: string[] = [];

  add(kind: string, message: string): void {
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
    if (this.examples.length < 5) this.examples.push(`${kind}: ${message.slice(0, 300)}`);
  }

  get total(): number {
    let sum = 0;
    for (const count of this.byKind.values()) sum += count;
    return sum;
  }

  summary(): string {
    return this.total === 0
      ? "none"
      : [...this.byKind].map(([kind, count]) => `${kind} x${count}`).join(", ");
  }
}

/** Every child we started and have not reaped yet; killed in `finally`. */
const children = new Set<Deno.ChildProcess>();

async function killChildren(): Promise<void> {
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

/** Runs a command to its end; resolves with its exit code and output. */
async function runCommand(
  command: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(command, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  children.add(child);
  try {
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
  } finally {
    children.delete(child);
  }
}

// ---------------------------------------------------------------- media

const workDir = new URL("./.work/", import.meta.url).pathname;

/** A 4 s 320x240 30 fps H.264 Annex-B clip (key frame every 30 frames) in bench/.work/, made once. */
async function makeClip(): Promise<string> {
  const path = `${workDir}soak-320x240-600k-${CLIP_FRAMES}f.h264`;
  try {
    if (Deno.statSync(path).size > 0) return path;
  } catch {
    // not there yet
  }
  Deno.mkdirSync(workDir, { recursive: true });
  console.log(`Generating ${path} ...`);
  const partial = `${path}.partial`;
  // deno-fmt-ignore
  const { code, output } = await runCommand("ffmpeg", [
    "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
    "-frames:v", String(CLIP_FRAMES), "-c:v", "libx264", "-preset", "ultrafast",
    "-pix_fmt", "yuv420p", "-b:v", "600k", "-maxrate", "600k", "-bufsize", "600k",
    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-f", "h264", partial,
  ]);
  if (code !== 0) throw new Error(`ffmpeg exited ${code}:\n${output.slice(-2000)}`);
  Deno.renameSync(partial, path);
  return path;
}

// ---------------------------------------------------------------- readings

interface Reading extends ProcessCounts {
  fdKinds: Map<string, number>;
  threadNames: Map<string, number>;
  /** Seconds waited for the counts to settle, and whether they did before --settle. */
  settledAfter: number;
  settled: boolean;
}

function read(pid: number, settledAfter = 0, settled = true): Reading {
  return {
    ...processCounts(pid),
    fdKinds: fdKinds(pid),
    threadNames: threadNames(pid),
    settledAfter,
    settled,
  };
}

/** Reads every second until descriptors and threads have not fallen for `quiet` s (at most `deadline` s). */
async function settle(pid: number, options: Options): Promise<Reading> {
  const startedAt = performance.now();
  let low = processCounts(pid);
  let lastFall = startedAt;
  for (;;) {
    await sleep(1000);
    const now = processCounts(pid);
    const at = performance.now();
    if (now.fds < low.fds || now.threads < low.threads) lastFall = at;
    low = { ...now, fds: Math.min(low.fds, now.fds), threads: Math.min(low.threads, now.threads) };
    const waited = (at - startedAt) / 1000;
    if (at - lastFall >= options.quiet * 1000) return read(pid, waited, true);
    if (waited >= options.settle) return read(pid, waited, false);
  }
}

/** A reading taken while running (not settled), for the growth trend. */
interface Snapshot extends ProcessCounts {
  /** Cycles or pushes done so far, warm-up included. */
  done: number;
}

function trend(snapshots: Snapshot[], per: number): string {
  if (snapshots.length < 2) return "n/a";
  // Least-squares slope of RSS over the count done.
  const n = snapshots.length;
  const mx = snapshots.reduce((s, p) => s + p.done, 0) / n;
  const my = snapshots.reduce((s, p) => s + p.rssKib, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of snapshots) {
    sxy += (p.done - mx) * (p.rssKib - my);
    sxx += (p.done - mx) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const first = snapshots[0];
  const last = snapshots.at(-1)!;
  return `RSS ${(slope * per).toFixed(0)} KiB per ${per} (least squares over ${n} readings); ` +
    `from ${first.done} to ${last.done}: RSS ${mib(first.rssKib)} -> ${mib(last.rssKib)}, ` +
    `fds ${first.fds} -> ${last.fds}, threads ${first.threads} -> ${last.threads}`;
}

// ---------------------------------------------------------------- cycles

interface CycleRun {
  count: number;
  seconds: number;
  /** Milliseconds of each cycle whose four requests got ok replies (create to the delete reply). */
  times: Summary | null;
  /** startPipeline replies whose state was not PLAYING (not errors, counted apart). */
  notPlaying: Map<string, number>;
}

async function request(
  client: TestClient,
  failures: Failures,
  type: string,
  payload: unknown,
): Promise<Reply | null> {
  try {
    const reply = await client.request(type, payload);
    if (reply.ok) return reply;
    failures.add(`${type} ${reply.error?.code}`, reply.error?.message ?? JSON.stringify(reply));
  } catch (error) {
    failures.add(`${type} no reply`, String(error));
  }
  return null;
}

async function runCycles(
  client: TestClient,
  pid: number,
  first: number,
  count: number,
  options: Options,
  failures: Failures,
  snapshots: Snapshot[],
  label: string,
): Promise<CycleRun> {
  const elements = [
    { type: "videotestsrc", properties: { "num-buffers": options["num-buffers"] } },
    { type: "fakesink" },
  ];
  const times: number[] = [];
  const notPlaying = new Map<string, number>();
  const step = Math.max(1, Math.floor(count / 10));
  let done = 0;
  const startedAt = performance.now();
  await eachIndex(count, options["in-flight"], async (index) => {
    const id = `soak-${first + index}`;
    const cycleStart = performance.now();
    if (await request(client, failures, "createPipeline", { id, pipeline: { elements } })) {
      const start = await request(client, failures, "startPipeline", { id });
      const state = start?.payload?.state;
      if (start && state !== "PLAYING") {
        const key = `${state}${start.payload?.pending ? ` pending ${start.payload.pending}` : ""}`;
        notPlaying.set(key, (notPlaying.get(key) ?? 0) + 1);
      }
      const stopped = await request(client, failures, "stopPipeline", { id });
      const deleted = await request(client, failures, "deletePipeline", { id });
      // A failed cycle is not timed: a 20 s timeout would otherwise be its p99.
      if (start && stopped && deleted) times.push(performance.now() - cycleStart);
    }
    client.received.length = 0; // events and stats we do not look at
    if (++done % step === 0 || done === count) {
      const counts = processCounts(pid);
      snapshots.push({ done: first + done, ...counts });
      const rate = done / ((performance.now() - startedAt) / 1000);
      console.log(
        `  ${label} cycles ${done}/${count} (${rate.toFixed(0)}/s): RSS ${mib(counts.rssKib)}, ` +
          `fds ${counts.fds}, threads ${counts.threads}, failures ${failures.total}`,
      );
    }
  });
  return {
    count,
    seconds: (performance.now() - startedAt) / 1000,
    times: times.length ? summarize(times) : null,
    notPlaying,
  };
}

// ---------------------------------------------------------------- pushes

interface PushRun {
  count: number;
  seconds: number;
  /** HTTP replies received (any status). */
  replies: number;
  /** Milliseconds of each push that succeeded (POST to reply). */
  times: Summary | null;
}

async function runPushes(
  server: ServerProcess,
  pid: number,
  clip: Uint8Array<ArrayBuffer>,
  first: number,
  count: number,
  options: Options,
  failures: Failures,
  snapshots: Snapshot[],
  label: string,
): Promise<PushRun> {
  // Keep-alive connections of this phase are closed with the client at its end.
  const httpClient = Deno.createHttpClient({});
  const times: number[] = [];
  const step = Math.max(1, Math.floor(count / 10));
  let done = 0;
  let replies = 0;
  const startedAt = performance.now();
  try {
    await eachIndex(count, options["push-in-flight"], async (index) => {
      const name = `soakpush-${first + index}`;
      const pushStart = performance.now();
      try {
        const response = await fetch(`${server.httpUrl}/push/${name}`, {
          method: "POST",
          headers: { "content-type": "video/h264" },
          body: clip,
          client: httpClient,
        });
        const text = await response.text();
        const pushTime = performance.now() - pushStart;
        replies++;
        if (response.status !== 200) {
          failures.add(`push HTTP ${response.status}`, text);
        } else {
          const reply = JSON.parse(text);
          if (reply.bytes !== clip.byteLength || reply.frames !== CLIP_FRAMES) {
            failures.add(
              "push incomplete",
              `${name}: ${text} (sent ${clip.byteLength} bytes, ${CLIP_FRAMES} frames)`,
            );
          } else {
            times.push(pushTime);
          }
        }
      } catch (error) {
        failures.add("push no reply", `${name}: ${error}`);
      }
      if (++done % step === 0 || done === count) {
        const counts = processCounts(pid);
        snapshots.push({ done: first + done, ...counts });
        const rate = done / ((performance.now() - startedAt) / 1000);
        console.log(
          `  ${label} pushes ${done}/${count} (${rate.toFixed(1)}/s): RSS ${mib(counts.rssKib)}, ` +
            `fds ${counts.fds}, threads ${counts.threads}, failures ${failures.total}`,
        );
      }
    });
  } finally {
    httpClient.close();
  }
  return {
    count,
    seconds: (performance.now() - startedAt) / 1000,
    replies,
    times: times.length ? summarize(times) : null,
  };
}

// ---------------------------------------------------------------- baseline

interface Baseline {
  count: number;
  seconds: number;
  times: Summary | null;
  failures: Failures;
}

async function runBaseline(options: Options): Promise<Baseline> {
  const failures = new Failures();
  const times: number[] = [];
  const args = ["-q", "videotestsrc", `num-buffers=${options["num-buffers"]}`, "!", "fakesink"];
  const startedAt = performance.now();
  await eachIndex(options.baseline, options["in-flight"], async () => {
    const runStart = performance.now();
    const { code, output } = await runCommand("gst-launch-1.0", args);
    if (code === 0) times.push(performance.now() - runStart);
    else failures.add(`gst-launch-1.0 exit ${code}`, output);
  });
  return {
    count: options.baseline,
    seconds: (performance.now() - startedAt) / 1000,
    times: times.length ? summarize(times) : null,
    failures,
  };
}

// ---------------------------------------------------------------- the run

/** "name 123 B, sub/other 45 B": the files under `dir` with their sizes. */
function dirListing(dir: string, prefix = ""): string[] {
  const files: string[] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...dirListing(path, `${prefix}${entry.name}/`));
    else files.push(`${prefix}${entry.name} ${Deno.statSync(path).size} B`);
  }
  return files;
}

interface Phase {
  cycles: CycleRun;
  pushes: PushRun;
  /** Pipelines getPipelines still listed at the phase's end. */
  left: number;
}

async function runPhase(
  server: ServerProcess,
  pid: number,
  clip: Uint8Array<ArrayBuffer>,
  firstCycle: number,
  cycles: number,
  firstPush: number,
  pushes: number,
  options: Options,
  failures: Failures,
  snapshots: { cycles: Snapshot[]; pushes: Snapshot[] },
  label: string,
): Promise<Phase> {
  console.log(`${label}: ${cycles} cycles, ${options["in-flight"]} in flight ...`);
  const client = await TestClient.connect(server.url);
  try {
    const cycleRun = await runCycles(
      client,
      pid,
      firstCycle,
      cycles,
      options,
      failures,
      snapshots.cycles,
      label,
    );
    console.log(`${label}: ${pushes} pushes, ${options["push-in-flight"]} in flight ...`);
    const pushRun = await runPushes(
      server,
      pid,
      clip,
      firstPush,
      pushes,
      options,
      failures,
      snapshots.pushes,
      label,
    );
    const listed = await request(client, failures, "getPipelines", undefined);
    return { cycles: cycleRun, pushes: pushRun, left: listed?.payload?.pipelines?.length ?? -1 };
  } finally {
    await client.close();
  }
}

interface Results {
  options: Options;
  warmCycles: number;
  warmPushes: number;
  clipBytes: number;
  start: Reading;
  warm: Reading;
  end: Reading;
  warmPhase: Phase;
  mainPhase: Phase;
  failures: Failures;
  baseline: Baseline;
  snapshots: { cycles: Snapshot[]; pushes: Snapshot[] };
  /** The data dir's files at the end, with sizes. */
  dataDir: string[];
  /** Server log lines that look like errors (shown when something failed). */
  serverErrors: string[];
  runSeconds: number;
}

const msOrNa = (value: number) => (Number.isFinite(value) ? ms(value) : "n/a");

function rate(count: number, seconds: number, digits = 0): string {
  return count > 0 ? `${(count / seconds).toFixed(digits)}/s` : "n/a";
}

/** Cycles, pushes or gst-launch runs that succeeded: only those are timed. */
const completed = (run: { times: Summary | null }) => run.times?.count ?? 0;

function report(r: Results): void {
  const { start, warm, end, warmPhase, mainPhase, baseline, options } = r;
  const pad = (text: string, width: number) => text.padStart(width);
  const row = (phase: string, reading: Reading) =>
    `${phase.padEnd(15)}${pad((reading.rssKib / 1024).toFixed(1), 9)}${
      pad(String(reading.fds), 6)
    }${pad(String(reading.threads), 9)}   ${
      reading.settledAfter > 0
        ? `${reading.settled ? "settled" : "NOT settled"} after ${
          reading.settledAfter.toFixed(0)
        } s`
        : "on listening"
    }`;
  const growthBytes = (end.rssKib - warm.rssKib) * 1024;
  const fdsBack = end.fds <= warm.fds;
  const threadsBack = end.threads <= warm.threads;
  // Requests over the WebSocket (getPipelines included): a failed start is usually followed by a
  // failed stop and delete, so failed cycles are counted apart.
  const failedRequests = [...r.failures.byKind].filter(([kind]) => !kind.startsWith("push"))
    .reduce((s, [, n]) => s + n, 0);
  const pushFailures = r.failures.total - failedRequests;
  const allCycles = warmPhase.cycles.count + mainPhase.cycles.count;
  const failedCycles = allCycles - completed(warmPhase.cycles) - completed(mainPhase.cycles);
  const allPushes = warmPhase.pushes.count + mainPhase.pushes.count;
  const allReplies = warmPhase.pushes.replies + mainPhase.pushes.replies;
  const notPlaying = new Map<string, number>();
  for (const phase of [warmPhase, mainPhase]) {
    for (const [k, n] of phase.cycles.notPlaying) notPlaying.set(k, (notPlaying.get(k) ?? 0) + n);
  }
  // Per-cycle time: wall time / cycles (or runs) completed, the same concurrency on both sides.
  // The wall time holds the failed ones too, so the ratio is given only when neither side failed.
  const perCycle = (seconds: number, done: number) => (done > 0 ? (seconds * 1000) / done : NaN);
  const oursPerCycle = perCycle(mainPhase.cycles.seconds, completed(mainPhase.cycles));
  const launchPerCycle = perCycle(baseline.seconds, completed(baseline));
  const oursFailed = mainPhase.cycles.count - completed(mainPhase.cycles);
  const launchFailed = baseline.count - completed(baseline);
  const failedSides = [...(oursFailed ? ["ours"] : []), ...(launchFailed ? ["gst-launch"] : [])];
  const failedOf = (failed: number, count: number) =>
    failed ? ` (${failed} of ${count} failed)` : "";
  const lines = [
    "",
    "=== soak benchmark ===",
    `cycles: ${allCycles} x create/start/stop/delete of 'videotestsrc num-buffers=` +
    `${options["num-buffers"]} ! fakesink' (${r.warmCycles} warm-up), ${options["in-flight"]} ` +
    `in flight over one WebSocket per phase`,
    `pushes: ${allPushes} x POST /push/{name} of a ${(r.clipBytes / 1024).toFixed(0)} KiB ` +
    `320x240 H.264 clip (${CLIP_FRAMES} frames; ${r.warmPushes} warm-up), ` +
    `${options["push-in-flight"]} in flight`,
    "",
    `phase            RSS MiB   fds  threads`,
    row("start", start),
    row("after warm-up", warm),
    row("end", end),
    "",
    `cycles completed/s: warm-up ${rate(completed(warmPhase.cycles), warmPhase.cycles.seconds)}, ` +
    `after ${rate(completed(mainPhase.cycles), mainPhase.cycles.seconds)}; one completed cycle ` +
    `(create to delete reply) p50 ${
      mainPhase.cycles.times ? ms(mainPhase.cycles.times.p50) : "n/a"
    }, p99 ${mainPhase.cycles.times ? ms(mainPhase.cycles.times.p99) : "n/a"}`,
    `pushes completed/s: warm-up ${
      rate(completed(warmPhase.pushes), warmPhase.pushes.seconds, 1)
    }, after ${rate(completed(mainPhase.pushes), mainPhase.pushes.seconds, 1)}; one completed ` +
    `push (POST to reply) p50 ${
      mainPhase.pushes.times ? ms(mainPhase.pushes.times.p50) : "n/a"
    }, p99 ${mainPhase.pushes.times ? ms(mainPhase.pushes.times.p99) : "n/a"}`,
    `cycle failures: ${failedCycles} of ${allCycles} cycles (failed requests: ${failedRequests}, ` +
    `getPipelines included); push replies ${allReplies} of ` +
    `${allPushes}, push failures ${pushFailures}; by kind: ${r.failures.summary()}`,
    ...r.failures.examples.map((example) => `  e.g. ${example}`),
    ...(r.failures.total > 0
      ? [
        `server log lines that look like errors: ${r.serverErrors.length}`,
        ...r.serverErrors.slice(0, 10).map((line) => `  ${line.slice(0, 300)}`),
      ]
      : []),
    `startPipeline replies not PLAYING (not errors): ${
      notPlaying.size ? [...notPlaying].map(([k, n]) => `${k} x${n}`).join(", ") : "none"
    }`,
    `pipelines left listed: ${warmPhase.left} after warm-up, ${mainPhase.left} at the end; ` +
    `data dir at the end: ${r.dataDir.length ? r.dataDir.join(", ") : "empty"}`,
    `trend during the main cycles (unsettled readings): ${trend(r.snapshots.cycles, 1000)}`,
    `trend during the main pushes (unsettled readings): ${trend(r.snapshots.pushes, 100)}`,
    "",
    `baseline: ${baseline.count} x gst-launch-1.0 -q videotestsrc num-buffers=` +
    `${options["num-buffers"]} ! fakesink, ${options["in-flight"]} in flight, spawn to exit` +
    `${baseline.failures.total ? ` (${baseline.failures.summary()})` : ""}`,
    `per cycle (wall time / completed): ours ${msOrNa(oursPerCycle)}${
      failedOf(oursFailed, mainPhase.cycles.count)
    }, gst-launch ${msOrNa(launchPerCycle)}${failedOf(launchFailed, baseline.count)}, ratio ${
      failedSides.length
        ? `n/a (failures: ${failedSides.join(", ")})`
        : Number.isFinite(launchPerCycle / oursPerCycle)
        ? `${(launchPerCycle / oursPerCycle).toFixed(1)}x`
        : "n/a"
    }; one run p50: gst-launch ${baseline.times ? ms(baseline.times.p50) : "n/a"}`,
    "",
    `RSS growth after warm-up: ${(growthBytes / 2 ** 20).toFixed(1)} MiB ` +
    `(${(growthBytes / 1e6).toFixed(1)} MB; target < 10 MB): ${
      verdict(growthBytes < RSS_TARGET_BYTES)
    }`,
    `fds: start ${start.fds}, after warm-up ${warm.fds}, end ${end.fds} (end ${
      end.fds - warm.fds >= 0 ? "+" : ""
    }${end.fds - warm.fds} vs after warm-up; target back to it): ${verdict(fdsBack)}`,
    `threads: start ${start.threads}, after warm-up ${warm.threads}, end ${end.threads} (end ${
      end.threads - warm.threads >= 0 ? "+" : ""
    }${end.threads - warm.threads} vs after warm-up; target back to it): ${verdict(threadsBack)}`,
    `no failed request: ${verdict(r.failures.total === 0)}`,
    `fd kinds, after warm-up -> end: ${tallyChange(warm.fdKinds, end.fdKinds)}; ` +
    `start -> after warm-up: ${tallyChange(start.fdKinds, warm.fdKinds)}`,
    `thread names, after warm-up -> end: ${tallyChange(warm.threadNames, end.threadNames)}; ` +
    `start -> after warm-up: ${tallyChange(start.threadNames, warm.threadNames)}`,
    `run time: ${(r.runSeconds / 60).toFixed(1)} min`,
  ];
  console.log(lines.join("\n"));
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const runStart = performance.now();
  const warmCycles = Math.min(options["warmup-cycles"], Math.floor(options.cycles / 2));
  const warmPushes = Math.min(options["warmup-pushes"], Math.floor(options.pushes / 2));
  let server: ServerProcess | undefined;
  const dataDir = Deno.makeTempDirSync({ prefix: "gst-soak-data-" });
  const cleanUp = async () => {
    await killChildren();
    if (server) await stopServer(server);
    server = undefined;
    Deno.removeSync(dataDir, { recursive: true });
  };
  const interrupted = async () => {
    await cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const clipPath = await makeClip();
    const clip = Deno.readFileSync(clipPath);
    server = await startServer({
      GSTREAMER_DATA_DIR: dataDir,
      GSTREAMER_MAX_REQUESTS_PER_SECOND: "0",
    });
    const pid = serverProcessId(server);
    const start = read(pid);
    console.log(
      `Server pid ${pid} listening, data dir ${dataDir}: RSS ${mib(start.rssKib)}, ` +
        `fds ${start.fds}, threads ${start.threads}`,
    );
    const failures = new Failures();
    // Readings while running; only the main phase's go into the trend.
    const warmSnapshots = { cycles: [] as Snapshot[], pushes: [] as Snapshot[] };
    const snapshots = { cycles: [] as Snapshot[], pushes: [] as Snapshot[] };
    const warmPhase = await runPhase(
      server,
      pid,
      clip,
      0,
      warmCycles,
      0,
      warmPushes,
      options,
      failures,
      warmSnapshots,
      "warm-up",
    );
    console.log(`warm-up: settling (up to ${options.settle} s) ...`);
    const warm = await settle(pid, options);
    console.log(
      `after warm-up: RSS ${mib(warm.rssKib)}, fds ${warm.fds}, threads ${warm.threads}`,
    );
    const mainPhase = await runPhase(
      server,
      pid,
      clip,
      warmCycles,
      options.cycles - warmCycles,
      warmPushes,
      options.pushes - warmPushes,
      options,
      failures,
      snapshots,
      "main",
    );
    console.log(`end: settling (up to ${options.settle} s) ...`);
    const end = await settle(pid, options);
    const dataUsage = dirListing(dataDir);
    const serverErrors = server.logs.filter((line) => /error|exception|internal/i.test(line));
    await stopServer(server);
    server = undefined;
    console.log(`baseline: ${options.baseline} x gst-launch-1.0 ...`);
    const baseline = await runBaseline(options);
    report({
      options,
      warmCycles,
      warmPushes,
      clipBytes: clip.byteLength,
      start,
      warm,
      end,
      warmPhase,
      mainPhase,
      failures,
      baseline,
      snapshots,
      dataDir: dataUsage,
      serverErrors,
      runSeconds: (performance.now() - runStart) / 1000,
    });
  } finally {
    await cleanUp();
    Deno.removeSignalListener("SIGINT", interrupted);
  }
}

if (import.meta.main) await main();
