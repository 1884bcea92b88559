/**
 * The HTTP and WebSocket transport. node:http rather than Deno.serve: Deno
 * 2.9's own HTTP path loses the unread tail of a request body when the
 * client half-closes (ffmpeg does, after every push: denoland/deno #36624, checked on 2.9.6),
 * which the push endpoint cannot afford; node:http loses nothing when read at once (body.ts). And
 * one server serves every route.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import { type AddressInfo, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
// @ts-types="npm:@types/ws@8.18.1"
import * as wsModule from "ws";
// @ts-types="npm:@types/ws@8.18.1"
import { type WebSocket, WebSocketServer } from "ws";
import { ActiveTimer } from "../domain/active_timer.ts";
import { ApiError } from "../api/errors.ts";
import { closeAfterReply } from "./body.ts";
import { PEER_PARAMETER } from "./peers.ts";
import {
  errorReply,
  type EventType,
  handleMessage,
  type Handlers,
  MAX_MESSAGE_BYTES,
  readEnvelope,
  type Route,
  type Subscription,
} from "../api/protocol.ts";

/** How early a client's stats may go out: timers do not land exactly on the interval. */
export const STATS_SLACK_MS = 5;

/** Frames above this are refused by closing (1009); up to it they get a MESSAGE_TOO_LARGE reply. */
const HARD_FRAME_LIMIT = 16 * MAX_MESSAGE_BYTES;
/** A refused browser origin is logged at most this often. */
const ORIGIN_LOG_INTERVAL_MS = 60_000;
/** A client that lets this much pile up unread is too slow to keep. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** How long messages to a client may wait to leave together (holdWrites); a reply ends the wait. */
const WRITE_HOLD_MS = 5;

/**
 * ws's own framing (`Sender.frame`, public in ws but not in its types): a whole unmasked text frame
 * as its header and payload. Framed once, a message goes to many clients as the same buffers.
 */
const frameParts = (wsModule as unknown as {
  Sender: {
    frame(data: Buffer, options: FrameOptions): Buffer[];
  };
}).Sender.frame;
interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
}
const TEXT_OPCODE = 1;

function textFrame(text: string): Buffer[] {
  const data = Buffer.from(text);
  return frameParts(data, { fin: true, opcode: TEXT_OPCODE, mask: false, readOnly: true });
}

export type HttpRoute = (
  request: http.IncomingMessage,
  response: http.ServerResponse,
  url: URL,
) => boolean | Promise<boolean>;

export interface TransportOptions {
  /** The host as configured, for the printed URL. */
  host: string;
  /** Where to listen: every address `host` stands for (addresses.ts). */
  addresses: string[];
  port: number;
  path: string;
  handlers: Handlers;
  /** Sends requests to the node that should answer them (src/api/forward.ts); none alone. */
  route?: Route;
  /** Tried in order for plain HTTP requests; a route returns true when it answered. */
  routes: HttpRoute[];
  /** Told each WebSocket request's type, outcome and time from its message read to its reply. */
  observeRequest?: (request: string | null, ok: boolean, milliseconds: number) => void;
  /** When set, WebSocket connections and every HTTP path but `openPaths` must present it. */
  authToken?: string;
  /** HTTP paths anyone may reach (health checks, the console's page). */
  openPaths?: string[];
  /** HTTP paths under these prefixes anyone may reach (the console's assets). */
  openPathPrefixes?: string[];
  /**
   * HTTP paths under these prefixes answer browsers of the allowed origins (any when none are
   * set) with CORS headers, a refusal included, so that a page elsewhere can read why (WHEP).
   */
  corsPrefixes?: string[];
  /** Browser origins allowed to open a WebSocket; empty allows any. */
  allowedOrigins?: string[];
  maxClients?: number;
  /** Per WebSocket client; 0 or absent means no limit. */
  maxRequestsPerSecond?: number;
  /**
   * Other nodes' links (`?peer=1`) are not limited, as they carry their clients' requests, each
   * counted where it came in. Only in a cluster: on a server alone, a link that says it is a
   * peer is a client like any other.
   */
  peersUnlimited?: boolean;
  /** How often a client gets stats until it subscribes with its own interval. */
  statsIntervalMs: number;
  /** An HTTP connection that sends nothing for this long is closed (WebSockets are exempt). */
  httpIdleTimeoutMs?: number;
  /**
   * Each WebSocket is pinged this often; one that has not answered the last ping by the next is
   * cut off (a peer gone without a close would hold its client slot for ever).
   */
  wsPingIntervalMs?: number;
}

/**
 * Whether a browser's Origin is the server itself (the console it serves): its host and port are
 * the Host the browser sent, and that host is an IP address, localhost or the configured host. A
 * page elsewhere cannot send another site's Host; the name check shuts out DNS rebinding (a name
 * of the attacker's that resolves to this server).
 */
function sameOrigin(origin: string, host: string | undefined, serverHost: string): boolean {
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    const name = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const known = isIP(name) !== 0 || name === "localhost" || name === serverHost.toLowerCase();
    return known && (url.protocol === "http:" || url.protocol === "https:") &&
      url.host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** CORS headers for a browser request from an allowed origin; none for others. */
function corsHeaders(
  request: http.IncomingMessage,
  allowedOrigins: ReadonlySet<string>,
): Record<string, string> {
  const origin = request.headers.origin;
  if (origin === undefined || (allowedOrigins.size > 0 && !allowedOrigins.has(origin))) return {};
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": "POST, DELETE, PATCH, OPTIONS",
    // range: a page asking for part of a recording (the header is not one a preflight skips).
    "access-control-allow-headers": "authorization, content-type, if-match, range",
    "access-control-expose-headers":
      "location, etag, link, content-range, accept-ranges, content-disposition",
    "access-control-max-age": "600",
    vary: "origin",
  };
}

/**
 * Runs `work` (the server making a reply: an HLS stream's first segment, a WebRTC answer) with
 * the connection's idle timeout suspended: the client is waiting, not idle.
 */
export async function whileReplyIsMade<T>(
  request: http.IncomingMessage,
  work: () => Promise<T>,
): Promise<T> {
  const socket = request.socket as Socket;
  const idleMs = socket.timeout;
  socket.setTimeout(0);
  try {
    return await work();
  } finally {
    if (idleMs && !socket.destroyed) socket.setTimeout(idleMs);
  }
}

/** Compares in constant time whatever the lengths (both sides are hashed first). */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The token a request presents: Authorization Bearer, the `token` query parameter, or a WebSocket subprotocol. */
export function presentsToken(request: http.IncomingMessage, url: URL, token: string): boolean {
  const candidates: string[] = [];
  const authorization = request.headers.authorization;
  const bearer = authorization?.match(/^Bearer\s+(.+)$/i);
  if (bearer) candidates.push(bearer[1].trim());
  const query = url.searchParams.get("token");
  if (query !== null) candidates.push(query);
  const protocols = request.headers["sec-websocket-protocol"];
  if (protocols) candidates.push(...protocols.split(",").map((p) => p.trim()));
  // Every candidate is compared, so the time taken does not tell which one was close.
  return candidates.map((candidate) => sameSecret(candidate, token)).includes(true);
}

const unauthorizedBody = {
  error: {
    code: "UNAUTHORIZED",
    message: "This server needs its token: send 'Authorization: Bearer <token>', " +
      "or a 'token' query parameter, or (WebSocket) the token as a subprotocol",
  },
};

/** Answers an upgrade request that is refused, with a JSON body like every other HTTP error. */
function refuseUpgrade(
  socket: Duplex,
  status: number,
  reason: string,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(text)}`,
    "Connection: close",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join("\r\n")}\r\n\r\n${text}`);
}

/** A token bucket: `rate` requests a second, bursts up to `rate`. */
class RequestBudget {
  #tokens: number;
  #at = performance.now();
  constructor(readonly rate: number) {
    this.#tokens = rate;
  }
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

export interface Transport {
  port: number;
  url: string;
  clientCount(): number;
  /** Sends an event to every client subscribed to it. */
  broadcast(message: { type: string; payload: unknown; node?: string }): void;
  /** When the first client's stats interval passes (Infinity when no client wants stats); stats
   * go out up to STATS_SLACK_MS before. */
  nextStatsAt(): number;
  /** Sends the snapshot to the clients whose interval has passed, narrowed to their pipelines. */
  sendStats(snapshot: { pipelines: { id: string }[] }, now: number): void;
  close(): Promise<void>;
}

interface Client {
  subscription: Subscription;
  lastStatsAt: number;
  /** Another node's link: its requests are answered here, never forwarded. */
  peer: boolean;
  /** The WebSocket, its connection, and the frames held for it (holdWrites), if any. */
  ws: WebSocket;
  socket: Duplex;
  held: Buffer[] | null;
  /** It answered the last ping (or has had none yet). */
  answered: boolean;
}

/** Whether an event (not stats) is one the subscription asks for. */
function wants(subscription: Subscription, message: { type: string; payload: unknown }): boolean {
  if (subscription.events && !subscription.events.has(message.type as EventType)) return false;
  const id = (message.payload as { id?: unknown } | null)?.id;
  return !subscription.pipelines || typeof id !== "string" || subscription.pipelines.has(id);
}

/** GET or HEAD: a read, answered alike (Node leaves out a HEAD reply's body). */
export function isRead(request: http.IncomingMessage): boolean {
  return request.method === "GET" || request.method === "HEAD";
}

/**
 * For a route that is only read: answers 405, with Allow, to any other method (true when it did).
 */
export function refusedUnlessRead(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  url: URL,
): boolean {
  if (isRead(request)) return false;
  response.setHeader("allow", "GET, HEAD");
  sendJson(response, 405, {
    error: {
      code: "METHOD_NOT_ALLOWED",
      message: `${request.method} ${url.pathname}: it is only read, with GET (or HEAD)`,
    },
  });
  return true;
}

/** Whether every percent-escape in `path` decodes (decodeURIComponent throws URIError otherwise). */
function decodes(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
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
  const clients = new Map<WebSocket, Client>();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: HARD_FRAME_LIMIT,
    // A browser that offered subprotocols needs one chosen, or it drops the connection: "bearer" of
    // ["bearer", token] rather than the token; a token offered alone can only be echoed.
    handleProtocols: (protocols) => {
      const offered = [...protocols];
      return offered.find((p) => token === undefined || !sameSecret(p, token)) ?? offered[0] ??
        false;
    },
  });

  const token = options.authToken;
  const openPaths = new Set(options.openPaths ?? []);
  const isOpen = (path: string) =>
    openPaths.has(path) || (options.openPathPrefixes ?? []).some((p) => path.startsWith(p));
  const allowedOrigins = new Set(options.allowedOrigins ?? []);
  /** When each refused origin was last logged: a page that retries does not flood the log. */
  const refusedOrigins = new Map<string, number>();
  const logRefusedOrigin = (origin: string) => {
    const now = performance.now();
    if (now - (refusedOrigins.get(origin) ?? -Infinity) < ORIGIN_LOG_INTERVAL_MS) return;
    if (refusedOrigins.size >= 1000) refusedOrigins.clear();
    refusedOrigins.set(origin, now);
    console.warn(
      `Refused a request from origin '${origin}': GSTREAMER_ALLOWED_ORIGINS allows only ` +
        [...allowedOrigins].join(", "),
    );
  };
  /** The request's Origin when GSTREAMER_ALLOWED_ORIGINS refuses it (logged), else null. */
  const refusedOrigin = (request: http.IncomingMessage): string | null => {
    const origin = request.headers.origin;
    if (
      origin === undefined || allowedOrigins.size === 0 || allowedOrigins.has(origin) ||
      sameOrigin(origin, request.headers.host, options.host)
    ) return null;
    logRefusedOrigin(origin);
    return origin;
  };
  const originRefusal = (origin: string, what: string) => ({
    error: {
      code: "ORIGIN_NOT_ALLOWED",
      message:
        `Origin '${origin}' may not ${what}; GSTREAMER_ALLOWED_ORIGINS lists the ones that may`,
    },
  });
  /** A request's target as a URL: a path from its first '/', even "//healthz" (no host there). */
  const requestUrl = (target = "/") =>
    new URL(target.startsWith("/") ? `http://localhost${target}` : target, "http://localhost");
  const handleRequest = async (request: http.IncomingMessage, response: http.ServerResponse) => {
    try {
      const url = requestUrl(request.url);
      if ((options.corsPrefixes ?? []).some((prefix) => url.pathname.startsWith(prefix))) {
        for (const [name, value] of Object.entries(corsHeaders(request, allowedOrigins))) {
          response.setHeader(name, value);
        }
      }
      // Every route decodes its path: one that cannot be decoded is refused here, for all of them.
      if (!decodes(url.pathname)) {
        // Its body (a push's endless stream, say) is not read: the connection closes after.
        closeAfterReply(request, response);
        sendJson(response, 400, {
          error: {
            code: "INVALID_PATH",
            message: `The path ${url.pathname} has a malformed percent-escape: a '%' must be ` +
              "followed by two hexadecimal digits of UTF-8 (write '%' itself as %25)",
          },
        });
        return;
      }
      // A page elsewhere can send a POST without asking first (a CORS "simple" request): one that
      // would change something (a push, a WHIP publish) is refused as its WebSocket would be.
      const origin = isRead(request) || request.method === "OPTIONS"
        ? null
        : refusedOrigin(request);
      if (origin !== null) {
        closeAfterReply(request, response);
        sendJson(response, 403, originRefusal(origin, `${request.method} ${url.pathname}`));
        return;
      }
      // A CORS preflight (OPTIONS) carries no credentials by design, and reveals nothing.
      if (
        token !== undefined && request.method !== "OPTIONS" && !isOpen(url.pathname) &&
        !presentsToken(request, url, token)
      ) {
        response.setHeader("www-authenticate", 'Bearer realm="gstreamer"');
        // The request body is not read: the connection closes after the reply.
        closeAfterReply(request, response);
        sendJson(response, 401, unauthorizedBody);
        return;
      }
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
      // A client that left mid-body (its request "aborted"): nothing failed, no one to answer.
      if ((error as { code?: string }).code === "ECONNRESET" && request.socket.destroyed) return;
      console.error("HTTP request failed:", error);
      if (!response.headersSent) {
        sendJson(response, 500, { error: { code: "INTERNAL", message: "Internal server error" } });
      } else {
        response.destroy();
      }
    }
  };

  const handleUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    // A WebSocket may stay quiet as long as it likes (the upgrade socket is a net.Socket).
    (socket as Socket).setTimeout(0);
    const url = requestUrl(request.url);
    if (url.pathname !== options.path) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    if (token !== undefined && !presentsToken(request, url, token)) {
      refuseUpgrade(socket, 401, "Unauthorized", unauthorizedBody, {
        "WWW-Authenticate": 'Bearer realm="gstreamer"',
      });
      return;
    }
    const origin = refusedOrigin(request);
    if (origin !== null) {
      refuseUpgrade(socket, 403, "Forbidden", originRefusal(origin, "connect"));
      return;
    }
    if (options.maxClients !== undefined && clients.size >= options.maxClients) {
      refuseUpgrade(socket, 503, "Service Unavailable", {
        error: {
          code: "LIMIT_REACHED",
          message: `${clients.size} ${clients.size === 1 ? "client is" : "clients are"} ` +
            "connected, the server's limit " +
            "(GSTREAMER_MAX_CLIENTS); try again later",
          details: { limit: options.maxClients, setting: "GSTREAMER_MAX_CLIENTS" },
        },
      });
      return;
    }
    const peer = url.searchParams.get(PEER_PARAMETER) === "1";
    wss.handleUpgrade(request, socket, head, (ws) => accept(ws, peer, socket));
  };

  /**
   * When the last stats round went out (before the first, when the transport started). A new
   * client counts its interval from there, so that it shares the rounds of the clients before it:
   * counted from its own arrival, each client had rounds of its own, and 50 clients made up to 50
   * rounds a second of every pipeline's figures.
   */
  let lastStatsRoundAt = performance.now();

  const pings = options.wsPingIntervalMs === undefined
    ? null
    : new ActiveTimer(options.wsPingIntervalMs, () => {
      for (const client of clients.values()) {
        if (!client.answered) {
          console.warn(
            `WebSocket client cut off: no answer to a ping within ${options.wsPingIntervalMs} ms`,
          );
          client.ws.terminate();
          continue;
        }
        client.answered = false;
        client.ws.ping();
      }
    }, () => clients.size > 0);

  function accept(ws: WebSocket, peer: boolean, socket: Duplex): void {
    const client: Client = {
      subscription: { statsIntervalMs: options.statsIntervalMs },
      lastStatsAt: lastStatsRoundAt,
      peer,
      ws,
      socket,
      held: null,
      answered: true,
    };
    clients.set(ws, client);
    ws.on("pong", () => (client.answered = true));
    pings?.wake();
    const rate = options.maxRequestsPerSecond;
    const budget = rate && !(peer && options.peersUnlimited) ? new RequestBudget(rate) : null;
    ws.on("close", () => {
      clients.delete(ws);
      releaseWrites(client);
    });
    ws.on("error", (error) => console.warn("WebSocket client error:", error.message));
    ws.on("message", async (data, isBinary) => {
      const readAt = performance.now();
      // binaryType is the default "nodebuffer": a whole message arrives as one Buffer.
      const bytes = data as Buffer;
      let reply;
      if (isBinary) {
        reply = errorReply(
          new ApiError("INVALID_REQUEST", "Binary frames are not accepted; send JSON as text", {
            path: null,
          }),
          null,
          null,
        );
      } else if (bytes.length > MAX_MESSAGE_BYTES) {
        reply = errorReply(
          new ApiError(
            "MESSAGE_TOO_LARGE",
            `Message of ${bytes.length} bytes is over the limit of ${MAX_MESSAGE_BYTES} bytes`,
            { limit: MAX_MESSAGE_BYTES, size: bytes.length },
          ),
          null,
          null,
        );
      } else if (budget && !budget.take()) {
        const { request, requestId } = readEnvelope(bytes.toString("utf8"));
        reply = errorReply(
          new ApiError(
            "RATE_LIMITED",
            `More than ${budget.rate} requests a second from this client ` +
              "(GSTREAMER_MAX_REQUESTS_PER_SECOND); this one was not run, send it again later",
            { limit: budget.rate, setting: "GSTREAMER_MAX_REQUESTS_PER_SECOND" },
          ),
          request,
          requestId,
        );
      } else {
        reply = await handleMessage(
          bytes.toString("utf8"),
          options.handlers,
          client,
          options.route,
        );
      }
      // A request's events go before its reply: with the reply, all it had to say is out.
      sendText(ws, JSON.stringify(reply), { now: true });
      options.observeRequest?.(reply.request, reply.ok, performance.now() - readAt);
    });
  }

  /**
   * `text` as a string, or framed once (textFrame) when the same message goes to many clients.
   * Held (holdWrites), or with `now` (a reply) written at once with what is held before it: a
   * reply with nothing held before it starts no hold, whose timer would cost each request more
   * than its write.
   */
  function sendText(ws: WebSocket, text: string | Buffer[], { now = false } = {}): void {
    if (ws.readyState !== ws.OPEN) return;
    const client = clients.get(ws);
    if (!client) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      // What is held would follow the close frame: it is dropped with the client.
      client.held = null;
      ws.close(1013, "Client is not reading its messages");
      return;
    }
    const frames = typeof text === "string" ? textFrame(text) : text;
    if (!now) holdWrites(client).push(...frames);
    else if (client.held) {
      client.held.push(...frames);
      releaseWrites(client);
    } else client.socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }

  /** Clients whose writes are held, and the one timer that ends the hold for all of them. */
  const holding = new Set<Client>();
  let holdEnds: ReturnType<typeof setTimeout> | undefined;

  /**
   * Messages to a client wait up to WRITE_HOLD_MS and leave in one write: each write to a socket
   * is a system call that (on loopback) also runs the receiver's side and wakes it, which costs
   * more than the frame. Every client gets every event by default, so with many clients each
   * event was a write to each of them: with 50 clients making live pipelines at once, holding
   * writes for 5 ms rather than for one turn of the event loop halved the server's writes (9.9
   * against 18.7 a cycle, bench/ab.ts). A reply ends the hold for its client at once, taking the
   * events before it along: replies wait for nothing, and still come after the events their
   * request caused. The frames are held here and joined into one buffer, rather than corked in the
   * socket: each write to a node:net socket is a trip through Node's stream code, which, with 50
   * clients and every event, had taken a third of the main thread (perf).
   */
  function holdWrites(client: Client): Buffer[] {
    if (client.held) return client.held;
    client.held = [];
    holding.add(client);
    holdEnds ??= setTimeout(() => {
      holdEnds = undefined;
      for (const held of [...holding]) releaseWrites(held);
    }, WRITE_HOLD_MS);
    return client.held;
  }

  function releaseWrites(client: Client): void {
    const { held } = client;
    client.held = null;
    holding.delete(client);
    // A hold that starts later gets its full time, not the rest of this one's.
    if (holding.size === 0) {
      clearTimeout(holdEnds);
      holdEnds = undefined;
    }
    // A client whose close has begun (its close frame may be out) gets nothing more.
    if (!held || held.length === 0 || client.ws.readyState !== client.ws.OPEN) return;
    client.socket.write(held.length === 1 ? held[0] : Buffer.concat(held));
  }

  /** One HTTP server per address, all with the same routes, sockets and clients. */
  const listen = async (address: string, port: number): Promise<http.Server> => {
    const server = http.createServer(handleRequest);
    // Deno's node:http ignores headersTimeout/requestTimeout; an idle socket timeout covers
    // connections that never send a request, stall mid-headers, or stop sending a push body.
    if (options.httpIdleTimeoutMs !== undefined) {
      const idleMs = options.httpIdleTimeoutMs;
      server.on("connection", (socket) => socket.setTimeout(idleMs, () => socket.destroy()));
    }
    server.on("upgrade", handleUpgrade);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, address, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server;
  };
  const [first, ...others] = options.addresses;
  const servers = [await listen(first, options.port)];
  // The others on the port the first got (it may have been 0: any free port).
  const port = (servers[0].address() as AddressInfo).port;
  for (const address of others) {
    try {
      servers.push(await listen(address, port));
    } catch (error) {
      // One address of several (::1 on a machine without IPv6) is not worth refusing to start.
      console.warn(
        `Not listening on ${formatUrl("http", address, port)}: ${(error as Error).message}`,
      );
    }
  }

  return {
    port,
    url: formatUrl("ws", options.host, port, options.path),
    clientCount: () => clients.size,
    broadcast(message) {
      // Encoded and framed once: the same buffers go to every client.
      let frame: Buffer[] | undefined;
      for (const [ws, client] of clients) {
        if (!wants(client.subscription, message)) continue;
        frame ??= textFrame(JSON.stringify(message));
        sendText(ws, frame);
      }
    },
    nextStatsAt() {
      let first = Infinity;
      for (const client of clients.values()) {
        const { subscription } = client;
        if (subscription.events && !subscription.events.has("stats")) continue;
        first = Math.min(first, client.lastStatsAt + subscription.statsIntervalMs);
      }
      return first;
    },
    sendStats(snapshot, now) {
      lastStatsRoundAt = now;
      let everything: Buffer[] | undefined;
      for (const [ws, client] of clients) {
        const { subscription } = client;
        if (subscription.events && !subscription.events.has("stats")) continue;
        if (now - client.lastStatsAt < subscription.statsIntervalMs - STATS_SLACK_MS) continue;
        client.lastStatsAt = now;
        if (subscription.pipelines) {
          const chosen = subscription.pipelines;
          const payload = {
            ...snapshot,
            pipelines: snapshot.pipelines.filter((p) => chosen.has(p.id)),
          };
          sendText(ws, JSON.stringify({ type: "stats", payload }));
        } else {
          everything ??= textFrame(JSON.stringify({ type: "stats", payload: snapshot }));
          sendText(ws, everything);
        }
      }
    },
    async close() {
      pings?.close();
      const closed = [...clients.keys()].map((ws) =>
        new Promise<void>((resolve) => {
          ws.once("close", () => resolve());
          // What is held goes first: after the close frame nothing may follow.
          const client = clients.get(ws);
          if (client) releaseWrites(client);
          ws.close(1001, "Server shutting down");
          // A client that does not answer the close frame is cut off.
          setTimeout(() => {
            ws.terminate();
            resolve();
          }, 2000).unref?.();
        })
      );
      await Promise.all(closed);
      await Promise.all(servers.map((server) => {
        server.closeAllConnections?.();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      }));
    },
  };
}
