/**
 * readGValue() (src/gst/gvalue.ts) reads each fundamental integer type with its own getter:
 * GLib type-checks the getters, so reading a CHAR with g_value_get_int or a LONG with
 * g_value_get_int64 gave 0 and a CRITICAL.
 */
import assert from "node:assert/strict";
import { initGstreamer } from "../src/gst/init.ts";
import { Fundamental, GValue, type JsonValue, readGValue } from "../src/gst/gvalue.ts";
import { cstr, lib } from "../src/gst/native.ts";

initGstreamer();

function read(type: bigint, set: (value: GValue) => void): JsonValue {
  const value = new GValue(type);
  try {
    set(value);
    return readGValue(value.buffer, type);
  } finally {
    value.unset();
  }
}

const fromText = (text: string) => (value: GValue) =>
  assert.equal(lib().gst.gst_value_deserialize(value.buffer, cstr(text)), 1, text);

Deno.test("readGValue() reads gchar, guchar, glong and gulong values as they are", () => {
  assert.equal(read(Fundamental.CHAR, (v) => lib().gobject.g_value_set_schar(v.buffer, -5)), -5);
  assert.equal(read(Fundamental.UCHAR, fromText("250")), 250);
  assert.equal(read(Fundamental.LONG, fromText("-42")), -42);
  assert.equal(read(Fundamental.LONG, fromText("-9007199254740993")), "-9007199254740993");
  assert.equal(read(Fundamental.ULONG, fromText("4000000000")), 4000000000);
  assert.equal(read(Fundamental.ULONG, fromText("18446744073709551615")), "18446744073709551615");
});
