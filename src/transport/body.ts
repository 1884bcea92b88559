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
 */
import type http from "node:http";

export class BodyReader {
  readonly #request: http.IncomingMessage;
  readonly #limitBytes: number;
  readonly #chunks: Buffer[] = [];
  #queuedBytes = 0;
  #state: "open" | "ended" | "aborted" = "open";
  #wake: (() => void) | null = null;

  constructor(request: http.IncomingMessage, limitBytes: number) {
    this.#request = request;
    this.#limitBytes = limitBytes;
    request.on("data", (chunk: Buffer) => {
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
