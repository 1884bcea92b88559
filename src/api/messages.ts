/**
 * What the server sends, as zod schemas: the payload of each request's result reply, the result
 * and error reply envelopes, and every event. The request schemas are in `src/api/protocol.ts`.
 *
 * These schemas are the contract: `src/api/schema.ts` turns them into the JSON Schema served at
 * `GET /schema.json` (and kept in docs/schema.json), `src/client.ts` takes its types from them,
 * and test/client_test.ts checks every message a real server sends against them. The checks at
 * the end of this file make `deno check` fail when the server's own types drift from them.
 *
 * Objects are strict: a field the server starts sending must be added here first.
 */
import { z } from "zod";
import type * as Client from "../client.ts";
import { type ErrorCode, errorCodes } from "./errors.ts";
import type { EnumValue, JsonValue } from "../gst/gvalue.ts";
import type {
  InspectedElement,
  inspectElement,
  listElements,
  PadTemplateInfo,
  PropertyInfo,
} from "../gst/introspect.ts";
import type { StateName } from "../gst/pipeline.ts";
import type { ServerStats, StatsSnapshot } from "./health.ts";
import type { PipelineRegistry } from "../domain/registry.ts";
import type { NodeInfo } from "../domain/store_postgres.ts";
import { type RecordingEvent, recordingFormats, type RecordingHub } from "../domain/recording.ts";
import { type elementSchema, linkSchema } from "../domain/spec.ts";
import type {
  PipelineDetails,
  PipelineElement,
  PipelineError,
  PipelineEvent,
  PipelineInfo,
  PipelineStats,
  SinkStatsEntry,
} from "../domain/types.ts";
import {
  desiredStateSchema,
  type EventType,
  eventTypes,
  type Reply,
  requestSchemas,
  type RequestType,
} from "./protocol.ts";

/** Any JSON value (property values). */
export const jsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValueSchema),
    z.record(z.string(), jsonValueSchema),
  ])
).describe("Any JSON value");

const id = z.string().describe("The pipeline's id");
const time = z.iso.datetime().describe("ISO 8601 UTC time");
const count = z.number().int().min(0);

export const stateNameSchema = z.enum(["VOID_PENDING", "NULL", "READY", "PAUSED", "PLAYING"])
  .describe("A GStreamer state (VOID_PENDING only ever as a pending state)");

export const pipelineErrorSchema = z.strictObject({
  element: z.string().describe("The element that posted the error"),
  message: z.string(),
  debug: z.string().nullable().describe("GStreamer's debug text, null when none"),
  time,
}).describe("The first error of a pipeline's latest failed run");

export const pipelineInfoSchema = z.strictObject({
  id,
  kind: z.enum(["pipeline", "push", "publish"]).describe(
    '"push" for a stream taken by POST /push/{name}; "publish" for one published over RTSP (ANNOUNCE/RECORD)',
  ),
  description: z.string(),
  state: stateNameSchema,
  desiredState: desiredStateSchema,
  restart: z.enum(["never", "on-failure", "always"]),
  restarts: count.describe("Restarts made by the restart policy since the server started"),
  createdAt: time,
  lastError: pipelineErrorSchema.nullable(),
  node: z.string().describe("The node that runs it (GSTREAMER_NODE_ID)"),
  rtspUrl: z.string().describe("That node's RTSP base URL: its paths are read at rtspUrl/path"),
}).describe("A pipeline, as createPipeline, getPipelines and pipelineCreated give it");

export const pipelineElementSchema = z.strictObject({
  name: z.string(),
  type: z.string().describe("The element factory name"),
  state: stateNameSchema,
  pending: stateNameSchema.optional().describe("The state it is on its way to, when any"),
  properties: z.record(z.string(), jsonValueSchema).describe(
    "Writable properties whose value differs from the default",
  ),
}).describe("An element of a pipeline, live");

export const pipelineDetailsSchema = z.union([
  pipelineInfoSchema.extend({
    elements: z.array(pipelineElementSchema),
    links: z.array(linkSchema),
    launch: z.string().nullable().describe(
      "The pipeline as gst-launch text; null when a property value cannot be written as one",
    ),
  }),
  pipelineInfoSchema,
]).describe(
  "A pipeline with its elements, links and launch text (a stored pipeline that could not be " +
    "rebuilt has only the PipelineInfo fields)",
);

export const elementSummarySchema = z.strictObject({
  name: z.string(),
  longName: z.string(),
  klass: z.string(),
  rank: z.number().int(),
  plugin: z.string(),
}).describe("An element factory in the registry");

export const enumValueSchema = z.strictObject({
  value: z.number().int(),
  name: z.string(),
  nick: z.string(),
});

const bound = z.union([z.number(), z.string()]).describe(
  "A numeric bound; 64-bit bounds beyond 2^53 as decimal strings",
);

export const propertyInfoSchema = z.strictObject({
  name: z.string(),
  nick: z.string(),
  blurb: z.string(),
  type: z.string().describe('The GType name of the value ("gint", "GstCaps", ...)'),
  flags: z.array(z.string()),
  default: jsonValueSchema,
  minimum: bound.optional(),
  maximum: bound.optional(),
  values: z.array(enumValueSchema).optional().describe("For enum and flags types"),
}).describe("A property of an element type, as gst-inspect-1.0 shows it");

export const padTemplateSchema = z.strictObject({
  name: z.string(),
  direction: z.enum(["src", "sink", "unknown"]),
  presence: z.enum(["always", "sometimes", "request"]),
  caps: z.string().describe('The template caps ("ANY" for any)'),
});

export const inspectedElementSchema = elementSummarySchema.extend({
  description: z.string(),
  author: z.string(),
  properties: z.array(propertyInfoSchema),
  padTemplates: z.array(padTemplateSchema),
}).describe("Everything about one element type (inspectElement)");

export const sinkStatsSchema = z.strictObject({
  element: z.string(),
  rendered: count,
  dropped: count,
  fps: z.number().nullable().describe(
    "Buffers rendered per second over the last window of at least 500 ms (null until one ends)",
  ),
});

export const pipelineStatsSchema = z.strictObject({
  id,
  kind: z.enum(["pipeline", "push", "publish"]),
  rtspClients: count.optional().describe("RTSP sessions, for pipelines that serve RTSP paths"),
  webrtcViewers: count.optional().describe("WebRTC (WHEP) viewers of the same paths"),
  state: stateNameSchema,
  desiredState: desiredStateSchema,
  uptime: z.number().describe("Seconds since it reached PLAYING; 0 when not playing"),
  position: z.number().nullable().describe("Milliseconds"),
  duration: z.number().nullable().describe("Milliseconds"),
  sinks: z.array(sinkStatsSchema),
  errors: count,
  warnings: count,
  restarts: count,
  bytesIn: count.optional().describe("Push streams: bytes received"),
  frames: count.nullable().optional().describe("Push streams: frames parsed (null for MPEG-TS)"),
  bitrate: z.number().optional().describe(
    "Bits per second over the last window of at least 500 ms: what a push or publish receives; what a pipeline " +
      "sends to the RTSP paths it serves (one copy, 0 while no one watches)",
  ),
  format: z.string().optional().describe("Push streams: the stream format"),
});

export const serverStatsSchema = z.strictObject({
  rssBytes: count,
  cpuPercent: z.number(),
  clients: count,
  pipelines: count,
  uptime: z.number().describe("Seconds since the server started"),
});

export const recordingStatsSchema = z.strictObject({
  path: z.string().describe("The recorded path"),
  state: z.enum(["recording", "waiting"]),
  bytesWritten: count.describe("Bytes of segments written since the server started"),
  currentSegment: z.string().nullable().describe("The file being written"),
  freeBytes: count.describe("Free space on the disk of GSTREAMER_RECORDINGS_DIR"),
});

export const statsSnapshotSchema = z.strictObject({
  timestamp: time,
  pipelines: z.array(pipelineStatsSchema),
  recordings: z.array(recordingStatsSchema).describe("Every recording, running or waiting"),
  server: serverStatsSchema,
}).describe("The stats event's payload (also behind /healthz and /metrics)");

const pipelineId = (description: string) => z.strictObject({ id }).describe(description);

const stateReached = (description: string) =>
  z.strictObject({
    id,
    state: stateNameSchema,
    pending: stateNameSchema.optional().describe(
      "Present when the state change had not finished within the wait",
    ),
  }).describe(description);

const propertyValue = (description: string) =>
  z.strictObject({
    id,
    element: z.string(),
    property: z.string(),
    value: jsonValueSchema,
  }).describe(description);

/** The payload of the result reply to each request type. */
const recordedPath = z.string().describe("The served path recorded, as in rtsp://HOST:8554/{path}");
const retentionSchema = z.strictObject({
  maxAgeSeconds: z.number().int().min(1).optional().describe("Segments older than this go"),
  maxBytes: z.number().int().min(1).optional().describe("The oldest segments go above this"),
});
export const recordingInfoSchema = z.strictObject({
  path: recordedPath,
  format: z.enum(recordingFormats),
  segmentSeconds: z.number().int().min(1),
  retention: retentionSchema,
  state: z.enum(["recording", "waiting"]).describe(
    '"waiting" while the path is not served (or its recording failed and is retried)',
  ),
  createdAt: time,
  bytesWritten: count.describe("Bytes of segments written since the server started"),
  currentSegment: z.string().nullable().describe("The file being written"),
  lastError: z.string().nullable(),
  node: z.string().describe("The node that records it (its disk has the segments)"),
});
export const nodeInfoSchema = z.strictObject({
  id: z.string().describe("GSTREAMER_NODE_ID (the host name by default)"),
  advertiseUrl: z.string().describe("Where its HTTP and WebSocket API is reached"),
  rtspUrl: z.string().describe("Its RTSP base URL: rtsp://HOST:PORT"),
  up: z.boolean().describe("Heartbeating within its lease, and not stopped"),
  pipelines: count.describe("The pipelines it holds"),
  cpuPercent: z.number().describe("Its process's CPU, in % of one core"),
  capacity: count.describe("Most pipelines it takes (GSTREAMER_MAX_PIPELINES)"),
  startedAt: time,
  heartbeatAt: time.describe("Its last heartbeat"),
});
export const segmentInfoSchema = z.strictObject({
  path: recordedPath,
  file: z.string().describe("Its file name: its start time, UTC"),
  format: z.enum(recordingFormats),
  start: time,
  end: time.describe("Its last write"),
  bytes: count,
  node: z.string().describe("The node whose disk has it: GET /recordings/... there"),
});

export const resultPayloadSchemas = {
  createPipeline: pipelineInfoSchema,
  startPipeline: stateReached("The state startPipeline reached"),
  pausePipeline: stateReached("The state pausePipeline reached"),
  stopPipeline: z.strictObject({ id, state: stateNameSchema.describe("Always NULL") }),
  deletePipeline: pipelineId("The deleted pipeline"),
  getPipelines: z.strictObject({
    pipelines: z.array(pipelineInfoSchema).describe("In the order they were created"),
  }),
  getPipeline: pipelineDetailsSchema,
  getElementProperty: propertyValue("The value read"),
  setElementProperty: propertyValue("The value read back after setting it"),
  sendEos: pipelineId("The pipeline that took the end of stream"),
  seek: z.strictObject({
    id,
    position: z.number().describe("Milliseconds"),
    rate: z.number(),
  }),
  getPipelineGraph: z.strictObject({ id, dot: z.string().describe("A Graphviz DOT graph") }),
  listElements: z.strictObject({
    elements: z.array(elementSummarySchema).describe("Sorted by name"),
  }),
  inspectElement: inspectedElementSchema,
  subscribe: z.strictObject({
    events: z.array(z.enum(eventTypes)).describe("The event types this connection receives"),
    pipelines: z.array(z.string()).nullable().describe("The pipelines it hears about; null: all"),
    statsIntervalMs: z.number().int(),
  }).describe("The subscription now in force on this connection"),
  startRecording: recordingInfoSchema,
  stopRecording: recordingInfoSchema.describe("The recording as it ended"),
  listRecordings: z.strictObject({
    recordings: z.array(recordingInfoSchema).describe("The recordings that run (or wait)"),
    segments: z.array(segmentInfoSchema).describe("Closed segments on disk, oldest first by path"),
  }),
  deleteRecording: z.strictObject({
    path: recordedPath,
    deleted: z.array(z.string()).describe("The segment files deleted"),
  }),
  movePipeline: z.strictObject({
    id,
    node: z.string().describe("The node that runs it now"),
    rtspUrl: z.string().describe("That node's RTSP base URL"),
  }).describe("Once the node took it; it then builds it and brings it to its desired state"),
  getNodes: z.strictObject({
    nodes: z.array(nodeInfoSchema).describe(
      "Every node sharing the database, by id; one alone on SQLite",
    ),
  }),
} as const satisfies Record<RequestType, z.ZodType>;

const busMessage = (description: string) =>
  z.strictObject({
    id,
    element: z.string().describe("The element that posted it"),
    message: z.string(),
    debug: z.string().nullable().describe("GStreamer's debug text, null when none"),
  }).describe(description);

/** The payload of each event. */
export const eventPayloadSchemas = {
  pipelineCreated: pipelineInfoSchema,
  pipelineDeleted: pipelineId("The deleted pipeline"),
  pipelineStateChanged: z.strictObject({ id, old: stateNameSchema, new: stateNameSchema }),
  pipelineError: busMessage("An error an element posted; the pipeline then goes to NULL"),
  pipelineWarning: busMessage("A warning an element posted; the pipeline keeps running"),
  pipelineEos: pipelineId("The pipeline whose stream ended"),
  pipelineRestarting: z.strictObject({
    id,
    attempt: z.number().int().min(1).describe("What its restarts will be once started again"),
    delayMs: count,
    reason: z.string().describe('"error", "end of stream" or "start failed"'),
  }),
  recordingStarted: z.strictObject({ path: recordedPath, format: z.enum(recordingFormats) })
    .describe("A recording's pipeline started writing (again, after its path came back)"),
  recordingSegment: z.strictObject({
    path: recordedPath,
    file: z.string(),
    start: time,
    duration: z.number().min(0).describe("Seconds, from its start to its last write"),
    bytes: count,
  }).describe("A segment was closed"),
  recordingStopped: z.strictObject({
    path: recordedPath,
    reason: z.string().describe('"stopRecording" or why the server stopped it'),
  }),
  recordingError: z.strictObject({ path: recordedPath, message: z.string() }).describe(
    "A recording could not write; it waits for its path or is retried",
  ),
  stats: statsSnapshotSchema,
} as const satisfies Record<EventType, z.ZodType>;

/** Replies echo the request's requestId, or null when it had none. */
const replyRequestId = z.union([z.string(), z.number()]).nullable();

function resultReply<T extends RequestType>(type: T) {
  return z.strictObject({
    type: z.literal("result"),
    request: z.literal(type),
    requestId: replyRequestId,
    ok: z.literal(true),
    payload: resultPayloadSchemas[type],
  }).describe(`The reply to a ${type} that succeeded`);
}

function event<T extends EventType>(type: T) {
  return z.strictObject({
    type: z.literal(type),
    payload: eventPayloadSchemas[type],
    node: z.string().optional().describe("The node it happened on (every event but stats)"),
  });
}

function mapTypes<K extends string, V>(keys: readonly K[], value: (key: K) => V): { [P in K]: V } {
  return Object.fromEntries(keys.map((key) => [key, value(key)])) as { [P in K]: V };
}

const requestTypes = Object.keys(requestSchemas) as RequestType[];

/** The whole result reply (envelope and payload) of each request type. */
export const resultReplySchemas = mapTypes(requestTypes, resultReply) as {
  [T in RequestType]: ReturnType<typeof resultReply<T>>;
};

export const errorCodeSchema = z.enum(errorCodes);

export const errorReplySchema = z.strictObject({
  type: z.literal("error"),
  request: z.string().nullable().describe("The request's type; null when none could be read"),
  requestId: replyRequestId,
  ok: z.literal(false),
  error: z.strictObject({
    code: errorCodeSchema,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
}).describe("The reply to a request that failed");

/** Each event, with its type. */
export const eventSchemas = mapTypes(eventTypes, event) as {
  [T in EventType]: ReturnType<typeof event<T>>;
};

export const serverEventSchema = z.discriminatedUnion("type", [
  eventSchemas.pipelineCreated,
  eventSchemas.pipelineDeleted,
  eventSchemas.pipelineStateChanged,
  eventSchemas.pipelineError,
  eventSchemas.pipelineWarning,
  eventSchemas.pipelineEos,
  eventSchemas.pipelineRestarting,
  eventSchemas.recordingStarted,
  eventSchemas.recordingSegment,
  eventSchemas.recordingStopped,
  eventSchemas.recordingError,
  eventSchemas.stats,
]);

/** Named types for docs/schema.json ($defs), besides the per-message ones. */
export const sharedSchemas: Record<string, z.ZodType> = {
  JsonValue: jsonValueSchema,
  StateName: stateNameSchema,
  Link: linkSchema,
  PipelineError: pipelineErrorSchema,
  PipelineInfo: pipelineInfoSchema,
  PipelineElement: pipelineElementSchema,
  PipelineDetails: pipelineDetailsSchema,
  ElementSummary: elementSummarySchema,
  EnumValue: enumValueSchema,
  PropertyInfo: propertyInfoSchema,
  PadTemplate: padTemplateSchema,
  InspectedElement: inspectedElementSchema,
  SinkStats: sinkStatsSchema,
  PipelineStats: pipelineStatsSchema,
  ServerStats: serverStatsSchema,
  StatsSnapshot: statsSnapshotSchema,
  RecordingInfo: recordingInfoSchema,
  RecordingStats: recordingStatsSchema,
  SegmentInfo: segmentInfoSchema,
  NodeInfo: nodeInfoSchema,
  ErrorCode: errorCodeSchema,
};

/** What a client may send as the payload of request `T` (before defaults). */
export type RequestInput<T extends RequestType> = z.input<typeof requestSchemas[T]>;
/** The payload of the result reply to request `T`. */
export type ResultPayload<T extends RequestType> = z.infer<typeof resultPayloadSchemas[T]>;
export type ResultReply<T extends RequestType = RequestType> = {
  [K in T]: z.infer<typeof resultReplySchemas[K]>;
}[T];
export type ErrorReply = z.infer<typeof errorReplySchema>;
export type ServerEvent = z.infer<typeof serverEventSchema>;
export type EventOf<T extends EventType> = Extract<ServerEvent, { type: T }>;
export type ServerMessage = ResultReply | ErrorReply | ServerEvent;

/**
 * Checks `message` against the schema of its kind: a result reply against the one for its
 * `request`, an error reply, or the event of its `type`. Throws a ZodError when it does not fit.
 */
export function parseServerMessage(message: unknown): ServerMessage {
  const { type, request } = (message ?? {}) as { type?: unknown; request?: unknown };
  if (type === "result") {
    if (typeof request !== "string" || !Object.hasOwn(resultReplySchemas, request)) {
      throw new Error(`A result reply to an unknown request type: ${JSON.stringify(request)}`);
    }
    return resultReplySchemas[request as RequestType].parse(message) as ResultReply;
  }
  if (type === "error") return errorReplySchema.parse(message);
  return serverEventSchema.parse(message);
}

// Drift checks, or `deno check` fails here. Each pair must be assignable both ways (Same), which
// catches a required field added, dropped or retyped on either side; and have the same keys
// (KeysOf), which catches an optional one. The server's own types come first, then the client's
// copies (src/client.ts imports nothing, so it has its own).

/** Compiles only when `From` is assignable to `To`. */
type Fits<From extends To, To> = [From, To];
/** Compiles only when each of `A` and `B` is assignable to the other. */
type Same<A extends B, B extends C, C = A> = [A, B, C];
/** Every key of an object type (of each member, for a union). */
type KeysOf<T> = T extends unknown ? keyof T : never;
type Infer<T extends z.ZodType> = z.infer<T>;
type Returned<T extends (...args: never[]) => unknown> = Awaited<ReturnType<T>>;
type PayloadOf<E, K> = Extract<E, { type: K }> extends { payload: infer P } ? P : never;
/** The fields push streams add to their stats (src/domain/push.ts). */
type PushStatsKeys = "bytesIn" | "frames" | "bitrate" | "format";
type ErrorVariant = Extract<Reply, { ok: false }>;

/** What each handler in src/api/handlers.ts returns (they are typed `unknown` there). */
type HandlerResults = {
  createPipeline: Returned<PipelineRegistry["create"]>;
  startPipeline: Returned<PipelineRegistry["start"]>;
  pausePipeline: Returned<PipelineRegistry["pause"]>;
  stopPipeline: Returned<PipelineRegistry["stop"]>;
  deletePipeline: Returned<PipelineRegistry["delete"]>;
  getPipelines: { pipelines: ReturnType<PipelineRegistry["list"]> };
  getPipeline: Returned<PipelineRegistry["get"]>;
  getElementProperty: Returned<PipelineRegistry["getElementProperty"]>;
  setElementProperty: Returned<PipelineRegistry["setElementProperty"]>;
  sendEos: Returned<PipelineRegistry["sendEos"]>;
  seek: Returned<PipelineRegistry["seek"]>;
  getPipelineGraph: Returned<PipelineRegistry["graph"]>;
  listElements: { elements: ReturnType<typeof listElements> };
  inspectElement: ReturnType<typeof inspectElement>;
  startRecording: Returned<RecordingHub["start"]>;
  stopRecording: Returned<RecordingHub["stop"]>;
  listRecordings: Returned<RecordingHub["list"]>;
  deleteRecording: Returned<RecordingHub["delete"]>;
  getNodes: { nodes: NodeInfo[] };
  movePipeline: { id: string; node: string; rtspUrl: string };
  subscribe: { events: EventType[]; pipelines: string[] | null; statsIntervalMs: number };
};
type ServerEvents = PipelineEvent | RecordingEvent | { type: "stats"; payload: StatsSnapshot };
type ResultPayloads = { [T in RequestType]: ResultPayload<T> };
type RequestPayloads = { [T in RequestType]: z.infer<typeof requestSchemas[T]> };
type KeysByType<M> = { [K in keyof M]: KeysOf<M[K]> };
type EventKeys<E> = { [K in EventType]: KeysOf<PayloadOf<E, K>> };

type _DriftChecks = [
  Same<StateName, Infer<typeof stateNameSchema>>,
  Same<JsonValue, Infer<typeof jsonValueSchema>>,
  Same<ErrorCode, Infer<typeof errorCodeSchema>>,
  Same<PipelineError, Infer<typeof pipelineErrorSchema>>,
  Same<KeysOf<PipelineError>, KeysOf<Infer<typeof pipelineErrorSchema>>>,
  Same<PipelineInfo, Infer<typeof pipelineInfoSchema>>,
  Same<KeysOf<PipelineInfo>, KeysOf<Infer<typeof pipelineInfoSchema>>>,
  Same<PipelineElement, Infer<typeof pipelineElementSchema>>,
  Same<KeysOf<PipelineElement>, KeysOf<Infer<typeof pipelineElementSchema>>>,
  Same<PipelineDetails, Infer<typeof pipelineDetailsSchema>>,
  Same<KeysOf<PipelineDetails>, KeysOf<Infer<typeof pipelineDetailsSchema>>>,
  Same<InspectedElement, Infer<typeof inspectedElementSchema>>,
  Same<KeysOf<InspectedElement>, KeysOf<Infer<typeof inspectedElementSchema>>>,
  Same<KeysOf<PropertyInfo>, KeysOf<Infer<typeof propertyInfoSchema>>>,
  Same<KeysOf<PadTemplateInfo>, KeysOf<Infer<typeof padTemplateSchema>>>,
  Same<KeysOf<EnumValue>, KeysOf<Infer<typeof enumValueSchema>>>,
  Same<PipelineStats, Infer<typeof pipelineStatsSchema>>,
  Same<KeysOf<PipelineStats> | PushStatsKeys, KeysOf<Infer<typeof pipelineStatsSchema>>>,
  Same<KeysOf<SinkStatsEntry>, KeysOf<Infer<typeof sinkStatsSchema>>>,
  Same<KeysOf<ServerStats>, KeysOf<Infer<typeof serverStatsSchema>>>,
  Same<StatsSnapshot, Infer<typeof statsSnapshotSchema>>,
  Same<KeysOf<StatsSnapshot>, KeysOf<Infer<typeof statsSnapshotSchema>>>,
  Same<HandlerResults, ResultPayloads>,
  Same<KeysByType<HandlerResults>, KeysByType<ResultPayloads>>,
  Same<ServerEvents, ServerEvent>,
  Same<EventKeys<ServerEvents>, EventKeys<ServerEvent>>,
  Same<ServerEvent["type"], EventType>,
  Same<ResultReply["request"], RequestType>,
  // The error reply as src/api/protocol.ts builds it (its code from src/api/errors.ts).
  Fits<
    Omit<ErrorVariant, "error"> & {
      error: Omit<ErrorVariant["error"], "code"> & { code: ErrorCode };
    },
    ErrorReply
  >,
  // The client's copies. Its request payloads are compared with z.infer: z.input of `properties`
  // is unknown, as src/domain/spec.ts casts that schema to z.ZodType<Record<string, JsonValue>>
  // (input type unknown); no request schema has a default or a transform, so otherwise they agree.
  Same<Client.RequestType, RequestType>,
  Same<Client.EventType, EventType>,
  Same<Client.ErrorCode, ErrorCode>,
  Same<Client.JsonValue, JsonValue>,
  Same<Client.RequestPayloads, RequestPayloads>,
  Same<KeysByType<Client.RequestPayloads>, KeysByType<RequestPayloads>>,
  Fits<Client.RequestPayloads, { [T in RequestType]: RequestInput<T> }>,
  Same<KeysOf<Client.ElementSpec>, KeysOf<z.infer<typeof elementSchema>>>,
  Same<KeysOf<Client.Link>, KeysOf<z.infer<typeof linkSchema>>>,
  Same<Client.ResultPayloads, ResultPayloads>,
  Same<KeysByType<Client.ResultPayloads>, KeysByType<ResultPayloads>>,
  Same<Client.ServerEvent, ServerEvent>,
  Same<EventKeys<Client.ServerEvent>, EventKeys<ServerEvent>>,
  Same<KeysOf<Client.PipelineInfo>, KeysOf<Infer<typeof pipelineInfoSchema>>>,
  Same<KeysOf<Client.PipelineError>, KeysOf<Infer<typeof pipelineErrorSchema>>>,
  Same<KeysOf<Client.PipelineElement>, KeysOf<Infer<typeof pipelineElementSchema>>>,
  Same<KeysOf<Client.PipelineDetails>, KeysOf<Infer<typeof pipelineDetailsSchema>>>,
  Same<KeysOf<Client.InspectedElement>, KeysOf<Infer<typeof inspectedElementSchema>>>,
  Same<KeysOf<Client.PropertyInfo>, KeysOf<Infer<typeof propertyInfoSchema>>>,
  Same<
    KeysOf<Client.InspectedElement["padTemplates"][number]>,
    KeysOf<Infer<typeof padTemplateSchema>>
  >,
  Same<
    KeysOf<NonNullable<Client.PropertyInfo["values"]>[number]>,
    KeysOf<Infer<typeof enumValueSchema>>
  >,
  Same<KeysOf<Client.PipelineStats>, KeysOf<Infer<typeof pipelineStatsSchema>>>,
  Same<KeysOf<Client.PipelineStats["sinks"][number]>, KeysOf<Infer<typeof sinkStatsSchema>>>,
  Same<KeysOf<Client.StatsSnapshot["server"]>, KeysOf<Infer<typeof serverStatsSchema>>>,
];
