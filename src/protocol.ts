/**
 * The WebSocket JSON protocol: request schemas, dispatch, and the one place
 * where errors become replies.
 */
import { z } from "zod";
import { ServerError } from "./errors.ts";
import type { JsonValue } from "./gst/gvalue.ts";
import { elementNamePattern, idPattern } from "./pipelines.ts";

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
  "stats",
] as const;
export type EventType = typeof eventTypes[number];

const requestIdSchema = z.union([z.string(), z.number()]);

/** How deep arrays and objects may nest in a JSON value of a request (a property value). */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether arrays and objects nest at most MAX_JSON_DEPTH deep in `value`. Checked without
 * recursion: a recursive schema overflowed the stack on a deeply nested value (INTERNAL).
 */
function withinJsonDepth(value: unknown): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== "object" || item === null) continue;
    if (depth > MAX_JSON_DEPTH) return false;
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return true;
}

const tooDeep = `Arrays and objects may nest at most ${MAX_JSON_DEPTH} deep`;

// Messages come from JSON.parse, so every defined value is JSON: only objects and depth need
// checking. Not z.record: zod 4 tells a plain object by reading its `constructor`, which is a JSON
// key like any other ({"constructor": null} threw, so INTERNAL; {"constructor": 1} was refused).
const jsonObject = z.custom<Record<string, unknown>>(
  (value) => typeof value === "object" && value !== null && !Array.isArray(value),
  { error: "Expected an object" },
);

const jsonValue = z.custom<JsonValue>((value) => value !== undefined, {
  error: "Expected a JSON value",
}).refine(withinJsonDepth, { error: tooDeep });

const jsonValues = jsonObject.superRefine((object, ctx) => {
  for (const [key, value] of Object.entries(object)) {
    if (!withinJsonDepth(value)) ctx.addIssue({ code: "custom", path: [key], message: tooDeep });
  }
}) as z.ZodType<Record<string, JsonValue>>;

const envelopeSchema = z.object({
  type: z.string({ error: "Expected a string naming the request type" }),
  // null is taken as "not given", as JSON encoders often write absent fields.
  requestId: requestIdSchema.nullish(),
  payload: jsonObject.nullish(),
});

export const elementSchema = z.object({
  type: z.string().min(1, "Expected an element factory name").max(
    256,
    "Element factory names are at most 256 characters",
  ),
  name: z.string().regex(elementNamePattern, {
    error: "Element names are 1 to 64 characters of letters, digits, '.', '_' and '-'",
  }).optional(),
  properties: jsonValues.optional(),
});

export const linkSchema = z.object({
  from: z.string().min(1, 'Expected "name" or "name.pad"'),
  to: z.string().min(1, 'Expected "name" or "name.pad"'),
  caps: z.string().min(1, "Expected caps such as video/x-raw,width=320").optional(),
});

const idSchema = z.string({ error: "Expected a pipeline id (string)" });

export const requestSchemas = {
  createPipeline: z.object({
    id: idSchema,
    description: z.string().max(4096).optional(),
    pipeline: z.union([
      z.string().min(1, "Expected gst-launch text").max(65536),
      z.object({
        elements: z.array(elementSchema).min(1, "A pipeline needs at least one element").max(
          1000,
        ),
        links: z.array(linkSchema).max(4000).optional(),
      }),
    ], { error: "Expected gst-launch text or an object with 'elements' (and 'links')" }),
    restart: z.enum(["never", "on-failure", "always"], {
      error: "Expected one of: never, on-failure, always",
    }).optional(),
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
  subscribe: z.object({
    events: z.array(z.enum(eventTypes, {
      error: `Expected event types among: ${eventTypes.join(", ")}`,
    })).optional(),
    pipelines: z.array(idSchema.regex(idPattern, {
      error: "Pipeline ids are 1 to 128 characters of letters, digits, '.', '_' and '-'",
    })).max(10000).optional(),
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
}
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

/** A JSON path such as `payload.pipeline.elements[0].type`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (text, key) =>
      typeof key === "number" ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key),
    "",
  );
}

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

function invalidRequest(error: z.ZodError, prefix: readonly PropertyKey[]): ServerError {
  const { issue, path: issuePath } = closestIssue(error.issues[0]);
  const path = formatPath([...prefix, ...issuePath]);
  return new ServerError(
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
  if (error instanceof ServerError) {
    return {
      type: "error",
      request,
      requestId,
      ok: false,
      error: {
        code: error.code,
        message: error.message,
        ...(error.details ? { details: error.details } : {}),
      },
    };
  }
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
): Promise<Reply> {
  const { json, request, requestId, parseError } = readEnvelope(text);
  try {
    if (parseError !== undefined) {
      throw new ServerError("INVALID_REQUEST", `Message is not valid JSON: ${parseError}`, {
        path: null,
      });
    }
    const envelope = envelopeSchema.safeParse(json);
    if (!envelope.success) throw invalidRequest(envelope.error, []);
    const { type, payload } = envelope.data;
    if (!Object.hasOwn(requestSchemas, type)) {
      throw new ServerError(
        "UNKNOWN_TYPE",
        `Unknown request type '${type}'; known types: ${Object.keys(requestSchemas).join(", ")}`,
        { type, known: Object.keys(requestSchemas) },
      );
    }
    const requestType = type as RequestType;
    const parsed = requestSchemas[requestType].safeParse(payload ?? {});
    if (!parsed.success) throw invalidRequest(parsed.error, ["payload"]);
    const handler = handlers[requestType] as (payload: unknown, context: RequestContext) => unknown;
    const result = await handler(parsed.data, context);
    return { type: "result", request: type, requestId, ok: true, payload: result ?? {} };
  } catch (error) {
    return errorReply(error, request, requestId);
  }
}
