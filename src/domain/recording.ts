/**
 * Recording of served RTSP paths: per recorded path a pipeline of the server's own reads the path
 * over loopback and writes segments with splitmuxsink into a folder of the recordings directory,
 * without re-encoding:
 *
 *   rtspsrc (loopback, TCP) ! rtph264depay ! h264parse ! splitmuxsink.video
 *                                (MP4: h264parse ! video/x-h264,stream-format=avc ! h264timestamper)
 *   rtspsrc. ! rtpmp4gdepay ! aacparse ! splitmuxsink.audio_0      (or Opus: opusparse)
 *
 * MP4 written as fragments (a fragment a second, its moov first) is the default, so a segment cut
 * short by a crash plays up to its last whole fragment; a closed segment is finalised into a plain
 * MP4; MPEG-TS and Matroska play to their last whole
 * packet or cluster. The segment being written is `writing-NNNNN.EXT`; once closed it is renamed
 * by its start time (UTC, `2026-12-03T07-30-12.345Z.mp4`), which sorts by time. No client names a
 * file: the hub's policy confines every location to its directory.
 *
 * A recording is stored (it comes back after a restart) and waits for its path while the path is
 * not served, as restart policies wait. Recording costs no JS per buffer: JS looks at the folder
 * once a second (SWEEP_MS) to rename closed segments, apply retention and watch the free space.
 */
import { ActiveTimer } from "./active_timer.ts";
import { statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { DomainError, errorMessage } from "./errors.ts";
import { chainLinks, type LoopbackReader, loopbackReaderSpec } from "./mounts.ts";
import { mendCutMp4 } from "./mp4_mend.ts";
import { endOfRun, OwnPipelines } from "./own_pipelines.ts";
import type { ManagedPipeline } from "./pipeline.ts";
import type { ElementSpec } from "./spec.ts";
import {
  checkDescriptors,
  checkSpanQuery,
  parseSpanTime,
  parseStreamsHistory,
  type RecordedStreams,
  SpanError,
  type SpanExport,
  SpanExports,
  spanMediaBin,
  spanOf,
  spanStreams,
  type StreamsSince,
  withStreams,
} from "./recording_span.ts";
import type { Pointer } from "../gst/native.ts";
import type { PipelineStore } from "./store.ts";

export const recordingFormats = ["mp4", "ts", "mkv"] as const;
export type RecordingFormat = typeof recordingFormats[number];

/** The muxer of each format, and its properties (splitmuxsink takes them as a structure). */
const muxers: Record<RecordingFormat, { factory: string; properties?: string }> = {
  // A fragment a second while it is written: a segment cut short by a crash keeps all but its
  // last second. Once closed it is finalised into a plain MP4 (first-moov-then-finalise), which
  // players scrub and splitmuxsrc reads with correct audio timestamps (it mistimes the first audio
  // fragment of each fragmented part: measured with GStreamer 1.22).
  mp4: {
    factory: "mp4mux",
    properties: "properties,fragment-duration=(uint)1000,fragment-mode=(int)1",
  },
  ts: { factory: "mpegtsmux" },
  mkv: { factory: "matroskamux" },
};

/**
 * How each video codec a path serves is taken out of RTP and parsed for the muxer: in whole access
 * units, which splitmuxsink cuts at key frames only. NAL by NAL (which mpegtsmux takes), a segment
 * was cut at a parameter set and began with the P frames before the key frame.
 *
 * For MP4 a timestamper follows the parser. Two access units in a row with the same PTS reach the
 * parser at times: a source that stamps two frames alike (a raw H.265 push does, for the frame
 * before each key frame), or the jitterbuffer holding a frame at its predecessor's time when its
 * clock estimate steps back (an RTSP publish, often). h264parse and h265parse (GstBaseParse, 1.22)
 * give the second no PTS, and mp4mux fails the whole pipeline on it ("Buffer has no PTS"): the
 * segment being written was lost (kept aside as .cut.mp4, or cut at its last fragment) and so was
 * the time until the recording started again. The timestamper (codectimestamper, gst-plugins-bad
 * 1.22) gives such a frame the PTS before it, and the DTS no depayloader sets. mpegtsmux and
 * matroskamux take a frame without a PTS; and as the timestamper accepts any stream format, the
 * parser before it no longer hears a muxer refuse one: mpegtsmux (byte-stream only) then fails
 * not-negotiated. Hence MP4 only, with the stream format mp4mux takes (mp4Caps) on the link.
 */
const videoChains: Record<
  string,
  { parser: string; caps: string; timestamper: string; mp4Caps: string }
> = {
  rtph264depay: {
    parser: "h264parse",
    caps: "video/x-h264,alignment=au",
    timestamper: "h264timestamper",
    mp4Caps: "video/x-h264,stream-format=avc,alignment=au",
  },
  rtph265depay: {
    parser: "h265parse",
    caps: "video/x-h265,alignment=au",
    timestamper: "h265timestamper",
    mp4Caps: "video/x-h265,stream-format=hvc1,alignment=au",
  },
};
const audioChains: Record<string, string> = { rtpmp4gdepay: "aacparse", rtpopusdepay: "opusparse" };
/** What each depayloader's stream is, in a folder's `.streams.json` (which span exports read). */
const codecs: Record<string, string> = {
  rtph264depay: "h264",
  rtph265depay: "h265",
  rtpmp4gdepay: "aac",
  rtpopusdepay: "opus",
};
const STREAMS_FILE = ".streams.json";
/** A recorded path's spans are played back at rtsp://host:8554/recordings/{path}?from=&to=. */
const PLAYBACK_PREFIX = "recordings/";

const WRITING = /^writing-(\d{5})\.(mp4|ts|mkv)$/;
const SEGMENT = /^(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z)(?:-(\d+))?\.(mp4|ts|mkv)$/;
/** A segment cut before its first whole fragment, kept aside (#finishSegments): not listed. */
const CUT_ASIDE = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z(?:-\d+)?\.cut\.mp4$/;
/** Path names a folder can have. */
const PATH_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
const SWEEP_MS = 1_000;
/** How long a stopping recording waits for its last segment to be finished (end of stream). */
const FINISH_TIMEOUT_MS = 5_000;
/** Back-off between attempts to record a path that is served but fails, up to the last. */
const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

export interface Retention {
  maxAgeSeconds?: number;
  maxBytes?: number;
}

export interface RecordingOptions {
  format: RecordingFormat;
  segmentSeconds: number;
  retention: Retention;
}

export interface RecordingInfo extends RecordingOptions {
  path: string;
  /**
   * "recording" while its pipeline writes; "waiting" while its path is not served or not started
   * (a stream of it has no data yet), or after a failure.
   */
  state: "recording" | "waiting";
  createdAt: string;
  /** Bytes of segments written since the server started (the one being written included). */
  bytesWritten: number;
  currentSegment: string | null;
  lastError: string | null;
  /** The node that records it (its disk has the segments). */
  node: string;
}

/** A recording as the stats event shows it. */
export interface RecordingStats {
  path: string;
  state: "recording" | "waiting";
  bytesWritten: number;
  currentSegment: string | null;
  /** Free space on the disk of the recordings directory, in bytes. */
  freeBytes: number;
}

export interface SegmentInfo {
  path: string;
  file: string;
  format: RecordingFormat;
  start: string;
  /** Its end: the next segment's start where that follows at once, else its last write. */
  end: string;
  bytes: number;
}

export type RecordingEvent =
  | { type: "recordingStarted"; payload: { path: string; format: RecordingFormat } }
  | {
    type: "recordingSegment";
    payload: { path: string; file: string; start: string; duration: number; bytes: number };
  }
  | { type: "recordingStopped"; payload: { path: string; reason: string } }
  | { type: "recordingError"; payload: { path: string; message: string } };

export interface RecordingHubOptions extends LoopbackReader {
  /** The recordings directory (GSTREAMER_RECORDINGS_DIR); made if missing. */
  directory: string;
  /** This server's node id, which the listed recordings and segments name. */
  node: string;
  store: PipelineStore;
  emit: (event: RecordingEvent) => void;
  /** Retention deletes the oldest segments when the disk's free space falls below this. */
  minFreeBytes: number;
  pathDepayloaders?: (path: string) => string[];
  requestKeyFrame?: (path: string) => void;
}

interface Recorder {
  path: string;
  options: RecordingOptions;
  createdAt: string;
  pipeline: ManagedPipeline | null;
  /** Set by a bus error or end of stream: the pipeline is released at the next sweep. */
  ended: string | null;
  eos: boolean;
  failures: number;
  retryAt: number;
  bytesWritten: number;
  /** Bytes of the closed segments counted in bytesWritten. */
  closedBytes: number;
  currentSegment: string | null;
  lastError: string | null;
  /** When retention next looks at the folder (it lists and stats every segment). */
  retentionAt: number;
  /** One operation at a time: launch, release, stop. */
  busy: Promise<void>;
  stopping: boolean;
  /** A start storing its row: true once stored, false when refused (the recorder is gone). */
  storing: Promise<boolean> | null;
}

export class RecordingHub {
  readonly #options: RecordingHubOptions;
  readonly #recorders = new Map<string, Recorder>();
  readonly #pipelines: OwnPipelines;
  readonly #exports: SpanExports;
  readonly #sweep: ActiveTimer;
  /** Set once open() has resumed the stored recordings: the sweep waits for that. */
  #opened = false;
  #sweeping = false;
  /** When a file being written was first seen (ms since the epoch), by its full name. */
  readonly #firstSeen = new Map<string, number>();
  /**
   * Stops under way, by path: a start of the same path waits for its stop, so that the two never
   * rename the same `writing-*` files (each run starts at writing-00000).
   */
  readonly #stopping = new Map<string, Promise<void>>();

  private constructor(options: RecordingHubOptions) {
    this.#options = options;
    this.#pipelines = new OwnPipelines(options.directory);
    this.#exports = new SpanExports(options.directory, this.#pipelines);
    this.#sweep = new ActiveTimer(
      SWEEP_MS,
      () => void this.#sweepAll(),
      () => this.#recorders.size > 0,
    );
  }

  /** Makes the directory, finishes segments a crash left, and resumes the stored recordings. */
  static async open(options: RecordingHubOptions): Promise<RecordingHub> {
    await Deno.mkdir(options.directory, { recursive: true });
    const hub = new RecordingHub(options);
    await hub.#exports.removeLeftovers();
    for (const stored of options.store.recordings()) {
      const recorder = hub.#add(stored.path, stored.options as unknown as RecordingOptions);
      recorder.createdAt = stored.createdAt;
    }
    for await (const entry of Deno.readDir(options.directory)) {
      if (entry.isDirectory && PATH_PATTERN.test(entry.name)) {
        await hub.#finishSegments(entry.name, false);
        hub.#servePlayback(entry.name);
      }
    }
    hub.#opened = true;
    hub.#sweep.wake();
    return hub;
  }

  /** Starts recording `path` (served now or not: it waits for the path). */
  async start(path: string, options: RecordingOptions): Promise<RecordingInfo> {
    requireRecordablePath(path);
    await this.#stopping.get(path);
    if (this.#recorders.has(path)) {
      throw new DomainError(
        "PATH_IN_USE",
        `'/${path}' is being recorded already; stopRecording it first to record it otherwise`,
        { path },
      );
    }
    const createdAt = new Date().toISOString();
    const recorder = this.#add(path, options);
    recorder.createdAt = createdAt;
    const storing = this.#store(recorder);
    recorder.storing = storing.then(() => true, () => false);
    try {
      await storing;
    } finally {
      recorder.storing = null;
    }
    // A path whose streams have not all started yet is read at a sweep once they have.
    if (this.#options.rtsp.isReady(path)) await this.#run(recorder, () => this.#launch(recorder));
    return this.#info(recorder);
  }

  /**
   * Makes the folder, serves it, and stores the row of a recording being started; a refusal
   * leaves none of it (a folder or a mount that was there before stays).
   */
  async #store(recorder: Recorder): Promise<void> {
    const { path, options, createdAt } = recorder;
    const folder = join(this.#options.directory, path);
    const playback = `${PLAYBACK_PREFIX}${path}`;
    let madeFolder = false;
    const servedBefore = this.#options.rtsp.isMounted(playback);
    try {
      // The folder first: a recording that cannot write is refused, not stored.
      madeFolder = await Deno.mkdir(folder).then(() => true, (error) => {
        if (error instanceof Deno.errors.AlreadyExists) return false;
        throw error;
      });
      this.#servePlayback(path);
      await this.#options.store.putRecording(path, { ...options }, createdAt);
    } catch (error) {
      this.#recorders.delete(path);
      if (!servedBefore) this.#options.rtsp.unmount(playback);
      if (madeFolder) await Deno.remove(folder).catch(() => {}); // only while empty
      if (error instanceof DomainError) throw error;
      throw new DomainError(
        "INVALID_STATE",
        `Cannot record '/${path}' into GSTREAMER_RECORDINGS_DIR: ${errorMessage(error)}`,
        { path },
      );
    }
  }

  /** Stops recording `path`: its last segment is finished and kept. */
  async stop(path: string, reason = "stopRecording"): Promise<RecordingInfo> {
    this.#require(path);
    // Known before this awaits anything: a start sent right after it waits for it.
    const stopped = this.#stop(path);
    const settled = stopped.then(() => {}, () => {});
    if (!this.#stopping.has(path)) this.#stopping.set(path, settled);
    try {
      const recorder = await stopped;
      this.#options.emit({ type: "recordingStopped", payload: { path, reason } });
      return { ...this.#info(recorder), state: "waiting" };
    } finally {
      if (this.#stopping.get(path) === settled) this.#stopping.delete(path);
    }
  }

  async #stop(path: string): Promise<Recorder> {
    // A start still storing its row goes first, so that its row cannot come after this removal.
    await this.#require(path).storing;
    const recorder = this.#require(path);
    recorder.stopping = true; // a second stop finds nothing to stop
    try {
      await this.#options.store.removeRecording(path);
    } catch (error) {
      recorder.stopping = false; // not stopped: it records on
      throw error;
    }
    this.#recorders.delete(path);
    await this.#run(recorder, () => this.#release(recorder, true));
    // Stopped whatever comes of its last segments: a failure there is the server's to tell.
    await this.#finishSegments(path, false).catch((error) =>
      console.error(`Recording '/${path}': finishing its segments failed: ${errorMessage(error)}`)
    );
    return recorder;
  }

  /** Whether `path` is recorded here (running or waiting for its path). */
  records(path: string): boolean {
    return this.#recorders.has(path);
  }

  /** The recordings that run, and the segments on disk (of `path`, overlapping from..to). */
  async list(
    filter: { path?: string; from?: string; to?: string } = {},
  ): Promise<{ recordings: RecordingInfo[]; segments: (SegmentInfo & { node: string })[] }> {
    if (filter.path !== undefined) requireRecordablePath(filter.path);
    const from = filter.from === undefined ? -Infinity : Date.parse(filter.from);
    const to = filter.to === undefined ? Infinity : Date.parse(filter.to);
    const recordings = [...this.#recorders.values()]
      .filter((r) => filter.path === undefined || r.path === filter.path)
      .map((r) => this.#info(r));
    const paths = filter.path !== undefined ? [filter.path] : await this.#recordedPaths();
    const segments: (SegmentInfo & { node: string })[] = [];
    for (const path of paths) {
      for (const segment of await this.segments(path)) {
        if (Date.parse(segment.end) >= from && Date.parse(segment.start) <= to) {
          segments.push({ ...segment, node: this.#options.node });
        }
      }
    }
    return { recordings, segments };
  }

  /** A path's closed segments, oldest first. */
  async segments(path: string): Promise<SegmentInfo[]> {
    if (!PATH_PATTERN.test(path)) return [];
    const dir = join(this.#options.directory, path);
    const found: SegmentInfo[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (!entry.isFile || !SEGMENT.test(entry.name)) continue;
        const stat = await Deno.stat(join(dir, entry.name)).catch(() => null);
        if (stat !== null) found.push(segmentInfo(path, entry.name, stat));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return inOrder(found);
  }

  /** The same, read without waiting: for an RTSP media, which GStreamer waits for. */
  #segmentsNow(path: string): SegmentInfo[] {
    const dir = join(this.#options.directory, path);
    const found: SegmentInfo[] = [];
    try {
      for (const entry of Deno.readDirSync(dir)) {
        if (!entry.isFile || !SEGMENT.test(entry.name)) continue;
        try {
          found.push(segmentInfo(path, entry.name, Deno.statSync(join(dir, entry.name))));
        } catch { /* deleted meanwhile */ }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return inOrder(found);
  }

  /** Serves the path's spans over RTSP (each client a media of its own), once. */
  #servePlayback(path: string): void {
    const mount = `${PLAYBACK_PREFIX}${path}`;
    if (!this.#options.rtsp.isMounted(mount)) {
      this.#options.rtsp.mountPerClient(
        mount,
        (uri) => this.#playbackMedia(path, uri),
        (uri) => this.#checkPlayback(path, uri),
      );
    }
  }

  /**
   * The span rtsp://host:8554/recordings/{path}?from=&to= plays: the segments it overlaps, whole
   * (from the start of the first, a key frame), and their streams. Read without waiting, since
   * gst-rtsp-server waits for the answer; throws SpanError.
   */
  #playbackSpan(path: string, uri: string): { files: string[]; streams: RecordedStreams } {
    const url = new URL(uri);
    checkSpanQuery(url.searchParams, ["from", "to"]);
    const from = parseSpanTime("from", url.searchParams.get("from"));
    const to = parseSpanTime("to", url.searchParams.get("to"));
    const segments = this.#segmentsNow(path);
    const span = spanOf(
      segments.map((s) => ({ ...s, start: Date.parse(s.start), end: Date.parse(s.end) })),
      from,
      to,
    );
    const format = span.segments[0]?.format;
    const files = span.segments.filter((s) => s.format === format)
      .map((s) => join(this.#options.directory, path, s.file));
    if (files.length === 0) {
      throw new SpanError(
        404,
        `'/${path}' has no segment between ${url.searchParams.get("from") ?? "its start"} and ` +
          `${url.searchParams.get("to") ?? "its end"}` + (segments.length > 0
            ? `; its segments cover ${segments[0].start} to ${segments.at(-1)!.end}`
            : ""),
      );
    }
    checkDescriptors(files.length);
    let history: StreamsSince[];
    try {
      history = parseStreamsHistory(
        Deno.readTextFileSync(join(this.#options.directory, path, STREAMS_FILE)),
      );
    } catch {
      throw new SpanError(404, `'/${path}' has no ${STREAMS_FILE}: recorded by an older server`);
    }
    const starts = span.segments.filter((s) => s.format === format).map((s) => s.start);
    return { files, streams: spanStreams(path, history, starts) };
  }

  /** Refuses a DESCRIBE of a span that cannot be played, with the reason. */
  #checkPlayback(path: string, uri: string): { status: number; reason: string } | null {
    try {
      this.#playbackSpan(path, uri);
      return null;
    } catch (error) {
      const status = error instanceof SpanError ? error.status : 500;
      const phrase = status === 400
        ? "Bad Request"
        : status === 404
        ? "Not Found"
        : status === 503
        ? "Service Unavailable"
        : "Error";
      return { status, reason: `${phrase}: ${errorMessage(error)}` };
    }
  }

  /** The RTSP media of a span; null (the client gets an error) when it cannot be made. */
  #playbackMedia(path: string, uri: string): Pointer | null {
    try {
      const { files, streams } = this.#playbackSpan(path, uri);
      console.log(`RTSP playback of '/${path}': ${files.length} segments`);
      return spanMediaBin(files, streams);
    } catch (error) {
      console.warn(`RTSP playback of ${uri} refused: ${errorMessage(error)}`);
      return null;
    }
  }

  /** The file of a closed segment, for download; null when there is no such segment. */
  segmentFile(path: string, file: string): string | null {
    if (!PATH_PATTERN.test(path) || !SEGMENT.test(file)) return null;
    return join(this.#options.directory, path, file);
  }

  /** Deletes one closed segment of `path`, or every one when `file` is not given. */
  async delete(path: string, file?: string): Promise<{ path: string; deleted: string[] }> {
    requireRecordablePath(path);
    const segments = await this.segments(path);
    const cutAside = await this.#cutAside(path);
    if (file !== undefined) {
      if (!segments.some((s) => s.file === file) && !cutAside.includes(file)) {
        throw new DomainError(
          "RECORDING_NOT_FOUND",
          `'/${path}' has no segment '${file}'` +
            (this.#recorders.get(path)?.currentSegment === file
              ? ": it is being written; stopRecording first"
              : ""),
          { path, file },
        );
      }
      await Deno.remove(join(this.#options.directory, path, file));
      return { path, deleted: [file] };
    }
    if (this.#recorders.has(path)) {
      throw new DomainError(
        "INVALID_STATE",
        `'/${path}' is being recorded; stopRecording it before deleting all of its segments ` +
          "(or delete one segment by its file)",
        { path },
      );
    }
    if (segments.length === 0 && cutAside.length === 0) {
      throw new DomainError("RECORDING_NOT_FOUND", `'/${path}' has no recorded segments`, { path });
    }
    const deleted = [...segments.map((s) => s.file), ...cutAside];
    for (const file of deleted) {
      await Deno.remove(join(this.#options.directory, path, file)).catch(() => {});
    }
    await Deno.remove(join(this.#options.directory, path, STREAMS_FILE)).catch(() => {});
    await Deno.remove(join(this.#options.directory, path)).catch(() => {}); // once empty
    this.#options.rtsp.unmount(`${PLAYBACK_PREFIX}${path}`);
    return { path, deleted };
  }

  /** The files of `path` kept aside as cut before their first fragment. */
  async #cutAside(path: string): Promise<string[]> {
    const found: string[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.#options.directory, path))) {
        if (entry.isFile && CUT_ASIDE.test(entry.name)) found.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return found.sort();
  }

  /**
   * Starts exporting `from`..`to` (UTC times; either may be missing) of `path` as one file, cut at
   * key frames without re-encoding, in `format` (the segments' own by default).
   */
  async exportSpan(
    path: string,
    query: { from: string | null; to: string | null; format: string | null },
  ): Promise<SpanExport> {
    // The query is judged first: a wrong one is wrong whatever was recorded.
    const from = parseSpanTime("from", query.from);
    const to = parseSpanTime("to", query.to);
    if (query.format !== null && !(recordingFormats as readonly string[]).includes(query.format)) {
      throw formatRefused(query.format);
    }
    const segments = await this.segments(path);
    if (segments.length === 0) throw new SpanError(404, `No segments recorded of '/${path}'`);
    const span = spanOf(
      segments.map((s) => ({ ...s, start: Date.parse(s.start), end: Date.parse(s.end) })),
      from,
      to,
    );
    if (span.segments.length === 0) {
      throw new SpanError(
        404,
        `'/${path}' has no segment between ${query.from ?? "its start"} and ${
          query.to ?? "its end"
        }; its segments cover ${segments[0].start} to ${segments.at(-1)!.end}`,
      );
    }
    const formats = new Set(span.segments.map((s) => s.format));
    if (formats.size > 1) {
      throw new SpanError(
        409,
        `The span of '/${path}' holds segments of several formats (${[...formats].join(", ")}); ` +
          "export a span recorded in one format",
      );
    }
    const format = query.format ?? span.segments[0].format;
    if (!(recordingFormats as readonly string[]).includes(format)) throw formatRefused(format);
    const dir = join(this.#options.directory, path);
    const history = await Deno.readTextFile(join(dir, STREAMS_FILE)).then(
      parseStreamsHistory,
      () => null,
    );
    if (history === null) {
      throw new SpanError(
        409,
        `'/${path}' has no ${STREAMS_FILE} (its streams): it was recorded by an older server; ` +
          "download its segments one by one",
      );
    }
    const streams = spanStreams(path, history, span.segments.map((s) => s.start));
    return await this.#exports.open(path, dir, span, streams, format as RecordingFormat);
  }

  pollBuses(): void {
    for (const recorder of this.#recorders.values()) recorder.pipeline?.drainBus();
    this.#exports.pollBuses();
  }

  /** Every recording's figures, for the stats event. */
  stats(): RecordingStats[] {
    if (this.#recorders.size === 0) return [];
    const freeBytes = this.#freeBytes();
    return [...this.#recorders.values()].map((recorder) => {
      const { path, state, bytesWritten, currentSegment } = this.#info(recorder);
      return { path, state, bytesWritten, currentSegment, freeBytes };
    });
  }

  #freeBytes(): number {
    const fs = statfsSync(this.#options.directory);
    return Number(fs.bavail) * Number(fs.bsize);
  }

  /** Stops every pipeline (finishing its segment); the recordings stay stored. */
  async close(): Promise<void> {
    this.#sweep.close();
    await this.#exports.close();
    await Promise.all(
      [...this.#recorders.values()].map(async (recorder) => {
        recorder.stopping = true;
        await this.#run(recorder, () => this.#release(recorder, true));
        await this.#finishSegments(recorder.path, false);
      }),
    );
  }

  #add(path: string, options: RecordingOptions): Recorder {
    const recorder: Recorder = {
      path,
      options,
      createdAt: "",
      pipeline: null,
      ended: null,
      eos: false,
      failures: 0,
      retryAt: 0,
      bytesWritten: 0,
      closedBytes: 0,
      currentSegment: null,
      lastError: null,
      retentionAt: 0,
      busy: Promise.resolve(),
      stopping: false,
      storing: null,
    };
    this.#recorders.set(path, recorder);
    if (this.#opened) this.#sweep.wake();
    return recorder;
  }

  #require(path: string): Recorder {
    requireRecordablePath(path);
    const recorder = this.#recorders.get(path);
    if (recorder && !recorder.stopping) return recorder;
    throw new DomainError(
      "RECORDING_NOT_FOUND",
      `'/${path}' is not being recorded` +
        (this.#recorders.size > 0 ? `; recorded: ${[...this.#recorders.keys()].join(", ")}` : ""),
      { path },
    );
  }

  #run(recorder: Recorder, work: () => Promise<void>): Promise<void> {
    const next = recorder.busy.then(work);
    recorder.busy = next.catch(() => {});
    return next;
  }

  #info(recorder: Recorder): RecordingInfo {
    return {
      path: recorder.path,
      ...recorder.options,
      state: recorder.pipeline !== null && recorder.ended === null ? "recording" : "waiting",
      createdAt: recorder.createdAt,
      bytesWritten: recorder.bytesWritten,
      currentSegment: recorder.currentSegment,
      lastError: recorder.lastError,
      node: this.#options.node,
    };
  }

  async #recordedPaths(): Promise<string[]> {
    const paths: string[] = [];
    for await (const entry of Deno.readDir(this.#options.directory)) {
      if (entry.isDirectory && PATH_PATTERN.test(entry.name)) paths.push(entry.name);
    }
    return paths.sort();
  }

  /** Builds and plays the recorder's pipeline; a failure leaves it waiting to retry. */
  async #launch(recorder: Recorder): Promise<void> {
    if (recorder.pipeline !== null || recorder.stopping) return;
    const { path } = recorder;
    const depayloaders = this.#options.pathDepayloaders?.(path) ?? ["rtph264depay"];
    const video = depayloaders.find((depay) => depay in videoChains);
    if (video === undefined) {
      this.#failed(
        recorder,
        `'/${path}' serves no H.264 or H.265 video (its streams need ${
          depayloaders.join(", ")
        }); ` +
          "recordings keep the stream as it is, without re-encoding",
      );
      return;
    }
    let pipeline: ManagedPipeline | null = null;
    try {
      await this.#finishSegments(path, false);
      await this.#noteStreams(path, video, depayloaders);
      pipeline = await this.#build(recorder, video, depayloaders);
      recorder.ended = null;
      recorder.eos = false;
      await pipeline.start("playing");
      recorder.pipeline = pipeline;
      recorder.lastError = null;
      this.#options.requestKeyFrame?.(path); // the first segment starts at a key frame
      console.log(`Recording '/${path}' (${recorder.options.format}) started`);
      this.#options.emit({
        type: "recordingStarted",
        payload: { path, format: recorder.options.format },
      });
    } catch (error) {
      await pipeline?.release();
      this.#failed(recorder, `Recording '/${path}' could not start: ${errorMessage(error)}`);
    }
  }

  /**
   * Mends the index of an MP4 segment a crash cut short (see mp4_mend.ts); a finalised one has
   * none to mend. False when it has no index a player could read: cut before its first whole
   * fragment, or with no fragment whose sample sizes are known.
   */
  async #mend(path: string, file: string): Promise<boolean> {
    try {
      const mended = await mendCutMp4(file);
      if (mended === null) return false;
      if (mended > 0) {
        console.log(`Recording '/${path}': mended a segment cut short (${mended} index changes)`);
      }
    } catch (error) {
      console.error(`Recording '/${path}': could not mend ${file}: ${errorMessage(error)}`);
    }
    return true;
  }

  /** Runs `sync` on `path` (a file or a folder); a failure is logged, as the recording goes on. */
  async #synced(
    recorded: string,
    path: string,
    sync: (file: Deno.FsFile) => Promise<void>,
  ): Promise<void> {
    try {
      using file = await Deno.open(path, { read: true });
      await sync(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return; // deleted meanwhile (retention, a client)
      console.error(`Recording '/${recorded}': could not sync ${path}: ${errorMessage(error)}`);
    }
  }

  /**
   * Notes in the folder's `.streams.json` which streams the segments from now on hold, for span
   * exports and playback: kept beside those of the segments before, which other streams may hold.
   */
  async #noteStreams(path: string, video: string, depayloaders: string[]): Promise<void> {
    const audio = depayloaders.find((depay) => depay in audioChains);
    const streams = {
      video: codecs[video],
      audio: audio === undefined ? null : codecs[audio],
    } as RecordedStreams;
    const file = join(this.#options.directory, path, STREAMS_FILE);
    const before = await Deno.readTextFile(file).then(parseStreamsHistory, () => []);
    const history = withStreams(before, streams, new Date().toISOString());
    if (history === before) return;
    // Written aside, synced and renamed: neither a crash nor a power loss leaves half a file.
    await Deno.writeTextFile(`${file}.new`, JSON.stringify(history));
    await this.#synced(path, `${file}.new`, (written) => written.syncData());
    await Deno.rename(`${file}.new`, file);
    await this.#synced(path, dirname(file), (directory) => directory.sync());
  }

  #failed(recorder: Recorder, message: string): void {
    recorder.failures++;
    recorder.retryAt = performance.now() +
      RETRY_MS[Math.min(recorder.failures - 1, RETRY_MS.length - 1)];
    if (recorder.lastError !== message) {
      console.error(message);
      this.#options.emit({ type: "recordingError", payload: { path: recorder.path, message } });
    }
    recorder.lastError = message;
  }

  async #build(
    recorder: Recorder,
    video: string,
    depayloaders: string[],
  ): Promise<ManagedPipeline> {
    const { path, options } = recorder;
    const muxer = muxers[options.format];
    const chain = videoChains[video];
    const mp4 = options.format === "mp4";
    const id = `recording-${crypto.randomUUID()}`;
    const elements: ElementSpec[] = [
      loopbackReaderSpec(this.#options, path),
      // A reader joins the path mid-GOP: the delta frames before its first key frame would begin
      // the first segment, and decode as garbage. (rtph265depay has no such setting in 1.22.)
      video === "rtph264depay"
        ? { type: video, name: "depay", properties: { "wait-for-keyframe": true } }
        : { type: video, name: "depay" },
      { type: chain.parser, name: "parse" },
      ...(mp4 ? [{ type: chain.timestamper, name: "timestamps" }] : []),
      {
        type: "splitmuxsink",
        name: "segments",
        properties: {
          location: join(this.#options.directory, path, `writing-%05d.${options.format}`),
          "max-size-time": options.segmentSeconds * 1_000_000_000,
          "async-finalize": true,
          "muxer-factory": muxer.factory,
          ...(muxer.properties ? { "muxer-properties": muxer.properties } : {}),
        },
      },
    ];
    const links = [
      ...chainLinks(["source", "depay", "parse"]),
      ...(mp4
        ? [
          { from: "parse", to: "timestamps", caps: chain.mp4Caps },
          { from: "timestamps", to: "segments.video" },
        ]
        : [{ from: "parse", to: "segments.video", caps: chain.caps }]),
    ];
    const audio = depayloaders.find((depay) => depay in audioChains);
    if (audio !== undefined) {
      elements.push({ type: audio, name: "audio-depay" }, {
        type: audioChains[audio],
        name: "audio-parse",
      });
      links.push(...chainLinks(["source", "audio-depay", "audio-parse", "segments.audio_0"]));
    }
    // Other streams (a second audio, say) are read and dropped: an unlinked one stops rtspsrc.
    const others = depayloaders.filter((depay) => depay !== video && depay !== audio);
    others.forEach((depay, at) => {
      elements.push({ type: depay, name: `other-${at}` }, {
        type: "fakesink",
        name: `dropped-${at}`,
        properties: { sync: false, async: false },
      });
      links.push(...chainLinks(["source", `other-${at}`, `dropped-${at}`]));
    });
    return await this.#pipelines.build(id, elements, links, (event) => {
      if (event.type === "pipelineEos") recorder.eos = true;
      recorder.ended ??= endOfRun(event);
    });
  }

  /** Releases the pipeline; `finish` first ends its stream so the last segment is whole. */
  async #release(recorder: Recorder, finish: boolean): Promise<void> {
    const pipeline = recorder.pipeline;
    if (pipeline === null) return;
    recorder.pipeline = null;
    if (finish && recorder.ended === null) {
      try {
        recorder.ended = "stopping";
        await pipeline.sendEos();
        const deadline = performance.now() + FINISH_TIMEOUT_MS;
        while (!recorder.eos && performance.now() < deadline) {
          pipeline.drainBus();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } catch {
        // not playing: nothing to finish
      }
    }
    await pipeline.release();
  }

  /**
   * Renames closed segments by their start time (all of them when none is being written); returns
   * how many it closed.
   */
  async #finishSegments(path: string, writing: boolean): Promise<number> {
    const dir = join(this.#options.directory, path);
    const open: { name: string; index: number }[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        const match = entry.isFile ? entry.name.match(WRITING) : null;
        if (match) open.push({ name: entry.name, index: Number(match[1]) });
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return 0;
      throw error;
    }
    open.sort((a, b) => a.index - b.index);
    const recorder = this.#recorders.get(path);
    const closing = writing ? open.slice(0, -1) : open;
    const current = writing ? open.at(-1) : undefined;
    const now = Date.now();
    let closed = 0;
    for (const { name } of open) {
      const full = join(dir, name);
      if (!this.#firstSeen.has(full)) this.#firstSeen.set(full, now);
    }
    for (let at = 0; at < closing.length; at++) {
      const full = join(dir, closing[at].name);
      const stat = await Deno.stat(full).catch(() => null);
      if (stat === null) continue;
      const start = stat.birthtime?.getTime() ?? this.#firstSeen.get(full) ?? now;
      this.#firstSeen.delete(full);
      if (stat.size === 0) { // opened and never written (a stop before the first key frame)
        await Deno.remove(full).catch(() => {});
        continue;
      }
      const extension = closing[at].name.split(".").at(-1)!;
      // While the path records, a closed segment is splitmuxsink's to finalise (it may still be
      // at it); only one left when none is written can have been cut short.
      const playable = extension !== "mp4" || writing || await this.#mend(path, full);
      // On disk before it takes its name, and the name on disk before anyone is told of it: a
      // power loss leaves either the segment whole under its name, or the file it was.
      await this.#synced(path, full, (file) => file.syncData());
      // Kept, but under a name no listing, export or replay takes: one such file in a span would
      // fail all of them.
      const file = await this.#freeName(dir, start, playable ? extension : "cut.mp4");
      try {
        await Deno.rename(full, join(dir, file));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue; // deleted meanwhile
        throw error;
      }
      await this.#synced(path, dir, (directory) => directory.sync());
      if (!playable) {
        console.warn(
          `Recording '/${path}': ${closing[at].name} was cut short before its first whole ` +
            `fragment, or that fragment lacks sample sizes (under a second of media): no player ` +
            `can read it; kept aside as ${file}, ` +
            "not listed",
        );
        continue;
      }
      closed++;
      if (recorder) {
        recorder.closedBytes += stat.size;
        const end = stat.mtime?.getTime() ?? now;
        this.#options.emit({
          type: "recordingSegment",
          payload: {
            path,
            file,
            start: new Date(start).toISOString(),
            duration: Math.max(0, end - start) / 1000,
            bytes: stat.size,
          },
        });
      }
    }
    if (current) {
      // Once a sweep (a second): what the segment being written holds reaches the disk, so a power
      // loss costs about what a kill -9 does (docs/protocol.md, Recording).
      await this.#synced(path, join(dir, current.name), (file) => file.syncData());
    }
    if (recorder) {
      const size = current
        ? (await Deno.stat(join(dir, current.name)).catch(() => null))?.size ?? 0
        : 0;
      recorder.currentSegment = current?.name ?? null;
      recorder.bytesWritten = recorder.closedBytes + size;
    }
    return closed;
  }

  async #freeName(dir: string, start: number, extension: string): Promise<string> {
    const stamp = new Date(start).toISOString().replaceAll(":", "-");
    for (let n = 0;; n++) {
      const name = `${stamp}${n === 0 ? "" : `-${n}`}.${extension}`;
      const taken = await Deno.lstat(join(dir, name)).then(() => true, () => false);
      if (!taken) return name;
    }
  }

  async #sweepAll(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      for (const recorder of [...this.#recorders.values()]) {
        await this.#run(recorder, () => this.#sweepOne(recorder)).catch((error) =>
          console.error(`Recording '/${recorder.path}': ${errorMessage(error)}`)
        );
      }
      await this.#keepFreeSpace();
    } finally {
      this.#sweeping = false;
    }
  }

  async #sweepOne(recorder: Recorder): Promise<void> {
    if (recorder.stopping || recorder.storing !== null) return;
    if (this.#recorders.get(recorder.path) !== recorder) return; // its start was refused
    const { path } = recorder;
    if (recorder.pipeline !== null && recorder.ended !== null) {
      const reason = recorder.ended;
      await this.#release(recorder, false);
      await this.#finishSegments(path, false);
      const served = this.#options.rtsp.isMounted(path);
      this.#failed(
        recorder,
        served
          ? `Recording '/${path}' stopped: ${reason}; it starts again`
          : `Recording '/${path}' waits for its path: ${reason}`,
      );
      if (!served) recorder.failures = 0;
    }
    let closed = 0;
    if (recorder.pipeline === null) {
      if (this.#options.rtsp.isReady(path) && performance.now() >= recorder.retryAt) {
        await this.#launch(recorder);
      }
    } else {
      closed = await this.#finishSegments(path, true);
      if (recorder.pipeline !== null && recorder.ended === null) recorder.failures = 0;
    }
    // When a segment closes (so a size limit holds at once), else once a segment's length: not
    // every sweep, since a long retention keeps thousands of segments.
    if (closed > 0 || performance.now() >= recorder.retentionAt) {
      recorder.retentionAt = performance.now() + recorder.options.segmentSeconds * 1000;
      await this.#applyRetention(recorder);
    }
  }

  async #applyRetention(recorder: Recorder): Promise<void> {
    const { maxAgeSeconds, maxBytes } = recorder.options.retention;
    if (maxAgeSeconds === undefined && maxBytes === undefined) return;
    const segments = await this.segments(recorder.path);
    const oldestKept = maxAgeSeconds === undefined ? -Infinity : Date.now() - maxAgeSeconds * 1000;
    let total = segments.reduce((sum, s) => sum + s.bytes, 0) +
      (recorder.bytesWritten - recorder.closedBytes);
    for (const segment of segments) {
      const tooOld = Date.parse(segment.end) < oldestKept;
      const tooBig = maxBytes !== undefined && total > maxBytes;
      if (!tooOld && !tooBig) break;
      await Deno.remove(join(this.#options.directory, recorder.path, segment.file)).catch(() => {});
      total -= segment.bytes;
      console.log(
        `Recording '/${recorder.path}': retention deleted ${segment.file} (${
          tooOld ? `older than ${maxAgeSeconds} s` : `over ${maxBytes} bytes`
        })`,
      );
    }
  }

  /** Below the free-space floor: the oldest segments of recorded paths go, then recordings stop. */
  async #keepFreeSpace(): Promise<void> {
    const free = () => this.#freeBytes();
    // Only what the server is writing can fill the disk: only recorded paths give up segments.
    const writing = [...this.#recorders.values()].filter((r) => r.pipeline !== null);
    if (writing.length === 0 || free() >= this.#options.minFreeBytes) return;
    const all: SegmentInfo[] = [];
    for (const { path } of writing) all.push(...await this.segments(path));
    all.sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    for (const segment of all) {
      if (free() >= this.#options.minFreeBytes) return;
      await Deno.remove(join(this.#options.directory, segment.path, segment.file)).catch(() => {});
      console.log(
        `Recordings: deleted ${segment.path}/${segment.file}: free space under the floor ` +
          `(GSTREAMER_RECORDINGS_MIN_FREE_MB)`,
      );
    }
    if (free() >= this.#options.minFreeBytes) return;
    for (const recorder of writing) {
      const message = `Recording '/${recorder.path}' stopped: the disk's free space is under the ` +
        `floor (${Math.round(free() / 1048576)} MiB free, GSTREAMER_RECORDINGS_MIN_FREE_MB=` +
        `${Math.round(this.#options.minFreeBytes / 1048576)}) with no segment left to delete`;
      this.#options.emit({ type: "recordingError", payload: { path: recorder.path, message } });
      console.error(message);
      await this.stop(recorder.path, "the disk is full").catch(() => {});
    }
  }
}

function segmentInfo(path: string, file: string, stat: Deno.FileInfo): SegmentInfo {
  const match = file.match(SEGMENT)!;
  return {
    path,
    file,
    format: match[3] as RecordingFormat,
    start: `${match[1].slice(0, 10)}T${match[1].slice(11, 19).replaceAll("-", ":")}${
      match[1].slice(19)
    }`,
    end: (stat.mtime ?? new Date()).toISOString(),
    bytes: stat.size,
  };
}

/**
 * Sorted by time. A closed MP4 is finalised (written to) after the next segment began: where one
 * follows without a gap, the next one's start is this one's end.
 */
function inOrder(found: SegmentInfo[]): SegmentInfo[] {
  found.sort((a, b) => a.file.localeCompare(b.file));
  for (let at = 0; at + 1 < found.length; at++) {
    if (Date.parse(found[at].end) > Date.parse(found[at + 1].start)) {
      found[at].end = found[at + 1].start;
    }
  }
  return found;
}

function formatRefused(format: string): SpanError {
  return new SpanError(
    400,
    `'format' is ${JSON.stringify(format)}: expected one of ${recordingFormats.join(", ")}`,
  );
}

function requireRecordablePath(path: string): void {
  if (!PATH_PATTERN.test(path)) {
    throw new DomainError(
      "INVALID_REQUEST",
      `Cannot record path ${JSON.stringify(path)}: recorded paths are 1 to 64 letters, digits, ` +
        "'.', '_' and '-', not starting with '.'",
      { path },
    );
  }
}
