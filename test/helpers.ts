/**
 * Test helpers: the real server as a child process on port 0, and a real
 * WebSocket client that waits for replies and events (never sleeps).
 */
const root = new URL("../", import.meta.url);

export interface ServerProcess {
  url: string;
  /** rtsp://HOST:PORT (no path). */
  rtspUrl: string;
  httpUrl: string;
  pid: number;
  /** Every line the server printed so far. */
  logs: string[];
  /** Waits for a printed line (already printed or to come) that contains `text`. */
  waitForLog(text: string, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code once the process ends (by itself or by stop()). */
  exited: Promise<number>;
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number>;
}

/** The server of another checkout (`main` is its src/main.ts), run as directLaunch runs ours. */
export function launchOf(main: string): { command: string; args: string[] } {
  return { ...directLaunch, args: [...directLaunch.args.slice(0, -1), main] };
}

/** The server run directly; pass another (such as start_server.sh) to startServer to test it. */
const directLaunch = {
  command: Deno.execPath(),
  args: [
    "run",
    // As `deno task start` runs it (see docs/measurements.md, Soak).
    "--v8-flags=--max-semi-space-size=4",
    "--allow-ffi",
    "--allow-env",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-sys",
    "src/main.ts",
  ],
};

let recordingsDir: string | undefined;
function testRecordingsDir(): string {
  recordingsDir ??= Deno.makeTempDirSync({ prefix: "test_recordings_" });
  return recordingsDir;
}

export async function startServer(
  env: Record<string, string> = {},
  startTimeoutMs = 20000,
  launch: { command: string; args: string[] } = directLaunch,
): Promise<ServerProcess> {
  const child = new Deno.Command(launch.command, {
    args: launch.args,
    cwd: root,
    env: {
      GSTREAMER_WS_HOST: "127.0.0.1",
      GSTREAMER_WS_PORT: "0",
      GSTREAMER_RTSP_PORT: "0",
      // Each test server keeps its pipelines to itself unless a test gives it a directory.
      GSTREAMER_DATA_DIR: ":memory:",
      // Recordings go to a temporary folder of this test run, not the checkout's ./recordings.
      GSTREAMER_RECORDINGS_DIR: testRecordingsDir(),
      GSTREAMER_RECORDINGS_MIN_FREE_MB: "1",
      NO_COLOR: "1",
      // A GLib/GStreamer CRITICAL (a call on a freed or wrong object) aborts the server and fails
      // the test instead of scrolling past in the log (docs/architecture.md, ownership rules).
      G_DEBUG: "fatal-criticals",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const logWaiters: { text: string; resolve: (line: string) => void }[] = [];
  let resolveUrl: (url: string) => void;
  const urlFound = new Promise<string>((resolve) => (resolveUrl = resolve));
  let rtspUrl = "";
  const readLines = async (stream: ReadableStream<Uint8Array>) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        logs.push(line);
        for (const waiter of logWaiters.filter((w) => line.includes(w.text))) {
          logWaiters.splice(logWaiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
        const rtsp = line.match(/RTSP listening on (rtsp:\/\/\S+)/);
        if (rtsp) rtspUrl = rtsp[1];
        const match = line.match(/WebSocket listening on (ws:\/\/\S+)/);
        if (match) resolveUrl(match[1]);
      }
    }
    if (pending) logs.push(pending);
  };
  const pumps = Promise.all([readLines(child.stdout), readLines(child.stderr)]);
  const exited = child.status.then(async (status) => {
    await pumps;
    return status.code;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const url = await Promise.race([
    urlFound,
    exited.then((code) => {
      throw new Error(`Server exited with ${code} before listening:\n${logs.join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`Server did not start within ${startTimeoutMs} ms:\n${logs.join("\n")}`));
        try {
          child.kill("SIGKILL"); // not left running: the caller never gets it to stop
        } catch {
          // it has exited meanwhile
        }
      }, startTimeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  const { host } = new URL(url);
  return {
    url,
    get rtspUrl() {
      return rtspUrl;
    },
    httpUrl: `http://${host}`,
    pid: child.pid,
    logs,
    waitForLog(text, timeoutMs = 15000) {
      const found = logs.find((line) => line.includes(text));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = {
          text,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          logWaiters.splice(logWaiters.indexOf(waiter), 1);
          reject(new Error(`No log line with '${text}' within ${timeoutMs} ms`));
        }, timeoutMs);
        logWaiters.push(waiter);
      });
    },
    exited,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      return await exited;
    },
  };
}

export interface Reply {
  type: "result" | "error";
  request: string | null;
  requestId: string | number | null;
  ok: boolean;
  // deno-lint-ignore no-explicit-any
  payload?: any;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

export interface ServerEvent {
  type: string;
  // deno-lint-ignore no-explicit-any
  payload: any;
}

type Waiter = {
  predicate: (message: ServerEvent | Reply) => boolean;
  resolve: (message: ServerEvent | Reply) => void;
};

/** How the server's replies begin (it writes `type` first); anything else is an event or stats. */
const REPLY_PREFIXES = ['{"type":"result"', '{"type":"error"'];

export class TestClient implements AsyncDisposable {
  readonly socket: WebSocket;
  /** Every message received, in order. */
  readonly received: (ServerEvent | Reply)[] = [];
  #waiters: Waiter[] = [];
  #nextId = 1;
  readonly closed: Promise<CloseEvent>;

  private constructor(socket: WebSocket, parsesEvents: boolean) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.addEventListener("message", (event) => {
      const text = String(event.data);
      // Still received, only not parsed: what a client that does not look at them pays.
      if (!parsesEvents && !REPLY_PREFIXES.some((prefix) => text.startsWith(prefix))) return;
      const message = JSON.parse(text);
      this.received.push(message);
      this.#waiters = this.#waiters.filter((waiter) => {
        if (!waiter.predicate(message)) return true;
        waiter.resolve(message);
        return false;
      });
    });
  }

  /** `parsesEvents: false`: events and stats are received but neither parsed nor kept (benchmarks). */
  static async connect(
    url: string,
    protocols?: string | string[],
    { parsesEvents = true } = {},
  ): Promise<TestClient> {
    const socket = new WebSocket(url, protocols);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`Could not connect to ${url}`)), {
        once: true,
      });
    });
    return new TestClient(socket, parsesEvents);
  }

  /** Waits for a message (already received or to come) that matches. */
  waitFor<T extends ServerEvent | Reply>(
    predicate: (message: ServerEvent | Reply) => boolean,
    timeoutMs = 15000,
    description = "a matching message",
  ): Promise<T> {
    const found = this.received.find(predicate);
    if (found) return Promise.resolve(found as T);
    return this.waitForNext(predicate, timeoutMs, description);
  }

  /** Waits for a message received from now on that matches. */
  waitForNext<T extends ServerEvent | Reply>(
    predicate: (message: ServerEvent | Reply) => boolean,
    timeoutMs = 15000,
    description = "a matching message",
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${description}`));
      }, timeoutMs);
      const waiter: Waiter = {
        predicate,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message as T);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  event(type: string, predicate: (payload: ServerEvent["payload"]) => boolean = () => true) {
    return this.waitFor<ServerEvent>(
      (m) => m.type === type && predicate((m as ServerEvent).payload),
      15000,
      `event ${type}`,
    );
  }

  /** Waits for a `stats` broadcast, from now on, with a pipeline entry that matches. */
  nextStats(
    // deno-lint-ignore no-explicit-any
    predicate: (pipeline: any) => boolean,
    timeoutMs = 15000,
  ): Promise<ServerEvent> {
    return this.waitForNext<ServerEvent>(
      (m) => m.type === "stats" && (m as ServerEvent).payload.pipelines.some(predicate),
      timeoutMs,
      "a matching stats broadcast",
    );
  }

  /** Sends a request with a fresh requestId and waits for its reply. */
  request(type: string, payload?: unknown, timeoutMs = 20000): Promise<Reply> {
    const requestId = `r${this.#nextId++}`;
    const reply = this.waitForNext<Reply>(
      (m) => (m.type === "result" || m.type === "error") && (m as Reply).requestId === requestId,
      timeoutMs,
      `the reply to ${type}`,
    );
    this.socket.send(JSON.stringify({ type, requestId, payload }));
    return reply;
  }

  /** Sends raw text or bytes and waits for the next reply (for malformed input there is no requestId). */
  sendRaw(data: string | Uint8Array): Promise<Reply> {
    const reply = this.waitForNext<Reply>(
      (m) => m.type === "result" || m.type === "error",
      15000,
      "a reply",
    );
    this.socket.send(data);
    return reply;
  }

  async close(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) {
      this.socket.close();
      await this.closed;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Runs a command to completion and returns its output. */
export async function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/**
 * Runs `script` (imports relative to the repository) with the server's command line and
 * permissions, read from stdin in place of src/main.ts, and returns what it printed; throws when
 * it exits with an error or runs past `timeoutMs` (then it is killed).
 */
export async function runAsServer(script: string, timeoutMs = 60_000): Promise<string> {
  const { command, args } = launchOf("-");
  const child = new Deno.Command(command, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const writer = child.stdin.getWriter();
  // A child that ended early refuses the script; its output below says why.
  await writer.write(new TextEncoder().encode(script)).then(() => writer.close(), () => {});
  const { code, signal, stdout, stderr } = await child.output();
  if (code !== 0) {
    const end = signal
      ? `was killed (${signal}; the limit is ${timeoutMs} ms)`
      : `exited with ${code}`;
    throw new Error(`The script ${end}: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}

/**
 * TCP data segments the server has sent on the connections it holds now (iproute2's `ss`). On
 * loopback each write of a few WebSocket frames is one segment, so this counts the server's writes
 * to its clients (its write system calls also count its event loop's own wake-ups).
 */
export async function segmentsSent(server: ServerProcess): Promise<number> {
  const port = new URL(server.url).port;
  const ss = await run("ss", ["-tinH", "state", "established", `( sport = :${port} )`]);
  if (ss.code !== 0) throw new Error(`ss failed: ${ss.stderr}`);
  return [...ss.stdout.matchAll(/data_segs_out:(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** What a process holds: open file descriptors and threads, read from /proc (Linux). */
export interface ResourceCounts {
  fds: number;
  threads: number;
}

/** The open file descriptors (entries of /proc/PID/fd) and threads (`Threads:` of /proc/PID/status) of a process. */
export async function resourceCounts(pid: number): Promise<ResourceCounts> {
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const threads = Number(status.match(/^Threads:\s+(\d+)/m)?.[1]);
  if (!Number.isInteger(threads)) throw new Error(`No Threads: line in /proc/${pid}/status`);
  return { fds, threads };
}

/** One thread of a process, read from /proc (Linux). */
/** The kernel's default timer slack, a thread's unless it or its starter set another. */
export const KERNEL_DEFAULT_SLACK_NS = 50_000;

/** The timer slack this test process runs at, which a server it starts inherits. */
export const suiteSlackNs = Number(Deno.readTextFileSync("/proc/self/timerslack_ns"));

export interface ThreadInfo {
  name: string;
  /** Its nice value (field 19 of its stat). */
  nice: number;
  /** Its timer slack in nanoseconds. */
  slackNs: number;
}

/** Every thread of a process, by thread id. */
export async function processThreads(pid: number): Promise<Map<number, ThreadInfo>> {
  const threads = new Map<number, ThreadInfo>();
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const stat = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/stat`);
    // "tid (name) state ppid ...": the name may hold spaces and parentheses; nice is field 19.
    const nameEnd = stat.lastIndexOf(")");
    const fields = stat.slice(nameEnd + 2).split(" ");
    // A thread's slack is in its own /proc entry; /proc/PID/task/TID has none.
    const slack = await Deno.readTextFile(`/proc/${task.name}/timerslack_ns`);
    threads.set(Number(task.name), {
      name: stat.slice(stat.indexOf("(") + 1, nameEnd),
      nice: Number(fields[19 - 3]),
      slackNs: Number(slack),
    });
  }
  return threads;
}

/**
 * Brings `count` live pipelines to PLAYING at once, so that streaming threads run, reads the
 * server's threads, and deletes the pipelines.
 */
export async function threadsWithLivePipelines(
  server: ServerProcess,
  count = 1,
): Promise<Map<number, ThreadInfo>> {
  const client = await TestClient.connect(server.url);
  const ids = Array.from({ length: count }, (_, i) => freshId(`live-${i}`));
  try {
    await Promise.all(ids.map(async (id) =>
      expectOk(
        await client.request("createPipeline", {
          id,
          pipeline: "videotestsrc is-live=true ! fakesink",
          desiredState: "playing",
        }),
      )
    ));
    const threads = await processThreads(server.pid);
    await Promise.all(
      ids.map(async (id) => expectOk(await client.request("deletePipeline", { id }))),
    );
    const streaming = [...threads.values()].filter((t) => t.name.startsWith("videotestsrc"));
    if (streaming.length !== count) {
      throw new Error(
        `${streaming.length} streaming threads, not ${count}: ${JSON.stringify([...threads])}`,
      );
    }
    return threads;
  } finally {
    await client.close();
  }
}

/** How long a server's counts may take to come back to a baseline (pooled threads idle out within about 15 s). */
export const SETTLE_MS = 25_000;

/** What the server holds: its open file descriptors and threads, and its pipelines' ids. */
export interface ServerSnapshot extends ResourceCounts {
  pipelines: string[];
  /** How many threads go by each name (digits taken out), to say which ones a failure left. */
  threadNames: Map<string, number>;
}

/** The ids of the server's pipelines, sorted (getPipelines). */
export async function pipelineIds(client: TestClient): Promise<string[]> {
  const reply = expectOk(await client.request("getPipelines"));
  return reply.payload.pipelines.map((pipeline: { id: string }) => pipeline.id).sort();
}

/** The server's descriptors, threads and pipelines now. */
export async function serverSnapshot(
  server: ServerProcess,
  client: TestClient,
): Promise<ServerSnapshot> {
  const threadNames = new Map<string, number>();
  for await (const task of Deno.readDir(`/proc/${server.pid}/task`)) {
    // A thread may end between the listing and the read.
    const name = await Deno.readTextFile(`/proc/${server.pid}/task/${task.name}/comm`)
      .catch(() => null);
    if (name === null) continue;
    const kind = name.trim().replace(/\d+/g, "#");
    threadNames.set(kind, (threadNames.get(kind) ?? 0) + 1);
  }
  return {
    ...(await resourceCounts(server.pid)),
    pipelines: await pipelineIds(client),
    threadNames,
  };
}

/** The thread names `now` has more of than `before`, as "name +n". */
function moreThreads(before: ServerSnapshot, now: ServerSnapshot): string {
  return [...now.threadNames]
    .filter(([name, count]) => count > (before.threadNames.get(name) ?? 0))
    .map(([name, count]) => `${name} +${count - (before.threadNames.get(name) ?? 0)}`)
    .join(", ");
}

export const showSnapshot = (s: ServerSnapshot) =>
  `fds ${s.fds}, threads ${s.threads}, pipelines [${s.pipelines}]`;

/**
 * Deno's own pool threads (FFI calls, file I/O) come and go on Deno's schedule, not ours: an idle
 * one ends 10 s after its last task, yet 25 s after 20 pushes there were 17 to 21 of them, as many
 * as before or more, while the pushes' own threads went from 20 to 1 (seen 2026-12-07; most likely
 * the server's calls every second reach each idle one in turn, which was not checked).
 */
const DENO_POOL_THREAD = "tokio-runtime-w";

/** The threads of a snapshot that are not Deno's pool's (from one listing of them). */
const threadsBesidesDenoPool = (s: ServerSnapshot) =>
  [...s.threadNames].reduce(
    (sum, [name, count]) => name === DENO_POOL_THREAD ? sum : sum + count,
    0,
  );

/**
 * Polls until the server holds no more descriptors and threads (Deno's pool threads aside) than
 * `before`, and the same pipelines, within `settleMs`; prints both. `context` (such as the
 * server's log) is added to a failure.
 */
export async function assertBackTo(
  server: ServerProcess,
  client: TestClient,
  before: ServerSnapshot,
  what: string,
  context: () => string = () => "",
  settleMs = SETTLE_MS,
): Promise<ServerSnapshot> {
  const after = await waitUntil(
    async () => {
      const now = await serverSnapshot(server, client);
      const excess = [
        now.fds > before.fds ? `fds ${now.fds}` : "",
        threadsBesidesDenoPool(now) > threadsBesidesDenoPool(before)
          ? `threads ${now.threads} (${moreThreads(before, now)})`
          : "",
        now.pipelines.join() !== before.pipelines.join() ? `pipelines [${now.pipelines}]` : "",
      ].filter(Boolean);
      if (excess.length > 0) {
        throw new Error(`${excess.join(", ")} (before: ${showSnapshot(before)})`);
      }
      return now;
    },
    settleMs,
    `${what}: descriptors, threads and pipelines back to where they were`,
  ).catch((error) => {
    throw new Error(`${error.message}${context()}`);
  });
  console.log(`  ${what}: before ${showSnapshot(before)}; after ${showSnapshot(after)}`);
  return after;
}

/**
 * Polls `condition` every 150 ms until it returns true (or a truthy value, which is returned), and
 * fails after `timeoutMs` naming `what`. A condition that throws counts as not yet met; its last
 * error is in the failure. For waiting on observable state, never for passing time.
 */
export async function waitUntil<T>(
  condition: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (performance.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** The reply, after checking it is a success; `context` (such as the server's log) is added to a failure. */
export function expectOk(reply: Reply, context: () => string = () => ""): Reply {
  if (!reply.ok || reply.type !== "result") {
    throw new Error(`expected ok, got ${JSON.stringify(reply.error)}${context()}`);
  }
  return reply;
}

/** The error of a reply, after checking it is one with `code` and a message. */
export function expectError(reply: Reply, code: string): NonNullable<Reply["error"]> {
  if (reply.ok || reply.type !== "error") {
    throw new Error(`expected ${code}, got ${JSON.stringify(reply)}`);
  }
  if (reply.error?.code !== code) {
    throw new Error(`expected ${code}, got ${reply.error?.code}: ${reply.error?.message}`);
  }
  if (!reply.error.message) throw new Error("errors carry a message");
  return reply.error;
}

let idCounter = 0;
/** A unique pipeline id, so tests do not see each other's events. */
export function freshId(label: string): string {
  return `${label}-${++idCounter}`;
}

/** Launch text of a small live H.264 camera served at rtsp://HOST:PORT/{path}. */
export function cameraLaunch(path: string): string {
  return "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! " +
    `x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtspserversink path=${path}`;
}

/** Waits for a line containing `text` printed after `from` lines (earlier ones do not count). */
export function logAfter(server: ServerProcess, from: number, text: string, timeoutMs = 15000) {
  return waitUntil(
    () => server.logs.slice(from).some((line) => line.includes(text)),
    timeoutMs,
    `a log line with '${text}'`,
  );
}

/** Total seconds and count of one histogram series, as /metrics gives them. */
export interface Observed {
  seconds: number;
  count: number;
}

/**
 * The server's duration histograms (gstreamer_request_duration_seconds by request and outcome,
 * gstreamer_phase_duration_seconds by phase) as read from its /metrics now: totals, keyed
 * `createPipeline ok` or `build`. Two reads apart give the means of what happened in between.
 */
export async function serverTimings(server: ServerProcess): Promise<Map<string, Observed>> {
  const response = await fetch(`${server.httpUrl}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  const timings = new Map<string, Observed>();
  const series =
    /^gstreamer_(?:request|phase)_duration_seconds_(sum|count)\{(?:request="([^"]+)",outcome="([^"]+)"|phase="([^"]+)")\} (\S+)$/;
  for (const line of (await response.text()).split("\n")) {
    const match = series.exec(line);
    if (!match) continue;
    const [, part, request, outcome, phase, value] = match;
    const key = phase ?? `${request} ${outcome}`;
    const observed = timings.get(key) ?? { seconds: 0, count: 0 };
    if (part === "sum") observed.seconds = Number(value);
    else observed.count = Number(value);
    timings.set(key, observed);
  }
  return timings;
}

/** What was observed between two serverTimings reads, added into `total`. */
export function addTimings(
  total: Map<string, Observed>,
  before: Map<string, Observed>,
  after: Map<string, Observed>,
): void {
  for (const [key, { seconds, count }] of after) {
    const earlier = before.get(key) ?? { seconds: 0, count: 0 };
    const sum = total.get(key) ?? { seconds: 0, count: 0 };
    sum.seconds += seconds - earlier.seconds;
    sum.count += count - earlier.count;
    total.set(key, sum);
  }
}
