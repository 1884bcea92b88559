/**
 * The loaded libraries, opened once, and the small helpers every wrapper in
 * src/gst/ needs to pass strings and read pointers.
 */
import { openLibrary } from "../../ffi/loader.ts";
import { glibSymbols } from "../../ffi/glib.ts";
import { gobjectSymbols } from "../../ffi/gobject.ts";
import { gstSymbols } from "../../ffi/gstreamer.ts";
import { appSymbols } from "../../ffi/gstapp.ts";
import { rtspSymbols } from "../../ffi/gstrtspserver.ts";
import { rtspMessageSymbols, sdpSymbols } from "../../ffi/gstrtsp.ts";

export type Pointer = Deno.PointerObject;

function load() {
  return {
    glib: openLibrary("glib-2.0", glibSymbols).symbols,
    gobject: openLibrary("gobject-2.0", gobjectSymbols).symbols,
    gst: openLibrary("gstreamer-1.0", gstSymbols).symbols,
    app: openLibrary("gstapp-1.0", appSymbols).symbols,
    rtsp: openLibrary("gstrtspserver-1.0", rtspSymbols).symbols,
    rtspMessage: openLibrary("gstrtsp-1.0", rtspMessageSymbols).symbols,
    sdp: openLibrary("gstsdp-1.0", sdpSymbols).symbols,
  };
}

let loaded: ReturnType<typeof load> | undefined;

/** The bound symbols; the first call opens the libraries (and may throw LibraryLoadError). */
export function lib(): ReturnType<typeof load> {
  loaded ??= load();
  return loaded;
}

const encoder = new TextEncoder();

/** A NUL-terminated UTF-8 copy of `text` for a `buffer` parameter. */
export function cstr(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text + "\0");
}

/** Reads a C string the callee keeps (const gchar *). */
export function readCString(pointer: Deno.PointerValue): string | null {
  return pointer === null ? null : Deno.UnsafePointerView.getCString(pointer);
}

/** Reads a C string we own (gchar * transfer full) and frees it. */
export function takeCString(pointer: Deno.PointerValue): string | null {
  if (pointer === null) return null;
  const text = Deno.UnsafePointerView.getCString(pointer);
  lib().glib.g_free(pointer);
  return text;
}

/** A slot for a pointer out-parameter (T **out). */
export function pointerSlot(): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(1);
}

export function slotPointer(slot: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(slot[0]);
}

export function view(pointer: Pointer): Deno.UnsafePointerView {
  return new Deno.UnsafePointerView(pointer);
}

/** GType values come back as number or bigint; compare them as bigint. */
export function gtype(value: number | bigint): bigint {
  return BigInt(value);
}
