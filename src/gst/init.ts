/** Starts GStreamer once and makes it safe to run headless. */
import { lib, pointerSlot, readCString, slotPointer, takeCString } from "./native.ts";
import { crashingElements, demoteElements } from "./registry.ts";

export interface GstRuntime {
  version: string;
  /** Elements that would crash the process here, with the reason. */
  refusedElements: Map<string, string>;
}

let runtime: GstRuntime | undefined;

export function initGstreamer(): GstRuntime {
  if (runtime) return runtime;
  const { gst, glib } = lib();
  const error = pointerSlot();
  if (gst.gst_init_check(null, null, error) === 0) {
    const gerror = slotPointer(error);
    const message = gerror === null ? "unknown error" : readCString(
      Deno.UnsafePointer.create(new Deno.UnsafePointerView(gerror).getBigUint64(8)),
    );
    if (gerror !== null) glib.g_error_free(gerror);
    throw new Error(`GStreamer failed to initialise: ${message}`);
  }
  const refusedElements = crashingElements();
  demoteElements(refusedElements.keys());
  runtime = {
    version: takeCString(gst.gst_version_string()) ?? "GStreamer (unknown version)",
    refusedElements,
  };
  return runtime;
}
