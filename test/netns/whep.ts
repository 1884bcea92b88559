/**
 * WHEP against real Chromium, run by test/whep_test.ts inside a network namespace of its own
 * that has only loopback (the network rule for WebRTC tests: ICE must not reach the machine's
 * LAN address). Each scenario prints "ok <name>"; the first failure throws (exit status 1).
 *
 *     unshare --net sh -c 'ip link set lo up && deno run -A test/netns/whep.ts'
 */
import assert from "node:assert/strict";
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
import { writeAll } from "../rtsp_client.ts";
import { audioReceived, play, scenario, screenshots } from "./webrtc_page.ts";

const shot = await screenshots("whep");

/** A key frame every 100 s only: a viewer sees a picture soon only because it asks for one. */
const CAMERA = "videotestsrc is-live=true pattern=ball ! " +
  "video/x-raw,width=640,height=360,framerate=30/1 ! " +
  "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=3000 ! rtspserversink path=cam";

async function camera(server: ServerProcess, token?: string): Promise<TestClient> {
  const client = await TestClient.connect(token ? `${server.url}?token=${token}` : server.url);
  expectOk(await client.request("createPipeline", { id: "cam", pipeline: CAMERA }));
  expectOk(await client.request("startPipeline", { id: "cam" }));
  return client;
}

/** One WHEP session played to its first frames and ended, in a page of its own. */
async function warmUp(server: ServerProcess): Promise<void> {
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}/healthz`);
  assert.ok((await play(page, "/console/whep-player.js", "/whep/cam")).ok);
  await waitUntil(async () => (await videoPlayback(page)).frames > 5, 30000, "warm-up frames");
  const from = server.logs.length;
  await page.evaluate("player.stop()");
  await logAfter(server, from, "ended: the client ended it");
  await page.close();
}

const browser = await launchChromium({ webrtc: true });
try {
  await scenario("a managed pipeline's path plays in Chromium over WHEP", async () => {
    const server = await startServer({ GSTREAMER_WEBRTC_PORTS: "41000-41010" });
    const client = await camera(server);
    try {
      const page = await browser.newPage();
      await page.goto(`${server.httpUrl}/healthz`);
      // The first reader makes the path's shared RTSP media, which stays: the baseline follows it.
      await warmUp(server);
      const baseline = await serverSnapshot(server, client);
      const joined = performance.now();
      const answer = await play(page, "/console/whep-player.js", "/whep/cam");
      assert.ok(answer.ok, JSON.stringify(answer));
      const first = await waitUntil(
        async () => (await videoPlayback(page)).frames > 0,
        20000,
        "a frame",
      );
      console.log(
        `  first frame ${(performance.now() - joined).toFixed(0)} ms after the POST`,
        first,
      );
      const seen = await waitUntil(
        async () => {
          const figures = await videoPlayback(page);
          return figures.frames > 60 ? figures : null;
        },
        30000,
        "60 frames",
      );
      assert.equal(seen.width, 640);
      assert.equal(seen.height, 360);
      // The server's UDP candidates are on 127.0.0.1 (it listens there) and in the port range.
      const sdp = await page.evaluate("player.connection.remoteDescription.sdp") as string;
      const udp = [...sdp.matchAll(/^a=candidate:\S+ \d+ UDP \d+ (\S+) (\d+) typ host/gim)];
      assert.ok(udp.length > 0, sdp);
      for (const [, address, port] of udp) {
        assert.equal(address, "127.0.0.1");
        assert.ok(Number(port) >= 41000 && Number(port) <= 41010, `port ${port}`);
      }
      // It keeps playing well past the time a silent viewer is dropped (6 s): its receiver
      // reports are seen.
      const since = server.logs.length;
      await waitUntil(
        async () => (await videoPlayback(page)).frames > seen.frames + 300,
        30000,
        "10 s more",
      );
      assert.deepEqual(server.logs.slice(since).filter((l) => l.includes("WHEP session")), []);
      // Stats count the viewer as WebRTC, not as the RTSP reader it also is inside the server.
      await client.nextStats((p) => p.id === "cam" && p.webrtcViewers === 1 && p.rtspClients === 0);
      await page.evaluate("document.body.style.background = '#222'");
      await shot(page, "managed-pipeline");
      const from = server.logs.length;
      await page.evaluate("player.stop()");
      await logAfter(server, from, "ended: the client ended it");
      await page.close();
      // The session's pipeline, sockets and threads are gone again.
      await assertBackTo(server, client, baseline, "the WHEP session ended");
    } finally {
      await client.close();
      assert.equal(await server.stop(), 0, server.logs.join("\n"));
    }
  });

  await scenario(
    "a viewer stays through a pause longer than the silence limit; a stop ends its session at once",
    async () => {
      // One session at most: the stop must free its slot for the next viewer.
      const server = await startServer({ GSTREAMER_MAX_WEBRTC_SESSIONS: "1" });
      const client = await camera(server);
      try {
        const page = await browser.newPage();
        await page.goto(`${server.httpUrl}/healthz`);
        assert.ok((await play(page, "/console/whep-player.js", "/whep/cam")).ok);
        await waitUntil(async () => (await videoPlayback(page)).frames > 10, 30000, "10 frames");
        const since = server.logs.length;
        expectOk(await client.request("pausePipeline", { id: "cam" }));
        // Longer than a silent viewer is kept (6 s): sent nothing, the viewer reports nothing new.
        await new Promise((resolve) => setTimeout(resolve, 8000));
        expectOk(await client.request("startPipeline", { id: "cam" }));
        const resumed = (await videoPlayback(page)).frames;
        await waitUntil(
          async () => (await videoPlayback(page)).frames > resumed + 240,
          30000,
          "8 s of frames after the pause",
        );
        assert.deepEqual(server.logs.slice(since).filter((l) => l.includes("WHEP session")), []);
        // Stopped, its path serves nothing: the session ends now, not once its silence is noticed.
        expectOk(await client.request("stopPipeline", { id: "cam" }));
        await logAfter(server, since, "ended: its pipeline stopped serving it");
        expectOk(await client.request("startPipeline", { id: "cam" }));
        const next = await browser.newPage();
        await next.goto(`${server.httpUrl}/healthz`);
        const admitted = await waitUntil(
          async () => {
            const answer = await play(next, "/console/whep-player.js", "/whep/cam");
            if (!answer.ok) await next.evaluate("document.getElementById('video')?.remove()");
            return answer.ok ? answer : null;
          },
          15000,
          "the next viewer",
        );
        assert.ok(admitted.ok);
        await waitUntil(async () => (await videoPlayback(next)).frames > 10, 30000, "its frames");
        await next.close();
        await page.close();
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
      }
    },
  );

  await scenario(
    "the console previews a pipeline's path in place over WHEP (default host, printed URL)",
    async () => {
      // As users run it: GSTREAMER_WS_HOST's default, localhost (127.0.0.1 and ::1), and the
      // console's address as the server prints it.
      const server = await startServer({ GSTREAMER_WS_HOST: "localhost" });
      const client = await camera(server);
      try {
        const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
        const printed = await server.waitForLog("Console at ");
        await page.goto(printed.slice(printed.indexOf("http")).trim());
        await page.locator('.prow[data-id="cam"]').click();
        const preview = page.locator('aside.details .preview[data-path="cam"]');
        await preview.locator('button[data-action="Preview"]').click();
        const frames = () =>
          preview.locator("video").evaluate((video) =>
            (video as unknown as { getVideoPlaybackQuality(): { totalVideoFrames: number } })
              .getVideoPlaybackQuality().totalVideoFrames
          );
        const first = await waitUntil(frames, 30000, "a previewed frame");
        await waitUntil(async () => (await frames()) > first + 30, 30000, "the preview to go on");
        await shot(page, "console-preview");
        const from = server.logs.length;
        await preview.locator('button[data-action="Stop preview"]').click();
        await logAfter(server, from, "ended: the client ended it");
        await page.close();
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
      }
    },
  );

  await scenario(
    "a path with AAC audio plays with its audio as Opus, whichever m-line is first",
    async () => {
      const server = await startServer();
      const client = await TestClient.connect(server.url);
      try {
        expectOk(
          await client.request("createPipeline", {
            id: "av",
            pipeline:
              "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! " +
              "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! " +
              "rtspserversink path=av  audiotestsrc is-live=true wave=ticks ! avenc_aac ! aacparse ! " +
              "rtspserversink path=av",
          }),
        );
        expectOk(await client.request("startPipeline", { id: "av" }));
        const page = await browser.newPage();
        await page.goto(`${server.httpUrl}/healthz`);
        const answer = await play(page, "/console/whep-player.js", "/whep/av");
        assert.ok(answer.ok, JSON.stringify(answer));
        await waitUntil(async () => (await videoPlayback(page)).frames > 30, 30000, "30 frames");
        // 48 kHz Opus: a second of it decoded.
        const audio = await waitUntil(
          async () => {
            const received = await audioReceived(page);
            return received.samples > 48000 ? received : null;
          },
          30000,
          "a second of decoded audio",
        );
        console.log(`  audio received: ${JSON.stringify(audio)}`);
        assert.equal(audio.codec, "audio/opus");
        await page.evaluate("player.stop()");
        await page.close();

        // The order of m-lines is the client's: an offer with its audio first plays alike (before
        // 2026-12-06 webrtcbin refused it with 502, the video's transceiver tied to m-line 0).
        const audioFirst = await browser.newPage();
        await audioFirst.goto(`${server.httpUrl}/healthz`);
        const status = await audioFirst.evaluate(`(async () => {
        const pc = new RTCPeerConnection();
        globalThis.player = { connection: pc };
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });
        const video = document.createElement("video");
        Object.assign(video, { muted: true, autoplay: true, playsInline: true, id: "video" });
        document.body.append(video);
        const stream = new MediaStream();
        pc.addEventListener("track", (event) => {
          stream.addTrack(event.track);
          video.srcObject = stream;
        });
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((resolve) => {
          if (pc.iceGatheringState === "complete") return resolve();
          pc.addEventListener("icegatheringstatechange", () => {
            if (pc.iceGatheringState === "complete") resolve();
          });
        });
        const response = await fetch("/whep/av", {
          method: "POST",
          headers: { "content-type": "application/sdp" },
          body: pc.localDescription.sdp,
        });
        const text = await response.text();
        if (response.status !== 201) return response.status + " " + text;
        await pc.setRemoteDescription({ type: "answer", sdp: text });
        return response.status;
      })()`);
        assert.equal(status, 201, String(status));
        await waitUntil(
          async () => (await videoPlayback(audioFirst)).frames > 30,
          30000,
          "30 frames with the audio m-line first",
        );
        await waitUntil(
          async () => (await audioReceived(audioFirst)).samples > 48000,
          30000,
          "a second of decoded audio with the audio m-line first",
        );
        await audioFirst.evaluate("player.connection.close()");
        await audioFirst.close();
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
      }
    },
  );

  await scenario(
    "through a TURN server (coturn): the server's relay candidate, a relay-only viewer",
    async () => {
      const turn = new Deno.Command("turnserver", {
        args: [
          ...["-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log", "--log-file=stdout"],
          ...["--listening-ip=127.0.0.1", "--listening-port=3478", "--relay-ip=127.0.0.1"],
          ...["--min-port=49160", "--max-port=49200", "--allow-loopback-peers"],
          ...["--lt-cred-mech", "--user=test:secret", "--realm=gst.test"],
          ...["--pidfile=/tmp/whep-test-turnserver.pid"],
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const turnLog: string[] = [];
      const decoder = new TextDecoder();
      void turn.stdout.pipeTo(
        new WritableStream({ write: (chunk) => void turnLog.push(decoder.decode(chunk)) }),
      );
      void turn.stderr.pipeTo(new WritableStream());
      await waitUntil(() => turnLog.join("").includes("Total General servers"), 10000, "coturn");
      const server = await startServer({
        GSTREAMER_WEBRTC_TURN: "turn://test:secret@127.0.0.1:3478",
      });
      const client = await camera(server);
      try {
        const page = await browser.newPage();
        await page.goto(`${server.httpUrl}/healthz`);
        const answer = await play(page, "/console/whep-player.js", "/whep/cam", {
          iceServers: [{ urls: "turn:127.0.0.1:3478", username: "test", credential: "secret" }],
          iceTransportPolicy: "relay",
        });
        assert.ok(answer.ok, JSON.stringify(answer));
        const sdp = await page.evaluate("player.connection.remoteDescription.sdp") as string;
        assert.match(sdp, /^a=candidate:.* typ relay/m, sdp);
        await waitUntil(async () => (await videoPlayback(page)).frames > 30, 30000, "30 frames");
        // The pair in use is the browser's relay candidate: every packet went through coturn.
        const local = await page.evaluate(`(async () => {
        const stats = await player.connection.getStats();
        for (const report of stats.values()) {
          if (report.type === "transport" && report.selectedCandidatePairId) {
            const pair = stats.get(report.selectedCandidatePairId);
            return stats.get(pair.localCandidateId).candidateType;
          }
        }
        return null;
      })()`);
        assert.equal(local, "relay");
        await shot(page, "through-turn");
        await page.evaluate("player.stop()");
        await page.close();
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
        turn.kill("SIGTERM");
        await turn.status;
      }
    },
  );

  await scenario("a push plays over WHEP", async () => {
    const server = await startServer();
    const push = new Deno.Command("ffmpeg", {
      args: [
        ...["-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"],
        ...["-t", "60", "-c:v", "libx264", "-g", "60", "-bf", "0", "-pix_fmt", "yuv420p"],
        ...["-f", "h264", `${server.httpUrl}/push/pushed`],
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const page = await browser.newPage();
      await page.goto(`${server.httpUrl}/healthz`);
      // The path exists once the push's first bytes are in: retried until then.
      await waitUntil(
        async () => {
          const answer = await play(page, "/console/whep-player.js", "/whep/pushed");
          if (!answer.ok) await page.evaluate("document.getElementById('video').remove()");
          return answer.ok;
        },
        15000,
        "the push's path to play",
      );
      const seen = await waitUntil(
        async () => {
          const figures = await videoPlayback(page);
          return figures.frames > 60 ? figures : null;
        },
        30000,
        "60 frames of the push",
      );
      assert.equal(seen.width, 320);
      assert.equal(seen.height, 240);
      await shot(page, "push");
      await page.close();
    } finally {
      push.kill("SIGKILL");
      await push.status;
      assert.equal(await server.stop(), 0, server.logs.join("\n"));
    }
  });

  await scenario("a page on another origin plays with the token; without it, 401", async () => {
    const token = "whep-test-token";
    const server = await startServer({ GSTREAMER_AUTH_TOKEN: token });
    const client = await camera(server, token);
    const elsewhere = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () =>
        new Response("<!doctype html><title>elsewhere</title>", {
          headers: { "content-type": "text/html" },
        }),
    );
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${elsewhere.addr.port}/`);
      const player = `${server.httpUrl}/console/whep-player.js`;
      const refused = await play(page, player, `${server.httpUrl}/whep/cam`);
      assert.equal(refused.ok, false);
      assert.equal(refused.status, 401, JSON.stringify(refused));
      await page.evaluate("document.getElementById('video').remove()");
      const answer = await play(page, player, `${server.httpUrl}/whep/cam`, { token });
      assert.ok(answer.ok, JSON.stringify(answer));
      await waitUntil(async () => (await videoPlayback(page)).frames > 60, 30000, "60 frames");
      await shot(page, "other-origin-with-token");
      await page.close();
    } finally {
      await elsewhere.shutdown();
      await client.close();
      assert.equal(await server.stop(), 0, server.logs.join("\n"));
    }
  });

  /*
   * A client that leaves while its answer is made never learns its session (no Location), so
   * the session must end at once. Before 2026-12-04 it stayed until the 30 s connect timeout and
   * held a place under GSTREAMER_MAX_WEBRTC_SESSIONS. A STUN server that never answers keeps the
   * answer waiting for ICE gathering (3 s), and a limit of one session shows when it is pending.
   */
  await scenario("a client that leaves while its answer is made leaves no session", async () => {
    const server = await startServer({
      GSTREAMER_WEBRTC_STUN: "stun://127.0.0.1:9",
      GSTREAMER_MAX_WEBRTC_SESSIONS: "1",
    });
    const client = await camera(server);
    try {
      await warmUp(server);
      const baseline = await serverSnapshot(server, client);
      const context = await browser.newContext();
      const offer = await (await context.newPage()).evaluate(`(async () => {
        const pc = new RTCPeerConnection();
        pc.addTransceiver("video", { direction: "recvonly" });
        await pc.setLocalDescription(await pc.createOffer());
        return pc.localDescription.sdp;
      })()`) as string;
      await context.close();
      const from = server.logs.length;
      const { hostname, port } = new URL(server.httpUrl);
      const conn = await Deno.connect({ hostname, port: Number(port) });
      const body = new TextEncoder().encode(offer);
      await writeAll(
        conn,
        `POST /whep/cam HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
          `Content-Type: application/sdp\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      await writeAll(conn, body);
      // An offer with no video is refused after the limit is checked: 503 once ours is pending,
      // 400 until then. Any other status ends the wait (waitUntil would retry past an assertion).
      const answered = await waitUntil(
        async () => {
          const probe = await fetch(`${server.httpUrl}/whep/cam`, {
            method: "POST",
            headers: { "content-type": "application/sdp" },
            body: "v=0\r\n",
          });
          const text = await probe.text();
          return probe.status === 400 ? null : { status: probe.status, text };
        },
        10000,
        "the offer to be pending",
      );
      assert.equal(answered.status, 503, answered.text);
      conn.close();
      await logAfter(server, from, "its client left before the answer", 15000);
      await assertBackTo(server, client, baseline, "the session whose client left");
    } finally {
      await client.close();
      assert.equal(await server.stop(), 0, server.logs.join("\n"));
    }
  });

  await scenario(
    "a viewer that vanishes is cleaned up; bad requests get clear errors",
    async () => {
      const server = await startServer();
      const client = await camera(server);
      try {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(`${server.httpUrl}/healthz`);
        await warmUp(server);
        const baseline = await serverSnapshot(server, client);
        assert.ok((await play(page, "/console/whep-player.js", "/whep/cam")).ok);
        await waitUntil(async () => (await videoPlayback(page)).frames > 10, 30000, "10 frames");
        // A session's id under another path is no session: that DELETE ends nothing.
        const id = new URL(await page.evaluate("player.session") as string).searchParams
          .get("session");
        const elsewhere = await fetch(`${server.httpUrl}/whep/nothing-here?session=${id}`, {
          method: "DELETE",
        });
        assert.equal(elsewhere.status, 404, await elsewhere.text());
        const shown = (await videoPlayback(page)).frames;
        await waitUntil(
          async () => (await videoPlayback(page)).frames > shown + 10,
          30000,
          "10 frames more after the DELETE elsewhere",
        );
        // The tab is killed: no DELETE, the connection just stops.
        const from = server.logs.length;
        await context.close();
        await logAfter(server, from, "WHEP session", 30000);
        console.log(`  ${server.logs.slice(from).find((line) => line.includes("WHEP session"))}`);
        await assertBackTo(server, client, baseline, "the WHEP session ended");

        const post = (path: string, type: string, body: string) =>
          fetch(`${server.httpUrl}${path}`, {
            method: "POST",
            headers: { "content-type": type },
            body,
          }).then(async (r) => ({ status: r.status, body: await r.text() }));
        const notSdp = await post("/whep/cam", "application/json", "{}");
        assert.equal(notSdp.status, 415);
        assert.match(notSdp.body, /application\/sdp/);
        const nowhere = await post("/whep/nothing-here", "application/sdp", "v=0\r\n");
        assert.equal(nowhere.status, 404);
        assert.match(nowhere.body, /Nothing is served at '\/nothing-here'/);
        const audioOnly = await post(
          "/whep/cam",
          "application/sdp",
          "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        assert.equal(audioOnly.status, 400);
        assert.match(audioOnly.body, /no video/);
        const vp8Only = await post(
          "/whep/cam",
          "application/sdp",
          "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
            "a=rtpmap:96 VP8/90000\r\n",
        );
        assert.equal(vp8Only.status, 406);
        assert.match(vp8Only.body, /H\.264/);
        // An offer whose video could never reach the viewer (it was answered 201, inactive).
        const sendonly = await post(
          "/whep/cam",
          "application/sdp",
          "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1\r\na=mid:0\r\n" +
            "a=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 AB\r\na=setup:actpass\r\n" +
            "a=sendonly\r\n",
        );
        assert.equal(sendonly.status, 400);
        assert.match(sendonly.body, /is sendonly: a WHEP offer receives, so expected recvonly/);
        // A NUL first: GstSDP then parsed an empty string and aborted the server (a CRITICAL).
        const nul = await post(
          "/whep/cam",
          "application/sdp",
          "\0v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
            "a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1\r\na=mid:0\r\n" +
            "a=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 AB\r\na=recvonly\r\n",
        );
        assert.equal(nul.status, 400);
        assert.match(nul.body, /holds a NUL byte/);
        // A path that serves no H.264 is refused before anything is built for it.
        expectOk(
          await client.request("createPipeline", {
            id: "vp8",
            pipeline: "videotestsrc is-live=true ! vp8enc deadline=1 ! rtspserversink path=vp8",
            desiredState: "playing",
          }),
        );
        const vp8Path = await waitUntil(
          async () => {
            const answer = await post("/whep/vp8", "application/sdp", "v=0\r\n");
            return answer.status === 503 ? null : answer;
          },
          10000,
          "the VP8 path to be ready",
        );
        assert.equal(vp8Path.status, 406, vp8Path.body);
        assert.match(
          vp8Path.body,
          /'\/vp8' serves no H\.264 video \(its streams need rtpvp8depay\)/,
        );
      } finally {
        await client.close();
        assert.equal(await server.stop(), 0, server.logs.join("\n"));
      }
    },
  );
} finally {
  await browser.close();
}
