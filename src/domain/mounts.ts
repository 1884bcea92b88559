/**
 * RTSP serving for a pipeline's `rtspserversink` elements: the relays in the pipeline, the
 * media built for clients, and the RTSP paths with their own lifetime (RtspMounts).
 *
 * In the pipeline an rtspserversink becomes valve ! payloader ! udpsink to a
 * loopback port; the media that gst-rtsp-server builds for clients is
 * udpsrc ! rtpjitterbuffer ! depayloader ! payloader (pay0, pay1, ...). The relay is plain
 * RTP over loopback because proxysink in GStreamer 1.22 does not replay
 * stream-start, caps and segment to a proxysrc that attaches mid-stream (a
 * late RTSP client), while udpsrc makes its own. No JS touches a buffer.
 */
import { ActiveTimer } from "./active_timer.ts";
import dgram from "node:dgram";
import type { JsonValue } from "../gst/gvalue.ts";
import {
  endAndRelease,
  hasParent,
  linkedBin,
  makeElement,
  padCaps,
  release,
  retain,
  sourceState,
} from "../gst/element.ts";
import { linkElements, type Pipeline } from "../gst/pipeline.ts";
import type { Pointer } from "../gst/native.ts";
import { setProperty } from "../gst/property.ts";
import type { DescribeCheck, RtspServer } from "../gst/rtsp.ts";
import type { ElementSummary, InspectedElement } from "../gst/introspect.ts";
import { NAME_RULE } from "./names.ts";
import { DomainError } from "./errors.ts";
import type { ElementSpec, LinkSpec } from "./spec.ts";

/** The pseudo element that serves the stream reaching it at rtsp://HOST:RTSP_PORT/{path}. */
export const RTSP_SINK = "rtspserversink";

interface RtpFormat {
  pay: string;
  depay: string;
  /** RTP caps a depayloader can start from before the stream has negotiated; absent where it needs more (AAC). */
  rtpCaps?: string;
  /** A static payload type, where the format has one that clients expect. */
  pt?: number;
  /**
   * Payloader settings. config-interval 1: parameter sets before a key frame, at most once a
   * second, for late joiners (RTSP readers have them in the SDP too). -1 (with every key frame)
   * puts them before every key frame slice in GStreamer 1.22, which split a key frame of several
   * slices in two: corrupt frames for every reader.
   */
  properties?: Record<string, JsonValue>;
}

const formats: Record<string, RtpFormat> = {
  "video/x-h264": {
    rtpCaps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264",
    pay: "rtph264pay",
    depay: "rtph264depay",
    properties: { "config-interval": 1 },
  },
  "video/x-h265": {
    rtpCaps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=H265",
    pay: "rtph265pay",
    depay: "rtph265depay",
    properties: { "config-interval": 1 },
  },
  "video/x-vp8": {
    rtpCaps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8",
    pay: "rtpvp8pay",
    depay: "rtpvp8depay",
  },
  "video/x-vp9": {
    rtpCaps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP9",
    pay: "rtpvp9pay",
    depay: "rtpvp9depay",
  },
  "image/jpeg": {
    rtpCaps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG",
    pay: "rtpjpegpay",
    depay: "rtpjpegdepay",
  },
  // Static payload type 33 (RFC 3551): clients treat MP2T under a dynamic type as unknown data.
  "video/mpegts": {
    rtpCaps: "application/x-rtp,media=video,clock-rate=90000,encoding-name=MP2T",
    pay: "rtpmp2tpay",
    depay: "rtpmp2tdepay",
    pt: 33,
  },
  "audio/x-opus": {
    rtpCaps: "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS",
    pay: "rtpopuspay",
    depay: "rtpopusdepay",
  },
  "audio/mpeg": { pay: "rtpmp4gpay", depay: "rtpmp4gdepay" },
};

export const servableMediaTypes = Object.keys(formats);

/** rtspserversink as listElements lists it: a type of the server's own, which no plugin has. */
export const rtspSinkSummary: ElementSummary = {
  name: RTSP_SINK,
  longName: "RTSP server sink",
  klass: "Sink/Network",
  rank: 0,
  plugin: "gstreamer-control-server",
};

/** rtspserversink as inspectElement tells it: its `path`, and the encoded formats it serves. */
export function rtspSinkInspection(): InspectedElement {
  const text = (name: string, nick: string, blurb: string) => ({
    name,
    nick,
    blurb,
    type: "gchararray",
    flags: ["readable", "writable"],
    default: null,
  });
  return {
    ...rtspSinkSummary,
    description: "Serves what reaches it at rtsp://HOST:RTSP_PORT/{path}, and over WHEP and HLS; " +
      "inside the pipeline it is a valve, a payloader and a udpsink",
    author: "",
    properties: [
      text("name", "Name", "The name of the object"),
      text("path", "Path", `The path it is served at: ${NAME_RULE}, free on this server`),
    ],
    padTemplates: [
      { name: "sink", direction: "sink", presence: "always", caps: servableMediaTypes.join("; ") },
    ],
  };
}

/**
 * Why a reader that takes H.264 cannot read a path whose streams need `depayloaders` (one per
 * stream), or null when it can, or when they are not known.
 */
export function noH264Reason(path: string, depayloaders: string[]): string | null {
  if (depayloaders.length === 0 || depayloaders.includes("rtph264depay")) return null;
  return `'/${path}' serves no H.264 video (its streams need ${depayloaders.join(", ")})`;
}

export function rtpFormat(mediaType: string | null): RtpFormat | undefined {
  return mediaType === null ? undefined : formats[mediaType];
}

/**
 * One stream of a mount, in the pipeline: valve ! payloader ! udpsink. The
 * valve stays closed while no client's media exists, so a stream nobody
 * watches is not payloaded and sent.
 */
export interface Relay {
  format: RtpFormat;
  valve: Pointer;
  payloader: Pointer;
  udpsink: Pointer;
  port: number;
}

/** Who watches a pipeline's paths. */
export interface Viewers {
  rtsp: number;
  webrtc: number;
}

/** A served path: its relays and the udpsrc elements of the medias built for its clients. */
export interface Mount {
  relays: Relay[];
  mediaSources: Pointer[];
  /** Its relays stay open with no reader (holdRelaysOpen). */
  heldOpen: boolean;
  /** Its pipeline is paused, or going there: a DESCRIBE is refused (notPlayingCheck). */
  paused: boolean;
}

/** The names of the relay's valve, payloader and udpsink that stand for rtspserversink `name`. */
export function relayElementNames(name: string): [string, string, string] {
  return [name, `${name}-pay`, `${name}-relay`];
}

/** Adds valve ! payloader ! udpsink for a stream of `mediaType` to the pipeline; the valve is the chain's entry. */
export function addRelay(pipeline: Pipeline, name: string, mediaType: string | null): Relay | null {
  const format = rtpFormat(mediaType);
  if (format === undefined) return null;
  const [valveName, payloaderName, udpsinkName] = relayElementNames(name);
  const valve = pipeline.addElement("valve", valveName);
  const payloader = pipeline.addElement(format.pay, payloaderName);
  const udpsink = pipeline.addElement("udpsink", udpsinkName);
  if (valve === null || payloader === null || udpsink === null) {
    throw new Error(`Element 'valve', '${format.pay}' or 'udpsink' is missing`);
  }
  const valveTarget = { object: valve, label: name };
  // Sticky events pass a closed valve, so the payloader is ready when the valve opens.
  setProperty(valveTarget, "drop-mode", "forward-sticky-events");
  setProperty(valveTarget, "drop", true);
  configurePayloader(format, payloader, payloaderName);
  const relayTarget = { object: udpsink, label: udpsinkName };
  setProperty(relayTarget, "host", "127.0.0.1");
  // Until a start tells whether the pipeline is live (timeRelays).
  setProperty(relayTarget, "async", false);
  setProperty(relayTarget, "sync", false);
  if (!linkElements(valve, payloader) || !linkElements(payloader, udpsink)) {
    throw new Error(`Linking valve ! ${format.pay} ! udpsink failed`);
  }
  return { format, valve, payloader, udpsink, port: 0 };
}

/**
 * How a relay's udpsink times what it sends, once a start knows whether its pipeline is live (until
 * then, as for a live one).
 * - Live: each buffer as it comes, its source gives the pace (no sync), and no preroll (no async):
 *   its valve is closed while nobody reads, and a live pipeline would never reach PLAYING with a
 *   sink waiting to preroll.
 * - Non-live (a file, a test source): on the clock, as a player would, and with a preroll. Unsynced,
 *   a file went by as fast as it could be read, before a reader could join, and an encoder ran flat
 *   out; so these relays stay open with no reader too (holdRelaysOpen), since a closed valve paces
 *   nothing. With a preroll, a flushing seek makes the pipeline take the new position's time (lost
 *   state, then ASYNC_DONE with a reset time), as for any sink that prerolls: without it, what came
 *   after a seek went out in a burst until it caught up with the clock.
 */
export function timeRelays(relays: Relay[], live: boolean): void {
  for (const relay of relays) {
    const target = { object: relay.udpsink, label: "relay" };
    setProperty(target, "sync", !live);
    setProperty(target, "async", !live);
  }
}

export function setRelaysOpen(relays: Relay[], open: boolean): void {
  for (const relay of relays) {
    setProperty({ object: relay.valve, label: "valve" }, "drop", !open);
  }
}

/** The RTP caps each relay's clients start from; undefined for a stream that has not started. */
function relayCaps(relays: Relay[]): (string | undefined)[] {
  return relays.map((relay) => padCaps(relay.payloader, "src", "current") ?? relay.format.rtpCaps);
}

/**
 * A DESCRIBE of a path whose stream has not started yet is refused with 503 and the reason: the
 * media it would get has no streams (an SDP without them), and stays cached while held. So is one
 * of a paused pipeline's path, whose new media could not start until it plays (gst-rtsp-server
 * would wait 20 s for it, then answer a bare 503); readers already there stay and go on with it.
 */
export function notPlayingCheck(path: string, mount: Mount): DescribeCheck {
  return () => {
    if (mount.paused) {
      return {
        status: 503,
        reason: `Service Unavailable: '/${path}' is paused; try again once its pipeline plays`,
      };
    }
    const waiting = relayCaps(mount.relays).findIndex((caps) => caps === undefined);
    if (waiting === -1) return null;
    return {
      status: 503,
      reason: `Service Unavailable: stream ${waiting} of '/${path}' has not started yet; ` +
        "try again in a moment",
    };
  };
}

/** The media builder for a mount: builds the clients' media and opens the relays that feed it. */
export function mediaBuilder(path: string, mount: Mount): () => Pointer | null {
  return () => {
    const bin = buildMediaBin(path, mount.relays, mount.mediaSources);
    if (bin !== null) setRelaysOpen(mount.relays, true);
    return bin;
  };
}

/** Closes the relays of a mount whose medias are all gone (their last client left). */
export function closeIdleRelays(mount: Mount): void {
  const alive = mount.mediaSources.filter((source) => {
    if (hasParent(source)) return true;
    release(source);
    return false;
  });
  mount.mediaSources.splice(0, mount.mediaSources.length, ...alive);
  if (alive.length === 0 && !mount.heldOpen) setRelaysOpen(mount.relays, false);
}

/**
 * Keeps a mount's relays open with no reader (`held`), or lets them close when idle. Held while the
 * pipeline is paused: a closed valve drops FLUSH_START, and a relay's udpsink holding its preroll
 * or an end of stream in PAUSED lets go only at a flush, so a seek or stop waited for ever behind
 * it; and with nothing to preroll on, a non-live source ran flat out into the closed valve. Held
 * while a non-live pipeline plays: its relays pace it (timeRelays).
 */
export function holdRelaysOpen(mount: Mount, held: boolean, paused: boolean): void {
  mount.heldOpen = held;
  mount.paused = paused;
  if (held) setRelaysOpen(mount.relays, true);
  else closeIdleRelays(mount);
}

/** Payloader settings for a format, applied to a payloader element. */
export function configurePayloader(format: RtpFormat, payloader: Pointer, label: string, pt = 96) {
  const target = { object: payloader, label };
  setProperty(target, "pt", format.pt ?? pt);
  for (const [name, value] of Object.entries(format.properties ?? {})) {
    setProperty(target, name, value);
  }
}

/** A free loopback UDP port for a relay (asked of the kernel, then released for udpsrc to bind). */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * Builds the media bin for the relays of one path; null when a stream has
 * not negotiated yet. `sources` gets the bin's udpsrc elements (with a
 * reference each): UDP carries no end of stream, so whoever removes the
 * path sends EOS into them to end the clients' sessions.
 */
export function buildMediaBin(path: string, relays: Relay[], sources: Pointer[]): Pointer | null {
  // Every stream's caps first: a stream not started yet refuses the media before anything is made.
  const streamCaps = relayCaps(relays);
  const waiting = streamCaps.findIndex((caps) => caps === undefined);
  if (waiting !== -1) {
    console.warn(`RTSP path '${path}': stream ${waiting} has not started yet`);
    return null;
  }
  const chains: Pointer[][] = [];
  for (const [index, relay] of relays.entries()) {
    const caps = streamCaps[index]!;
    const source = makeElement("udpsrc", `relay${index}`)!;
    // Not "depay${index}": gst-rtsp-server takes elements of that name for RECORD streams.
    const depay = makeElement(relay.format.depay, `unpack${index}`)!;
    const pay = makeElement(relay.format.pay, `pay${index}`)!;
    const sourceTarget = { object: source, label: `relay${index}` };
    setProperty(sourceTarget, "address", "127.0.0.1");
    setProperty(sourceTarget, "port", relay.port);
    setProperty(sourceTarget, "caps", caps);
    setProperty(sourceTarget, "buffer-size", 4 * 1024 * 1024);
    // Timestamps from the RTP packets, not from their arrival on loopback, so clients see the
    // pipeline's own frame timing.
    const jitter = makeElement("rtpjitterbuffer", `jitter${index}`)!;
    setProperty({ object: jitter, label: `jitter${index}` }, "latency", 50);
    // Loopback has no clock skew to correct: RTP timestamps alone keep frame spacing exact. Synced,
    // not none: both time packets from their RTP timestamps, but only synced takes the arrival
    // time again when they go back (the relay's pipeline seeked, its running time started again),
    // where none went on from the old base and gave every packet after a seek a time 2^64 ns out,
    // so the media sent nothing more.
    setProperty({ object: jitter, label: `jitter${index}` }, "mode", "synced");
    configurePayloader(relay.format, pay, `pay${index}`, 96 + index);
    chains.push([source, jitter, depay, pay]);
  }
  const bin = linkedBin(`media-${path}`, chains);
  if (bin !== null) sources.push(...chains.map((chain) => retain(chain[0])));
  return bin;
}

/** How often relays nobody watches are closed, and media sources waiting to be ended are looked at. */
const SWEEP_MS = 250;
/** Sweeps between two rounds of RtspServer.tendMedias (about a second). */
const TEND_MEDIAS_EVERY = 4;
/** How long a media source whose media never starts is kept waiting to be ended. */
const ENDING_MAX_MS = 60_000;

/**
 * The RTSP paths in use, who owns each, and what the RTSP server serves. A path is claimed
 * when its pipeline is made (so two pipelines cannot both serve it), served while that
 * pipeline plays, and freed when it is deleted. Relays nobody watches are closed, and medias
 * of paths that went away are ended, by this object's own timer, whatever else runs.
 */
export class RtspMounts {
  readonly #server: RtspServer | undefined;
  /** Path -> the id of the pipeline that claimed it, and its mount. */
  readonly #paths = new Map<string, { owner: string; mount: Mount }>();
  /**
   * Sources of medias whose path went away while the media was not playing yet: they get their
   * EOS once it plays, or are released once their media is freed.
   */
  readonly #ending: { source: Pointer; since: number }[] = [];
  readonly #sweep: ActiveTimer;
  #sweeps = 0;
  /** Told of each path no longer served: readers of their own (WHEP sessions) end with it. */
  readonly #unservedListeners = new Set<(path: string) => void>();

  constructor(server: RtspServer | undefined) {
    this.#server = server;
    this.#sweep = new ActiveTimer(
      SWEEP_MS,
      () => this.#sweepOnce(),
      () => this.#server !== undefined && (this.#paths.size > 0 || this.#ending.length > 0),
    );
  }

  #sweepOnce(): void {
    if (++this.#sweeps % TEND_MEDIAS_EVERY === 0) this.#server?.tendMedias();
    for (const { mount } of this.#paths.values()) closeIdleRelays(mount);
    for (const { source, since } of this.#ending.splice(0)) this.#end(source, since);
  }

  /**
   * Ends a media's stream with an EOS after its udpsrc (UDP carries no end of stream; see
   * endAndRelease for where it goes), so its clients see the end (RTCP BYE) instead of silence.
   * A media not playing yet is looked at again on the next sweep. Each source is released
   * exactly once.
   */
  #end(source: Pointer, since: number): void {
    const state = sourceState(source);
    if (state === "playing") {
      void endAndRelease(source);
    } else if (state === "gone" || performance.now() - since > ENDING_MAX_MS) {
      release(source);
    } else {
      this.#ending.push({ source, since });
      this.#sweep.wake();
    }
  }

  get available(): boolean {
    return this.#server !== undefined;
  }

  /** The id of the pipeline that claimed `path`, if one did. */
  owner(path: string): string | undefined {
    return this.#paths.get(path)?.owner;
  }

  /** Throws PATH_IN_USE when another pipeline claimed `path`. */
  requireFree(path: string): void {
    const owner = this.owner(path);
    if (owner !== undefined) {
      throw new DomainError("PATH_IN_USE", `RTSP path '${path}' is already served by '${owner}'`, {
        path,
        id: owner,
      });
    }
  }

  claim(owner: string, mounts: ReadonlyMap<string, Mount>): void {
    for (const path of mounts.keys()) this.requireFree(path);
    for (const [path, mount] of mounts) this.#paths.set(path, { owner, mount });
    if (mounts.size > 0) this.#sweep.wake();
  }

  /** Serves the paths (their pipeline is PLAYING, or PAUSED: then refusing new readers). */
  serve(mounts: ReadonlyMap<string, Mount>): void {
    const server = this.#server;
    if (!server) return;
    for (const [path, mount] of mounts) {
      if (!server.isMounted(path)) {
        server.mount(path, mediaBuilder(path, mount), notPlayingCheck(path, mount));
      }
    }
  }

  /** Stops serving the paths and ends their medias. */
  unserve(mounts: ReadonlyMap<string, Mount>): void {
    const now = performance.now();
    for (const [path, mount] of mounts) {
      this.#server?.unmount(path);
      for (const source of mount.mediaSources.splice(0)) this.#end(source, now);
      setRelaysOpen(mount.relays, false);
      for (const listener of this.#unservedListeners) listener(path);
    }
  }

  /** Calls `listener` with each path as it stops being served (its pipeline stopped, or went). */
  onUnserved(listener: (path: string) => void): void {
    this.#unservedListeners.add(listener);
  }

  /** Stops serving and frees the paths. */
  release(mounts: ReadonlyMap<string, Mount>): void {
    this.unserve(mounts);
    for (const path of mounts.keys()) this.#paths.delete(path);
  }

  /** Open RTSP sessions on the given paths, summed; undefined when there are none to serve. */
  /**
   * A function giving the viewers of a pipeline's paths: RTSP readers, and WebRTC viewers
   * (`webrtc`, per path), whose own RTSP sessions are not counted as readers. Undefined for a
   * pipeline that serves no path.
   */
  clientCounts(
    webrtc: ReadonlyMap<string, number>,
  ): (mounts: ReadonlyMap<string, Mount>) => Viewers | undefined {
    const sessions = this.#server?.sessionsByPath();
    return (mounts) => {
      if (mounts.size === 0) return undefined;
      const viewers = { rtsp: 0, webrtc: 0 };
      for (const path of mounts.keys()) {
        const webrtcViewers = webrtc.get(path) ?? 0;
        viewers.webrtc += webrtcViewers;
        viewers.rtsp += Math.max(0, (sessions?.get(path) ?? 0) - webrtcViewers);
      }
      return viewers;
    };
  }

  close(): void {
    this.#sweep.close();
    for (const { source } of this.#ending.splice(0)) release(source);
  }
}

/** What the server's own pipelines (WHEP, HLS) need to read a path from our RTSP server. */
export interface LoopbackReader {
  rtsp: RtspServer;
  /** Where our RTSP server is reached from here: 127.0.0.1 or ::1. */
  rtspHost: string;
  /** RTSP credentials to read with, when the server requires them. */
  credentials?: { user: string; password: string };
}

/** What serves a path, for messages about one that nothing serves. */
export const SERVED_PATH_KINDS =
  "a pipeline's rtspserversink path while it is PLAYING or PAUSED, a push, an RTSP or WHIP publish";

/** An rtspsrc named `source` reading `path` from our RTSP server: TCP, no added latency. */
export function loopbackReaderSpec(reader: LoopbackReader, path: string): ElementSpec {
  const { rtsp, rtspHost, credentials } = reader;
  const host = rtspHost.includes(":") ? `[${rtspHost}]` : rtspHost;
  return {
    type: "rtspsrc",
    name: "source",
    properties: {
      location: `rtsp://${host}:${rtsp.port}/${path}`,
      latency: 0,
      protocols: "tcp",
      ...(credentials ? { "user-id": credentials.user, "user-pw": credentials.password } : {}),
    },
  };
}

/** Links from each of `names` to the next. */
export function chainLinks(names: string[]): LinkSpec[] {
  return names.slice(1).map((to, at) => ({ from: names[at], to }));
}
