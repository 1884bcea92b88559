/**
 * What WHEP (playback) and WHIP (publishing) share: the server's webrtcbin, its ICE settings, and
 * answering an offer without trickle ICE (the server gathers its candidates, on the addresses it
 * listens on, before it replies, so a client that sends a complete offer needs nothing else).
 */
import type { WebRtcPeer } from "../gst/webrtc.ts";
import type { ElementSpec } from "./spec.ts";

/** Why a WebRTC request was refused: an HTTP status and a message naming what is wrong. */
export class WebRtcError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "WebRtcError";
  }
}

export interface IceOptions {
  /** The addresses ICE candidates are gathered on (the server's listening addresses). */
  iceAddresses: string[];
  /** The UDP ports ICE may use; any when absent. */
  icePorts?: { min: number; max: number };
  /** stun:// and turn:// servers for webrtcbin; none when absent. */
  stunServer?: string;
  turnServer?: string;
}

/** ICE gathering on the listening addresses takes a few ms; this bounds a stuck one. */
const GATHER_TIMEOUT_MS = 3_000;
const POLL_MS = 10;

/** The webrtcbin of a session pipeline, named "webrtc". */
export function webrtcbinSpec(ice: IceOptions): ElementSpec {
  return {
    type: "webrtcbin",
    name: "webrtc",
    properties: {
      "bundle-policy": "max-bundle",
      ...(ice.stunServer ? { "stun-server": ice.stunServer } : {}),
      ...(ice.turnServer ? { "turn-server": ice.turnServer } : {}),
    },
  };
}

/** Whether `sdp` has a UDP host candidate on each of `addresses`. */
function hasUdpHostCandidates(sdp: string, addresses: ReadonlySet<string>): boolean {
  const found = new Set<string>();
  for (const match of sdp.matchAll(/^a=candidate:\S+ \d+ UDP \d+ (\S+) \d+ typ host/gim)) {
    found.add(match[1]);
  }
  return [...addresses].every((address) => found.has(address));
}

/** Waits (polling) until `ready()`; a 504 naming `why()` after `timeoutMs`. */
export async function until(
  ready: () => boolean,
  timeoutMs: number,
  why: () => string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!ready()) {
    if (performance.now() > deadline) throw new WebRtcError(504, why());
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Sets the remote offer, makes the answer, and gives its SDP once a UDP host candidate of each
 * listening address is in (they come at once; libnice takes ~200 ms more to call gathering
 * complete), or when gathering completes, or with what was gathered after GATHER_TIMEOUT_MS.
 * With a STUN or TURN server, gathering must complete: the answer is the only way its
 * candidates reach the client (there is no trickle ICE).
 */
export async function answerOffer(peer: WebRtcPeer, offer: string, ice: IceOptions) {
  await peer.setRemoteDescription("offer", offer);
  await peer.createAnswer();
  const wanted = new Set(ice.iceAddresses);
  const hostsEnough = wanted.size > 0 && !ice.stunServer && !ice.turnServer;
  await until(
    () =>
      peer.iceGatheringState() === "complete" ||
      (hostsEnough && hasUdpHostCandidates(peer.localDescription() ?? "", wanted)),
    GATHER_TIMEOUT_MS,
    () => "ICE gathering did not complete",
  ).catch(() => {}); // answer with what was gathered
  const answer = peer.localDescription();
  if (answer === null) throw new WebRtcError(500, "webrtcbin made no local description");
  return answer;
}
