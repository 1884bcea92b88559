/**
 * WHEP over HTTP (draft-ietf-wish-whep): `POST /whep/{path}` with an SDP offer answers
 * `201 Created` with the SDP answer and the session's `Location` (`/whep/{path}?session=ID`);
 * `DELETE` on that location ends it. Trickle ICE (`PATCH`) is not offered: 405, as the draft
 * asks, so clients send a complete offer. The token comes as `Authorization: Bearer`.
 */
import type http from "node:http";
import { WhepError, type WhepHub } from "../domain/whep.ts";
import { type HttpRoute, sendJson } from "./server.ts";

export const WHEP_PREFIX = "/whep/";
/** An SDP offer is a few KiB; this bounds what a client can make the server hold. */
const MAX_OFFER_BYTES = 64 * 1024;

async function readOffer(request: http.IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_OFFER_BYTES) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The WHEP route; the transport adds CORS headers under WHEP_PREFIX (TransportOptions.corsPrefixes). */
export function whepRoute(hub: WhepHub): HttpRoute {
  return async (request, response, url) => {
    if (!url.pathname.startsWith(WHEP_PREFIX)) return false;
    const path = decodeURIComponent(url.pathname.slice(WHEP_PREFIX.length));
    const session = url.searchParams.get("session");
    const fail = (status: number, code: string, message: string) =>
      sendJson(response, status, { error: { code, message } });

    if (request.method === "OPTIONS") {
      response.writeHead(204, { allow: "POST, DELETE, PATCH, OPTIONS" });
      response.end();
      return true;
    }
    if (path === "" || path.includes("..")) {
      fail(404, "NOT_FOUND", `No stream path in ${url.pathname}: use POST /whep/{path}`);
      return true;
    }
    if (session !== null) {
      if (request.method === "DELETE") {
        if (await hub.stop(session)) {
          response.writeHead(200, { "content-length": 0 });
          response.end();
        } else {
          fail(404, "NOT_FOUND", `No WHEP session '${session}'`);
        }
      } else if (request.method === "PATCH") {
        response.writeHead(405, { allow: "DELETE", "content-length": 0 });
        response.end();
      } else {
        fail(405, "METHOD_NOT_ALLOWED", `${request.method} on a WHEP session: use DELETE`);
      }
      return true;
    }
    if (request.method !== "POST") {
      response.setHeader("allow", "POST, OPTIONS");
      fail(405, "METHOD_NOT_ALLOWED", `${request.method} ${url.pathname}: WHEP takes POST`);
      return true;
    }
    const type = (request.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/sdp") {
      fail(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `A WHEP offer is sent as Content-Type: application/sdp, not '${type || "none"}'`,
      );
      return true;
    }
    const offer = await readOffer(request);
    if (offer === null) {
      fail(413, "PAYLOAD_TOO_LARGE", `An SDP offer may have up to ${MAX_OFFER_BYTES} bytes`);
      return true;
    }
    try {
      const { id, answer } = await hub.play(path, offer);
      const body = Buffer.from(answer, "utf8");
      response.writeHead(201, {
        "content-type": "application/sdp",
        "content-length": body.length,
        location: `${WHEP_PREFIX}${encodeURIComponent(path)}?session=${id}`,
      });
      response.end(body);
    } catch (error) {
      if (!(error instanceof WhepError)) throw error;
      fail(error.status, "WHEP_FAILED", error.message);
    }
    return true;
  };
}
