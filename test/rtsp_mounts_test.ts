/**
 * RtspServer (src/gst/rtsp.ts) in-process with real gst-rtsp-server: a path mounted while a
 * publisher's record media is still being made (the publish pipeline can reach PLAYING before
 * gst-rtsp-server asks for that media) and unmounted before it is made leaves no DESCRIBE check
 * behind. The check reads the owner's elements, which are freed once it is unmounted: in the race
 * test a DESCRIBE afterwards read a freed payloader (a GStreamer CRITICAL).
 */
import assert from "node:assert/strict";
import { initGstreamer } from "../src/gst/init.ts";
import { cstr, lib } from "../src/gst/native.ts";
import { RtspServer } from "../src/gst/rtsp.ts";
import { describeStatus, rawAnnounce } from "./rtsp_client.ts";

initGstreamer();

Deno.test("a path unmounted while it waited for a record media keeps no DESCRIBE check", async () => {
  const server = new RtspServer(["127.0.0.1"], 0);
  let checks = 0;
  let records = 0;
  try {
    server.onAnnounce(() => ({
      record: () => {
        records++;
        // As a publish pipeline that reached PLAYING before its record media was made, and was
        // deleted at once: mounted and unmounted while the record factory builds.
        server.mount("cam", () => null, () => {
          checks++;
          return { status: 503, reason: "Service Unavailable: not started" };
        });
        server.unmount("cam");
        return lib().gst.gst_bin_new(cstr("record"));
      },
    }));
    const { status, conn } = await rawAnnounce(`rtsp://127.0.0.1:${server.port}/cam`);
    conn.close();
    assert.equal(records, 1, "calls of the record media builder");
    // The record media is an empty bin: no stream takes the SDP's video.
    assert.match(status, /^RTSP\/1\.0 415 /);
    await describeStatus(`rtsp://127.0.0.1:${server.port}`, "cam");
    assert.equal(checks, 0, "the unmounted path's check ran");
  } finally {
    server.unmountRecord("cam");
    await server.stop();
  }
});
