/// <reference lib="dom" />
/**
 * What the console knows about the server, kept up to date from its events: every pipeline,
 * push and publish with its latest stats and a short history, the server's health, and a log.
 * Views read it; `changed()` tells them to render again.
 */
import type {
  GstClient,
  PipelineInfo,
  PipelineStats,
  ServerEvent,
  StatsSnapshot,
} from "../../src/client.ts";

/** The control requests, and the desired state each leaves the pipeline in. */
const desiredAfter = {
  startPipeline: "playing",
  pausePipeline: "paused",
  stopPipeline: "stopped",
} as const satisfies Record<string, PipelineInfo["desiredState"]>;
export type Control = keyof typeof desiredAfter;

/** Stats snapshots kept per pipeline for its charts (two minutes at the default interval). */
export const HISTORY_LENGTH = 120;
export const LOG_LENGTH = 500;

export interface History {
  /** Seconds since the epoch, one per snapshot. */
  times: number[];
  fps: number[];
  bitrate: number[];
}

export interface LogEntry {
  seq: number;
  time: Date;
  level: "info" | "warning" | "error";
  type: string;
  id: string | null;
  text: string;
}

/** Frames a second of a pipeline: its fastest sink (a tee's branches run at the same rate). */
function sinkFps(stats: PipelineStats): number | null {
  const rates = stats.sinks.map((sink) => sink.fps).filter((fps): fps is number => fps !== null);
  return rates.length > 0 ? Math.max(...rates) : null;
}

export class Model {
  pipelines = new Map<string, PipelineInfo>();
  stats = new Map<string, PipelineStats>();
  /**
   * Frames a second: a pipeline's from its sinks; a push's or publish's from the frames it
   * parsed since the previous snapshot (its own sinks render only while someone reads it).
   */
  fps = new Map<string, number | null>();
  #frames = new Map<string, { frames: number; time: number }>();
  history = new Map<string, History>();
  server: StatsSnapshot["server"] | null = null;
  log: LogEntry[] = [];
  /** Bumped on every change; views compare it. */
  version = 0;
  /** performance.now() when the latest stats event arrived, for the render-time figure. */
  statsArrivedAt = 0;
  #seq = 0;
  #listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  changed(): void {
    this.version++;
    for (const listener of this.#listeners) listener();
  }

  /**
   * Sends a control request. Once the server has answered, the pipeline's desired state is the
   * one asked for: shown at once, not a stats interval later (the next stats confirm it).
   */
  async control(client: GstClient, action: Control, id: string): Promise<void> {
    await client[action]({ id });
    const info = this.pipelines.get(id);
    if (!info || info.desiredState === desiredAfter[action]) return;
    this.pipelines.set(id, { ...info, desiredState: desiredAfter[action] });
    this.changed();
  }

  /** A fresh list from getPipelines: what is gone is dropped, with its stats. */
  replacePipelines(list: PipelineInfo[]): void {
    this.pipelines = new Map(list.map((info) => [info.id, info]));
    for (const id of [...this.stats.keys(), ...this.history.keys()]) {
      if (!this.pipelines.has(id)) this.#forget(id);
    }
    this.changed();
  }

  note(level: LogEntry["level"], type: string, id: string | null, text: string): void {
    this.log.push({ seq: ++this.#seq, time: new Date(), level, type, id, text });
    if (this.log.length > LOG_LENGTH) this.log.splice(0, this.log.length - LOG_LENGTH);
  }

  apply(event: ServerEvent): void {
    switch (event.type) {
      case "stats":
        this.statsArrivedAt = performance.now();
        this.#applyStats(event.payload);
        break;
      case "pipelineCreated":
        this.pipelines.set(event.payload.id, event.payload);
        this.note("info", event.type, event.payload.id, `created (${event.payload.kind})`);
        break;
      case "pipelineDeleted": {
        // A node that lost the pipeline to another (frozen or cut off past its lease) lets its
        // copy go, maybe after the new node announced it: the pipeline runs on there.
        const known = this.pipelines.get(event.payload.id);
        if (known && event.node !== undefined && event.node !== known.node) {
          this.note("info", event.type, event.payload.id, `let go by node ${event.node}`);
          break;
        }
        this.pipelines.delete(event.payload.id);
        this.#forget(event.payload.id);
        this.note("info", event.type, event.payload.id, "deleted");
        break;
      }
      case "pipelineStateChanged": {
        const info = this.pipelines.get(event.payload.id);
        if (info) this.pipelines.set(info.id, { ...info, state: event.payload.new });
        this.note(
          "info",
          event.type,
          event.payload.id,
          `${event.payload.old} → ${event.payload.new}`,
        );
        break;
      }
      case "pipelineError": {
        const { id, element, message, debug } = event.payload;
        const info = this.pipelines.get(id);
        if (info && info.lastError === null) {
          this.pipelines.set(id, {
            ...info,
            lastError: { element, message, debug, time: new Date().toISOString() },
          });
        }
        this.note("error", event.type, id, `${element}: ${message}`);
        break;
      }
      case "pipelineWarning":
        this.note(
          "warning",
          event.type,
          event.payload.id,
          `${event.payload.element}: ${event.payload.message}`,
        );
        break;
      case "pipelineEos":
        this.note("info", event.type, event.payload.id, "end of stream");
        break;
      case "pipelineRestarting":
        this.note(
          "warning",
          event.type,
          event.payload.id,
          `restart ${event.payload.attempt} in ${event.payload.delayMs} ms: ${event.payload.reason}`,
        );
        break;
    }
    this.changed();
  }

  #forget(id: string): void {
    this.stats.delete(id);
    this.history.delete(id);
    this.fps.delete(id);
    this.#frames.delete(id);
  }

  #streamFps(stats: PipelineStats, time: number): number | null {
    if (typeof stats.frames !== "number") return null;
    const previous = this.#frames.get(stats.id);
    this.#frames.set(stats.id, { frames: stats.frames, time });
    if (!previous || time <= previous.time || stats.frames < previous.frames) return null;
    return Math.round(((stats.frames - previous.frames) / (time - previous.time)) * 10) / 10;
  }

  #applyStats(snapshot: StatsSnapshot): void {
    this.server = snapshot.server;
    const time = Date.parse(snapshot.timestamp) / 1000;
    const seen = new Set<string>();
    for (const stats of snapshot.pipelines) {
      seen.add(stats.id);
      this.stats.set(stats.id, stats);
      const fps = stats.kind === "pipeline" ? sinkFps(stats) : this.#streamFps(stats, time);
      this.fps.set(stats.id, fps);
      const info = this.pipelines.get(stats.id);
      const { state, desiredState, restarts } = stats;
      if (
        info &&
        (info.state !== state || info.desiredState !== desiredState || info.restarts !== restarts)
      ) {
        this.pipelines.set(stats.id, { ...info, state, desiredState, restarts });
      }
      let history = this.history.get(stats.id);
      if (!history) {
        history = { times: [], fps: [], bitrate: [] };
        this.history.set(stats.id, history);
      }
      history.times.push(time);
      history.fps.push(fps ?? 0);
      history.bitrate.push(stats.bitrate ?? 0);
      if (history.times.length > HISTORY_LENGTH) {
        history.times.shift();
        history.fps.shift();
        history.bitrate.shift();
      }
    }
    for (const id of [...this.stats.keys()]) {
      if (!seen.has(id)) this.#forget(id);
    }
  }
}
