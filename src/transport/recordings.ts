/**
 * Recordings over HTTP: `GET /recordings/{path}/` lists a path's segments as JSON,
 * `GET /recordings/{path}/{file}` downloads one, honouring `Range` (one range) so players seek,
 * and `GET /recordings/{path}/export?from=&to=&format=` streams a span across segments as one file.
 * The token and origin rules are the rest of the HTTP API's (the transport checks them).
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type { RecordingHub } from "../domain/recording.ts";
import { checkSpanQuery, SpanError } from "../domain/recording_span.ts";
import { type HttpRoute, isRead, sendJson, whileReplyIsMade } from "./server.ts";

export const RECORDINGS_PREFIX = "/recordings/";

const contentTypes: Record<string, string> = {
  mp4: "video/mp4",
  ts: "video/mp2t",
  mkv: "video/x-matroska",
};

export function recordingsRoute(hub: RecordingHub): HttpRoute {
  return async (request, response, url) => {
    if (!url.pathname.startsWith(RECORDINGS_PREFIX)) return false;
    const fail = (status: number, code: string, message: string) =>
      sendJson(response, status, { error: { code, message } });
    // A CORS preflight: a page reading a recording with a token or a range asks first.
    if (request.method === "OPTIONS") {
      response.writeHead(204, { allow: "GET, HEAD, OPTIONS" });
      response.end();
      return true;
    }
    if (!isRead(request)) {
      response.setHeader("allow", "GET, HEAD, OPTIONS");
      fail(405, "METHOD_NOT_ALLOWED", `${request.method} ${url.pathname}: recordings take GET`);
      return true;
    }
    const [path, file, ...rest] = url.pathname.slice(RECORDINGS_PREFIX.length).split("/")
      .map((part) => decodeURIComponent(part));
    if (path === "" || file === undefined || rest.length > 0) {
      fail(
        404,
        "NOT_FOUND",
        `No recording at ${url.pathname}: use GET ${RECORDINGS_PREFIX}{path}/ for the list, ` +
          `${RECORDINGS_PREFIX}{path}/{file} for a segment, ${RECORDINGS_PREFIX}{path}/export?from=&to= ` +
          "for a span",
      );
      return true;
    }
    if (file === "") {
      let segments;
      try {
        segments = await hub.segments(path);
      } catch {
        segments = null;
      }
      if (segments === null || segments.length === 0) {
        fail(404, "NOT_FOUND", `No segments recorded of '/${path}'`);
      } else {
        sendJson(response, 200, { path, segments });
      }
      return true;
    }
    if (file === EXPORT) {
      await exportSpan(hub, path, request, response, url, fail);
      return true;
    }
    const location = hub.segmentFile(path, file);
    const stat = location === null ? null : await Deno.stat(location).catch(() => null);
    if (location === null || stat === null || !stat.isFile) {
      fail(
        404,
        "NOT_FOUND",
        `No segment '${file}' of '/${path}': GET ${RECORDINGS_PREFIX}${path}/ lists them`,
      );
      return true;
    }
    const size = stat.size;
    const range = parseRange(request.headers.range, size);
    if (range === "unsatisfiable") {
      response.writeHead(416, { "content-range": `bytes */${size}` });
      response.end();
      return true;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    const headers: Record<string, string | number> = {
      "content-type": contentTypes[file.split(".").at(-1)!] ?? "application/octet-stream",
      "content-length": Math.max(0, end - start + 1),
      "accept-ranges": "bytes",
      "last-modified": (stat.mtime ?? new Date()).toUTCString(),
    };
    if (range) headers["content-range"] = `bytes ${start}-${end}/${size}`;
    response.writeHead(range ? 206 : 200, headers);
    if (request.method === "HEAD" || size === 0) {
      response.end();
      return true;
    }
    // A client gone during the stat has had its "close" already: a file piped to it stays open.
    if (response.destroyed) return true;
    // Streamed from the file: a segment is never read into memory whole.
    const stream = createReadStream(location, { start, end });
    stream.on("error", () => response.destroy());
    response.on("close", () => stream.destroy());
    stream.pipe(response);
    return true;
  };
}

const EXPORT = "export";

/** Streams a span as one file; an error before the first byte is a JSON reply, after it a cut. */
async function exportSpan(
  hub: RecordingHub,
  path: string,
  request: Parameters<HttpRoute>[0],
  response: Parameters<HttpRoute>[1],
  url: URL,
  fail: (status: number, code: string, message: string) => void,
): Promise<void> {
  let made;
  try {
    checkSpanQuery(url.searchParams, ["from", "to", "format", "token"]);
    made = await whileReplyIsMade(request, () =>
      hub.exportSpan(path, {
        from: url.searchParams.get("from"),
        to: url.searchParams.get("to"),
        format: url.searchParams.get("format"),
      }));
  } catch (error) {
    if (!(error instanceof SpanError)) throw error;
    fail(error.status, error.code, error.message);
    return;
  }
  if (request.socket.destroyed) { // the client left while it was made
    await made.body.cancel();
    return;
  }
  // The length is not known until the end: the reply is chunked, and a failure cuts it short.
  response.writeHead(200, {
    "content-type": contentTypes[made.format],
    "content-disposition": `attachment; filename="${made.filename}"`,
    "cache-control": "no-store",
  });
  if (request.method === "HEAD") {
    await made.body.cancel();
    response.end();
    return;
  }
  const body = Readable.fromWeb(made.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("error", (error) => {
    console.error(`Export of '/${path}' cut short: ${error.message}`);
    response.destroy();
  });
  response.on("close", () => body.destroy());
  body.pipe(response);
}

/**
 * The byte range a `Range` header asks for (one range; several are served whole), null for the
 * whole file, or "unsatisfiable".
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null | "unsatisfiable" {
  const match = header?.match(/^bytes=(\d*)-(\d*)$/);
  if (!match || (match[1] === "" && match[2] === "")) return null;
  if (match[1] === "") { // the last N bytes
    const length = Number(match[2]);
    if (length === 0) return "unsatisfiable";
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(match[1]);
  // A last byte before the first makes the header invalid, which RFC 9110 says to ignore.
  if (match[2] !== "" && Number(match[2]) < start) return null;
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}
