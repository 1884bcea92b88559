/**
 * src/gst/native.ts and src/gst/time_queries.ts: the address of a C function, for C code that
 * takes one (a GDestroyNotify, a GHFunc), and the queries of many pipelines in one pool call that
 * passes gst_element_query as a GHFunc; and the bus at NULL, which the Pipeline flushes itself.
 */
import assert from "node:assert/strict";
import { initGstreamer } from "../src/gst/init.ts";
import { cFunctions, cstr, functionAddress, lib } from "../src/gst/native.ts";
import { linkElements, MessageType, Pipeline, State } from "../src/gst/pipeline.ts";
import { setProperty } from "../src/gst/property.ts";

initGstreamer();

// GObject.ref_count: the guint after the GTypeInstance class pointer.
const refCount = (object: Deno.PointerObject) => new Deno.UnsafePointerView(object).getUint32(8);

Deno.test("cFunctions() has g_object_unref: a list freed with it on a pool thread drops each item's reference", async () => {
  const { glib, gobject, gst } = lib();
  const bin = gst.gst_object_ref_sink(gst.gst_bin_new(cstr("held")))!;
  let list = null;
  for (let i = 0; i < 3; i++) list = glib.g_list_append(list, gobject.g_object_ref(bin));
  assert.equal(refCount(bin), 4);
  await glib.g_list_free_full_async(list, cFunctions().gObjectUnref);
  assert.equal(refCount(bin), 1);
  gst.gst_object_unref(bin);
});

Deno.test("functionAddress() names the symbol a library does not have", () => {
  assert.throws(
    () => functionAddress("gobject-2.0", "g_object_no_such_function"),
    /g_object_no_such_function was not found in the gobject-2\.0 library/,
  );
});

Deno.test("Pipeline.queryTimes: positions of running pipelines, durations where asked, null where unknown; references given back", async () => {
  const make = async (name: string, source: Record<string, number | boolean>) => {
    const pipeline = new Pipeline(name);
    const src = pipeline.addElement("videotestsrc", "src")!;
    for (const [key, value] of Object.entries(source)) {
      setProperty({ object: src, label: "src" }, key, value);
    }
    assert.ok(linkElements(src, pipeline.addElement("fakesink", "sink")!));
    await pipeline.setState(State.PAUSED);
    await pipeline.waitForState(5000);
    return pipeline;
  };
  // 30 buffers of 1/30 s: a duration of one second; the live one has none.
  const finite = await make("finite", { "num-buffers": 30 });
  const live = await make("live", { "is-live": true });
  const stopped = new Pipeline("stopped");
  const pipelines = [finite, live, stopped];
  try {
    await finite.setState(State.PLAYING);
    await live.setState(State.PLAYING);
    await live.waitForState(5000);
    // Pipelines named twice: the table must not free the first one's query. Only the pipeline in
    // NULL has a steady count (messages on a running one's bus hold references too).
    assert.equal(refCount(stopped.pointer), 1);
    const times = await Pipeline.queryTimes(
      [finite, live, stopped, live, stopped],
      (p) => p !== stopped,
    );
    assert.equal(refCount(stopped.pointer), 1, "the table's references given back");
    assert.equal(times.size, 3);
    assert.equal(times.get(finite)!.duration, 1000);
    // typeof first: null >= 0 holds.
    const known = (position: number | null) => typeof position === "number" && position >= 0;
    assert.ok(known(times.get(finite)!.position), "a playing pipeline has a position");
    assert.equal(times.get(live)!.duration, null, "a live source has no duration");
    assert.ok(known(times.get(live)!.position), "a playing live pipeline has a position");
    assert.deepEqual(times.get(stopped), { position: null, duration: null }, "NULL: unknown");
    await stopped.dispose();
    const after = await Pipeline.queryTimes([finite, stopped], () => false);
    assert.equal(after.has(stopped), false, "a disposed pipeline is not asked");
    assert.equal(after.get(finite)!.duration, null, "a duration not asked is null");
  } finally {
    for (const pipeline of pipelines) await pipeline.dispose();
  }
});

Deno.test("Pipeline: what is posted on the way to NULL stays on the bus until flushBusAtNull, which gives its references back; a new run's messages come again", async () => {
  const pipeline = new Pipeline("flushed");
  try {
    const src = pipeline.addElement("videotestsrc", "src")!;
    assert.ok(linkElements(src, pipeline.addElement("fakesink", "sink")!));
    const types = MessageType.STATE_CHANGED;
    await pipeline.setState(State.PLAYING);
    await pipeline.waitForState(5000);
    pipeline.popMessages(types);
    await pipeline.setState(State.NULL);
    // GStreamer's own flush at NULL is off: the way down's state changes wait, and hold it.
    assert.ok(refCount(pipeline.pointer) > 1, "messages of the way down hold the pipeline");
    pipeline.flushBusAtNull();
    assert.equal(refCount(pipeline.pointer), 1, "flushed: nothing holds it");
    assert.deepEqual(pipeline.popMessages(types), []);
    await pipeline.setState(State.PAUSED);
    await pipeline.waitForState(5000);
    const changes = pipeline.popMessages(types).map((m) => m.kind === "state-changed" && m.new);
    assert.deepEqual(changes, ["READY", "PAUSED"], "going to READY ends the flushing");
  } finally {
    await pipeline.dispose();
  }
});
