/**
 * src/gst/native.ts: the address of a C function, for C code that takes one (a GDestroyNotify).
 */
import assert from "node:assert/strict";
import { initGstreamer } from "../src/gst/init.ts";
import { cstr, functionAddress, lib } from "../src/gst/native.ts";

initGstreamer();

Deno.test("functionAddress() finds g_object_unref: a list freed with it on a pool thread drops each item's reference", async () => {
  const { glib, gobject, gst } = lib();
  const unref = functionAddress("gobject-2.0", "g_object_unref");
  assert.ok(unref !== null, "g_object_unref's address");
  const bin = gst.gst_object_ref_sink(gst.gst_bin_new(cstr("held")))!;
  // GObject.ref_count: the guint after the GTypeInstance class pointer.
  const refCount = () => new Deno.UnsafePointerView(bin).getUint32(8);
  let list = null;
  for (let i = 0; i < 3; i++) list = glib.g_list_append(list, gobject.g_object_ref(bin));
  assert.equal(refCount(), 4);
  await glib.g_list_free_full_async(list, unref);
  assert.equal(refCount(), 1);
  gst.gst_object_unref(bin);
});

Deno.test("functionAddress() is null for a symbol the library does not have", () => {
  assert.equal(functionAddress("gobject-2.0", "g_object_no_such_function"), null);
});
