/// <reference lib="dom" />
/**
 * A small HLS player for any page: plays `/hls/{path}/index.m3u8` in a <video> element with
 * hls.js (light build), or natively where the browser plays HLS itself (Safari):
 *
 *     import { playHls } from "http://HOST:8080/console/hls-player.js";
 *     const player = await playHls(document.querySelector("video"), "http://HOST:8080/hls/cam/index.m3u8", {
 *       token: "...", // when the server has GSTREAMER_AUTH_TOKEN
 *     });
 *     // later: player.stop();
 *
 * HLS is seconds behind (a few segments); WHEP (whep-player.js) is the sub-second choice.
 */
// The light build ships no types of its own: it has the full build's API, less what is unused here.
// @ts-types="hls.js"
import Hls from "hls.js/light";

export interface HlsOptions {
  /** The server's GSTREAMER_AUTH_TOKEN: a Bearer header with hls.js, a query parameter natively. */
  token?: string;
  /** Called with a fatal error after the player has started (the stream stopped, say). */
  onError?: (message: string) => void;
}

export interface HlsPlayer {
  /** "hls.js" or "native". */
  readonly engine: string;
  stop(): void;
}

/** Resolves once the playlist is read; rejects with the server's message when it is refused. */
export function playHls(
  video: HTMLVideoElement,
  url: string,
  options: HlsOptions = {},
): Promise<HlsPlayer> {
  const { token } = options;
  if (!Hls.isSupported()) {
    if (!video.canPlayType("application/vnd.apple.mpegurl")) {
      return Promise.reject(new Error("This browser plays neither HLS nor Media Source"));
    }
    const playlist = new URL(url, location.href);
    if (token) playlist.searchParams.set("token", token);
    video.src = playlist.href;
    return new Promise((resolve, reject) => {
      video.addEventListener("loadedmetadata", () => {
        void video.play().catch(() => {});
        resolve({ engine: "native", stop: () => video.removeAttribute("src") });
      }, { once: true });
      video.addEventListener("error", () => reject(new Error("The HLS stream did not load")), {
        once: true,
      });
    });
  }
  const hls = new Hls({
    xhrSetup: token ? (xhr) => xhr.setRequestHeader("authorization", `Bearer ${token}`) : undefined,
  });
  return new Promise((resolve, reject) => {
    let started = false;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      started = true;
      void video.play().catch(() => {});
      resolve({ engine: "hls.js", stop: () => hls.destroy() });
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      const body = data.networkDetails instanceof XMLHttpRequest
        ? data.networkDetails.responseText
        : "";
      const message = serverMessage(body) ?? `${data.type}: ${data.details}`;
      hls.destroy();
      if (started) options.onError?.(message);
      else reject(new Error(message));
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  });
}

/** The message of the server's JSON error body, if that is what `body` is. */
function serverMessage(body: string): string | null {
  try {
    return JSON.parse(body)?.error?.message ?? null;
  } catch {
    return null;
  }
}
