/**
 * A served path before every stream of it has data (here an AAC stream fed by a UDP port nobody
 * sends to): RTSP refuses it with 503 and the stream (src/domain/mounts.ts), and so do the readers
 * of a served path, at once and by name: WHEP and HLS answer 503, and a recording waits without an
 * error, rather than each meeting the refusal inside its own rtspsrc.
 */
import assert from "node:assert/strict";
import { expectOk, startServer, TestClient, waitUntil } from "./helpers.ts";
import { describeStatus, RtspConn } from "./rtsp_client.ts";

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

/** WHEP and HLS of `path` both answer 503 with a message that matches `reason`. */
async function assertWhepAndHlsRefuse(httpUrl: string, path: string, reason: RegExp) {
  const whep = await fetch(`${httpUrl}/whep/${path}`, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: OFFER,
  });
  const hls = await fetch(`${httpUrl}/hls/${path}/index.m3u8`);
  for (const [what, response] of [["WHEP", whep], ["HLS", hls]] as const) {
    const body = await response.json();
    assert.equal(response.status, 503, `${what}: ${JSON.stringify(body)}`);
    assert.match(body.error.message, reason, what);
  }
}

Deno.test("a served path whose stream has not started: WHEP and HLS answer 503 naming it, a recording waits", async () => {
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  try {
    expectOk(await client.request("createPipeline", { id: "half", pipeline: HALF_STARTED }));
    expectOk(await client.request("startPipeline", { id: "half" }));
    const notStarted = /stream 1 of '\/half' has not started yet; try again in a moment/;

    await assertWhepAndHlsRefuse(server.httpUrl, "half", notStarted);

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

Deno.test("a paused pipeline's path: a new RTSP reader, WHEP and HLS are refused at once naming the pause; a reader there stays", async () => {
  // Before, a DESCRIBE waited 20 s for a media that could not start while paused, then got a bare
  // 503, and WHEP and HLS met that inside their own rtspsrc.
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  const id = "paused";
  const launch = (path: string) =>
    "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! " +
    `x264enc speed-preset=ultrafast tune=zerolatency key-int-max=15 ! rtspserversink path=${path}`;
  const reader = await RtspConn.open(server.rtspUrl);
  let draining = Promise.resolve();
  try {
    expectOk(await client.request("createPipeline", { id, pipeline: launch(id) }));
    expectOk(await client.request("startPipeline", { id }));
    await waitUntil(
      async () => await describeStatus(server.rtspUrl, id) === 200,
      15000,
      "the path",
    );
    await reader.play(id);
    draining = reader.drain();
    expectOk(await client.request("pausePipeline", { id }));

    const paused = /'\/paused' is paused; try again once its pipeline plays/;
    const describe = await RtspConn.open(server.rtspUrl);
    try {
      const refusal = await describe.request("DESCRIBE", `${server.rtspUrl}/${id}`).then(
        () => assert.fail("DESCRIBE of a paused path was answered"),
        (error: Error) => error.message,
      );
      assert.match(refusal, /: 503\n/);
      assert.match(refusal, paused);
    } finally {
      describe.close();
    }
    await assertWhepAndHlsRefuse(server.httpUrl, id, paused);

    // The same for a pipeline paused before it ever played (it answered 404, nothing served).
    const never = "never-played";
    expectOk(await client.request("createPipeline", { id: never, pipeline: launch(never) }));
    expectOk(await client.request("pausePipeline", { id: never }));
    await assertWhepAndHlsRefuse(server.httpUrl, never, /'\/never-played' is paused/);
    expectOk(await client.request("deletePipeline", { id: never }));

    // The reader that was there when it paused gets the stream again once it plays.
    expectOk(await client.request("startPipeline", { id }));
    const before = reader.drained;
    await waitUntil(() => reader.drained > before, 15000, "the reader's data after the start");
    assert.equal(await describeStatus(server.rtspUrl, id), 200);
  } finally {
    reader.close();
    await draining;
    await client.close();
    assert.equal(await server.stop(), 0, server.logs.slice(-20).join("\n"));
  }
});
