/**
 * A served path before every stream of it has data (here an AAC stream fed by a UDP port nobody
 * sends to): RTSP refuses it with 503 and the stream (src/domain/mounts.ts), and so do the readers
 * of a served path, at once and by name: WHEP and HLS answer 503, and a recording waits without an
 * error, rather than each meeting the refusal inside its own rtspsrc.
 */
import assert from "node:assert/strict";
import { expectOk, startServer, TestClient } from "./helpers.ts";

const HALF_STARTED = "videotestsrc is-live=true ! x264enc tune=zerolatency ! " +
  "rtspserversink path=half  " +
  "udpsrc port=0 caps=audio/x-raw,format=F32LE,rate=48000,channels=2,layout=interleaved ! " +
  "avenc_aac ! aacparse ! rtspserversink path=half";

/** A WHEP offer with H.264 video, as a browser sends one (never answered here). */
const OFFER = [
  "v=0",
  "o=- 1 1 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "m=video 9 UDP/TLS/RTP/SAVPF 102",
  "a=rtpmap:102 H264/90000",
  "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  "a=mid:0",
  "a=recvonly",
  "",
].join("\r\n");

Deno.test("a served path whose stream has not started: WHEP and HLS answer 503 naming it, a recording waits", async () => {
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  try {
    expectOk(await client.request("createPipeline", { id: "half", pipeline: HALF_STARTED }));
    expectOk(await client.request("startPipeline", { id: "half" }));
    const notStarted = /stream 1 of '\/half' has not started yet; try again in a moment/;

    const whep = await fetch(`${server.httpUrl}/whep/half`, {
      method: "POST",
      headers: { "content-type": "application/sdp" },
      body: OFFER,
    });
    const whepBody = await whep.json();
    assert.equal(whep.status, 503, JSON.stringify(whepBody));
    assert.match(whepBody.error.message, notStarted);

    const hls = await fetch(`${server.httpUrl}/hls/half/index.m3u8`);
    const hlsBody = await hls.json();
    assert.equal(hls.status, 503, JSON.stringify(hlsBody));
    assert.match(hlsBody.error.message, notStarted);

    const recording = expectOk(await client.request("startRecording", { path: "half" })).payload;
    assert.equal(recording.state, "waiting");
    assert.equal(recording.lastError, null);
    expectOk(await client.request("stopRecording", { path: "half" }));
    assert.ok(
      !client.received.some((m) => m.type === "recordingError"),
      JSON.stringify(client.received.filter((m) => m.type === "recordingError")),
    );
  } finally {
    await client.close();
    assert.equal(await server.stop(), 0, server.logs.slice(-20).join("\n"));
  }
});
