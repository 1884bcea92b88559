/** Loose elements and bins: what media builders need besides a Pipeline. */
import { GValue } from "./gvalue.ts";
import { cstr, gtype, lib, type Pointer, readCString, takeCString } from "./native.ts";
import { instanceType } from "./layout.ts";

/** A new floating element, or null when the factory is missing. */
export function makeElement(factory: string, name: string): Pointer | null {
  return lib().gst.gst_element_factory_make(cstr(factory), cstr(name));
}

/** Frees elements made but never put in a bin (which would have taken their floating references). */
export function discardFloating(elements: Pointer[]): void {
  const { gst } = lib();
  for (const element of elements) gst.gst_object_unref(gst.gst_object_ref_sink(element));
}

/** A new floating bin holding each chain's elements linked in order; null (and nothing left over) when a link fails. */
export function linkedBin(name: string, chains: Pointer[][]): Pointer | null {
  const { gst } = lib();
  const bin = gst.gst_object_ref_sink(gst.gst_bin_new(cstr(name)))!;
  // Every element goes in first, so a failed link frees them all with the bin (none stays floating).
  for (const chain of chains) {
    for (const element of chain) gst.gst_bin_add(bin, element);
  }
  for (const chain of chains) {
    for (let i = 0; i + 1 < chain.length; i++) {
      if (gst.gst_element_link(chain[i], chain[i + 1]) === 0) {
        gst.gst_object_unref(bin);
        return null;
      }
    }
  }
  // Hand back a floating reference, as a create_element vfunc must.
  return floating(bin);
}

/** Turns our owned reference into a floating one (GST_OBJECT_FLAG_MAY_BE_LEAKED aside, g_object_force_floating). */
function floating(object: Pointer): Pointer {
  lib().gobject.g_object_force_floating(object);
  return object;
}

/**
 * A pad's caps as text: "current" is what it negotiated (null before),
 * "possible" what it can take or give (for LINK_FAILED messages).
 */
export function padCaps(
  element: Pointer,
  padName: string,
  which: "current" | "possible",
): string | null {
  const { gst } = lib();
  const pad = gst.gst_element_get_static_pad(element, cstr(padName));
  if (pad === null) return null;
  try {
    const caps = which === "current"
      ? gst.gst_pad_get_current_caps(pad)
      : gst.gst_pad_query_caps(pad, null);
    if (caps === null) return null;
    const text = takeCString(gst.gst_caps_to_string(caps));
    gst.gst_caps_unref(caps);
    return text;
  } finally {
    gst.gst_object_unref(pad);
  }
}

/** The media type (caps structure name) a pad carries: its negotiated caps, else what it can carry. */
export function padMediaType(element: Pointer, padName: string): string | null {
  const { gst } = lib();
  const pad = gst.gst_element_get_static_pad(element, cstr(padName));
  if (pad === null) return null;
  try {
    const caps = gst.gst_pad_get_current_caps(pad) ?? gst.gst_pad_query_caps(pad, null);
    if (caps === null) return null;
    const structure = gst.gst_caps_get_size(caps) > 0 ? gst.gst_caps_get_structure(caps, 0) : null;
    const name = structure === null ? null : readCString(gst.gst_structure_get_name(structure));
    gst.gst_caps_unref(caps);
    return name;
  } finally {
    gst.gst_object_unref(pad);
  }
}

/** Counters from a GstStructure-typed property, such as basesink's or identity's `stats`; 0 where a field is missing. */
export function structureCounters<const F extends string>(
  element: Pointer,
  property: Uint8Array<ArrayBuffer>,
  fields: Record<F, Uint8Array<ArrayBuffer>>,
): Record<F, number> {
  const { gst, gobject } = lib();
  structureType ??= gtype(gst.gst_structure_get_type());
  const value = new GValue(structureType);
  try {
    gobject.g_object_get_property(element, property, value.buffer);
    return readCounters(gobject.g_value_get_boxed(value.buffer), fields);
  } finally {
    value.unset();
  }
}

/**
 * A sink's counters from `gst_base_sink_get_stats`: what its `stats` property holds, without the
 * property's lookup by name and its GValue (a stats round reads every sink's).
 */
export function baseSinkCounters<const F extends string>(
  sink: Pointer,
  fields: Record<F, Uint8Array<ArrayBuffer>>,
): Record<F, number> {
  const { base, gst } = lib();
  const structure = base.gst_base_sink_get_stats(sink);
  try {
    return readCounters(structure, fields);
  } finally {
    if (structure !== null) gst.gst_structure_free(structure);
  }
}

/** Whether `element` is a GstBaseSink (or made from one). */
export function isBaseSink(element: Pointer): boolean {
  baseSinkType ??= gtype(lib().base.gst_base_sink_get_type());
  return lib().gobject.g_type_is_a(instanceType(element), baseSinkType) !== 0;
}

let structureType: bigint | undefined;
let baseSinkType: bigint | undefined;
const counterSlot = new BigUint64Array(1);

function readCounters<const F extends string>(
  structure: Pointer | null,
  fields: Record<F, Uint8Array<ArrayBuffer>>,
): Record<F, number> {
  const { gst } = lib();
  const counters = {} as Record<F, number>;
  for (const [key, field] of Object.entries(fields) as [F, Uint8Array<ArrayBuffer>][]) {
    counters[key] =
      structure !== null && gst.gst_structure_get_uint64(structure, field, counterSlot) !== 0
        ? Number(counterSlot[0])
        : 0;
  }
  return counters;
}

export const stateNames = ["VOID_PENDING", "NULL", "READY", "PAUSED", "PLAYING"] as const;
export type StateName = typeof stateNames[number];

/** An element's current and pending state, without waiting. */
export function elementState(element: Pointer): { state: StateName; pending: StateName } {
  const state = new Int32Array(1);
  const pending = new Int32Array(1);
  lib().gst.gst_element_get_state(element, state, pending, 0n);
  return { state: stateNames[state[0]], pending: stateNames[pending[0]] };
}

/** Keeps a reference to an element until `endAndRelease`. */
export function retain(element: Pointer): Pointer {
  return lib().gst.gst_object_ref(element)!;
}

/**
 * Where a media's source element is: `gone` (its media was freed: it has no parent),
 * `playing` (its streaming thread runs), or `waiting` (any other state).
 */
export function sourceState(source: Pointer): "gone" | "playing" | "waiting" {
  if (!hasParent(source)) return "gone";
  return elementState(source).state === "PLAYING" ? "playing" : "waiting";
}

/**
 * Ends the stream of a playing source element: EOS into the pad its output goes to (off the
 * main thread), then drops our reference to the source. Not `gst_element_send_event` on the
 * source: a basesrc holds its live lock while it waits for its streaming thread, and a media
 * being torn down at that moment waits for that lock while the streaming thread waits for the
 * media (a deadlock seen with gst-rtsp-server 1.22). Only for a `playing` source: a udpsrc in
 * NULL has freed its cancellable.
 */
export async function endAndRelease(source: Pointer): Promise<void> {
  const { gst } = lib();
  const output = gst.gst_element_get_static_pad(source, cstr("src"));
  const peer = output === null ? null : gst.gst_pad_get_peer(output);
  try {
    if (peer !== null) await gst.gst_pad_send_event_async(peer, gst.gst_event_new_eos());
  } finally {
    if (peer !== null) gst.gst_object_unref(peer);
    if (output !== null) gst.gst_object_unref(output);
    gst.gst_object_unref(source);
  }
}

/** Whether an element still sits in a bin (a media's elements lose their parent when it is freed). */
export function hasParent(element: Pointer): boolean {
  const { gst } = lib();
  const parent = gst.gst_object_get_parent(element);
  if (parent === null) return false;
  gst.gst_object_unref(parent);
  return true;
}

/** Drops our reference. */
export function release(element: Pointer): void {
  lib().gst.gst_object_unref(element);
}
