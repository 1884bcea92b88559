/**
 * Bus messages without a periodic timer (docs/architecture.md, threading rule 4): a thread of its
 * own (bus_watch_worker.ts) waits in g_poll on the descriptor of every Pipeline's bus, and wakes
 * the main thread when one holds a message. The main thread then drains the buses that hold
 * messages (withMessages) and sends the set of descriptors again. Only descriptors cross to that
 * thread, never a GStreamer object; a descriptor that closes while it waits keeps its file open
 * until that wait ends (the kernel holds it), and the next set no longer has it.
 */
import { Layout } from "./layout.ts";
import { lib, type Pointer } from "./native.ts";

/** The descriptors of the buses of every Pipeline not disposed (Pipeline adds and removes them). */
const busDescriptors = new Set<number>();
let running: BusWatch | null = null;

/** A bus's descriptor: readable while a message waits on it. */
export function busDescriptor(bus: Pointer): number {
  const pollFd = new Uint8Array(Layout.GPollFD.size);
  lib().gst.gst_bus_get_pollfd(bus, pollFd);
  return new DataView(pollFd.buffer).getInt32(Layout.GPollFD.fd, true);
}

/** Watches a new Pipeline's bus from now on. */
export function watchBus(descriptor: number): void {
  busDescriptors.add(descriptor);
  running?.added();
}

/** Stops watching a bus; called before the bus can be freed (its descriptor number reused). */
export function unwatchBus(descriptor: number): void {
  busDescriptors.delete(descriptor);
}

export class BusWatch {
  readonly #onMessages: () => void;
  readonly #minIntervalMs: number;
  /** A bus of our own, posted on to end the thread's wait when a bus is added. */
  readonly #wakeBus: Pointer;
  readonly #wakeDescriptor: number;
  #worker: Worker | null;
  /** The thread waits on the set sent last; a new bus needs a wake-up to be in the next one. */
  #waiting = false;
  #wakePosted = false;
  #lastRoundAt = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Runs `onMessages` on the main thread when a bus holds a message, at most once every
   * `minIntervalMs` (a pipeline posting many messages gets them in batches).
   */
  constructor(onMessages: () => void, minIntervalMs: number) {
    if (running !== null) throw new Error("The bus watch is already running");
    this.#onMessages = onMessages;
    this.#minIntervalMs = minIntervalMs;
    this.#wakeBus = lib().gst.gst_bus_new()!;
    this.#wakeDescriptor = busDescriptor(this.#wakeBus);
    this.#worker = new Worker(new URL("./bus_watch_worker.ts", import.meta.url), {
      type: "module",
    });
    this.#worker.onmessage = (event: MessageEvent<boolean>) => this.#woken(event.data);
    this.#worker.onerror = (event) => {
      event.preventDefault();
      // Messages must still be seen: poll on a timer, as before the thread existed.
      console.error(`The bus watch thread failed (${event.message}); polling buses on a timer`);
      this.#worker?.terminate();
      this.#worker = null;
      this.#waiting = false;
      this.#timer = setInterval(() => this.#onMessages(), this.#minIntervalMs);
    };
    running = this;
    this.#send();
  }

  /** A bus was added: the thread, if waiting on an older set, wakes and gets the new one. */
  added(): void {
    if (!this.#waiting || this.#wakePosted) return;
    const { gst } = lib();
    this.#wakePosted = gst.gst_bus_post(this.#wakeBus, gst.gst_message_new_eos(null)) !== 0;
  }

  /** Ends the thread; buses are no longer watched. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    running = null;
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    this.#worker?.terminate();
    this.#worker = null;
    // A thread still in g_poll holds the descriptor's file until it returns; freeing the bus is safe.
    const { gst } = lib();
    this.#drainWakeBus();
    gst.gst_object_unref(this.#wakeBus);
  }

  /** The thread's wait ended: `busReady` when a bus holds a message, else only to take a new set. */
  #woken(busReady: boolean): void {
    this.#waiting = false;
    if (this.#closed) return;
    this.#drainWakeBus();
    if (!busReady) return this.#send();
    const wait = this.#lastRoundAt + this.#minIntervalMs - performance.now();
    if (wait > 0) this.#timer = setTimeout(() => this.#round(), wait);
    else this.#round();
  }

  #round(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    this.#lastRoundAt = performance.now();
    try {
      this.#onMessages();
    } finally {
      this.#send();
    }
  }

  #send(): void {
    this.#worker?.postMessage([this.#wakeDescriptor, ...busDescriptors]);
    this.#waiting = this.#worker !== null;
  }

  #drainWakeBus(): void {
    const { gst } = lib();
    for (;;) {
      const message = gst.gst_bus_pop_filtered(this.#wakeBus, -1);
      if (message === null) break;
      gst.gst_message_unref(message);
    }
    this.#wakePosted = false;
  }
}
