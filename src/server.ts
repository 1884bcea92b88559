/**
 * The HTTP and WebSocket transport. node:http rather than Deno.serve: Deno
 * 2.9's own HTTP path loses the unread tail of a request body when the
 * client half-closes (DESIGN.md), which the push endpoint cannot afford, and
 * one server serves every route.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
// @ts-types="npm:@types/ws@8.18.1"
import { type WebSocket, WebSocketServer } from "ws";
import { ServerError } from "./errors.ts";
import { errorReply, handleMessage, type Handlers, MAX_MESSAGE_BYTES } from "./protocol.ts";

/** Frames above this are refused by closing (1009); up to it they get a MESSAGE_TOO_LARGE reply. */
const HARD_FRAME_LIMIT = 16 * MAX_MESSAGE_BYTES;
/** A client that lets this much pile up unread is too slow to keep. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export type HttpRoute = (
  request: http.IncomingMessage,
  response: http.ServerResponse,
  url: URL,
) => boolean | Promise<boolean>;

export interface TransportOptions {
  host: string;
  port: number;
  path: string;
  handlers: Handlers;
  /** Tried in order for plain HTTP requests; a route returns true when it answered. */
  routes: HttpRoute[];
}

export interface Transport {
  port: number;
  url: string;
  clientCount(): number;
  broadcast(message: { type: string; payload: unknown }): void;
  close(): Promise<void>;
}

export function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

export function formatUrl(scheme: string, host: string, port: number, path = ""): string {
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return `${scheme}://${shownHost}:${port}${path}`;
}

export async function startTransport(options: TransportOptions): Promise<Transport> {
  const clients = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: HARD_FRAME_LIMIT });

  const server = http.createServer(async (request, response) => {
    try {
      const url = new URL(request.url ?? "/", "http://localhost");
      for (const route of options.routes) {
        if (await route(request, response, url)) return;
      }
      if (url.pathname === options.path) {
        sendJson(response, 426, {
          error: {
            code: "UPGRADE_REQUIRED",
            message: `Connect with a WebSocket to ${options.path}`,
          },
        });
      } else {
        sendJson(response, 404, {
          error: { code: "NOT_FOUND", message: `No route for ${request.method} ${url.pathname}` },
        });
      }
    } catch (error) {
      console.error("HTTP request failed:", error);
      if (!response.headersSent) {
        sendJson(response, 500, { error: { code: "INTERNAL", message: "Internal server error" } });
      } else {
        response.destroy();
      }
    }
  });

  server.on("upgrade", (request, socket, head) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname !== options.path) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => accept(ws));
  });

  function accept(ws: WebSocket): void {
    clients.add(ws);
    ws.on("close", () => clients.delete(ws));
    ws.on("error", (error) => console.warn("WebSocket client error:", error.message));
    ws.on("message", async (data, isBinary) => {
      // binaryType is the default "nodebuffer": a whole message arrives as one Buffer.
      const bytes = data as Buffer;
      let reply;
      if (isBinary) {
        reply = errorReply(
          new ServerError("INVALID_REQUEST", "Binary frames are not accepted; send JSON as text", {
            path: null,
          }),
          null,
          null,
        );
      } else if (bytes.length > MAX_MESSAGE_BYTES) {
        reply = errorReply(
          new ServerError(
            "MESSAGE_TOO_LARGE",
            `Message of ${bytes.length} bytes is over the limit of ${MAX_MESSAGE_BYTES} bytes`,
            { limit: MAX_MESSAGE_BYTES, size: bytes.length },
          ),
          null,
          null,
        );
      } else {
        reply = await handleMessage(bytes.toString("utf8"), options.handlers);
      }
      send(ws, reply);
    });
  }

  function send(ws: WebSocket, message: unknown): void {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      ws.close(1013, "Client is not reading its messages");
      return;
    }
    ws.send(JSON.stringify(message));
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    url: formatUrl("ws", options.host, port, options.path),
    clientCount: () => clients.size,
    broadcast(message) {
      const text = JSON.stringify(message);
      for (const ws of clients) {
        if (ws.readyState !== ws.OPEN) continue;
        if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
          ws.close(1013, "Client is not reading its messages");
          continue;
        }
        ws.send(text);
      }
    },
    async close() {
      const closed = [...clients].map((ws) =>
        new Promise<void>((resolve) => {
          ws.once("close", () => resolve());
          ws.close(1001, "Server shutting down");
          // A client that does not answer the close frame is cut off.
          setTimeout(() => {
            ws.terminate();
            resolve();
          }, 2000).unref?.();
        })
      );
      await Promise.all(closed);
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
