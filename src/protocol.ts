/**
 * The WebSocket JSON protocol: request schemas, dispatch, and the one place
 * where errors become replies.
 */
import { z } from "zod";
import { ServerError } from "./errors.ts";
import type { JsonValue } from "./gst/gvalue.ts";
import { elementNamePattern } from "./pipelines.ts";

export const MAX_MESSAGE_BYTES = 1024 * 1024;

const requestIdSchema = z.union([z.string(), z.number()]);

const envelopeSchema = z.object({
  type: z.string({ error: "Expected a string naming the request type" }),
  // null is taken as "not given", as JSON encoders often write absent fields.
  requestId: requestIdSchema.nullish(),
  payload: z.record(z.string(), z.unknown()).nullish(),
});

const jsonValue: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValue),
    z.record(z.string(), jsonValue),
  ])
);

export const elementSchema = z.object({
  type: z.string().min(1, "Expected an element factory name"),
  name: z.string().regex(elementNamePattern, {
    error: "Element names are 1 to 64 characters of letters, digits, '.', '_' and '-'",
  }).optional(),
  properties: z.record(z.string(), jsonValue).optional(),
});

const idSchema = z.string({ error: "Expected a pipeline id (string)" });

export const requestSchemas = {
  createPipeline: z.object({
    id: idSchema,
    description: z.string().max(4096).optional(),
    pipeline: z.object({
      elements: z.array(elementSchema).min(1, "A pipeline needs at least one element").max(
        1000,
      ),
    }),
    restart: z.enum(["never", "on-failure", "always"], {
      error: "Expected one of: never, on-failure, always",
    }).optional(),
  }),
  startPipeline: z.object({ id: idSchema }),
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
} as const;

export type RequestType = keyof typeof requestSchemas;
export type RequestPayload<T extends RequestType> = z.infer<typeof requestSchemas[T]>;

export type Handlers = {
  [T in RequestType]: (payload: RequestPayload<T>) => unknown | Promise<unknown>;
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

function invalidRequest(error: z.ZodError, prefix: readonly PropertyKey[]): ServerError {
  const issue = error.issues[0];
  const path = formatPath([...prefix, ...issue.path]);
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
export async function handleMessage(text: string, handlers: Handlers): Promise<Reply> {
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
    const handler = handlers[requestType] as (payload: unknown) => unknown;
    const result = await handler(parsed.data);
    return { type: "result", request: type, requestId, ok: true, payload: result ?? {} };
  } catch (error) {
    return errorReply(error, request, requestId);
  }
}
