/** Starts the server: configuration, GStreamer, the pipeline manager, the transport, signals. */
import { ConfigError, loadConfig, readEnvironment } from "./config.ts";
import { LibraryLoadError } from "../ffi/loader.ts";
import { initGstreamer } from "./gst/init.ts";
import { CpuMeter, metricsRegistry, type StatsSnapshot } from "./health.ts";
import { type ManagerEvent, PipelineManager } from "./pipelines.ts";
import type { Handlers } from "./protocol.ts";
import { formatUrl, sendJson, startTransport, STATS_TICK_MS, type Transport } from "./server.ts";
import { RtspServer } from "./gst/rtsp.ts";
import { pushRoute } from "./push.ts";
import { ElementPolicy } from "./policy.ts";
import { PipelineStore } from "./store.ts";
import { eventTypes, requestSchemas } from "./protocol.ts";
import { inspectElement, listElements } from "./gst/introspect.ts";
import { mkdirSync } from "node:fs";

/** How often bus messages are pulled (DESIGN.md rule 3: pulled, never pushed). */
const BUS_POLL_MS = 50;

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Exit status for a start-up that cannot succeed as configured (sysexits EX_CONFIG): not worth restarting. */
export const EXIT_CONFIG = 78;

function fail(message: string): never {
  console.error(message);
  Deno.exit(EXIT_CONFIG);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(readEnvironment());
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }

  let runtime;
  try {
    runtime = initGstreamer();
  } catch (error) {
    if (error instanceof LibraryLoadError) fail(error.message);
    throw error;
  }
  if (runtime.refusedElements.size > 0) {
    console.log(
      `Refusing elements that would crash this machine: ${
        [...runtime.refusedElements.keys()].join(", ")
      }`,
    );
  }

  let rtsp: RtspServer;
  try {
    rtsp = new RtspServer(config.host, config.rtspPort);
  } catch (error) {
    fail(`${(error as Error).message} (GSTREAMER_RTSP_PORT=${config.rtspPort})`);
  }
  if (config.rtspCredentials !== undefined || config.authToken !== undefined) {
    // Basic auth for every RTSP client: the configured user, and "token" with the API token.
    const credentials = [
      ...(config.rtspCredentials ? [config.rtspCredentials] : []),
      ...(config.authToken !== undefined ? [{ user: "token", password: config.authToken }] : []),
    ];
    try {
      rtsp.requireBasicAuth(credentials);
    } catch (error) {
      fail(`${(error as Error).message} (GSTREAMER_RTSP_USER)`);
    }
    console.log("RTSP requires basic auth");
  }

  // Events go out once the transport exists; the manager is made first because the handlers use it.
  const outlet: { transport?: Transport } = {};
  const emit = (event: ManagerEvent) => outlet.transport?.broadcast(event);
  let store: PipelineStore;
  try {
    store = new PipelineStore(config.dataDir);
  } catch (error) {
    fail(
      `Cannot open the pipeline store in GSTREAMER_DATA_DIR=${config.dataDir}: ${
        (error as Error).message
      }`,
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
  const manager = new PipelineManager({
    emit,
    policy,
    rtsp,
    store,
    maxPipelines: config.maxPipelines,
  });
  // Before the transport listens, so the first client already sees every stored pipeline.
  const createSchema = requestSchemas.createPipeline.omit({ id: true });
  const restored = manager.restore((definition) => createSchema.parse(definition));
  console.log(
    `Pipelines: ${store.location}, ${restored.restored} restored` +
      (restored.unbuildable > 0 ? `, ${restored.unbuildable} could not be rebuilt` : ""),
  );

  const handlers: Handlers = {
    createPipeline: (p) => manager.create(p),
    startPipeline: (p) => manager.start(p.id),
    pausePipeline: (p) => manager.pause(p.id),
    stopPipeline: (p) => manager.stop(p.id),
    deletePipeline: (p) => manager.delete(p.id),
    getPipelines: () => ({ pipelines: manager.list() }),
    getPipeline: (p) => manager.get(p.id),
    getElementProperty: (p) => manager.getElementProperty(p.id, p.element, p.property),
    setElementProperty: (p) => manager.setElementProperty(p.id, p.element, p.property, p.value),
    sendEos: (p) => manager.sendEos(p.id),
    seek: (p) => manager.seek(p.id, p.position, p.rate, p.flush),
    getPipelineGraph: (p) => manager.graph(p.id),
    listElements: (p) => ({ elements: listElements(p.filter) }),
    inspectElement: (p) => inspectElement(p.type),
    subscribe: (p, context) => {
      context.subscription.events = p.events ? new Set(p.events) : undefined;
      context.subscription.pipelines = p.pipelines ? new Set(p.pipelines) : undefined;
      context.subscription.statsIntervalMs = p.statsIntervalMs ?? config.statsIntervalMs;
      return {
        events: p.events ?? [...eventTypes],
        pipelines: p.pipelines ?? null,
        statsIntervalMs: context.subscription.statsIntervalMs,
      };
    },
  };

  const startedAt = performance.now();
  const cpu = new CpuMeter();
  let latest: StatsSnapshot | null = null;
  const metrics = metricsRegistry(() => latest);

  const transport = await startTransport({
    host: config.host,
    port: config.port,
    path: config.path,
    handlers,
    authToken: config.authToken,
    openPaths: ["/healthz", "/schema.json"],
    allowedOrigins: config.allowedOrigins,
    maxClients: config.maxClients,
    maxRequestsPerSecond: config.maxRequestsPerSecond,
    statsIntervalMs: config.statsIntervalMs,
    httpIdleTimeoutMs: config.httpIdleTimeoutMs,
    routes: [
      pushRoute(manager, config.maxPushes),
      (request, response, url) => {
        if (request.method !== "GET" || url.pathname !== "/healthz") return false;
        sendJson(response, 200, {
          status: "ok",
          gstreamer: runtime.version,
          uptime: Math.round(performance.now() - startedAt) / 1000,
          pipelines: manager.size,
          clients: outlet.transport?.clientCount() ?? 0,
          server: latest?.server ?? null,
        });
        return true;
      },
      async (request, response, url) => {
        if (request.method !== "GET" || url.pathname !== "/metrics") return false;
        const text = await metrics.metrics();
        response.writeHead(200, { "content-type": metrics.contentType });
        response.end(text);
        return true;
      },
      async (request, response, url) => {
        if (request.method !== "GET" || url.pathname !== "/schema.json") return false;
        // The JSON Schema of every message (src/schema.ts; docs/schema.json), built on first use.
        const { schemaText } = await import("./schema.ts");
        const body = new TextEncoder().encode(schemaText());
        response.writeHead(200, {
          "content-type": "application/schema+json",
          "content-length": body.length,
        });
        response.end(body);
        return true;
      },
    ],
  });

  outlet.transport = transport;
  const busTimer = setInterval(() => manager.pollBuses(), BUS_POLL_MS);
  let collecting = false;
  let collectedAt = performance.now();
  // Ticks often enough for the fastest client interval (100 ms); collects only when a client is
  // due, or at the server's interval for /healthz and /metrics.
  const statsTimer = setInterval(async () => {
    if (collecting) return; // a slow round is skipped, not stacked
    const now = performance.now();
    if (!transport.statsDue(now) && now - collectedAt < config.statsIntervalMs - 5) return;
    collecting = true;
    collectedAt = now;
    try {
      const pipelines = await manager.stats();
      latest = {
        timestamp: new Date().toISOString(),
        pipelines,
        server: {
          rssBytes: Deno.memoryUsage().rss,
          cpuPercent: cpu.sample(),
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
    }
  }, STATS_TICK_MS);

  console.log(`${runtime.version}, process ${Deno.pid}`);
  console.log(`Media files: ${policy.mediaDir}`);
  if (config.authToken === undefined && !isLoopback(config.host)) {
    console.warn(
      `WARNING: listening on ${config.host}, which is reachable from other machines, ` +
        "with no GSTREAMER_AUTH_TOKEN: anyone who can reach this port can run pipelines on it. " +
        "Set GSTREAMER_AUTH_TOKEN, or bind to 127.0.0.1.",
    );
  }
  console.log(`RTSP listening on ${formatUrl("rtsp", config.host, rtsp.port)}`);
  console.log(`WebSocket listening on ${transport.url}`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal} received: stopping every pipeline`);
    clearInterval(busTimer);
    clearInterval(statsTimer);
    await manager.shutdown();
    store.close();
    await rtsp.stop();
    await transport.close();
    console.log("Stopped");
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void shutdown(signal));
  }
}

if (import.meta.main) await main();
