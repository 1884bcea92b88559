/**
 * A time span of a recorded path, across its segments: which segments it takes and where in them
 * it starts and stops; and its export as one file, cut at key frames without re-encoding, streamed
 * as it is made (never whole in memory or on disk).
 *
 * The span's segments are hard-linked into a hidden folder of the recordings directory, which
 * `splitmuxsrc` plays as one stream (a retention that deletes a segment meanwhile takes nothing
 * from an export under way). The cut is a flushing key-unit seek sent to `splitmuxsrc` alone:
 *
 *   A: splitmuxsrc ! h264parse ! mpegtsmux ! fdsink        (and splitmuxsrc. ! aacparse ! mpegtsmux.)
 *   B: fdsrc ! tsdemux ! h264parse ! queue ! mp4mux ! fdsink   (MP4 and Matroska exports only)
 *
 * MPEG-TS goes first because a muxer that writes its header once (mp4mux, matroskamux) loses it in
 * the seek's flush; mpegtsmux repeats its tables. Each hop writes into an OS pipe, so the reader
 * (the HTTP client) sets the pace.
 */
import { join } from "node:path";
import { discardFloating, linkedBin, makeElement } from "../gst/element.ts";
import type { Pointer } from "../gst/native.ts";
import { linkPads, watchDynamicPads } from "../gst/pads.ts";
import { OsPipe } from "../gst/pipe.ts";
import { descriptorUse } from "../gst/process.ts";
import { setProperty } from "../gst/property.ts";
import { splitmuxPlaying } from "../gst/splitmux.ts";
import { errorMessage } from "./errors.ts";
import { chainLinks } from "./mounts.ts";
import { endOfRun, type OwnPipelines } from "./own_pipelines.ts";
import type { ManagedPipeline } from "./pipeline.ts";
import type { ElementSpec, LinkSpec } from "./spec.ts";

export type SpanFormat = "mp4" | "ts" | "mkv";

/** The streams a path's recording holds, as the recorder found them (`.streams.json`). */
export interface RecordedStreams {
  video: "h264" | "h265";
  audio: "aac" | "opus" | null;
}

export const videoParsers: Record<RecordedStreams["video"], string> = {
  h264: "h264parse",
  h265: "h265parse",
};
export const audioParsers: Record<NonNullable<RecordedStreams["audio"]>, string> = {
  aac: "aacparse",
  opus: "opusparse",
};

const videoPayloaders: Record<RecordedStreams["video"], string> = {
  h264: "rtph264pay",
  h265: "rtph265pay",
};
const audioPayloaders: Record<NonNullable<RecordedStreams["audio"]>, string> = {
  aac: "rtpmp4gpay",
  opus: "rtpopuspay",
};

/**
 * The RTSP media of a span (a floating bin: pay0 video, pay1 audio) playing `files` one after
 * another; null when an element is missing. Its clients seek in it with PLAY's Range.
 */
export function spanMediaBin(files: string[], streams: RecordedStreams): Pointer | null {
  const source = splitmuxPlaying("span", files);
  if (source === null) return null;
  const chains: Pointer[][] = [[source]];
  const parsers: Pointer[] = [];
  const kinds = [
    { parse: videoParsers[streams.video], pay: videoPayloaders[streams.video] },
    ...(streams.audio === null
      ? []
      : [{ parse: audioParsers[streams.audio], pay: audioPayloaders[streams.audio] }]),
  ];
  for (const [index, kind] of kinds.entries()) {
    const parse = makeElement(kind.parse, `parse${index}`);
    const pay = makeElement(kind.pay, `pay${index}`);
    if (parse === null || pay === null) {
      // Freeing splitmuxsrc also drops its file list (the signal's destroy notify).
      discardFloating([...chains.flat(), ...[parse, pay].filter((made) => made !== null)]);
      return null;
    }
    // The parameter sets go in the SDP (sprop-parameter-sets), as each client starts at the start.
    setProperty({ object: pay, label: `pay${index}` }, "pt", 96 + index);
    parsers.push(parse);
    chains.push([parse, pay]);
  }
  const bin = linkedBin("span", chains);
  if (bin === null) return null;
  // Each part's pads appear as the media is prepared: linked by caps to the parser that takes them.
  const unwatch = watchDynamicPads(source, {
    padAdded: (_pad, padName) => {
      if (!parsers.some((parse) => linkPads(source, padName, parse, null))) {
        console.warn(`A recorded span has a stream no parser takes (pad ${padName}); dropped`);
      }
    },
    noMorePads: () => unwatch(),
  });
  return bin;
}

export interface SpanSegment {
  file: string;
  format: SpanFormat;
  /** Start and end, ms since the epoch. */
  start: number;
  end: number;
}

export interface Span {
  segments: SpanSegment[];
  /** Where the span starts in the segments played one after another (ms); 0 at their start. */
  startMs: number;
  /** Where it stops (ms), or null: at the end of the last segment. */
  stopMs: number | null;
}

/**
 * The streams of a folder's segments over time, oldest first, as `.streams.json` keeps them: each
 * run of the recorder that found other streams than the one before (a path published again with
 * another codec, or with audio now) adds the time it began.
 */
export interface StreamsSince extends RecordedStreams {
  /** An ISO 8601 time; null for the streams of every segment before the first change. */
  since: string | null;
}

/** A `.streams.json`'s history; written before histories, it holds one set of streams for all. */
export function parseStreamsHistory(text: string): StreamsSince[] {
  const parsed = JSON.parse(text);
  return Array.isArray(parsed) ? parsed : [{ since: null, ...parsed }];
}

/** The history with `streams` from `since` on (itself when they are the streams already last). */
export function withStreams(
  history: StreamsSince[],
  streams: RecordedStreams,
  since: string,
): StreamsSince[] {
  const last = history.at(-1);
  if (last?.video === streams.video && last.audio === streams.audio) return history;
  return [...history, { since, ...streams }];
}

/**
 * The streams of a span's segments (their starts, ms since the epoch): one set, or SpanError 409
 * naming the sets when they differ (a span is played and exported with one set of parsers).
 */
export function spanStreams(
  path: string,
  history: StreamsSince[],
  starts: number[],
): RecordedStreams {
  const at = (start: number) =>
    history.findLast((entry) => entry.since === null || Date.parse(entry.since) <= start) ??
      history[0];
  const found = [...new Set(starts.map(at))];
  if (found.length > 1) {
    const named = found.map((entry) =>
      `${entry.video}${entry.audio === null ? "" : ` + ${entry.audio}`}` +
      (entry.since === null ? "" : ` from ${entry.since}`)
    );
    throw new SpanError(
      409,
      `The span of '/${path}' holds segments recorded with different streams ` +
        `(${named.join(", then ")}); ask for a span recorded with one`,
    );
  }
  return { video: found[0].video, audio: found[0].audio };
}

/** The error code of each status a span is refused with. */
const spanErrorCodes: Record<number, string> = {
  400: "INVALID_REQUEST",
  404: "NOT_FOUND",
  409: "CONFLICT",
  503: "TOO_MANY_EXPORTS",
};

/** An HTTP status with a message that names what is wrong and what would be right. */
export class SpanError extends Error {
  constructor(readonly status: number, message: string, readonly ownCode?: string) {
    super(message);
  }

  get code(): string {
    return this.ownCode ?? spanErrorCodes[this.status] ?? "EXPORT_FAILED";
  }
}

/**
 * Refuses a span's query that has a parameter other than `takes`, or one of them more than once
 * (which would leave the reader guessing which counted): SpanError 400 naming it.
 */
export function checkSpanQuery(params: URLSearchParams, takes: string[]): void {
  const keys = [...params.keys()];
  const unknown = [...new Set(keys.filter((key) => !takes.includes(key)))];
  if (unknown.length > 0) {
    throw new SpanError(
      400,
      `Unknown span parameter ${unknown.join(", ")}: a span takes ${takes.join(", ")}`,
    );
  }
  const repeated = takes.filter((key) => params.getAll(key).length > 1);
  if (repeated.length > 0) {
    throw new SpanError(
      400,
      `Span parameter ${repeated.join(", ")} given more than once: give each at most once`,
    );
  }
}

/** Parses `from`/`to`: an ISO 8601 time (`2026-12-03T07:30:00Z`) or a segment's name stamp. */
export function parseSpanTime(name: string, value: string | null): number | null {
  if (value === null || value === "") return null;
  const stamp = value.match(/^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2}(?:\.\d+)?)Z$/);
  const time = Date.parse(stamp ? `${stamp[1]}T${stamp[2]}:${stamp[3]}:${stamp[4]}Z` : value);
  const expected = "expected a UTC time such as 2026-12-03T07:30:00Z (or a segment's name " +
    "stamp, 2026-12-03T07-30-00.000Z)";
  const fields = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})/.exec(value);
  if (fields === null || Number.isNaN(time)) {
    throw new SpanError(400, `'${name}' is ${JSON.stringify(value)}: ${expected}`);
  }
  // Date.parse rolls February 30 over into March and 24:00 into the next day: refused instead.
  const [year, month, day, hour] = fields.slice(1).map(Number);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23) {
    throw new SpanError(400, `'${name}' is ${JSON.stringify(value)}, no such time: ${expected}`);
  }
  return time;
}

/**
 * The most segments one span takes: splitmuxsrc (GStreamer 1.22) opens every part at once, a file
 * and a demuxer each, so a span of a month would exhaust the server's descriptors.
 */
export const MAX_SPAN_SEGMENTS = 256;

/**
 * File descriptors a span's playback holds for each segment while it runs (splitmuxsrc opens
 * every part at once): one export of 255 segments took 777 more, about 3 each.
 */
const DESCRIPTORS_PER_SEGMENT = 4;
/** Descriptors kept for everything else (connections, other pipelines) once a span plays. */
const DESCRIPTOR_RESERVE = 256;

/**
 * Refuses to play `segments` segments when their files would leave the server short of file
 * descriptors: GStreamer aborts the whole server (a CRITICAL) when it cannot open one.
 */
export function checkDescriptors(segments: number, use = descriptorUse()): void {
  if (use === null) return;
  const needed = segments * DESCRIPTORS_PER_SEGMENT;
  const left = use.limit - use.open;
  if (needed + DESCRIPTOR_RESERVE <= left) return;
  throw new SpanError(
    503,
    `Playing ${segments} segments takes about ${needed} file descriptors, and this server has ` +
      `${Math.max(0, left)} of its ${use.limit} left (${DESCRIPTOR_RESERVE} are kept for ` +
      "everything else): ask for a shorter span, try again once other exports or playbacks " +
      "have ended, or raise the server's open-file limit (ulimit -n, systemd's LimitNOFILE)",
    "TOO_MANY_OPEN_FILES",
  );
}

/**
 * The segments `from`..`to` overlaps (null: unbounded), and where the span starts and stops in
 * them. A gap between segments (the path was down) is not in the played timeline, so positions
 * count each segment's own length.
 */
export function spanOf(all: SpanSegment[], from: number | null, to: number | null): Span {
  if (from !== null && to !== null && to <= from) {
    throw new SpanError(400, "'to' must be later than 'from'");
  }
  const segments = all.filter((s) =>
    (from === null || s.end > from) && (to === null || s.start < to)
  );
  if (segments.length === 0) return { segments, startMs: 0, stopMs: null };
  const first = segments[0];
  const last = segments.at(-1)!;
  if (segments.length > MAX_SPAN_SEGMENTS) {
    throw new SpanError(
      400,
      `The span covers ${segments.length} segments (${first.file} to ${last.file}); at most ` +
        `${MAX_SPAN_SEGMENTS} are played or exported at once: ask for a shorter span`,
    );
  }
  const startMs = from === null ? 0 : Math.max(0, from - first.start);
  let stopMs: number | null = null;
  if (to !== null && to < last.end) {
    const before = segments.slice(0, -1).reduce((sum, s) => sum + (s.end - s.start), 0);
    stopMs = before + Math.max(0, to - last.start);
  }
  return { segments, startMs, stopMs };
}

/** Bytes, and the end of the run: a failure's message, or null when it ended well. */
type Outcome = { failure: string | null };

/** One export: its hidden folder, its pipelines, its pipes; released once, in order. */
class ExportRun {
  readonly ended: Promise<Outcome>;
  #resolveEnded!: (outcome: Outcome) => void;
  readonly #hops: { pipeline: ManagedPipeline; out: OsPipe; input?: OsPipe; eos: boolean }[] = [];
  /** Every pipe made for the run, hop or not yet: a build that fails leaves its pipe here. */
  readonly #pipes: OsPipe[] = [];
  #reader: Deno.FsFile | null = null;
  #released: Promise<void> | null = null;
  #failure: string | null = null;

  constructor(readonly folder: string, readonly onReleased: () => void) {
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
  }

  /** A pipe that closes with the run, whatever becomes of the hop it was made for. */
  pipe(): OsPipe {
    const pipe = new OsPipe();
    this.#pipes.push(pipe);
    return pipe;
  }

  addHop(pipeline: ManagedPipeline, out: OsPipe, input?: OsPipe) {
    this.#hops.push({ pipeline, out, input, eos: false });
  }

  set reader(file: Deno.FsFile) {
    this.#reader = file;
  }

  /** A hop's bus said its stream ended (or failed): its pipe's writer closes, the next reads EOF. */
  hopEnded(at: number, failure: string | null): void {
    const hop = this.#hops[at];
    if (hop === undefined || hop.eos) return;
    hop.eos = true;
    if (failure !== null) {
      this.#failure ??= failure;
      void this.release();
      return;
    }
    void hop.pipeline.release().then(() => {
      hop.out.closeWrite();
      hop.input?.closeRead();
      if (this.#hops.every((h) => h.eos)) void this.release();
    });
  }

  pollBuses(): void {
    for (const hop of this.#hops) if (!hop.eos) hop.pipeline.drainBus();
  }

  /**
   * Releases everything, last hop first: the reader closes before the pipelines go to NULL (a
   * writer blocked on a full pipe fails at once instead of holding the state change), and each
   * pipe's descriptors close after the pipelines that use them.
   */
  release(failure?: string): Promise<void> {
    if (failure !== undefined) this.#failure ??= failure;
    this.#released ??= (async () => {
      const reader = this.#reader;
      this.#reader = null;
      if (this.#failure !== null) {
        try {
          reader?.close();
        } catch { /* closed by its stream already */ }
      }
      for (const hop of [...this.#hops].reverse()) {
        await hop.pipeline.release();
        hop.out.close();
        hop.input?.close();
      }
      for (const pipe of this.#pipes) pipe.close();
      await Deno.remove(this.folder, { recursive: true }).catch(() => {});
      this.onReleased();
      this.#resolveEnded({ failure: this.#failure });
    })();
    return this.#released;
  }
}

export interface SpanExport {
  /** A file name for Content-Disposition. */
  filename: string;
  format: SpanFormat;
  segments: number;
  body: ReadableStream<Uint8Array>;
}

/** The exports under way, made with the recordings' own pipelines. */
export class SpanExports {
  readonly #runs = new Set<ExportRun>();

  constructor(
    readonly directory: string,
    readonly pipelines: OwnPipelines,
    readonly maxRunning = 8,
  ) {}

  /** Removes the folders of exports a crash left behind. */
  async removeLeftovers(): Promise<void> {
    for await (const entry of Deno.readDir(this.directory)) {
      if (entry.isDirectory && entry.name.startsWith(".span-")) {
        await Deno.remove(join(this.directory, entry.name), { recursive: true }).catch(() => {});
      }
    }
  }

  pollBuses(): void {
    for (const run of this.#runs) run.pollBuses();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#runs].map((run) => run.release("the server is stopping")));
  }

  /** Starts exporting `span` of `path` (its segments in `pathDir`) as `format`. */
  async open(
    path: string,
    pathDir: string,
    span: Span,
    streams: RecordedStreams,
    format: SpanFormat,
  ): Promise<SpanExport> {
    if (this.#runs.size >= this.maxRunning) {
      throw new SpanError(
        503,
        `${this.#runs.size} exports are under way, the most this server runs at once; try again ` +
          "when one has finished",
      );
    }
    checkDescriptors(span.segments.length);
    const extension = span.segments[0].format;
    const folder = join(this.directory, `.span-${crypto.randomUUID()}`);
    const run = new ExportRun(folder, () => this.#runs.delete(run));
    this.#runs.add(run);
    try {
      await Deno.mkdir(folder);
      for (const segment of span.segments) {
        await Deno.link(join(pathDir, segment.file), join(folder, segment.file)).catch((error) => {
          throw error instanceof Deno.errors.NotFound
            ? new SpanError(
              409,
              `Segment '${segment.file}' of '/${path}' was deleted (retention) while the export ` +
                "began; ask again",
            )
            : error;
        });
      }
      const cut = run.pipe();
      const id = `export-${crypto.randomUUID()}`;
      const first = await this.pipelines.build(
        `${id}-cut`,
        ...cutSpec(join(folder, `*.${extension}`), streams, cut.writeFd),
        (event) => reportEnd(run, 0, event),
      );
      run.addHop(first, cut);
      let out = cut;
      let second: ManagedPipeline | null = null;
      if (format !== "ts") {
        out = run.pipe();
        second = await this.pipelines.build(
          `${id}-${format}`,
          ...remuxSpec(format, streams, cut.readFd, out.writeFd),
          (event) => reportEnd(run, 1, event),
        );
        run.addHop(second, out, cut);
      }
      await first.start("paused");
      if (span.startMs > 0 || span.stopMs !== null) {
        const source = first.element("source").pointer;
        if (!await first.gst.cutSource(source, span.startMs, span.stopMs)) {
          throw new Error(`splitmuxsrc refused to seek to ${span.startMs} ms`);
        }
      }
      const reader = await out.openReader();
      run.reader = reader;
      // The second hop prerolls only once the first plays: it is started without waiting.
      const secondStarted = second?.start("playing");
      await first.start("playing");
      await secondStarted;
      return {
        filename: `${path}_${span.segments[0].file.replace(/\.\w+$/, "")}.${format}`,
        format,
        segments: span.segments.length,
        body: exportBody(run, reader),
      };
    } catch (error) {
      await run.release(errorMessage(error));
      if (error instanceof SpanError) throw error;
      throw new SpanError(500, `Export of '/${path}' failed: ${errorMessage(error)}`);
    }
  }
}

function reportEnd(run: ExportRun, hop: number, event: Parameters<typeof endOfRun>[0]): void {
  const end = endOfRun(event);
  if (end === null) return;
  run.hopEnded(hop, event.type === "pipelineEos" ? null : end);
}

/** The file's bytes as the last hop writes them; an abort by the reader ends the export. */
function exportBody(run: ExportRun, file: Deno.FsFile): ReadableStream<Uint8Array> {
  const reader = file.readable.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (!done) {
        controller.enqueue(value);
        return;
      }
      const { failure } = await run.ended;
      if (failure === null) controller.close();
      else controller.error(new Error(failure));
    },
    async cancel() {
      await reader.cancel().catch(() => {});
      await run.release("the client went away");
    },
  }, { highWaterMark: 0 });
}

/** Hop A: the span's segments as one stream, re-muxed into MPEG-TS, written to `fd`. */
function cutSpec(
  location: string,
  streams: RecordedStreams,
  fd: number,
): [ElementSpec[], LinkSpec[]] {
  const elements: ElementSpec[] = [
    { type: "splitmuxsrc", name: "source", properties: { location } },
    // Parameter sets before every key frame: an MP4 segment keeps them only in its header.
    { type: videoParsers[streams.video], name: "video", properties: { "config-interval": -1 } },
    { type: "mpegtsmux", name: "mux" },
    { type: "fdsink", name: "sink", properties: { fd, sync: false } },
  ];
  const links = chainLinks(["source", "video", "mux", "sink"]);
  if (streams.audio !== null) {
    elements.push({ type: audioParsers[streams.audio], name: "audio" });
    links.push(...chainLinks(["source", "audio", "mux"]));
  }
  return [elements, links];
}

/** Hop B: MPEG-TS from `input` into MP4 (fragmented, as it is streamed) or Matroska, to `fd`. */
function remuxSpec(
  format: "mp4" | "mkv",
  streams: RecordedStreams,
  input: number,
  fd: number,
): [ElementSpec[], LinkSpec[]] {
  const elements: ElementSpec[] = [
    { type: "fdsrc", name: "source", properties: { fd: input } },
    { type: "tsdemux", name: "demux" },
    { type: videoParsers[streams.video], name: "video" },
    // tsdemux pushes every stream from one thread; the muxer waits for all of them.
    { type: "queue", name: "video-queue" },
    format === "mp4"
      ? {
        type: "mp4mux",
        name: "mux",
        properties: { "fragment-duration": 1000, streamable: true },
      }
      : { type: "matroskamux", name: "mux", properties: { streamable: true } },
    { type: "fdsink", name: "sink", properties: { fd, sync: false } },
  ];
  const links = chainLinks(["source", "demux", "video", "video-queue", "mux", "sink"]);
  if (streams.audio !== null) {
    elements.push({ type: audioParsers[streams.audio], name: "audio" }, {
      type: "queue",
      name: "audio-queue",
    });
    links.push(...chainLinks(["demux", "audio", "audio-queue", "mux"]));
  }
  return [elements, links];
}
