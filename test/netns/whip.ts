/**
 * WHIP from real Chromium (its fake camera and microphone), run by test/whep_test.ts inside a
 * network namespace of its own that has only loopback (the network rule for WebRTC tests). Each
 * scenario prints "ok <name>"; the first failure throws (exit status 1).
 *
 *     unshare --net sh -c 'ip link set lo up && deno run -A test/netns/whip.ts'
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { launchChromium, videoPlayback } from "../browser.ts";
import {
  assertBackTo,
  expectOk,
  logAfter,
  type ServerProcess,
  serverSnapshot,
  startServer,
  TestClient,
  waitUntil,
} from "../helpers.ts";
import { audioReceived, play, scenario, screenshots } from "./webrtc_page.ts";

const shot = await screenshots("whip");

/** Publishes the fake camera (640x480) and microphone of `page` to `whipUrl` with the server's module. */
async function publish(
  page: Page,
  whipUrl: string,
  token?: string,
): Promise<{ ok: boolean; status?: number; message?: string }> {
  return await page.evaluate(`(async () => {
    const { publishWhip } = await import("/console/whep-player.js");
    const camera = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480, frameRate: 30 },
      audio: true,
    });
    // Chromium's encoder may start below 640x480 (it scales down while its bandwidth estimate is
    // low, more so on a loaded machine); "detail" keeps the resolution and gives up frame rate.
    for (const track of camera.getVideoTracks()) track.contentHint = "detail";
    try {
      globalThis.publisher = await publishWhip(camera, ${JSON.stringify(whipUrl)},
        ${JSON.stringify(token ? { token } : {})});
      return { ok: true };
    } catch (error) {
      return { ok: false, status: error.status, message: String(error) };
    }
  })()`);
}

interface ProbedStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  nb_read_frames: string;
}

/** ffprobe reading `url` for `seconds`, decoding and counting every frame of each stream. */
async function probe(url: string, seconds: number): Promise<ProbedStream[]> {
  const { code, stdout, stderr } = await new Deno.Command("ffprobe", {
    args: [
      ...["-v", "error", "-rtsp_transport", "tcp", "-count_frames"],
      ...["-read_intervals", `%+${seconds}`],
      ...["-show_entries", "stream=codec_type,codec_name,width,height,nb_read_frames"],
      ...["-of", "json", url],
    ],
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  assert.equal(code, 0, `ffprobe failed: ${text.decode(stderr)}`);
  return JSON.parse(text.decode(stdout)).streams;
}

async function publishedPipeline(client: TestClient, name: string) {
  const reply = expectOk(await client.request("getPipelines"));
  return (reply.payload.pipelines as { id: string; kind: string; state: string }[])
    .find((pipeline) => pipeline.id === name);
}

/** One publish of `name` to its first frames, then ended with DELETE, in a context of its own. */
async function publishAndStop(
  browser: Browser,
  server: ServerProcess,
  client: TestClient,
  token: string,
) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.httpUrl}/healthz`);
  assert.ok((await publish(page, "/whip/warm", token)).ok);
  await client.nextStats((p) => p.id === "warm" && Number(p.frames) > 10);
  const from = server.logs.length;
  await page.evaluate("publisher.stop()");
  await logAfter(server, from, "ended (publisher left)");
  await waitUntil(async () => !(await publishedPipeline(client, "warm")), 10000, "warm deleted");
  await context.close();
}

const browser = await launchChromium({ webrtc: true, fakeMedia: true });
try {
  await scenario(
    "a WHIP publish from Chromium is read over RTSP by ffprobe and played over WHEP",
    async () => {
      const server = await startServer();
      const client = await TestClient.connect(server.url);
      try {
        const page = await browser.newPage();
        await page.goto(`${server.httpUrl}/healthz`);
        const published = await publish(page, "/whip/cam");
        assert.ok(published.ok, JSON.stringify(published));
        const stats = await client.nextStats((p) => p.id === "cam" && Number(p.frames) > 30);
        console.log(`  stats of the publish: ${JSON.stringify(stats)}`);
        const listed = await publishedPipeline(client, "cam");
        assert.equal(listed?.kind, "publish");
        assert.equal(listed?.state, "PLAYING");

        const streams = await probe(`${server.rtspUrl}/cam`, 4);
        console.log(`  ffprobe over RTSP: ${JSON.stringify(streams)}`);
        const video = streams.find((stream) => stream.codec_type === "video");
        assert.equal(video?.codec_name, "h264");
        assert.equal(video?.width, 640);
        assert.equal(video?.height, 480);
        assert.ok(Number(video?.nb_read_frames) > 30, `video frames: ${video?.nb_read_frames}`);
        const audio = streams.find((stream) => stream.codec_type === "audio");
        assert.equal(audio?.codec_name, "opus");
        assert.ok(Number(audio?.nb_read_frames) > 50, `audio frames: ${audio?.nb_read_frames}`);

        const viewer = await browser.newPage();
        await viewer.goto(`${server.httpUrl}/healthz`);
        const played = await play(viewer, "/console/whep-player.js", "/whep/cam");
        assert.ok(played.ok, JSON.stringify(played));
        const seen = await waitUntil(
          async () => {
            const figures = await videoPlayback(viewer);
            return figures.frames > 60 ? figures : null;
          },
          30000,
          "60 frames of the WHIP publish over WHEP",
        );
        assert.equal(seen.width, 640);
        assert.equal(seen.height, 480);
        // The publisher's Opus, passed through: a second of it decoded by the viewer.
        const heard = await waitUntil(
          async () => {
            const received = await audioReceived(viewer);
            return received.samples > 48000 ? received : null;
          },
          30000,
          "a second of the publisher's audio",
        );
        assert.equal(heard.codec, "audio/opus");
        await shot(viewer, "published-played-over-whep");
        await viewer.evaluate("player.stop()");
        await viewer.close();

        const from = server.logs.length;
        await page.evaluate("publisher.stop()");
        await logAfter(server, from, "Publish 'cam' from 127.0.0.1 over WHIP ended");
        console.log(`  ${server.logs.slice(from).find((l) => l.includes("Publish 'cam'"))}`);
        assert.ok(server.logs.slice(from).some((l) => l.includes("ended (publisher left)")));
        await waitUntil(async () => !(await publishedPipeline(client, "cam")), 10000, "deleted");
        await page.close();
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
      }
    },
  );

  await scenario(
    "with a token: a publishing tab that vanishes is cleaned up; bad requests get clear errors",
    async () => {
      const token = "whip-test-token";
      const server = await startServer({ GSTREAMER_AUTH_TOKEN: token });
      const client = await TestClient.connect(`${server.url}?token=${token}`);
      try {
        await publishAndStop(browser, server, client, token);
        const baseline = await serverSnapshot(server, client);
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(`${server.httpUrl}/healthz`);
        const refused = await publish(page, "/whip/cam");
        assert.equal(refused.status, 401, JSON.stringify(refused));
        assert.ok((await publish(page, "/whip/cam", token)).ok);
        await client.nextStats((p) => p.id === "cam" && Number(p.frames) > 10);
        // The tab is killed: no DELETE, the packets just stop.
        const from = server.logs.length;
        await context.close();
        await logAfter(server, from, "Publish 'cam' from 127.0.0.1 over WHIP ended", 30000);
        console.log(`  ${server.logs.slice(from).find((l) => l.includes("Publish 'cam'"))}`);
        await assertBackTo(server, client, baseline, "the WHIP publish ended");

        const post = (path: string, type: string, body: string) =>
          fetch(`${server.httpUrl}${path}`, {
            method: "POST",
            headers: { "content-type": type, authorization: `Bearer ${token}` },
            body,
          }).then(async (r) => ({ status: r.status, body: await r.text() }));
        const offer = (media: string) =>
          `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n${media}`;
        const h264 = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n" +
          "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
        const notSdp = await post("/whip/cam", "application/json", "{}");
        assert.equal(notSdp.status, 415);
        assert.match(notSdp.body, /application\/sdp/);
        const badName = await post("/whip/bad%20name", "application/sdp", offer(h264));
        assert.equal(badName.status, 400);
        assert.match(badName.body, /invalid stream name \\"bad name\\"/);
        const vp8 = await post(
          "/whip/cam",
          "application/sdp",
          offer("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"),
        );
        assert.equal(vp8.status, 406);
        assert.match(vp8.body, /no H\.264.*it offers VP8/);
        const pcmu = await post(
          "/whip/cam",
          "application/sdp",
          offer(h264 + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"),
        );
        assert.equal(pcmu.status, 406);
        assert.match(pcmu.body, /no Opus/);
        // An offer that could never send (it was answered 201, inactive, and held the name 20 s):
        // refused, and refused again rather than 409, so nothing holds the name.
        const complete = "a=mid:0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n" +
          "a=fingerprint:sha-256 AB\r\na=setup:actpass\r\n";
        for (let attempt = 0; attempt < 2; attempt++) {
          const recvonly = await post(
            "/whip/cam",
            "application/sdp",
            offer(`${h264}${complete}a=recvonly\r\n`),
          );
          assert.equal(recvonly.status, 400);
          assert.match(recvonly.body, /is recvonly: a WHIP offer sends, so expected sendonly/);
        }
        // A NUL first: GstSDP then parsed an empty string and aborted the server (a CRITICAL).
        const nul = await post("/whip/cam", "application/sdp", `\0${offer(h264)}`);
        assert.equal(nul.status, 400);
        assert.match(nul.body, /holds a NUL byte/);
        const noFingerprint = await post("/whip/cam", "application/sdp", offer(h264));
        assert.equal(noFingerprint.status, 400);
        assert.match(
          noFingerprint.body,
          /no a=fingerprint \(or an empty one\) for m-line 0 \(video\)/,
        );
        expectOk(
          await client.request("createPipeline", {
            id: "taken",
            pipeline: "videotestsrc ! x264enc ! rtspserversink path=taken",
          }),
        );
        const conflict = await post("/whip/taken", "application/sdp", offer(h264));
        assert.equal(conflict.status, 409);
        assert.match(conflict.body, /taken/);
        const unknownSession = await fetch(`${server.httpUrl}/whip/cam?session=nope`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(unknownSession.status, 404);
        await unknownSession.body?.cancel();
        // The server stops while a WHIP publish runs: it still exits cleanly (its exit code, below).
        const running = await browser.newPage();
        await running.goto(`${server.httpUrl}/healthz`);
        assert.ok((await publish(running, "/whip/running", token)).ok);
        await client.nextStats((p) => p.id === "running" && Number(p.frames) > 10);
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
      }
    },
  );
} finally {
  await browser.close();
}
