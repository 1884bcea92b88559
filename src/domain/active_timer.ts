/**
 * A repeating timer that runs only while its owner has something for it to watch. Every wake-up
 * of the main thread costs CPU even when the callback does nothing (about 0.01 % of a core on
 * this machine kind for each wake-up a second; docs/architecture.md, threading rule 4), so a hub with
 * nothing to watch keeps no timer running.
 */
export class ActiveTimer {
  readonly #intervalMs: number;
  readonly #tick: () => void;
  readonly #busy: () => boolean;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** `tick` runs every `intervalMs` while `busy()` says there is something to watch. */
  constructor(intervalMs: number, tick: () => void, busy: () => boolean) {
    this.#intervalMs = intervalMs;
    this.#tick = tick;
    this.#busy = busy;
  }

  /** Starts the timer if it is not running: call it whenever something to watch is added. */
  wake(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => {
      if (this.#busy()) this.#tick();
      if (!this.#busy()) this.#stop();
    }, this.#intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /** Stops for good. */
  close(): void {
    this.#closed = true;
    this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
