/** A minimal RTSP client over TCP, for tests and benchmarks that need many cheap readers. */

export interface RtspResponse {
  status: number;
  /** The reason phrase of the status line. */
  reason: string;
  headers: Map<string, string>;
  body: string;
}

export interface RtspConnOptions {
  /** Opens the TCP connection (a test that tracks its connections passes its own). */
  connect?: (port: number) => Promise<Deno.TcpConn>;
  /** Closes it (the default closes it, ignoring a connection already closed). */
  onClose?: (conn: Deno.TcpConn) => void;
}

/** Closes a connection or file, which may be closed already. */
export function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // already closed
  }
}

export async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** A minimal RTSP client over TCP that can stop reading or vanish at any point. */
export class RtspConn {
  readonly conn: Deno.TcpConn;
  /** rtsp://host:port of the server. */
  readonly base: string;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #onClose: (conn: Deno.TcpConn) => void;
  #buffer = new Uint8Array(0);
  #cseq = 0;
  session: string | null = null;
  /** Interleaved bytes read by drain(). */
  drained = 0;

  private constructor(conn: Deno.TcpConn, base: string, onClose: (conn: Deno.TcpConn) => void) {
    this.conn = conn;
    this.base = base;
    this.#onClose = onClose;
    this.#reader = conn.readable.getReader();
  }

  /** Connects to the server at `base` (rtsp://host:port), through `connect` when given. */
  static async open(base: string, options: RtspConnOptions = {}): Promise<RtspConn> {
    const { hostname, port } = new URL(base.replace(/^rtsp:/, "http:"));
    const conn = options.connect
      ? await options.connect(Number(port))
      : await Deno.connect({ hostname: hostname.replace(/^\[|\]$/g, ""), port: Number(port) });
    return new RtspConn(conn, base.replace(/\/+$/, ""), options.onClose ?? closeQuietly);
  }

  get localPort(): number {
    return (this.conn.localAddr as Deno.NetAddr).port;
  }

  /** Sends a request without waiting for its response. */
  async send(method: string, url: string, headers: Record<string, string> = {}): Promise<void> {
    const lines = [`${method} ${url} RTSP/1.0`, `CSeq: ${++this.#cseq}`];
    if (this.session !== null) lines.push(`Session: ${this.session}`);
    for (const [key, value] of Object.entries(headers)) lines.push(`${key}: ${value}`);
    await writeAll(this.conn, `${lines.join("\r\n")}\r\n\r\n`);
  }

  /** Sends a request and reads its response (skipping interleaved data). */
  async request(
    method: string,
    url: string,
    headers: Record<string, string> = {},
  ): Promise<RtspResponse> {
    await this.send(method, url, headers);
    const response = await this.#response();
    const session = response.headers.get("session");
    if (session !== undefined) this.session = session.split(";")[0];
    if (response.status !== 200) {
      throw new Error(
        `${method} ${url}: ${response.status}\n${response.reason}\n` +
          JSON.stringify([...response.headers]),
      );
    }
    return response;
  }

  /** DESCRIBE, SETUP over TCP (interleaved) and PLAY of `path`. */
  async play(path: string): Promise<void> {
    await this.setup(path);
    await this.request("PLAY", `${this.base}/${path}/`, { Range: "npt=0-" });
  }

  /** DESCRIBE and SETUP over TCP (interleaved) of `path`: a session that does not play yet. */
  async setup(path: string): Promise<void> {
    const described = await this.request("DESCRIBE", `${this.base}/${path}`, {
      Accept: "application/sdp",
    });
    const base = described.headers.get("content-base") ?? `${this.base}/${path}/`;
    const control = described.body.match(/a=control:(\S*stream=0\S*)/)?.[1] ?? "stream=0";
    const url = /^rtsp:/.test(control) ? control : `${base}${control}`;
    await this.request("SETUP", url, { Transport: "RTP/AVP/TCP;unicast;interleaved=0-1" });
  }

  close(): void {
    this.#onClose(this.conn);
  }

  /**
   * Waits for the first RTP packet (interleaved channel 0) after the responses read so far: for
   * its 4-byte header, not all of it.
   */
  async firstRtp(): Promise<void> {
    for (;;) {
      if (this.#buffer.length >= 4 && this.#buffer[0] === 0x24) {
        if (this.#buffer[1] === 0) return;
        const size = 4 + ((this.#buffer[2] << 8) | this.#buffer[3]);
        if (this.#buffer.length >= size) {
          this.#buffer = this.#buffer.slice(size);
          continue;
        }
      }
      await this.#fill();
    }
  }

  /** Reads and counts (in `drained`) what the server sends until the connection ends. */
  async drain(): Promise<void> {
    this.drained += this.#buffer.length;
    this.#buffer = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) return;
        this.drained += value.length;
      }
    } catch {
      // closed
    }
  }

  async #fill(): Promise<void> {
    const { value, done } = await this.#reader.read();
    if (done) throw new Error("The RTSP server closed the connection");
    const joined = new Uint8Array(this.#buffer.length + value.length);
    joined.set(this.#buffer);
    joined.set(value, this.#buffer.length);
    this.#buffer = joined;
  }

  async #response(): Promise<RtspResponse> {
    for (;;) {
      if (this.#buffer.length >= 4 && this.#buffer[0] === 0x24) { // '$': interleaved data
        const size = 4 + ((this.#buffer[2] << 8) | this.#buffer[3]);
        if (this.#buffer.length >= size) {
          this.#buffer = this.#buffer.slice(size);
          continue;
        }
      } else if (this.#buffer.length > 0 && this.#buffer[0] !== 0x24) {
        const text = new TextDecoder("latin1").decode(this.#buffer);
        const end = text.indexOf("\r\n\r\n");
        if (end >= 0) {
          const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
          const headers = new Map(lines.map((line) => {
            const colon = line.indexOf(":");
            return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
          }));
          const length = Number(headers.get("content-length") ?? 0);
          if (text.length >= end + 4 + length) {
            this.#buffer = this.#buffer.slice(end + 4 + length);
            return {
              status: Number(statusLine.split(" ")[1]),
              reason: statusLine.split(" ").slice(2).join(" "),
              headers,
              body: text.slice(end + 4, end + 4 + length),
            };
          }
        }
      }
      await this.#fill();
    }
  }
}

/** The status of an RTSP DESCRIBE of `path` on the server at `base` (rtsp://host:port). */
export async function describeStatus(base: string, path: string): Promise<number> {
  const conn = await RtspConn.open(base);
  try {
    await conn.request("DESCRIBE", `${base}/${path}`, { Accept: "application/sdp" });
    return 200;
  } catch (error) {
    const status = (error as Error).message.match(/: (\d{3})\n/)?.[1];
    if (status === undefined) throw error;
    return Number(status);
  } finally {
    conn.close();
  }
}

/**
 * One raw RTSP ANNOUNCE of an H.264 stream to `url` on a new connection, its body sent as
 * `contentType`: the response's status line, and the connection (the caller closes it).
 */
export async function rawAnnounce(
  url: string,
  contentType = "application/sdp",
  stream: readonly string[] = ["m=video 0 RTP/AVP 96", "a=rtpmap:96 H264/90000"],
  body?: string,
): Promise<{ status: string; conn: Deno.Conn }> {
  const { hostname, port } = new URL(url.replace(/^rtsp:/, "http:"));
  const sdp = body ?? [
    "v=0",
    "o=- 0 0 IN IP4 127.0.0.1",
    "s=raw",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    ...stream,
    "a=fmtp:96 packetization-mode=1",
    "a=control:streamid=0",
    "",
  ].join("\r\n");
  const conn = await Deno.connect({
    hostname: hostname.replace(/^\[|\]$/g, ""),
    port: Number(port),
  });
  await writeAll(
    conn,
    `ANNOUNCE ${url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: ${contentType}\r\n` +
      `Content-Length: ${sdp.length}\r\n\r\n${sdp}`,
  );
  let head = "";
  const chunk = new Uint8Array(4096);
  while (!head.includes("\r\n")) {
    const read = await conn.read(chunk);
    if (read === null) break;
    head += new TextDecoder().decode(chunk.subarray(0, read));
  }
  return { status: head.split("\r\n")[0], conn };
}
