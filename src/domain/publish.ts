/**
 * Publishing: a stream an encoder sends in, served at rtsp://HOST:RTSP_PORT/{name} to every
 * reader, like a push. Two protocols bring it: RTSP ANNOUNCE/RECORD (ffmpeg -f rtsp,
 * rtspclientsink, OBS) and WHIP (whip.ts: browsers, OBS 30+).
 *
 * The publisher's side of each (a Publisher) sends the RTP it receives, one stream per port, to
 * loopback UDP ports: gst-rtsp-server's record media, whose bin is depay0 (identity) ! udpsink
 * per stream, or webrtcbin's. The publish itself is a pipeline of kind "publish" in the registry
 * (udpsrc ! depayloader ! parser ! identity ! rtspserversink per stream), so it shows in
 * getPipelines, stats and events, and readers get it as they get any served pipeline. When the
 * publisher leaves (TEARDOWN or DELETE, a dropped connection, or silence), the publish ends: EOS
 * through its pipeline, which readers see as the end, and the name is freed.
 */
import { ActiveTimer } from "./active_timer.ts";
import {
  endAndRelease,
  linkedBin,
  makeElement,
  release,
  retain,
  sourceState,
} from "../gst/element.ts";
import type { Pointer } from "../gst/native.ts";
import { setProperty } from "../gst/property.ts";
import type { AnnounceAnswer, AnnounceRequest, RtspServer, SdpStream } from "../gst/rtsp.ts";
import { freeUdpPort } from "./mounts.ts";
import { NAME_RULE, namePattern } from "./names.ts";
import { nameConflict, type PushHost } from "./push.ts";
import type { PublishElements } from "./registry.ts";
import type { ElementSpec, LinkSpec, PipelineSpec } from "./spec.ts";
import { ByteRate } from "./stats.ts";

/** What a publish needs of the registry. */
export interface PublishHost extends Omit<PushHost, "createPush" | "fail" | "pollBus"> {
  createPublish(
    spec: PipelineSpec,
    extraStats: () => Record<string, unknown>,
    names: { sources: string[]; counters: string[] },
  ): Promise<PublishElements>;
}

export interface PublishCodec {
  label: string;
  media: "video" | "audio";
  /** The RTP clock rate its payload format fixes; null: any above 0 (AAC's is its sample rate). */
  clockRate: number | null;
  depay: string;
  parser: string;
}

/** Codecs a publisher may send, by SDP encoding name. */
export const publishCodecs: Record<string, PublishCodec> = {
  H264: {
    label: "H.264",
    media: "video",
    clockRate: 90000,
    depay: "rtph264depay",
    parser: "h264parse",
  },
  H265: {
    label: "H.265",
    media: "video",
    clockRate: 90000,
    depay: "rtph265depay",
    parser: "h265parse",
  },
  "MPEG4-GENERIC": {
    label: "AAC",
    media: "audio",
    clockRate: null,
    depay: "rtpmp4gdepay",
    parser: "aacparse",
  },
  "MP4A-LATM": {
    label: "AAC",
    media: "audio",
    clockRate: null,
    depay: "rtpmp4adepay",
    parser: "aacparse",
  },
  OPUS: {
    label: "Opus",
    media: "audio",
    clockRate: 48000,
    depay: "rtpopusdepay",
    parser: "opusparse",
  },
};

/** Why an SDP stream of a known codec cannot be taken as it is described, or null. */
function streamMismatch(
  stream: { media: string; caps?: string },
  codec: PublishCodec,
): string | null {
  if (stream.media !== codec.media) {
    return `is ${stream.media} ${codec.label}, but ${codec.label} is ${codec.media}: give it an ` +
      `m=${codec.media} line`;
  }
  // GStreamer 1.22's AAC depayloaders read it as hex and free the buffer on a bad digit (a
  // CRITICAL, and a crash of the whole server).
  const config = stream.caps?.match(/config=\(string\)([^,;\s]*)/)?.[1];
  if (codec.label === "AAC" && config !== undefined && !/^(?:[0-9a-fA-F]{2})+$/.test(config)) {
    return `has config=${config} (its a=fmtp), which is not hexadecimal: an AAC config is its ` +
      "AudioSpecificConfig in hex, two digits a byte (1190 for 48 kHz stereo)";
  }
  const rate = stream.caps?.match(/clock-rate=\(int\)(\d+)/)?.[1];
  if (rate === undefined) return null;
  if (codec.clockRate !== null ? Number(rate) !== codec.clockRate : Number(rate) <= 0) {
    return `has an RTP clock rate of ${rate} (its a=rtpmap); ${codec.label} is sent at ` +
      (codec.clockRate === null ? "its sample rate" : `${codec.clockRate}`);
  }
  return null;
}

const ACCEPTED = "H.264 or H.265 video, with AAC or Opus audio";

/** A publisher that has not started sending (RTSP RECORD, WebRTC connected) this long is given up. */
const START_TIMEOUT_MS = 20_000;
/** A publisher that sends nothing this long is gone (as MediaMTX's default read timeout). */
const IDLE_TIMEOUT_MS = 10_000;
/** How long the end of a publish may take to pass through its pipeline before it is deleted. */
const DRAIN_TIMEOUT_MS = 3_000;
/** Counters that stand still this long after the publisher left: nothing more is coming. */
const QUIET_MS = 500;
const WATCH_MS = 250;
/** Loopback ports kept ready: a publish takes them at once, while gst-rtsp-server waits. */
const SPARE_PORTS = 4;
/** The most streams one publish has: one port each, from the spare ones. */
const MAX_PUBLISH_STREAMS = SPARE_PORTS;

/** Free loopback UDP ports asked of the kernel ahead of need (the ANNOUNCE cannot wait). */
class PortPool {
  readonly #spare: number[] = [];
  #filling = false;

  constructor() {
    this.#fill();
  }

  take(count: number): number[] | null {
    const taken = this.#spare.length >= count ? this.#spare.splice(0, count) : null;
    this.#fill();
    return taken;
  }

  #fill(): void {
    if (this.#filling || this.#spare.length >= SPARE_PORTS) return;
    this.#filling = true;
    void (async () => {
      try {
        while (this.#spare.length < SPARE_PORTS) this.#spare.push(await freeUdpPort());
      } catch (error) {
        console.error("Finding free UDP ports for RTSP publishing failed:", error);
      } finally {
        this.#filling = false;
      }
    })();
  }
}

/** How a publish ended. */
export type PublishEnd =
  | "publisher left"
  | "publisher silent"
  | "publisher never sent"
  | "removed";

/** The publisher's side of a publish: what brings its RTP to the publish's UDP ports. */
export interface Publisher {
  /** "RTSP" or "WHIP", for the pipeline's description and the logs. */
  readonly protocol: string;
  /** Media is coming in now (RTSP: the record media plays; WHIP: the peer is connected). */
  sending(): boolean;
  /** The publish is ending: take nothing more from the publisher. */
  stop(): void;
  /** The publish is over: release what the publisher's side holds. */
  release(): void;
}

/** A stream of a publish: its SDP description, its codec, and the UDP port its RTP comes to. */
export type PublishStream = SdpStream & { codec: PublishCodec; port: number };

/** Why a publish cannot start: a status (RTSP and HTTP share them) and what is wrong. */
export interface PublishRefusal {
  status: number;
  reason: string;
}

class PublishSession {
  readonly name: string;
  readonly #host: PublishHost;
  readonly #publisher: Publisher;
  readonly #streams: PublishStream[];
  readonly #from: string;
  readonly #announcedAt = performance.now();
  #recording = false;
  #elements: PublishElements | null = null;
  /** The pipeline was made and started (a stop by anyone after this ends the publish). */
  #started = false;
  /** Making the pipeline failed: there is nothing to end but our own references. */
  #creationFailed = false;
  /** The bytes of every stream taken in so far, and when that last moved. */
  #lastIn = { bytes: -1, at: performance.now() };
  #ended: PublishEnd | null = null;
  readonly #onEnd: () => void;
  readonly #rate = new ByteRate(0, performance.now());

  constructor(
    host: PublishHost,
    name: string,
    from: string,
    streams: PublishStream[],
    publisher: Publisher,
    onEnd: () => void,
  ) {
    this.name = name;
    this.#host = host;
    this.#publisher = publisher;
    this.#streams = streams;
    this.#from = from;
    this.#onEnd = onEnd;
  }

  get format(): string {
    return this.#streams.map((stream) => stream.codec.label).join(" + ");
  }

  /** Creates and starts the publish pipeline; the publisher's SETUP and RECORD go on meanwhile. */
  start(): void {
    // Called before any await: the registry reserves the name in this same step.
    const created = this.#host.createPublish(this.#spec(), () => this.#stats(), {
      sources: this.#streams.map((_, index) => `in${index}`),
      counters: this.#streams.map((_, index) => `count${index}`),
    });
    void created.then(async (elements) => {
      this.#elements = elements;
      if (this.#ended !== null) return this.#finish();
      await this.#host.start(this.name);
      this.#started = true;
    }).catch((error) => {
      console.error(`Publish '${this.name}' could not start:`, error);
      this.#creationFailed = this.#elements === null;
      if (this.#ended === null) void this.end("removed");
      else if (this.#creationFailed) this.#release();
    });
  }

  #spec(): PipelineSpec {
    const elements: ElementSpec[] = [];
    const links: LinkSpec[] = [];
    for (const [index, stream] of this.#streams.entries()) {
      const chain: ElementSpec[] = [
        {
          type: "udpsrc",
          name: `in${index}`,
          properties: {
            address: "127.0.0.1",
            port: stream.port,
            caps: stream.caps,
            "buffer-size": 4 * 1024 * 1024,
          },
        },
        { type: stream.codec.depay, name: `unpack${index}` },
        { type: stream.codec.parser, name: `parse${index}` },
        { type: "identity", name: `count${index}`, properties: { silent: true } },
        { type: "rtspserversink", name: `rtsp${index}`, properties: { path: this.name } },
      ];
      elements.push(...chain);
      for (let at = 1; at < chain.length; at++) {
        links.push({ from: chain[at - 1].name!, to: chain[at].name! });
      }
    }
    return {
      id: this.name,
      description: `${this.#publisher.protocol} publish of ${this.format} from ${this.#from}`,
      pipeline: { elements, links },
    };
  }

  #counts(): { frames: number; bytes: number } {
    const read = this.#elements?.counters.map((counter) => counter.read()) ?? [];
    return {
      // Video buffers out of a parser are frames (audio ones when there is no video).
      frames: read[Math.max(0, this.#streams.findIndex((s) => s.media === "video"))]?.buffers ?? 0,
      bytes: read.reduce((sum, counts) => sum + counts.bytes, 0),
    };
  }

  #stats(): Record<string, unknown> {
    const { frames, bytes } = this.#counts();
    return {
      from: this.#from,
      format: this.format,
      recording: this.#recording,
      frames,
      bytesIn: bytes,
      bitrate: this.#rate.next(bytes, performance.now()) ?? 0,
    };
  }

  /** Looks at the publisher and the pipeline; ends the publish when either is gone. */
  watch(): void {
    if (this.#ended !== null) return;
    const now = performance.now();
    // Deleted or stopped by a client: the publish is over (the publisher's packets go nowhere).
    if (this.#started && (!this.#ownsName() || this.#host.find(this.name)?.state !== "PLAYING")) {
      void this.end("removed");
      return;
    }
    const playing = this.#publisher.sending();
    if (!this.#recording) {
      if (playing) {
        this.#recording = true;
        this.#lastIn = { bytes: this.#counts().bytes, at: now };
      } else if (now - this.#announcedAt > START_TIMEOUT_MS) {
        void this.end("publisher never sent");
      }
      return;
    }
    if (!playing) {
      void this.end("publisher left");
      return;
    }
    // Any stream's data: video may pause (a camera on motion) while its audio goes on.
    const { bytes } = this.#counts();
    if (bytes !== this.#lastIn.bytes) {
      this.#lastIn = { bytes, at: now };
    } else if (now - this.#lastIn.at > IDLE_TIMEOUT_MS) {
      void this.end("publisher silent");
    }
  }

  /** Ends the publish once: its stream ends for readers, then its pipeline is deleted. */
  async end(reason: PublishEnd): Promise<void> {
    if (this.#ended !== null) return;
    this.#ended = reason;
    this.#publisher.stop();
    // Still being created: #finish runs once the creation settles.
    if (this.#elements !== null) await this.#finish();
    else if (this.#creationFailed) this.#release();
  }

  /**
   * Waits until what the publisher sent before it left has gone through the pipeline: the
   * counters stand still for QUIET_MS (a busy machine may still hold packets in the socket).
   */
  async #drained(): Promise<void> {
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    let last = this.#counts().bytes;
    let since = performance.now();
    while (performance.now() < deadline && performance.now() - since < QUIET_MS) {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS / 5));
      const bytes = this.#counts().bytes;
      if (bytes !== last) [last, since] = [bytes, performance.now()];
    }
  }

  async #finish(): Promise<void> {
    const elements = this.#elements!;
    if (this.#ownsName() && this.#ended !== "removed") {
      // The EOS goes after each udpsrc, ahead of what it has not read yet: let that arrive first.
      await this.#drained();
      const ended = new Promise<void>((resolve) => {
        const timer = setTimeout(done, DRAIN_TIMEOUT_MS);
        const stop = this.#host.subscribe((event) => {
          if (event.type === "pipelineEos" && event.payload.id === this.name) done();
        });
        function done() {
          clearTimeout(timer);
          stop();
          resolve();
        }
      });
      // UDP carries no end of stream: readers see the end by an EOS sent after each udpsrc.
      const sources = elements.sources.splice(0);
      await Promise.all(
        sources.map((source) =>
          sourceState(source) === "playing" ? endAndRelease(source) : release(source)
        ),
      );
      await ended;
    }
    const { frames, bytes } = this.#counts();
    console.log(
      `Publish '${this.name}' from ${this.#from} over ${this.#publisher.protocol} ended ` +
        `(${this.#ended}): ${frames} frames, ` +
        `${bytes} bytes in ${Math.round(performance.now() - this.#announcedAt)} ms`,
    );
    if (this.#ownsName()) await this.#host.delete(this.name).catch(() => {});
    for (const source of elements.sources.splice(0)) release(source);
    for (const counter of elements.counters) counter.release();
    this.#release();
  }

  /**
   * The pipeline of this name is still this publish's. A client may have deleted it, and a
   * pipeline or a push taken the name since; no other publish can while this one holds it.
   */
  #ownsName(): boolean {
    return this.#host.find(this.name)?.kind === "publish";
  }

  /** Releases the publisher's side and frees the name for the next publisher. */
  #release(): void {
    this.#publisher.release();
    this.#onEnd();
  }
}

/**
 * An RTSP publisher (ANNOUNCE/RECORD): gst-rtsp-server receives its RTP into a record media
 * whose bin sends each stream to its port.
 */
class RtspRecord implements Publisher {
  readonly protocol = "RTSP";
  readonly #name: string;
  readonly #server: RtspServer;
  readonly #ports: number[];
  /** The record media's first udpsink: PLAYING while the publisher records. */
  #recordSink: Pointer | null = null;
  #stopped = false;

  constructor(name: string, server: RtspServer, ports: number[]) {
    this.#name = name;
    this.#server = server;
    this.#ports = ports;
  }

  /** The record media's bin, built once (gst-rtsp-server may ask again for a reader: it gets none). */
  recordBin(): Pointer | null {
    if (this.#recordSink !== null || this.#stopped) return null;
    const chains = this.#ports.map((port, index) => {
      // gst-rtsp-server takes the element named depay{index} as the receiver of stream {index}.
      const entry = makeElement("identity", `depay${index}`)!;
      const out = makeElement("udpsink", `forward${index}`)!;
      const target = { object: out, label: `forward${index}` };
      setProperty(target, "host", "127.0.0.1");
      setProperty(target, "port", port);
      setProperty(target, "sync", false);
      setProperty(target, "async", false);
      return [entry, out];
    });
    const bin = linkedBin(`record-${this.#name}`, chains);
    if (bin !== null) this.#recordSink = retain(chains[0][1]);
    return bin;
  }

  sending(): boolean {
    return this.#recordSink !== null && sourceState(this.#recordSink) === "playing";
  }

  stop(): void {
    this.#stopped = true;
    this.#server.unmountRecord(this.#name);
  }

  release(): void {
    if (this.#recordSink !== null) release(this.#recordSink);
    this.#recordSink = null;
  }
}

/**
 * Takes publishers on the RTSP server: says yes or no to each ANNOUNCE, and runs the publishes.
 * `maxPublishes` bounds how many run at once (GSTREAMER_MAX_PUSHES: pushes and publishes alike).
 */
export class PublishHub {
  readonly #host: PublishHost;
  readonly #server: RtspServer;
  readonly #sessions = new Map<string, PublishSession>();
  readonly #ports = new PortPool();
  readonly #maxPublishes: number;
  readonly #watch: ActiveTimer;

  constructor(host: PublishHost, server: RtspServer, maxPublishes = Infinity) {
    this.#host = host;
    this.#server = server;
    this.#maxPublishes = maxPublishes;
    server.onAnnounce((request) => this.#announce(request));
    this.#watch = new ActiveTimer(WATCH_MS, () => {
      for (const session of this.#sessions.values()) session.watch();
    }, () => this.#sessions.size > 0);
  }

  /** Why a publish of `name` with streams of these SDP encoding names cannot start now, or null. */
  refusal(
    name: string,
    encodings: { media: string; encoding: string; caps?: string }[],
  ): PublishRefusal | null {
    if (!namePattern.test(name)) {
      return {
        status: 400,
        reason: `Bad Request: invalid stream name ${JSON.stringify(name)}: names are ${NAME_RULE}`,
      };
    }
    const conflict = nameConflict(this.#host, name, "publish");
    if (conflict) return { status: 409, reason: `Conflict: ${conflict.message}` };
    // A publish that is ending (its pipeline deleted, its name not yet free) still holds its path.
    if (this.#sessions.has(name)) {
      return {
        status: 409,
        reason: `Conflict: the publish of '${name}' is ending; publish again in a moment`,
      };
    }
    if (encodings.length > MAX_PUBLISH_STREAMS) {
      return {
        status: 400,
        reason: `Bad Request: the publish has ${encodings.length} streams; a publish takes at ` +
          `most ${MAX_PUBLISH_STREAMS} (a video and its audio, say)`,
      };
    }
    const unsupported = encodings.findIndex((stream) => !publishCodecs[stream.encoding]);
    if (unsupported !== -1) {
      const stream = encodings[unsupported];
      return {
        status: 415,
        reason: `Unsupported Media Type: stream ${unsupported} is ${stream.media} ` +
          `${stream.encoding || "with a static payload type (no rtpmap)"}; publish ${ACCEPTED}`,
      };
    }
    for (const [index, stream] of encodings.entries()) {
      const mismatch = streamMismatch(stream, publishCodecs[stream.encoding]);
      if (mismatch !== null) {
        return { status: 415, reason: `Unsupported Media Type: stream ${index} ${mismatch}` };
      }
    }
    if (this.#sessions.size >= this.#maxPublishes) {
      return {
        status: 503,
        reason: `Service Unavailable: ${this.#sessions.size} publishes are running, the ` +
          "server's limit (GSTREAMER_MAX_PUSHES); try again later",
      };
    }
    return null;
  }

  /** Loopback UDP ports for a publisher's streams, or null when none are ready yet. */
  takePorts(count: number): number[] | null {
    return this.#ports.take(count);
  }

  /**
   * Starts the publish of `name` from `publisher`, whose stream i arrives at `streams[i].port`;
   * or says why not (refusal() is asked again: something may have taken the name meanwhile).
   */
  accept(
    name: string,
    from: string,
    streams: (SdpStream & { port: number })[],
    publisher: Publisher,
  ): PublishRefusal | null {
    const refused = this.refusal(name, streams);
    if (refused) return refused;
    const session = new PublishSession(
      this.#host,
      name,
      from,
      streams.map((stream) => ({ ...stream, codec: publishCodecs[stream.encoding] })),
      publisher,
      () => {
        if (this.#sessions.get(name) === session) this.#sessions.delete(name);
      },
    );
    this.#sessions.set(name, session);
    this.#watch.wake();
    session.start();
    console.log(
      `Publish '${name}' of ${session.format} over ${publisher.protocol} from ${from} accepted`,
    );
    return null;
  }

  /** Ends the publish of `name` (its publisher said it leaves); false when there is none. */
  async end(name: string): Promise<boolean> {
    const session = this.#sessions.get(name);
    if (!session) return false;
    await session.end("publisher left");
    return true;
  }

  #announce(request: AnnounceRequest): AnnounceAnswer {
    const name = request.path;
    const refused = this.refusal(name, request.streams);
    if (refused) return refused;
    const ports = this.#ports.take(request.streams.length);
    if (ports === null) {
      return { status: 503, reason: "Service Unavailable: no free UDP port yet; try again" };
    }
    const record = new RtspRecord(name, this.#server, ports);
    const streams = request.streams.map((stream, index) => ({ ...stream, port: ports[index] }));
    const accepted = this.accept(name, request.from, streams, record);
    return accepted ?? { record: () => record.recordBin() };
  }

  /** Ends every publish (the server is stopping). */
  async close(): Promise<void> {
    this.#watch.close();
    await Promise.all([...this.#sessions.values()].map((session) => session.end("removed")));
  }
}
