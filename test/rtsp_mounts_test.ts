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
import { describeStatus, writeAll } from "./rtsp_client.ts";

initGstreamer();

const SDP = [
  "v=0",
  "o=- 0 0 IN IP4 127.0.0.1",
  "s=test",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=video 0 RTP/AVP 96",
  "a=rtpmap:96 H264/90000",
  "a=control:streamid=0",
  "",
].join("\r\n");

/** Sends an ANNOUNCE of `path` with an H.264 SDP and reads the status line of its response. */
async function announce(port: number, path: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(
      conn,
      `ANNOUNCE rtsp://127.0.0.1:${port}/${path} RTSP/1.0\r\nCSeq: 1\r\n` +
        `Content-Type: application/sdp\r\nContent-Length: ${SDP.length}\r\n\r\n${SDP}`,
    );
    let text = "";
    const buffer = new Uint8Array(4096);
    while (!text.includes("\r\n\r\n")) {
      const read = await conn.read(buffer);
      if (read === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, read));
    }
    return text.split("\r\n")[0];
  } finally {
    conn.close();
  }
}

Deno.test("a path unmounted while it waited for a record media keeps no DESCRIBE check", async () => {
  const server = new RtspServer(["127.0.0.1"], 0);
  let checks = 0;
  try {
    server.onAnnounce(() => ({
      record: () => {
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
    const status = await announce(server.port, "cam");
    assert.match(status, /^RTSP\/1\.0 \d{3}/, "the ANNOUNCE was answered");
    await describeStatus(`rtsp://127.0.0.1:${server.port}`, "cam");
    assert.equal(checks, 0, "the unmounted path's check ran");
  } finally {
    server.unmountRecord("cam");
    await server.stop();
  }
});
