/**
 * Sometimes pads (decodebin, demuxers, rtspsrc): their `pad-added` and
 * `no-more-pads` signals are control callbacks (docs/architecture.md, threading rule 5). GStreamer
 * emits them on a streaming thread, which waits while the JS handler runs on
 * the main thread; the handler links pads, which takes no lock the emitting
 * thread holds. One pair of callbacks serves every element and is never
 * closed, so a late signal can never reach a closed callback.
 */
import { cstr, lib, type Pointer, takeCString } from "./native.ts";

export interface DynamicPadHandlers {
  padAdded(pad: Pointer, padName: string): void;
  noMorePads(): void;
}

const watched = new Map<bigint, DynamicPadHandlers>();

const key = (element: Pointer) => BigInt(Deno.UnsafePointer.value(element));

function guard(what: string, run: () => void): void {
  try {
    run();
  } catch (error) {
    // Nothing may escape into C.
    console.error(`${what} handler failed:`, error);
  }
}

const padAdded = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer", "pointer"], result: "void" } as const,
  (element, pad) => {
    if (element === null || pad === null) return;
    const handlers = watched.get(key(element));
    if (!handlers) return;
    guard("pad-added", () => {
      const name = takeCString(lib().gst.gst_object_get_name(pad)) ?? "";
      handlers.padAdded(pad, name);
    });
  },
);

const noMorePads = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer"], result: "void" } as const,
  (element) => {
    if (element === null) return;
    const handlers = watched.get(key(element));
    if (handlers) guard("no-more-pads", () => handlers.noMorePads());
  },
);
// Keep the process free to exit while callbacks exist (they wait for signals only).
padAdded.unref();
noMorePads.unref();

/** Calls `handlers` for the element's new pads until the returned function is called. */
export function watchDynamicPads(element: Pointer, handlers: DynamicPadHandlers): () => void {
  const { gobject } = lib();
  const id = key(element);
  watched.set(id, handlers);
  gobject.g_signal_connect_data(element, cstr("pad-added"), padAdded.pointer, null, null, 0);
  gobject.g_signal_connect_data(element, cstr("no-more-pads"), noMorePads.pointer, null, null, 0);
  return () => watched.delete(id);
}

/**
 * Links `source`'s pad (any compatible one when null, requested from a template if needed) to
 * `sink`'s, on a pool thread: while a pipeline is built (NULL, no streaming thread) a link
 * queries caps along everything already linked, which holds a long chain for milliseconds. The
 * caller owns both elements for the whole call.
 */
export async function linkPadsOffThread(
  source: Pointer,
  sourcePad: string | null,
  sink: Pointer,
  sinkPad: string | null,
): Promise<boolean> {
  const sourceName = sourcePad === null ? null : cstr(sourcePad);
  const sinkName = sinkPad === null ? null : cstr(sinkPad);
  const linked = await lib().gst.gst_element_link_pads_async(source, sourceName, sink, sinkName);
  return linked !== 0;
}

/** Links now, on this thread: for pad-added handlers, whose streaming thread waits for us. */
export function linkPads(
  source: Pointer,
  sourcePad: string | null,
  sink: Pointer,
  sinkPad: string | null,
): boolean {
  return lib().gst.gst_element_link_pads(
    source,
    sourcePad === null ? null : cstr(sourcePad),
    sink,
    sinkPad === null ? null : cstr(sinkPad),
  ) !== 0;
}
