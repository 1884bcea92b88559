/**
 * The bus watch thread (src/gst/bus_watch.ts): waits in g_poll until one of the descriptors it
 * was sent is readable (a bus holds a message, or the main thread posted on the wake bus), then
 * says so and waits for the next set. It touches no GStreamer object: it only polls descriptors.
 */
/// <reference lib="deno.worker" />
import { glibBusWatchSymbols } from "../../ffi/glib.ts";
import { openLibrary } from "../../ffi/loader.ts";
import { G_IO_IN, Layout } from "./layout.ts";

const glib = openLibrary("glib-2.0", glibBusWatchSymbols).symbols;
const { size, fd, events, revents } = Layout.GPollFD;

self.onmessage = (event: MessageEvent<number[]>) => {
  const descriptors = event.data;
  const pollFds = new Uint8Array(descriptors.length * size);
  const view = new DataView(pollFds.buffer);
  descriptors.forEach((descriptor, i) => {
    view.setInt32(i * size + fd, descriptor, true);
    view.setUint16(i * size + events, G_IO_IN, true);
  });
  // Blocks this thread only. The first descriptor is the wake bus's: a bus of the rest (or an
  // interrupted poll, -1) means the main thread has buses to drain.
  const found = glib.g_poll(pollFds, descriptors.length, -1);
  const busReady = found < 0 ||
    descriptors.some((_, i) => i > 0 && view.getUint16(i * size + revents, true) !== 0);
  self.postMessage(busReady);
};
