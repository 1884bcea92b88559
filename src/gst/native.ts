/**
 * The loaded libraries, opened once, and the small helpers every wrapper in
 * src/gst/ needs to pass strings and read pointers.
 */
import { candidatePaths, type LibraryName, openLibrary } from "../../ffi/loader.ts";
import { openLibc } from "../../ffi/libc.ts";
import { G_MODULE_BIND_LAZY, glibSymbols, gmoduleSymbols } from "../../ffi/glib.ts";
import { gobjectSymbols } from "../../ffi/gobject.ts";
import { gioSymbols } from "../../ffi/gio.ts";
import { gstSymbols } from "../../ffi/gstreamer.ts";
import { appSymbols } from "../../ffi/gstapp.ts";
import { baseSymbols } from "../../ffi/gstbase.ts";
import { rtspSymbols } from "../../ffi/gstrtspserver.ts";
import { rtspMessageSymbols, sdpSymbols } from "../../ffi/gstrtsp.ts";

export type Pointer = Deno.PointerObject;

function load() {
  return {
    glib: openLibrary("glib-2.0", glibSymbols).symbols,
    gobject: openLibrary("gobject-2.0", gobjectSymbols).symbols,
    gio: openLibrary("gio-2.0", gioSymbols).symbols,
    gst: openLibrary("gstreamer-1.0", gstSymbols).symbols,
    app: openLibrary("gstapp-1.0", appSymbols).symbols,
    base: openLibrary("gstbase-1.0", baseSymbols).symbols,
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

let libcLoaded: ReturnType<typeof openLibc> | undefined;

/** The C library's bound symbols, opened once; null where it is not glibc. */
export function libc(): ReturnType<typeof openLibc> {
  libcLoaded ??= openLibc();
  return libcLoaded;
}

let gmodule: Deno.DynamicLibrary<typeof gmoduleSymbols>["symbols"] | undefined;
let functions: ReturnType<typeof findFunctions> | undefined;

function findFunctions() {
  return {
    gObjectUnref: functionAddress("gobject-2.0", "g_object_unref"),
    gstObjectUnref: functionAddress("gstreamer-1.0", "gst_object_unref"),
    gstMiniObjectUnref: functionAddress("gstreamer-1.0", "gst_mini_object_unref"),
    gstElementQuery: functionAddress("gstreamer-1.0", "gst_element_query"),
  };
}

/**
 * C functions that we hand to C code which calls them (a GDestroyNotify, a GHFunc), found once;
 * initGstreamer asks first, so that a missing one stops the start rather than a request.
 */
export function cFunctions(): ReturnType<typeof findFunctions> {
  functions ??= findFunctions();
  return functions;
}

/**
 * The address of the C function `symbol` of `library` (opened already, so the same file is found
 * by the same path).
 */
export function functionAddress(library: LibraryName, symbol: string): Pointer {
  gmodule ??= openLibrary("gmodule-2.0", gmoduleSymbols).symbols;
  for (const path of candidatePaths(library)) {
    const module = gmodule.g_module_open(cstr(path), G_MODULE_BIND_LAZY);
    if (module === null) continue;
    try {
      const slot = pointerSlot();
      if (gmodule.g_module_symbol(module, cstr(symbol), new Uint8Array(slot.buffer)) !== 0) {
        const address = slotPointer(slot);
        if (address !== null) return address;
      }
    } finally {
      gmodule.g_module_close(module);
    }
  }
  throw new Error(`The C function ${symbol} was not found in the ${library} library`);
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
