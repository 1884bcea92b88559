/**
 * One JSON Schema document (draft 2020-12) for the whole WebSocket protocol, generated from the
 * zod schemas (src/api/protocol.ts and src/domain/spec.ts for requests, src/api/messages.ts for replies and events). Its `$defs`
 * hold, for every request type T (PascalCase P):
 *
 *   - `PRequest`: the message a client sends (type, requestId, payload), and `PRequestPayload`;
 *   - `PResult`: the reply when it succeeds, its payload a `PResultPayload` or a shared type;
 *
 * for every event E: `EEvent` (type and payload) and `EEventPayload` (or a shared type); the
 * `ErrorReply` that any request may get instead; shared types (PipelineInfo, JsonValue, ...); and
 * the unions `Request`, `Reply`, `Event` and `ServerMessage`. The root accepts any message.
 *
 * The server serves it at GET /schema.json; `deno task schema` writes the same text to
 * docs/schema.json (test/client_test.ts checks that they agree).
 */
import { z } from "zod";
import { elementSchema } from "../domain/spec.ts";
import { eventTypes, requestSchemas, type RequestType } from "./protocol.ts";
import {
  errorReplySchema,
  eventPayloadSchemas,
  eventSchemas,
  resultPayloadSchemas,
  resultReplySchemas,
  sharedSchemas,
} from "./messages.ts";

const pascal = (name: string) => name[0].toUpperCase() + name.slice(1);

/** The `$defs` name of the message each request, result reply and event is. */
export const definitionNames = {
  request: (type: RequestType) => `${pascal(type)}Request`,
  result: (type: RequestType) => `${pascal(type)}Result`,
  event: (type: string) => `${pascal(type)}Event`,
  error: "ErrorReply",
};

/**
 * The JSON Schema of the custom zod types the request schemas use: zod cannot describe a
 * z.custom, and src/domain/spec.ts checks JSON values with them (without recursion).
 */
function customTypes(): Map<unknown, Record<string, unknown>> {
  const jsonValue = { $ref: "#/$defs/JsonValue" };
  return new Map<unknown, Record<string, unknown>>([
    [requestSchemas.setElementProperty.shape.value, jsonValue],
    [elementSchema.shape.properties.unwrap(), {
      type: "object",
      additionalProperties: jsonValue,
    }],
  ]);
}

/** Zod types JSON Schema cannot express: each needs an entry in customTypes(). */
const unrepresentable = new Set([
  "custom",
  "transform",
  "date",
  "bigint",
  "symbol",
  "undefined",
  "void",
  "map",
  "set",
  "function",
  "nan",
]);

/** Builds the document; keys come out in the same order every time ($defs sorted by name). */
export function buildSchema(): Record<string, unknown> {
  const custom = customTypes();
  const registry = z.registry<{ id: string }>();
  const name = (schema: z.ZodType, id: string) => {
    if (!registry.has(schema)) registry.add(schema, { id });
  };
  for (const [id, schema] of Object.entries(sharedSchemas)) name(schema, id);

  const requestTypes = Object.keys(requestSchemas) as RequestType[];
  const requests = requestTypes.map((type) => {
    const payload = requestSchemas[type];
    name(payload, `${pascal(type)}RequestPayload`);
    const envelope = z.object({
      type: z.literal(type),
      requestId: z.union([z.string(), z.number()]).nullish().describe(
        "Echoed in the reply; null or absent when not given",
      ),
      // A payload that may be empty may also be left out (or null).
      payload: payload.safeParse({}).success ? payload.nullish() : payload,
    }).describe(`Request ${type}; fields the request does not use are ignored`);
    name(envelope, definitionNames.request(type));
    return envelope;
  });
  const results = requestTypes.map((type) => {
    name(resultPayloadSchemas[type], `${pascal(type)}ResultPayload`);
    name(resultReplySchemas[type], definitionNames.result(type));
    return resultReplySchemas[type];
  });
  name(errorReplySchema, definitionNames.error);
  const events = eventTypes.map((type) => {
    name(eventPayloadSchemas[type], `${pascal(type)}EventPayload`);
    name(eventSchemas[type], definitionNames.event(type));
    return eventSchemas[type];
  });

  const request = z.union(requests).describe("Any request a client sends");
  const reply = z.union([...results, errorReplySchema]).describe(
    "Any reply: each request gets exactly one, a result or an error",
  );
  const event = z.union(events).describe("Any event the server sends");
  const serverMessage = z.union([reply, event]).describe("Any message the server sends");
  name(request, "Request");
  name(reply, "Reply");
  name(event, "Event");
  name(serverMessage, "ServerMessage");

  const { schemas } = z.toJSONSchema(registry, {
    target: "draft-2020-12",
    // Requests as a client may write them; the server's messages are strict objects either way.
    io: "input",
    uri: (id) => `#/$defs/${id}`,
    unrepresentable: "any",
    override: ({ zodSchema, jsonSchema, path }) => {
      if (!unrepresentable.has(zodSchema._zod.def.type)) return;
      const replacement = custom.get(zodSchema);
      if (!replacement) {
        throw new Error(
          `A ${zodSchema._zod.def.type} zod type at ${path.join("/") || "(root)"} has no JSON ` +
            "Schema: give it one in customTypes() in src/api/schema.ts",
        );
      }
      Object.assign(jsonSchema, structuredClone(replacement));
    },
  });
  if ("__shared" in schemas) throw new Error("A schema that is used twice has no name");
  const defs: Record<string, unknown> = {};
  for (const id of Object.keys(schemas).sort()) {
    const { $schema: _schema, $id: _id, ...definition } = schemas[id];
    defs[id] = definition;
  }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "GStreamer control server WebSocket protocol",
    description: "Every message of the protocol (docs/protocol.md): the requests a client " +
      "sends, and the replies and events the server sends. Generated from the server's zod " +
      "schemas by src/api/schema.ts.",
    anyOf: [{ $ref: "#/$defs/Request" }, { $ref: "#/$defs/ServerMessage" }],
    $defs: defs,
  };
}

let text: string | undefined;

/** The document as served and written to docs/schema.json: two-space indents, final newline. */
export function schemaText(): string {
  text ??= JSON.stringify(buildSchema(), null, 2) + "\n";
  return text;
}

if (import.meta.main) {
  const path = new URL("../../docs/schema.json", import.meta.url);
  await Deno.writeTextFile(path, schemaText());
  console.log(`Wrote ${path.pathname}`);
}
