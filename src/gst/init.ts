/** Starts GStreamer once and makes it safe to run headless. */
import { cFunctions, lib, pointerSlot, slotPointer, takeCString } from "./native.ts";
import { takeGErrorMessage, verifyLayout } from "./layout.ts";
import { crashingElements, demoteElements } from "./registry.ts";

export interface GstRuntime {
  version: string;
  /** Elements that would crash the process here, with the reason. */
  refusedElements: Map<string, string>;
}

let runtime: GstRuntime | undefined;

export function initGstreamer(): GstRuntime {
  if (runtime) return runtime;
  const { gst } = lib();
  const error = pointerSlot();
  if (gst.gst_init_check(null, null, error) === 0) {
    const message = takeGErrorMessage(slotPointer(error)) ?? "unknown error";
    throw new Error(`GStreamer failed to initialise: ${message}`);
  }
  const version = takeCString(gst.gst_version_string()) ?? "GStreamer (unknown version)";
  // Before anything reads or writes a GStreamer structure directly (throws LayoutError).
  verifyLayout(version);
  cFunctions();
  const refusedElements = crashingElements();
  demoteElements(refusedElements.keys());
  runtime = { version, refusedElements };
  return runtime;
}
