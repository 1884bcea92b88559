/**
 * A typed client for the GStreamer control server's WebSocket protocol (docs/protocol.md).
 *
 * ```ts
 * import { GstClient } from "@gst-control/server/client";
 *
 * const client = await GstClient.connect("ws://localhost:8080/gstreamer", { token: "..." });
 * const changes = client.events("pipelineStateChanged", "pipelineEos");
 * await client.createPipeline({ id: "demo", pipeline: "videotestsrc num-buffers=90 ! fakesink" });
 * await client.startPipeline({ id: "demo" }); // { id: "demo", state: "PLAYING" }
 * for await (const event of changes) {
 *   console.log(event.type, event.payload);
 *   if (event.type === "pipelineEos") break; // ends this iterator
 * }
 * await client.deletePipeline({ id: "demo" });
 * try {
 *   await client.getPipeline({ id: "demo" });
 * } catch (error) {
 *   if (error instanceof GstClientError) console.log(error.code); // "PIPELINE_NOT_FOUND"
 * }
 * await client.close();
 * ```
 *
 * One method per request type, resolving with the reply's payload (a failed request rejects with
 * a GstClientError carrying the server's code and details); events as async iterators; and, when
 * the connection drops, reconnection with exponential back-off, after which the last subscribe is
 * sent again. It uses the platform WebSocket only (Deno, browsers, Node 22+) and imports nothing.
 */
// The protocol's types, written out so that this module imports nothing (and has no slow types):
// src/messages.ts checks at compile time that each equals the type derived from the server's zod
// schemas (z.input of the request schemas, z.infer of the reply and event schemas).

export type JsonValue = string | number | boolean | null | JsonValue[] | {
  [key: string]: JsonValue;
};
export type StateName = "VOID_PENDING" | "NULL" | "READY" | "PAUSED" | "PLAYING";
export type RestartPolicy = "never" | "on-failure" | "always";
export type PipelineKind = "pipeline" | "push" | "publish";

export type RequestType =
  | "createPipeline"
  | "startPipeline"
  | "pausePipeline"
  | "stopPipeline"
  | "deletePipeline"
  | "getPipelines"
  | "getPipeline"
  | "getElementProperty"
  | "setElementProperty"
  | "sendEos"
  | "seek"
  | "getPipelineGraph"
  | "listElements"
  | "inspectElement"
  | "startRecording"
  | "stopRecording"
  | "listRecordings"
  | "deleteRecording"
  | "getNodes"
  | "movePipeline"
  | "subscribe";

export type EventType =
  | "pipelineCreated"
  | "pipelineDeleted"
  | "pipelineStateChanged"
  | "pipelineError"
  | "pipelineWarning"
  | "pipelineEos"
  | "pipelineRestarting"
  | "recordingStarted"
  | "recordingSegment"
  | "recordingStopped"
  | "recordingError"
  | "stats";

/** The server's error codes (docs/protocol.md, Errors). */
export type ErrorCode =
  | "UNKNOWN_ELEMENT"
  | "ELEMENT_NOT_ALLOWED"
  | "PROPERTY_NOT_ALLOWED"
  | "UNKNOWN_PROPERTY"
  | "INVALID_PROPERTY_VALUE"
  | "LINK_FAILED"
  | "DUPLICATE_ID"
  | "PATH_IN_USE"
  | "INVALID_ID"
  | "PIPELINE_NOT_FOUND"
  | "ELEMENT_NOT_FOUND"
  | "INVALID_REQUEST"
  | "UNKNOWN_TYPE"
  | "MESSAGE_TOO_LARGE"
  | "LIMIT_REACHED"
  | "RATE_LIMITED"
  | "UNAUTHORIZED"
  | "ORIGIN_NOT_ALLOWED"
  | "STORAGE_FAILED"
  | "STATE_CHANGE_FAILED"
  | "INVALID_STATE"
  | "SEEK_FAILED"
  | "RECORDING_NOT_FOUND"
  | "NODE_UNAVAILABLE"
  | "INTERNAL";

/** An element of a createPipeline description. */
export interface ElementSpec {
  /** The element factory name ("videotestsrc"). */
  type: string;
  name?: string;
  properties?: Record<string, JsonValue>;
}

/** A link: each end is "name" or "name.pad". */
export interface Link {
  from: string;
  to: string;
  caps?: string;
}

/** What each request takes as its payload. */
export interface RequestPayloads {
  createPipeline: {
    id: string;
    description?: string;
    /** gst-launch text, or elements (and links; without them each links to the next). */
    pipeline: string | { elements: ElementSpec[]; links?: Link[] };
    restart?: RestartPolicy;
    /** The node to run it on (getNodes); the least-loaded one when absent. */
    node?: string;
    /**
     * "playing" or "paused" starts it in the same request (one commit) and replies once there;
     * a failed start fails the create, which then leaves nothing. Default "stopped".
     */
    desiredState?: PipelineInfo["desiredState"];
  };
  startPipeline: { id: string };
  pausePipeline: { id: string };
  stopPipeline: { id: string };
  deletePipeline: { id: string };
  getPipelines: Record<string, never>;
  getPipeline: { id: string };
  getElementProperty: { id: string; element: string; property: string };
  setElementProperty: { id: string; element: string; property: string; value: JsonValue };
  sendEos: { id: string };
  /** `position` in milliseconds; `rate` (default 1) may be negative; `flush` defaults to true. */
  seek: { id: string; position: number; rate?: number; flush?: boolean };
  getPipelineGraph: { id: string };
  /** `filter`: part of the name, long name or klass ("Sink/Video"), ignoring case. */
  listElements: { filter?: string };
  inspectElement: { type: string };
  /** Defaults: format "mp4", segmentSeconds 60 (1 to 3600), no retention limit. */
  startRecording: {
    path: string;
    format?: RecordingFormat;
    segmentSeconds?: number;
    retention?: Retention;
  };
  stopRecording: { path: string };
  /** `from` and `to`: ISO 8601 UTC times; segments overlapping them. */
  listRecordings: { path?: string; from?: string; to?: string };
  /** `file`: one segment; without it, every segment of a path that is not being recorded. */
  deleteRecording: { path: string; file?: string };
  getNodes: Record<string, never>;
  /** Hands a pipeline to another node (getNodes), for example to drain a node. */
  movePipeline: { id: string; node: string };
  /** Absent fields mean everything; statsIntervalMs 100 to 60000. */
  subscribe: { events?: EventType[]; pipelines?: string[]; statsIntervalMs?: number };
}

export interface PipelineError {
  element: string;
  message: string;
  debug: string | null;
  time: string;
}

export interface PipelineInfo {
  id: string;
  kind: PipelineKind;
  description: string;
  state: StateName;
  desiredState: "playing" | "paused" | "stopped";
  restart: RestartPolicy;
  restarts: number;
  createdAt: string;
  lastError: PipelineError | null;
  /** The node that runs it; on SQLite, this server (GSTREAMER_NODE_ID, the host name by default). */
  node: string;
  /** That node's RTSP base URL: its paths are read at rtspUrl + "/" + path. */
  rtspUrl: string;
}

export interface PipelineElement {
  name: string;
  type: string;
  state: StateName;
  pending?: StateName;
  properties: Record<string, JsonValue>;
}

/** A pipeline with its elements (a stored one that could not be rebuilt has only the info). */
export type PipelineDetails =
  | PipelineInfo & { elements: PipelineElement[]; links: Link[]; launch: string | null }
  | PipelineInfo;

export interface ElementSummary {
  name: string;
  longName: string;
  klass: string;
  rank: number;
  plugin: string;
}

export interface PropertyInfo {
  name: string;
  nick: string;
  blurb: string;
  type: string;
  flags: string[];
  default: JsonValue;
  minimum?: number | string;
  maximum?: number | string;
  values?: { value: number; name: string; nick: string }[];
}

export interface InspectedElement extends ElementSummary {
  description: string;
  author: string;
  properties: PropertyInfo[];
  padTemplates: {
    name: string;
    direction: "src" | "sink" | "unknown";
    presence: "always" | "sometimes" | "request";
    caps: string;
  }[];
}

export interface PipelineStats {
  id: string;
  kind: PipelineKind;
  rtspClients?: number;
  webrtcViewers?: number;
  state: StateName;
  desiredState: PipelineInfo["desiredState"];
  uptime: number;
  position: number | null;
  duration: number | null;
  sinks: { element: string; rendered: number; dropped: number; fps: number | null }[];
  errors: number;
  warnings: number;
  restarts: number;
  /** Push streams and publishes only. */
  bytesIn?: number;
  frames?: number | null;
  /** What a push or publish receives; what a pipeline sends to the RTSP paths it serves. */
  bitrate?: number;
  format?: string;
}

export interface StatsSnapshot {
  timestamp: string;
  pipelines: PipelineStats[];
  /** Every recording, running or waiting; freeBytes is the disk's free space where it writes. */
  recordings: {
    path: string;
    state: "recording" | "waiting";
    bytesWritten: number;
    currentSegment: string | null;
    freeBytes: number;
  }[];
  server: {
    rssBytes: number;
    cpuPercent: number;
    clients: number;
    pipelines: number;
    uptime: number;
  };
}

type PipelineState = { id: string; state: StateName; pending?: StateName };
type PropertyValue = { id: string; element: string; property: string; value: JsonValue };
type BusMessage = { id: string; element: string; message: string; debug: string | null };

/** What each request's result reply carries as its payload. */
export interface ResultPayloads {
  createPipeline: PipelineInfo;
  startPipeline: PipelineState;
  pausePipeline: PipelineState;
  stopPipeline: { id: string; state: StateName };
  deletePipeline: { id: string };
  getPipelines: { pipelines: PipelineInfo[] };
  getPipeline: PipelineDetails;
  getElementProperty: PropertyValue;
  setElementProperty: PropertyValue;
  sendEos: { id: string };
  seek: { id: string; position: number; rate: number };
  getPipelineGraph: { id: string; dot: string };
  listElements: { elements: ElementSummary[] };
  inspectElement: InspectedElement;
  startRecording: RecordingInfo;
  stopRecording: RecordingInfo;
  listRecordings: { recordings: RecordingInfo[]; segments: SegmentInfo[] };
  deleteRecording: { path: string; deleted: string[] };
  getNodes: { nodes: NodeInfo[] };
  movePipeline: { id: string; node: string; rtspUrl: string };
  subscribe: { events: EventType[]; pipelines: string[] | null; statsIntervalMs: number };
}

/** A server sharing the database (GSTREAMER_DATABASE_URL); on SQLite, the one server. */
export interface NodeInfo {
  id: string;
  advertiseUrl: string;
  rtspUrl: string;
  up: boolean;
  pipelines: number;
  cpuPercent: number;
  capacity: number;
  startedAt: string;
  heartbeatAt: string;
}

export type RecordingFormat = "mp4" | "ts" | "mkv";
export interface Retention {
  maxAgeSeconds?: number;
  maxBytes?: number;
}
/** A recording that runs ("recording") or waits for its path ("waiting"). */
export interface RecordingInfo {
  path: string;
  format: RecordingFormat;
  segmentSeconds: number;
  retention: Retention;
  state: "recording" | "waiting";
  createdAt: string;
  bytesWritten: number;
  currentSegment: string | null;
  lastError: string | null;
  /** The node that records it: its GET /recordings/{path}/ has the segments. */
  node: string;
}
/** A closed segment on disk; `file` is its start time (UTC), GET /recordings/{path}/{file}. */
export interface SegmentInfo {
  path: string;
  file: string;
  format: RecordingFormat;
  start: string;
  end: string;
  bytes: number;
  /** The node whose disk has it. */
  node: string;
}

/** What each event carries as its payload. */
export interface EventPayloads {
  pipelineCreated: PipelineInfo;
  pipelineDeleted: { id: string };
  pipelineStateChanged: { id: string; old: StateName; new: StateName };
  pipelineError: BusMessage;
  pipelineWarning: BusMessage;
  pipelineEos: { id: string };
  pipelineRestarting: { id: string; attempt: number; delayMs: number; reason: string };
  recordingStarted: { path: string; format: RecordingFormat };
  recordingSegment: { path: string; file: string; start: string; duration: number; bytes: number };
  recordingStopped: { path: string; reason: string };
  recordingError: { path: string; message: string };
  stats: StatsSnapshot;
}

export type RequestInput<T extends RequestType> = RequestPayloads[T];
export type ResultPayload<T extends RequestType> = ResultPayloads[T];
/** An event of type `T` (any event by default). */
export type EventOf<T extends EventType = EventType> = {
  /** `node`: the node it happened on (every event but stats). */
  [K in T]: { type: K; payload: EventPayloads[K]; node?: string };
}[T];
export type ServerEvent = EventOf<EventType>;

/** Codes of failures on the client's side, besides the server's error codes. */
export type ClientErrorCode =
  /** The first connection could not be opened (refused, wrong token, wrong path, timeout). */
  | "CONNECT_FAILED"
  /** The connection dropped after the request was sent: whether it ran is unknown. */
  | "CONNECTION_LOST"
  /** No reply within the request's timeout (or no connection came back in time). */
  | "TIMEOUT"
  /** The client was closed, or gave up reconnecting. */
  | "CLOSED";

/** A request that failed: an error reply from the server, or a client-side failure. */
export class GstClientError extends Error {
  constructor(
    /** The server's error code (docs/protocol.md, Errors), or a ClientErrorCode. */
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** The error's details as the server gave them. */
    readonly details: Record<string, unknown> | undefined,
    /** The request type, or null for a failure not tied to a request. */
    readonly request: string | null,
    readonly requestId: string | number | null = null,
  ) {
    super(message);
    this.name = "GstClientError";
  }
}

export interface ReconnectOptions {
  /** The wait before the first attempt; doubled after each failed one. Default 250 ms. */
  initialDelayMs?: number;
  /** The longest wait between attempts. Default 10 s. */
  maxDelayMs?: number;
  /** Attempts in a row before giving up (the client is then closed). Default: no limit. */
  maxAttempts?: number;
}

export interface GstClientOptions {
  /** The server's GSTREAMER_AUTH_TOKEN. */
  token?: string;
  /**
   * How the token is sent: as the subprotocols ["bearer", token] (default; kept out of URLs and
   * logs), or as a `token` query parameter (used anyway when the token has characters a
   * subprotocol cannot hold).
   */
  tokenIn?: "protocol" | "query";
  /** Subprotocols to offer (before "bearer" and the token). */
  protocols?: string[];
  /** Reconnection when the connection drops; false to stay disconnected. */
  reconnect?: ReconnectOptions | false;
  /** Default time to wait for a reply, connecting included. Default 30 s. */
  requestTimeoutMs?: number;
  /** Time to wait for a connection to open. Default 10 s. */
  connectTimeoutMs?: number;
  /** Called with every message the server sends, parsed (for logs and tests). */
  onMessage?: (message: unknown) => void;
  /** The WebSocket class to use; default globalThis.WebSocket. */
  WebSocket?: typeof WebSocket;
}

export interface RequestOptions {
  /** Overrides the client's requestTimeoutMs for this request. */
  timeoutMs?: number;
}

export interface DisconnectInfo {
  /** The WebSocket close code (1001 when the server shuts down, 1006 when the link broke). */
  code: number;
  reason: string;
  /** Whether the client will try to reconnect. */
  reconnecting: boolean;
}

export interface ReconnectInfo {
  /** Connection attempts it took. */
  attempts: number;
  /** The reply to the subscribe sent again, or null when the client had not subscribed. */
  subscription: ResultPayload<"subscribe"> | null;
}

/** An iterator over events, ended by `return()` (a `break` out of `for await`) or close(). */
export interface EventStream<E> extends AsyncIterableIterator<E> {
  return(): Promise<IteratorResult<E, undefined>>;
}

/** The event types the client passes on (every one, and no other: the type checks both). */
const knownEvents: ReadonlySet<string> = new Set(Object.keys(
  {
    pipelineCreated: true,
    pipelineDeleted: true,
    pipelineStateChanged: true,
    pipelineError: true,
    pipelineWarning: true,
    pipelineEos: true,
    pipelineRestarting: true,
    recordingStarted: true,
    recordingSegment: true,
    recordingStopped: true,
    recordingError: true,
    stats: true,
  } satisfies Record<EventType, true>,
));

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const CLOSE_WAIT_MS = 3_000;
/** The server's limit on a message (MAX_MESSAGE_BYTES in src/protocol.ts). */
const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Characters a WebSocket subprotocol (an RFC 7230 token) may hold. */
const subprotocolToken = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

interface Pending {
  type: RequestType;
  requestId: string;
  text: string;
  sent: boolean;
  resolve: (payload: unknown) => void;
  reject: (error: GstClientError) => void;
  timer: ReturnType<typeof setTimeout>;
}

class Stream<E> implements EventStream<E> {
  #queue: E[] = [];
  #takers: ((result: IteratorResult<E, undefined>) => void)[] = [];
  #done = false;

  constructor(
    readonly accepts: (event: ServerEvent) => boolean,
    readonly detach: (stream: Stream<E>) => void,
  ) {}

  push(event: E): void {
    if (this.#done) return;
    const taker = this.#takers.shift();
    if (taker) taker({ value: event, done: false });
    else this.#queue.push(event);
  }

  /** Ends the stream: what is queued can still be read, then it is done. */
  end(): void {
    this.#done = true;
    for (const taker of this.#takers.splice(0)) taker({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<E, undefined>> {
    if (this.#queue.length > 0) {
      return Promise.resolve({ value: this.#queue.shift()!, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#takers.push(resolve));
  }

  return(): Promise<IteratorResult<E, undefined>> {
    this.#queue = [];
    this.end();
    this.detach(this);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** "resubscribing": connected again, sending the last subscribe before anything else. */
type State = "open" | "reconnecting" | "resubscribing" | "closed";

export class GstClient {
  readonly url: string;
  #options: GstClientOptions;
  #socket: WebSocket;
  #state: State = "open";
  #pending = new Map<string, Pending>();
  #nextId = 1;
  #streams = new Set<Stream<ServerEvent>>();
  #lastSubscribe: RequestInput<"subscribe"> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** The socket of a reconnection attempt under way. */
  #connecting: WebSocket | undefined;
  #reconnectListeners = new Set<(info: ReconnectInfo) => void>();
  #disconnectListeners = new Set<(info: DisconnectInfo) => void>();

  private constructor(url: string, options: GstClientOptions, socket: WebSocket) {
    this.url = url;
    this.#options = options;
    this.#socket = socket;
    this.#attach(socket);
  }

  /** Opens a connection; rejects with CONNECT_FAILED when it cannot be opened. */
  static async connect(url: string, options: GstClientOptions = {}): Promise<GstClient> {
    const socket = await open(url, options);
    return new GstClient(url, options, socket);
  }

  /** Whether the connection is open now (requests made meanwhile wait for it). */
  get connected(): boolean {
    return this.#state === "open";
  }

  /** Calls `listener` after each reconnection (once the subscription is back); returns the off switch. */
  onReconnect(listener: (info: ReconnectInfo) => void): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  /** Calls `listener` each time the connection drops; returns the off switch. */
  onDisconnect(listener: (info: DisconnectInfo) => void): () => void {
    this.#disconnectListeners.add(listener);
    return () => this.#disconnectListeners.delete(listener);
  }

  /**
   * Sends request `type` and resolves with its reply's payload; rejects with a GstClientError
   * (the server's error, or CONNECTION_LOST, TIMEOUT, CLOSED). While the client is reconnecting
   * the request waits for the connection, within its timeout.
   */
  request<T extends RequestType>(
    type: T,
    payload: RequestInput<T>,
    options: RequestOptions = {},
  ): Promise<ResultPayload<T>> {
    return this.#request(type, payload, options, false);
  }

  /** `first`: sent while resubscribing (the subscribe itself); others wait until it is done. */
  #request<T extends RequestType>(
    type: T,
    payload: RequestInput<T>,
    options: RequestOptions,
    first: boolean,
  ): Promise<ResultPayload<T>> {
    if (this.#state === "closed") {
      return Promise.reject(new GstClientError("CLOSED", "The client is closed", undefined, type));
    }
    const requestId = `gc${this.#nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const text = JSON.stringify({ type, requestId, payload });
    const size = new TextEncoder().encode(text).length;
    if (size > MAX_MESSAGE_BYTES) {
      // The server could not even read its requestId: it would answer with no way to match.
      return Promise.reject(
        new GstClientError(
          "MESSAGE_TOO_LARGE",
          `Message of ${size} bytes is over the limit of ${MAX_MESSAGE_BYTES} bytes`,
          { limit: MAX_MESSAGE_BYTES, size },
          type,
          requestId,
        ),
      );
    }
    return new Promise<ResultPayload<T>>((resolve, reject) => {
      const pending: Pending = {
        type,
        requestId,
        text,
        sent: false,
        resolve: (value) => {
          if (type === "subscribe") this.#lastSubscribe = payload as RequestInput<"subscribe">;
          resolve(value as ResultPayload<T>);
        },
        reject,
        timer: setTimeout(() => {
          this.#pending.delete(requestId);
          const waited = pending.sent
            ? `no reply to ${type} within ${timeoutMs} ms`
            : `no connection to send ${type} on within ${timeoutMs} ms`;
          reject(new GstClientError("TIMEOUT", waited, undefined, type, requestId));
        }, timeoutMs),
      };
      this.#pending.set(requestId, pending);
      if (this.#state === "open" || (first && this.#state === "resubscribing")) {
        this.#send(pending);
      }
    });
  }

  createPipeline(
    payload: RequestInput<"createPipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"createPipeline">> {
    return this.request("createPipeline", payload, options);
  }

  startPipeline(
    payload: RequestInput<"startPipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"startPipeline">> {
    return this.request("startPipeline", payload, options);
  }

  pausePipeline(
    payload: RequestInput<"pausePipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"pausePipeline">> {
    return this.request("pausePipeline", payload, options);
  }

  stopPipeline(
    payload: RequestInput<"stopPipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"stopPipeline">> {
    return this.request("stopPipeline", payload, options);
  }

  deletePipeline(
    payload: RequestInput<"deletePipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"deletePipeline">> {
    return this.request("deletePipeline", payload, options);
  }

  getPipelines(
    payload: RequestInput<"getPipelines"> = {},
    options?: RequestOptions,
  ): Promise<ResultPayload<"getPipelines">> {
    return this.request("getPipelines", payload, options);
  }

  getPipeline(
    payload: RequestInput<"getPipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"getPipeline">> {
    return this.request("getPipeline", payload, options);
  }

  getElementProperty(
    payload: RequestInput<"getElementProperty">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"getElementProperty">> {
    return this.request("getElementProperty", payload, options);
  }

  setElementProperty(
    payload: RequestInput<"setElementProperty">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"setElementProperty">> {
    return this.request("setElementProperty", payload, options);
  }

  sendEos(
    payload: RequestInput<"sendEos">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"sendEos">> {
    return this.request("sendEos", payload, options);
  }

  seek(payload: RequestInput<"seek">, options?: RequestOptions): Promise<ResultPayload<"seek">> {
    return this.request("seek", payload, options);
  }

  getPipelineGraph(
    payload: RequestInput<"getPipelineGraph">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"getPipelineGraph">> {
    return this.request("getPipelineGraph", payload, options);
  }

  startRecording(
    payload: RequestInput<"startRecording">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"startRecording">> {
    return this.request("startRecording", payload, options);
  }

  stopRecording(
    payload: RequestInput<"stopRecording">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"stopRecording">> {
    return this.request("stopRecording", payload, options);
  }

  listRecordings(
    payload: RequestInput<"listRecordings"> = {},
    options?: RequestOptions,
  ): Promise<ResultPayload<"listRecordings">> {
    return this.request("listRecordings", payload, options);
  }

  deleteRecording(
    payload: RequestInput<"deleteRecording">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"deleteRecording">> {
    return this.request("deleteRecording", payload, options);
  }

  getNodes(
    payload: RequestInput<"getNodes"> = {},
    options?: RequestOptions,
  ): Promise<ResultPayload<"getNodes">> {
    return this.request("getNodes", payload, options);
  }

  movePipeline(
    payload: RequestInput<"movePipeline">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"movePipeline">> {
    return this.request("movePipeline", payload, options);
  }

  listElements(
    payload: RequestInput<"listElements"> = {},
    options?: RequestOptions,
  ): Promise<ResultPayload<"listElements">> {
    return this.request("listElements", payload, options);
  }

  inspectElement(
    payload: RequestInput<"inspectElement">,
    options?: RequestOptions,
  ): Promise<ResultPayload<"inspectElement">> {
    return this.request("inspectElement", payload, options);
  }

  /**
   * Chooses what this connection receives (absent fields: everything). The client remembers the
   * last subscribe that succeeded and sends it again after each reconnection.
   */
  subscribe(
    payload: RequestInput<"subscribe"> = {},
    options?: RequestOptions,
  ): Promise<ResultPayload<"subscribe">> {
    return this.request("subscribe", payload, options);
  }

  /**
   * The events received from now on, of the given types (all when none are given), until the
   * iterator is ended (`break` out of `for await`, or `return()`) or the client is closed. Each
   * iterator gets its own copy; events wait in it until read. Events sent while the client was
   * disconnected are lost (see onReconnect).
   */
  events<K extends EventType = EventType>(...types: K[]): EventStream<EventOf<K>> {
    const wanted = new Set<string>(types);
    const stream = new Stream<EventOf<K>>(
      (event) => wanted.size === 0 || wanted.has(event.type),
      (done) => this.#streams.delete(done as unknown as Stream<ServerEvent>),
    );
    if (this.#state === "closed") stream.end();
    else this.#streams.add(stream as unknown as Stream<ServerEvent>);
    return stream;
  }

  /** Closes the connection for good: pending requests reject with CLOSED, event iterators end. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    this.#connecting?.close();
    this.#failPending("CLOSED", "The client was closed", () => true);
    for (const stream of this.#streams) stream.end();
    this.#streams.clear();
    await closeSocket(this.#socket);
  }

  #send(pending: Pending): void {
    pending.sent = true;
    // A socket that is closing drops it; its close event then rejects the request.
    this.#socket.send(pending.text);
  }

  #attach(socket: WebSocket): void {
    socket.addEventListener("message", (event) => this.#receive(event.data));
    socket.addEventListener("close", (event) => {
      if (socket !== this.#socket) return;
      if (this.#state !== "open" && this.#state !== "resubscribing") return;
      this.#dropped(event.code, event.reason);
    });
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") return;
    let message: { type?: unknown; requestId?: unknown; payload?: unknown; error?: unknown };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof message !== "object" || message === null) return;
    this.#options.onMessage?.(message);
    if (message.type === "result" || message.type === "error") {
      const pending = typeof message.requestId === "string"
        ? this.#pending.get(message.requestId)
        : undefined;
      if (!pending) return;
      this.#pending.delete(pending.requestId);
      clearTimeout(pending.timer);
      if (message.type === "result") {
        pending.resolve(message.payload);
      } else {
        const error = message.error as {
          code: ErrorCode;
          message: string;
          details?: Record<string, unknown>;
        };
        pending.reject(
          new GstClientError(
            error.code,
            error.message,
            error.details,
            pending.type,
            pending.requestId,
          ),
        );
      }
      return;
    }
    if (typeof message.type !== "string" || !knownEvents.has(message.type)) return;
    const event = message as ServerEvent;
    if (this.#state === "resubscribing" && !this.#subscribedTo(event)) return;
    for (const stream of this.#streams) {
      if (stream.accepts(event)) stream.push(event);
    }
  }

  /**
   * Whether the last subscribe asks for `event`: until the server has it again after a
   * reconnection, the connection gets every event.
   */
  #subscribedTo(event: ServerEvent): boolean {
    const { events, pipelines } = this.#lastSubscribe ?? {};
    if (events && !events.includes(event.type)) return false;
    const id = (event.payload as { id?: unknown }).id;
    return !pipelines || typeof id !== "string" || pipelines.includes(id);
  }

  #failPending(code: ClientErrorCode, why: string, which: (pending: Pending) => boolean): void {
    for (const pending of [...this.#pending.values()]) {
      if (!which(pending)) continue;
      this.#pending.delete(pending.requestId);
      clearTimeout(pending.timer);
      pending.reject(
        new GstClientError(
          code,
          `${why} (request ${pending.type})`,
          undefined,
          pending.type,
          pending.requestId,
        ),
      );
    }
  }

  #dropped(code: number, reason: string): void {
    const reconnecting = this.#options.reconnect !== false;
    this.#state = reconnecting ? "reconnecting" : "closed";
    this.#failPending(
      "CONNECTION_LOST",
      `Connection to ${this.url} lost (close code ${code}${reason ? `: ${reason}` : ""}) ` +
        "before the reply; the request may or may not have run",
      (pending) => pending.sent || !reconnecting,
    );
    this.#notify(this.#disconnectListeners, { code, reason, reconnecting });
    if (reconnecting) {
      this.#scheduleReconnect(1);
    } else {
      for (const stream of this.#streams) stream.end();
      this.#streams.clear();
    }
  }

  #scheduleReconnect(attempt: number): void {
    const settings = this.#options.reconnect || {};
    const initial = settings.initialDelayMs ?? 250;
    const max = settings.maxDelayMs ?? 10_000;
    const delay = Math.min(max, initial * 2 ** (attempt - 1));
    // Jitter (the upper half of the delay) keeps many clients from coming back all at once.
    const wait = delay / 2 + Math.random() * delay / 2;
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(attempt), wait);
  }

  async #reconnect(attempt: number): Promise<void> {
    if (this.#state !== "reconnecting") return;
    let socket: WebSocket;
    try {
      socket = await open(this.url, this.#options, (connecting) => this.#connecting = connecting);
    } catch {
      this.#connecting = undefined;
      if (this.#state !== "reconnecting") return;
      const maxAttempts = (this.#options.reconnect || {}).maxAttempts ?? Infinity;
      if (attempt >= maxAttempts) {
        this.#state = "closed";
        this.#failPending("CLOSED", `Gave up reconnecting after ${attempt} attempts`, () => true);
        for (const stream of this.#streams) stream.end();
        this.#streams.clear();
        return;
      }
      this.#scheduleReconnect(attempt + 1);
      return;
    }
    this.#connecting = undefined;
    if (this.#state !== "reconnecting") {
      await closeSocket(socket);
      return;
    }
    this.#socket = socket;
    this.#attach(socket);
    let subscription: ResultPayload<"subscribe"> | null = null;
    const subscribe = this.#lastSubscribe;
    if (subscribe !== undefined) {
      // The subscription first, so that the filter is in force before anything else is sent.
      this.#state = "resubscribing";
      subscription = await this.#request("subscribe", subscribe, {}, true).catch(() => null);
      // Closed, or lost again (and reconnecting already), meanwhile.
      if (this.#state !== "resubscribing" || this.#socket !== socket) return;
    }
    this.#state = "open";
    for (const pending of this.#pending.values()) {
      if (!pending.sent) this.#send(pending);
    }
    this.#notify(this.#reconnectListeners, { attempts: attempt, subscription });
  }

  /** Calls the listeners after this turn, so that one that throws cannot break the client. */
  #notify<T>(listeners: Set<(info: T) => void>, info: T): void {
    for (const listener of listeners) queueMicrotask(() => listener(info));
  }
}

/** The URL and subprotocols that carry the token. */
function connection(url: string, options: GstClientOptions): { url: string; protocols: string[] } {
  const protocols = [...(options.protocols ?? [])];
  const token = options.token;
  if (token === undefined) return { url, protocols };
  if (options.tokenIn !== "query" && subprotocolToken.test(token)) {
    return { url, protocols: [...protocols, "bearer", token] };
  }
  const withToken = new URL(url);
  withToken.searchParams.set("token", token);
  return { url: withToken.href, protocols };
}

/** Opens a WebSocket and resolves once it is open; rejects with CONNECT_FAILED. */
function open(
  url: string,
  options: GstClientOptions,
  started?: (socket: WebSocket) => void,
): Promise<WebSocket> {
  const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
  const target = connection(url, options);
  return new Promise((resolve, reject) => {
    let socket: WebSocket;
    try {
      socket = new WebSocketClass(target.url, target.protocols);
    } catch (error) {
      reject(
        new GstClientError("CONNECT_FAILED", `Cannot connect to ${url}: ${error}`, undefined, null),
      );
      return;
    }
    started?.(socket);
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.removeEventListener("open", opened);
      socket.removeEventListener("close", closed);
      reject(
        new GstClientError("CONNECT_FAILED", `Cannot connect to ${url}: ${why}`, undefined, null),
      );
    };
    const timer = setTimeout(() => {
      fail(`not open within ${timeoutMs} ms`);
      socket.close();
    }, timeoutMs);
    const opened = () => {
      clearTimeout(timer);
      socket.removeEventListener("close", closed);
      resolve(socket);
    };
    // A refused upgrade (HTTP 401, 403, 404, 503) shows only as a close: the reason is not exposed.
    const closed = (event: CloseEvent) =>
      fail(
        `the connection closed (code ${event.code}); is the server up, the path right, and the ` +
          "token (if the server needs one) right?",
      );
    socket.addEventListener("open", opened, { once: true });
    socket.addEventListener("close", closed, { once: true });
  });
}

/** Closes a socket and waits for it to be closed (at most CLOSE_WAIT_MS). */
function closeSocket(socket: WebSocket): Promise<void> {
  if (socket.readyState === socket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, CLOSE_WAIT_MS);
    socket.addEventListener("close", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
    if (socket.readyState !== socket.CLOSING) socket.close(1000);
  });
}
