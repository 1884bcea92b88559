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

/**
 * Rates are taken over at least this long. Stats rounds can come close together (a client that
 * joined at another phase, or asks at another interval, has rounds of its own), and a few frames
 * over a few ms make a wild rate: 0 or 75 fps from a 30 fps source.
 */
const MIN_RATE_WINDOW_MS = 500;

/**
 * The rate per second of a growing count, over the last window of at least MIN_RATE_WINDOW_MS;
 * undefined until the first window ends, and again after the count went back (a new run).
 */
export class CountRate {
  #since: { count: number; at: number } | null;
  #rate: number | undefined;

  /** `count` at `at`: where the first window starts (by default, at the first `next`). */
  constructor(count?: number, at?: number) {
    this.#since = count === undefined || at === undefined ? null : { count, at };
  }

  next(count: number, now: number): number | undefined {
    const since = this.#since;
    if (since === null || count < since.count || now < since.at) {
      this.#since = { count, at: now };
      this.#rate = undefined;
    } else if (now - since.at >= MIN_RATE_WINDOW_MS) {
      this.#rate = ((count - since.count) * 1000) / (now - since.at);
      this.#since = { count, at: now };
    }
    return this.#rate;
  }
}

/** Bits per second of a growing byte count. */
export class ByteRate {
  readonly #rate: CountRate;

  constructor(bytes?: number, at?: number) {
    this.#rate = new CountRate(bytes, at);
  }

  next(bytes: number, now: number): number | undefined {
    const rate = this.#rate.next(bytes, now);
    return rate === undefined ? undefined : Math.round(rate * 8);
  }
}

/** Frames per second of each of a pipeline's sinks, from their rendered counts. */
export class SinkRates {
  readonly #rates = new Map<string, CountRate>();

  /** Each sink's counts with its rate (null until one is known). */
  next(sinks: { element: string; rendered: number; dropped: number }[], now: number) {
    return sinks.map((sink): SinkStatsEntry => {
      let rate = this.#rates.get(sink.element);
      if (rate === undefined) this.#rates.set(sink.element, rate = new CountRate());
      const fps = rate.next(sink.rendered, now);
      return { ...sink, fps: fps === undefined ? null : Math.round(fps * 10) / 10 };
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
