/** Per-pipeline figures from GStreamer's own counters (docs/architecture.md: no per-buffer JS). */
import type { Pipeline, StateName } from "../gst/pipeline.ts";
import type { QueriedTimes } from "../gst/time_queries.ts";
import type { Viewers } from "./mounts.ts";
import type { DesiredState, PipelineKind, PipelineStats, SinkStatsEntry } from "./types.ts";

/** What a stats round reads of a pipeline. */
export interface StatsSource {
  id: string;
  kind: PipelineKind;
  state: StateName;
  desiredState: DesiredState;
  playingSince: number | null;
  errors: number;
  warnings: number;
  restarts: number;
  gst: Pipeline;
  rates: SinkRates;
  /** Cached duration (ms, null when unknown); undefined means ask GStreamer at the next round. */
  duration: number | null | undefined;
  /** Figures the owner adds (push streams: bytes, frames, bitrate). */
  extraStats?: () => Record<string, unknown>;
  /** Bytes sent so far to the RTSP paths it serves (null when it serves none). */
  servedBytes(): number | null;
  servedRate: ByteRate;
}

/** Bits per second of a growing byte count, between one call and the next. */
export class ByteRate {
  #previous: { bytes: number; at: number } | null = null;

  next(bytes: number, now: number): number | undefined {
    const previous = this.#previous;
    this.#previous = { bytes, at: now };
    if (!previous || now <= previous.at || bytes < previous.bytes) return undefined;
    return Math.round(((bytes - previous.bytes) * 8 * 1000) / (now - previous.at));
  }
}

/** Rendered counts of a pipeline's sinks at the last round, for frames per second. */
export class SinkRates {
  readonly #previous = new Map<string, { rendered: number; at: number }>();

  /** Each sink's counts with its rate since the last call. */
  next(sinks: { element: string; rendered: number; dropped: number }[], now: number) {
    return sinks.map((sink): SinkStatsEntry => {
      const previous = this.#previous.get(sink.element);
      this.#previous.set(sink.element, { rendered: sink.rendered, at: now });
      const fps = previous && now > previous.at && sink.rendered >= previous.rendered
        ? Math.round(((sink.rendered - previous.rendered) * 1000 / (now - previous.at)) * 10) / 10
        : null;
      return { ...sink, fps };
    });
  }
}

/**
 * One pipeline's stats, from its counters now and `times`, the answer of this round's queries
 * (undefined when it was not asked: not running when the round began).
 */
export function collectStats(
  source: StatsSource,
  now: number,
  viewers: Viewers | undefined,
  times: QueriedTimes | undefined,
): PipelineStats {
  const active = source.state === "PLAYING" || source.state === "PAUSED";
  const sinks = active ? source.rates.next(source.gst.sinkStats(), now) : [];
  const served = active ? source.servedBytes() : null;
  const bitrate = served === null ? undefined : source.servedRate.next(served, now);
  const position = active ? times?.position ?? null : null;
  if (active && source.duration === undefined && times !== undefined) {
    source.duration = times.duration;
  }
  return {
    // What it serves; a push's own figure (what it receives) wins.
    ...(bitrate === undefined ? {} : { bitrate }),
    ...source.extraStats?.(),
    ...(viewers === undefined ? {} : { rtspClients: viewers.rtsp, webrtcViewers: viewers.webrtc }),
    id: source.id,
    kind: source.kind,
    state: source.state,
    desiredState: source.desiredState,
    uptime: source.playingSince === null ? 0 : Math.round(now - source.playingSince) / 1000,
    position,
    duration: active ? source.duration ?? null : null,
    sinks,
    errors: source.errors,
    warnings: source.warnings,
    restarts: source.restarts,
  };
}
