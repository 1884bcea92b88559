/**
 * Bus messages without a periodic timer (docs/architecture.md, threading rule 4): a `g_poll` on
 * Deno's FFI pool waits on the descriptor of every Pipeline's bus, and its end wakes the main
 * thread when one holds a message. The main thread then drains the buses that hold messages
 * (withMessages) and starts the next wait, with the set of descriptors as it is then. Only
 * descriptors cross to that thread, never a GStreamer object; a descriptor that closes while it
 * waits keeps its file open until that wait ends (the kernel holds it), and the next set no longer
 * has it.
 */
import { G_IO_IN, Layout } from "./layout.ts";
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
  /**
   * A bus of our own, posted on to end the wait: when a bus is added, and at close. Freed once no
   * wait holds its descriptor.
   */
  readonly #wakeBus: Pointer;
  readonly #wakeDescriptor: number;
  /** The wait under way (its GPollFD array stays referenced here until it ends). */
  #waiting: { pollFds: Uint8Array; done: Promise<void> } | null = null;
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
    running = this;
    this.#wait();
  }

  /** A bus was added: a wait on an older set ends, and the next one has the new bus. */
  added(): void {
    if (this.#waiting === null) return;
    this.#wake();
  }

  /** Stops watching; resolves once the wait under way has ended and the wake bus is freed. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      running = null;
      clearTimeout(this.#timer);
      if (this.#waiting === null) this.#freeWakeBus();
      else this.#wake();
    }
    return this.#waiting?.done ?? Promise.resolve();
  }

  #wake(): void {
    if (this.#wakePosted) return;
    const { gst } = lib();
    this.#wakePosted = gst.gst_bus_post(this.#wakeBus, gst.gst_message_new_eos(null)) !== 0;
  }

  /** Waits on a pool thread until the wake bus or a pipeline's bus holds a message. */
  #wait(): void {
    const descriptors = [this.#wakeDescriptor, ...busDescriptors];
    const { size, fd, events, revents } = Layout.GPollFD;
    const pollFds = new Uint8Array(descriptors.length * size);
    const view = new DataView(pollFds.buffer);
    descriptors.forEach((descriptor, i) => {
      view.setInt32(i * size + fd, descriptor, true);
      view.setUint16(i * size + events, G_IO_IN, true);
    });
    const done = lib().glib.g_poll_async(pollFds, descriptors.length, -1).then((found) => {
      this.#waiting = null;
      // The wake bus's is the first descriptor; a bus of the rest (or an interrupted poll, -1)
      // means there are buses to drain.
      this.#woken(
        found < 0 || descriptors.some((_, i) => i > 0 && view.getUint16(i * size + revents, true)),
      );
    });
    this.#waiting = { pollFds, done };
  }

  /** The wait ended: `busReady` when a bus holds a message, else only to take a new set. */
  #woken(busReady: boolean): void {
    this.#drainWakeBus();
    if (this.#closed) return this.#freeWakeBus();
    if (!busReady) return this.#wait();
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
      this.#wait();
    }
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

  #freeWakeBus(): void {
    this.#drainWakeBus();
    lib().gst.gst_object_unref(this.#wakeBus);
  }
}
