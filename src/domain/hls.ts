/**
 * HLS of any served RTSP path: a pipeline of the server's own per path, started by the first
 * request for its playlist and stopped when no one has asked for a while. It reads the path from
 * our RTSP server over loopback and writes MPEG-TS segments with hlssink2 into a directory the
 * hub owns (one per stream, inside the server's HLS directory, removed with the stream):
 *
 *   rtspsrc (loopback, TCP) ! rtph264depay ! h264parse ! hlssink2.video
 *   rtspsrc. ! rtpmp4gdepay ! aacparse ! hlssink2.audio                 (AAC, as it is)
 *   rtspsrc. ! rtpopusdepay ! opusdec ! ... ! avenc_aac ! hlssink2.audio (Opus, transcoded)
 *
 * Clients name only a path and a segment's file name, which must be one hlssink2 writes: no file
 * path of theirs reaches GStreamer, and the hub's policy confines locations to its directory.
 */
import { processRuns } from "../gst/process.ts";
import { ActiveTimer } from "./active_timer.ts";
import { join } from "node:path";
import { errorMessage } from "./errors.ts";
import {
  chainLinks,
  type LoopbackReader,
  loopbackReaderSpec,
  noH264Reason,
  SERVED_PATH_KINDS,
} from "./mounts.ts";
import { endOfRun, OwnPipelines } from "./own_pipelines.ts";
import type { ManagedPipeline } from "./pipeline.ts";
import type { ElementSpec } from "./spec.ts";

/** A request the hub refuses, with the HTTP status that says why. */
export class HlsError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export const PLAYLIST_NAME = "index.m3u8";
/** The names hlssink2 gives segments here (its `location` pattern below). */
const SEGMENT_PATTERN = /^segment\d{5}\.ts$/;
/** Segments in the playlist; more stay on disk for a client that read an older playlist. */
const PLAYLIST_LENGTH = 5;
const KEPT_SEGMENTS = 10;
/** How often a starting stream's directory is looked at for its first playlist. */
const START_POLL_MS = 50;
/** How often streams are looked at for idleness. */
const SWEEP_MS = 1_000;
/** The file in the server's HLS directory that names the process owning it. */
const OWNER_FILE = "owner.pid";
const DIRECTORY_PREFIX = "gstreamer-hls-";

/** How audio a path serves reaches hlssink2 as AAC: by its depayloader, the elements after it. */
const audioChains: Record<string, ElementSpec[]> = {
  rtpmp4gdepay: [{ type: "aacparse" }],
  rtpopusdepay: [
    { type: "opusdec" },
    { type: "audioconvert" },
    { type: "audioresample" },
    { type: "avenc_aac" },
    { type: "aacparse" },
  ],
};

export interface HlsOptions extends LoopbackReader {
  /** The server's HLS directory (made by `makeHlsDirectory`); the hub removes it at close. */
  directory: string;
  segmentSeconds: number;
  idleTimeoutMs: number;
  maxStreams: number;
  /** The depayloaders a reader of `path` needs, one per stream: which codecs it has. */
  pathDepayloaders?: (path: string) => string[];
  /** Asks whatever produces `path` for a key frame (a stream's first segment starts at one). */
  requestKeyFrame?: (path: string) => void;
}

interface Stream {
  path: string;
  directory: string;
  /** Null until built. */
  pipeline: ManagedPipeline | null;
  /** True once the first playlist is written: from then on, idleness ends the stream. */
  running: boolean;
  /** Settles when the first playlist is written, or the stream failed to start. */
  started: Promise<void>;
  lastRequestAt: number;
  /** When a key frame was last asked for (-Infinity: never). */
  keyFrameAt: number;
  /** Set by a bus error or end of stream: the stream ends at the next sweep. */
  ended: string | null;
  failures: string[];
}

/**
 * Makes the server's HLS directory inside `base` (the system's temporary directory when empty),
 * after removing the ones left by servers that are no longer running.
 */
export async function makeHlsDirectory(base: string): Promise<string> {
  const parent = base || Deno.env.get("TMPDIR") || "/tmp";
  await Deno.mkdir(parent, { recursive: true });
  for await (const entry of Deno.readDir(parent)) {
    if (!entry.isDirectory || !entry.name.startsWith(DIRECTORY_PREFIX)) continue;
    const dir = join(parent, entry.name);
    const owner = await Deno.readTextFile(join(dir, OWNER_FILE)).catch(() => null);
    if (owner === null || processRuns(Number(owner))) continue; // not ours, or still in use
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const directory = await Deno.makeTempDir({ dir: parent, prefix: DIRECTORY_PREFIX });
  await Deno.writeTextFile(join(directory, OWNER_FILE), String(Deno.pid));
  return directory;
}

export class HlsHub {
  readonly #options: HlsOptions;
  readonly #streams = new Map<string, Stream>();
  readonly #pipelines: OwnPipelines;
  readonly #sweep: ActiveTimer;
  #closed = false;

  constructor(options: HlsOptions) {
    this.#options = options;
    // The server's own pipelines: every element is its choice, and every file its directory's.
    this.#pipelines = new OwnPipelines(options.directory);
    this.#sweep = new ActiveTimer(
      SWEEP_MS,
      () => this.#sweepStreams(),
      () => this.#streams.size > 0,
    );
  }

  /** The paths being served over HLS. */
  paths(): string[] {
    return [...this.#streams.keys()];
  }

  /** The playlist of `path`, starting its stream if none runs. */
  async playlist(path: string): Promise<string> {
    const stream = this.#streams.get(path) ?? this.#start(path);
    stream.lastRequestAt = performance.now();
    await stream.started;
    stream.lastRequestAt = performance.now(); // the wait for the first segment is not idleness
    try {
      return await Deno.readTextFile(join(stream.directory, PLAYLIST_NAME));
    } catch (error) {
      throw this.#gone(path, error);
    }
  }

  /** A segment of a running stream. */
  async segment(path: string, name: string): Promise<Uint8Array> {
    const stream = this.#streams.get(path);
    if (!SEGMENT_PATTERN.test(name)) {
      throw new HlsError(
        404,
        `No file '${name}' in an HLS stream: it has ${PLAYLIST_NAME} and the segments it lists`,
      );
    }
    if (stream === undefined) {
      throw new HlsError(
        404,
        `No HLS stream of '/${path}' is running: request /hls/${path}/${PLAYLIST_NAME} first`,
      );
    }
    stream.lastRequestAt = performance.now();
    try {
      return await Deno.readFile(join(stream.directory, name));
    } catch (error) {
      throw this.#gone(path, error, name);
    }
  }

  pollBuses(): void {
    for (const stream of this.#streams.values()) stream.pipeline?.drainBus();
  }

  /** Ends every stream and removes the server's HLS directory (the server stops). */
  async closeAll(): Promise<void> {
    this.#closed = true;
    this.#sweep.close();
    await Promise.all([...this.#streams.values()].map((s) => this.#end(s, "the server stops")));
    await Deno.remove(this.#options.directory, { recursive: true }).catch(() => {});
  }

  #gone(path: string, error: unknown, name = PLAYLIST_NAME): HlsError {
    return error instanceof Deno.errors.NotFound
      ? new HlsError(404, `'${name}' of '/${path}' is no longer there: read the playlist again`)
      : new HlsError(500, `Reading '${name}' of '/${path}' failed: ${errorMessage(error)}`);
  }

  #start(path: string): Stream {
    const { rtsp, maxStreams, segmentSeconds } = this.#options;
    if (this.#closed) throw new HlsError(503, "The server is stopping");
    if (!rtsp.isMounted(path)) {
      throw new HlsError(
        404,
        `Nothing is served at '/${path}' now; HLS serves a served RTSP path ` +
          `(${SERVED_PATH_KINDS})`,
      );
    }
    const notReady = rtsp.notReadyReason(path);
    if (notReady !== null) throw new HlsError(503, `'/${path}' cannot be played yet: ${notReady}`);
    if (this.#streams.size >= maxStreams) {
      throw new HlsError(
        503,
        `${maxStreams} HLS streams are running, the server's limit (GSTREAMER_MAX_HLS_STREAMS); ` +
          "try again later",
      );
    }
    const depayloaders = this.#options.pathDepayloaders?.(path) ?? [];
    const noH264 = noH264Reason(path, depayloaders);
    if (noH264 !== null) {
      throw new HlsError(406, `${noH264}; HLS here carries H.264 video without transcoding`);
    }
    const stream: Stream = {
      path,
      directory: join(this.#options.directory, crypto.randomUUID()),
      pipeline: null,
      running: false,
      started: Promise.resolve(),
      lastRequestAt: performance.now(),
      keyFrameAt: -Infinity,
      ended: null,
      failures: [],
    };
    this.#streams.set(path, stream);
    this.#sweep.wake();
    // The first playlist needs a segment: one segment's length after the first key frame, which
    // a source without a key frame request may take its whole interval to send.
    const timeoutMs = Math.max(15_000, 4 * segmentSeconds * 1000);
    stream.started = this.#run(stream, depayloaders, timeoutMs).catch(async (error) => {
      await this.#end(stream, `it did not start: ${errorMessage(error)}`);
      throw error instanceof HlsError
        ? error
        : new HlsError(502, `HLS of '/${path}' failed to start: ${errorMessage(error)}`);
    });
    return stream;
  }

  async #run(stream: Stream, depayloaders: string[], timeoutMs: number): Promise<void> {
    const { path } = stream;
    await Deno.mkdir(stream.directory);
    const pipeline = await this.#build(stream, depayloaders);
    const stopped = () => this.#streams.get(path) !== stream;
    if (stopped()) { // the server stopped meanwhile: #end found nothing to release
      await pipeline.release();
      await Deno.remove(stream.directory, { recursive: true }).catch(() => {});
      throw new HlsError(503, "The server is stopping");
    }
    stream.pipeline = pipeline;
    await pipeline.start("playing");
    const playlist = join(stream.directory, PLAYLIST_NAME);
    const deadline = performance.now() + timeoutMs;
    while (!(await exists(playlist))) {
      this.#askKeyFrame(stream);
      if (stopped()) throw new HlsError(503, "The server is stopping");
      if (stream.failures.length > 0 || stream.ended !== null) {
        throw new HlsError(
          502,
          `The stream at '/${path}' could not be read for HLS: ` +
            `${stream.failures[0] ?? stream.ended}; HLS needs the path playing, with H.264 video`,
        );
      }
      if (performance.now() > deadline) {
        throw new HlsError(
          504,
          `No HLS segment of '/${path}' within ${timeoutMs / 1000} s: a segment needs H.264 ` +
            "video with a key frame",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, START_POLL_MS));
    }
    stream.running = true;
    console.log(`HLS of '/${path}' started`);
  }

  async #build(stream: Stream, depayloaders: string[]): Promise<ManagedPipeline> {
    const { segmentSeconds } = this.#options;
    const id = `hls-${crypto.randomUUID()}`;
    const elements: ElementSpec[] = [
      loopbackReaderSpec(this.#options, stream.path),
      // A reader joins mid-GOP: what comes before the first key frame no player can decode.
      { type: "rtph264depay", name: "depay", properties: { "wait-for-keyframe": true } },
      { type: "h264parse", name: "parse" },
      {
        type: "hlssink2",
        name: "hls",
        properties: {
          location: join(stream.directory, "segment%05d.ts"),
          "playlist-location": join(stream.directory, PLAYLIST_NAME),
          "target-duration": segmentSeconds,
          "playlist-length": PLAYLIST_LENGTH,
          "max-files": KEPT_SEGMENTS,
        },
      },
    ];
    const links = [
      ...chainLinks(["source", "depay", "parse"]),
      // Whole access units: hlssink2 then cuts at key frames only. NAL by NAL, a segment was cut
      // at a parameter set and began with the P frames before the key frame.
      { from: "parse", to: "hls.video", caps: "video/x-h264,alignment=au" },
    ];
    const audio = depayloaders.find((depay) => depay !== "rtph264depay");
    if (audio !== undefined) {
      const rest = audioChains[audio];
      const audioElements: ElementSpec[] = [
        { type: audio, name: "audio-depay" },
        ...(rest ?? [{ type: "fakesink", properties: { sync: false, async: false } }])
          .map((spec, at) => ({ ...spec, name: `audio-${at}` })),
      ];
      elements.push(...audioElements);
      const names = ["source", ...audioElements.map((e) => e.name!)];
      // Audio that cannot become AAC is read and dropped (an unlinked stream stops rtspsrc).
      links.push(...chainLinks(rest ? [...names, "hls.audio"] : names));
    }
    return await this.#pipelines.build(id, elements, links, (event) => {
      if (event.type === "pipelineError") {
        // GStreamer's own detail ends with what the peer said ("Service Unavailable (503)").
        const detail = event.payload.debug?.trim().split("\n").at(-1);
        stream.failures.push(event.payload.message + (detail ? ` (${detail})` : ""));
      }
      stream.ended ??= endOfRun(event);
    });
  }

  /**
   * Asks for a key frame once per segment: hlssink2's own requests stop at rtspsrc, and a segment
   * can end only at a key frame. A source with no encoder of ours keeps its own interval.
   */
  #askKeyFrame(stream: Stream): void {
    const now = performance.now();
    // Timers fire late, not early: one asked for at the next sweep after this lands past the due split.
    if (now - stream.keyFrameAt < this.#options.segmentSeconds * 1000 - SWEEP_MS / 2) return;
    stream.keyFrameAt = now;
    this.#options.requestKeyFrame?.(stream.path);
  }

  #sweepStreams(): void {
    const now = performance.now();
    for (const stream of this.#streams.values()) {
      if (!stream.running) continue; // its start watches it
      this.#askKeyFrame(stream);
      const idle = now - stream.lastRequestAt;
      const reason = stream.ended ??
        (idle > this.#options.idleTimeoutMs
          ? `no request for ${Math.round(idle / 1000)} s`
          : !this.#options.rtsp.isMounted(stream.path)
          ? "the path is no longer served"
          : null);
      if (reason !== null) void this.#end(stream, reason);
    }
  }

  async #end(stream: Stream, reason: string): Promise<void> {
    if (this.#streams.get(stream.path) !== stream) return;
    this.#streams.delete(stream.path);
    await stream.pipeline?.release();
    await Deno.remove(stream.directory, { recursive: true }).catch(() => {});
    console.log(`HLS of '/${stream.path}' stopped: ${reason}`);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await Deno.stat(file);
    return true;
  } catch {
    return false;
  }
}
