/**
 * Scale benchmark (issue 14, item 3): how many live pipelines, and how many RTSP readers of one
 * stream, the server holds on this machine before the stats interval or a request's p99 exceeds
 * twice its idle value; and how many live pipelines gstd holds before its request p99 does (gstd
 * has no stats and no RTSP server).
 *
 * Each step adds pipelines (or readers), lets them settle, and measures over one window:
 * - the stats interval: the gaps between the `stats` events one client receives (asked every
 *   1000 ms, the default), p99;
 * - a request: `getElementProperty` of a small pipeline of its own, every 20 ms, p99 (gstd:
 *   `element_get` of the same element);
 * - the server's CPU, the whole machine's busy share, and (readers) whether every reader still
 *   receives data.
 * The idle values come from the same server with only the probe pipeline, after one window of
 * probes not counted (a warm-up). Our server runs at the defaults (pipelines stored on disk) but
 * with GSTREAMER_MAX_PIPELINES raised to reach the steps.
 *
 * A ramp ends after two steps in a row over 2x idle; the count reported is the last step held
 * before those two. A lone step over with a step held after it (a p99 of 200 requests is one
 * slow reply, which a neighbour on a shared machine can cause) is named in the report, not taken
 * as the limit; so is a last step over with no step after it (not confirmed).
 *
 * Each part (our pipelines, gstd's, our readers) runs in a bench process of its own.
 *
 *   deno run --allow-all bench/scale.ts [--max-pipelines 1600] [--max-readers 400]
 *     [--window 10] [--settle 3] [--skip-ours 1] [--skip-gstd 1] [--skip-readers 1]
 */
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import { findGstd, type Gstd, GstdClient, startGstd } from "./gstd.ts";
import {
  expectOk,
  machineBusy,
  machineTicks,
  ms,
  parseNumberOptions,
  percentile,
  serverProcessId,
  sleep,
  startUsage,
  stopServer,
} from "./measure.ts";

interface Options {
  "max-pipelines": number;
  /** 1: leave out a part. */
  "skip-ours": number;
  "skip-gstd": number;
  "skip-readers": number;
  "max-readers": number;
  /** Seconds each step is measured. */
  window: number;
  /** Seconds each step settles before it is measured. */
  settle: number;
}

const options = parseNumberOptions<Options>(
  Deno.args,
  {
    "max-pipelines": 1600,
    "max-readers": 400,
    window: 10,
    settle: 3,
    "skip-ours": 0,
    "skip-gstd": 0,
    "skip-readers": 0,
  },
  ["window", "settle"],
);

const PIPELINE_STEPS = [25, 50, 100, 200, 400, 600, 800, 1200, 1600, 2400, 3200];
const READER_STEPS = [10, 25, 50, 100, 150, 200, 300, 400, 600, 800];
const PROBE_EVERY_MS = 20;
const liveCaps = "video/x-raw,width=64,height=48";
const liveElements = [
  { type: "videotestsrc", properties: { "is-live": true } },
  { type: "capsfilter", properties: { caps: liveCaps } },
  { type: "fakesink" },
];
const liveLaunch = `videotestsrc is-live=true ! ${liveCaps} ! fakesink`;
const probeLaunch = "videotestsrc is-live=true ! fakesink name=sink";

interface Step {
  count: number;
  /** p99 of the gaps between stats events (ours only). */
  statsP99: number | null;
  probeP99: number;
  probeP50: number;
  cpuPercent: number;
  machineBusy: number;
  /** Readers that received nothing during the window (readers only). */
  stalled?: number;
}

/** Runs `probe` every PROBE_EVERY_MS for `seconds` and returns its times. */
async function probeTimes(probe: () => Promise<unknown>, seconds: number): Promise<number[]> {
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const startedAt = performance.now();
    await probe();
    times.push(performance.now() - startedAt);
    await sleep(Math.max(0, PROBE_EVERY_MS - (performance.now() - startedAt)));
  }
  return times;
}

/**
 * Runs the probe for one window and throws its times away: the first requests of a fresh server
 * (and of this process's client code) run before V8 has compiled their path, and an idle window
 * measured then was slower than the steps after it (p50 1.13 ms idle, 0.64 ms with 25 pipelines).
 */
async function warmUp(probe: () => Promise<unknown>): Promise<void> {
  await probeTimes(probe, options.window);
}

/** Arrival times of the stats events a client receives. */
function statsArrivals(client: TestClient): { since(at: number): number[] } {
  const arrivals: number[] = [];
  client.socket.addEventListener("message", (event) => {
    if (String(event.data).startsWith('{"type":"stats"')) arrivals.push(performance.now());
  });
  return { since: (at) => arrivals.filter((time) => time >= at) };
}

function gapsP99(arrivals: number[]): number | null {
  const gaps = arrivals.slice(1).map((time, i) => time - arrivals[i]);
  return gaps.length === 0 ? null : percentile(gaps, 99);
}

/**
 * One window on a system: probe p99, stats gaps, CPU of `pid`, machine busy. `settled` runs
 * after the settle, just before the window.
 */
async function measureStep(
  count: number,
  pid: number,
  probe: () => Promise<unknown>,
  stats: { since(at: number): number[] } | null,
  settled?: () => Promise<unknown>,
): Promise<Step> {
  await sleep(options.settle * 1000);
  await settled?.();
  const startedAt = performance.now();
  const usage = startUsage(pid);
  const machine = machineTicks();
  const times = await probeTimes(probe, options.window);
  return {
    count,
    statsP99: stats ? gapsP99(stats.since(startedAt)) : null,
    probeP99: percentile(times, 99),
    probeP50: percentile(times, 50),
    cpuPercent: usage.stop().cpuPercent,
    machineBusy: machineBusy(machine),
  };
}

function holds(step: Step, idle: Step): boolean {
  const statsHold = step.statsP99 === null || idle.statsP99 === null ||
    step.statsP99 <= 2 * idle.statsP99;
  return statsHold && step.probeP99 <= 2 * idle.probeP99 && (step.stalled ?? 0) === 0;
}

function stepLine(step: Step, idle: Step, what: string): string {
  const stats = step.statsP99 === null ? "" : `stats gap p99 ${ms(step.statsP99)}, `;
  const stalled = step.stalled === undefined ? "" : `, ${step.stalled} readers stalled`;
  return `  ${String(step.count).padStart(5)} ${what}: ${stats}request p99 ${ms(step.probeP99)} ` +
    `(p50 ${ms(step.probeP50)}), ` +
    `CPU ${step.cpuPercent.toFixed(0)}% of one core, machine ${
      step.machineBusy.toFixed(0)
    }% busy${stalled}${holds(step, idle) ? "" : "  <- over 2x idle"}`;
}

/**
 * Runs steps until two in a row do not hold (one step over 2x idle on a shared machine can be a
 * neighbour's doing); returns the lines, the last count held before those two, the first of them
 * (or the last step, when it alone is over: `confirmed` false), and the lone steps over that a
 * step holding came after (reported, not taken as the limit).
 */
async function ramp(
  steps: number[],
  idle: Step,
  what: string,
  step: (count: number) => Promise<Step>,
): Promise<
  { lines: string[]; held: number; failedAt: number | null; confirmed: boolean; lone: number[] }
> {
  const lines = [stepLine(idle, idle, `${what} (idle)`)];
  let held = 0;
  let over: number | null = null;
  const lone: number[] = [];
  for (const count of steps) {
    const result = await step(count);
    lines.push(stepLine(result, idle, what));
    console.log(lines.at(-1));
    if (holds(result, idle)) {
      if (over !== null) lone.push(over);
      over = null;
      held = count;
    } else if (over === null) {
      over = count;
    } else {
      return { lines, held, failedAt: over, confirmed: true, lone };
    }
  }
  return { lines, held, failedAt: over, confirmed: false, lone };
}

/** A client, a stats watcher and the probe pipeline on our server, for one ramp. */
async function withProbe<T>(
  server: ServerProcess,
  body: (
    client: TestClient,
    idle: () => Promise<Step>,
    measure: (count: number, settled?: () => Promise<unknown>) => Promise<Step>,
  ) => Promise<T>,
): Promise<T> {
  const client = await TestClient.connect(server.url);
  const statsClient = await TestClient.connect(server.url);
  const pid = serverProcessId(server);
  const stats = statsArrivals(statsClient);
  // Nobody reads the clients' received lists: keep them from growing.
  const timer = setInterval(() => {
    client.received.length = 0;
    statsClient.received.length = 0;
  }, 1000);
  try {
    expectOk(
      await client.request("createPipeline", { id: "probe", pipeline: probeLaunch }),
      "create probe",
    );
    expectOk(await client.request("startPipeline", { id: "probe" }), "start probe");
    const probe = async () =>
      expectOk(
        await client.request("getElementProperty", {
          id: "probe",
          element: "sink",
          property: "sync",
        }),
        "probe",
      );
    const measure = (count: number, settled?: () => Promise<unknown>) =>
      measureStep(count, pid, probe, stats, settled);
    const idle = async () => {
      await warmUp(probe);
      return await measure(0);
    };
    return await body(client, idle, measure);
  } finally {
    clearInterval(timer);
    await client.close();
    await statsClient.close();
  }
}

/** "  ours holds 100 live pipelines; 200 is over 2x idle (and the step after it)" */
function heldLine(
  who: string,
  result: { held: number; failedAt: number | null; confirmed: boolean; lone: number[] },
  what: string,
) {
  const lone = result.lone.length === 0
    ? ""
    : `; lone steps over 2x idle, held after: ${result.lone.join(", ")}`;
  return `  ${who} holds ${result.held} ${what}` +
    (result.failedAt === null
      ? " (the largest step)"
      : result.confirmed
      ? `; ${result.failedAt} is over 2x idle, and the step after it`
      : `; ${result.failedAt}, the last step, is over 2x idle (not confirmed: no step after it)`) +
    lone;
}

async function oursPipelines(server: ServerProcess): Promise<string[]> {
  return await withProbe(server, async (client, measureIdle, measure) => {
    const idle = await measureIdle();
    let made = 0;
    const result = await ramp(
      PIPELINE_STEPS.filter((n) => n <= options["max-pipelines"]),
      idle,
      "live pipelines",
      async (count) => {
        const ids = Array.from({ length: count - made }, (_, i) => `live-${made + i}`);
        await Promise.all(Array.from({ length: 8 }, async () => {
          for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
            expectOk(
              await client.request("createPipeline", { id, pipeline: { elements: liveElements } }),
              `create ${id}`,
            );
            expectOk(await client.request("startPipeline", { id }), `start ${id}`);
          }
        }));
        made = count;
        return await measure(count);
      },
    );
    return [
      `ours (disk store), live pipelines, idle: stats gap p99 ${ms(idle.statsP99 ?? NaN)}, ` +
      `request p99 ${ms(idle.probeP99)}`,
      ...result.lines,
      heldLine("ours", result, "live pipelines"),
    ];
  });
}

async function gstdPipelines(gstd: Gstd): Promise<string[]> {
  const connection = await GstdClient.connect(gstd.port);
  const prober = await GstdClient.connect(gstd.port);
  try {
    await connection.command(`pipeline_create probe ${probeLaunch}`);
    await connection.command("pipeline_play probe");
    const probe = () => prober.command("element_get probe sink sync");
    await warmUp(probe);
    const idle = await measureStep(0, gstd.pid, probe, null);
    let made = 0;
    const result = await ramp(
      PIPELINE_STEPS.filter((n) => n <= options["max-pipelines"]),
      idle,
      "live pipelines",
      async (count) => {
        for (; made < count; made++) {
          await connection.command(`pipeline_create live_${made} ${liveLaunch}`);
          await connection.command(`pipeline_play live_${made}`);
        }
        return await measureStep(count, gstd.pid, probe, null);
      },
    );
    return [
      `gstd ${gstd.version}, live pipelines, idle: request p99 ${ms(idle.probeP99)}`,
      ...result.lines,
      heldLine("gstd", result, "live pipelines"),
    ];
  } finally {
    connection.close();
    prober.close();
  }
}

/** bench/rtsp_readers.ts in a child process: its readers' reading costs this process nothing. */
class ReaderProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  constructor(base: string, path: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        new URL("./rtsp_readers.ts", import.meta.url).pathname,
        base,
        path,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = (async function* (stdout: ReadableStream<Uint8Array>) {
      let pending = "";
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        const parts = (pending + chunk).split("\n");
        pending = parts.pop() ?? "";
        yield* parts;
      }
    })(this.#child.stdout);
  }

  /** Opens `count` more readers (0: none) and returns the bytes each has received so far. */
  async add(count: number): Promise<number[]> {
    await this.#writer.write(new TextEncoder().encode(`add ${count}\n`));
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("the readers' process ended");
    const answer = JSON.parse(value);
    if (answer.error) throw new Error(`RTSP readers: ${answer.error}`);
    return answer.drained;
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.#child.status;
  }
}

async function oursReaders(server: ServerProcess): Promise<string[]> {
  const readers = new ReaderProcess(server.rtspUrl, "scale");
  try {
    return await withProbe(server, async (client, measureIdle, measure) => {
      const camera = "videotestsrc is-live=true ! video/x-raw,width=320,height=240," +
        "framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! " +
        "rtspserversink path=scale";
      expectOk(
        await client.request("createPipeline", { id: "camera", pipeline: camera }),
        "camera",
      );
      expectOk(await client.request("startPipeline", { id: "camera" }), "start camera");
      const idle = await measureIdle();
      let opened = 0;
      const result = await ramp(
        READER_STEPS.filter((n) => n <= options["max-readers"]),
        idle,
        "RTSP readers of one stream",
        async (count) => {
          await readers.add(count - opened);
          opened = count;
          // Counted from the window's start: a reader fed only while settling is stalled.
          let before: number[] = [];
          const step = await measure(count, async () => before = await readers.add(0));
          const after = await readers.add(0);
          step.stalled = after.filter((bytes, i) => bytes === before[i]).length;
          return step;
        },
      );
      return [
        `ours (disk store), RTSP/TCP readers of one H.264 stream (320x240, 30 fps) in another ` +
        `process, idle: stats gap p99 ${ms(idle.statsP99 ?? NaN)}, request p99 ${
          ms(idle.probeP99)
        }`,
        ...result.lines,
        heldLine("ours", result, "readers"),
      ];
    });
  } finally {
    await readers.close();
  }
}

/** Children to stop when the run is interrupted (a gstd left running skews every later run). */
const running = new Set<{ stop(): Promise<unknown> }>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    await Promise.allSettled([...running].map((child) => child.stop()));
    Deno.exit(130);
  });
}

const PARTS = ["ours", "gstd", "readers"] as const;
type Part = typeof PARTS[number];
const REPORT_MARKER = "=== scale benchmark ===";

/**
 * One part in a bench process of its own, so that no part measures in a process that an earlier
 * part left with a large heap (ours: up to 1200 pipelines' events and replies parsed) or many
 * sockets. Its progress lines pass through; returns its report lines.
 */
async function runPartAlone(part: Part): Promise<string[]> {
  const args = ["max-pipelines", "max-readers", "window", "settle"].flatMap((name) => [
    `--${name}`,
    String(options[name as keyof Options]),
  ]);
  for (const other of PARTS) if (other !== part) args.push(`--skip-${other}`, "1");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const handle = { stop: () => Promise.resolve(child.kill("SIGTERM")) };
  running.add(handle);
  const lines: string[] = [];
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    const parts = (pending + chunk).split("\n");
    pending = parts.pop() ?? "";
    for (const line of parts) {
      // Its progress passes through; its report is printed once, with the others', at the end.
      if (!lines.includes(REPORT_MARKER) && line !== REPORT_MARKER) console.log(line);
      lines.push(line);
    }
  }
  if (pending !== "") lines.push(pending);
  const { code } = await child.status;
  running.delete(handle);
  const marker = lines.indexOf(REPORT_MARKER);
  if (code !== 0 || marker === -1) throw new Error(`the ${part} part failed (exit ${code})`);
  return lines.slice(marker + 1).filter((line, i) => i > 0 || line !== "");
}

/** The parts not skipped, in this process; their report lines. */
async function runHere(): Promise<string[]> {
  const scratch = await Deno.makeTempDir({ prefix: "scale-" });
  const report: string[] = [];
  const env = {
    GSTREAMER_DATA_DIR: `${scratch}/data`,
    GSTREAMER_MAX_PIPELINES: String(options["max-pipelines"] + 10),
  };
  try {
    if (!options["skip-ours"]) {
      console.log("Live pipelines in our server ...");
      const server = await startServer(env);
      running.add(server);
      try {
        report.push(...await oursPipelines(server));
      } finally {
        await stopServer(server);
        running.delete(server);
      }
    }
    const gstdPath = options["skip-gstd"] ? null : await findGstd();
    if (gstdPath) {
      console.log("Live pipelines in gstd ...");
      const gstd = await startGstd(gstdPath);
      running.add(gstd);
      try {
        report.push("", ...await gstdPipelines(gstd));
      } finally {
        await gstd.stop();
        running.delete(gstd);
      }
    } else if (!options["skip-gstd"]) {
      report.push("", "gstd: not installed (bench/build_gstd.sh)");
    }
    if (!options["skip-readers"]) {
      console.log("RTSP readers of one stream in our server ...");
      await Deno.remove(`${scratch}/data`, { recursive: true }).catch(() => {});
      const server = await startServer(env);
      running.add(server);
      try {
        report.push("", ...await oursReaders(server));
      } finally {
        await stopServer(server);
        running.delete(server);
      }
    }
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  return report;
}

async function main(): Promise<void> {
  const parts = PARTS.filter((part) => !options[`skip-${part}`]);
  let report: string[];
  if (parts.length > 1) {
    report = [];
    for (const part of parts) {
      const lines = await runPartAlone(part);
      report.push(...(report.length > 0 ? ["", ...lines] : lines));
    }
  } else {
    report = (await runHere()).filter((line, i) => i > 0 || line !== "");
  }
  console.log(["", REPORT_MARKER, ...report].join("\n"));
}

if (import.meta.main) await main();
