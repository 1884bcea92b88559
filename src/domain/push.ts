/**
 * A push: a video stream taken from a sender (the HTTP body of POST /push/{name}) and served
 * at rtsp://HOST:RTSP_PORT/{name}. It is a pipeline of kind "push"
 * (appsrc ! parser ! identity ! rtspserversink), so it shows in getPipelines, stats and events
 * like any other, and it may be stopped or deleted like any other while the sender still sends.
 *
 * The session owns its own references to the appsrc and the counter (taken as the pipeline is
 * registered), so a delete never frees what it still writes into: it sees the end of its run
 * and says how the run ended.
 */
import type { AppSource, IdentityCounters } from "../gst/appsrc.ts";
import { DomainError } from "./errors.ts";
import { conversionHint, sniff, SNIFF_BYTES, type SniffedFormat } from "./sniff.ts";
import { ByteRate } from "./stats.ts";
import type { ElementSpec } from "./spec.ts";
import type { PipelineEvent, PipelineInfo } from "./types.ts";
import type { PushElements } from "./registry.ts";

/** The appsrc queue above which the sender is not read, so TCP slows it down. */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** A stream that gives no frame in this many bytes is not the declared format. */
const NO_FRAME_LIMIT = 4 * 1024 * 1024;
/** How long to wait for the last frames to leave after the body ended. */
export const DRAIN_TIMEOUT_MS = 10_000;

export interface PushFormat {
  label: string;
  /** What the body's first bytes are when they are this format (src/domain/sniff.ts). */
  sniffed: "h264" | "h265" | "mpegts";
  /** Whether the parser's output buffers are frames (an MPEG-TS parser outputs packet groups). */
  countsFrames: boolean;
  caps: string;
  parser: string;
  parserProperties?: Record<string, number | boolean | string>;
}

const h264: PushFormat = {
  label: "H.264",
  sniffed: "h264",
  countsFrames: true,
  caps: "video/x-h264,stream-format=byte-stream",
  parser: "h264parse",
  parserProperties: { "config-interval": -1 },
};

/** Formats by Content-Type (parameters such as "; charset" are ignored). */
export const pushFormats: Record<string, PushFormat> = {
  "video/h264": h264,
  "video/h265": {
    label: "H.265",
    sniffed: "h265",
    countsFrames: true,
    caps: "video/x-h265,stream-format=byte-stream",
    parser: "h265parse",
    parserProperties: { "config-interval": -1 },
  },
  "video/mp2t": {
    label: "MPEG-TS",
    sniffed: "mpegts",
    countsFrames: false,
    caps: "video/mpegts,systemstream=true,packetsize=188",
    parser: "tsparse",
    parserProperties: { "set-timestamps": true, "alignment": 7 },
  },
};

/** Content-Types that say nothing of the format: it is recognised from the body's first bytes. */
export const undeclaredContentTypes = ["application/octet-stream"];

/** A body refused before anything was made of it: its HTTP status, code and message. */
export interface BodyRefusal {
  status: 415 | 422;
  code: "UNSUPPORTED_MEDIA_TYPE" | "UNRECOGNISED_STREAM";
  message: string;
  details: Record<string, unknown>;
}

/**
 * The format of a push from its first bytes and the declared one (null: none declared): the
 * format to push, or why the body is refused. A body that is another known format is refused
 * with 415 and the ffmpeg option that fixes it; bytes of no known format with 422.
 */
export function judgeBody(
  declared: PushFormat | null,
  firstBytes: Uint8Array,
): { format: PushFormat } | BodyRefusal {
  const found = sniff(firstBytes);
  if (declared !== null && found.format === declared.sniffed) return { format: declared };
  if (declared === null) {
    const format = Object.values(pushFormats).find((known) => known.sniffed === found.format);
    if (format) return { format };
  }
  const wanted = declared?.label ?? "H.264, H.265 (Annex-B) or MPEG-TS";
  const details = { detected: found.label, declared: declared?.label ?? null };
  if (found.format === "unknown") {
    return {
      status: 422,
      code: "UNRECOGNISED_STREAM",
      message: firstBytes.byteLength === 0
        ? `The body is empty; send ${wanted}`
        : `The body is not ${wanted}: its first ${
          Math.min(firstBytes.byteLength, SNIFF_BYTES)
        } bytes are no stream ` +
          "format the server knows (raw frames or random bytes?)",
      details,
    };
  }
  const hint = conversionHint(found.format, declared?.sniffed ?? containerTarget(found.format));
  return {
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
    message: `The body is ${found.label}, not ${wanted}` + (hint ? `: ${hint}` : ""),
    details: { ...details, hint },
  };
}

/** What a container's video is best converted to when no format was declared. */
function containerTarget(found: SniffedFormat): "h264" | "mpegts" {
  return ["mp4", "flv", "matroska", "avc"].includes(found) ? "h264" : "mpegts";
}

/** What the server saw of a pushed stream: codec, size and rate when its parser said them. */
export interface DetectedStream {
  format: string;
  codec: string | null;
  width: number | null;
  height: number | null;
  framerate: string | null;
}

const codecsByMediaType: Record<string, string> = {
  "video/x-h264": "H.264",
  "video/x-h265": "H.265",
};

/** The stream described by a parser's output caps (null before it gave any). */
export function detectedStream(format: PushFormat, caps: string | null): DetectedStream {
  const field = (name: string) => caps?.match(new RegExp(`\\b${name}=\\(\\w+\\)([^,;]+)`))?.[1];
  const mediaType = caps?.split(",")[0].trim();
  const framerate = field("framerate");
  return {
    format: format.label,
    codec: mediaType === undefined ? null : codecsByMediaType[mediaType] ?? null,
    width: field("width") ? Number(field("width")) : null,
    height: field("height") ? Number(field("height")) : null,
    // 0/1 is what a parser says of a stream that does not state its rate.
    framerate: framerate && framerate !== "0/1" ? framerate : null,
  };
}

/** What a push needs of the registry, and nothing more. */
export interface PushHost {
  has(id: string): boolean;
  find(id: string): PipelineInfo | undefined;
  pathOwner(path: string): string | undefined;
  createPush(
    spec: { id: string; description: string; pipeline: { elements: ElementSpec[] } },
    extraStats: () => Record<string, unknown>,
  ): Promise<PushElements>;
  start(id: string): unknown;
  delete(id: string): Promise<unknown>;
  fail(id: string, element: string, message: string): void;
  pollBus(id: string): void;
  subscribe(listener: (event: PipelineEvent) => void): () => void;
}

/**
 * Why a push or a publish cannot take `name`, with what holds it; null when it is free. Its
 * name is both a pipeline id and an RTSP path, so either may hold it.
 */
export function nameConflict(
  host: Pick<PushHost, "find" | "has" | "pathOwner">,
  name: string,
  action: "push" | "publish" = "push",
): { message: string; details: Record<string, unknown> } | null {
  const existing = host.find(name);
  const servedBy = host.pathOwner(name);
  if (existing?.kind === "push" || existing?.kind === "publish") {
    const doing = existing.kind === "push" ? "pushed" : "published";
    return {
      message: `'${name}' is already being ${doing}; ${action} to another name, or wait for ` +
        `that ${existing.kind} to end`,
      details: { name, id: name, kind: existing.kind },
    };
  }
  if (existing) {
    return {
      message: `A pipeline named '${name}' exists (it is ${existing.state}); a ${action} needs ` +
        `a name no pipeline has: ${action} to another name, or delete that pipeline`,
      details: { name, id: name, kind: existing.kind, state: existing.state },
    };
  }
  if (host.has(name)) {
    return {
      message: `A pipeline named '${name}' is being created; ${action} to another name`,
      details: { name, id: name },
    };
  }
  if (servedBy !== undefined) {
    return {
      message: `RTSP path '${name}' is served by pipeline '${servedBy}'; ${action} to another name`,
      details: { name, servedBy },
    };
  }
  return null;
}

/** The element list of a push pipeline. */
function pushElements(name: string, format: PushFormat, framerate: string | null): ElementSpec[] {
  return [
    {
      type: "appsrc",
      name: "source",
      properties: {
        caps: framerate ? `${format.caps},framerate=${framerate}` : format.caps,
        format: "time",
        "is-live": true,
        // Raw streams carry no timestamps: each chunk is stamped with its arrival time, so a paced
        // sender comes out at its own rate; the parser spreads the frames within a chunk by the
        // frame rate (from the stream's parameter sets, or ?framerate). Without input timestamps
        // h264parse in 1.22 stamps every frame 0, so arrival time is the only clock there is.
        "do-timestamp": true,
        block: false,
        "max-bytes": String(4 * MAX_QUEUED_BYTES),
      },
    },
    { type: format.parser, name: "parser", properties: format.parserProperties ?? {} },
    { type: "identity", name: "counter", properties: { silent: true } },
    { type: "rtspserversink", name: "rtsp", properties: { path: name } },
  ];
}

/** How a push's run ended: its end of stream, an error, or a stop or delete by someone else. */
export type PushOutcome = "eos" | "error" | "stopped" | "deleted";

export interface PushResult {
  /** null when the stream did not drain in time after the body ended. */
  outcome: PushOutcome | null;
  failure: { element: string; message: string };
  taken: {
    name: string;
    bytes: number;
    frames: number | null;
    durationMs: number;
    detected: DetectedStream;
  };
}

export class PushSession {
  readonly #host: PushHost;
  readonly name: string;
  readonly format: PushFormat;
  readonly #source: AppSource;
  readonly #counter: IdentityCounters;
  readonly #startedAt: number;
  readonly #unsubscribe: () => void;
  #bytes = 0;
  /** The parser's caps once it gave some: they are gone from its pad once the pipeline stops. */
  #caps: string | null = null;
  #outcome: PushOutcome | null = null;
  #failure = { element: "", message: "" };
  #wake: (() => void) | null = null;

  private constructor(
    host: PushHost,
    name: string,
    format: PushFormat,
    elements: PushElements,
    startedAt: number,
  ) {
    this.#host = host;
    this.name = name;
    this.format = format;
    this.#source = elements.source;
    this.#counter = elements.counter;
    this.#startedAt = startedAt;
    // The run ends on EOS (after the body ended), an error, a stop or a delete; whichever comes first.
    this.#unsubscribe = host.subscribe((event) => {
      if (!("id" in event.payload) || event.payload.id !== name || this.#outcome !== null) return;
      if (event.type === "pipelineError") {
        this.#outcome = "error";
        this.#failure = { element: event.payload.element, message: event.payload.message };
      } else if (event.type === "pipelineEos") {
        this.#outcome = "eos";
      } else if (event.type === "pipelineDeleted") {
        this.#outcome = "deleted";
      } else if (event.type === "pipelineStateChanged" && event.payload.new === "NULL") {
        this.#outcome = "stopped";
      }
      if (this.#outcome !== null) this.#wake?.();
    });
  }

  /**
   * Creates and starts the push pipeline. Throws (PATH_IN_USE, STATE_CHANGE_FAILED...) when it
   * cannot run, leaving nothing behind; a delete that lands while it starts is not an error:
   * the session then reports "deleted" at once.
   */
  static async open(
    host: PushHost,
    name: string,
    format: PushFormat,
    options: { framerate: string | null; from: string },
  ): Promise<PushSession> {
    const startedAt = performance.now();
    // Stats may be read as soon as the pipeline exists, before the session does.
    const made: { session?: PushSession } = {};
    const stats = () => (made.session ? made.session.#stats() : {});
    const elements = await host.createPush(
      {
        id: name,
        description: `push of ${format.label} from ${options.from}`,
        pipeline: { elements: pushElements(name, format, options.framerate) },
      },
      stats,
    );
    const session = new PushSession(host, name, format, elements, startedAt);
    made.session = session;
    try {
      await host.start(name);
    } catch (error) {
      // Deleted by someone else while it started: the push reports that, not an error.
      if (session.#outcome === "deleted") return session;
      if (error instanceof DomainError && error.code === "PIPELINE_NOT_FOUND") {
        session.#outcome = "deleted";
        return session;
      }
      // Stopped or deleted before it reached PLAYING: its run ended, as any stop ends one.
      const stoppedBy = error instanceof DomainError ? error.details?.stoppedBy : undefined;
      if (stoppedBy !== undefined) {
        session.#outcome ??= stoppedBy === "a delete" ? "deleted" : "stopped";
        return session;
      }
      await session.#close();
      throw error;
    }
    return session;
  }

  readonly #rate = new ByteRate(0, performance.now());

  #stats(): Record<string, unknown> {
    return {
      bytesIn: this.#bytes,
      frames: this.#frames(),
      bitrate: this.#rate.next(this.#bytes, performance.now()) ?? 0,
      format: this.format.label,
    };
  }

  /** Buffers out of the parser: frames for raw video, null for MPEG-TS (groups of TS packets). */
  #frames(): number | null {
    return this.format.countsFrames ? this.#counter.read().buffers : null;
  }

  /** Frames out of the parser so far (null for MPEG-TS). */
  get frames(): number | null {
    return this.#frames();
  }

  /** Whether the run is still on: nobody stopped or deleted it, no error, no end yet. */
  get running(): boolean {
    return this.#outcome === null;
  }

  /**
   * Feeds one chunk; waits while GStreamer has not taken what it has (back-pressure); false
   * once the appsrc refuses data. Ends the run with an error when many bytes gave no frame.
   */
  async write(chunk: Uint8Array<ArrayBuffer>): Promise<boolean> {
    if (!this.running || !this.#source.push(chunk)) return false;
    this.#bytes += chunk.byteLength;
    this.#caps ??= this.#counter.caps();
    while (this.#source.queuedBytes() > MAX_QUEUED_BYTES && this.running) {
      await this.#waitForChange(1);
    }
    // Judged on what GStreamer has taken, not on what waits in the appsrc queue.
    const taken = this.#bytes - this.#source.queuedBytes();
    if (taken >= NO_FRAME_LIMIT && this.#counter.read().buffers === 0 && this.running) {
      this.#host.fail(
        this.name,
        "parser",
        `No ${this.format.label} frames in the first ${this.#bytes} bytes (no parameter sets ` +
          "or key frames? souphttpclientsink drops the buffers h264parse marks as headers: " +
          "give it the encoder's byte-stream output directly)",
      );
    }
    return this.running;
  }

  /**
   * Ends the stream (when still running), waits for it to drain, deletes the pipeline and
   * drops the session's references. `senderGone`: the sender disconnected mid-body.
   */
  async finish(senderGone = false): Promise<PushResult> {
    if (this.running) {
      this.#source.end();
      const deadline = performance.now() + DRAIN_TIMEOUT_MS;
      // The end arrives within milliseconds; look at the bus closely instead of waiting for the poll.
      while (this.running && performance.now() < deadline) {
        await this.#waitForChange(2);
        this.#host.pollBus(this.name);
      }
    }
    const taken = await this.#close();
    console.log(
      `Push '${this.name}' ended (${
        senderGone ? "sender gone" : this.#outcome ?? "not drained"
      }): ` +
        `${taken.bytes} bytes, ${taken.frames ?? "?"} frames in ${taken.durationMs} ms`,
    );
    return { outcome: this.#outcome, failure: this.#failure, taken };
  }

  /** Deletes the pipeline (unless someone did) and drops the session's references. */
  async #close(): Promise<PushResult["taken"]> {
    this.#unsubscribe();
    const taken = {
      name: this.name,
      bytes: this.#bytes,
      frames: this.#frames(),
      durationMs: Math.round(performance.now() - this.#startedAt),
      detected: detectedStream(this.format, this.#counter.caps() ?? this.#caps),
    };
    if (this.#outcome !== "deleted" && this.#host.has(this.name)) {
      await this.#host.delete(this.name).catch(() => {});
    }
    this.#source.release();
    this.#counter.release();
    return taken;
  }

  #waitForChange(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }
}
