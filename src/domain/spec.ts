/**
 * What a pipeline is made from: its definition (elements and links, or gst-launch text; a
 * restart policy), as zod schemas and the types they give. The API's createPipeline request is
 * this definition plus an id, and the store keeps definitions in this shape; both check them
 * with these schemas, so the rule is written once.
 */
import { z } from "zod";
import type { JsonValue } from "../gst/gvalue.ts";
import { NAME_RULE, namePattern } from "./names.ts";

/** How deep arrays and objects may nest in a JSON value (a property value). */
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

// Definitions come from JSON.parse, so every defined value is JSON: only objects and depth need
// checking. Not z.record: zod 4 tells a plain object by reading its `constructor`, which is a JSON
// key like any other ({"constructor": null} threw, so INTERNAL; {"constructor": 1} was refused).
export const jsonObject = z.custom<Record<string, unknown>>(
  (value) => typeof value === "object" && value !== null && !Array.isArray(value),
  { error: "Expected an object" },
);

export const jsonValue = z.custom<JsonValue>((value) => value !== undefined, {
  error: "Expected a JSON value",
}).refine(withinJsonDepth, { error: tooDeep });

const jsonValues = jsonObject.superRefine((object, ctx) => {
  for (const [key, value] of Object.entries(object)) {
    if (!withinJsonDepth(value)) ctx.addIssue({ code: "custom", path: [key], message: tooDeep });
  }
}) as z.ZodType<Record<string, JsonValue>>;

export const elementSchema = z.object({
  type: z.string().min(1, "Expected an element factory name").max(
    256,
    "Element factory names are at most 256 characters",
  ),
  name: z.string().regex(namePattern, { error: `Element names are ${NAME_RULE}` }).optional(),
  properties: jsonValues.optional(),
});

/** A link's end: "name" or "name.pad" (C would read a pad name only up to a NUL). */
const linkEnd = z.string().min(1, 'Expected "name" or "name.pad"').refine(
  (end) => !end.includes("\0"),
  'Expected "name" or "name.pad", without a NUL character (\\u0000)',
);

/** A link between two elements: each end is "name" or "name.pad". */
export const linkSchema = z.object({
  from: linkEnd,
  to: linkEnd,
  caps: z.string().min(1, "Expected caps such as video/x-raw,width=320").optional(),
});

export const restartPolicies = ["never", "on-failure", "always"] as const;

/** A pipeline's definition: what createPipeline takes besides the id, and what the store keeps. */
export const definitionSchema = z.object({
  description: z.string().max(4096).optional(),
  pipeline: z.union([
    z.string().min(1, "Expected gst-launch text").max(65536),
    z.object({
      elements: z.array(elementSchema).min(1, "A pipeline needs at least one element").max(1000),
      links: z.array(linkSchema).max(4000).optional(),
    }),
  ], { error: "Expected gst-launch text or an object with 'elements' (and 'links')" }),
  restart: z.enum(restartPolicies, {
    error: `Expected one of: ${restartPolicies.join(", ")}`,
  }).optional(),
});

export type ElementSpec = z.infer<typeof elementSchema>;
export type LinkSpec = z.infer<typeof linkSchema>;
export type RestartPolicy = typeof restartPolicies[number];
export type PipelineDefinition = z.infer<typeof definitionSchema>;
/** Elements, and the links between them; without links each element links to the next. */
export type PipelineDescription = Exclude<PipelineDefinition["pipeline"], string>;
/** A description with every element named and every link explicit (as launch text has it). */
export type ExplicitDescription = Required<PipelineDescription>;
export type PipelineSpec = PipelineDefinition & { id: string };
