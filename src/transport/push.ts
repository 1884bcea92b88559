/**
 * `POST /push/{name}` and `PUT /push/{name}`: the HTTP side of a push (src/domain/push.ts): the
 * name, the format (declared, and checked against the body's first bytes), the body read as it
 * arrives, and the reply that says how the push went.
 *
 * A POST is the whole stream: it is answered once the stream has ended and drained. A PUT may
 * be the first of several that carry one stream (GStreamer's souphttpclientsink sends each
 * batch of buffers as a PUT, those after the first with `Content-Range: bytes FROM-TO/*`), so it
 * is answered once its body is taken, and the push goes on with the next PUT that starts where
 * the last ended. It ends at the total a Content-Range declares (that PUT is answered as a POST
 * is), or when no PUT came for PUT_IDLE_MS.
 */
import type http from "node:http";
import { toWireError } from "../api/errors.ts";
import { NAME_RULE, namePattern } from "../domain/names.ts";
import {
  DRAIN_TIMEOUT_MS,
  judgeBody,
  MAX_QUEUED_BYTES,
  nameConflict,
  type PushFormat,
  pushFormats,
  type PushHost,
  type PushResult,
  PushSession,
  undeclaredContentTypes,
} from "../domain/push.ts";
import { needsMore, SNIFF_BYTES } from "../domain/sniff.ts";
import { BodyReader, closeAfterReply, isClosing } from "./body.ts";
import { type HttpRoute, sendJson } from "./server.ts";

export const pushContentTypes = Object.keys(pushFormats);

/** How long a push sent as PUTs waits for the next PUT before its stream ends. */
export const PUT_IDLE_MS = 3000;

function sendError(
  response: http.ServerResponse,
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): void {
  sendJson(response, status, { error: { code, message, ...(details ? { details } : {}) } });
}

/** `Content-Range: bytes FROM-TO/TOTAL` (TOTAL may be `*`); null when absent. */
interface ContentRange {
  from: number;
  to: number;
  total: number | null;
}

function parseContentRange(header: string | undefined): ContentRange | null | "invalid" {
  if (header === undefined) return null;
  const match = header.trim().match(/^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)$/);
  if (!match) return "invalid";
  const [from, to] = [Number(match[1]), Number(match[2])];
  const total = match[3] === "*" ? null : Number(match[3]);
  if (to < from || (total !== null && to >= total)) return "invalid";
  return { from, to, total };
}

/** A push whose stream comes as successive PUTs. */
interface RangedPush {
  session: PushSession;
  /** Bytes taken so far: where the next PUT must start. */
  received: number;
  /** A PUT is being received. */
  busy: boolean;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Settles with the push's result once its stream ended (after the last PUT, or the idle time). */
  finished: Promise<PushResult> | null;
}

/** `maxPushes`: how many pushes may run at once (GSTREAMER_MAX_PUSHES). */
export function pushRoute(host: PushHost, maxPushes = Infinity): HttpRoute {
  let active = 0;
  const ranged = new Map<string, RangedPush>();

  /** Ends a ranged push's stream (once) and frees its name and its place among the pushes. */
  const finishRanged = (name: string, push: RangedPush, senderGone = false) => {
    clearTimeout(push.idleTimer);
    push.finished ??= push.session.finish(senderGone).finally(() => {
      if (ranged.get(name) === push) ranged.delete(name);
      active--;
    });
    return push.finished;
  };

  return async (request, response, url) => {
    const match = url.pathname.match(/^\/push(?:\/([^/]*))?\/?$/);
    if (!match) return false;
    if (isClosing(request.socket)) {
      request.destroy();
      return true;
    }
    // Every refusal is logged: a sender (souphttpclientsink) may not show the reply to anyone.
    // And it ends the exchange: the rest of a refused body is not taken (see closeAfterReply).
    const httpError: typeof sendError = (response, status, code, message, details) => {
      closeAfterReply(request, response);
      console.warn(
        `${request.method} ${url.pathname} from ${request.socket.remoteAddress ?? "?"} ` +
          `refused: ${status} ${code}: ${message}`,
      );
      sendError(response, status, code, message, details);
    };
    if (request.method !== "POST" && request.method !== "PUT") {
      response.setHeader("allow", "POST, PUT");
      httpError(response, 405, "METHOD_NOT_ALLOWED", "Push with POST or PUT");
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
    const range = request.method === "PUT"
      ? parseContentRange(request.headers["content-range"])
      : null;
    if (range === "invalid") {
      httpError(
        response,
        400,
        "INVALID_CONTENT_RANGE",
        `Invalid Content-Range ${JSON.stringify(request.headers["content-range"])}: ` +
          "expected bytes FROM-TO/TOTAL or bytes FROM-TO/*",
      );
      return true;
    }
    const length = request.headers["content-length"];
    const rangeBytes = range === null ? null : range.to - range.from + 1;
    if (rangeBytes !== null && length !== undefined && Number(length) !== rangeBytes) {
      httpError(
        response,
        400,
        "INVALID_CONTENT_RANGE",
        `Content-Range ${JSON.stringify(request.headers["content-range"])} is ${rangeBytes} ` +
          `bytes, but the body is ${length} (Content-Length): they must agree`,
      );
      return true;
    }
    if (range !== null && range.from > 0) {
      await continueRanged(name, range);
      return true;
    }
    const contentType = request.headers["content-type"]?.split(";")[0].trim().toLowerCase();
    const declared = contentType === undefined || undeclaredContentTypes.includes(contentType)
      ? null
      : Object.hasOwn(pushFormats, contentType)
      ? pushFormats[contentType]
      : undefined;
    if (declared === undefined) {
      httpError(
        response,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `Content-Type '${contentType}' is not taken; send one of ${
          pushContentTypes.join(", ")
        }, or none (or ${undeclaredContentTypes.join(", ")}) to have the format recognised`,
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
    let handedOver = false;
    try {
      // Taken from the stream at once: see BodyReader for why.
      const body = new BodyReader(request, MAX_QUEUED_BYTES);
      const head = await readHead(body);
      if (head === "sender gone") {
        console.log(
          `Push '${name}' from ${request.socket.remoteAddress ?? "?"}: the sender left before ` +
            "its first bytes told the format; nothing was made",
        );
        return true;
      }
      const judged = judgeBody(declared, head.bytes);
      if ("status" in judged) {
        httpError(response, judged.status, judged.code, judged.message, judged.details);
        return true;
      }
      // The name may have been taken while the first bytes arrived.
      const lateConflict = nameConflict(host, name);
      if (lateConflict) {
        httpError(response, 409, "STREAM_IN_USE", lateConflict.message, lateConflict.details);
        return true;
      }
      const session = await open(name, judged.format, framerate);
      if (session === null) return true;
      const fed = await feed(session, [head.bytes], body);
      if (request.method === "POST" || fed === "sender gone" || range?.total === fed.received) {
        await reply(session, await session.finish(fed === "sender gone"));
        return true;
      }
      const push: RangedPush = {
        session,
        received: fed.received,
        busy: false,
        idleTimer: undefined,
        finished: null,
      };
      ranged.set(name, push);
      handedOver = true;
      acknowledge(push);
      return true;
    } finally {
      if (!handedOver) active--;
    }

    /** Makes the push pipeline; answers the request itself and gives null when it cannot. */
    async function open(
      name: string,
      format: PushFormat,
      framerate: string | null,
    ): Promise<PushSession | null> {
      try {
        return await PushSession.open(host, name, format, {
          framerate,
          from: request.socket.remoteAddress ?? "?",
        });
      } catch (error) {
        const wire = toWireError(error);
        if (wire === null) console.error(`Push '${name}' could not start:`, error);
        httpError(
          response,
          wire?.code === "PATH_IN_USE" || wire?.code === "DUPLICATE_ID" ? 409 : 500,
          wire?.code ?? "INTERNAL",
          wire?.message ?? "The push pipeline could not start; the server log has the cause",
        );
        return null;
      }
    }

    /** The answer to a PUT that the push goes on after: what was taken, and where to go on. */
    function acknowledge(push: RangedPush): void {
      push.idleTimer = setTimeout(() => void finishRanged(name, push), PUT_IDLE_MS);
      sendJson(response, 200, {
        name,
        bytes: push.received,
        frames: push.session.frames,
        continueAt: push.received,
        endsAfterIdleMs: PUT_IDLE_MS,
      });
    }

    /** A PUT that goes on with a push from byte `range.from`. */
    async function continueRanged(name: string, range: ContentRange): Promise<void> {
      const push = ranged.get(name);
      if (push === undefined || push.finished !== null || push.received !== range.from) {
        const state = push === undefined || push.finished !== null
          ? `no push of '${name}' is waiting for more`
          : `push '${name}' has taken ${push.received} bytes`;
        httpError(
          response,
          409,
          "RANGE_NOT_CONTINUED",
          `This PUT starts at byte ${range.from}, but ${state}: ` +
            (push === undefined || push.finished !== null
              ? "start a push with a PUT without Content-Range (or from byte 0)"
              : `send the bytes from ${push.received}`),
          { name, from: range.from, expected: push?.finished === null ? push.received : null },
        );
        return;
      }
      if (push.busy) {
        httpError(
          response,
          409,
          "RANGE_NOT_CONTINUED",
          `Another PUT of push '${name}' is being received; send the next one after its reply`,
        );
        return;
      }
      push.busy = true;
      clearTimeout(push.idleTimer);
      const fed = await feed(push.session, [], new BodyReader(request, MAX_QUEUED_BYTES));
      push.busy = false;
      if (fed === "sender gone") {
        await finishRanged(name, push, true);
        return;
      }
      push.received += fed.received;
      if (range.total === push.received || !push.session.running) {
        await reply(push.session, await finishRanged(name, push));
      } else {
        acknowledge(push);
      }
    }

    /** The answer that ends a push: what was taken, or how its run ended. */
    function reply(session: PushSession, result: PushResult): void {
      const { outcome, failure, taken } = result;
      if (response.destroyed) return;
      if (outcome === "eos") {
        sendJson(response, 200, taken);
        return;
      }
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
  };
}

/** The body's first bytes, enough to tell its format (or all of a shorter body). */
async function readHead(
  body: BodyReader,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; ended: boolean } | "sender gone"> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  let ended = false;
  try {
    while (length < SNIFF_BYTES) {
      const chunk = await body.next();
      if (chunk === null) {
        ended = true;
        break;
      }
      chunks.push(chunk);
      length += chunk.byteLength;
      if (!needsMore(concat(chunks, length), false)) break;
    }
  } catch {
    return "sender gone";
  }
  return { bytes: concat(chunks, length), ended };
}

function concat(chunks: Uint8Array[], length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/** Feeds `first` and then the body into the push; how many bytes it took, or that the sender left. */
async function feed(
  session: PushSession,
  first: Uint8Array<ArrayBuffer>[],
  body: BodyReader,
): Promise<{ received: number } | "sender gone"> {
  let received = 0;
  try {
    for (const chunk of first) {
      if (!await session.write(chunk)) return { received };
      received += chunk.byteLength;
    }
    while (session.running) {
      const chunk = await body.next();
      if (chunk === null) break;
      // A Buffer is a Uint8Array over a plain ArrayBuffer; its bytes are copied into GStreamer.
      if (!await session.write(chunk as Uint8Array as Uint8Array<ArrayBuffer>)) break;
      received += chunk.byteLength;
    }
  } catch {
    // The sender disconnected mid-body: the stream ends cleanly with what arrived.
    return "sender gone";
  }
  return { received };
}
