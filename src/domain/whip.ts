/**
 * WebRTC publishing (WHIP, RFC 9725): a browser or OBS 30+ sends H.264 video (and Opus audio)
 * to POST /whip/{name}; the stream is then a publish like an RTSP one (publish.ts), served at
 * rtsp://HOST:RTSP_PORT/{name}, over WHEP and HLS, and listed in getPipelines and stats.
 *
 * Each publisher has a session pipeline of the server's own that hands the RTP webrtcbin
 * receives (decrypted, in order) to the publish's loopback UDP ports, one per stream:
 *
 *   webrtcbin  webrtc.src_{m-line} ! identity ! udpsink 127.0.0.1:PORT
 *
 * No JS touches a buffer, and nothing is transcoded: the answer offers back only H.264 in
 * packetization mode 1 and Opus, so that is what the publisher sends.
 */
import { ActiveTimer } from "./active_timer.ts";
import { type PeerConnectionState, WebRtcPeer } from "../gst/webrtc.ts";
import { errorMessage } from "./errors.ts";
import { OwnPipelines } from "./own_pipelines.ts";
import type { ManagedPipeline } from "./pipeline.ts";
import type { Publisher, PublishHub } from "./publish.ts";
import { chooseH264, chooseOpus, offeredMedia, offerProblem, onlyFormat } from "./sdp.ts";
import type { ElementSpec, LinkSpec } from "./spec.ts";
import { answerOffer, type IceOptions, webrtcbinSpec, WebRtcError } from "./webrtc.ts";

/**
 * Browsers send a key frame only when asked (a PLI), and an RTSP reader that joins needs one:
 * this often the publisher is asked, as MediaMTX does for its WebRTC sources.
 */
const KEY_FRAME_INTERVAL_MS = 2_000;
const WATCH_MS = 250;

export interface WhipOptions extends IceOptions {
  publishers: PublishHub;
  /** The media directory (the session pipelines read no files, but a policy needs one). */
  mediaDir: string;
}

/** A stream the publisher will send: its m-line, the format answered, and its RTP caps. */
interface OfferedStream {
  mline: number;
  media: "video" | "audio";
  encoding: "H264" | "OPUS";
  payloadType: number;
  caps: string;
}

/** The streams of a WHIP offer the server takes, or a 4xx saying what it takes instead. */
function offeredStreams(offer: string): OfferedStream[] {
  const media = offeredMedia(offer);
  if (media.length === 0) throw new WebRtcError(400, "The body is not an SDP offer with m-lines");
  const streams = media.map(({ media, formats }, mline): OfferedStream => {
    if (media === "video") {
      const h264 = chooseH264(formats);
      if (h264 === null) {
        throw new WebRtcError(
          406,
          `The offer's video (m-line ${mline}) has no H.264 in packetization mode 1 ` +
            `(it offers ${encodings(formats)}); publish H.264 over WHIP`,
        );
      }
      return {
        mline,
        media,
        encoding: "H264",
        payloadType: h264.payloadType,
        caps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264," +
          `payload=${h264.payloadType}`,
      };
    }
    if (media === "audio") {
      const opus = chooseOpus(formats);
      if (opus === null) {
        throw new WebRtcError(
          406,
          `The offer's audio (m-line ${mline}) has no Opus (it offers ${encodings(formats)}); ` +
            "publish Opus audio over WHIP",
        );
      }
      return {
        mline,
        media,
        encoding: "OPUS",
        payloadType: opus.payloadType,
        caps: "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS," +
          `payload=${opus.payloadType}`,
      };
    }
    throw new WebRtcError(
      406,
      `The offer has a ${media} m-line (${mline}); WHIP here takes one video and one audio`,
    );
  });
  for (const kind of ["video", "audio"]) {
    if (streams.filter((stream) => stream.media === kind).length > 1) {
      throw new WebRtcError(406, `The offer has more than one ${kind} m-line; send one of each`);
    }
  }
  return streams;
}

function encodings(formats: { encoding: string }[]): string {
  const names = [...new Set(formats.map((f) => f.encoding).filter((e) => e !== ""))];
  return names.length > 0 ? names.join(", ") : "no named format";
}

/** One publisher's WebRTC side: its session pipeline, seen by the publish as a Publisher. */
class WhipSession implements Publisher {
  readonly protocol = "WHIP";
  #keyFrameAt = 0;
  #released = false;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly pipeline: ManagedPipeline,
    readonly peer: WebRtcPeer,
    readonly streams: OfferedStream[],
    private readonly onRelease: (released: Promise<void>) => void,
  ) {}

  connectionState(): PeerConnectionState {
    if (this.#released) return "closed";
    try {
      return this.peer.connectionState();
    } catch {
      return "failed";
    }
  }

  /** Connected, or disconnected for now (ICE may recover; a publisher gone is a silent one). */
  sending(): boolean {
    const state = this.connectionState();
    return state === "connected" || state === "disconnected";
  }

  /** Asks the publisher for a key frame (a PLI) for each video stream, when due or `now`. */
  requestKeyFrame(now = false): void {
    const at = performance.now();
    if (this.#released || (!now && at - this.#keyFrameAt < KEY_FRAME_INTERVAL_MS)) return;
    this.#keyFrameAt = at;
    for (const stream of this.streams) {
      if (stream.media !== "video") continue;
      // Up from the identity after webrtcbin: its RTP session turns it into a PLI.
      const element = this.pipeline.element(`take${stream.mline}`).pointer;
      this.pipeline.gst.requestKeyFrame(element).catch(() => {}); // released meanwhile
    }
  }

  stop(): void {}

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.peer.release();
    this.onRelease(this.pipeline.release());
  }
}

export class WhipHub {
  readonly #options: WhipOptions;
  /** Sessions by id (the WHIP resource) and by stream name. */
  readonly #sessions = new Map<string, WhipSession>();
  /** Session pipelines being released: the server waits for them when it stops. */
  readonly #releasing = new Set<Promise<void>>();
  readonly #pipelines: OwnPipelines;
  readonly #watch: ActiveTimer;

  constructor(options: WhipOptions) {
    this.#options = options;
    // The server's own pipelines: every element it uses is its choice, not a client's.
    this.#pipelines = new OwnPipelines(options.mediaDir);
    this.#watch = new ActiveTimer(WATCH_MS, () => {
      for (const session of this.#sessions.values()) {
        if (session.sending()) session.requestKeyFrame();
      }
    }, () => this.#sessions.size > 0);
  }

  /**
   * Takes a WHIP offer to publish as `name` from `from`: the session's id and the SDP answer.
   * Refusals are WebRtcErrors with the HTTP status the publish would get over RTSP.
   */
  async publish(
    name: string,
    offer: string,
    from: string,
  ): Promise<{ id: string; answer: string }> {
    const streams = offeredStreams(offer);
    const publishers = this.#options.publishers;
    const refusal = () => {
      const refused = publishers.refusal(name, streams);
      return refused && new WebRtcError(refused.status, refused.reason.replace(/^[^:]+: /, ""));
    };
    const early = refusal();
    if (early) throw early;
    const problem = offerProblem(offer, streams.map((stream) => stream.mline), "WHIP");
    if (problem !== null) throw new WebRtcError(400, problem);
    const ports = publishers.takePorts(streams.length);
    if (ports === null) throw new WebRtcError(503, "No free UDP port yet; try again");
    const prepared = streams.reduce(
      (sdp, stream) => onlyFormat(sdp, stream.mline, stream.payloadType),
      offer,
    );

    const id = crypto.randomUUID();
    let pipeline: ManagedPipeline | undefined;
    let peer: WebRtcPeer | undefined;
    try {
      pipeline = await this.#build(id, streams, ports);
      peer = new WebRtcPeer(pipeline.element("webrtc").pointer);
      peer.gatherOn(this.#options.iceAddresses, this.#options.icePorts);
      await pipeline.start("playing");
      const answer = await answerOffer(peer, prepared, this.#options);
      const session = new WhipSession(
        id,
        name,
        pipeline,
        peer,
        streams,
        (released) => {
          this.#sessions.delete(id);
          const settled = released.catch((error) =>
            console.error(`WHIP session ${id}: releasing its pipeline failed:`, error)
          ).finally(() => this.#releasing.delete(settled));
          this.#releasing.add(settled);
        },
      );
      // Asked again now: another publisher may have taken the name while this one negotiated.
      const late = refusal() ??
        (() => {
          const refused = publishers.accept(
            name,
            from,
            streams.map((stream, index) => ({ ...stream, port: ports[index] })),
            session,
          );
          return refused && new WebRtcError(refused.status, refused.reason);
        })();
      if (late) throw late;
      this.#sessions.set(id, session);
      this.#watch.wake();
      return { id, answer };
    } catch (error) {
      if (!this.#sessions.has(id)) {
        peer?.release();
        await pipeline?.release();
      }
      if (error instanceof WebRtcError) throw error;
      throw new WebRtcError(502, `WebRTC negotiation failed: ${errorMessage(error)}`);
    }
  }

  /** Ends a WHIP session (its DELETE): the publish ends as when an RTSP publisher leaves. */
  async stop(id: string, name?: string): Promise<boolean> {
    const session = this.#sessions.get(id);
    if (!session || (name !== undefined && session.name !== name)) return false;
    await this.#options.publishers.end(session.name);
    return true;
  }

  /** Asks the WHIP publisher of `name` for a key frame now; false when `name` is not one. */
  requestKeyFrame(name: string): boolean {
    const session = [...this.#sessions.values()].find((s) => s.name === name);
    session?.requestKeyFrame(true);
    return session !== undefined;
  }

  pollBuses(): void {
    for (const session of this.#sessions.values()) session.pipeline.drainBus();
  }

  /** Stops asking for key frames; waits for the sessions' pipelines (their publishes ended). */
  async close(): Promise<void> {
    this.#watch.close();
    await Promise.all(this.#releasing);
  }

  async #build(id: string, streams: OfferedStream[], ports: number[]): Promise<ManagedPipeline> {
    const elements: ElementSpec[] = [webrtcbinSpec(this.#options)];
    const links: LinkSpec[] = [];
    for (const [index, stream] of streams.entries()) {
      elements.push(
        { type: "identity", name: `take${stream.mline}`, properties: { silent: true } },
        {
          type: "udpsink",
          name: `out${stream.mline}`,
          properties: { host: "127.0.0.1", port: ports[index], sync: false, async: false },
        },
      );
      // webrtcbin names the pad of what it receives by the m-line.
      links.push(
        { from: `webrtc.src_${stream.mline}`, to: `take${stream.mline}` },
        { from: `take${stream.mline}`, to: `out${stream.mline}` },
      );
    }
    // The publish sees the publisher leave by its connection and its counters.
    return await this.#pipelines.build(`whip-${id}`, elements, links, (event) => {
      if (event.type === "pipelineError") {
        console.error(`WHIP session ${id}: ${event.payload.message}`);
      }
    });
  }
}
