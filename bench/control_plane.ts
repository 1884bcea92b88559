/**
 * Control-plane benchmark (DESIGN.md, "Tests and benchmarks"): our server
 * against gst-launch-1.0 doing the same work, in the same run.
 *
 * Part 1, control-plane latency: createPipeline + startPipeline until the
 * reply says PLAYING (`videotestsrc ! fakesink`, non-live), one request after
 * the other over one WebSocket, against spawning `gst-launch-1.0 videotestsrc
 * ! fakesink` until it has reached PLAYING. Target: our p50 at least 10x lower.
 *
 * Part 2, steady-state cost: N live `videotestsrc is-live=true !
 * video/x-raw,width=64,height=48 ! fakesink` pipelines in the server (stats
 * on, one client receiving them) against one gst-launch-1.0 process running
 * the same N chains at the same time; CPU of both from /proc/<pid>/stat over
 * one shared window after the settle time, RSS from /proc/<pid>/status. Target: CPU ratio at
 * most 1.10.
 *
 * Targets are reported as PASS/MISS; a miss never fails the run.
 *
 *   deno run --allow-all bench/control_plane.ts [--pipelines 500] [--live 200]
 *     [--window 10] [--settle 5] [--launches 50]
 */
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  cpuSplit,
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
  stopServer,
  summarize,
  type Summary,
  type Usage,
  verdict,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  /** Part 1: pipelines created and started through the server. */
  pipelines: number;
  /** Part 1: gst-launch-1.0 start-ups timed for the baseline. */
  launches: number;
  /** Part 2: live pipelines (and chains in the one gst-launch-1.0 process). */
  live: number;
  /** Part 2: seconds to let things settle before measuring. */
  settle: number;
  /** Part 2: seconds of the CPU measurement window. */
  window: number;
}

function parseOptions(args: string[]): Options {
  const options = parseNumberOptions<Options>(
    args,
    { pipelines: 500, launches: 50, live: 200, settle: 5, window: 10 },
    ["settle", "window"],
  );
  if (options.pipelines < 1 || options.launches < 1 || options.live < 1 || options.window <= 0) {
    throw new Error("--pipelines, --launches and --live need at least 1, --window more than 0");
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

// ---------------------------------------------------------------- the run

interface Results {
  serverStartMs: number;
  firstPipelineMs: number;
  ours: Summary;
  launch: Summary;
  live: number;
  chain: string;
  oursUsage: Usage;
  launchUsage: Usage;
  statsSeen: number;
  statsCpuPercent: number | null;
  fpsMean: number | null;
  playingInStats: number;
}

async function partOne(
  client: TestClient,
  options: Options,
): Promise<Pick<Results, "firstPipelineMs" | "ours" | "launch">> {
  console.log(`Part 1: ${options.pipelines} x create+start through the server ...`);
  // The first request builds the element-factory table; timed apart, not in the figures.
  const firstPipelineMs = await createAndStart(client, "warmup-0", { elements: simpleElements });
  expectOk(await client.request("deletePipeline", { id: "warmup-0" }), "delete warmup-0");
  for (let i = 1; i < 5; i++) {
    await createAndStart(client, `warmup-${i}`, { elements: simpleElements });
    expectOk(await client.request("deletePipeline", { id: `warmup-${i}` }), "delete warmup");
  }
  const times: number[] = [];
  for (let i = 0; i < options.pipelines; i++) {
    const id = `cp-${i}`;
    times.push(await createAndStart(client, id, { elements: simpleElements }));
    expectOk(await client.request("deletePipeline", { id }), `delete ${id}`);
    client.received.length = 0; // events and stats we do not look at
  }
  const remaining = expectOk(await client.request("getPipelines"), "getPipelines");
  if (remaining.payload.pipelines.length !== 0) {
    throw new Error(`${remaining.payload.pipelines.length} pipelines left after part 1`);
  }

  console.log(`Part 1: ${options.launches} x gst-launch-1.0 videotestsrc ! fakesink ...`);
  const launchTimes: number[] = [];
  for (let i = 0; i < options.launches; i++) {
    const launch = await launchUntilPlaying(["videotestsrc", "!", "fakesink"]);
    launchTimes.push(launch.playingAfter);
    await launch.kill();
  }
  return { firstPipelineMs, ours: summarize(times), launch: summarize(launchTimes) };
}

async function partTwo(
  client: TestClient,
  statsClient: TestClient,
  serverPid: number,
  options: Options,
): Promise<
  Pick<
    Results,
    | "live"
    | "chain"
    | "oursUsage"
    | "launchUsage"
    | "statsSeen"
    | "statsCpuPercent"
    | "fpsMean"
    | "playingInStats"
  >
> {
  const { live, settle, window } = options;
  const chain = await chooseLiveChain(client);
  console.log(`Part 2: ${live} live pipelines in the server ...`);
  const ids = Array.from({ length: live }, (_, i) => `live-${i}`);
  // deno-lint-ignore no-explicit-any
  const stats: any[] = [];
  const onMessage = (event: MessageEvent) => {
    const message = JSON.parse(String(event.data));
    if (message.type === "stats") stats.push(message.payload);
  };
  statsClient.socket.addEventListener("message", onMessage);
  let oursUsage: Usage;
  let launchUsage: Usage;
  // Both run at once and are measured over the same window, so that load
  // from elsewhere on a shared machine falls on both alike (each needs about
  // a third of one core; the machine has two).
  console.log(`Part 2: ${live} live chains in one gst-launch-1.0 beside them ...`);
  const args = Array.from({ length: live }, () => chain.launch).flat();
  const launch = await launchUntilPlaying(args, 60000);
  try {
    const launchPid = findProcess(launch.child.pid, (a) => a[0]?.endsWith("gst-launch-1.0"));
    if (launchPid === null) throw new Error(`gst-launch-1.0 (pid ${launch.child.pid}) not found`);
    await eachLimited(ids, 8, (id) => createAndStart(client, id, { elements: chain.elements }));
    client.received.length = 0;
    await sleep(settle * 1000);
    stats.length = 0;
    statsClient.received.length = 0;
    console.log(
      `Part 2: measuring the server (pid ${serverPid}) and gst-launch-1.0 (pid ${launchPid}) for ${window} s ...`,
    );
    [oursUsage, launchUsage] = await Promise.all([
      measure(serverPid, window),
      measure(launchPid, window),
    ]);
  } finally {
    await launch.kill();
    statsClient.socket.removeEventListener("message", onMessage);
    statsClient.received.length = 0;
    const existing = await client.request("getPipelines").catch(() => null);
    // deno-lint-ignore no-explicit-any
    const left: string[] = existing?.payload?.pipelines?.map((p: any) => p.id) ?? ids;
    await eachLimited(left, 8, (id) => client.request("deletePipeline", { id }));
    client.received.length = 0;
  }
  const last = stats.at(-1);
  // deno-lint-ignore no-explicit-any
  const livePipelines: any[] = last?.pipelines ?? [];
  const playingInStats = livePipelines.filter((p) => p.state === "PLAYING").length;
  const fps = livePipelines.flatMap((p) =>
    // deno-lint-ignore no-explicit-any
    p.sinks.map((s: any) => s.fps).filter((f: unknown) => typeof f === "number")
  );
  const statsCpu = stats.map((s) => s.server?.cpuPercent).filter((v) => typeof v === "number");
  const after = expectOk(await client.request("getPipelines"), "getPipelines");
  if (after.payload.pipelines.length !== 0) {
    throw new Error(`${after.payload.pipelines.length} pipelines left after part 2`);
  }
  return {
    live,
    chain: chain.label,
    oursUsage,
    launchUsage,
    statsSeen: stats.length,
    statsCpuPercent: statsCpu.length ? mean(statsCpu) : null,
    fpsMean: fps.length ? mean(fps) : null,
    playingInStats,
  };
}

function report(options: Options, r: Results): void {
  const speedup = r.launch.p50 / r.ours.p50;
  const cpuRatio = r.oursUsage.cpuPercent / r.launchUsage.cpuPercent;
  const rssRatio = r.oursUsage.rssKib / r.launchUsage.rssKib;
  const lines = [
    "",
    "=== control-plane benchmark ===",
    `server start to listening: ${ms(r.serverStartMs)}; first create+start (builds the ` +
    `factory table, not counted): ${ms(r.firstPipelineMs)}`,
    `part 1: ${r.ours.count} x create+start over one WebSocket; ` +
    `${r.launch.count} x gst-launch-1.0 spawn until "New clock"`,
    `control plane p50: ours ${ms(r.ours.p50)}, gst-launch ${ms(r.launch.p50)}, ` +
    `ratio ${speedup.toFixed(1)}x (target >= 10x): ${verdict(speedup >= 10)}`,
    `control plane p99: ours ${ms(r.ours.p99)}, gst-launch ${ms(r.launch.p99)}`,
    `control plane mean: ours ${ms(r.ours.mean)}, gst-launch ${ms(r.launch.mean)}`,
    `control plane min/max: ours ${ms(r.ours.min)} / ${ms(r.ours.max)}, ` +
    `gst-launch ${ms(r.launch.min)} / ${ms(r.launch.max)}`,
    `part 2: ${r.live} x '${r.chain}', settle ${options.settle} s, window ${options.window} s`,
    `steady CPU: ours ${r.oursUsage.cpuPercent.toFixed(1)}%, gst-launch ` +
    `${r.launchUsage.cpuPercent.toFixed(1)}% (of one core), ratio ${cpuRatio.toFixed(2)} ` +
    `(target <= 1.10): ${verdict(cpuRatio <= 1.10)}`,
    `steady CPU by thread: ours ${cpuSplit(r.oursUsage)}; gst-launch ${cpuSplit(r.launchUsage)}`,
    `steady RSS: ours ${mib(r.oursUsage.rssKib)} (peak ${mib(r.oursUsage.rssPeakKib)}), ` +
    `gst-launch ${mib(r.launchUsage.rssKib)} (peak ${mib(r.launchUsage.rssPeakKib)}), ` +
    `ratio ${rssRatio.toFixed(2)}`,
    `server's own stats in the window: ${r.statsSeen} snapshots, ` +
    `${r.playingInStats}/${r.live} PLAYING, mean sink fps ` +
    `${r.fpsMean === null ? "n/a" : r.fpsMean.toFixed(1)}, mean reported cpu ` +
    `${r.statsCpuPercent === null ? "n/a" : `${r.statsCpuPercent.toFixed(1)}%`}`,
  ];
  console.log(lines.join("\n"));
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  let server: ServerProcess | undefined;
  const clients: TestClient[] = [];
  const interrupted = async () => {
    await killAllLaunched();
    await server?.stop();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const startedAt = performance.now();
    server = await startServer();
    const serverStartMs = performance.now() - startedAt;
    const serverPid = serverProcessId(server);
    const client = await TestClient.connect(server.url);
    clients.push(client);
    const one = await partOne(client, options);
    const statsClient = await TestClient.connect(server.url);
    clients.push(statsClient);
    const two = await partTwo(client, statsClient, serverPid, options);
    report(options, { serverStartMs, ...one, ...two });
  } finally {
    await killAllLaunched();
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    if (server) await stopServer(server);
    Deno.removeSignalListener("SIGINT", interrupted);
  }
}

if (import.meta.main) await main();
