/** The plain HTTP routes besides /push: health, Prometheus metrics and the protocol's schema. */
import type { Registry } from "prom-client";
import type { StatsSnapshot } from "../api/health.ts";
import { type HttpRoute, refusedUnlessRead, sendJson } from "./server.ts";

export interface HealthSource {
  version: string;
  startedAt: number;
  pipelines(): number;
  clients(): number;
  latest(): StatsSnapshot | null;
  /** A SIGTERM or SIGINT came: the server is on its way out. */
  stopping(): boolean;
}

export function healthRoute(source: HealthSource): HttpRoute {
  return (request, response, url) => {
    if (url.pathname !== "/healthz") return false;
    if (refusedUnlessRead(request, response, url)) return true;
    // 503 once it stops, so that a load balancer sends no one new.
    const stopping = source.stopping();
    sendJson(response, stopping ? 503 : 200, {
      status: stopping ? "stopping" : "ok",
      gstreamer: source.version,
      uptime: Math.round(performance.now() - source.startedAt) / 1000,
      pipelines: source.pipelines(),
      clients: source.clients(),
      server: source.latest()?.server ?? null,
    });
    return true;
  };
}

export function metricsRoute(metrics: Registry): HttpRoute {
  return async (request, response, url) => {
    if (url.pathname !== "/metrics") return false;
    if (refusedUnlessRead(request, response, url)) return true;
    const text = await metrics.metrics();
    response.writeHead(200, { "content-type": metrics.contentType });
    response.end(text);
    return true;
  };
}

export const schemaRoute: HttpRoute = async (request, response, url) => {
  if (url.pathname !== "/schema.json") return false;
  if (refusedUnlessRead(request, response, url)) return true;
  // The JSON Schema of every message (src/api/schema.ts; docs/schema.json), built on first use.
  const { schemaText } = await import("../api/schema.ts");
  const body = new TextEncoder().encode(schemaText());
  response.writeHead(200, {
    "content-type": "application/schema+json",
    "content-length": body.length,
  });
  response.end(body);
  return true;
};
