/**
 * `POST /push/{name}`: the HTTP side of a push (src/domain/push.ts): the name, the declared
 * format, the body read as it arrives, and the reply that says how the push ended.
 */
import type http from "node:http";
import { toWireError } from "../api/errors.ts";
import { NAME_RULE, namePattern } from "../domain/names.ts";
import {
  DRAIN_TIMEOUT_MS,
  MAX_QUEUED_BYTES,
  nameConflict,
  pushFormats,
  type PushHost,
  PushSession,
} from "../domain/push.ts";
import { BodyReader } from "./body.ts";
import { type HttpRoute, sendJson } from "./server.ts";

export const pushContentTypes = Object.keys(pushFormats);

function httpError(
  response: http.ServerResponse,
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): void {
  sendJson(response, status, { error: { code, message, ...(details ? { details } : {}) } });
}

/** Replies that end the exchange: the connection closes once the reply is out. */
function closeAfterReply(request: http.IncomingMessage, response: http.ServerResponse): void {
  response.once("finish", () => request.destroy());
}

/** `maxPushes`: how many pushes may run at once (GSTREAMER_MAX_PUSHES). */
export function pushRoute(host: PushHost, maxPushes = Infinity): HttpRoute {
  let active = 0;
  return async (request, response, url) => {
    const match = url.pathname.match(/^\/push(?:\/([^/]*))?\/?$/);
    if (!match) return false;
    if (request.method !== "POST") {
      response.setHeader("allow", "POST");
      httpError(response, 405, "METHOD_NOT_ALLOWED", "Push with POST");
      return true;
    }
    let name: string;
    try {
      name = match[1] ? decodeURIComponent(match[1]) : "live";
    } catch {
      name = match[1];
    }
    if (!namePattern.test(name)) {
      httpError(
        response,
        400,
        "INVALID_NAME",
        `Invalid stream name ${JSON.stringify(name)}: names are ${NAME_RULE}`,
      );
      return true;
    }
    const contentType = (request.headers["content-type"] ?? "application/octet-stream")
      .split(";")[0].trim().toLowerCase();
    const format = pushFormats[contentType];
    if (!format) {
      httpError(
        response,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `Content-Type '${contentType}' is not taken; send one of ${pushContentTypes.join(", ")}`,
        { accepted: pushContentTypes },
      );
      return true;
    }
    const framerate = url.searchParams.get("framerate");
    if (framerate !== null && !/^[1-9]\d{0,5}\/[1-9]\d{0,5}$/.test(framerate)) {
      httpError(
        response,
        400,
        "INVALID_FRAMERATE",
        `Invalid framerate ${
          JSON.stringify(framerate)
        }: give it as a fraction such as 30/1 or 30000/1001`,
      );
      return true;
    }
    const conflict = nameConflict(host, name);
    if (conflict) {
      httpError(response, 409, "STREAM_IN_USE", conflict.message, conflict.details);
      return true;
    }
    if (active >= maxPushes) {
      closeAfterReply(request, response);
      httpError(
        response,
        503,
        "LIMIT_REACHED",
        `${active} pushes are running, the server's limit (GSTREAMER_MAX_PUSHES); try again later`,
        { limit: maxPushes, setting: "GSTREAMER_MAX_PUSHES" },
      );
      return true;
    }
    active++;
    try {
      // Taken from the stream at once: see BodyReader for why.
      const body = new BodyReader(request, MAX_QUEUED_BYTES);
      let session: PushSession;
      try {
        session = await PushSession.open(host, name, format, {
          framerate,
          from: request.socket.remoteAddress ?? "?",
        });
      } catch (error) {
        const wire = toWireError(error);
        if (wire === null) console.error(`Push '${name}' could not start:`, error);
        closeAfterReply(request, response);
        httpError(
          response,
          wire?.code === "PATH_IN_USE" || wire?.code === "DUPLICATE_ID" ? 409 : 500,
          wire?.code ?? "INTERNAL",
          wire?.message ?? "The push pipeline could not start; the server log has the cause",
        );
        return true;
      }
      await receive(session, body, request, response);
    } finally {
      active--;
    }
    return true;
  };
}

async function receive(
  session: PushSession,
  body: BodyReader,
  request: http.IncomingMessage,
  response: http.ServerResponse,
): Promise<void> {
  let senderGone = false;
  try {
    while (session.running) {
      const chunk = await body.next();
      if (chunk === null) break;
      // A Buffer is a Uint8Array over a plain ArrayBuffer; its bytes are copied into GStreamer.
      if (!await session.write(chunk as Uint8Array as Uint8Array<ArrayBuffer>)) break;
    }
  } catch {
    // The sender disconnected mid-body: end the stream cleanly with what arrived.
    senderGone = true;
  }
  const { outcome, failure, taken } = await session.finish(senderGone);
  if (senderGone || response.destroyed) return;
  if (outcome === "eos") {
    sendJson(response, 200, taken);
    return;
  }
  closeAfterReply(request, response);
  if (outcome === "error") {
    httpError(response, 422, "STREAM_ERROR", `${failure.element}: ${failure.message}`, taken);
  } else {
    httpError(
      response,
      outcome === null ? 504 : 410,
      "STREAM_ENDED",
      outcome === null
        ? `Push '${session.name}' did not drain within ${DRAIN_TIMEOUT_MS} ms of the body's end`
        : `Push '${session.name}' was ${outcome} while it ran`,
      taken,
    );
  }
}
