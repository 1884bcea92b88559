/** HLS over HTTP: `GET /hls/{path}/index.m3u8` and its segments. Being written. */
import type { HlsHub } from "../domain/hls.ts";
import type { HttpRoute } from "./server.ts";

export const HLS_PREFIX = "/hls/";

export function hlsRoute(_hub: HlsHub): HttpRoute {
  return (_request, _response, url) => url.pathname.startsWith(HLS_PREFIX) && false;
}
