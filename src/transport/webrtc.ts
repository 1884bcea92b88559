/**
 * WHEP and WHIP over HTTP (draft-ietf-wish-whep, RFC 9725): `POST /whep/{path}` (play) and
 * `POST /whip/{name}` (publish) take an SDP offer and answer `201 Created` with the SDP answer and
 * the session's `Location` (`/whep/{path}?session=ID`); `DELETE` on that location ends it.
 * Trickle ICE (`PATCH`) is not offered: 405, as the drafts ask, so clients send a complete offer.
 * The token comes as `Authorization: Bearer`.
 */
import type http from "node:http";
import { WebRtcError } from "../domain/webrtc.ts";
import type { WhepHub } from "../domain/whep.ts";
import type { WhipHub } from "../domain/whip.ts";
import { type HttpRoute, sendJson, whileReplyIsMade } from "./server.ts";
import { BodyReader, closeAfterReply } from "./body.ts";

export const WHEP_PREFIX = "/whep/";
export const WHIP_PREFIX = "/whip/";
/** An SDP offer is a few KiB; this bounds what a client can make the server hold. */
const MAX_OFFER_BYTES = 64 * 1024;

async function readOffer(request: http.IncomingMessage): Promise<string | null> {
  // Not a loop over the request stream: leaving one destroys the request, and the reply with it.
  const reader = new BodyReader(request, MAX_OFFER_BYTES);
  const chunks: Buffer[] = [];
  let size = 0;
  for (let chunk = await reader.next(); chunk !== null; chunk = await reader.next()) {
    size += chunk.length;
    if (size > MAX_OFFER_BYTES) return null; // the reply closes the connection (closeAfterReply)
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

interface OfferEndpoint {
  prefix: string;
  protocol: "WHEP" | "WHIP";
  /** What follows the prefix, for messages: "{path}" or "{name}". */
  target: string;
  answer(target: string, offer: string, from: string): Promise<{ id: string; answer: string }>;
  /** Ends session `id`, of `target` when given; false when there is no such session. */
  stop(id: string, target?: string): Promise<boolean>;
}

/** An offer/answer route; the transport adds CORS headers under its prefix (corsPrefixes). */
function offerRoute(endpoint: OfferEndpoint): HttpRoute {
  const { prefix, protocol } = endpoint;
  return async (request, response, url) => {
    if (!url.pathname.startsWith(prefix)) return false;
    const target = decodeURIComponent(url.pathname.slice(prefix.length));
    const session = url.searchParams.get("session");
    let bodyRead = false;
    const fail = (status: number, code: string, message: string) => {
      // A reply before the whole body was read ends the exchange: on a kept-alive connection the
      // rest of the body would be read as the next request, which then waits unanswered.
      if (!bodyRead) closeAfterReply(request, response);
      sendJson(response, status, { error: { code, message } });
    };

    if (request.method === "OPTIONS") {
      response.writeHead(204, { allow: "POST, DELETE, PATCH, OPTIONS" });
      response.end();
      return true;
    }
    // ".." only as a whole segment: "cam..v2" is a name like any other.
    if (target === "" || target.split("/").includes("..")) {
      fail(404, "NOT_FOUND", `No stream in ${url.pathname}: use POST ${prefix}${endpoint.target}`);
      return true;
    }
    if (session !== null) {
      if (request.method === "DELETE") {
        // The session's own URL only: its id under another path is no session.
        if (await endpoint.stop(session, target)) {
          response.writeHead(200, { "content-length": 0 });
          response.end();
        } else {
          fail(404, "NOT_FOUND", `No ${protocol} session '${session}'`);
        }
      } else if (request.method === "PATCH") {
        response.writeHead(405, { allow: "DELETE", "content-length": 0 });
        response.end();
      } else {
        fail(405, "METHOD_NOT_ALLOWED", `${request.method} on a ${protocol} session: use DELETE`);
      }
      return true;
    }
    if (request.method !== "POST") {
      response.setHeader("allow", "POST, OPTIONS");
      fail(405, "METHOD_NOT_ALLOWED", `${request.method} ${url.pathname}: ${protocol} takes POST`);
      return true;
    }
    const type = (request.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/sdp") {
      fail(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `A ${protocol} offer is sent as Content-Type: application/sdp, not '${type || "none"}'`,
      );
      return true;
    }
    const offer = await readOffer(request);
    if (offer === null) {
      fail(413, "PAYLOAD_TOO_LARGE", `An SDP offer may have up to ${MAX_OFFER_BYTES} bytes`);
      return true;
    }
    bodyRead = true;
    try {
      const from = request.socket.remoteAddress ?? "unknown";
      const { id, answer } = await whileReplyIsMade(
        request,
        () => endpoint.answer(target, offer, from),
      );
      if (request.socket.destroyed) {
        // The client left while its answer was made: it never learns the session, so none is kept.
        console.log(`${protocol} session ${id}: its client left before the answer; ending it`);
        await endpoint.stop(id);
        return true;
      }
      const body = Buffer.from(answer, "utf8");
      response.writeHead(201, {
        "content-type": "application/sdp",
        "content-length": body.length,
        location: `${prefix}${encodeURIComponent(target)}?session=${id}`,
      });
      response.end(body);
    } catch (error) {
      if (!(error instanceof WebRtcError)) throw error;
      fail(error.status, `${protocol}_FAILED`, error.message);
    }
    return true;
  };
}

export function whepRoute(hub: WhepHub): HttpRoute {
  return offerRoute({
    prefix: WHEP_PREFIX,
    protocol: "WHEP",
    target: "{path}",
    answer: (path, offer) => hub.play(path, offer),
    stop: (id, path) => hub.stop(id, path),
  });
}

export function whipRoute(hub: WhipHub): HttpRoute {
  return offerRoute({
    prefix: WHIP_PREFIX,
    protocol: "WHIP",
    target: "{name}",
    answer: (name, offer, from) => hub.publish(name, offer, from),
    stop: (id, name) => hub.stop(id, name),
  });
}
