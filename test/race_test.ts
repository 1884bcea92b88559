/**
 * A race test against the real server with real clients. Round after round, at random moments,
 * pipelines and pushes are deleted, stopped and started again while
 * - pushes stream H.264 into the server (fetch with a paced ReadableStream body),
 * - RTSP publishers (ffmpeg -f rtsp over TCP or UDP) publish, and are killed, stopped or have
 *   their publish deleted,
 * - RTSP readers (ffmpeg, ffprobe, gst-launch-1.0 rtspsrc) read the pushes and a camera pipeline
 *   that serves its stream with an `rtspserversink`,
 * - a client takes stats ten times a second (statsIntervalMs 100),
 * - another client reads the pipelines of the round (getPipeline, getElementProperty) while
 *   they go away,
 * - a demuxer or decoder (qtdemux, tsdemux, uridecodebin) links its pads as they appear.
 *
 * What must hold: every WebSocket request gets exactly one reply (none of them INTERNAL); no push
 * sender gets a 5xx; the server never aborts (it runs with G_DEBUG=fatal-criticals) and logs no
 * CRITICAL; once all is torn down its descriptors, threads and pipelines are back to the baseline
 * taken after a warm-up round (as in faults_test.ts).
 *
 * A random moment is a random number of the stats client's broadcasts (ten a second) plus a
 * random delay below 100 ms: it places an action, it never waits for the server to have done
 * something (that is always an event). The choices come from a seed, printed;
 * RACE_SEED=<seed> replays them (the interleaving is up to the machine).
 */
import assert from "node:assert/strict";
import {
  assertBackTo,
  type Reply,
  type ServerEvent,
  serverSnapshot,
  startServer,
  TestClient,
} from "./helpers.ts";

const SEED = Number(Deno.env.get("RACE_SEED") ?? 20261202);
if (!Number.isSafeInteger(SEED)) throw new Error("RACE_SEED must be an integer");
/** Rounds after the warm-up round. */
const ROUNDS = 30;
/** A request with no reply after this long counts as unanswered. */
const REPLY_TIMEOUT_MS = 20_000;
/** A push sender gives up after this long (and counts as "no reply"). */
const PUSH_TIMEOUT_MS = 30_000;
/** Every RTSP reader is killed after this long at the latest (the end of its round kills it sooner). */
const CHILD_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// Seeded choices

/** mulberry32: small, fast and good enough to pick moments and actions. */
class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer from `min` to `max`, both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  /** A generator of its own, so that each task's choices do not depend on how the tasks interleave. */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}

// ---------------------------------------------------------------------------------------------
// Media, the server and three clients

const mediaDir = await Deno.makeTempDir({ prefix: "race_test_" });
const testsrc = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=30"];
const sine = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
const x264 = ["-c:v", "libx264", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p"];
async function ffmpeg(args: string[]): Promise<void> {
  const made = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-y", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
}
/** 4 s of 160x120 video at 30 frame/s, a key frame every 15 frames (output options). */
const video = ["-t", "4", ...x264];
const annexB = ["-bsf:v", "h264_mp4toannexb", "-f", "h264"];
await Promise.all([
  // H.264 Annex-B for the pushes.
  ffmpeg([...testsrc, ...video, ...annexB, `${mediaDir}/clip.h264`]),
  // With AAC, in MP4 and in MPEG-TS, for the demuxers (two pads each).
  ffmpeg([...testsrc, ...sine, ...video, "-c:a", "aac", `${mediaDir}/clip.mp4`]),
  ffmpeg([...testsrc, ...sine, ...video, "-c:a", "aac", "-f", "mpegts", `${mediaDir}/clip.ts`]),
]);
const clip = await Deno.readFile(`${mediaDir}/clip.h264`);

const server = await startServer({
  GSTREAMER_MEDIA_DIR: mediaDir,
  // Never the push limit's 503: a round has at most four pushes, and they outlive their round by
  // no more than the teardown.
  GSTREAMER_MAX_PUSHES: "64",
  // The reads are not rate limited: every request runs.
  GSTREAMER_MAX_REQUESTS_PER_SECOND: "0",
  // fetch keeps connections for reuse; the server closes them once idle this long, so they do not
  // stay among its descriptors for the final count.
  GSTREAMER_HTTP_IDLE_TIMEOUT_MS: "4000",
});
const logs = () => `\n--- server log (last 60 lines) ---\n${server.logs.slice(-60).join("\n")}`;
/** Set when the server process ends on its own (an abort under fatal-criticals, a crash). */
let exitedWith: number | null = null;
const serverGone = server.exited.then((code) => {
  exitedWith = code;
});
const alive = () => exitedWith === null;

/** The pushes' own HTTP client, closed before the final count so no kept connection remains. */
const pushHttp = Deno.createHttpClient({});
let pushHttpOpen = true;
function closePushHttp(): void {
  if (pushHttpOpen) pushHttp.close();
  pushHttpOpen = false;
}

Deno.test.afterAll(async () => {
  const wasAlive = alive();
  for (const c of clients) await c.client.close();
  await probe.close();
  closePushHttp();
  const code = await server.stop();
  if (wasAlive) assert.equal(code, 0, logs());
  await Deno.remove(mediaDir, { recursive: true });
});

// ---------------------------------------------------------------------------------------------
// Figures

const figures = {
  rounds: 0,
  pushes: 0,
  publishes: 0,
  /** How each publisher (ffmpeg) ended: its exit code or signal -> count. */
  publisherEnds: new Map<string, number>(),
  readers: 0,
  /** HTTP status (or how the push ended without one) -> count. */
  statuses: new Map<string, number>(),
  /** Error code of a WebSocket reply -> count. */
  errorCodes: new Map<string, number>(),
};
/** What went wrong, in order; the test fails if any. */
const problems: string[] = [];
/** Pushes that got no HTTP reply: a problem unless the server died. */
const unanswered: string[] = [];
/** Requests that got no reply in time from a server that still runs. */
let unansweredRequests = 0;

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
const showCounts = (map: Map<string, number>) =>
  [...map].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} x${n}`).join(", ") ||
  "none";

// ---------------------------------------------------------------------------------------------
// Waiting without timers that outlive the wait

type Message = ServerEvent | Reply;
const isReply = (m: Message): m is Reply => m.type === "result" || m.type === "error";

/**
 * The first message `client` received from index `since` on (already or to come) that matches;
 * null after `timeoutMs`, once the connection closes or the server is gone, or once `until`
 * settles.
 */
function messageAfter<T extends Message>(
  client: TestClient,
  since: number,
  predicate: (m: Message) => boolean,
  timeoutMs: number,
  until?: Promise<unknown>,
): Promise<T | null> {
  const found = client.received.slice(since).find(predicate);
  if (found) return Promise.resolve(found as T);
  return new Promise<T | null>((resolve) => {
    let settled = false;
    const done = (value: Message | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.socket.removeEventListener("message", listener);
      resolve(value as T | null);
    };
    // TestClient's own listener came first: the message is already the last one received.
    const listener = () => {
      const last = client.received[client.received.length - 1];
      if (last && predicate(last)) done(last);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    client.socket.addEventListener("message", listener);
    void client.closed.then(() => done(null));
    void serverGone.then(() => done(null));
    void until?.then(() => done(null), () => done(null));
  });
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Requests, each counted with its replies

class Counted {
  /** requestId -> request type, for every request sent. */
  readonly sent = new Map<string, string>();
  #next = 0;
  constructor(readonly name: string, readonly client: TestClient) {}

  /** Sends a request and resolves with its reply, or null (never rejects). */
  async request(type: string, payload?: unknown): Promise<Reply | null> {
    if (!alive() || this.client.socket.readyState !== WebSocket.OPEN) return null;
    const requestId = `${this.name}-${++this.#next}`;
    this.sent.set(requestId, type);
    const reply = messageAfter<Reply>(
      this.client,
      this.client.received.length,
      (m) => isReply(m) && m.requestId === requestId,
      REPLY_TIMEOUT_MS,
    );
    this.client.socket.send(JSON.stringify({ type, requestId, payload }));
    const answer = await reply;
    if (answer === null && alive() && this.client.socket.readyState === WebSocket.OPEN) {
      // The server lives and does not answer: the rounds stop here (see the test).
      if (unansweredRequests++ === 0) {
        problems.push(
          `no reply within ${REPLY_TIMEOUT_MS} ms to ${type} ${JSON.stringify(payload)}`,
        );
      }
    }
    if (answer && !answer.ok) {
      const code = answer.error?.code ?? "?";
      count(figures.errorCodes, code);
      if (code === "INTERNAL") {
        problems.push(`${type} ${JSON.stringify(payload)}: INTERNAL ${answer.error?.message}`);
      }
    }
    return answer;
  }
}

const control = new Counted("control", await TestClient.connect(server.url));
const reads = new Counted("reads", await TestClient.connect(server.url));
const stats = new Counted("stats", await TestClient.connect(server.url));
const clients = [control, reads, stats];
/** The resource counts' own client (its getPipelines are not among the counted requests). */
const probe = await TestClient.connect(server.url);
assert.equal((await stats.request("subscribe", { statsIntervalMs: 100 }))?.ok, true);

/** Every request sent got exactly one reply, and no reply came for a request not sent. */
function checkReplies(): void {
  for (const { name, client, sent } of clients) {
    const replies = new Map<string, number>();
    for (const m of client.received) if (isReply(m)) count(replies, String(m.requestId));
    const wrong: string[] = [];
    for (const [id, type] of sent) {
      const n = replies.get(id) ?? 0;
      if (n !== 1) wrong.push(`${type} ${id}: ${n} replies`);
    }
    for (const [id, n] of replies) {
      if (!sent.has(id)) wrong.push(`${n} replies to ${id}, never sent`);
    }
    if (wrong.length > 0) {
      problems.push(
        `client ${name}: ${wrong.length} requests without exactly one reply` +
          `${alive() ? "" : " (the server is gone)"}: ` +
          `${wrong.slice(0, 5).join("; ")}${wrong.length > 5 ? "; ..." : ""}`,
      );
    }
  }
}

/** A random moment: some of the stats client's broadcasts (ten a second), then a short delay. */
async function moment(rng: Rng, maxTicks = 6): Promise<void> {
  const ticks = rng.int(0, maxTicks);
  for (let i = 0; i < ticks && alive(); i++) {
    await messageAfter(stats.client, stats.client.received.length, (m) => m.type === "stats", 5000);
  }
  const jitter = rng.int(0, 99);
  if (jitter > 0) await delay(jitter);
}

/** An event of `type` about pipeline `id` on the control client, received from `since` on. */
function eventAfter(
  since: number,
  type: string,
  id: string,
  until: Promise<unknown>,
  predicate: (payload: ServerEvent["payload"]) => boolean = () => true,
): Promise<ServerEvent | null> {
  return messageAfter<ServerEvent>(
    control.client,
    since,
    (m) => m.type === type && (m as ServerEvent).payload?.id === id && predicate(m.payload),
    15_000,
    until,
  );
}
const playing = (since: number, id: string, until: Promise<unknown>) =>
  eventAfter(since, "pipelineStateChanged", id, until, (p) => p.new === "PLAYING");

// ---------------------------------------------------------------------------------------------
// A round

interface Child {
  process: Deno.ChildProcess;
  status: Promise<Deno.CommandStatus>;
}

interface Round {
  over: boolean;
  senders: Promise<void>[];
  readers: Child[];
  publishers: Child[];
}

interface Target {
  id: string;
  /** Readable properties, [element, property]. */
  properties: [string, string][];
}

/** A live camera served at its own RTSP path. */
function camera(id: string) {
  return {
    elements: [
      { type: "videotestsrc", name: "src", properties: { "is-live": true } },
      {
        type: "capsfilter",
        name: "caps",
        properties: { caps: "video/x-raw,width=160,height=120,framerate=15/1" },
      },
      {
        type: "x264enc",
        name: "enc",
        properties: { tune: "zerolatency", "speed-preset": "ultrafast", "key-int-max": 15 },
      },
      { type: "rtspserversink", name: "rtsp", properties: { path: id } },
    ],
  };
}
const cameraProperties: [string, string][] = [
  ["enc", "bitrate"],
  ["src", "pattern"],
  ["rtsp", "drop"],
  ["caps", "caps"],
];

/** A file played in real time through elements whose pads appear while it starts. */
const graphs = {
  qtdemux: {
    elements: [
      { type: "filesrc", name: "src", properties: { location: "clip.mp4" } },
      { type: "qtdemux", name: "d" },
      { type: "queue", name: "vq" },
      { type: "h264parse", name: "vparse" },
      { type: "avdec_h264", name: "vdec" },
      { type: "fakesink", name: "vsink", properties: { sync: true } },
      { type: "queue", name: "aq" },
      { type: "aacparse", name: "aparse" },
      { type: "fakesink", name: "asink", properties: { sync: true } },
    ],
    links: [
      { from: "src", to: "d" },
      { from: "d.video_0", to: "vq" },
      { from: "vq", to: "vparse" },
      { from: "vparse", to: "vdec" },
      { from: "vdec", to: "vsink" },
      { from: "d.audio_0", to: "aq" },
      { from: "aq", to: "aparse" },
      { from: "aparse", to: "asink" },
    ],
  },
  tsdemux: "filesrc name=src location=clip.ts ! tsdemux name=d d. ! queue ! h264parse ! " +
    "avdec_h264 ! fakesink name=vsink sync=true",
  uridecodebin: {
    elements: [
      {
        type: "uridecodebin",
        name: "dec",
        properties: { uri: `file://${mediaDir}/clip.mp4` },
      },
      { type: "queue", name: "vq" },
      { type: "videoconvert", name: "vconv" },
      { type: "fakesink", name: "vsink", properties: { sync: true } },
      { type: "queue", name: "aq" },
      { type: "audioconvert", name: "aconv" },
      { type: "fakesink", name: "asink", properties: { sync: true } },
    ],
    links: [
      { from: "dec", to: "vq" },
      { from: "vq", to: "vconv" },
      { from: "vconv", to: "vsink" },
      { from: "dec", to: "aq" },
      { from: "aq", to: "aconv" },
      { from: "aconv", to: "asink" },
    ],
  },
};
const graphProperties: Record<keyof typeof graphs, [string, string][]> = {
  qtdemux: [["vsink", "stats"], ["src", "location"], ["vsink", "sync"]],
  tsdemux: [["vsink", "stats"], ["src", "location"], ["d", "program-number"]],
  uridecodebin: [["vsink", "stats"], ["dec", "uri"], ["dec", "source"]],
};
const pushProperties: [string, string][] = [
  ["source", "current-level-bytes"],
  ["counter", "stats"],
  ["parser", "config-interval"],
  ["rtsp", "drop"],
];

/** An RTSP reader of `path` (over TCP: its session goes with its connection). */
function startReader(path: string, rng: Rng, round: Round): void {
  if (round.over || !alive()) return;
  figures.readers++;
  const url = `${server.rtspUrl}/${path}`;
  const io = ["-rtsp_transport", "tcp", "-timeout", "5000000"];
  // ffmpeg reads 2 s of it (or until it ends), ffprobe its streams, gst-launch-1.0 until killed.
  const twoSeconds = ["-t", "2", "-c", "copy", "-f", "null", "-"];
  const [command, args] = rng.pick(
    [
      ["ffmpeg", ["-nostdin", "-v", "error", ...io, "-i", url, ...twoSeconds]],
      ["ffprobe", ["-v", "error", ...io, "-show_streams", url]],
      ["gst-launch-1.0", ["-q", "rtspsrc", `location=${url}`, "protocols=tcp", "!", "fakesink"]],
    ] as const,
  );
  const process = new Deno.Command(command, {
    args: [...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => kill(process, "SIGKILL"), CHILD_TIMEOUT_MS);
  round.readers.push({ process, status: process.status.finally(() => clearTimeout(timer)) });
}

function kill(process: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    process.kill(signal);
  } catch {
    // already gone
  }
}

/** Once `id` plays (unless `until` settles first), at a random moment, an RTSP reader of `path`. */
async function readerWhenPlaying(
  id: string,
  path: string,
  since: number,
  rng: Rng,
  round: Round,
  until: Promise<unknown>,
): Promise<void> {
  if (!await playing(since, id, until)) return;
  await moment(rng, 4);
  startReader(path, rng, round);
}

/**
 * A push of the clip to `name` by fetch, the body paced in random chunks (a sender such as
 * `ffmpeg -re`, faster). Records the status; a 5xx is a problem.
 */
async function sendPush(name: string, rng: Rng, abort: AbortController): Promise<void> {
  figures.pushes++;
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < clip.length;) {
    const size = rng.int(256, 2048);
    chunks.push(clip.slice(offset, offset + size));
    offset += size;
  }
  const pause = rng.int(5, 50);
  let next = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (next > 0) await delay(pause);
      if (next === chunks.length) controller.close();
      else controller.enqueue(chunks[next++]);
    },
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, PUSH_TIMEOUT_MS);
  let outcome: string;
  try {
    const response = await fetch(`${server.httpUrl}/push/${name}`, {
      method: "POST",
      headers: { "content-type": "video/h264" },
      body,
      signal: abort.signal,
      client: pushHttp,
    });
    const text = await response.text();
    outcome = String(response.status);
    if (response.status >= 500) problems.push(`push ${name}: HTTP ${response.status} ${text}`);
  } catch (error) {
    if (abort.signal.aborted && !timedOut) {
      outcome = "aborted by the sender";
    } else {
      outcome = `no reply (${(error as Error).name})`;
      unanswered.push(`push ${name}: ${error}`);
    }
  } finally {
    clearTimeout(timer);
  }
  count(figures.statuses, outcome);
}

/** A pipeline of the round: created, started, then stopped, started, deleted at random moments. */
async function pipelineLife(
  target: Target,
  pipeline: unknown,
  rtspPath: string | null,
  rng: Rng,
  round: Round,
): Promise<void> {
  const { id } = target;
  const since = control.client.received.length;
  const created = await control.request("createPipeline", { id, pipeline });
  if (!created?.ok) {
    if (alive()) problems.push(`createPipeline ${id}: ${JSON.stringify(created?.error ?? null)}`);
    return;
  }
  const pending: Promise<unknown>[] = [control.request("startPipeline", { id })];
  // A reader still waiting for PLAYING when the actions are over is not started.
  let actionsOver = () => {};
  const over = new Promise<void>((resolve) => actionsOver = resolve);
  if (rtspPath && rng.chance(0.7)) {
    pending.push(readerWhenPlaying(id, rtspPath, since, rng.fork(), round, over));
  }
  const actions = rng.int(1, 3);
  for (let k = 0; k < actions && alive(); k++) {
    await moment(rng);
    const action = rng.pick(
      ["delete", "stop", "restart", "stop+start", "start+delete", "start"] as const,
    );
    const step = (async () => {
      switch (action) {
        case "delete":
          await control.request("deletePipeline", { id });
          break;
        case "stop":
          await control.request("stopPipeline", { id });
          break;
        case "restart":
          await control.request("stopPipeline", { id });
          await control.request("startPipeline", { id });
          break;
        case "stop+start":
          await Promise.all([
            control.request("stopPipeline", { id }),
            control.request("startPipeline", { id }),
          ]);
          break;
        case "start+delete":
          await Promise.all([
            control.request("startPipeline", { id }),
            control.request("deletePipeline", { id }),
          ]);
          break;
        case "start":
          await control.request("startPipeline", { id });
          break;
      }
    })();
    // Half the time the next action does not wait for this one's replies.
    if (rng.chance(0.5)) await step;
    else pending.push(step);
    if (action.includes("delete")) break;
  }
  actionsOver();
  await Promise.all(pending);
}

/** A push of the round: deleted, stopped, cut off or left alone at a random moment, perhaps sent again. */
async function pushLife(name: string, rng: Rng, round: Round): Promise<void> {
  const pending: Promise<unknown>[] = [];
  const since = control.client.received.length;
  const abort = new AbortController();
  const sender = sendPush(name, rng.fork(), abort);
  round.senders.push(sender);
  const over = sender;
  if (rng.chance(0.6)) {
    pending.push(readerWhenPlaying(name, name, since, rng.fork(), round, over));
  }
  const trigger = rng.pick(["none", "blind", "created", "playing", "later", "later"] as const);
  if (trigger !== "none") {
    if (trigger === "blind") await delay(rng.int(0, 20));
    else if (trigger === "created") await eventAfter(since, "pipelineCreated", name, over);
    else if (trigger === "playing") await playing(since, name, over);
    else {
      await playing(since, name, over);
      await moment(rng);
    }
    if (rng.chance(0.5)) await delay(rng.int(0, 15));
    const action = rng.pick(
      ["delete", "delete", "stop", "stop+start", "cut+delete", "cut"] as const,
    );
    switch (action) {
      case "delete":
        pending.push(control.request("deletePipeline", { id: name }));
        break;
      case "stop":
        pending.push(control.request("stopPipeline", { id: name }));
        break;
      case "stop+start":
        pending.push(
          control.request("stopPipeline", { id: name }),
          control.request("startPipeline", { id: name }),
        );
        break;
      case "cut+delete":
        abort.abort();
        pending.push(control.request("deletePipeline", { id: name }));
        break;
      case "cut":
        abort.abort();
        break;
    }
  }
  // Pushed again under the same name: 409 while the name is taken, else a new push.
  if (rng.chance(0.4) && alive()) {
    await moment(rng, 4);
    const again = new AbortController();
    const second = sendPush(name, rng.fork(), again);
    round.senders.push(second);
    if (rng.chance(0.5)) {
      await delay(rng.int(0, 40));
      pending.push(control.request("deletePipeline", { id: name }));
    }
  }
  await Promise.all(pending);
}

const publishProperties: [string, string][] = [
  ["in0", "port"],
  ["count0", "stats"],
  ["parse0", "config-interval"],
  ["rtsp0", "drop"],
];

/** An RTSP publisher of `name`: ffmpeg looping the MP4 clip (H.264 and AAC) over TCP or UDP. */
function startPublisher(name: string, rng: Rng, round: Round): void {
  if (round.over || !alive()) return;
  figures.publishes++;
  const transport = rng.pick(["tcp", "udp"] as const);
  const process = new Deno.Command("ffmpeg", {
    args: [
      ...["-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", `${mediaDir}/clip.mp4`],
      ...["-c", "copy", "-f", "rtsp", "-rtsp_transport", transport, `${server.rtspUrl}/${name}`],
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => kill(process, "SIGKILL"), CHILD_TIMEOUT_MS);
  const status = process.status.finally(() => clearTimeout(timer));
  void status.then((ended) => count(figures.publisherEnds, ended.signal ?? String(ended.code)));
  round.publishers.push({ process, status });
}

/**
 * An RTSP publish of the round: its publisher killed (the connection drops) or interrupted (it
 * sends TEARDOWN), or the publish deleted or stopped, at a random moment; perhaps published again
 * under the same name (refused while the name is taken, else a new publish).
 */
async function publishLife(name: string, rng: Rng, round: Round): Promise<void> {
  const pending: Promise<unknown>[] = [];
  const since = control.client.received.length;
  startPublisher(name, rng.fork(), round);
  const over = round.publishers.at(-1)?.status ?? Promise.resolve();
  if (rng.chance(0.6)) {
    pending.push(readerWhenPlaying(name, name, since, rng.fork(), round, over));
  }
  const trigger = rng.pick(["none", "created", "playing", "later", "later"] as const);
  if (trigger !== "none") {
    if (trigger === "created") await eventAfter(since, "pipelineCreated", name, over);
    else await playing(since, name, over);
    if (trigger === "later") await moment(rng);
    const action = rng.pick(["kill", "interrupt", "delete", "stop", "stop+start"] as const);
    const publisher = round.publishers.at(-1)?.process;
    switch (action) {
      case "kill":
        if (publisher) kill(publisher, "SIGKILL");
        break;
      case "interrupt":
        if (publisher) kill(publisher, "SIGINT");
        break;
      case "delete":
        pending.push(control.request("deletePipeline", { id: name }));
        break;
      case "stop":
        pending.push(control.request("stopPipeline", { id: name }));
        break;
      case "stop+start":
        pending.push(
          control.request("stopPipeline", { id: name }),
          control.request("startPipeline", { id: name }),
        );
        break;
    }
  }
  if (rng.chance(0.4) && alive()) {
    await moment(rng, 4);
    startPublisher(name, rng.fork(), round);
  }
  await Promise.all(pending);
}

/** getPipeline and getElementProperty on the round's pipelines, one at a time, until it ends. */
async function readLoop(targets: Target[], rng: Rng, round: Round): Promise<void> {
  while (!round.over && alive()) {
    const target = rng.pick(targets);
    if (rng.chance(0.4)) {
      await reads.request("getPipeline", { id: target.id });
    } else {
      const [element, property] = rng.pick(target.properties);
      await reads.request("getElementProperty", { id: target.id, element, property });
    }
    const pause = rng.int(5, 30);
    if (pause > 0) await delay(pause);
  }
}

async function runRound(n: number, rng: Rng): Promise<void> {
  const round: Round = {
    over: false,
    senders: [],
    readers: [],
    publishers: [],
  };
  const graph = rng.pick(Object.keys(graphs) as (keyof typeof graphs)[]);
  const cam: Target = { id: `cam-${n}`, properties: cameraProperties };
  const demux: Target = { id: `graph-${n}`, properties: graphProperties[graph] };
  const pushes: Target[] = ["a", "b"].map((x) => ({
    id: `push-${n}-${x}`,
    properties: pushProperties,
  }));
  const publish: Target = { id: `pub-${n}`, properties: publishProperties };
  const targets = [cam, demux, ...pushes, publish];
  const readLoops = [readLoop(targets, rng.fork(), round), readLoop(targets, rng.fork(), round)];
  await Promise.all([
    pipelineLife(cam, camera(cam.id), cam.id, rng.fork(), round),
    pipelineLife(demux, graphs[graph], null, rng.fork(), round),
    ...pushes.map((push) => pushLife(push.id, rng.fork(), round)),
    publishLife(publish.id, rng.fork(), round),
  ]);

  // Teardown: whatever is left is deleted at once, pushes still streaming among them.
  await Promise.all(targets.map((t) => control.request("deletePipeline", { id: t.id })));
  await Promise.all(round.senders);
  round.over = true;
  for (const publisher of round.publishers) kill(publisher.process, "SIGKILL");
  await Promise.all(round.publishers.map((publisher) => publisher.status));
  await Promise.all(readLoops);
  for (const reader of round.readers) kill(reader.process, "SIGTERM");
  await Promise.all(round.readers.map((reader) => reader.status));
  // A push sent again after the deletes has ended by now; anything of the round still listed goes.
  const listed = await control.request("getPipelines");
  const ids = new Set(targets.map((t) => t.id));
  for (const { id } of listed?.payload?.pipelines ?? []) {
    if (ids.has(id)) await control.request("deletePipeline", { id });
  }
}

/** What a process holds, for a failure: its descriptors by kind and its threads by name. */
async function holdings(pid: number): Promise<string> {
  const fds = new Map<string, number>();
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    const target = await Deno.readLink(`/proc/${pid}/fd/${entry.name}`).catch(() => "?");
    count(fds, target.replace(/:\[\d+\]$/, "").replace(/^\/.*/, "file"));
  }
  const threads = new Map<string, number>();
  for await (const entry of Deno.readDir(`/proc/${pid}/task`)) {
    const name = await Deno.readTextFile(`/proc/${pid}/task/${entry.name}/comm`).catch(() => "?");
    count(threads, name.trim());
  }
  return `  descriptors: ${showCounts(fds)}\n  threads: ${showCounts(threads)}`;
}

// ---------------------------------------------------------------------------------------------
// The test

Deno.test("deletes, stops and restarts racing pushes, RTSP readers, stats, reads and pad-added links", async () => {
  console.log(`race seed ${SEED} (RACE_SEED=${SEED} replays its choices)`);
  const rng = new Rng(SEED);
  const criticals = () => server.logs.filter((line) => line.includes("CRITICAL"));
  const requests = () => clients.reduce((sum, c) => sum + c.sent.size, 0);
  const started = performance.now();
  try {
    // Warm-up (plugins, pooled threads, the RTSP server), then the baseline.
    let current = "";
    const round = async (n: number) => {
      current = n === 0 ? "the warm-up round" : `round ${n}`;
      const criticalsBefore = criticals().length;
      await runRound(n, rng.fork());
      if (criticals().length > criticalsBefore) {
        problems.push(`${current}: ${criticals().length - criticalsBefore} CRITICAL log lines`);
      }
    };
    await round(0);
    const before = alive() ? await serverSnapshot(server, probe) : null;
    // A server that died, or that stopped answering, ends the rounds.
    for (let n = 1; n <= ROUNDS && alive() && unansweredRequests === 0; n++) {
      await round(n);
      figures.rounds = n;
    }
    // Let every reply still on its way arrive: the last request's reply is the last one sent.
    await control.request("getPipelines");
    if (!alive()) {
      // Let the log of the end arrive.
      await server.exited;
      problems.push(`the server exited with ${exitedWith} during ${current}`);
    }
    checkReplies();
    if (alive() && unanswered.length > 0) {
      problems.push(`${unanswered.length} pushes got no HTTP reply: ${unanswered.slice(0, 3)}`);
    }
    if (alive() && before !== null) {
      closePushHttp();
      await assertBackTo(server, probe, before, "after the rounds").catch(
        async (error) => problems.push(`${error.message}\n${await holdings(server.pid)}`),
      );
    }
  } finally {
    const seen = criticals();
    console.log(
      [
        `race seed ${SEED}: ${figures.rounds} rounds (after a warm-up round) in ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s`,
        `  WebSocket requests sent: ${requests()} ` +
        `(control ${control.sent.size}, reads ${reads.sent.size}, stats ${stats.sent.size})`,
        `  error replies: ${showCounts(figures.errorCodes)}`,
        `  pushes started: ${figures.pushes}; HTTP statuses: ${showCounts(figures.statuses)}`,
        `  RTSP publishers started: ${figures.publishes}, accepted: ${
          server.logs.filter((line) => /^Publish '[^']*' of .* accepted$/.test(line)).length
        }, publishes ended: ${
          server.logs.filter((line) => /^Publish '[^']*' from .* ended/.test(line)).length
        }; publishers' exits: ${showCounts(figures.publisherEnds)}`,
        `  RTSP readers started: ${figures.readers}`,
        `  stats broadcasts received: ${
          stats.client.received.filter((m) => m.type === "stats").length
        }`,
        `  CRITICAL log lines: ${seen.length}`,
        ...seen.slice(0, 5).map((line) => `    ${line}`),
      ].join("\n"),
    );
  }
  const seen = criticals();
  if (seen.length > 0) problems.push(`${seen.length} CRITICAL log lines, first: ${seen[0]}`);
  assert.deepEqual(
    problems,
    [],
    `seed: RACE_SEED=${SEED} deno test -A test/race_test.ts${logs()}`,
  );
});
