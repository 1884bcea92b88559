/**
 * The peer our control plane is measured against: RidgeRun's GStreamer Daemon (gstd), built by
 * bench/build_gstd.sh. Starts it on a free port and speaks its raw TCP protocol: one command per
 * write, one JSON reply `{"code","description","response"}` ending in a NUL byte.
 */
import type { StartTimes } from "./measure.ts";

/** A gstd process listening on loopback. */
export interface Gstd {
  port: number;
  pid: number;
  version: string;
  stop(): Promise<void>;
}

/** gstd's path: GSTD, else the first `gstd` on PATH; null when it is not installed. */
export async function findGstd(): Promise<string | null> {
  const explicit = Deno.env.get("GSTD");
  const candidates = explicit ? [explicit] : [
    ...(Deno.env.get("PATH") ?? "").split(":").map((dir) => `${dir}/gstd`),
    "/usr/local/bin/gstd",
  ];
  for (const path of candidates) {
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch {
      // not here
    }
  }
  return null;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts gstd on a free TCP port and resolves once it accepts connections. */
export async function startGstd(path: string): Promise<Gstd> {
  const versionOutput = await new Deno.Command(path, { args: ["--version"], stdout: "piped" })
    .output();
  const version = new TextDecoder().decode(versionOutput.stdout).match(/version ([\d.]+)/i)?.[1] ??
    "unknown";
  const port = freePort();
  // gstd takes its TCP port and HTTP port as options; HTTP stays off (-q: no banner).
  const child = new Deno.Command(path, {
    args: ["-t", "-p", String(port), "-q"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  let errors = "";
  void (async () => {
    for await (const chunk of stderr) errors += chunk;
  })();
  const deadline = performance.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (performance.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`gstd did not listen on ${port} within 10 s: ${errors}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return {
    port,
    pid: child.pid,
    version,
    async stop() {
      const signal = (name: Deno.Signal) => {
        try {
          child.kill(name);
        } catch {
          // already gone
        }
      };
      signal("SIGTERM");
      // gstd holding playing pipelines can take its time over SIGTERM, or ignore it.
      const timer = setTimeout(() => signal("SIGKILL"), 3000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

export interface GstdReply {
  code: number;
  description: string;
  // deno-lint-ignore no-explicit-any
  response: any;
}

/** One connection to gstd; commands are sent one at a time, each waiting for its reply. */
export class GstdClient {
  readonly #conn: Deno.TcpConn;
  #buffered = new Uint8Array(0);
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<GstdClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new GstdClient(conn);
  }

  /** Sends `command` and returns gstd's reply; a reply with a code other than 0 throws. */
  async command(command: string): Promise<GstdReply> {
    await this.#writeAll(this.#encoder.encode(command));
    const reply: GstdReply = JSON.parse(await this.#readReply());
    if (reply.code !== 0) {
      throw new Error(`gstd '${command}': ${reply.code} ${reply.description}`);
    }
    return reply;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    for (let written = 0; written < bytes.length;) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  async #readReply(): Promise<string> {
    const chunk = new Uint8Array(65536);
    for (;;) {
      const end = this.#buffered.indexOf(0);
      if (end >= 0) {
        const reply = this.#decoder.decode(this.#buffered.subarray(0, end));
        this.#buffered = this.#buffered.slice(end + 1);
        return reply;
      }
      const read = await this.#conn.read(chunk);
      if (read === null) throw new Error("gstd closed the connection");
      const joined = new Uint8Array(this.#buffered.length + read);
      joined.set(this.#buffered);
      joined.set(chunk.subarray(0, read), this.#buffered.length);
      this.#buffered = joined;
    }
  }
}

/**
 * Creates `name` from launch text and plays it, then polls its state until PLAYING (gstd's
 * pipeline_play replies at once, in whatever state the pipeline is then): the time until
 * pipeline_create's reply, until PLAYING, and the commands that took.
 */
export async function gstdCreateUntilPlaying(
  gstd: GstdClient,
  name: string,
  launch: string,
  timeoutMs = 5000,
): Promise<StartTimes & { roundTrips: number }> {
  const startedAt = performance.now();
  await gstd.command(`pipeline_create ${name} ${launch}`);
  const createdMs = performance.now() - startedAt;
  let state = (await gstd.command(`pipeline_play ${name}`)).response?.value;
  let roundTrips = 2;
  while (state !== "playing") {
    if (performance.now() - startedAt > timeoutMs) {
      throw new Error(`gstd pipeline ${name} not PLAYING after ${timeoutMs} ms (${state})`);
    }
    state = (await gstd.command(`read /pipelines/${name}/state`)).response?.value;
    roundTrips++;
  }
  return { createdMs, playingMs: performance.now() - startedAt, roundTrips };
}
