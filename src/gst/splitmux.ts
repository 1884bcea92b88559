/**
 * A `splitmuxsrc` that plays a list of files we give it, one after another, as one stream: its
 * `format-location` signal asks for the list when the element starts (a control callback, rule 5
 * of docs/architecture.md: the thread that starts it waits while JS answers). No folder or glob is
 * needed, and the list goes with the handler: GLib's destroy notify drops it with the element.
 */
import { cstr, lib, type Pointer } from "./native.ts";
import { makeElement } from "./element.ts";

const lists = new Map<bigint, string[]>();
let nextList = 1n;

const formatLocation = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer"], result: "pointer" } as const,
  (_element, data) => {
    const files = lists.get(BigInt(Deno.UnsafePointer.value(data))) ?? [];
    // A GStrv splitmuxsrc frees: made by GLib (file names here hold no newline).
    return lib().glib.g_strsplit(cstr(files.join("\n")), cstr("\n"), -1);
  },
);
const forgetList = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer", "pointer"], result: "void" } as const,
  (data) => void lists.delete(BigInt(Deno.UnsafePointer.value(data))),
);
// Both live as long as the process; they must not keep its event loop alive.
formatLocation.unref();
forgetList.unref();

/** A new floating splitmuxsrc that plays `files` (absolute paths, in order); null if missing. */
export function splitmuxPlaying(name: string, files: string[]): Pointer | null {
  if (files.some((file) => file.includes("\n"))) throw new Error("A file name holds a newline");
  const element = makeElement("splitmuxsrc", name);
  if (element === null) return null;
  const id = nextList++;
  lists.set(id, files);
  lib().gobject.g_signal_connect_data(
    element,
    cstr("format-location"),
    formatLocation.pointer,
    Deno.UnsafePointer.create(id),
    forgetList.pointer,
    0,
  );
  return element;
}
