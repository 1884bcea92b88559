/**
 * `POST /push/{name}`: takes a video stream in the request body and serves
 * it at rtsp://HOST:RTSP_PORT/{name}. Each push is a pipeline of kind
 * "push" (appsrc ! parser ! identity ! rtspserversink) in the pipeline
 * manager, so it shows in getPipelines, stats and events like any other.
 */
import type http from "node:http";
import { ServerError } from "./errors.ts";
import type { ElementSpec, ManagerEvent, PipelineManager } from "./pipelines.ts";
import { type HttpRoute, sendJson } from "./server.ts";
import { pathPattern } from "./media.ts";
import { BodyReader } from "./body.ts";

/** The appsrc queue above which the handler stops reading the body, so TCP slows the sender. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** A stream that gives no frame in this many bytes is not the declared format. */
const NO_FRAME_LIMIT = 4 * 1024 * 1024;
/** How long to wait for the last frames to leave after the body ended. */
const DRAIN_TIMEOUT_MS = 10_000;

interface PushFormat {
  label: string;
  /** Whether the parser's output buffers are frames (an MPEG-TS parser outputs packet groups). */
  countsFrames: boolean;
  caps: string;
  parser: string;
  parserProperties?: Record<string, number | boolean | string>;
}

const h264: PushFormat = {
  label: "H.264",
  countsFrames: true,
  caps: "video/x-h264,stream-format=byte-stream",
  parser: "h264parse",
  parserProperties: { "config-interval": -1 },
};

/** Formats by Content-Type (parameters such as "; charset" are ignored). */
const formats: Record<string, PushFormat> = {
  "video/h264": h264,
  "application/octet-stream": h264,
  "video/h265": {
    label: "H.265",
    countsFrames: true,
    caps: "video/x-h265,stream-format=byte-stream",
    parser: "h265parse",
    parserProperties: { "config-interval": -1 },
  },
  "video/mp2t": {
    label: "MPEG-TS",
    countsFrames: false,
    caps: "video/mpegts,systemstream=true,packetsize=188",
    parser: "tsparse",
    parserProperties: { "set-timestamps": true, "alignment": 7 },
  },
};

export const pushContentTypes = Object.keys(formats);

function httpError(
  response: http.ServerResponse,
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): void {
  sendJson(response, status, { error: { code, message, ...(details ? { details } : {}) } });
}

/** The element list of a push pipeline. */
function pushElements(name: string, format: PushFormat, framerate: string | null): ElementSpec[] {
  return [
    {
      type: "appsrc",
      name: "source",
      properties: {
        caps: framerate ? `${format.caps},framerate=${framerate}` : format.caps,
        format: "time",
        "is-live": true,
        // Raw streams carry no timestamps: each chunk is stamped with its arrival time, so a paced
        // sender comes out at its own rate; the parser spreads the frames within a chunk by the
        // frame rate (from the stream's parameter sets, or ?framerate). Without input timestamps
        // h264parse in 1.22 stamps every frame 0, so arrival time is the only clock there is.
        "do-timestamp": true,
        block: false,
        "max-bytes": String(4 * MAX_QUEUED_BYTES),
      },
    },
    { type: format.parser, name: "parser", properties: format.parserProperties ?? {} },
    { type: "identity", name: "counter", properties: { silent: true } },
    { type: "rtspserversink", name: "rtsp", properties: { path: name } },
  ];
}

/** `maxPushes`: how many pushes may run at once (GSTREAMER_MAX_PUSHES). */
export function pushRoute(manager: PipelineManager, maxPushes = Infinity): HttpRoute {
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
    if (!pathPattern.test(name)) {
      httpError(
        response,
        400,
        "INVALID_NAME",
        `Invalid stream name ${
          JSON.stringify(name)
        }: names are 1 to 64 characters of letters, digits, '.', '_' and '-'`,
      );
      return true;
    }
    const contentType = (request.headers["content-type"] ?? "application/octet-stream")
      .split(";")[0].trim().toLowerCase();
    const format = formats[contentType];
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
    if (manager.has(name) || manager.pathInUse(name)) {
      httpError(response, 409, "STREAM_IN_USE", `'${name}' is already being pushed or served`, {
        name,
      });
      return true;
    }
    if (active >= maxPushes) {
      response.once("finish", () => request.destroy());
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
      await receive(manager, body, request, response, name, format, framerate);
    } finally {
      active--;
    }
    return true;
  };
}

async function receive(
  manager: PipelineManager,
  body: BodyReader,
  request: http.IncomingMessage,
  response: http.ServerResponse,
  name: string,
  format: PushFormat,
  framerate: string | null,
): Promise<void> {
  const startedAt = performance.now();
  let bytes = 0;
  const rate = { bytes: 0, at: startedAt, bitrate: 0 };
  // Buffers out of the parser: frames for raw video, groups of 7 TS packets for MPEG-TS.
  const parsed = () => manager.has(name) ? manager.identityCounters(name, "counter").buffers : 0;
  let lastParsed = 0;
  const frames = () => {
    lastParsed = manager.has(name) ? parsed() : lastParsed;
    return format.countsFrames ? lastParsed : null;
  };
  try {
    manager.create(
      {
        id: name,
        description: `push of ${format.label} from ${request.socket.remoteAddress ?? "?"}`,
        pipeline: { elements: pushElements(name, format, framerate) },
      },
      {
        kind: "push",
        extraStats: () => {
          const now = performance.now();
          if (now - rate.at >= 500) {
            rate.bitrate = Math.round(((bytes - rate.bytes) * 8 * 1000) / (now - rate.at));
            rate.bytes = bytes;
            rate.at = now;
          }
          return { bytesIn: bytes, frames: frames(), bitrate: rate.bitrate, format: format.label };
        },
      },
    );
    await manager.start(name);
  } catch (error) {
    if (manager.has(name)) await manager.delete(name).catch(() => {});
    const known = error instanceof ServerError;
    if (!known) console.error(`Push '${name}' could not start:`, error);
    response.once("finish", () => request.destroy());
    httpError(
      response,
      known && error.code === "PATH_IN_USE" ? 409 : 500,
      known ? error.code : "INTERNAL",
      known ? error.message : "The push pipeline could not start; the server log has the cause",
    );
    return;
  }

  // The run ends on EOS (after the body ended), an error, a stop or a delete; whichever comes first.
  let outcome: "eos" | "error" | "stopped" | "deleted" | null = null;
  let failure = { element: "", message: "" };
  let wake: (() => void) | null = null;
  const unsubscribe = manager.subscribe((event: ManagerEvent) => {
    if (!("id" in event.payload) || event.payload.id !== name || outcome !== null) return;
    if (event.type === "pipelineError") {
      outcome = "error";
      failure = { element: event.payload.element, message: event.payload.message };
    } else if (event.type === "pipelineEos") {
      outcome = "eos";
    } else if (event.type === "pipelineDeleted") {
      outcome = "deleted";
    } else if (event.type === "pipelineStateChanged" && event.payload.new === "NULL") {
      outcome = "stopped";
    }
    if (outcome !== null) wake?.();
  });
  const running = () => outcome === null;
  const waitForChange = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = null;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        resolve();
      };
    });

  const source = manager.appSource(name, "source");
  let senderGone = false;
  try {
    while (running()) {
      const chunk = await body.next();
      if (chunk === null) break;
      // A Buffer is a Uint8Array over a plain ArrayBuffer; its bytes are copied into GStreamer.
      if (!source.push(chunk as Uint8Array as Uint8Array<ArrayBuffer>)) break;
      bytes += chunk.byteLength;
      // Back-pressure: stop reading while GStreamer has not taken what it has.
      while (source.queuedBytes() > MAX_QUEUED_BYTES && running()) {
        await waitForChange(1);
      }
      // Judged on what GStreamer has taken, not on what waits in the appsrc queue.
      if (bytes - source.queuedBytes() >= NO_FRAME_LIMIT && parsed() === 0 && running()) {
        manager.fail(name, "parser", `No ${format.label} frames in the first ${bytes} bytes`);
      }
    }
  } catch {
    // The sender disconnected mid-body: end the stream cleanly with what arrived.
    senderGone = true;
  }

  if (running()) {
    source.end();
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    // The end arrives within milliseconds; look at the bus closely instead of waiting for the poll.
    while (running() && performance.now() < deadline) {
      await waitForChange(2);
      manager.pollBus(name);
    }
  }
  unsubscribe();
  const taken = {
    name,
    bytes,
    frames: frames(),
    durationMs: Math.round(performance.now() - startedAt),
  };
  if (outcome !== "deleted" && manager.has(name)) await manager.delete(name).catch(() => {});
  console.log(
    `Push '${name}' ended (${senderGone ? "sender gone" : outcome ?? "not drained"}): ` +
      `${taken.bytes} bytes, ${taken.frames ?? "?"} frames in ${taken.durationMs} ms`,
  );

  if (senderGone || response.destroyed) return;
  const ended = outcome as typeof outcome;
  if (ended === "error") {
    response.once("finish", () => request.destroy());
    httpError(response, 422, "STREAM_ERROR", `${failure.element}: ${failure.message}`, taken);
  } else if (ended === "eos") {
    sendJson(response, 200, taken);
  } else {
    response.once("finish", () => request.destroy());
    httpError(
      response,
      ended === null ? 504 : 410,
      "STREAM_ENDED",
      ended === null
        ? `Push '${name}' did not drain within ${DRAIN_TIMEOUT_MS} ms of the body's end`
        : `Push '${name}' was ${ended} while it ran`,
      taken,
    );
  }
}
