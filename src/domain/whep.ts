/**
 * WebRTC playback (WHEP, draft-ietf-wish-whep) of any served RTSP path: a pipeline of the
 * server's own per viewer, which reads the path from our RTSP server over loopback and sends it
 * through webrtcbin. No JS touches a buffer; H.264 goes through without transcoding.
 *
 *   rtspsrc (loopback, TCP) ! rtph264depay ! h264parse ! rtph264pay ! webrtcbin
 *   rtspsrc. ! rtpopusdepay ! rtpopuspay ! webrtcbin.    (Opus audio, as it is)
 *   rtspsrc. ! rtpmp4gdepay ! aacparse ! avdec_aac ! ... ! opusenc ! rtpopuspay ! webrtcbin.
 *
 * Audio goes out as Opus, transcoded from AAC (the one audio codec besides Opus a path serves),
 * when the path has audio and the viewer's offer takes Opus.
 *
 * The answer is made without trickle ICE (webrtc.ts).
 */
import { ActiveTimer } from "./active_timer.ts";
import { type PeerConnectionState, WebRtcPeer } from "../gst/webrtc.ts";
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
import {
  chooseH264,
  chooseOpus,
  offeredMedia,
  offerProblem,
  preferFormat,
  withoutFmtpParameter,
} from "./sdp.ts";
import type { ElementSpec } from "./spec.ts";
import type { PipelineEvent } from "./types.ts";
import { answerOffer, type IceOptions, until, webrtcbinSpec, WebRtcError } from "./webrtc.ts";

/** How audio a path serves becomes Opus: by the depayloader it needs, the elements up to Opus. */
const audioChains: Record<string, ElementSpec[]> = {
  rtpopusdepay: [{ type: "rtpopusdepay" }],
  rtpmp4gdepay: [
    { type: "rtpmp4gdepay" },
    { type: "aacparse" },
    { type: "avdec_aac" },
    { type: "audioconvert" },
    { type: "audioresample" },
    { type: "opusenc" },
  ],
};

/** webrtcbin ties the transceiver of its pad sink_N to the offer's m-line N. */
function senderPad(mline: number): string {
  return `sink_${mline}`;
}

/** The longest a viewer's stream may take to reach webrtcbin before the offer is answered. */
const STREAM_TIMEOUT_MS = 10_000;
/** A session that does not connect in this time, or stays disconnected this long, is ended. */
const CONNECT_TIMEOUT_MS = 30_000;
const DISCONNECTED_TIMEOUT_MS = 5_000;
/**
 * A viewer whose RTCP receiver reports stop for this long is gone (a killed tab: webrtcbin 1.22
 * keeps such a connection "connected"; browsers report every second or so).
 */
const SILENT_TIMEOUT_MS = 6_000;
/**
 * How long a viewer sent nothing (its path paused) is kept with no new receiver report: it has
 * nothing new to report, but a closed tab must still be let go.
 */
const IDLE_SILENT_TIMEOUT_MS = 300_000;
/** How often a session that has not connected yet is looked at: its key frame is asked for soon. */
const WATCH_MS = 20;
/** How often a connected session is looked at. */
const WATCH_CONNECTED_MS = 500;
/** How often a connected viewer's receiver reports are read. */
const REPORT_READ_MS = 1_000;

export interface WhepOptions extends IceOptions, LoopbackReader {
  /** The media directory (the session pipelines read no files, but a policy needs one). */
  mediaDir: string;
  maxSessions: number;
  /** The depayloaders a reader of `path` needs, one per stream: which audio it has. */
  pathDepayloaders?: (path: string) => string[];
  /** Asks whatever produces `path` for a key frame, when a viewer has connected. */
  requestKeyFrame?: (path: string) => void;
}

interface Session {
  id: string;
  path: string;
  pipeline: ManagedPipeline;
  peer: WebRtcPeer;
  createdAt: number;
  connectedOnce: boolean;
  disconnectedSince: number | null;
  /** Set by a bus error or end of stream: the session ends at the next watch. */
  ended: string | null;
  /**
   * The viewer's latest receiver report, and when it last changed or the viewer was last sent
   * nothing (a paused path: silence is then no sign of a viewer gone).
   */
  report: string | null;
  reportChangedAt: number;
  /** When the report last changed, whatever was sent. */
  reportSeenAt: number;
  packetsSent: number;
  reportReadAt: number;
  /** The read of webrtcbin's stats under way (it never rejects). */
  reading: Promise<void> | null;
  watchedAt: number;
}

export class WhepHub {
  readonly #options: WhepOptions;
  readonly #sessions = new Map<string, Session>();
  /** Sessions being set up: counted against the limit, not yet answerable. */
  #pending = 0;
  readonly #pipelines: OwnPipelines;
  readonly #watch: ActiveTimer;

  constructor(options: WhepOptions) {
    this.#options = options;
    // The server's own pipelines: every element it uses is its choice, not a client's.
    this.#pipelines = new OwnPipelines(options.mediaDir);
    this.#watch = new ActiveTimer(
      WATCH_MS,
      () => this.#watchSessions(),
      () => this.#sessions.size > 0,
    );
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** WebRTC viewers per path. */
  viewersByPath(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { path } of this.#sessions.values()) counts.set(path, (counts.get(path) ?? 0) + 1);
    return counts;
  }

  /** Answers a WHEP offer for `path`: the session's id and the SDP answer. */
  async play(path: string, offer: string): Promise<{ id: string; answer: string }> {
    if (!this.#options.rtsp.isMounted(path)) {
      throw new WebRtcError(
        404,
        `Nothing is served at '/${path}' now; WHEP plays a served RTSP path ` +
          `(${SERVED_PATH_KINDS})`,
      );
    }
    const notReady = this.#options.rtsp.notReadyReason(path);
    if (notReady !== null) {
      throw new WebRtcError(503, `'/${path}' cannot be played yet: ${notReady}`);
    }
    if (this.#sessions.size + this.#pending >= this.#options.maxSessions) {
      throw new WebRtcError(
        503,
        `${this.#options.maxSessions} WebRTC sessions are open, the server's limit ` +
          "(GSTREAMER_MAX_WEBRTC_SESSIONS); try again later",
      );
    }
    const depayloaders = this.#options.pathDepayloaders?.(path) ?? [];
    const noH264 = noH264Reason(path, depayloaders);
    if (noH264 !== null) {
      throw new WebRtcError(406, `${noH264}; WHEP here sends H.264 video without transcoding`);
    }
    const media = offeredMedia(offer);
    const video = media.findIndex((m) => m.media === "video");
    if (video < 0) throw new WebRtcError(400, "The offer has no video m-line");
    const h264 = chooseH264(media[video].formats);
    if (h264 === null) {
      throw new WebRtcError(
        406,
        "The offer's video m-line has no H.264 in packetization mode 1; this server sends H.264 " +
          "without transcoding",
      );
    }
    const problem = offerProblem(offer, [video], "WHEP");
    if (problem !== null) throw new WebRtcError(400, problem);
    // webrtcbin 1.22 matches an m-line by its first format and compares profile-level-id as
    // text: the chosen format goes first, and the answer carries the stream's own profile.
    let prepared = withoutFmtpParameter(
      preferFormat(offer, video, h264.payloadType),
      h264.payloadType,
      "profile-level-id",
    );
    const pathAudio = depayloaders.find((depay) => depay in audioChains) ?? null;
    const audioLine = media.findIndex((m) => m.media === "audio");
    const opus = audioLine < 0 || offerProblem(offer, [audioLine], "WHEP") !== null
      ? null
      : chooseOpus(media[audioLine].formats);
    const audio = pathAudio !== null && opus !== null
      ? { depay: pathAudio, payloadType: opus.payloadType, mline: audioLine }
      : null;
    if (audio) prepared = preferFormat(prepared, audioLine, audio.payloadType);

    this.#pending++;
    const id = crypto.randomUUID();
    let pipeline: ManagedPipeline | undefined;
    let peer: WebRtcPeer | undefined;
    const failures: string[] = [];
    try {
      const videoPad = senderPad(video);
      const audioPad = audio ? senderPad(audio.mline) : null;
      const sent = { mline: video, payloadType: h264.payloadType };
      pipeline = await this.#build(id, path, sent, pathAudio, audio, (event) => {
        if (event.type === "pipelineError") failures.push(event.payload.message);
        const session = this.#sessions.get(id);
        if (session) session.ended ??= endOfRun(event);
      });
      peer = new WebRtcPeer(pipeline.element("webrtc").pointer);
      peer.gatherOn(this.#options.iceAddresses, this.#options.icePorts);
      peer.configureSender(
        videoPad,
        "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000," +
          "packetization-mode=(string)1",
      );
      if (audioPad) {
        peer.configureSender(
          audioPad,
          "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000",
        );
      }
      await pipeline.start("playing");
      await until(
        () => {
          pipeline!.drainBus();
          if (failures.length > 0) throw new WebRtcError(502, this.#streamFailed(path, failures));
          return peer!.hasCaps(videoPad) && (audioPad === null || peer!.hasCaps(audioPad));
        },
        STREAM_TIMEOUT_MS,
        () => this.#streamFailed(path, failures),
      );
      const answer = await answerOffer(peer, prepared, this.#options);
      this.#sessions.set(id, {
        id,
        path,
        pipeline,
        peer,
        createdAt: performance.now(),
        connectedOnce: false,
        disconnectedSince: null,
        ended: null,
        report: null,
        reportChangedAt: performance.now(),
        reportSeenAt: performance.now(),
        packetsSent: 0,
        reportReadAt: 0,
        reading: null,
        watchedAt: 0,
      });
      this.#watch.wake();
      return { id, answer };
    } catch (error) {
      peer?.release();
      await pipeline?.release();
      if (error instanceof WebRtcError) throw error;
      throw new WebRtcError(502, `WebRTC negotiation failed: ${errorMessage(error)}`);
    } finally {
      this.#pending--;
    }
  }

  /**
   * Ends the sessions of `path`, whose pipeline stopped serving it: webrtcbin takes the end of
   * its stream and tells the viewer nothing, so a session would live on until its silence ended it.
   */
  endPath(path: string, reason: string): void {
    for (const session of this.#sessions.values()) {
      if (session.path === path) void this.#end(session, reason);
    }
  }

  /** Ends a session (its DELETE), of `path` when given; false when there is no such session. */
  async stop(id: string, path?: string): Promise<boolean> {
    const session = this.#sessions.get(id);
    if (!session || (path !== undefined && session.path !== path)) return false;
    await this.#end(session, "the client ended it");
    return true;
  }

  /** Ends every session (the server stops). */
  async closeAll(): Promise<void> {
    this.#watch.close();
    await Promise.all([...this.#sessions.values()].map((s) => this.#end(s, "the server stops")));
  }

  pollBuses(): void {
    for (const session of this.#sessions.values()) session.pipeline.drainBus();
  }

  async #build(
    id: string,
    path: string,
    video: { mline: number; payloadType: number },
    pathAudio: string | null,
    audio: { depay: string; payloadType: number; mline: number } | null,
    emit: (event: PipelineEvent) => void,
  ): Promise<ManagedPipeline> {
    const elements: ElementSpec[] = [
      loopbackReaderSpec(this.#options, path),
      { type: "rtph264depay", name: "depay" },
      // Parameter sets with every key frame, for a decoder that starts at one: put in by the
      // parser, once an access unit. rtph264pay 1.22 puts them before every key frame slice, which
      // split a key frame of several slices in two (corrupt frames).
      { type: "h264parse", name: "parse", properties: { "config-interval": -1 } },
      {
        type: "rtph264pay",
        name: "pay",
        properties: { pt: video.payloadType, "aggregate-mode": "zero-latency" },
      },
      webrtcbinSpec(this.#options),
    ];
    const links = [
      ...chainLinks(["source", "depay", "parse"]),
      { from: "parse", to: "pay", caps: "video/x-h264,alignment=au" },
      ...chainLinks(["pay", `webrtc.${senderPad(video.mline)}`]),
    ];
    if (audio) {
      const [first, ...rest] = audioChains[audio.depay];
      const audioElements: ElementSpec[] = [
        { ...first, name: "audio-depay" },
        ...rest.map((spec, at) => ({ ...spec, name: `audio-${at}` })),
        { type: "rtpopuspay", name: "audio-pay", properties: { pt: audio.payloadType } },
      ];
      elements.push(...audioElements);
      links.push(
        ...chainLinks([
          "source",
          ...audioElements.map((e) => e.name!),
          `webrtc.${senderPad(audio.mline)}`,
        ]),
      );
    } else if (pathAudio !== null) {
      // Audio the viewer does not take: read and dropped (an unlinked stream stops rtspsrc).
      elements.push(
        { type: pathAudio, name: "audio-depay" },
        { type: "fakesink", name: "audio-dropped", properties: { sync: false, async: false } },
      );
      links.push(...chainLinks(["source", "audio-depay", "audio-dropped"]));
    }
    return await this.#pipelines.build(`whep-${id}`, elements, links, emit, STREAM_TIMEOUT_MS);
  }

  #streamFailed(path: string, failures: string[]): string {
    return failures.length > 0
      ? `The stream at '/${path}' could not be sent over WebRTC: ${failures[0]} ` +
        "(WHEP sends H.264 video)"
      : `No H.264 video from '/${path}' within ${
        STREAM_TIMEOUT_MS / 1000
      } s (WHEP sends H.264 video)`;
  }

  #watchSessions(): void {
    const now = performance.now();
    for (const session of this.#sessions.values()) {
      if (session.connectedOnce && now - session.watchedAt < WATCH_CONNECTED_MS) continue;
      session.watchedAt = now;
      let state: PeerConnectionState;
      try {
        state = session.peer.connectionState();
      } catch {
        state = "failed";
      }
      if (state === "connected") {
        if (!session.connectedOnce) {
          session.connectedOnce = true;
          session.reportChangedAt = now;
          session.reportSeenAt = now;
          this.#options.requestKeyFrame?.(session.path);
        }
        session.disconnectedSince = null;
        if (now - session.reportReadAt > REPORT_READ_MS) this.#readReport(session);
      } else if (state === "disconnected") session.disconnectedSince ??= now;
      const reason = session.ended ??
        (state === "failed" || state === "closed"
          ? `the connection ${state}`
          : session.disconnectedSince !== null &&
              now - session.disconnectedSince > DISCONNECTED_TIMEOUT_MS
          ? "the viewer went away"
          : !session.connectedOnce && now - session.createdAt > CONNECT_TIMEOUT_MS
          ? "the viewer never connected"
          : session.connectedOnce && now - session.reportChangedAt > SILENT_TIMEOUT_MS
          ? "the viewer went away (no receiver reports)"
          : session.connectedOnce && now - session.reportSeenAt > IDLE_SILENT_TIMEOUT_MS
          ? `the viewer went away (no receiver report in ${IDLE_SILENT_TIMEOUT_MS / 60_000} min)`
          : null);
      if (reason !== null) void this.#end(session, reason);
    }
  }

  #readReport(session: Session): void {
    if (session.reading !== null) return;
    session.reportReadAt = performance.now();
    session.reading = session.peer.lastReceiverReport().then(({ report, packetsSent }) => {
      const now = performance.now();
      if (report !== session.report) session.reportSeenAt = now;
      if (report !== session.report || packetsSent === session.packetsSent) {
        session.reportChangedAt = now;
      }
      session.report = report;
      session.packetsSent = packetsSent;
    }, () => {}).finally(() => session.reading = null);
  }

  async #end(session: Session, reason: string): Promise<void> {
    if (!this.#sessions.delete(session.id)) return;
    console.log(`WHEP session ${session.id} on '/${session.path}' ended: ${reason}`);
    // Not while webrtcbin reads its RTP sessions' stats: GStreamer 1.22 empties an RTP session's
    // sources at PAUSED->READY without its lock, and a stats read walking them then fails with a
    // CRITICAL (fixed upstream in 1.22.3, 943a53cc "race conditions leading to critical warnings").
    await session.reading;
    session.peer.release();
    await session.pipeline.release();
  }
}
