/**
 * Starts the server: configuration, GStreamer, the pipeline registry, the API, the transport,
 * signals. The layers and their rules: docs/architecture.md.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LibraryLoadError } from "../ffi/loader.ts";
import { requestHandlers } from "./api/handlers.ts";
import { CpuMeter, metricsRegistry, type StatsSnapshot, timingHistograms } from "./api/health.ts";
import { ConfigError, loadConfig, readEnvironment } from "./config.ts";
import { ElementPolicy } from "./domain/policy.ts";
import { PublishHub } from "./domain/publish.ts";
import { HlsHub, makeHlsDirectory } from "./domain/hls.ts";
import { type RecordingEvent, RecordingHub } from "./domain/recording.ts";
import { WhepHub } from "./domain/whep.ts";
import { WhipHub } from "./domain/whip.ts";
import { PipelineRegistry } from "./domain/registry.ts";
import type { PipelineStore } from "./domain/store.ts";
import {
  DatabaseUnreachable,
  NodeIdTaken,
  type NodeInfo,
  PostgresStore,
} from "./domain/store_postgres.ts";
import { ClusterNode, nodeUnavailable } from "./domain/cluster.ts";
import { clusterRoute, type ClusterView } from "./api/forward.ts";
import { PeerLinks } from "./transport/peers.ts";
import { SqliteStore } from "./domain/store_sqlite.ts";
import type { PipelineEvent } from "./domain/types.ts";
import { initGstreamer } from "./gst/init.ts";
import { raiseThisThread } from "./gst/priority.ts";
import { widenTimerSlack } from "./gst/timer_slack.ts";
import { keepFreedBlocks } from "./gst/memory.ts";
import { LayoutError } from "./gst/layout.ts";
import { RtspServer } from "./gst/rtsp.ts";
import { descriptorUse, holdLockFile } from "./gst/process.ts";
import { listenAddresses } from "./transport/addresses.ts";
import { pushRoute } from "./transport/push.ts";
import { WHEP_PREFIX, whepRoute, WHIP_PREFIX, whipRoute } from "./transport/webrtc.ts";
import { HLS_PREFIX, hlsRoute } from "./transport/hls.ts";
import { RECORDINGS_PREFIX, recordingsRoute } from "./transport/recordings.ts";
import { healthRoute, metricsRoute, schemaRoute } from "./transport/routes.ts";
import { CONSOLE_ASSETS_PATH, consoleRoute } from "./transport/console.ts";
import { formatUrl, startTransport, STATS_SLACK_MS, type Transport } from "./transport/server.ts";
import { BusWatch } from "./gst/bus_watch.ts";

/**
 * An open-file limit under which start-up warns: 256 pipelines and 256 clients (the defaults),
 * RTSP readers and a span export's segments (4 each, up to 256) can need that many.
 */
const FEW_OPEN_FILES = 4096;
/**
 * The shortest time between two rounds of bus draining (docs/architecture.md, threading rule 4):
 * a pipeline that posts messages all the time costs at most this many wake-ups, not one each.
 */
const BUS_ROUND_MS = 50;

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Exit status for a start-up that cannot succeed as configured (sysexits EX_CONFIG): not worth restarting. */
export const EXIT_CONFIG = 78;

function fail(message: string): never {
  console.error(message);
  Deno.exit(EXIT_CONFIG);
}

/**
 * One server to a data directory: a second would run every stored pipeline again, and the two
 * would tell their clients different things. Exit 1, not a configuration error: a supervisor
 * starts it again (with back-off), and it runs once the one before has ended.
 */
function holdDataDir(dataDir: string): void {
  const lockFile = join(dataDir, "server.lock");
  let held;
  try {
    mkdirSync(dataDir, { recursive: true });
    held = holdLockFile(lockFile);
  } catch (error) {
    fail(`Cannot use GSTREAMER_DATA_DIR=${dataDir}: ${(error as Error).message}`);
  }
  if (held === null) return;
  console.error(
    `GSTREAMER_DATA_DIR=${dataDir} is in use by another server` +
      (held.heldBy > 0 ? ` (process ${held.heldBy}, which holds ${lockFile})` : ` (${lockFile})`) +
      ": give each server a data directory of its own, or stop that one first",
  );
  Deno.exit(1);
}

/** Error codes of a socket a peer reset or dropped: never a reason to stop the server. */
const SOCKET_ERRORS = new Set(["ECONNRESET", "EPIPE", "ECONNREFUSED", "ETIMEDOUT", "ECONNABORTED"]);

/**
 * Deno 2.9.6's node:net reports a read error on a socket whose peer went away (PostgreSQL stopped
 * with `-m immediate`, under the `postgres` client) as a promise nobody can catch; the client itself
 * sees the connection close and reconnects. Such an error is logged, not fatal. Anything else
 * unhandled still ends the process, and start_server.sh starts it again.
 */
function survivePeerResets(): void {
  globalThis.addEventListener("unhandledrejection", (event) => {
    const code = (event.reason as { code?: unknown } | null)?.code;
    if (typeof code === "string" && SOCKET_ERRORS.has(code)) {
      event.preventDefault();
      console.error(`A connection was dropped by its peer (${code}); carrying on`);
    }
  });
}

async function main(): Promise<void> {
  survivePeerResets();
  let config;
  try {
    config = loadConfig(readEnvironment());
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }

  // First: the threads started from here on (GStreamer's among them) take the main thread's slack.
  if (config.timerSlackUs !== 0) {
    const slack = widenTimerSlack(config.timerSlackUs);
    console.log(
      slack.widened
        ? `Timer slack ${config.timerSlackUs} µs: the live pipelines' timers due within it share ` +
          "a wake-up (GSTREAMER_TIMER_SLACK_US)"
        : `Timer slack left as started: ${slack.reason}. GSTREAMER_TIMER_SLACK_US=0 does not ask`,
    );
  }
  if (config.mainThreadNice !== 0) {
    const priority = raiseThisThread(config.mainThreadNice);
    console.log(
      priority.raised
        ? `Main thread at nice ${config.mainThreadNice}: requests keep their share of a CPU ` +
          "that pipelines keep busy (GSTREAMER_MAIN_THREAD_NICE)"
        : `Main thread left at its priority: ${priority.reason}. ` +
          "GSTREAMER_MAIN_THREAD_NICE=0 does not ask",
    );
  }
  if (config.mallocThresholdMib !== 0) {
    const kept = keepFreedBlocks(config.mallocThresholdMib, Deno.env.toObject());
    if (!kept.kept) {
      console.log(
        `Malloc left at its thresholds: ${kept.reason}. GSTREAMER_MALLOC_THRESHOLD_MIB=0 does not ask`,
      );
    }
  }
  let runtime;
  try {
    runtime = initGstreamer();
  } catch (error) {
    if (error instanceof LibraryLoadError || error instanceof LayoutError) fail(error.message);
    throw error;
  }
  if (runtime.refusedElements.size > 0) {
    console.log(
      `Refusing elements that would crash this machine: ${
        [...runtime.refusedElements.keys()].join(", ")
      }`,
    );
  }

  // First: a server that follows one still stopping waits for it (exit 1), not for its ports (78).
  if (!config.databaseUrl && config.dataDir !== ":memory:") holdDataDir(config.dataDir);
  // HTTP, WebSocket and RTSP listen on the same addresses: every address the host stands for.
  let addresses: string[];
  try {
    addresses = await listenAddresses(config.host);
  } catch (error) {
    fail(`Cannot resolve GSTREAMER_WS_HOST=${config.host}: ${(error as Error).message}`);
  }
  let rtsp: RtspServer;
  try {
    rtsp = new RtspServer(addresses, config.rtspPort, {
      writeTimeoutMs: config.rtspWriteTimeoutMs,
      lingerMs: config.rtspLingerMs,
    });
  } catch (error) {
    fail(`${(error as Error).message} (GSTREAMER_RTSP_PORT=${config.rtspPort})`);
  }
  const { rtspCredentials, rtspPublishCredentials, authToken } = config;
  // The server's own RTSP reader (WebRTC sessions read the paths they send), with a password
  // made for this run only.
  let internalReader: { user: string; password: string } | undefined;
  if (rtspCredentials || rtspPublishCredentials || authToken !== undefined) {
    internalReader = { user: "gst-server-internal", password: crypto.randomUUID() };
    // Basic auth for every RTSP client: the reading user; the publishing user and "token" with
    // the API token, who may also publish.
    try {
      rtsp.requireBasicAuth([...(rtspCredentials ? [rtspCredentials] : []), internalReader], [
        ...(rtspPublishCredentials ? [rtspPublishCredentials] : []),
        ...(authToken !== undefined ? [{ user: "token", password: authToken }] : []),
      ]);
    } catch (error) {
      fail(`${(error as Error).message} (GSTREAMER_RTSP_USER, GSTREAMER_RTSP_PUBLISH_USER)`);
    }
    console.log("RTSP requires basic auth");
  }

  const nodeId = config.nodeId ?? Deno.hostname();
  // Events go out once the transport exists; the registry is made first because the handlers use it.
  const outlet: { transport?: Transport } = {};
  // Every event names the node it happened on; with PostgreSQL it goes to the other nodes' clients too.
  const emit = (event: PipelineEvent | RecordingEvent) => {
    outlet.transport?.broadcast({ ...event, node: nodeId });
    if (store instanceof PostgresStore) store.publish(event);
  };
  let store: PipelineStore;
  const openedAt = performance.now();
  try {
    store = config.databaseUrl
      ? await PostgresStore.open(config.databaseUrl, {
        id: nodeId,
        leaseSeconds: config.leaseSeconds,
        capacity: config.maxPipelines,
      })
      : await SqliteStore.open(config.dataDir);
  } catch (error) {
    if (error instanceof DatabaseUnreachable || error instanceof NodeIdTaken) {
      // Not a configuration error: start_server.sh starts the server again, with back-off (a
      // node id is let go when the process that had it is gone).
      console.error(`Cannot open the pipeline store (GSTREAMER_DATABASE_URL): ${error.message}`);
      Deno.exit(1);
    }
    fail(
      `Cannot open the pipeline store ${
        config.databaseUrl ? "(GSTREAMER_DATABASE_URL)" : `in GSTREAMER_DATA_DIR=${config.dataDir}`
      }: ${(error as Error).message}`,
    );
  }
  let policy: ElementPolicy;
  try {
    mkdirSync(config.mediaDir, { recursive: true });
    policy = new ElementPolicy({
      mediaDir: config.mediaDir,
      allow: config.elementsAllow,
      deny: config.elementsDeny,
      fixed: runtime.refusedElements,
    });
  } catch (error) {
    fail(`Cannot use GSTREAMER_MEDIA_DIR=${config.mediaDir}: ${(error as Error).message}`);
  }
  // Our RTSP server where it listens (for the server's own readers): loopback when that is every
  // address.
  const rtspHost = addresses[0] === "0.0.0.0"
    ? "127.0.0.1"
    : addresses[0] === "::"
    ? "::1"
    : addresses[0];
  // A reader that starts (an RTSP PLAY, a WebRTC viewer, a new HLS stream or recording) gets a
  // key frame at once: from a pipeline's encoder, or a WHIP publisher. Other sources keep their
  // own interval.
  const requestKeyFrame = (path: string): void => {
    if (!whip.requestKeyFrame(path)) registry.requestKeyFrame(path);
  };
  const ice = {
    // Candidates on the addresses the server listens on; every interface when it listens on all.
    iceAddresses: config.webrtcAddresses.length > 0
      ? config.webrtcAddresses
      : addresses.filter((a) => a !== "0.0.0.0" && a !== "::"),
    icePorts: config.webrtcPorts,
    stunServer: config.webrtcStun,
    turnServer: config.webrtcTurn,
  };
  const whep = new WhepHub({
    rtsp,
    mediaDir: policy.mediaDir,
    rtspHost,
    credentials: internalReader,
    ...ice,
    maxSessions: config.maxWebrtcSessions,
    requestKeyFrame,
    pathDepayloaders: (path): string[] => registry.pathDepayloaders(path),
  });
  // HLS of any served path: segments in a directory of the server's own.
  let hlsDirectory: string;
  try {
    hlsDirectory = await makeHlsDirectory(config.hlsDir);
  } catch (error) {
    fail(
      `Cannot make the HLS directory in GSTREAMER_HLS_DIR=${config.hlsDir || "(the system's)"}: ${
        (error as Error).message
      }`,
    );
  }
  const hls = new HlsHub({
    rtsp,
    directory: hlsDirectory,
    rtspHost,
    credentials: internalReader,
    segmentSeconds: config.hlsSegmentSeconds,
    idleTimeoutMs: config.hlsIdleTimeoutMs,
    maxStreams: config.maxHlsStreams,
    pathDepayloaders: (path): string[] => registry.pathDepayloaders(path),
    requestKeyFrame,
  });
  // Where readers reach this server's RTSP paths: the advertised host, or the one it listens on.
  const advertisedHost = config.advertiseUrl
    ? new URL(config.advertiseUrl).hostname.replace(/^\[|\]$/g, "")
    : config.host;
  const rtspUrl = formatUrl("rtsp", advertisedHost, rtsp.port);
  let latest: StatsSnapshot | null = null;
  const metrics = metricsRegistry(() => latest);
  const timings = timingHistograms(metrics);
  const registry = new PipelineRegistry({
    address: { node: nodeId, rtspUrl },
    emit,
    policy,
    rtsp,
    store,
    maxPipelines: config.maxPipelines,
    stateChangeTimeoutMs: config.stateChangeTimeoutMs,
    webrtcViewers: () => whep.viewersByPath(),
    observePhase: timings.phase,
  });
  registry.onPathUnserved((path) => whep.endPath(path, "its pipeline stopped serving it"));
  let recordings: RecordingHub;
  try {
    recordings = await RecordingHub.open({
      rtsp,
      rtspHost,
      credentials: internalReader,
      directory: config.recordingsDir,
      node: nodeId,
      store,
      emit,
      minFreeBytes: config.recordingsMinFreeBytes,
      pathDepayloaders: (path): string[] => registry.pathDepayloaders(path),
      requestKeyFrame,
    });
  } catch (error) {
    fail(
      `Cannot use GSTREAMER_RECORDINGS_DIR=${config.recordingsDir}: ${(error as Error).message}`,
    );
  }
  // With PostgreSQL this server is a node: its leases are renewed from before the restore, which
  // may take longer than a lease.
  const cluster = store instanceof PostgresStore
    ? new ClusterNode({
      store,
      registry,
      load: () => ({ cpuPercent: latest?.server.cpuPercent ?? 0 }),
    }, openedAt)
    : null;
  cluster?.start();
  // Before the transport listens, so the first client already sees every stored pipeline.
  // ANNOUNCE/RECORD publishers, counted with pushes against GSTREAMER_MAX_PUSHES.
  const publishers = new PublishHub(registry, rtsp, config.maxPushes);
  // WHIP publishers, the same publishes.
  const whip = new WhipHub({ publishers, mediaDir: policy.mediaDir, ...ice });
  rtsp.onPlay(requestKeyFrame);
  const restored = await registry.restore();
  console.log(
    `Pipelines: ${store.location}, ${restored.restored} restored` +
      (restored.unbuildable > 0 ? `, ${restored.unbuildable} could not be rebuilt` : ""),
  );

  const startedAt = performance.now();
  // Any node answers: requests for pipelines other nodes hold go to them (src/api/forward.ts).
  const peers = new PeerLinks({ path: config.path, token: config.authToken });
  const view: ClusterView = {
    self: nodeId,
    alone: cluster === null,
    holds: (id) => registry.has(id),
    ownerOf: (id) => store instanceof PostgresStore ? store.ownerOf(id) : Promise.resolve(null),
    nodes: () => cluster?.nodes() ?? Promise.resolve([thisNode()]),
    localPipelines: () => registry.list(),
    localRecordings: (payload) => recordings.list(payload as Parameters<RecordingHub["list"]>[0]),
    recordsHere: (path) => recordings.records(path),
    recorderOf: (path) =>
      store instanceof PostgresStore ? store.recorderOf(path) : Promise.resolve(null),
    send: (node, url, type, payload, timeoutMs) =>
      peers.request(node, url, type, payload, timeoutMs),
  };
  /** movePipeline without a cluster: this server is the only node. */
  const moveAlone = (id: string, node: string) => {
    registry.storedForm(id);
    if (node !== nodeId) throw nodeUnavailable(node, [thisNode()]);
    return Promise.resolve({ id, node, rtspUrl });
  };
  const cpu = new CpuMeter();

  /** A SIGTERM or SIGINT came (shutdown, below). */
  let stopping = false;
  let transport: Transport;
  try {
    transport = await startTransport({
      host: config.host,
      addresses,
      port: config.port,
      path: config.path,
      handlers: requestHandlers(registry, recordings, {
        statsIntervalMs: config.statsIntervalMs,
        nodes: () => view.nodes(),
        move: (id, node) => cluster ? cluster.move(id, node) : moveAlone(id, node),
        subscribed: () => scheduleStats(),
      }),
      route: clusterRoute(view),
      observeRequest: timings.request,
      authToken: config.authToken,
      openPaths: ["/healthz", "/schema.json", "/"],
      openPathPrefixes: [CONSOLE_ASSETS_PATH],
      corsPrefixes: [WHEP_PREFIX, WHIP_PREFIX, HLS_PREFIX, RECORDINGS_PREFIX],
      allowedOrigins: config.allowedOrigins,
      maxClients: config.maxClients,
      maxRequestsPerSecond: config.maxRequestsPerSecond,
      peersUnlimited: cluster !== null,
      statsIntervalMs: config.statsIntervalMs,
      httpIdleTimeoutMs: config.httpIdleTimeoutMs,
      wsPingIntervalMs: config.wsPingIntervalMs,
      routes: [
        pushRoute(registry, config.maxPushes),
        whepRoute(whep),
        whipRoute(whip),
        hlsRoute(hls),
        recordingsRoute(recordings),
        healthRoute({
          version: runtime.version,
          startedAt,
          pipelines: () => registry.size,
          clients: () => outlet.transport?.clientCount() ?? 0,
          latest: () => latest,
          stopping: () => stopping,
        }),
        metricsRoute(metrics),
        schemaRoute,
        consoleRoute(join(import.meta.dirname!, "../console/dist"), {
          wsPath: config.path,
          rtspPort: rtsp.port,
          authToken: config.authToken,
        }),
      ],
    });
  } catch (error) {
    // Taken by another program, or a port below 1024 without the privilege: as for RTSP's port.
    const { message } = error as Error;
    fail(`${message} (GSTREAMER_WS_PORT=${config.port}, GSTREAMER_WS_HOST=${config.host})`);
  }

  outlet.transport = transport;
  if (store instanceof PostgresStore) {
    await store.listen(
      (node, event) => transport.broadcast({ ...event, node }),
      () => cluster?.wake(),
    );
  }
  const advertiseUrl = config.advertiseUrl ?? formatUrl("http", config.host, transport.port);
  const startedAtTime = new Date().toISOString();
  /** This server alone, as getNodes lists it when there is no cluster (SQLite). */
  const thisNode = (): NodeInfo => ({
    id: nodeId,
    advertiseUrl,
    rtspUrl,
    up: true,
    pipelines: registry.storedCount,
    cpuPercent: latest?.server.cpuPercent ?? 0,
    capacity: config.maxPipelines,
    startedAt: startedAtTime,
    heartbeatAt: new Date().toISOString(),
  });
  try {
    await cluster?.register({ advertiseUrl, rtspUrl });
  } catch (error) {
    console.error(`Node '${nodeId}' could not register: ${(error as Error).message}`);
    Deno.exit(1);
  }
  let collecting = false;
  let collectedAt = performance.now();
  let statsTimer: ReturnType<typeof setTimeout> | undefined;
  // Collects when a client is due, and at the server's interval for /healthz and /metrics; the
  // timer is set for the earliest of these, so an idle server does not wake in between.
  const scheduleStats = () => {
    clearTimeout(statsTimer);
    if (stopping || collecting) return; // the round under way sets the next one
    statsTimer = setTimeout(
      () => void collectStats(),
      Math.max(0, nextStatsAt() - performance.now()),
    );
  };
  const nextStatsAt = () => Math.min(collectedAt + config.statsIntervalMs, transport.nextStatsAt());
  const collectStats = async () => {
    const now = performance.now();
    if (nextStatsAt() - STATS_SLACK_MS > now) return scheduleStats();
    collecting = true;
    collectedAt = now;
    try {
      // The sample first: nothing may await between the registry's last look and the send.
      const cpuPercent = await cpu.sample();
      const pipelines = await registry.stats();
      latest = {
        timestamp: new Date().toISOString(),
        pipelines,
        recordings: recordings.stats(),
        server: {
          rssBytes: Deno.memoryUsage().rss,
          cpuPercent,
          clients: transport.clientCount(),
          pipelines: pipelines.length,
          uptime: Math.round(performance.now() - startedAt) / 1000,
        },
      };
      transport.sendStats(latest, now);
    } catch (error) {
      console.error("Collecting stats failed:", error);
    } finally {
      collecting = false;
      scheduleStats();
    }
  };
  scheduleStats();
  // Bus messages wake the main thread when they come (src/gst/bus_watch.ts), in batches at most
  // every BUS_ROUND_MS; no timer runs while no bus has anything.
  const busWatch = new BusWatch(() => {
    registry.pollBuses();
    whep.pollBuses();
    whip.pollBuses();
    hls.pollBuses();
    recordings.pollBuses();
  }, BUS_ROUND_MS);

  console.log(`${runtime.version}, process ${Deno.pid}`);
  console.log(`Media files: ${policy.mediaDir}`);
  if (config.authToken === undefined && !isLoopback(config.host)) {
    console.warn(
      `WARNING: listening on ${config.host}, which is reachable from other machines, ` +
        "with no GSTREAMER_AUTH_TOKEN: anyone who can reach this port can run pipelines on it. " +
        "Set GSTREAMER_AUTH_TOKEN, or bind to 127.0.0.1.",
    );
  }
  // Handled before the URLs are printed: a supervisor may stop the server once it sees them.
  /** `why` the server stops; it exits with `exitCode` once everything has stopped. */
  const shutdown = async (why: string, exitCode = 0) => {
    if (stopping) {
      // Whoever sends a second signal will not wait: nothing acknowledged is lost (the store
      // syncs each change before its reply), only what the pipelines had left to do.
      console.error(`${why} again: exiting without waiting for the rest to stop`);
      Deno.exit(1);
    }
    stopping = true;
    console.log(`${why}: stopping every pipeline`);
    // A GStreamer state change can wait for ever (an element's streaming thread that does not
    // return, a file that does not open): the server exits anyway, saying which did not stop.
    setTimeout(() => {
      const left = registry.stillStopping;
      console.error(
        `Not stopped after ${config.shutdownTimeoutMs} ms (GSTREAMER_SHUTDOWN_TIMEOUT_MS)` +
          (left.length > 0 ? `: pipeline ${left.map((id) => `'${id}'`).join(", ")} did not` : "") +
          "; exiting without waiting",
      );
      Deno.exit(1);
    }, config.shutdownTimeoutMs);
    clearTimeout(statsTimer);
    await busWatch.close();
    cluster?.stop();
    await whep.closeAll();
    await hls.closeAll();
    await recordings.close();
    await publishers.close();
    await whip.close();
    await registry.shutdown();
    await store.close();
    peers.close();
    await rtsp.stop();
    await transport.close();
    console.log("Stopped");
    Deno.exit(exitCode);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void shutdown(`${signal} received`));
  }
  if (store instanceof PostgresStore) {
    // Exit 1, as when the id is taken at start: start_server.sh tries again, with back-off.
    store.onNodeIdTaken(() => void shutdown("This node's id was taken by another server", 1));
  }

  const files = descriptorUse();
  if (files !== null && files.limit < FEW_OPEN_FILES) {
    console.warn(
      `WARNING: this process may open only ${files.limit} files (ulimit -n): GStreamer stops ` +
        "the whole server when it cannot open one, and each pipeline, client, RTSP reader and " +
        "recording holds some. Raise the limit (systemd: LimitNOFILE=65536; docker run " +
        "--ulimit nofile=65536).",
    );
  }
  console.log(`RTSP listening on ${formatUrl("rtsp", config.host, rtsp.port)}`);
  console.log(`WebSocket listening on ${transport.url}`);
  console.log(`Console at ${formatUrl("http", config.host, transport.port, "/")}`);
}

if (import.meta.main) await main();
