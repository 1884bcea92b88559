/**
 * HLS over HTTP: `GET /hls/{path}/index.m3u8` (the playlist; the first request starts the
 * stream) and `GET /hls/{path}/segmentNNNNN.ts`. The token comes as `Authorization: Bearer` or
 * as a `token` query parameter; a playlist asked for with the parameter lists segment URIs that
 * carry it, so players that cannot send headers (Safari, ffplay) work.
 */
import { HlsError, type HlsHub, PLAYLIST_NAME } from "../domain/hls.ts";
import { type HttpRoute, isRead, sendJson, whileReplyIsMade } from "./server.ts";

export const HLS_PREFIX = "/hls/";

export function hlsRoute(hub: HlsHub): HttpRoute {
  return async (request, response, url) => {
    if (!url.pathname.startsWith(HLS_PREFIX)) return false;
    const fail = (status: number, code: string, message: string) =>
      sendJson(response, status, { error: { code, message } });
    const rest = decodeURIComponent(url.pathname.slice(HLS_PREFIX.length));
    const slash = rest.lastIndexOf("/");
    const path = rest.slice(0, Math.max(slash, 0));
    const file = rest.slice(slash + 1);
    if (request.method === "OPTIONS") {
      response.writeHead(204, { allow: "GET, HEAD, OPTIONS" });
      response.end();
      return true;
    }
    if (path === "" || path.split("/").includes("..")) {
      fail(
        404,
        "NOT_FOUND",
        `No stream in ${url.pathname}: use GET ${HLS_PREFIX}{path}/${PLAYLIST_NAME}`,
      );
      return true;
    }
    if (!isRead(request)) {
      response.setHeader("allow", "GET, HEAD, OPTIONS");
      fail(405, "METHOD_NOT_ALLOWED", `${request.method} ${url.pathname}: HLS takes GET`);
      return true;
    }
    try {
      let body: Uint8Array;
      let type: string;
      if (file === PLAYLIST_NAME) {
        const token = url.searchParams.get("token");
        const playlist = await whileReplyIsMade(request, () => hub.playlist(path));
        body = new TextEncoder().encode(token === null ? playlist : withToken(playlist, token));
        type = "application/vnd.apple.mpegurl";
      } else {
        body = await hub.segment(path, file);
        type = "video/mp2t";
      }
      // Segment names start again with each stream, so nothing here may be cached as it is.
      response.writeHead(200, {
        "content-type": type,
        "content-length": body.length,
        "cache-control": "no-cache",
      });
      response.end(request.method === "HEAD" ? undefined : body);
    } catch (error) {
      if (!(error instanceof HlsError)) throw error;
      fail(error.status, "HLS_FAILED", error.message);
    }
    return true;
  };
}

/** The playlist with `token` added to every URI it lists. */
function withToken(playlist: string, token: string): string {
  const query = `token=${encodeURIComponent(token)}`;
  return playlist.split("\n").map((line) =>
    line === "" || line.startsWith("#") ? line : `${line}${line.includes("?") ? "&" : "?"}${query}`
  ).join("\n");
}
