/**
 * Control-plane benchmark (DESIGN.md, "Tests and benchmarks"; issue 14): our server against the
 * peer users would pick instead, RidgeRun's gstd (bench/build_gstd.sh builds it), against
 * gst-launch-1.0, and against the floor (the same work in-process from C, bench/floor.c), all in
 * the same run.
 *
 * Part 1, control-plane latency: create `videotestsrc ! fakesink`, bring it to PLAYING, delete it,
 * one cycle after the other over one connection. Ours at the defaults (the disk store: every
 * acknowledged change is on disk) and with GSTREAMER_DATA_DIR=:memory: beside it, each with two
 * requests (createPipeline, startPipeline: as gstd's two commands) and with one (createPipeline
 * with desiredState "playing", which gstd has no counterpart of); gstd over its
 * TCP protocol (pipeline_play does not wait, so its state is polled until PLAYING); the C floor;
 * gst-launch-1.0 spawned until PLAYING. The systems take turns in rounds, so that load from
 * elsewhere on a shared machine falls on all of them alike; each turn has a connection of its own
 * (its first cycle not counted), and no other is open meanwhile. Under each of our rows, where the
 * time went inside the server: its /metrics histograms read before and after each system's
 * cycles give the mean of each request and of its phases (build, store write, start, stop).
 *
 * Part 2, concurrency: `--clients` connections at once, each doing `--client-cycles` cycles;
 * total cycles per second, ours (disk and :memory:) against gstd with as many connections, with
 * ours split as in part 1, and the CPU time each cycle took in the serving process and in this
 * bench process (its clients: ours receive events, gstd's none; a non-live pipeline runs flat out
 * until its delete, so there the server's CPU a cycle follows how long a cycle takes). Each of
 * our connections gets every event by default (five a cycle of every connection, so 250 messages
 * a cycle with 50); gstd has no events, so ours is also run with connections that subscribe to
 * none, and with connections that get every event but parse only replies (the bench's one process
 * shares the cores with the server), beside the default, with the main thread left at the priority it started with
 * (GSTREAMER_MAIN_THREAD_NICE=0; by default it is raised, src/gst/priority.ts), and with malloc at
 * glibc's own thresholds (GSTREAMER_MALLOC_THRESHOLD_MIB=0; by default set, src/gst/memory.ts).
 *
 * Part 3, steady-state cost: `--live` live `videotestsrc is-live=true ! video/x-raw,width=64,
 * height=48 ! fakesink` pipelines in our server at the defaults (stats on, one client receiving
 * them), in gstd, and as chains of one gst-launch-1.0 process, all measured over the same window:
 * CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status, with its anonymous part (the process's own
 * memory) and its file-backed part (mapped executable and libraries: ours holds the deno binary's).
 * Beside it, in the same window, a server with GSTREAMER_TIMER_SLACK_US=0: its threads at the
 * kernel's timer slack, as gstd's and gst-launch-1.0's run (src/gst/timer_slack.ts).
 *
 * Targets are reported as PASS/MISS; a miss never fails the run. Without gstd (not installed,
 * GSTD unset) or a C compiler, their columns say so and the rest still runs.
 *
 *   deno run --allow-all bench/control_plane.ts [--cycles 200] [--rounds 4] [--clients 50]
 *     [--client-cycles 10] [--launches 30] [--live 200] [--window 10] [--settle 5]
 */
import { loadConfig } from "../src/config.ts";
import {
  addTimings,
  type Observed,
  type ServerProcess,
  serverTimings,
  startServer,
  TestClient,
} from "../test/helpers.ts";
import { findGstd, type Gstd, GstdClient, gstdCreateUntilPlaying, startGstd } from "./gstd.ts";
import { buildFloor, runFloor } from "./floor.ts";
import {
  clockTicks,
  cpuSplit,
  cpuTicks,
  createAndStart,
  expectOk,
  findProcess,
  killAllLaunched,
  launchUntilPlaying,
  mean,
  measure,
  mib,
  ms,
  parseNumberOptions,
  serverProcessId,
  sleep,
  type StartTimes,
  stopServer,
  summarize,
  type Summary,
  type Usage,
  verdict,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  /** Part 1: create -> PLAYING -> delete cycles timed per system, over all rounds. */
  cycles: number;
  /** Part 1: the systems take turns this many times. */
  rounds: number;
  /** Part 1: gst-launch-1.0 start-ups timed for the baseline. */
  launches: number;
  /** Part 2: connections working at once. */
  clients: number;
  /** Part 2: cycles each connection does. */
  "client-cycles": number;
  /** Part 3: live pipelines (in each system). */
  live: number;
  /** Part 3: seconds to let things settle before measuring. */
  settle: number;
  /** Part 3: seconds of the CPU measurement window. */
  window: number;
}

function parseOptions(args: string[]): Options {
  const options = parseNumberOptions<Options>(
    args,
    {
      cycles: 200,
      rounds: 4,
      launches: 30,
      clients: 50,
      "client-cycles": 10,
      live: 200,
      settle: 5,
      window: 10,
    },
    ["settle", "window"],
  );
  if (
    options.cycles < options.rounds || options.rounds < 1 || options.launches < 1 ||
    options.clients < 1 || options["client-cycles"] < 1 || options.live < 1 || options.window <= 0
  ) {
    throw new Error(
      "--rounds, --launches, --clients, --client-cycles and --live need at least 1, --cycles at " +
        "least --rounds, --window more than 0",
    );
  }
  return options;
}

// ---------------------------------------------------------------- our server

const simpleElements = [{ type: "videotestsrc" }, { type: "fakesink" }];
const liveCaps = "video/x-raw,width=64,height=48";

interface LiveChain {
  label: string;
  elements: unknown[];
  /** The same chain as gst-launch-1.0 arguments. */
  launch: string[];
}

const capsfilterChain: LiveChain = {
  label: `videotestsrc is-live=true ! ${liveCaps} ! fakesink`,
  elements: [
    { type: "videotestsrc", properties: { "is-live": true } },
    { type: "capsfilter", properties: { caps: liveCaps } },
    { type: "fakesink" },
  ],
  launch: ["videotestsrc", "is-live=true", "!", liveCaps, "!", "fakesink"],
};

/**
 * Used only when the server refuses capsfilter: the sink itself restricts
 * the caps, so the source negotiates the same 64x48 format (ABGR64_LE,
 * 30/1 with GStreamer 1.22) as through the capsfilter; drop=true and
 * max-buffers=1 keep appsink from queueing every frame nobody pulls.
 */
const appsinkChain: LiveChain = {
  label: `videotestsrc is-live=true ! appsink caps=${liveCaps} drop=true max-buffers=1`,
  elements: [
    { type: "videotestsrc", properties: { "is-live": true } },
    { type: "appsink", properties: { caps: liveCaps, drop: true, "max-buffers": 1 } },
  ],
  launch: [
    "videotestsrc",
    "is-live=true",
    "!",
    "appsink",
    `caps="${liveCaps}"`,
    "drop=true",
    "max-buffers=1",
  ],
};

/** The capsfilter chain, or the appsink one (with a warning) when the server does not know capsfilter. */
async function chooseLiveChain(client: TestClient): Promise<LiveChain> {
  const id = "probe-live-chain";
  const reply = await client.request("createPipeline", {
    id,
    pipeline: { elements: capsfilterChain.elements },
  });
  if (reply.ok) {
    expectOk(await client.request("deletePipeline", { id }), `delete ${id}`);
    return capsfilterChain;
  }
  if (reply.error?.code === "UNKNOWN_ELEMENT" && reply.error.details?.type === "capsfilter") {
    console.warn(
      `WARNING: the server refuses capsfilter (${reply.error.message}); part 2 uses ` +
        `'${appsinkChain.label}' instead, in the server and in gst-launch-1.0 alike.`,
    );
    return appsinkChain;
  }
  throw new Error(`create ${id} failed: ${reply.error?.code}: ${reply.error?.message}`);
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function eachLimited<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]);
    }),
  );
}

// ---------------------------------------------------------------- systems

const simpleLaunch = "videotestsrc ! fakesink";
const liveLaunch = "videotestsrc is-live=true ! fakesink";
const liveElements = [{ type: "videotestsrc", properties: { "is-live": true } }, {
  type: "fakesink",
}];

interface CycleTimes extends StartTimes {
  /** The requests (commands) it took to see PLAYING. */
  roundTrips: number;
  /** The whole create -> PLAYING -> delete cycle. */
  cycleMs: number;
}

/** One connection to a system under test, doing cycles one after the other. */
interface Connection {
  cycle(name: string): Promise<CycleTimes>;
  close(): Promise<void>;
}

interface System {
  label: string;
  /** The process that serves it, whose CPU part 2 counts. */
  pid: number;
  /** A connection whose cycles use `videotestsrc ! fakesink`, or its live form. */
  connect(live?: boolean): Promise<Connection>;
  /** Ours: the server's duration histograms now (its /metrics), to split a cycle's time. */
  timings?(): Promise<Map<string, Observed>>;
}

/**
 * Our server; `oneRequest`: createPipeline with desiredState "playing" (one request, one commit)
 * rather than createPipeline then startPipeline (two, as gstd's pipeline_create and pipeline_play);
 * `noEvents`: the connection subscribes to no events (gstd sends none), where by default it gets
 * every event of every connection; `parsesEvents: false`: it gets them all but parses only
 * replies, so that the one bench process, on the same cores as the server, does not parse 250
 * events a cycle for its 50 connections.
 */
function ourSystem(
  label: string,
  server: ServerProcess,
  { oneRequest = false, noEvents = false, parsesEvents = true } = {},
): System {
  return {
    label,
    pid: serverProcessId(server),
    timings: () => serverTimings(server),
    async connect(live = false) {
      const client = await TestClient.connect(server.url, undefined, { parsesEvents });
      if (noEvents) expectOk(await client.request("subscribe", { events: [] }), "subscribe");
      const elements = live ? liveElements : simpleElements;
      return {
        async cycle(id) {
          const startedAt = performance.now();
          const times = await createAndStart(client, id, { elements }, oneRequest);
          expectOk(await client.request("deletePipeline", { id }), `delete ${id}`);
          client.received.length = 0; // events and stats we do not look at
          const roundTrips = oneRequest ? 1 : 2;
          return { ...times, roundTrips, cycleMs: performance.now() - startedAt };
        },
        close: () => client.close(),
      };
    },
  };
}

function gstdSystem(gstd: Gstd): System {
  return {
    label: `gstd ${gstd.version}`,
    pid: gstd.pid,
    async connect(live = false) {
      const connection = await GstdClient.connect(gstd.port);
      const launch = live ? liveLaunch : simpleLaunch;
      return {
        async cycle(name) {
          const startedAt = performance.now();
          const times = await gstdCreateUntilPlaying(connection, name, launch);
          await connection.command(`pipeline_delete ${name}`);
          return { ...times, cycleMs: performance.now() - startedAt };
        },
        close: () => Promise.resolve(connection.close()),
      };
    },
  };
}

// ---------------------------------------------------------------- part 1: latency

interface Latency {
  label: string;
  playing: Summary;
  /** Until the create's reply, and from there until PLAYING. */
  created: Summary;
  afterCreated: Summary;
  /** Requests per cycle until PLAYING, on average. */
  roundTrips: number;
  cycle: Summary;
  /** Ours: what the server's histograms observed during these cycles. */
  server?: Map<string, Observed>;
}

interface PartOne {
  firstPipelineMs: number;
  latencies: Latency[];
  floor: Summary | null;
  launch: Summary;
}

async function partOne(systems: System[], floor: string | null, options: Options) {
  const perRound = Math.floor(options.cycles / options.rounds);
  console.log(
    `Part 1: ${perRound * options.rounds} x create -> PLAYING -> delete in ${options.rounds} ` +
      `rounds, for ${
        [...systems.map((s) => s.label), ...(floor ? ["the C floor"] : [])].join(", ")
      } ...`,
  );
  // Only the system whose turn it is has a connection open: by default a connection gets every
  // event, so one left open would receive (and this process parse) another row's events.
  const onConnection = async <T>(system: System, use: (c: Connection) => Promise<T>) => {
    const connection = await system.connect();
    try {
      return await use(connection);
    } finally {
      await connection.close();
    }
  };
  // The first cycle builds the element-factory table; it and four more are not counted.
  let firstPipelineMs = 0;
  for (const [i, system] of systems.entries()) {
    await onConnection(system, async (connection) => {
      for (let k = 0; k < 5; k++) {
        const { playingMs } = await connection.cycle(`warmup-${i}-${k}`);
        if (i === 0 && k === 0) firstPipelineMs = playingMs;
      }
    });
  }
  const times = systems.map(() => ({
    playing: [] as number[],
    created: [] as number[],
    afterCreated: [] as number[],
    roundTrips: [] as number[],
    cycle: [] as number[],
    server: new Map<string, Observed>(),
  }));
  const floorTimes: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (const [i, system] of systems.entries()) {
      await onConnection(system, async (connection) => {
        await connection.cycle(`cp-${round}-first`); // a new connection's first, not counted
        // Read before and after this system's cycles, outside the time measured.
        const before = await system.timings?.();
        for (let k = 0; k < perRound; k++) {
          const { playingMs, createdMs, roundTrips, cycleMs } = await connection.cycle(
            `cp-${round}-${k}`,
          );
          times[i].playing.push(playingMs);
          times[i].created.push(createdMs);
          times[i].afterCreated.push(playingMs - createdMs);
          times[i].roundTrips.push(roundTrips);
          times[i].cycle.push(cycleMs);
        }
        if (before) addTimings(times[i].server, before, await system.timings!());
      });
    }
    if (floor) floorTimes.push(...await runFloor(floor, perRound));
  }

  console.log(`Part 1: ${options.launches} x gst-launch-1.0 ${simpleLaunch} until PLAYING ...`);
  const launchTimes: number[] = [];
  for (let i = 0; i < options.launches; i++) {
    const launch = await launchUntilPlaying(simpleLaunch.split(" "));
    launchTimes.push(launch.playingAfter);
    await launch.kill();
  }
  return {
    firstPipelineMs,
    latencies: systems.map((system, i) => ({
      label: system.label,
      playing: summarize(times[i].playing),
      created: summarize(times[i].created),
      afterCreated: summarize(times[i].afterCreated),
      roundTrips: mean(times[i].roundTrips),
      cycle: summarize(times[i].cycle),
      server: system.timings ? times[i].server : undefined,
    })),
    floor: floor ? summarize(floorTimes) : null,
    launch: summarize(launchTimes),
  };
}

// ---------------------------------------------------------------- part 2: concurrency

interface Throughput {
  label: string;
  live: boolean;
  cyclesPerSecond: number;
  cycle: Summary;
  /** CPU time a cycle, in ms: the serving process's, and this bench process's (its clients'). */
  serverCpuMs: number;
  benchCpuMs: number;
  /** Ours: what the server's histograms observed during these cycles. */
  server?: Map<string, Observed>;
}

async function concurrentCycles(
  system: System,
  live: boolean,
  options: Options,
): Promise<Throughput> {
  const perClient = options["client-cycles"];
  const connections = await Promise.all(
    Array.from({ length: options.clients }, () => system.connect(live)),
  );
  const times: number[] = [];
  const before = await system.timings?.();
  const serverTicks = cpuTicks(system.pid);
  const benchTicks = cpuTicks(Deno.pid);
  const startedAt = performance.now();
  await Promise.all(connections.map(async (connection, c) => {
    for (let k = 0; k < perClient; k++) {
      times.push((await connection.cycle(`cc-${c}-${k}`)).cycleMs);
    }
  }));
  const seconds = (performance.now() - startedAt) / 1000;
  const msPerCycle = (ticks: number) => ticks / clockTicks * 1000 / times.length;
  const serverCpuMs = msPerCycle(cpuTicks(system.pid) - serverTicks);
  const benchCpuMs = msPerCycle(cpuTicks(Deno.pid) - benchTicks);
  let server: Map<string, Observed> | undefined;
  if (before) {
    server = new Map();
    addTimings(server, before, await system.timings!());
  }
  await Promise.all(connections.map((connection) => connection.close()));
  return {
    label: system.label,
    live,
    cyclesPerSecond: times.length / seconds,
    cycle: summarize(times),
    serverCpuMs,
    benchCpuMs,
    server,
  };
}

async function partTwo(systems: System[], options: Options): Promise<Throughput[]> {
  console.log(
    `Part 2: ${options.clients} connections at once, ${options["client-cycles"]} cycles each, ` +
      `for ${systems.map((s) => s.label).join(", ")} ...`,
  );
  // Non-live pipelines run flat out while they play: 50 of them share the cores with the servers
  // themselves. Live ones (what cameras are) leave the cores to the control plane.
  const results: Throughput[] = [];
  for (const live of [false, true]) {
    for (const system of systems) results.push(await concurrentCycles(system, live, options));
  }
  return results;
}

// ---------------------------------------------------------------- part 3: steady state

interface PartThree {
  live: number;
  chain: string;
  ours: Usage;
  /** Ours with GSTREAMER_TIMER_SLACK_US=0 (the kernel's 50 µs, as gstd runs), in the same window. */
  oursKernelSlack: Usage;
  /** Our streaming threads, and how many of them have the server's timer slack. */
  streamingThreads: number;
  streamingAtSlack: number;
  gstd: Usage | null;
  launch: Usage;
  statsSeen: number;
  statsCpuPercent: number | null;
  fpsMean: number | null;
  playingInStats: number;
}

/** Creates and plays `names` in gstd from `launch`, and waits until every one is PLAYING. */
async function gstdLive(gstd: Gstd, names: string[], launch: string): Promise<void> {
  const connection = await GstdClient.connect(gstd.port);
  try {
    for (const name of names) {
      await connection.command(`pipeline_create ${name} ${launch}`);
      await connection.command(`pipeline_play ${name}`);
    }
    for (const name of names) {
      const deadline = performance.now() + 10_000;
      while (
        (await connection.command(`read /pipelines/${name}/state`)).response?.value !== "playing"
      ) {
        if (performance.now() > deadline) throw new Error(`gstd: ${name} not PLAYING after 10 s`);
        await sleep(20);
      }
    }
  } finally {
    connection.close();
  }
}

async function gstdDeleteAll(gstd: Gstd, names: string[]): Promise<void> {
  const connection = await GstdClient.connect(gstd.port);
  try {
    for (const name of names) await connection.command(`pipeline_delete ${name}`).catch(() => {});
  } finally {
    connection.close();
  }
}

/** `client` is the only one connected to our server meanwhile: it makes the pipelines and gets the stats. */
/** Our streaming threads (`videotestsrc...` by name), and how many have a timer slack of `slackNs`. */
function streamingSlack(pid: number, slackNs: number): { streaming: number; atSlack: number } {
  let streaming = 0;
  let atSlack = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    if (!Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).startsWith("videotestsrc")) {
      continue;
    }
    streaming++;
    if (Number(Deno.readTextFileSync(`/proc/${task.name}/timerslack_ns`)) === slackNs) atSlack++;
  }
  return { streaming, atSlack };
}

/** The server's default timer slack (GSTREAMER_TIMER_SLACK_US), in ns. */
const DEFAULT_SLACK_NS = loadConfig({}).timerSlackUs * 1000;

async function partThree(
  client: TestClient,
  serverPid: number,
  kernelSlack: { client: TestClient; pid: number },
  gstd: Gstd | null,
  options: Options,
): Promise<PartThree> {
  const { live, settle, window } = options;
  const chain = await chooseLiveChain(client);
  const ids = Array.from({ length: live }, (_, i) => `live-${i}`);
  // deno-lint-ignore no-explicit-any
  const stats: any[] = [];
  const onMessage = (event: MessageEvent) => {
    const message = JSON.parse(String(event.data));
    if (message.type === "stats") stats.push(message.payload);
  };
  client.socket.addEventListener("message", onMessage);
  let ours: Usage;
  let oursKernelSlack: Usage;
  let coverage = { streaming: 0, atSlack: 0 };
  let gstdUsage: Usage | null = null;
  let launchUsage: Usage;
  // All run at once and are measured over the same window, so that load from elsewhere on a
  // shared machine falls on each alike (each needs about a fifth of one core; there are two).
  console.log(`Part 3: ${live} live chains in one gst-launch-1.0 ...`);
  const launch = await launchUntilPlaying(
    Array.from({ length: live }, () => chain.launch).flat(),
    60000,
  );
  try {
    const launchPid = findProcess(launch.child.pid, (a) => a[0]?.endsWith("gst-launch-1.0"));
    if (launchPid === null) throw new Error(`gst-launch-1.0 (pid ${launch.child.pid}) not found`);
    console.log(
      `Part 3: ${live} live pipelines in our server, at the default and at the kernel's timer ` +
        `slack${gstd ? ", and in gstd" : ""} ...`,
    );
    await eachLimited(ids, 8, (id) => createAndStart(client, id, { elements: chain.elements }));
    await eachLimited(
      ids,
      8,
      (id) => createAndStart(kernelSlack.client, id, { elements: chain.elements }),
    );
    if (gstd) await gstdLive(gstd, ids.map((id) => id.replace("-", "_")), chain.launch.join(" "));
    client.received.length = 0;
    await sleep(settle * 1000);
    stats.length = 0;
    client.received.length = 0;
    kernelSlack.client.received.length = 0;
    console.log(`Part 3: measuring for ${window} s ...`);
    coverage = streamingSlack(serverPid, DEFAULT_SLACK_NS);
    [ours, oursKernelSlack, launchUsage, gstdUsage] = await Promise.all([
      measure(serverPid, window),
      measure(kernelSlack.pid, window),
      measure(launchPid, window),
      gstd ? measure(gstd.pid, window) : Promise.resolve(null),
    ]);
    client.socket.removeEventListener("message", onMessage); // only the window's snapshots
  } finally {
    await launch.kill();
    if (gstd) await gstdDeleteAll(gstd, ids.map((id) => id.replace("-", "_")));
    client.socket.removeEventListener("message", onMessage);
    const existing = await client.request("getPipelines").catch(() => null);
    // deno-lint-ignore no-explicit-any
    const left: string[] = existing?.payload?.pipelines?.map((p: any) => p.id) ?? ids;
    await eachLimited(left, 8, (id) => client.request("deletePipeline", { id }));
    client.received.length = 0;
    await eachLimited(ids, 8, (id) => kernelSlack.client.request("deletePipeline", { id }));
    kernelSlack.client.received.length = 0;
  }
  const last = stats.at(-1);
  // deno-lint-ignore no-explicit-any
  const livePipelines: any[] = last?.pipelines ?? [];
  const fps = livePipelines.flatMap((p) =>
    // deno-lint-ignore no-explicit-any
    p.sinks.map((s: any) => s.fps).filter((f: unknown) => typeof f === "number")
  );
  const statsCpu = stats.map((s) => s.server?.cpuPercent).filter((v) => typeof v === "number");
  return {
    live,
    chain: chain.label,
    ours,
    oursKernelSlack,
    streamingThreads: coverage.streaming,
    streamingAtSlack: coverage.atSlack,
    gstd: gstdUsage,
    launch: launchUsage,
    statsSeen: stats.length,
    statsCpuPercent: statsCpu.length ? mean(statsCpu) : null,
    fpsMean: fps.length ? mean(fps) : null,
    playingInStats: livePipelines.filter((p) => p.state === "PLAYING").length,
  };
}

// ---------------------------------------------------------------- report

/** n/a when the baseline read 0 (a window shorter than a clock tick of its CPU). */
const ratio = (ours: number, theirs: number) =>
  theirs > 0 ? `${(ours / theirs).toFixed(2)}x` : "n/a";

/** Where a client's create -> PLAYING goes: the create's reply, then the rest, at p50. */
function stepSplit(latency: Latency): string {
  if (latency.roundTrips === 1) return "one request: its reply says PLAYING";
  const requests = `${latency.roundTrips.toFixed(1)} requests a cycle`;
  return `create's reply ${ms(latency.created.p50)}, then until PLAYING ${
    ms(latency.afterCreated.p50)
  } (p50s; ${requests})`;
}

function report(
  options: Options,
  serverStartMs: number,
  one: PartOne,
  two: Throughput[],
  three: PartThree,
  gstd: Gstd | null,
): void {
  const [disk] = one.latencies;
  const peer = gstd ? one.latencies.find((l) => l.label.startsWith("gstd")) : undefined;
  const lines = [
    "",
    "=== control-plane benchmark ===",
    `server start to listening: ${ms(serverStartMs)}; first create+start (builds the factory ` +
    `table, not counted): ${ms(one.firstPipelineMs)}; gstd: ${
      gstd ? gstd.version : "not installed (bench/build_gstd.sh)"
    }`,
    "",
    `part 1: create -> PLAYING (p50 / p99 / mean), and the whole cycle with delete (p50 / p99), ` +
    `${disk.playing.count} cycles each over one connection:`,
    ...one.latencies.flatMap((l) => [
      `  ${l.label.padEnd(30)} ${ms(l.playing.p50)} / ${ms(l.playing.p99)} / ${
        ms(l.playing.mean)
      }` +
      `; cycle ${ms(l.cycle.p50)} / ${ms(l.cycle.p99)}`,
      `  ${"".padEnd(30)} ${stepSplit(l)}`,
      ...(l.server ? [`  ${"".padEnd(30)} ${serverSplit(l.server)}`] : []),
    ]),
    one.floor
      ? `  ${"C floor (bench/floor.c)".padEnd(30)} ${ms(one.floor.p50)} / ${ms(one.floor.p99)} / ${
        ms(one.floor.mean)
      }`
      : "  C floor: not built",
    `  ${"gst-launch-1.0 spawn".padEnd(30)} ${ms(one.launch.p50)} / ${ms(one.launch.p99)} / ${
      ms(one.launch.mean)
    } (${one.launch.count} launches)`,
  ];
  for (const l of one.latencies.filter((l) => !l.label.startsWith("gstd"))) {
    if (peer) {
      lines.push(
        `  ${l.label} vs gstd: p50 ${ratio(l.playing.p50, peer.playing.p50)} (target <= 1): ` +
          `${verdict(l.playing.p50 <= peer.playing.p50)}, p99 ${
            ratio(l.playing.p99, peer.playing.p99)
          } (target <= 1): ${verdict(l.playing.p99 <= peer.playing.p99)}`,
      );
    }
    if (one.floor) {
      lines.push(
        `  ${l.label} vs the C floor: p50 ${ratio(l.playing.p50, one.floor.p50)} (target <= 3): ` +
          verdict(l.playing.p50 <= 3 * one.floor.p50),
      );
    }
    lines.push(
      `  ${l.label} vs gst-launch-1.0: ${
        (one.launch.p50 / l.playing.p50).toFixed(1)
      }x faster at p50`,
    );
  }
  lines.push(
    "",
    `part 2: ${options.clients} connections at once, ${options["client-cycles"]} cycles each ` +
      `(cycles per second; cycle p50 / p99):`,
  );
  for (const live of [false, true]) {
    const rows = two.filter((t) => t.live === live);
    const peer = rows.find((t) => t.label.startsWith("gstd"));
    lines.push(`  ${live ? liveLaunch : simpleLaunch}:`);
    for (const t of rows) {
      const versus = peer && t !== peer
        ? `; ${ratio(t.cyclesPerSecond, peer.cyclesPerSecond)} gstd's (target >= 1): ${
          verdict(t.cyclesPerSecond >= peer.cyclesPerSecond)
        }`
        : "";
      lines.push(
        `    ${t.label.padEnd(28)} ${t.cyclesPerSecond.toFixed(0)} cycles/s; ` +
          `${ms(t.cycle.p50)} / ${ms(t.cycle.p99)}${versus}`,
        `    ${"".padEnd(28)} CPU a cycle: server ${ms(t.serverCpuMs)}${
          peer && t !== peer ? ` (${ratio(t.serverCpuMs, peer.serverCpuMs)} gstd's)` : ""
        }, this bench's clients ${ms(t.benchCpuMs)}${
          peer && t !== peer ? ` (${ratio(t.benchCpuMs, peer.benchCpuMs)} gstd's)` : ""
        }`,
      );
      if (t.server) lines.push(`    ${"".padEnd(28)} ${serverSplit(t.server)}`);
    }
  }
  const usageLine = (label: string, usage: Usage) =>
    `  ${label.padEnd(30)} CPU ${usage.cpuPercent.toFixed(1)}% of one core, RSS ${
      mib(usage.rssKib)
    } (peak ${mib(usage.rssPeakKib)}; anonymous ${mib(usage.anonKib)}, files ${
      mib(usage.fileKib)
    }); ${cpuSplit(usage)}`;
  const cpuToLaunch = three.ours.cpuPercent / three.launch.cpuPercent;
  lines.push(
    "",
    `part 3: ${three.live} x '${three.chain}', settle ${options.settle} s, one ${options.window} s window:`,
    usageLine(disk.label, three.ours),
    ...(three.gstd
      ? [usageLine(gstd!.version ? `gstd ${gstd!.version}` : "gstd", three.gstd)]
      : []),
    usageLine("one gst-launch-1.0", three.launch),
    ...(three.gstd
      ? [
        `  ours vs gstd: CPU ${
          ratio(three.ours.cpuPercent, three.gstd.cpuPercent)
        } (target <= 1): ${verdict(three.ours.cpuPercent <= three.gstd.cpuPercent)}, RSS ${
          ratio(three.ours.rssKib, three.gstd.rssKib)
        } (anonymous ${ratio(three.ours.anonKib, three.gstd.anonKib)}, files ${
          ratio(three.ours.fileKib, three.gstd.fileKib)
        })`,
      ]
      : []),
    `  ours vs gst-launch-1.0: CPU ${cpuToLaunch.toFixed(2)}x (target <= 1.10): ${
      verdict(cpuToLaunch <= 1.10)
    }`,
    `  ${three.streamingAtSlack}/${three.streamingThreads} of our streaming threads have the ` +
      `server's ${
        DEFAULT_SLACK_NS / 1000
      } µs timer slack (the rest were started from pool threads ` +
      `Deno started first); ` +
      `beside it, the same at the kernel's 50 µs, as gstd and gst-launch-1.0 run:`,
    usageLine("ours, kernel's timer slack", three.oursKernelSlack),
    `  ours at the kernel's slack: CPU ${
      ratio(three.oursKernelSlack.cpuPercent, three.ours.cpuPercent)
    } ours at the default${
      three.gstd ? `, ${ratio(three.oursKernelSlack.cpuPercent, three.gstd.cpuPercent)} gstd's` : ""
    }, ${ratio(three.oursKernelSlack.cpuPercent, three.launch.cpuPercent)} gst-launch-1.0's`,
    `  the server's own stats in the window: ${three.statsSeen} snapshots, ` +
      `${three.playingInStats}/${three.live} PLAYING, mean sink fps ${
        three.fpsMean === null ? "n/a" : three.fpsMean.toFixed(1)
      }, mean reported cpu ${
        three.statsCpuPercent === null ? "n/a" : `${three.statsCpuPercent.toFixed(1)}%`
      }`,
  );
  console.log(lines.join("\n"));
}

/**
 * Where our server's time went in those cycles, as its /metrics histograms saw it: the mean of
 * each request inside the server, and of the phases inside the requests.
 */
function serverSplit(server: Map<string, Observed>): string {
  const meanOf = (key: string) => {
    const observed = server.get(key);
    return observed && observed.count > 0 ? ms((observed.seconds / observed.count) * 1000) : "-";
  };
  const requests = ["createPipeline", "startPipeline", "deletePipeline"]
    .filter((request) => (server.get(`${request} ok`)?.count ?? 0) > 0)
    .map((request) => `${request.replace("Pipeline", "")} ${meanOf(`${request} ok`)}`);
  const phases = ["build", "store_write", "start", "stop"]
    .map((phase) => `${phase.replace("_", " ")} ${meanOf(phase)}`);
  return `inside the server, mean: ${requests.join(", ")}; phases: ${phases.join(", ")}`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  let gstd: Gstd | null = null;
  const scratch = await Deno.makeTempDir({ prefix: "control-plane-" });
  const cleanUp = async () => {
    await killAllLaunched();
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    for (const server of servers) await stopServer(server);
    await gstd?.stop();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  };
  const interrupted = async () => {
    await cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  try {
    const startedAt = performance.now();
    // The defaults: pipelines stored on disk (a fresh directory, on the same disk as ./data).
    const disk = await startServer({ GSTREAMER_DATA_DIR: `${scratch}/data` });
    const serverStartMs = performance.now() - startedAt;
    servers.push(disk);
    const memory = await startServer({ GSTREAMER_DATA_DIR: ":memory:" });
    servers.push(memory);
    // Beside the defaults in part 2: the main thread at the priority it started with.
    const notRaised = await startServer({
      GSTREAMER_DATA_DIR: `${scratch}/data-not-raised`,
      GSTREAMER_MAIN_THREAD_NICE: "0",
    });
    servers.push(notRaised);
    // And malloc at glibc's own thresholds.
    const glibcMalloc = await startServer({
      GSTREAMER_DATA_DIR: `${scratch}/data-glibc-malloc`,
      GSTREAMER_MALLOC_THRESHOLD_MIB: "0",
    });
    servers.push(glibcMalloc);
    const gstdPath = await findGstd();
    if (gstdPath) gstd = await startGstd(gstdPath);
    else {console.warn(
        "WARNING: gstd is not installed; run bench/build_gstd.sh (as root) to compare",
      );}
    const floor = await buildFloor(scratch);
    const systems = [
      ourSystem("ours, disk store (default)", disk),
      ourSystem("ours, :memory:", memory),
      ourSystem("ours, disk, one request", disk, { oneRequest: true }),
      ourSystem("ours, :memory:, one request", memory, { oneRequest: true }),
      ...(gstd ? [gstdSystem(gstd)] : []),
    ];
    const one = await partOne(systems, floor, options);
    const two = await partTwo([
      ...systems,
      ourSystem("ours, disk, no events", disk, { noEvents: true }),
      ourSystem("ours, disk, 1 req, no events", disk, { oneRequest: true, noEvents: true }),
      ourSystem("ours, disk, events unparsed", disk, { parsesEvents: false }),
      ourSystem("ours, disk, main thread nice 0", notRaised),
      ourSystem("ours, disk, glibc malloc", glibcMalloc),
    ], options);
    for (const server of [memory, notRaised, glibcMalloc]) {
      await stopServer(server);
      servers.splice(servers.indexOf(server), 1);
    }
    const client = await TestClient.connect(disk.url);
    clients.push(client);
    // Beside the defaults in part 3: the threads at the kernel's timer slack, as gstd runs.
    const kernelSlack = await startServer({
      GSTREAMER_DATA_DIR: `${scratch}/data-kernel-slack`,
      GSTREAMER_TIMER_SLACK_US: "0",
    });
    servers.push(kernelSlack);
    const kernelSlackClient = await TestClient.connect(kernelSlack.url);
    clients.push(kernelSlackClient);
    const three = await partThree(
      client,
      serverProcessId(disk),
      { client: kernelSlackClient, pid: serverProcessId(kernelSlack) },
      gstd,
      options,
    );
    report(options, serverStartMs, one, two, three, gstd);
  } finally {
    await cleanUp();
    Deno.removeSignalListener("SIGINT", interrupted);
    Deno.removeSignalListener("SIGTERM", interrupted);
  }
}

if (import.meta.main) await main();
