/// <reference lib="dom" />
/**
 * The console's connection to the server it was loaded from: whether a token is needed, the
 * typed client (src/client.ts) once connected, and getting back after the server restarts.
 */
import { GstClient, type ServerEvent } from "../../src/client.ts";

const TOKEN_KEY = "gst-console-token";
/** While the server cannot be reached, how often it is asked again. */
const RETRY_MS = 1000;

export type Phase =
  | { kind: "connecting"; reason?: string }
  | { kind: "login"; error?: string }
  | { kind: "open"; client: GstClient }
  | { kind: "reconnecting"; client: GstClient };

export interface SessionHooks {
  phase(phase: Phase): void;
  event(event: ServerEvent): void;
  /** The connection is open again after a drop: what the console holds may be stale. */
  resync(client: GstClient): void;
}

function meta(name: string): string | null {
  return document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? null;
}

export const wsPath = meta("gst-ws-path") ?? "/gstreamer";
export const rtspPort = Number(meta("gst-rtsp-port") ?? "8554");

/** The RTSP URL of a served path, on the host the console was loaded from. */
export function rtspUrl(path: string): string {
  return `rtsp://${
    location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname
  }` +
    `:${rtspPort}${path.startsWith("/") ? path : `/${path}`}`;
}

export class Session {
  #token: string | null = sessionStorage.getItem(TOKEN_KEY);
  #client: GstClient | null = null;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(readonly hooks: SessionHooks) {}

  get token(): string | null {
    return this.#token;
  }

  start(): void {
    void this.#open();
  }

  /** A token typed at the login: kept for this browser tab's session only. */
  login(typed: string): void {
    // As the server reads a Bearer token: without the spaces around it.
    const token = typed.trim();
    // An HTTP header carries Latin-1 only: fetch refuses any other character before sending.
    const unsendable = [...token].find((character) => character.charCodeAt(0) > 0xff);
    if (unsendable !== undefined) {
      this.hooks.phase({
        kind: "login",
        error: `A token cannot hold '${unsendable}' (an HTTP header carries Latin-1 only); ` +
          "check the keyboard layout",
      });
      return;
    }
    this.#token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    this.hooks.phase({ kind: "connecting" });
    void this.#open(true);
  }

  logout(): void {
    sessionStorage.removeItem(TOKEN_KEY);
    this.#token = null;
    const client = this.#client;
    this.#client = null;
    void client?.close();
    this.hooks.phase({ kind: "login" });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    void this.#client?.close();
  }

  /** Asks the server whether a token is needed and whether ours is the one. */
  async #probe(): Promise<"ok" | "unauthorized" | string> {
    try {
      const response = await fetch("/console/session", {
        headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
        cache: "no-store",
      });
      if (!response.ok) {
        await response.body?.cancel();
        return `the server answered HTTP ${response.status}`;
      }
      const session = await response.json() as { authorized: boolean };
      return session.authorized ? "ok" : "unauthorized";
    } catch {
      return "the server cannot be reached";
    }
  }

  async #open(typed = false): Promise<void> {
    clearTimeout(this.#retry);
    if (this.#closed) return;
    const probe = await this.#probe();
    if (probe === "unauthorized") {
      const error = this.#token === null
        ? undefined
        : typed
        ? "The server refused that token"
        : "The token of this session is no longer accepted";
      if (this.#token !== null) sessionStorage.removeItem(TOKEN_KEY);
      this.#token = null;
      this.hooks.phase({ kind: "login", error });
      return;
    }
    if (probe !== "ok") return this.#again(probe);
    try {
      const client = await GstClient.connect(
        new URL(wsPath, location.href.replace(/^http/, "ws")).href,
        {
          ...(this.#token ? { token: this.#token } : {}),
          reconnect: { initialDelayMs: 250, maxDelayMs: 2000 },
          onMessage: (message) => {
            const type = (message as { type?: unknown }).type;
            if (type !== "result" && type !== "error") this.hooks.event(message as ServerEvent);
          },
        },
      );
      this.#client = client;
      client.onDisconnect((info) => {
        if (this.#client !== client) return;
        if (info.reconnecting) {
          this.hooks.phase({ kind: "reconnecting", client });
          void this.#watchToken(client);
        } else {
          this.#client = null;
          this.#again("the connection closed");
        }
      });
      client.onReconnect(() => {
        if (this.#client !== client) return;
        this.hooks.phase({ kind: "open", client });
        this.hooks.resync(client);
      });
      this.hooks.phase({ kind: "open", client });
      this.hooks.resync(client);
    } catch (error) {
      this.#again((error as Error).message);
    }
  }

  /** While the client reconnects: a server that came back with another token sends us to login. */
  async #watchToken(client: GstClient): Promise<void> {
    while (this.#client === client && !client.connected && !this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS * 2));
      if (this.#client !== client || client.connected) return;
      if (await this.#probe() === "unauthorized") {
        this.#client = null;
        void client.close();
        void this.#open();
        return;
      }
    }
  }

  #again(reason: string): void {
    this.hooks.phase({ kind: "connecting", reason });
    this.#retry = setTimeout(() => void this.#open(), RETRY_MS);
  }
}
