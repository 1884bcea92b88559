/**
 * Fault tests against the real server with real clients: pushes that break off, lie about their
 * format or trickle; RTSP clients that vanish or stop reading; pipelines whose source or sink
 * fails, that end while starting, or that are stopped or deleted while starting.
 *
 * After each fault the server's open file descriptors, threads and pipelines must come back to
 * where they were. GStreamer and Deno keep some threads pooled and the server warms up (plugins,
 * shared RTSP medias), so every test runs its scenario once to warm up, takes the baseline, runs
 * it again and then polls until the counts are back (never a fixed sleep, never a timed assertion).
 */
import assert from "node:assert/strict";
import {
  assertBackTo as assertServerBackTo,
  pipelineIds as listPipelineIds,
  type Reply,
  type ServerEvent,
  type ServerSnapshot,
  serverSnapshot,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { RtspConn, writeAll } from "./rtsp_client.ts";

/** Every child process is killed after this long, so a hang fails the test instead of blocking it. */
const CHILD_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Media, the server and the WebSocket client, one for the file

const mediaDir = await Deno.makeTempDir({ prefix: "faults_test_" });
/** 2 s of 320x240 H.264 at 30 frame/s, a key frame every 15 frames. */
const clipPath = `${mediaDir}/clip.h264`;
{
  const made = await new Deno.Command("ffmpeg", {
    args: [
      ...["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2"],
      ...["-c:v", "libx264", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "h264", clipPath],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
}
const clip = await Deno.readFile(clipPath);

const server = await startServer({
  GSTREAMER_MEDIA_DIR: mediaDir,
  // The tests wait on stats broadcasts (bytes taken, RTSP sessions): every 250 ms, not every second.
  GSTREAMER_STATS_INTERVAL_MS: "250",
  // 20 pushes at once must not meet the limit on pushes.
  GSTREAMER_MAX_PUSHES: "64",
  // Connections silent this long are closed; short here so the silent-sender test is quick.
  GSTREAMER_HTTP_IDLE_TIMEOUT_MS: "4000",
});
const client = await TestClient.connect(server.url);
const httpPort = Number(new URL(server.httpUrl).port);
const rtspPort = Number(new URL(server.rtspUrl).port);
const logs = () => `\n--- server log (last 60 lines) ---\n${server.logs.slice(-60).join("\n")}`;

/** Children still running; a failed test can leave some, which are killed after it. */
const running = new Set<Deno.ChildProcess>();
/** Connections still open; a failed test can leave some, which are closed after it. */
const openConns = new Set<Deno.Conn>();

Deno.test.afterEach(() => {
  for (const process of running) {
    try {
      process.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const conn of openConns) closeQuietly(conn);
});

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, logs());
  await Deno.remove(mediaDir, { recursive: true });
});

// ---------------------------------------------------------------------------------------------
// Resource counts

const pipelineIds = () => listPipelineIds(client);
const snapshot = () => serverSnapshot(server, client);
/** Polls until the server holds no more descriptors and threads than `before`, and the same pipelines. */
const assertBackTo = (before: ServerSnapshot, what: string) =>
  assertServerBackTo(server, client, before, what, logs);

/**
 * Runs `round` once to warm up, takes the baseline, runs it again (the fault under test) and
 * waits until the counts are back. Each round waits for its own outcome before it returns.
 */
async function faultRounds(what: string, round: (n: number) => Promise<void>): Promise<void> {
  await round(0);
  const before = await snapshot();
  await round(1);
  await assertBackTo(before, what);
}

// ---------------------------------------------------------------------------------------------
// Events

/** Where the events of a round begin. */
const mark = () => client.received.length;

/** An event of `type` for pipeline `id` received after `since` (already or to come). */
function eventSince(
  since: number,
  type: string,
  id: string,
  predicate: (payload: ServerEvent["payload"]) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<ServerEvent> {
  const matches = (m: ServerEvent | Reply) =>
    m.type === type && (m as ServerEvent).payload?.id === id &&
    predicate((m as ServerEvent).payload);
  const found = client.received.slice(since).find(matches);
  if (found) return Promise.resolve(found as ServerEvent);
  return client.waitForNext<ServerEvent>(matches, timeoutMs, `${type} for ${id}`);
}

function eventsSince(since: number, type: string, id: string): ServerEvent[] {
  return client.received.slice(since).filter((m) =>
    m.type === type && (m as ServerEvent).payload?.id === id
  ) as ServerEvent[];
}

// deno-lint-ignore no-explicit-any
type StatsEntry = any;

/** The next stats broadcast whose entry for `id` matches. */
async function statsOf(id: string, predicate: (entry: StatsEntry) => boolean): Promise<StatsEntry> {
  const event = await client.nextStats((entry) => entry.id === id && predicate(entry));
  return event.payload.pipelines.find((entry: StatsEntry) => entry.id === id);
}

async function request(type: string, payload: unknown): Promise<Reply> {
  const reply = await client.request(type, payload);
  assert.equal(reply.ok, true, `${type}: ${JSON.stringify(reply.error)}${logs()}`);
  return reply;
}

// ---------------------------------------------------------------------------------------------
// Children and connections

interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

function spawn(command: string, args: string[], timeoutMs = CHILD_TIMEOUT_MS): Promise<Finished> {
  const process = new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).spawn();
  running.add(process);
  const timer = setTimeout(() => {
    try {
      process.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  return Promise.all([
    process.status,
    new Response(process.stdout).text(),
    new Response(process.stderr).text(),
  ]).then(([status, stdout, stderr]) => {
    clearTimeout(timer);
    running.delete(process);
    const killed = status.signal ? `\n(${command} ended by ${status.signal})` : "";
    return { code: status.code, stdout, stderr: stderr + killed };
  });
}

function closeQuietly(conn: Deno.Conn): void {
  openConns.delete(conn);
  try {
    conn.close();
  } catch {
    // already closed
  }
}

async function connect(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  openConns.add(conn);
  return conn;
}

const encoder = new TextEncoder();

/** One HTTP chunk of a chunked body. */
function chunk(bytes: Uint8Array): Uint8Array {
  const head = encoder.encode(`${bytes.length.toString(16)}\r\n`);
  const out = new Uint8Array(head.length + bytes.length + 2);
  out.set(head);
  out.set(bytes, head.length);
  out.set(encoder.encode("\r\n"), head.length + bytes.length);
  return out;
}

function pushHead(name: string, body: { length: number } | "chunked"): string {
  const framing = body === "chunked"
    ? "Transfer-Encoding: chunked"
    : `Content-Length: ${body.length}`;
  return `POST /push/${name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: video/h264\r\n` +
    `${framing}\r\n\r\n`;
}

/** A push by fetch of `bytes` with a Content-Length; returns the status and the reply's JSON. */
async function post(
  name: string,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${server.httpUrl}/push/${name}`, {
    method: "POST",
    headers: { "content-type": "video/h264" },
    body: bytes,
  });
  return { status: response.status, body: await response.json() };
}

/** A whole push of the clip to `name` is taken: every byte, and frames. */
async function assertPushWorks(name: string): Promise<void> {
  const reply = await post(name, clip);
  assert.equal(reply.status, 200, `push ${name}: ${JSON.stringify(reply.body)}${logs()}`);
  assert.equal(reply.body.bytes, clip.length, JSON.stringify(reply.body));
  assert.ok((reply.body.frames as number) > 0, JSON.stringify(reply.body));
}

/** Offsets where the clip's frames start (a start code followed by a slice or its parameter sets). */
function frameOffsets(bytes: Uint8Array): number[] {
  const offsets: number[] = [];
  let pending: number | null = null;
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] !== 0 || bytes[i + 1] !== 0 || bytes[i + 2] !== 1) continue;
    const start = i > 0 && bytes[i - 1] === 0 ? i - 1 : i;
    const type = bytes[i + 3] & 0x1f;
    if (type === 1 || type === 5) {
      offsets.push(pending ?? start);
      pending = null;
    } else {
      pending ??= start;
    }
    i += 2;
  }
  return offsets;
}

/** The first ten frames of the clip: enough for the parser to give frames. */
const tenFrames = clip.slice(0, frameOffsets(clip)[10]);

/** The end of push `name` after a sender went away: the log line, the delete, and no error. */
async function assertSenderGone(since: number, name: string): Promise<void> {
  const line = await server.waitForLog(`Push '${name}' ended`);
  assert.match(line, /\(sender gone\)/, line);
  await eventSince(since, "pipelineDeleted", name);
  assert.deepEqual(eventsSince(since, "pipelineError", name), [], `pipelineError for ${name}`);
}

// ---------------------------------------------------------------------------------------------
// Push faults

Deno.test("pushes aborted mid-body (FIN or RST, chunked or with a length) end cleanly and leak nothing", async () => {
  await faultRounds("aborted pushes", async (n) => {
    const since = mark();
    const names = {
      chunk: `abort-chunk-${n}`,
      length: `abort-length-${n}`,
      reset: `abort-reset-${n}`,
      nobody: `abort-nobody-${n}`,
    };
    // A chunk that declares more than is sent; a Content-Length far beyond what is sent.
    const chunked = await connect(httpPort);
    await writeAll(chunked, pushHead(names.chunk, "chunked"));
    await writeAll(chunked, `${(tenFrames.length * 4).toString(16)}\r\n`);
    await writeAll(chunked, tenFrames);
    const sized = await connect(httpPort);
    await writeAll(sized, pushHead(names.length, { length: 10 * 1024 * 1024 }));
    await writeAll(sized, tenFrames);
    // A reset: the reply to a first request on the connection stays unread, so closing the
    // socket sends RST instead of FIN.
    const reset = await connect(httpPort);
    await writeAll(reset, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await writeAll(reset, pushHead(names.reset, "chunked"));
    await writeAll(reset, chunk(tenFrames));
    // Headers and no body at all.
    const nobody = await connect(httpPort);
    await writeAll(nobody, pushHead(names.nobody, "chunked"));
    // Headers cut in the middle: no push starts.
    const halfHead = await connect(httpPort);
    await writeAll(
      halfHead,
      `POST /push/abort-head-${n} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty`,
    );

    // Each push has taken what was sent before its sender goes.
    for (const name of [names.chunk, names.length, names.reset]) {
      await statsOf(name, (entry) => entry.bytesIn === tenFrames.length);
    }
    for (const conn of [chunked, sized, reset, nobody, halfHead]) closeQuietly(conn);

    for (const name of [names.chunk, names.length, names.reset]) {
      await assertSenderGone(since, name);
    }
    // No byte to tell the format by: nothing was made, and the log says why.
    await server.waitForLog(`Push '${names.nobody}' from`);
    assert.deepEqual(eventsSince(since, "pipelineCreated", names.nobody), []);
    // The names are free again.
    await assertPushWorks(names.chunk);
    await assertPushWorks(names.reset);
  });
});

Deno.test("garbage posted as H.264 is refused with 422 before any pipeline, and leaks nothing", async () => {
  const garbage = new Uint8Array(5 * 1024 * 1024);
  for (let offset = 0; offset < garbage.length; offset += 65536) {
    crypto.getRandomValues(garbage.subarray(offset, offset + 65536));
  }
  await faultRounds("garbage pushes", async (n) => {
    const since = mark();
    const name = `garbage-${n}`;
    const reply = await post(name, garbage);
    assert.equal(reply.status, 422, JSON.stringify(reply.body));
    assert.equal((reply.body.error as Reply["error"])?.code, "UNRECOGNISED_STREAM");
    assert.deepEqual(eventsSince(since, "pipelineCreated", name), []);
    // Garbage after good frames: the parser skips what it cannot read, the push ends normally.
    const mixed = new Uint8Array(tenFrames.length + 256 * 1024);
    mixed.set(tenFrames);
    mixed.set(garbage.subarray(0, 256 * 1024), tenFrames.length);
    const tail = await post(`garbage-tail-${n}`, mixed);
    assert.equal(tail.status, 200, JSON.stringify(tail.body));
    assert.ok((tail.body.frames as number) >= 10, JSON.stringify(tail.body));
    await eventSince(since, "pipelineDeleted", `garbage-tail-${n}`);
    await assertPushWorks(name);
  });
});

Deno.test("a slow-loris push (a byte a second) does not block other pushes or requests, and closing it cleans up", async () => {
  await faultRounds("slow loris", async (n) => {
    const since = mark();
    const name = `loris-${n}`;
    // A body that trickles: a few frames, then one byte per chunk, one chunk a second.
    const body = await connect(httpPort);
    await writeAll(body, pushHead(name, "chunked"));
    await writeAll(body, chunk(tenFrames));
    await eventSince(since, "pipelineStateChanged", name, (p) => p.new === "PLAYING");
    // Headers that trickle: the handler never runs, the connection stays.
    const head = await connect(httpPort);
    const headText = `POST /push/loris-head-${n} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
    let sent = 0;
    const trickle = setInterval(() => {
      const byte = clip.subarray(tenFrames.length + sent, tenFrames.length + sent + 1);
      void writeAll(body, chunk(byte)).catch(() => {});
      void writeAll(head, headText.slice(sent, sent + 1)).catch(() => {});
      sent++;
    }, 1000);
    try {
      // Meanwhile, other pushes, WebSocket requests and HTTP requests are served.
      await assertPushWorks(`beside-loris-${n}`);
      await assertPushWorks(`beside-loris-again-${n}`);
      assert.ok((await pipelineIds()).includes(name));
      const health = await fetch(`${server.httpUrl}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      // The trickle is taken byte by byte: the push is alive, not stuck.
      await statsOf(name, (entry) => entry.bytesIn >= tenFrames.length + 2);
    } finally {
      clearInterval(trickle);
    }
    assert.ok((await pipelineIds()).includes(name), "the slow push ended by itself");
    closeQuietly(body);
    closeQuietly(head);
    await assertSenderGone(since, name);
  });
});

/** Resolves when the peer closes `conn` (what it sends meanwhile is read and dropped). */
async function closedByPeer(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(4096);
  try {
    while (await conn.read(buffer) !== null) {
      // a reply, then the close
    }
  } catch {
    // reset: closed too
  }
}

Deno.test({
  name: "a push sender that goes silent, and a connection that never ends its headers, are let go",
  // GSTREAMER_HTTP_IDLE_TIMEOUT_MS (4 s for this server) closes them; the bound leaves room for load.
  fn: async () => {
    const before = await snapshot();
    const since = mark();
    const name = "silent-sender";
    const silentBody = await connect(httpPort);
    await writeAll(silentBody, pushHead(name, "chunked"));
    await writeAll(silentBody, chunk(tenFrames));
    await statsOf(name, (entry) => entry.bytesIn === tenFrames.length);
    const halfHead = await connect(httpPort);
    await writeAll(halfHead, `POST /push/half-head HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    const idle = await connect(httpPort);
    const gone = { body: false, head: false, idle: false };
    void closedByPeer(silentBody).then(() => (gone.body = true));
    void closedByPeer(halfHead).then(() => (gone.head = true));
    void closedByPeer(idle).then(() => (gone.idle = true));
    await waitUntil(
      async () => {
        const listed = (await pipelineIds()).includes(name);
        if (listed || !gone.body || !gone.head || !gone.idle) {
          throw new Error(`push listed: ${listed}, closed by the server: ${JSON.stringify(gone)}`);
        }
        return true;
      },
      30_000,
      "the server to let the silent push and the idle connections go",
    );
    await eventSince(since, "pipelineDeleted", name);
    for (const conn of [silentBody, halfHead, idle]) closeQuietly(conn);
    await assertBackTo(before, "silent sender");
  },
});

Deno.test("20 pushes opened and dropped at once all end and leak nothing", async () => {
  const count = 20;
  await faultRounds("20 dropped pushes", async (n) => {
    const since = mark();
    const names = Array.from({ length: count }, (_, i) => `drop-${n}-${i}`);
    const conns = await Promise.all(names.map(async (name) => {
      const conn = await connect(httpPort);
      await writeAll(conn, pushHead(name, "chunked"));
      await writeAll(conn, chunk(tenFrames));
      return conn;
    }));
    await waitUntil(
      async () => {
        const event = await client.nextStats(() => true);
        const taken = event.payload.pipelines.filter((entry: StatsEntry) =>
          names.includes(entry.id) && entry.bytesIn === tenFrames.length
        );
        return taken.length === count;
      },
      20_000,
      `${count} pushes that took their first bytes`,
    );
    for (const conn of conns) closeQuietly(conn);
    for (const name of names) await assertSenderGone(since, name);
    await assertPushWorks(names[0]);
  });
});

// ---------------------------------------------------------------------------------------------
// RTSP faults

/** An RTSP connection to the server, closed with the others after each test. */
function rtspConn(): Promise<RtspConn> {
  return RtspConn.open(server.rtspUrl, { connect, onClose: closeQuietly });
}

/** A live MJPEG camera served at rtsp://.../{path}: a high bit rate (noise) for little CPU. */
async function createCamera(id: string, path: string): Promise<void> {
  await request("createPipeline", {
    id,
    pipeline: {
      elements: [
        { type: "videotestsrc", properties: { "is-live": true, pattern: "snow" } },
        {
          type: "capsfilter",
          // rtpjpegpay takes 4:2:0 JPEG only.
          properties: { caps: "video/x-raw,format=I420,width=320,height=240,framerate=30/1" },
        },
        { type: "jpegenc", properties: { quality: 90 } },
        { type: "rtspserversink", properties: { path } },
      ],
    },
  });
  const started = await request("startPipeline", { id });
  assert.equal(started.payload.state, "PLAYING");
}

/** RTSP sessions open on `id`'s paths, as the next stats broadcast says. */
const rtspClients = (id: string, predicate: (clients: number) => boolean) =>
  statsOf(id, (entry) => predicate(entry.rtspClients));

/** ffprobe reads frames from the path over `transport` for two seconds. */
async function assertReadable(
  path: string,
  transport: "tcp" | "udp",
  timeoutMs = CHILD_TIMEOUT_MS,
): Promise<void> {
  const result = await spawn("ffprobe", [
    ...["-v", "error", "-rtsp_transport", transport, "-select_streams", "v:0", "-count_frames"],
    ...["-read_intervals", "%+2", "-show_entries", "stream=codec_name,nb_read_frames"],
    ...["-of", "json", `${server.rtspUrl}/${path}`],
  ], timeoutMs);
  assert.equal(result.code, 0, `ffprobe over ${transport}: ${result.stderr}${logs()}`);
  const stream = JSON.parse(result.stdout).streams[0];
  assert.equal(stream.codec_name, "mjpeg", result.stdout);
  assert.ok(Number(stream.nb_read_frames) > 0, `over ${transport}: ${result.stdout}`);
}

/** tx_queue and rx_queue of the loopback TCP socket from `localPort` to `remotePort` (/proc/net/tcp). */
async function tcpQueues(
  localPort: number,
  remotePort: number,
): Promise<{ tx: number; rx: number } | null> {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  const table = await Deno.readTextFile("/proc/net/tcp");
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5) continue;
    if (fields[1].endsWith(`:${hex(localPort)}`) && fields[2].endsWith(`:${hex(remotePort)}`)) {
      const [tx, rx] = fields[4].split(":").map((value) => parseInt(value, 16));
      return { tx, rx };
    }
  }
  return null;
}

// Also the regression test for a listen backlog of 5 (gst-rtsp-server's default): once each
// accept waited for the JS thread, 50 clients at once under load overflowed it and a connection
// was reset after minutes.
Deno.test({
  name: "50 RTSP clients that vanish at once, at every step of a session, leave nothing behind",
  fn: async () => {
    await createCamera("vanish-cam", "vanish");
    const path = "vanish";
    const url = `${server.rtspUrl}/${path}`;
    try {
      await faultRounds("50 vanished RTSP clients", async () => {
        const kinds = [
          // Connects and says nothing.
          async () => await rtspConn(),
          // Half a request.
          async () => {
            const rtsp = await rtspConn();
            await writeAll(rtsp.conn, `OPTIONS ${url} RTSP/1.0\r\nCSeq: 1\r\n`);
            return rtsp;
          },
          // A DESCRIBE whose answer it does not wait for.
          async () => {
            const rtsp = await rtspConn();
            await rtsp.send("DESCRIBE", url, { Accept: "application/sdp" });
            return rtsp;
          },
          // A session set up over TCP, then half a PLAY.
          async () => {
            const rtsp = await rtspConn();
            await rtsp.setup(path);
            await writeAll(rtsp.conn, `PLAY ${url}/ RTSP/1.0\r\nCSeq: 9\r\nSess`);
            return rtsp;
          },
          // A session playing over TCP, never read.
          async () => {
            const rtsp = await rtspConn();
            await rtsp.play(path);
            return rtsp;
          },
        ];
        const clients = await Promise.all(
          Array.from({ length: 50 }, (_, i) => kinds[i % kinds.length]()),
        );
        await rtspClients("vanish-cam", (count) => count === 20);
        for (const rtsp of clients) rtsp.close();
        // The sessions of clients that are gone are cleaned up, and the path is still served.
        await rtspClients("vanish-cam", (count) => count === 0);
        await assertReadable(path, "tcp");
        await rtspClients("vanish-cam", (count) => count === 0);
      });
    } finally {
      await client.request("deletePipeline", { id: "vanish-cam" });
    }
  },
});

/**
 * Opens an RTSP client that plays `path` over TCP and then never reads, and resolves once the
 * server has stopped sending to it: the server's socket to it holds data and no longer moves.
 */
async function stuckReader(path: string): Promise<RtspConn> {
  const stuck = await rtspConn();
  await stuck.play(path);
  let previous = -1;
  await waitUntil(
    async () => {
      const queued = (await tcpQueues(rtspPort, stuck.localPort))?.tx ?? 0;
      const still = queued > 0 && queued === previous;
      previous = queued;
      return still;
    },
    20_000,
    "the server's send queue to the client that does not read to fill and stop moving",
  );
  return stuck;
}

Deno.test("an RTSP client that plays over TCP and never reads is cleaned up when it goes away", async () => {
  await createCamera("stuck-cam", "stuck");
  try {
    await faultRounds("stuck RTSP reader", async () => {
      const stuck = await stuckReader("stuck");
      assert.ok((await pipelineIds()).includes("stuck-cam"));
      await rtspClients("stuck-cam", (count) => count === 1);
      stuck.close();
      // Its session goes with its connection (TCP transport), and the path is served again.
      await rtspClients("stuck-cam", (count) => count === 0);
      await assertReadable("stuck", "tcp");
      await rtspClients("stuck-cam", (count) => count === 0);
    });
  } finally {
    await client.request("deletePipeline", { id: "stuck-cam" });
  }
});

Deno.test("an RTSP client that plays over TCP and never reads is cut off, at the default write timeout, and no longer holds up the path's other clients", async () => {
  // Once the server's socket to a TCP client that does not read is full, gst-rtsp-server's
  // shared media waits for it and stops sending to every client of the path, over UDP and TCP.
  // The connection's write timeout (GSTREAMER_RTSP_WRITE_TIMEOUT_MS, 10 s) lets it go.
  await createCamera("stuck-others-cam", "stuck-others");
  try {
    // A client that keeps reading, over TCP like the stuck one: never cut off.
    const steady = await rtspConn();
    await steady.play("stuck-others");
    let steadyEnded = false;
    const steadyDrain = steady.drain().then(() => (steadyEnded = true));
    const stuck = await stuckReader("stuck-others");
    // Its session ends though it never closed (the stats count the steady client's only).
    await client.nextStats(
      (entry) => entry.id === "stuck-others-cam" && entry.rtspClients === 1,
      30_000,
    );
    const before = steady.drained;
    await assertReadable("stuck-others", "udp", 10_000);
    await assertReadable("stuck-others", "tcp", 10_000);
    assert.ok(steady.drained > before, "the client that kept reading still gets the stream");
    assert.equal(steadyEnded, false, "the client that kept reading is not cut off");
    stuck.close();
    steady.close();
    await steadyDrain;
  } finally {
    await client.request("deletePipeline", { id: "stuck-others-cam" });
  }
});

/** A UDP reader of `path` that keeps reading (rtspsrc, no UDP timeout): its frames so far. */
function udpReader(path: string): { frames: () => number } {
  const process = new Deno.Command("gst-launch-1.0", {
    args: [
      ...["-v", "rtspsrc", `location=${server.rtspUrl}/${path}`, "protocols=udp", "timeout=0"],
      ...["!", "rtpjpegdepay", "!", "fakesink", "silent=false"],
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  running.add(process);
  let frames = 0;
  void (async () => {
    for await (const text of process.stdout.pipeThrough(new TextDecoderStream())) {
      frames += text.split("last-message = chain").length - 1;
    }
  })();
  return { frames: () => frames };
}

Deno.test("a UDP reader held up by an RTSP client that never reads gets the stream again once that client is cut off", async () => {
  // With no TCP reader left to send to, gst-rtsp-server's sending thread slept on the data it
  // held, and the path's UDP readers stayed without data until the media went down.
  await createCamera("stuck-udp-cam", "stuck-udp");
  try {
    const reader = udpReader("stuck-udp");
    await waitUntil(() => reader.frames() >= 10, 20_000, "the UDP reader's first frames");
    const stuck = await stuckReader("stuck-udp");
    await client.nextStats(
      (entry) => entry.id === "stuck-udp-cam" && entry.rtspClients === 1,
      30_000,
    );
    const before = reader.frames();
    await waitUntil(
      () => reader.frames() >= before + 10,
      15_000,
      `the UDP reader's frames after the cut (${before} before)`,
    );
    stuck.close();
  } finally {
    await client.request("deletePipeline", { id: "stuck-udp-cam" });
  }
});

// ---------------------------------------------------------------------------------------------
// Runtime faults

/** Creates pipeline `id` from `elements` (type and properties). */
async function create(id: string, elements: unknown[]): Promise<void> {
  await request("createPipeline", { id, pipeline: { elements } });
}

async function remove(id: string): Promise<void> {
  await request("deletePipeline", { id });
}

/** A TCP server on loopback that accepts connections and treats them as `handle` says. */
function tcpServer(handle: (conn: Deno.Conn) => void): { port: number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  void (async () => {
    try {
      for await (const conn of listener) {
        openConns.add(conn);
        handle(conn);
      }
    } catch {
      // closed
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

/** A port nothing listens on (a listener's, closed again). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Runs `body` beside a live pipeline, which must play on untouched: no error, no state change,
 * frames still rendered afterwards.
 */
async function besideBystander(body: () => Promise<void>): Promise<void> {
  const id = "bystander";
  await create(id, [
    { type: "videotestsrc", properties: { "is-live": true } },
    { type: "capsfilter", properties: { caps: "video/x-raw,width=160,height=120,framerate=10/1" } },
    { type: "fakesink", name: "out", properties: { sync: true } },
  ]);
  await request("startPipeline", { id });
  const before = await statsOf(id, (entry) => entry.sinks[0]?.rendered > 0);
  const since = mark();
  await body();
  await statsOf(
    id,
    (entry) => entry.state === "PLAYING" && entry.sinks[0]?.rendered > before.sinks[0].rendered,
  );
  const touched = client.received.slice(since).filter((m) =>
    !("ok" in m) && m.type !== "stats" && (m as ServerEvent).payload?.id === id
  );
  assert.deepEqual(touched, [], "events for the bystander pipeline");
  await remove(id);
}

/** Waits until the pipeline is listed in `state`. */
async function waitForState(id: string, state: string): Promise<void> {
  await waitUntil(
    async () => (await client.request("getPipeline", { id })).payload?.state === state,
    15_000,
    `pipeline ${id} in ${state}`,
  );
}

Deno.test("a source that fails (a missing file, an RTSP source with no server) ends the run and leaks nothing", async () => {
  const deadPort = closedPort();
  await besideBystander(() =>
    faultRounds("failing sources", async (n) => {
      const since = mark();
      // At start: the file is not there.
      const missing = `missing-file-${n}`;
      await create(missing, [
        { type: "filesrc", properties: { location: `${mediaDir}/not-there-${n}.h264` } },
        { type: "h264parse" },
        { type: "fakesink" },
      ]);
      const start = await client.request("startPipeline", { id: missing });
      assert.equal(start.error?.code, "STATE_CHANGE_FAILED", JSON.stringify(start));
      await eventSince(since, "pipelineError", missing);
      assert.equal((await client.request("getPipeline", { id: missing })).payload.state, "NULL");
      await remove(missing);

      // After start: rtspsrc connects in the background and fails there.
      const dead = `dead-rtsp-${n}`;
      await create(dead, [
        { type: "rtspsrc", properties: { location: `rtsp://127.0.0.1:${deadPort}/none` } },
      ]);
      await client.request("startPipeline", { id: dead }); // PLAYING, or failed already
      await eventSince(since, "pipelineError", dead);
      await waitForState(dead, "NULL");
      await remove(dead);
    })
  );
});

Deno.test("a sink that fails (connection refused, peer gone mid-stream, caps refused mid-stream) ends the run and leaks nothing", async () => {
  const deadPort = closedPort();
  // A peer that takes a little and then closes: the sink's next writes fail.
  const peer = tcpServer((conn) => {
    void (async () => {
      const buffer = new Uint8Array(65536);
      await conn.read(buffer).catch(() => null);
      closeQuietly(conn);
    })();
  });
  const live = [
    { type: "videotestsrc", properties: { "is-live": true } },
    { type: "capsfilter", name: "caps", properties: { caps: "video/x-raw,width=320,height=240" } },
  ];
  try {
    await besideBystander(() =>
      faultRounds("failing sinks", async (n) => {
        const since = mark();
        const refused = `sink-refused-${n}`;
        await create(refused, [
          ...live,
          { type: "tcpclientsink", properties: { host: "127.0.0.1", port: deadPort } },
        ]);
        const start = await client.request("startPipeline", { id: refused });
        assert.equal(start.error?.code, "STATE_CHANGE_FAILED", JSON.stringify(start));
        await remove(refused);

        const gone = `sink-peer-gone-${n}`;
        await create(gone, [
          ...live,
          { type: "tcpclientsink", properties: { host: "127.0.0.1", port: peer.port } },
        ]);
        await client.request("startPipeline", { id: gone });
        await eventSince(since, "pipelineError", gone);
        await waitForState(gone, "NULL");
        await remove(gone);

        const caps = `caps-refused-${n}`;
        await create(caps, [...live, { type: "fakesink", properties: { sync: true } }]);
        assert.equal((await request("startPipeline", { id: caps })).payload.state, "PLAYING");
        await statsOf(caps, (entry) => entry.sinks[0]?.rendered > 0);
        await request("setElementProperty", {
          id: caps,
          element: "caps",
          property: "caps",
          value: "audio/x-raw",
        });
        const error = await eventSince(since, "pipelineError", caps);
        assert.match(JSON.stringify(error.payload), /negotiat/i);
        await waitForState(caps, "NULL");
        await remove(caps);
      })
    );
  } finally {
    peer.close();
  }
});

Deno.test("a pipeline that reaches EOS while it starts ends in NULL and can start again", async () => {
  await besideBystander(() =>
    faultRounds("EOS during start", async (n) => {
      for (const live of [false, true]) {
        const since = mark();
        const id = `eos-${live ? "live" : "file"}-${n}`;
        await create(id, [
          { type: "videotestsrc", properties: { "num-buffers": 1, "is-live": live } },
          { type: "fakesink" },
        ]);
        for (let run = 0; run < 3; run++) {
          const runSince = mark();
          const start = await client.request("startPipeline", { id });
          assert.equal(start.ok, true, JSON.stringify(start));
          await eventSince(runSince, "pipelineEos", id);
          await eventSince(runSince, "pipelineStateChanged", id, (p) => p.new === "NULL");
          await waitForState(id, "NULL");
        }
        assert.deepEqual(eventsSince(since, "pipelineError", id), []);
        await remove(id);
      }
    })
  );
});

/**
 * Pipelines whose start takes a while: a live source behind a queue that lets nothing through
 * before it holds a second of video (the sink prerolls only then), and an RTSP source whose
 * server accepts the connection and never answers.
 */
function slowStarters(silentPort: number, n: number): [string, unknown[]][] {
  return [
    [`slow-live-${n}`, [
      { type: "videotestsrc", properties: { "is-live": true } },
      { type: "capsfilter", properties: { caps: "video/x-raw,width=160,height=120" } },
      { type: "queue", properties: { "min-threshold-time": "1000000000" } },
      { type: "fakesink" },
    ]],
    [`silent-rtsp-${n}`, [
      { type: "rtspsrc", properties: { location: `rtsp://127.0.0.1:${silentPort}/x` } },
    ]],
  ];
}

/** A start that got an error reply got a real one, not INTERNAL. */
function assertNotInternal(reply: Reply): void {
  assert.ok(reply.ok || reply.error?.code !== "INTERNAL", JSON.stringify(reply));
}

/** A server that accepts connections and never answers. */
const silent = () => tcpServer(() => {});

Deno.test("a pipeline deleted while it starts is freed, and no event follows its deletion", async () => {
  const peer = silent();
  try {
    await besideBystander(async () => {
      const deletions: ServerEvent[] = [];
      await faultRounds("delete during start", async (n) => {
        for (const [id, elements] of slowStarters(peer.port, n)) {
          const since = mark();
          await create(id, elements);
          // Both requests leave before either reply: the delete arrives while the start runs.
          const [start, deleted] = await Promise.all([
            client.request("startPipeline", { id }),
            client.request("deletePipeline", { id }),
          ]);
          assert.equal(deleted.ok, true, JSON.stringify(deleted));
          assertNotInternal(start);
          deletions.push(await eventSince(since, "pipelineDeleted", id));
          assert.equal(
            (await client.request("getPipeline", { id })).error?.code,
            "PIPELINE_NOT_FOUND",
          );
        }
      });
      // Checked once faultRounds' assertBackTo has seen the pipelines freed (their threads and
      // descriptors gone): an event about them could only have come before.
      for (const gone of deletions) {
        const after = client.received.slice(client.received.indexOf(gone) + 1);
        const late = after.filter((m) =>
          !("ok" in m) && (m as ServerEvent).payload?.id === gone.payload.id
        );
        assert.deepEqual(late, [], `events for ${gone.payload.id} after pipelineDeleted`);
      }
    });
  } finally {
    peer.close();
  }
});

Deno.test("a pipeline stopped while it starts ends in NULL, stays there, starts again and is freed", async () => {
  const peer = silent();
  try {
    await besideBystander(() =>
      faultRounds("stop during start", async (n) => {
        for (const [id, elements] of slowStarters(peer.port, n)) {
          await create(id, elements);
          const [start, stopped] = await Promise.all([
            client.request("startPipeline", { id }),
            client.request("stopPipeline", { id }),
          ]);
          const stoppedAt = mark();
          assert.equal(stopped.ok, true, JSON.stringify(stopped));
          assert.equal(stopped.payload.state, "NULL");
          assertNotInternal(start);
          assert.equal((await client.request("getPipeline", { id })).payload.state, "NULL");
          // It can start again after the interrupted start; nothing moved it out of NULL before.
          const restarted = mark();
          const again = await client.request("startPipeline", { id });
          assert.equal(again.ok, true, JSON.stringify(again));
          const moved = client.received.slice(stoppedAt, restarted).filter((m) =>
            m.type === "pipelineStateChanged" && (m as ServerEvent).payload.id === id &&
            (m as ServerEvent).payload.new !== "NULL"
          );
          assert.deepEqual(moved, [], `${id} left NULL after the stop's reply`);
          await remove(id);
        }
      })
    );
  } finally {
    peer.close();
  }
});
