/**
 * SRT ingest, the recipe in docs/srt.md: an ordinary pipeline with `srtsrc` in listener mode takes
 * MPEG-TS from a real ffmpeg sender and `rtspserversink` re-serves its H.264 over RTSP, read by
 * real ffprobe. Everything stays on 127.0.0.1.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { expectOk, run, type ServerEvent, startServer, TestClient, waitUntil } from "./helpers.ts";

const server = await startServer();
const client = await TestClient.connect(server.url);
const logs = () => `\nserver log:\n${server.logs.join("\n")}`;

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0);
});

/** A UDP port that was free a moment ago (bind to 0, read it, close): SRT runs over UDP. */
async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * The sender of docs/srt.md: 640x360 test video at 30 fps, H.264 in MPEG-TS, as an SRT caller.
 * `-tune zerolatency` leaves out B-frames (see "Readers" in docs/srt.md) and the encoder's
 * look-ahead; `yuv420p` is the 4:2:0 H.264 players expect (testsrc would give 4:4:4).
 */
function sendSrt(port: number, seconds: number, query = ""): Deno.ChildProcess {
  const url = `srt://127.0.0.1:${port}?mode=caller&pkt_size=1316${query}`;
  // deno-fmt-ignore
  const args = [
    "-hide_banner", "-loglevel", "error", "-nostdin",
    "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-t", String(seconds),
    "-c:v", "libx264", "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", "30",
    "-f", "mpegts", url,
  ];
  return new Deno.Command("ffmpeg", { args, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
}

/** Waits for a sender to exit; its exit code and what it printed. */
async function finished(sender: Deno.ChildProcess): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await sender.output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

/** Stops a sender that is still running (after a failed assertion), and reaps it. */
async function reap(sender: Deno.ChildProcess): Promise<void> {
  try {
    sender.kill("SIGKILL");
  } catch {
    // already gone
  }
  await sender.output().catch(() => {});
}

/**
 * The srtsrc's `stats`, read with getElementProperty: `callers=<...>` while a sender is
 * connected (with its negotiated latency), and the bytes received from the current sender.
 */
async function srtStats(id: string, element: string) {
  const reply = expectOk(
    await client.request("getElementProperty", { id, element, property: "stats" }),
    logs,
  );
  const text = String(reply.payload.value);
  const latency = text.match(/negotiated-latency-ms\\?=\\?\(int\\?\)(\d+)/)?.[1];
  return {
    connected: text.includes("callers="),
    bytes: Number(text.match(/bytes-received-total=\(guint64\)(\d+)/)?.[1] ?? 0),
    negotiatedLatencyMs: latency === undefined ? null : Number(latency),
    text,
  };
}

/** Waits until the listener reads a sender: connected, and bytes have come in. */
function sending(id: string, element: string) {
  return waitUntil(
    async () => {
      const stats = await srtStats(id, element);
      return stats.connected && stats.bytes > 0 ? stats : null;
    },
    15_000,
    `bytes from an SRT sender in '${id}'`,
  );
}

/**
 * ffprobe's view of the H.264 served at an RTSP URL: the first video stream, frames counted over
 * 3 seconds of stream (-read_intervals %+3). A kill after 20 s bounds it whatever happens.
 */
async function probe(url: string) {
  const result = await run("timeout", [
    "-s",
    "KILL",
    "20",
    "ffprobe",
    "-v",
    "error",
    "-rtsp_transport",
    "tcp",
    "-count_frames",
    "-select_streams",
    "v",
    "-read_intervals",
    "%+3",
    "-show_entries",
    "stream=codec_name,width,height,nb_read_frames",
    "-of",
    "json",
    url,
  ]);
  assert.equal(result.code, 0, `ffprobe ${url}: exit ${result.code}\n${result.stderr}${logs()}`);
  const stream = JSON.parse(result.stdout).streams?.[0];
  assert.ok(stream, `ffprobe found no video stream at ${url}: ${result.stdout}`);
  return { ...stream, nb_read_frames: Number(stream.nb_read_frames) };
}

/** Asserts what docs/srt.md promises a reader: H.264, 640x360, frames. */
function assertServed(stream: Awaited<ReturnType<typeof probe>>, what: string) {
  console.log(`  ${what}: ${JSON.stringify(stream)}`);
  assert.equal(stream.codec_name, "h264", what);
  assert.equal(stream.width, 640, what);
  assert.equal(stream.height, 360, what);
  assert.ok(stream.nb_read_frames > 0, `${what}: ${stream.nb_read_frames} frames`);
}

/**
 * Runs `body` on a created pipeline, and deletes the pipeline afterwards, also when `body` fails, so
 * that the next test starts clean.
 */
async function withPipeline(id: string, pipeline: unknown, body: () => Promise<void>) {
  expectOk(await client.request("createPipeline", { id, pipeline }), logs);
  let deleted = false;
  try {
    await body();
    expectOk(await client.request("deletePipeline", { id }), logs);
    deleted = true;
    await client.event("pipelineDeleted", (p) => p.id === id);
  } finally {
    if (!deleted) await client.request("deletePipeline", { id });
  }
}

/** The pipeline's own events (end of stream, errors, state changes) received so far. */
function eventsOf(id: string, ...types: string[]): ServerEvent[] {
  return client.received.filter((m): m is ServerEvent =>
    types.includes(m.type) && (m as ServerEvent).payload?.id === id
  );
}

Deno.test("an SRT sender is re-served over RTSP as H.264, and the listener takes the next sender after it stops", async () => {
  const id = "srt-ingest";
  const port = await freeUdpPort();
  // docs/srt.md, as launch text. `uri` comes before `latency`: srtsrc 1.22 resets its other
  // settings when `uri` is set.
  const launch = `srtsrc name=src uri=srt://127.0.0.1:${port}?mode=listener latency=200 ` +
    "keep-listening=true ! tsdemux ! h264parse ! rtspserversink path=srt";
  await withPipeline(id, launch, async () => {
    // srtsrc is a live source: the pipeline plays at once, while no sender is connected yet.
    const started = expectOk(await client.request("startPipeline", { id }), logs);
    assert.equal(started.payload.state, "PLAYING");
    await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "PLAYING");
    const latency = await client.request("getElementProperty", {
      id,
      element: "src",
      property: "latency",
    });
    assert.equal(expectOk(latency).payload.value, 200);
    assert.equal((await srtStats(id, "src")).connected, false);

    const rtsp = `${server.rtspUrl}/srt`;
    for (const round of ["first sender", "second sender, after the first stopped"]) {
      const sender = sendSrt(port, 6);
      try {
        const stats = await sending(id, "src");
        // The larger of the two sides' latencies; ffmpeg asks for none of its own here.
        assert.equal(stats.negotiatedLatencyMs, 200, stats.text);
        assertServed(await probe(rtsp), round);
        const sent = await finished(sender);
        assert.equal(sent.code, 0, `${round}: ffmpeg: ${sent.stderr}${logs()}`);
      } finally {
        await reap(sender);
      }
      // The sender has gone: the listener waits for the next one, still PLAYING and still served.
      await waitUntil(
        async () => !(await srtStats(id, "src")).connected,
        15_000,
        "the listener to let the sender go",
      );
      const pipeline = expectOk(await client.request("getPipeline", { id }), logs);
      assert.equal(pipeline.payload.state, "PLAYING");
      assert.deepEqual(eventsOf(id, "pipelineEos", "pipelineError"), []);
    }
  });
});

Deno.test("an SRT listener with a passphrase (element list) refuses a sender without it and reads one with it", async () => {
  const id = "srt-encrypted";
  const port = await freeUdpPort();
  const passphrase = "correct-horse-battery";
  const elements = [
    {
      type: "srtsrc",
      name: "src",
      // `uri` first, as above: given before it, the passphrase would be dropped and the
      // listener would take unencrypted senders.
      properties: {
        uri: `srt://127.0.0.1:${port}?mode=listener`,
        passphrase,
        pbkeylen: 16,
        "keep-listening": true,
      },
    },
    { type: "tsdemux" },
    { type: "h264parse" },
    { type: "rtspserversink", properties: { path: "srt-secret" } },
  ];
  await withPipeline(id, { elements }, async () => {
    const started = expectOk(await client.request("startPipeline", { id }), logs);
    assert.equal(started.payload.state, "PLAYING");

    const refused = await finished(sendSrt(port, 6));
    assert.notEqual(refused.code, 0, "a sender without the passphrase is refused");
    const wrong = await finished(sendSrt(port, 6, "&passphrase=not-the-passphrase"));
    assert.notEqual(wrong.code, 0, "a sender with another passphrase is refused");
    // Refusals do not disturb the pipeline.
    assert.equal(expectOk(await client.request("getPipeline", { id })).payload.state, "PLAYING");
    assert.deepEqual(eventsOf(id, "pipelineEos", "pipelineError"), []);

    const sender = sendSrt(port, 6, `&passphrase=${passphrase}`);
    try {
      await sending(id, "src");
      assertServed(await probe(`${server.rtspUrl}/srt-secret`), "encrypted sender");
      const sent = await finished(sender);
      assert.equal(sent.code, 0, `ffmpeg: ${sent.stderr}${logs()}`);
    } finally {
      await reap(sender);
    }
  });
});
