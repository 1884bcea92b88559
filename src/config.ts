/** Configuration from the environment (and a `.env` file when present). */
import { isIP } from "node:net";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";

const port = (fallback: number) =>
  z.string().default(String(fallback)).transform((text, ctx) => {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value > 65535) {
      ctx.addIssue({ code: "custom", message: "accepts a whole number from 0 to 65535" });
      return z.NEVER;
    }
    return value;
  });

/** A whole number setting from `min` to `max`. */
const count = (fallback: number, min: number, max: number, unit = "") =>
  z.string().default(String(fallback)).transform((text, ctx) => {
    const value = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || value < min || value > max) {
      ctx.addIssue({
        code: "custom",
        message: `accepts a whole number${unit} from ${min} to ${max}`,
      });
      return z.NEVER;
    }
    return value;
  });

/** A comma-separated list; blanks are dropped. */
const list = z.string().default("").transform((text) =>
  text.split(",").map((item) => item.trim()).filter((item) => item.length > 0)
);

/**
 * Browser origins: scheme://host[:port], as browsers send them. A trailing slash is dropped
 * (http://host:9090/ is the origin http://host:9090); a path, query or fragment is refused,
 * since no browser sends one and the setting would then refuse every client.
 */
const origins = list.transform((items, ctx) => {
  const normalised: string[] = [];
  for (const item of items) {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      url = new URL("invalid:");
    }
    const hasPath = url.pathname !== "/" && url.pathname !== "";
    if (!/^https?:$/.test(url.protocol) || url.host === "" || hasPath || url.search || url.hash) {
      ctx.addIssue({
        code: "custom",
        message: `lists ${JSON.stringify(item)}, which is not an origin; it accepts origins ` +
          "separated by commas, each scheme://host[:port] as a browser sends it, such as " +
          "http://console.example:9090",
      });
      return z.NEVER;
    }
    normalised.push(url.origin);
  }
  return normalised;
});

const optionalSecret = (what: string) =>
  z.string().optional().transform((text, ctx) => {
    if (text === undefined || text === "") return undefined;
    if (text.length < 8) {
      ctx.addIssue({ code: "custom", message: `accepts a ${what} of at least 8 characters` });
      return z.NEVER;
    }
    return text;
  });

const configSchema = z.object({
  GSTREAMER_WS_HOST: z.string().trim().min(1, "accepts a host name or IP address").default(
    "localhost",
  ),
  GSTREAMER_WS_PORT: port(8080),
  GSTREAMER_RTSP_PORT: port(8554),
  GSTREAMER_WS_PATH: z.string().regex(
    /^\/[A-Za-z0-9._~\/-]*$/,
    "accepts a URL path that starts with '/', such as /gstreamer",
  ).default("/gstreamer"),
  GSTREAMER_STATS_INTERVAL_MS: z.string().default("1000").transform((text, ctx) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 100 || value > 60000) {
      ctx.addIssue({ code: "custom", message: "accepts milliseconds from 100 to 60000" });
      return z.NEVER;
    }
    return value;
  }),
  GSTREAMER_DATA_DIR: z.string().trim().min(1, "accepts a directory, or :memory: to keep nothing")
    .default("./data"),
  GSTREAMER_DATABASE_URL: z.string().trim().optional().transform((text) => text || undefined)
    .refine((text) => text === undefined || /^postgres(ql)?:\/\//.test(text), {
      message: "accepts a PostgreSQL URL, postgres://user:password@host:5432/database",
    }),
  GSTREAMER_NODE_ID: z.string().trim().optional().transform((text) => text || undefined)
    .refine((text) => text === undefined || /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(text), {
      message: "accepts a name of up to 63 letters, digits, '.', '_' and '-', such as node-a",
    }),
  GSTREAMER_ADVERTISE_URL: z.string().trim().optional().transform((text) => text || undefined)
    .refine((text) => text === undefined || /^https?:\/\/[^\s/?#]+\/?$/.test(text), {
      message: "accepts the base URL other nodes and clients reach this server's HTTP port at, " +
        "such as http://10.0.0.5:8080",
    }),
  GSTREAMER_LEASE_SECONDS: count(6, 2, 300),
  GSTREAMER_MEDIA_DIR: z.string().trim().min(1, "accepts a directory").default("./media"),
  GSTREAMER_AUTH_TOKEN: optionalSecret("token"),
  GSTREAMER_RTSP_USER: z.string().optional().transform((text) => text || undefined),
  GSTREAMER_RTSP_PASSWORD: optionalSecret("password"),
  GSTREAMER_RTSP_PUBLISH_USER: z.string().optional().transform((text) => text || undefined),
  GSTREAMER_RTSP_PUBLISH_PASSWORD: optionalSecret("password"),
  GSTREAMER_ALLOWED_ORIGINS: origins,
  GSTREAMER_ELEMENTS_ALLOW: list,
  GSTREAMER_ELEMENTS_DENY: list,
  GSTREAMER_MAX_PIPELINES: count(256, 1, 100000),
  GSTREAMER_MAX_CLIENTS: count(256, 1, 100000),
  GSTREAMER_MAX_PUSHES: count(16, 1, 10000),
  GSTREAMER_MAX_WEBRTC_SESSIONS: count(64, 1, 10000),
  GSTREAMER_WEBRTC_PORTS: z.string().default("").transform((text, ctx) => {
    if (text.trim() === "") return undefined;
    const match = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
    const [min, max] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
    if (!(min >= 1024 && max <= 65535 && min <= max)) {
      ctx.addIssue({
        code: "custom",
        message: "accepts a UDP port range MIN-MAX within 1024-65535, such as 40000-40100",
      });
      return z.NEVER;
    }
    return { min, max };
  }),
  GSTREAMER_WEBRTC_STUN: z.string().default("").refine(
    (text) => text === "" || /^stun:\/\/[^\s/:]+(:\d+)?$/.test(text),
    "accepts a STUN server as stun://HOST[:PORT], such as stun://stun.example.org:3478",
  ),
  GSTREAMER_WEBRTC_TURN: z.string().default("").refine(
    (text) => text === "" || /^turns?:\/\/[^\s@/]+:[^\s@/]+@[^\s@/:]+(:\d+)?$/.test(text),
    "accepts a TURN server as turn://USER:PASSWORD@HOST[:PORT] (or turns://)",
  ),
  GSTREAMER_WEBRTC_ADDRESSES: list.refine(
    (items) => items.every((item) => isIP(item) !== 0),
    "accepts comma-separated IP addresses, such as 192.168.1.10,127.0.0.1",
  ),
  GSTREAMER_MAX_REQUESTS_PER_SECOND: count(1000, 0, 1000000, " (0: no limit)"),
  GSTREAMER_HTTP_IDLE_TIMEOUT_MS: count(30000, 1000, 3600000, " of milliseconds"),
  GSTREAMER_SHUTDOWN_TIMEOUT_MS: count(10000, 100, 600000, " of milliseconds"),
  GSTREAMER_STATE_CHANGE_TIMEOUT_MS: count(30000, 1000, 600000, " of milliseconds"),
  GSTREAMER_WS_PING_INTERVAL_MS: count(30000, 100, 3600000, " of milliseconds"),
  GSTREAMER_RTSP_WRITE_TIMEOUT_MS: count(10000, 0, 3600000, " of milliseconds (0: the system's)"),
  GSTREAMER_RTSP_LINGER_MS: count(5000, 0, 3600000, " of milliseconds (0: none)"),
  GSTREAMER_HLS_DIR: z.string().trim().default(""),
  GSTREAMER_HLS_SEGMENT_SECONDS: count(2, 1, 30, " of seconds"),
  GSTREAMER_HLS_IDLE_TIMEOUT_MS: count(30000, 1000, 3600000, " of milliseconds"),
  GSTREAMER_MAX_HLS_STREAMS: count(16, 1, 1000),
  GSTREAMER_RECORDINGS_DIR: z.string().trim().min(1, "accepts a directory").default("./recordings"),
  GSTREAMER_RECORDINGS_MIN_FREE_MB: count(1024, 0, 100_000_000, " of MiB"),
  GSTREAMER_MAIN_THREAD_NICE: count(-10, -20, 0, " (a nice value; 0: not raised)"),
  GSTREAMER_MALLOC_THRESHOLD_MIB: count(4, 0, 32, " of MiB (0: glibc's own thresholds)"),
  GSTREAMER_TIMER_SLACK_US: count(1000, 0, 10000, " of microseconds (0: left as started)"),
}).superRefine((c, ctx) => {
  for (const prefix of ["GSTREAMER_RTSP", "GSTREAMER_RTSP_PUBLISH"] as const) {
    const user = `${prefix}_USER` as const;
    const password = `${prefix}_PASSWORD` as const;
    if ((c[user] === undefined) !== (c[password] === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [c[user] === undefined ? user : password],
        message: `is needed too: ${user} and ${password} go together`,
      });
    }
  }
});

export interface Config {
  host: string;
  port: number;
  rtspPort: number;
  path: string;
  statsIntervalMs: number;
  /** Where pipelines are kept; ":memory:" keeps nothing on disk. */
  dataDir: string;
  /** PostgreSQL instead of the SQLite file in dataDir, when set. */
  databaseUrl?: string;
  /** This server's name among the nodes sharing databaseUrl; the host name when unset. */
  nodeId?: string;
  /** Where other nodes and clients reach this server's HTTP port; the listening URL when unset. */
  advertiseUrl?: string;
  /** How long a node holds its pipelines without renewing (docs/cluster.md). */
  leaseSeconds: number;
  /** The only directory file-reading elements may read from. */
  mediaDir: string;
  authToken?: string;
  /** The RTSP user who may read. */
  rtspCredentials?: { user: string; password: string };
  /** The RTSP user who may publish (and read). */
  rtspPublishCredentials?: { user: string; password: string };
  allowedOrigins: string[];
  elementsAllow: string[];
  elementsDeny: string[];
  maxPipelines: number;
  maxClients: number;
  maxPushes: number;
  /** WHEP viewers at once. */
  maxWebrtcSessions: number;
  /** The addresses WebRTC gathers ICE candidates on; empty: the listening addresses. */
  webrtcAddresses: string[];
  /** The UDP ports WebRTC may use; any when unset. */
  webrtcPorts?: { min: number; max: number };
  /** stun://HOST[:PORT] and turn(s)://USER:PASSWORD@HOST[:PORT]; none when unset. */
  webrtcStun?: string;
  webrtcTurn?: string;
  /** Requests per second per WebSocket client; 0 means no limit. */
  maxRequestsPerSecond: number;
  /** The nice value the main thread asks for (src/gst/priority.ts); 0 leaves it as started. */
  mainThreadNice: number;
  /** Blocks up to this size stay in malloc's arenas when freed (src/gst/memory.ts); 0: glibc's. */
  mallocThresholdMib: number;
  /** The threads' timer slack, in µs (src/gst/timer_slack.ts); 0 leaves it as started. */
  timerSlackUs: number;
  /** An HTTP connection (a push included) that sends nothing for this long is closed. */
  httpIdleTimeoutMs: number;
  /** How long a SIGTERM or SIGINT waits for every pipeline to stop before the server exits anyway. */
  shutdownTimeoutMs: number;
  /** How long a start waits for GStreamer's change of state itself before failing as blocked. */
  stateChangeTimeoutMs: number;
  wsPingIntervalMs: number;
  /**
   * An RTSP connection (a reader's, a publisher's) that takes nothing for this long is cut off;
   * 0: the system's.
   */
  rtspWriteTimeoutMs: number;
  /** How long a path's RTSP media stays up after its last reader left; 0: it goes at once. */
  rtspLingerMs: number;
  /** Where the HLS segment directory is made (the system's temporary directory when empty). */
  hlsDir: string;
  hlsSegmentSeconds: number;
  hlsIdleTimeoutMs: number;
  maxHlsStreams: number;
  recordingsDir: string;
  /** Retention deletes the oldest segments when the disk has less free space than this. */
  recordingsMinFreeBytes: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Reads the settings; an invalid value throws a ConfigError naming the variable and what it accepts. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue.path[0]);
    throw new ConfigError(
      `Invalid ${name}=${JSON.stringify(env[name] ?? "")}: ${name} ${issue.message}`,
    );
  }
  const c = parsed.data;
  return {
    host: c.GSTREAMER_WS_HOST,
    port: c.GSTREAMER_WS_PORT,
    rtspPort: c.GSTREAMER_RTSP_PORT,
    path: c.GSTREAMER_WS_PATH,
    statsIntervalMs: c.GSTREAMER_STATS_INTERVAL_MS,
    dataDir: c.GSTREAMER_DATA_DIR,
    databaseUrl: c.GSTREAMER_DATABASE_URL,
    nodeId: c.GSTREAMER_NODE_ID,
    advertiseUrl: c.GSTREAMER_ADVERTISE_URL?.replace(/\/$/, ""),
    leaseSeconds: c.GSTREAMER_LEASE_SECONDS,
    mediaDir: c.GSTREAMER_MEDIA_DIR,
    authToken: c.GSTREAMER_AUTH_TOKEN,
    rtspCredentials: c.GSTREAMER_RTSP_USER !== undefined && c.GSTREAMER_RTSP_PASSWORD !== undefined
      ? { user: c.GSTREAMER_RTSP_USER, password: c.GSTREAMER_RTSP_PASSWORD }
      : undefined,
    rtspPublishCredentials: c.GSTREAMER_RTSP_PUBLISH_USER !== undefined &&
        c.GSTREAMER_RTSP_PUBLISH_PASSWORD !== undefined
      ? { user: c.GSTREAMER_RTSP_PUBLISH_USER, password: c.GSTREAMER_RTSP_PUBLISH_PASSWORD }
      : undefined,
    allowedOrigins: c.GSTREAMER_ALLOWED_ORIGINS,
    elementsAllow: c.GSTREAMER_ELEMENTS_ALLOW,
    elementsDeny: c.GSTREAMER_ELEMENTS_DENY,
    maxPipelines: c.GSTREAMER_MAX_PIPELINES,
    maxClients: c.GSTREAMER_MAX_CLIENTS,
    maxPushes: c.GSTREAMER_MAX_PUSHES,
    maxWebrtcSessions: c.GSTREAMER_MAX_WEBRTC_SESSIONS,
    webrtcAddresses: c.GSTREAMER_WEBRTC_ADDRESSES,
    webrtcPorts: c.GSTREAMER_WEBRTC_PORTS,
    webrtcStun: c.GSTREAMER_WEBRTC_STUN || undefined,
    webrtcTurn: c.GSTREAMER_WEBRTC_TURN || undefined,
    maxRequestsPerSecond: c.GSTREAMER_MAX_REQUESTS_PER_SECOND,
    mainThreadNice: c.GSTREAMER_MAIN_THREAD_NICE,
    mallocThresholdMib: c.GSTREAMER_MALLOC_THRESHOLD_MIB,
    timerSlackUs: c.GSTREAMER_TIMER_SLACK_US,
    httpIdleTimeoutMs: c.GSTREAMER_HTTP_IDLE_TIMEOUT_MS,
    shutdownTimeoutMs: c.GSTREAMER_SHUTDOWN_TIMEOUT_MS,
    stateChangeTimeoutMs: c.GSTREAMER_STATE_CHANGE_TIMEOUT_MS,
    wsPingIntervalMs: c.GSTREAMER_WS_PING_INTERVAL_MS,
    rtspWriteTimeoutMs: c.GSTREAMER_RTSP_WRITE_TIMEOUT_MS,
    rtspLingerMs: c.GSTREAMER_RTSP_LINGER_MS,
    hlsDir: c.GSTREAMER_HLS_DIR,
    hlsSegmentSeconds: c.GSTREAMER_HLS_SEGMENT_SECONDS,
    hlsIdleTimeoutMs: c.GSTREAMER_HLS_IDLE_TIMEOUT_MS,
    maxHlsStreams: c.GSTREAMER_MAX_HLS_STREAMS,
    recordingsDir: c.GSTREAMER_RECORDINGS_DIR,
    recordingsMinFreeBytes: c.GSTREAMER_RECORDINGS_MIN_FREE_MB * 1024 * 1024,
  };
}

/** The process environment over the `.env` file's values (the environment wins); GSTREAMER_ENV_FILE names another file. */
export function readEnvironment(
  envFile = Deno.env.get("GSTREAMER_ENV_FILE") ?? ".env",
): Record<string, string | undefined> {
  let fromFile: Record<string, string> = {};
  try {
    fromFile = parseDotenv(Deno.readTextFileSync(envFile));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { ...fromFile, ...Deno.env.toObject() };
}
