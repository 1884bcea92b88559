/// <reference lib="dom" />
/**
 * A small WHEP player for any page: plays a stream the server serves in a <video> element over
 * WebRTC. The console uses it for its previews; other pages import it from the server:
 *
 *     import { playWhep } from "http://HOST:8080/console/whep-player.js";
 *     const player = await playWhep(document.querySelector("video"), "http://HOST:8080/whep/cam", {
 *       token: "...", // when the server has GSTREAMER_AUTH_TOKEN
 *     });
 *     // later: await player.stop();
 *
 * It also publishes a browser's camera over WHIP, served then at rtsp://HOST:8554/{name}:
 *
 *     import { publishWhip } from "http://HOST:8080/console/whep-player.js";
 *     const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
 *     const publisher = await publishWhip(camera, "http://HOST:8080/whip/mycam", { token: "..." });
 *     // later: await publisher.stop();
 *
 * Both send one complete offer (no trickle ICE), as the server expects, and end the session
 * with DELETE when stopped.
 */

export interface WhepOptions {
  /** The server's GSTREAMER_AUTH_TOKEN, sent as `Authorization: Bearer`. */
  token?: string;
  /** ICE servers for the browser's side; none are needed on a LAN. */
  iceServers?: RTCIceServer[];
  /** "relay" to use TURN only (the browser's address then never reaches the server). */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** How long to wait for the browser's own ICE candidates before sending the offer. */
  gatherTimeoutMs?: number;
}

export interface WhepPlayer {
  readonly connection: RTCPeerConnection;
  /** The session's URL on the server (its Location). */
  readonly session: string;
  /** Ends the session on the server and closes the connection. */
  stop(): Promise<void>;
}

/** A WHIP publisher: the same shape as a player. */
export type WhipPublisher = WhepPlayer;

/** An error the server answered with: its HTTP status and message. */
export class WhepError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "WhepError";
  }
}

function gathered(connection: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      connection.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => connection.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, timeoutMs);
    connection.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Sends the connection's offer to `url` once its candidates are gathered, and sets the answer;
 * the session's URL (its Location).
 */
async function negotiate(
  connection: RTCPeerConnection,
  url: string,
  headers: Record<string, string>,
  gatherTimeoutMs: number,
): Promise<string> {
  await connection.setLocalDescription(await connection.createOffer());
  await gathered(connection, gatherTimeoutMs);
  const response = await fetch(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/sdp" },
    body: connection.localDescription!.sdp,
  });
  if (response.status !== 201) {
    const text = await response.text();
    let message = text;
    try {
      message = JSON.parse(text).error?.message ?? text;
    } catch {
      // not JSON: the text as it is
    }
    throw new WhepError(response.status, message || `HTTP ${response.status}`);
  }
  const endpoint = new URL(url, document.baseURI);
  const session = new URL(response.headers.get("location") ?? endpoint.href, endpoint).href;
  await connection.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return session;
}

function session(
  connection: RTCPeerConnection,
  url: string,
  headers: Record<string, string>,
  onStop: () => void,
): WhepPlayer {
  let stopped = false;
  return {
    connection,
    session: url,
    async stop() {
      if (stopped) return;
      stopped = true;
      connection.close();
      onStop();
      await fetch(url, { method: "DELETE", headers }).catch(() => {});
    },
  };
}

function peerConnection(options: WhepOptions): RTCPeerConnection {
  return new RTCPeerConnection({
    iceServers: options.iceServers ?? [],
    iceTransportPolicy: options.iceTransportPolicy ?? "all",
  });
}

function bearer(options: WhepOptions): Record<string, string> {
  return options.token ? { authorization: `Bearer ${options.token}` } : {};
}

export async function playWhep(
  video: HTMLVideoElement,
  url: string,
  options: WhepOptions = {},
): Promise<WhepPlayer> {
  const connection = peerConnection(options);
  const headers = bearer(options);
  try {
    connection.addTransceiver("video", { direction: "recvonly" });
    connection.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    connection.addEventListener("track", (event) => {
      stream.addTrack(event.track);
      video.srcObject = stream;
    });
    const location = await negotiate(connection, url, headers, options.gatherTimeoutMs ?? 2000);
    return session(connection, location, headers, () => video.srcObject = null);
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Publishes `stream`'s video (H.264) and audio (Opus) tracks to a WHIP URL of the server. */
export async function publishWhip(
  stream: MediaStream,
  url: string,
  options: WhepOptions = {},
): Promise<WhipPublisher> {
  const connection = peerConnection(options);
  const headers = bearer(options);
  try {
    // The server answers with H.264 and Opus only (it transcodes nothing), so that is sent.
    for (const track of stream.getTracks()) {
      connection.addTransceiver(track, { direction: "sendonly" });
    }
    const location = await negotiate(connection, url, headers, options.gatherTimeoutMs ?? 2000);
    return session(connection, location, headers, () => {});
  } catch (error) {
    connection.close();
    throw error;
  }
}
