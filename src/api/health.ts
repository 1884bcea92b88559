/** The `stats` snapshot broadcast every interval, and the same figures for /healthz and /metrics. */
import type { RecordingStats } from "../domain/recording.ts";
import process from "node:process";
import { processCpuMicros } from "../gst/cpu_time.ts";
import { Gauge, Histogram, Registry } from "prom-client";
import type { Phase } from "../domain/phases.ts";
import type { PipelineStats } from "../domain/types.ts";
import { requestSchemas } from "./protocol.ts";

export interface ServerStats {
  rssBytes: number;
  cpuPercent: number;
  clients: number;
  pipelines: number;
  uptime: number;
}

export interface StatsSnapshot {
  timestamp: string;
  pipelines: PipelineStats[];
  /** Every recording, with what it wrote and the free space where it writes. */
  recordings: RecordingStats[];
  server: ServerStats;
}

/** CPU use of this process between two samples, in percent of one core. */
export class CpuMeter {
  #lastMicros: number;
  #lastAt = performance.now();

  constructor() {
    const { user, system } = process.cpuUsage(); // at start-up, with few threads yet
    this.#lastMicros = user + system;
  }

  async sample(): Promise<number> {
    const now = performance.now();
    const micros = await processCpuMicros();
    const cpuMicros = micros - this.#lastMicros;
    const wallMicros = (now - this.#lastAt) * 1000;
    this.#lastMicros = micros;
    this.#lastAt = now;
    return wallMicros > 0 ? Math.round((cpuMicros / wallMicros) * 1000) / 10 : 0;
  }
}

const stateNumber = { VOID_PENDING: 0, NULL: 1, READY: 2, PAUSED: 3, PLAYING: 4 } as const;

/** Prometheus gauges that read the latest snapshot when scraped. */
export function metricsRegistry(latest: () => StatsSnapshot | null): Registry {
  const registry = new Registry();
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (g: Gauge, s: StatsSnapshot) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const snapshot = latest();
        if (snapshot) fill(this, snapshot);
        // A gauge without labels is reset to a 0 sample: before the first snapshot, none.
        else if (labelNames.length === 0) this.remove();
      },
    });
  gauge(
    "gstreamer_server_rss_bytes",
    "Resident memory of the server process",
    [],
    (g, s) => g.set(s.server.rssBytes),
  );
  gauge(
    "gstreamer_server_cpu_percent",
    "CPU use of the server, percent of one core",
    [],
    (g, s) => g.set(s.server.cpuPercent),
  );
  gauge(
    "gstreamer_server_clients",
    "Connected WebSocket clients",
    [],
    (g, s) => g.set(s.server.clients),
  );
  gauge("gstreamer_pipelines", "Pipelines that exist", [], (g, s) => g.set(s.server.pipelines));
  const perPipeline = (
    name: string,
    help: string,
    value: (p: PipelineStats) => number | null,
  ) =>
    gauge(name, help, ["id"], (g, s) => {
      for (const p of s.pipelines) {
        const v = value(p);
        if (v !== null) g.set({ id: p.id }, v);
      }
    });
  perPipeline(
    "gstreamer_pipeline_state",
    "Pipeline state: 1 NULL, 2 READY, 3 PAUSED, 4 PLAYING",
    (p) => stateNumber[p.state],
  );
  perPipeline("gstreamer_pipeline_uptime_seconds", "Seconds since the pipeline reached PLAYING", (
    p,
  ) => p.uptime);
  perPipeline(
    "gstreamer_pipeline_position_seconds",
    "Stream position",
    (p) => p.position === null ? null : p.position / 1000,
  );
  perPipeline(
    "gstreamer_pipeline_duration_seconds",
    "Stream duration",
    (p) => p.duration === null ? null : p.duration / 1000,
  );
  perPipeline("gstreamer_pipeline_errors", "Errors posted on the pipeline's bus", (p) => p.errors);
  perPipeline(
    "gstreamer_pipeline_warnings",
    "Warnings posted on the pipeline's bus",
    (p) => p.warnings,
  );
  const perSink = (
    name: string,
    help: string,
    value: (sink: PipelineStats["sinks"][number]) => number | null,
  ) =>
    gauge(name, help, ["id", "element"], (g, s) => {
      for (const p of s.pipelines) {
        for (const sink of p.sinks) {
          const v = value(sink);
          if (v !== null) g.set({ id: p.id, element: sink.element }, v);
        }
      }
    });
  perSink("gstreamer_sink_rendered_frames", "Buffers rendered by a sink", (k) => k.rendered);
  perSink("gstreamer_sink_dropped_frames", "Buffers dropped by a sink", (k) => k.dropped);
  perSink(
    "gstreamer_sink_fps",
    "Buffers rendered per second over the last window of at least 500 ms",
    (k) => k.fps,
  );
  return registry;
}

/**
 * Bucket bounds of the duration histograms, in seconds: from 0.1 ms, as a request on this server
 * takes a fraction of a millisecond to a few, up to a start that waits its whole timeout.
 */
const DURATION_BUCKETS = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

export interface Timings {
  /** A WebSocket request answered: its type as sent (`request`), whether it succeeded, and how long it took. */
  request(request: string | null, ok: boolean, milliseconds: number): void;
  /** A phase of a pipeline's life ended (src/domain/phases.ts). */
  phase(phase: Phase, milliseconds: number): void;
}

/**
 * Histograms of how long requests take inside the server, from the message read to the reply
 * written (gstreamer_request_duration_seconds, by request type and outcome), and of the phases
 * inside them (gstreamer_phase_duration_seconds). A type that is not a request type counts as
 * "unknown": what a client sends never becomes a label of its own.
 */
export function timingHistograms(registry: Registry): Timings {
  const requests = new Histogram({
    name: "gstreamer_request_duration_seconds",
    help: "WebSocket requests, from the message read to the reply written, by type and outcome",
    labelNames: ["request", "outcome"],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const phases = new Histogram({
    name: "gstreamer_phase_duration_seconds",
    help: "Phases of pipelines' lives that succeeded: build, store_write, start, stop",
    labelNames: ["phase"],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  return {
    request(request, ok, milliseconds) {
      const known = request !== null && Object.hasOwn(requestSchemas, request);
      requests.observe(
        { request: known ? request : "unknown", outcome: ok ? "ok" : "error" },
        milliseconds / 1000,
      );
    },
    phase(phase, milliseconds) {
      phases.observe({ phase }, milliseconds / 1000);
    },
  };
}
