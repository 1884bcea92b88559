/**
 * The WebSocket JSON protocol: request schemas, dispatch, and replies (errors become replies
 * through src/api/errors.ts).
 */
import { z } from "zod";
import { formatPath } from "../domain/errors.ts";
import { ID_RULE, idPattern } from "../domain/names.ts";
import { recordingFormats } from "../domain/recording.ts";
import { definitionSchema, jsonObject, jsonValue } from "../domain/spec.ts";
import { ApiError, toWireError } from "./errors.ts";

export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Every event type the server sends. */
export const eventTypes = [
  "pipelineCreated",
  "pipelineDeleted",
  "pipelineStateChanged",
  "pipelineError",
  "pipelineWarning",
  "pipelineEos",
  "pipelineRestarting",
  "recordingStarted",
  "recordingSegment",
  "recordingStopped",
  "recordingError",
  "stats",
] as const;
export type EventType = typeof eventTypes[number];

const requestIdSchema = z.union([z.string(), z.number()]);

const envelopeSchema = z.object({
  type: z.string({ error: "Expected a string naming the request type" }),
  // null is taken as "not given", as JSON encoders often write absent fields.
  requestId: requestIdSchema.nullish(),
  payload: jsonObject.nullish(),
});

export const desiredStateSchema = z.enum(["playing", "paused", "stopped"]).describe(
  "What the pipeline should be doing; kept across server restarts",
);

const idSchema = z.string({ error: "Expected a pipeline id (string)" });
const pathSchema = z.string({
  error: "Expected a served path (string), as in rtsp://HOST:8554/{path}",
});

export const requestSchemas = {
  createPipeline: z.object({
    id: idSchema,
    ...definitionSchema.shape,
    node: z.string().optional().describe(
      "The node to run it on (getNodes); the least-loaded one when absent",
    ),
    desiredState: desiredStateSchema.optional().describe(
      'What it should be doing once created (default "stopped"): "playing" or "paused" starts ' +
        "it in the same request (stored with its row, one commit) and replies once the state " +
        "is reached; when that start fails, the create fails and leaves nothing",
    ),
  }),
  startPipeline: z.object({ id: idSchema }),
  pausePipeline: z.object({ id: idSchema }),
  stopPipeline: z.object({ id: idSchema }),
  deletePipeline: z.object({ id: idSchema }),
  getPipelines: z.object({}),
  getPipeline: z.object({ id: idSchema }),
  getElementProperty: z.object({ id: idSchema, element: z.string(), property: z.string() }),
  setElementProperty: z.object({
    id: idSchema,
    element: z.string(),
    property: z.string(),
    value: jsonValue,
  }),
  sendEos: z.object({ id: idSchema }),
  seek: z.object({
    id: idSchema,
    position: z.number({ error: "Expected the position in milliseconds" }).min(0).max(
      Number.MAX_SAFE_INTEGER / 1e6,
    ),
    rate: z.number().refine((rate) => rate !== 0 && Math.abs(rate) <= 64, {
      error: "Expected a rate other than 0, from -64 to 64",
    }).optional(),
    flush: z.boolean().optional(),
  }),
  getPipelineGraph: z.object({ id: idSchema }),
  listElements: z.object({ filter: z.string().max(256).optional() }),
  inspectElement: z.object({
    type: z.string().min(1, "Expected an element factory name").max(
      256,
      "Element factory names are at most 256 characters",
    ),
  }),
  startRecording: z.object({
    path: pathSchema,
    format: z.enum(recordingFormats, {
      error: `Expected a format among: ${recordingFormats.join(", ")}`,
    }).optional(),
    segmentSeconds: z.number().int("Expected whole seconds").min(1, "Expected 1 to 3600 s").max(
      3600,
      "Expected 1 to 3600 s",
    ).optional(),
    retention: z.strictObject({
      maxAgeSeconds: z.number().int().min(1).optional(),
      maxBytes: z.number().int().min(1).optional(),
    }).optional(),
  }),
  stopRecording: z.object({ path: pathSchema }),
  listRecordings: z.object({
    path: pathSchema.optional(),
    from: z.iso.datetime({ error: "Expected an ISO 8601 UTC time" }).optional(),
    to: z.iso.datetime({ error: "Expected an ISO 8601 UTC time" }).optional(),
  }),
  deleteRecording: z.object({
    path: pathSchema,
    file: z.string().optional().describe("One segment; every segment of the path when absent"),
  }),
  getNodes: z.object({}),
  movePipeline: z.object({
    id: idSchema,
    node: z.string({ error: "Expected the id of the node to move it to (getNodes)" }),
  }),
  subscribe: z.object({
    events: z.array(z.enum(eventTypes, {
      error: `Expected event types among: ${eventTypes.join(", ")}`,
    })).optional(),
    pipelines: z.array(idSchema.regex(idPattern, { error: `Pipeline ids are ${ID_RULE}` })).max(
      10000,
    ).optional(),
    statsIntervalMs: z.number().int().min(100, "Expected 100 to 60000 ms").max(
      60000,
      "Expected 100 to 60000 ms",
    ).optional(),
  }),
} as const;

export type RequestType = keyof typeof requestSchemas;

/** What one WebSocket client asked to receive (subscribe); absent fields mean everything. */
export interface Subscription {
  events?: Set<EventType>;
  pipelines?: Set<string>;
  statsIntervalMs: number;
}

/** The connection a request came on. */
export interface RequestContext {
  subscription: Subscription;
  /** Another node's link (docs/cluster.md): answered here, never forwarded. */
  peer?: boolean;
}

/**
 * Sends a request to the node that should answer it; null, or a promise of null, when this one
 * answers. Null at once where the route can tell without a look-up: the request then reaches its
 * handler without waiting a turn.
 */
export type Route = (type: RequestType, payload: unknown) => Promise<Reply | null> | null;
export type RequestPayload<T extends RequestType> = z.infer<typeof requestSchemas[T]>;

export type Handlers = {
  [T in RequestType]: (
    payload: RequestPayload<T>,
    context: RequestContext,
  ) => unknown | Promise<unknown>;
};

export type RequestId = string | number | null;

export type Reply =
  | { type: "result"; request: string; requestId: RequestId; ok: true; payload: unknown }
  | {
    type: "error";
    request: string | null;
    requestId: RequestId;
    ok: false;
    error: { code: string; message: string; details?: Record<string, unknown> };
  };

/**
 * The issue to report: for a value that fits no branch of a union, the issue of the
 * one branch whose type it has (so an element list gets its own precise error).
 */
function closestIssue(issue: z.core.$ZodIssue): { issue: z.core.$ZodIssue; path: PropertyKey[] } {
  if (issue.code === "invalid_union") {
    const sameType = issue.errors.filter((branch) =>
      branch.length > 0 && !(branch[0].code === "invalid_type" && branch[0].path.length === 0)
    );
    if (sameType.length === 1) {
      const inner = closestIssue(sameType[0][0]);
      return { issue: inner.issue, path: [...issue.path, ...inner.path] };
    }
  }
  return { issue, path: issue.path };
}

function invalidRequest(error: z.ZodError, prefix: readonly PropertyKey[]): ApiError {
  const { issue, path: issuePath } = closestIssue(error.issues[0]);
  const path = formatPath([...prefix, ...issuePath]);
  return new ApiError(
    "INVALID_REQUEST",
    `Invalid request at '${path || "(message)"}': ${issue.message}`,
    { path: path || null },
  );
}

export function errorReply(
  error: unknown,
  request: string | null,
  requestId: RequestId,
): Reply {
  const wire = toWireError(error);
  if (wire !== null) return { type: "error", request, requestId, ok: false, error: wire };
  console.error(`Request '${request}' failed unexpectedly:`, error);
  return {
    type: "error",
    request,
    requestId,
    ok: false,
    error: { code: "INTERNAL", message: "Internal server error; the server log has the cause" },
  };
}

/** The parsed message with what a reply echoes (request type and id), as far as they can be read. */
export function readEnvelope(
  text: string,
): { json: unknown; request: string | null; requestId: RequestId; parseError?: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return {
      json: undefined,
      request: null,
      requestId: null,
      parseError: (error as Error).message,
    };
  }
  let request: string | null = null;
  let requestId: RequestId = null;
  if (typeof json === "object" && json !== null && !Array.isArray(json)) {
    const record = json as Record<string, unknown>;
    if (typeof record.type === "string") request = record.type;
    const id = requestIdSchema.safeParse(record.requestId);
    if (id.success) requestId = id.data;
  }
  return { json, request, requestId };
}

/** Answers one text frame with exactly one reply. */
export async function handleMessage(
  text: string,
  handlers: Handlers,
  context: RequestContext,
  route?: Route,
): Promise<Reply> {
  const { json, request, requestId, parseError } = readEnvelope(text);
  try {
    if (parseError !== undefined) {
      throw new ApiError("INVALID_REQUEST", `Message is not valid JSON: ${parseError}`, {
        path: null,
      });
    }
    const envelope = envelopeSchema.safeParse(json);
    if (!envelope.success) throw invalidRequest(envelope.error, []);
    const { type, payload } = envelope.data;
    if (!Object.hasOwn(requestSchemas, type)) {
      throw new ApiError(
        "UNKNOWN_TYPE",
        `Unknown request type '${type}'; known types: ${Object.keys(requestSchemas).join(", ")}`,
        { type, known: Object.keys(requestSchemas) },
      );
    }
    const requestType = type as RequestType;
    const parsed = requestSchemas[requestType].safeParse(payload ?? {});
    if (!parsed.success) throw invalidRequest(parsed.error, ["payload"]);
    if (route && !context.peer) {
      // The payload as the client sent it: the node that answers applies the defaults.
      const routing = route(requestType, payload ?? {});
      const routed = routing && await routing;
      if (routed) return { ...routed, request: type, requestId };
    }
    const handler = handlers[requestType] as (payload: unknown, context: RequestContext) => unknown;
    const result = await handler(parsed.data, context);
    return { type: "result", request: type, requestId, ok: true, payload: result ?? {} };
  } catch (error) {
    return errorReply(error, request, requestId);
  }
}
