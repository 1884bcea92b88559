/**
 * HLS of served paths: hls.js (the server's /console/hls-player.js) in real Chromium, ffprobe on
 * the playlist URL, the segment directory the server owns, idle stop, the token and the errors.
 * Plain HTTP on loopback: no network namespace is needed. Screenshots go to test/output/hls/.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { launchChromium, videoPlayback } from "./browser.ts";
import {
  assertBackTo,
  expectOk,
  logAfter,
  run,
  type ServerProcess,
  serverSnapshot,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";

const outputDir = new URL("./output/hls/", import.meta.url);

/** H.264 (a key frame every 100 s unless asked) and AAC at /av. */
const AV =
  "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! " +
  "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=3000 ! rtspserversink path=av  " +
  "audiotestsrc is-live=true wave=ticks ! avenc_aac ! aacparse ! rtspserversink path=av";

/** Plays `url` in a new <video id="video"> with the server's HLS player and `options`. */
async function playHls(
  page: Page,
  url: string,
  options: Record<string, unknown> = {},
): Promise<{ ok: boolean; engine?: string; message?: string }> {
  // Page code as text: it runs in the browser (this file is type-checked without the DOM).
  return await page.evaluate(`(async () => {
    const { playHls } = await import("/console/hls-player.js");
    const video = document.createElement("video");
    Object.assign(video, { muted: true, autoplay: true, playsInline: true, id: "video" });
    document.body.append(video);
    try {
      globalThis.player = await playHls(video, ${JSON.stringify(url)}, ${JSON.stringify(options)});
      return { ok: true, engine: player.engine };
    } catch (error) {
      video.remove();
      return { ok: false, message: String(error) };
    }
  })()`);
}

async function probe(url: string): Promise<{ codec_type: string; codec_name: string }[]> {
  const { code, stdout, stderr } = await run("ffprobe", [
    "-v",
    "error",
    "-show_entries",
    "stream=codec_type,codec_name",
    "-of",
    "json",
    url,
  ]);
  assert.equal(code, 0, `ffprobe ${url}: ${stderr}`);
  return JSON.parse(stdout).streams;
}

/** No kept-alive connection: the server may have closed one that is idle (its idle timeout). */
const noReuse = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

async function http(url: string, init: RequestInit = {}) {
  const response = await fetch(url, { ...init, client: noReuse });
  const body = await response.text();
  return { status: response.status, headers: response.headers, body };
}

/** The stream directories inside the server's HLS directory under `base`. */
async function streamDirectories(base: string): Promise<string[]> {
  const found: string[] = [];
  for await (const server of Deno.readDir(base)) {
    if (!server.isDirectory || !server.name.startsWith("gstreamer-hls-")) continue;
    for await (const stream of Deno.readDir(join(base, server.name))) {
      if (stream.isDirectory) found.push(join(base, server.name, stream.name));
    }
  }
  return found;
}

async function serverDirectories(base: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(base)) {
    if (entry.isDirectory && entry.name.startsWith("gstreamer-hls-")) found.push(entry.name);
  }
  return found.sort();
}

async function startAv(server: ServerProcess, token?: string): Promise<TestClient> {
  const client = await TestClient.connect(token ? `${server.url}?token=${token}` : server.url);
  expectOk(await client.request("createPipeline", { id: "av", pipeline: AV }));
  expectOk(await client.request("startPipeline", { id: "av" }));
  return client;
}

Deno.test("HLS: a path plays in Chromium with hls.js, from a directory the server owns and cleans", async () => {
  await Deno.mkdir(outputDir, { recursive: true });
  const base = await Deno.makeTempDir({ prefix: "hls-test-" });
  // Left by a server that died: removed at start. One with no owner file is not ours: kept. One
  // whose owner runs (this test, as another server would) is in use: kept.
  await Deno.mkdir(join(base, "gstreamer-hls-crashed/some-stream"), { recursive: true });
  await Deno.writeTextFile(join(base, "gstreamer-hls-crashed/owner.pid"), "2147483647");
  await Deno.mkdir(join(base, "gstreamer-hls-not-ours"));
  await Deno.mkdir(join(base, "gstreamer-hls-in-use/some-stream"), { recursive: true });
  await Deno.writeTextFile(join(base, "gstreamer-hls-in-use/owner.pid"), String(Deno.pid));
  const server = await startServer({
    // Keep-alive connections (Chromium's, fetch's) close soon: the leak check counts sockets.
    GSTREAMER_HTTP_IDLE_TIMEOUT_MS: "2000",
    GSTREAMER_HLS_DIR: base,
    GSTREAMER_HLS_IDLE_TIMEOUT_MS: "3000",
  });
  const log = () => `\n--- server log ---\n${server.logs.slice(-30).join("\n")}`;
  const browser = await launchChromium();
  const client = await startAv(server);
  try {
    const mine = await serverDirectories(base);
    assert.equal(mine.length, 3, `the crashed server's directory is gone: ${mine}`);
    assert.ok(mine.includes("gstreamer-hls-not-ours"));
    assert.ok(mine.includes("gstreamer-hls-in-use"), `a running owner's directory stays: ${mine}`);
    await Deno.remove(join(base, "gstreamer-hls-in-use"), { recursive: true });
    // The path's shared RTSP media stays once made: the baseline follows a first reader.
    assert.equal((await probe(`${server.rtspUrl}/av`)).length, 2);

    // ffprobe reads the playlist over HTTP: H.264 video and AAC audio.
    const streams = await probe(`${server.httpUrl}/hls/av/index.m3u8`);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ["aac", "h264"]);
    // Segments only in the server's own directory, one per stream.
    const [directory] = await streamDirectories(base);
    const files = [...Deno.readDirSync(directory)].map((entry) => entry.name);
    assert.ok(files.includes("index.m3u8"), `${files}`);
    assert.ok(files.some((name) => /^segment\d{5}\.ts$/.test(name)), `${files}`);
    const playlist = await http(`${server.httpUrl}/hls/av/index.m3u8`);
    assert.equal(playlist.headers.get("content-type"), "application/vnd.apple.mpegurl");
    assert.match(playlist.body, /^#EXTM3U/);
    const segment = playlist.body.split("\n").find((line) => line.endsWith(".ts"))!;
    const bytes = await fetch(`${server.httpUrl}/hls/av/${segment}`, { client: noReuse });
    assert.equal(bytes.headers.get("content-type"), "video/mp2t");
    assert.equal(new Uint8Array(await bytes.arrayBuffer())[0], 0x47, "an MPEG-TS sync byte");
    // No one asks any more: the stream stops and its directory goes.
    await server.waitForLog("HLS of '/av' stopped: no request for", 20000);
    assert.deepEqual(await streamDirectories(base), []);
    // The first stream leaves a one-time set-up (2 sockets, 2 eventfds: the same after 1 or 4
    // streams); the baseline follows it.
    const baseline = await serverSnapshot(server, client);

    const page = await browser.newPage({ viewport: { width: 400, height: 300 } });
    await page.goto(`${server.httpUrl}/healthz`);
    const asked = performance.now();
    const started = await playHls(page, "/hls/av/index.m3u8");
    assert.ok(started.ok, `${JSON.stringify(started)}${log()}`);
    assert.equal(started.engine, "hls.js");
    const first = await waitUntil(
      async () => {
        const now = await videoPlayback(page);
        return now.frames > 0 ? now : null;
      },
      30000,
      "a frame",
    );
    console.log(`  first frame ${(performance.now() - asked).toFixed(0)} ms after the request`);
    const seen = await waitUntil(
      async () => {
        const now = await videoPlayback(page);
        return now.frames > 90 && now.audioBytes > 0 ? now : null;
      },
      30000,
      "90 frames and decoded audio",
    );
    assert.equal(seen.width, 320);
    assert.equal(seen.height, 240);
    assert.ok(seen.time > first.time, "the video's time advances");
    await page.screenshot({ path: new URL("hls-js.png", outputDir).pathname });
    console.log(`  hls.js in Chromium: ${JSON.stringify(seen)}`);

    // The player stops: the stream stops after the idle time, and nothing stays behind.
    const playing = server.logs.length;
    await page.evaluate("player.stop()");
    await page.close();
    await logAfter(server, playing, "HLS of '/av' stopped: no request for", 20000);
    assert.deepEqual(await streamDirectories(base), []);
    await assertBackTo(server, client, baseline, "after the HLS stream stopped", log);

    // The next request starts it again.
    assert.equal((await http(`${server.httpUrl}/hls/av/index.m3u8`)).status, 200);
    assert.equal((await streamDirectories(base)).length, 1);
  } finally {
    await client.close();
    await browser.close();
    // Stopping with a stream running: a clean exit, and the server's directory removed.
    assert.equal(await server.stop(), 0, log());
    assert.deepEqual(await serverDirectories(base), ["gstreamer-hls-not-ours"]);
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("HLS: bad requests get a clear status and message; CORS for allowed origins", async () => {
  const server = await startServer({ GSTREAMER_ALLOWED_ORIGINS: "http://app.example" });
  const client = await TestClient.connect(server.url);
  try {
    expectOk(
      await client.request("createPipeline", {
        id: "vp8",
        pipeline: "videotestsrc is-live=true ! vp8enc deadline=1 ! rtspserversink path=vp8",
      }),
    );
    expectOk(await client.request("startPipeline", { id: "vp8" }));
    expectOk(
      await client.request("createPipeline", {
        id: "paused",
        pipeline:
          "videotestsrc is-live=true ! x264enc tune=zerolatency ! rtspserversink path=paused",
      }),
    );
    expectOk(await client.request("startPipeline", { id: "paused" }));
    expectOk(await client.request("pausePipeline", { id: "paused" }));

    const expect = async (
      what: string,
      url: string,
      status: number,
      message: RegExp,
      init: RequestInit = {},
    ) => {
      const reply = await http(`${server.httpUrl}${url}`, init);
      assert.equal(reply.status, status, `${what}: ${reply.body}`);
      assert.match(JSON.parse(reply.body).error.message, message, `${what}: ${reply.body}`);
      console.log(`  ${what}: ${reply.status} ${JSON.parse(reply.body).error.message}`);
      return reply;
    };
    await expect(
      "a path nothing serves",
      "/hls/nothing/index.m3u8",
      404,
      /Nothing is served at '\/nothing'/,
    );
    await expect(
      "a segment of no stream",
      "/hls/vp8/segment00000.ts",
      404,
      /request \/hls\/vp8\/index.m3u8 first/,
    );
    await expect("a file HLS does not have", "/hls/vp8/secrets.txt", 404, /No file 'secrets.txt'/);
    await expect("no path", "/hls/index.m3u8", 404, /use GET \/hls\/\{path\}\/index.m3u8/);
    const post = await expect("POST", "/hls/vp8/index.m3u8", 405, /HLS takes GET/, {
      method: "POST",
    });
    assert.equal(post.headers.get("allow"), "GET, HEAD, OPTIONS");
    await expect("a VP8 path", "/hls/vp8/index.m3u8", 406, /serves no H.264 video .*rtpvp8depay/);
    // Mounted but paused: refused at once, naming the pause (no segment could come).
    await expect(
      "a paused path",
      "/hls/paused/index.m3u8",
      503,
      /'\/paused' cannot be played yet: '\/paused' is paused; try again once its pipeline plays/,
    );

    // CORS: the allowed origin is named; a preflight (for the Authorization header) is answered.
    const preflight = await fetch(`${server.httpUrl}/hls/vp8/index.m3u8`, {
      method: "OPTIONS",
      headers: {
        origin: "http://app.example",
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
      },
    });
    await preflight.body?.cancel();
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "http://app.example");
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/);
    const other = await http(`${server.httpUrl}/hls/nothing/index.m3u8`, {
      headers: { origin: "http://elsewhere.example" },
    });
    assert.equal(other.headers.get("access-control-allow-origin"), null);
  } finally {
    await client.close();
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("HLS with a token: refused without it; with it as a header (hls.js) or in the URL (ffprobe)", async () => {
  const token = "hls-secret-1";
  const server = await startServer({ GSTREAMER_AUTH_TOKEN: token });
  const client = await startAv(server, token);
  const browser = await launchChromium();
  try {
    const refused = await http(`${server.httpUrl}/hls/av/index.m3u8`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="gstreamer"');

    // Players that cannot send a header: the playlist's segment URIs carry the token on.
    const playlist = await http(`${server.httpUrl}/hls/av/index.m3u8?token=${token}`);
    assert.equal(playlist.status, 200, playlist.body);
    const uris = playlist.body.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
    assert.ok(uris.length > 0);
    for (const uri of uris) assert.match(uri, new RegExp(`^segment\\d{5}\\.ts\\?token=${token}$`));
    const streams = await probe(`${server.httpUrl}/hls/av/index.m3u8?token=${token}`);
    assert.deepEqual(streams.map((s) => s.codec_name).sort(), ["aac", "h264"]);

    const page = await browser.newPage();
    await page.goto(`${server.httpUrl}/healthz?token=${token}`);
    const denied = await playHls(page, "/hls/av/index.m3u8");
    assert.equal(denied.ok, false);
    assert.match(denied.message ?? "", /This server needs its token/);
    const started = await playHls(page, "/hls/av/index.m3u8", { token });
    assert.ok(started.ok, JSON.stringify(started));
    await waitUntil(
      async () => (await videoPlayback(page)).frames > 30,
      30000,
      "30 frames with the token",
    );
  } finally {
    await browser.close();
    await client.close();
    assert.equal(await server.stop(), 0);
  }
});
