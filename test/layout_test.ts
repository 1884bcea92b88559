/**
 * src/gst/layout.ts: the layout table holds on this GStreamer, and a table with a wrong entry
 * is refused with a LayoutError that names the version and the check, before anything is
 * written through it (the media factory slot is probed on a class of its own).
 */
import assert from "node:assert/strict";
import { initGstreamer } from "../src/gst/init.ts";
import { Layout, LayoutError, type LayoutTable, verifyLayout } from "../src/gst/layout.ts";

const { version } = initGstreamer();

/** The table with one entry moved. */
function withEntry<S extends keyof LayoutTable>(
  struct: S,
  field: keyof LayoutTable[S],
  offset: number,
): LayoutTable {
  const table = structuredClone(Layout) as unknown as LayoutTable;
  (table[struct] as Record<string, number>)[field as string] = offset;
  return table;
}

Deno.test("verifyLayout() accepts this GStreamer's layout", () => {
  verifyLayout(version);
});

for (
  const [struct, field, offset, check] of [
    ["GstMessage", "type", 60, "GstMessage.type"],
    ["GPollFD", "events", 6, "GPollFD.events"],
    ["GParamSpec", "flags", 20, "GParamSpec.flags"],
    ["GEnumClass", "nValues", 20, "GEnumClass.n_values (GstState)"],
    ["GstRTSPAuthPrivate", "authMethods", 80, "GstRTSPAuthPrivate.auth_methods"],
    ["GstRTSPMediaFactoryClass", "createElement", 152, "GstRTSPMediaFactoryClass.create_element"],
  ] as const
) {
  Deno.test(`verifyLayout() refuses a table with ${struct}.${field} at ${offset}`, () => {
    const error = assert.throws(
      () => verifyLayout(version, withEntry(struct, field as never, offset)),
      (error: unknown) => {
        assert.ok(error instanceof LayoutError, `expected a LayoutError, got ${error}`);
        assert.equal(error.check, check);
        assert.match(error.message, new RegExp(`^${version.replace(/\./g, "\\.")} `));
        assert.match(error.message, /refuses to run rather than corrupt memory/);
        return true;
      },
    );
    return error;
  });
}
