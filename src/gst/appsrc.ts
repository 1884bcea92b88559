/** Feeding bytes into an appsrc from JS (the push endpoint), one call per received chunk. */
import { cstr, lib, type Pointer } from "./native.ts";
import { structureCounters } from "./element.ts";

const FLOW_OK = 0;
const statsName = cstr("stats");
const counterFields = { buffers: cstr("num-buffers"), bytes: cstr("num-bytes") };

export class AppSource {
  constructor(readonly element: Pointer) {}

  /** Copies `bytes` into a GstBuffer (the view lives only for this call) and queues it; false once the appsrc refuses data. */
  push(bytes: Uint8Array<ArrayBuffer>): boolean {
    const { gst, app } = lib();
    const buffer = gst.gst_buffer_new_memdup(bytes, BigInt(bytes.byteLength));
    if (buffer === null) return false;
    return app.gst_app_src_push_buffer(this.element, buffer) === FLOW_OK; // takes the buffer
  }

  end(): void {
    lib().app.gst_app_src_end_of_stream(this.element);
  }

  /** Bytes queued in the appsrc, not yet taken by its streaming thread. */
  queuedBytes(): number {
    return Number(lib().app.gst_app_src_get_current_level_bytes(this.element));
  }
}

/** Buffers and bytes that went through an identity element (its `stats` property). */
export function identityCounters(element: Pointer): { buffers: number; bytes: number } {
  return structureCounters(element, statsName, counterFields);
}
