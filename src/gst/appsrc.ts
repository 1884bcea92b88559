/**
 * Feeding bytes into an appsrc from JS (the push endpoint), one call per received chunk, and
 * reading an identity element's counters. Both hold a reference of their own to the element
 * (docs/architecture.md, ownership): a push outlives awaits on the request body, and the
 * pipeline may be deleted meanwhile; the element then stays valid (flushing) until `release`.
 */
import { cstr, lib, type Pointer } from "./native.ts";
import { padCaps, structureCounters } from "./element.ts";

const FLOW_OK = 0;
const statsName = cstr("stats");
const counterFields = { buffers: cstr("num-buffers"), bytes: cstr("num-bytes") };

/** An element reference taken when stored and dropped exactly once, by `release`. */
class OwnedElement {
  #element: Pointer | null;

  constructor(element: Pointer) {
    this.#element = lib().gst.gst_object_ref(element)!;
  }

  /** The element, or null once released. */
  get element(): Pointer | null {
    return this.#element;
  }

  release(): void {
    if (this.#element === null) return;
    lib().gst.gst_object_unref(this.#element);
    this.#element = null;
  }
}

export class AppSource extends OwnedElement {
  /** Copies `bytes` into a GstBuffer (the view lives only for this call) and queues it; false once the appsrc refuses data. */
  push(bytes: Uint8Array<ArrayBuffer>): boolean {
    const element = this.element;
    if (element === null) return false;
    const { gst, app } = lib();
    const buffer = gst.gst_buffer_new_memdup(bytes, BigInt(bytes.byteLength));
    if (buffer === null) return false;
    return app.gst_app_src_push_buffer(element, buffer) === FLOW_OK; // takes the buffer
  }

  end(): void {
    const element = this.element;
    if (element !== null) lib().app.gst_app_src_end_of_stream(element);
  }

  /** Bytes queued in the appsrc, not yet taken by its streaming thread. */
  queuedBytes(): number {
    const element = this.element;
    return element === null ? 0 : Number(lib().app.gst_app_src_get_current_level_bytes(element));
  }
}

/** Buffers and bytes that went through an identity element (its `stats` property). */
export class IdentityCounters extends OwnedElement {
  read(): { buffers: number; bytes: number } {
    const element = this.element;
    return element === null
      ? { buffers: 0, bytes: 0 }
      : structureCounters(element, statsName, counterFields);
  }

  /** The caps of what leaves the element (a parser's output: codec, size, rate); null before any. */
  caps(): string | null {
    const element = this.element;
    return element === null ? null : padCaps(element, "src", "current");
  }
}
