/**
 * Reading a request body as a stream of chunks with a bounded buffer.
 *
 * Deno 2.9's node:http reports a request whose client half-closes right
 * after its last byte (ffmpeg does, at the end of every push) as aborted,
 * and drops what the stream still held unread, even though every byte had
 * arrived (`request.complete`). So the body is taken out of the stream as
 * soon as it arrives, into a queue here that pauses the socket (TCP then
 * slows the sender) above `limitBytes`; and an abort after the body was
 * complete counts as its end.
 *
 * A reply that refuses a body (or answers before its end) closes the connection after a lingering
 * close: see closeAfterReply.
 */
import type http from "node:http";
import type { Socket } from "node:net";

/** How long a connection closed after its reply still takes, and drops, what the client sends. */
export const LINGER_MS = 2000;

/** Connections whose last reply closes them: a request pipelined after it is not taken. */
const closingSockets = new WeakSet<object>();

/** The reader of each request whose body is being read: a lingering close drops its queue. */
const readers = new WeakMap<http.IncomingMessage, BodyReader>();

/**
 * Replies that end the exchange: the connection closes once the reply is out, and the reply says
 * so, so a client does not send its next request on it (that request would be taken unanswered).
 *
 * The close lingers, as Apache's and nginx's do. Node's HTTP server (which Deno's node:http runs)
 * closes such a connection with `socket.destroySoon()`: a FIN after the reply, then at once a
 * destroy. Bytes of the body that the client still sends then meet a closed socket and TCP
 * answers with a reset, which can make the client drop the reply it has not read yet (fetch fails
 * with "Broken pipe" and no status). So for this socket destroySoon sends the FIN, reads and drops
 * what still comes, and destroys the socket once the client closes its side, or after LINGER_MS.
 */
export function closeAfterReply(
  request: http.IncomingMessage,
  response: http.ServerResponse,
): void {
  if (!response.headersSent) response.setHeader("connection", "close");
  const socket = request.socket as Socket & { destroySoon(): void };
  closingSockets.add(socket);
  const destroyAfterReply = socket.destroySoon.bind(socket);
  socket.destroySoon = () => {
    readers.get(request)?.discard();
    // The client sends nothing more (it half-closed after its body): nothing to wait for.
    if (socket.readableEnded) return destroyAfterReply();
    request.resume();
    socket.end();
    const lingering = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once("end", () => socket.destroy());
    socket.once("close", () => clearTimeout(lingering));
  };
}

/** Whether the connection's last reply closes it (closeAfterReply). */
export function isClosing(socket: object): boolean {
  return closingSockets.has(socket);
}

export class BodyReader {
  readonly #request: http.IncomingMessage;
  readonly #limitBytes: number;
  readonly #chunks: Buffer[] = [];
  #queuedBytes = 0;
  #state: "open" | "ended" | "aborted" = "open";
  /** The reply is out and the connection closing: what still arrives is dropped. */
  #discarding = false;
  #wake: (() => void) | null = null;

  constructor(request: http.IncomingMessage, limitBytes: number) {
    this.#request = request;
    this.#limitBytes = limitBytes;
    readers.set(request, this);
    request.on("data", (chunk: Buffer) => {
      if (this.#discarding) return;
      this.#chunks.push(chunk);
      this.#queuedBytes += chunk.byteLength;
      if (this.#queuedBytes > this.#limitBytes) request.pause();
      this.#notify();
    });
    request.on("end", () => this.#finish("ended"));
    const cut = () => this.#finish(request.complete ? "ended" : "aborted");
    request.on("aborted", cut);
    request.on("error", cut);
    request.on("close", cut);
  }

  /** The next chunk; null at the end of the body; throws when the sender went away mid-body. */
  async next(): Promise<Buffer | null> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#queuedBytes -= chunk.byteLength;
        if (this.#queuedBytes <= this.#limitBytes && this.#state === "open") this.#request.resume();
        return chunk;
      }
      if (this.#state === "ended") return null;
      if (this.#state === "aborted") throw new Error("The sender disconnected mid-body");
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Drops what is queued and all that arrives later; the body reads as ended. */
  discard(): void {
    this.#discarding = true;
    this.#chunks.length = 0;
    this.#queuedBytes = 0;
    this.#request.resume();
    this.#finish("ended");
  }

  #finish(state: "ended" | "aborted"): void {
    if (this.#state === "open") this.#state = state;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
