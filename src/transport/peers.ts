/**
 * WebSocket links to the other nodes of a cluster (docs/cluster.md), for requests forwarded to the
 * node that holds a pipeline. One link per node, opened on first use and again after it drops; it
 * connects with `?peer=1`, so that the node answers from its own pipelines and forwards nothing
 * further, and subscribes to no events (events travel through PostgreSQL).
 */
// @ts-types="npm:@types/ws@8.18.1"
import { WebSocket } from "ws";
import { ApiError } from "../api/errors.ts";
import type { Reply } from "../api/protocol.ts";

/** How long a forwarded request may take before the client is told the node did not answer. */
const PEER_TIMEOUT_MS = 15_000;
/**
 * How long opening a link may take: a node answers the upgrade at once, while a frozen one
 * (SIGSTOP) takes the connection in its kernel and never answers it.
 */
const PEER_HANDSHAKE_TIMEOUT_MS = 3_000;
/** The query parameter that marks a node's link to another node. */
export const PEER_PARAMETER = "peer";

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

class PeerLink {
  readonly #pending = new Map<string, Pending>();
  readonly #opened: Promise<WebSocket>;
  #nextId = 0;
  #closed = false;

  constructor(readonly node: string, wsUrl: string) {
    const socket = new WebSocket(wsUrl, { handshakeTimeout: PEER_HANDSHAKE_TIMEOUT_MS });
    this.#opened = new Promise((resolve, reject) => {
      socket.once("open", () => {
        socket.send(JSON.stringify({ type: "subscribe", payload: { events: [] } }));
        resolve(socket);
      });
      socket.once("error", reject);
    });
    this.#opened.catch(() => {}); // reported to the requests that wait for it
    socket.on("message", (data) => this.#onMessage(String(data)));
    socket.on("close", () => this.#fail(`the link to node '${node}' closed`));
    socket.on(
      "error",
      (error) => this.#fail(`the link to node '${node}' failed: ${error.message}`),
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a request once the link is open; `timeoutMs` counts from now, the opening included. */
  request(type: string, payload: unknown, timeoutMs: number): Promise<Reply> {
    const requestId = `peer-${++this.#nextId}`;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(unavailable(this.node, `it did not answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.#pending.set(requestId, { resolve, reject, timer });
      this.#opened.then(
        (socket) => {
          if (this.#pending.has(requestId)) {
            socket.send(JSON.stringify({ type, payload, requestId }));
          }
        },
        (error) => {
          this.#closed = true;
          if (!this.#pending.delete(requestId)) return;
          clearTimeout(timer);
          reject(unavailable(this.node, `it cannot be reached: ${(error as Error).message}`));
        },
      );
    });
  }

  close(): void {
    this.#closed = true;
    this.#opened.then((socket) => socket.close(), () => {});
  }

  #onMessage(text: string): void {
    let message: { type?: string; requestId?: unknown };
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type !== "result" && message.type !== "error") return;
    const pending = this.#pending.get(String(message.requestId));
    if (!pending) return;
    this.#pending.delete(String(message.requestId));
    clearTimeout(pending.timer);
    pending.resolve(message as Reply);
  }

  #fail(reason: string): void {
    this.#closed = true;
    for (const [requestId, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(unavailable(this.node, reason));
      this.#pending.delete(requestId);
    }
  }
}

function unavailable(node: string, reason: string): ApiError {
  return new ApiError(
    "NODE_UNAVAILABLE",
    `Node '${node}', which holds this, could not be asked: ${reason}; try again once it is back ` +
      "(its pipelines move to other nodes after its lease)",
    { node },
  );
}

export class PeerLinks {
  readonly #links = new Map<string, PeerLink>();
  readonly #path: string;
  readonly #token: string | undefined;

  constructor(options: { path: string; token?: string }) {
    this.#path = options.path;
    this.#token = options.token;
  }

  /** Sends a request to the node at `advertiseUrl` and returns its reply as it came. */
  request(
    node: string,
    advertiseUrl: string,
    type: string,
    payload: unknown,
    timeoutMs = PEER_TIMEOUT_MS,
  ): Promise<Reply> {
    const url = new URL(this.#path, advertiseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set(PEER_PARAMETER, "1");
    if (this.#token !== undefined) url.searchParams.set("token", this.#token);
    const key = `${node} ${url}`;
    let link = this.#links.get(key);
    if (!link || link.closed) {
      link?.close();
      link = new PeerLink(node, url.toString());
      this.#links.set(key, link);
    }
    return link.request(type, payload, timeoutMs);
  }

  close(): void {
    for (const link of this.#links.values()) link.close();
    this.#links.clear();
  }
}
