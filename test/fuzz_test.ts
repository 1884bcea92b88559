/**
 * Property-based fuzzing of the WebSocket protocol against the real server
 * (fast-check generates, the server answers):
 *
 * (a) arbitrary text and JSON: random strings, fc.json / fc.anything, deep
 *     nesting, odd numbers, valid requests with characters edited, sizes around
 *     the 1 MiB limit, binary frames;
 * (b) every request type built from valid pieces and then mutated: fields
 *     removed, retyped, nulled, wrapped in arrays, extra fields (`__proto__`,
 *     `constructor`), bad and 129+ character ids, unknown element types, launch
 *     text edited, links to nowhere, near-miss property values (out of range,
 *     negative unsigned, unknown nicks), 1000+ elements, duplicate names;
 * (c) valid requests on real pipelines (test sources, identity, queue,
 *     capsfilter, fakesink; as element lists, with links, or as launch text;
 *     random properties and restart policies) with random ids, interleaved with
 *     (b): create, start, pause, stop, delete, get, graph, get/set property,
 *     sendEos, seek, also on ids that do not exist.
 *
 * Every message must get exactly one reply of the documented shape, with a
 * known error code (never INTERNAL) and its requestId echoed, within a time
 * budget; afterwards the server must still list, delete and run a pipeline to
 * its end, with no unexpected exception in its log. The run is reproducible:
 * FUZZ_SEED=<seed> replays it (the seed is printed, and repeated in any failure,
 * with the message, the requests answered before it for the same pipeline and
 * the messages in flight).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { errorCodes } from "../src/api/errors.ts";
import { eventTypes, MAX_MESSAGE_BYTES, requestSchemas } from "../src/api/protocol.ts";
import { expectOk, startServer, TestClient } from "./helpers.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261121);
/** Phase (a), sent with the other phases' messages not in flight. */
const RAW_MESSAGES = 3000;
/** Phases (b) and (c), interleaved: about two mutated requests per real pipeline request. */
const MIXED_MESSAGES = 7400;
const MIN_MESSAGES = 10_000;
const CONCURRENCY = 50;
/** One message above this at a time, so that big replies (echoing big values) never pile up unread. */
const BIG_BYTES = 32 * 1024;
/** A request must be answered within this; the state changes wait up to 5 s for GStreamer, and queue per pipeline. */
const REPLY_BUDGET_MS = 10_000;
const STATE_CHANGE_BUDGET_MS = 30_000;
/**
 * More for each state change on the same pipeline in flight before it: they run one after the
 * other, and each may wait 5 s for GStreamer (a start that does not reach PLAYING) and 5 s more
 * for a seek or end of stream it has to flush.
 */
const QUEUED_STATE_CHANGE_MS = 10_000;

const requestTypes = Object.keys(requestSchemas);
const stateNames = ["NULL", "READY", "PAUSED", "PLAYING"];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const encoder = new TextEncoder();
/** As the server reads a frame: a leading BOM stays (and is not JSON). */
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

// ---------------------------------------------------------------------------
// Placeholders: a string that stands for text spliced in after JSON.stringify
// (nesting too deep for JSON.stringify to build), and the requestId slot.

const DEEP = "\u0000deep\u0000";
const TAG = "\u0000tag\u0000";
const deepPattern = /"\\u0000deep\\u0000(array|object|mixed):(\d+)"/g;

function deepText(kind: string, depth: number): string {
  if (kind === "array") return "[".repeat(depth) + "1" + "]".repeat(depth);
  if (kind === "object") return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
  const open: string[] = [];
  const close: string[] = [];
  for (let i = 0; i < depth; i++) {
    open.push(i % 2 === 0 ? '{"k":[' : "[");
    close.push(i % 2 === 0 ? "]}" : "]");
  }
  return open.join("") + "null" + close.reverse().join("");
}

function serialise(value: Json): string {
  return (JSON.stringify(value) ?? "null").replace(
    deepPattern,
    (_, kind: string, depth: string) => deepText(kind, Number(depth)),
  );
}

/** Sets an own property (also `__proto__`, which plain assignment would take as the prototype). */
function put(object: JsonObject, key: string, value: Json): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------
// Values

const specialNumbers = [
  0,
  -0,
  1,
  -1,
  1.5,
  -1.5,
  0.1,
  1e308,
  -1e308,
  5e-324,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53) - 2,
  2 ** 63,
  2 ** 64,
  -(2 ** 63),
  1e21,
  123456789.125,
];

const specialStrings = [
  "",
  " ",
  "\u0000",
  "null",
  "true",
  "false",
  "yes",
  "1",
  "0",
  "-1",
  "+1",
  " 7 ",
  "1e3",
  "0x10",
  "1.5",
  "NaN",
  "Infinity",
  "-Infinity",
  "18446744073709551615",
  "18446744073709551616",
  "-9223372036854775809",
  "9223372036854775808",
  "99999999999999999999999999",
  "ballz",
  "Moving ball",
  "smpte+snow",
  "discont+nonsense",
  "a+b",
  "+",
  "30/1",
  "1/0",
  "0/0",
  "-1/2",
  "video/x-raw",
  "video/x-raw,width=(int)abc",
  "video/x-raw,width=[1,2",
  "ANY",
  "EMPTY",
  "NONE",
  "video/x-raw(memory:Foo),width=1",
  "audio/x-raw;video/x-raw",
  "{ }",
  "<1,2>",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "../../etc/passwd",
  "my camera",
  "caf\u00e9",
  "\u{1F600}",
  "\ud800",
  "\udc00x",
  "a\u0000b",
  "\r\n",
  "\u202e",
  "%s%s%n",
  "${x}",
  "'; DROP TABLE pipelines; --",
];

const numberArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...specialNumbers) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
);

const jsonishChar = fc.constantFrom(
  ...'{}[]":,0123456789.eE+- \\utrfalsn\t\n'.split(""),
  "\u0000",
  "\u00e9",
  "\ud800",
);

type TextEdit = { at: number; op: "delete" | "insert" | "replace" | "truncate"; text: string };
const textEdit: fc.Arbitrary<TextEdit> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("delete", "insert", "replace", "truncate"),
  text: fc.string({ unit: jsonishChar, minLength: 1, maxLength: 4 }),
});

function edited(text: string, edits: TextEdit[]): string {
  for (const { at, op, text: piece } of edits) {
    const i = text.length === 0 ? 0 : at % text.length;
    if (op === "delete") text = text.slice(0, i) + text.slice(i + piece.length);
    if (op === "insert") text = text.slice(0, i) + piece + text.slice(i);
    if (op === "replace") text = text.slice(0, i) + piece + text.slice(i + piece.length);
    if (op === "truncate") text = text.slice(0, i);
  }
  return text;
}

/** Strings from 129 characters (one over the id limit) to a few MB (over the message limit). */
const longString: fc.Arbitrary<string> = fc.tuple(
  fc.constantFrom("a", "Z9", "\u00e9", "\u{1F600}", "\u0000", " ", '"', "\\", "-"),
  fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: 129, max: 300 }) },
    { weight: 6, arbitrary: fc.integer({ min: 1000, max: 5000 }) },
    { weight: 2, arbitrary: fc.integer({ min: 60_000, max: 70_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 400_000, max: 600_000 }) },
  ),
).map(([unit, length]) => unit.repeat(Math.ceil(length / unit.length)));

/** Nesting depths: mostly what a recursive parser survives, sometimes far beyond (and over the size limit). */
const depthArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 100 }) },
  { weight: 3, arbitrary: fc.integer({ min: 100, max: 5000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 5000, max: 400_000 }) },
);

const deepValue: fc.Arbitrary<string> = fc.tuple(
  fc.constantFrom("array", "object", "mixed"),
  depthArb,
).map(([kind, depth]) => `${DEEP}${kind}:${depth}`);

const stringArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...specialStrings) },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  { weight: 1, arbitrary: longString },
);

/** A value of any JSON kind, biased to the ones that break parsers and converters. */
const garbage: fc.Arbitrary<Json> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.boolean() },
  { weight: 5, arbitrary: numberArb },
  { weight: 7, arbitrary: stringArb },
  { weight: 1, arbitrary: fc.constantFrom<Json>([], {}, [null], [[]], { "": null }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json> },
  { weight: 1, arbitrary: deepValue },
);

// ---------------------------------------------------------------------------
// Valid pieces: ids, element chains and their property values

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
const idTail = fc.string({ unit: fc.constantFrom(...idChars), maxLength: 127 });

/** Ids the lifecycle phase creates, ids only mutated requests create (never started), ids never created. */
const pools = fc.sample(
  fc.record({
    live: fc.uniqueArray(idTail.map((tail) => `c${tail}`), { minLength: 24, maxLength: 24 }),
    mutated: fc.uniqueArray(idTail.map((tail) => `m${tail}`), { minLength: 16, maxLength: 16 }),
  }),
  { seed: SEED, numRuns: 1 },
)[0];
const liveId = fc.constantFrom(...pools.live);
const mutatedId = fc.constantFrom(...pools.mutated);
const missingId = idTail.map((tail) => `n${tail}`);
const badId: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom("", " ", "my camera", "a/b", "caf\u00e9", "\u{1F600}", "x\u0000", "..", "a\nb"),
  fc.integer({ min: 129, max: 400 }).map((n) => "i".repeat(n)),
  longString,
  fc.string({ unit: "binary", minLength: 1, maxLength: 20 }),
);

interface Prop {
  /** Values the property takes, in the forms docs/protocol.md lists. */
  valid: fc.Arbitrary<Json>;
  /** Values of the right kind that do not fit: out of range, unknown nicks, text that does not parse. */
  nearMiss: fc.Arbitrary<Json>;
}

const bool = (): Prop => ({
  valid: fc.oneof(fc.boolean(), fc.constantFrom("true", "false")),
  nearMiss: fc.constantFrom<Json>("yes", 1, 0, "TRUE", "", "1", [], {}),
});

const int = (min: number, max: number, unsigned = false): Prop => ({
  valid: fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min, max }) },
    { weight: 1, arbitrary: fc.integer({ min, max }).map(String) },
  ),
  nearMiss: fc.constantFrom<Json>(
    min - 1,
    max + 1,
    `${max}0`,
    1.5,
    "1e3",
    "12abc",
    " ",
    1e308,
    -1e308,
    "99999999999999999999",
    2 ** 53 + 2,
    ...(unsigned ? [-1, "-1", -(2 ** 63), 2 ** 64, "18446744073709551616"] : [-(2 ** 64)]),
  ),
});

const float = (min: number, max: number): Prop => ({
  valid: fc.oneof(
    fc.double({ min, max, noNaN: true }),
    fc.double({ min, max, noNaN: true }).map(String),
  ),
  nearMiss: fc.constantFrom<Json>("NaN", "Infinity", 1e308, -1e308, "1e400", "1,5", "", "abc"),
});

const enumOf = (...nicks: string[]): Prop => ({
  valid: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...nicks) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: nicks.length - 1 }) },
  ),
  nearMiss: fc.constantFrom<Json>("ballz", nicks[0].toUpperCase(), 999, -1, 1.5, "1abc", "", "a+b"),
});

const bufferFlags: Prop = {
  valid: fc.constantFrom<Json>("0", "discont", "gap+droppable", "live+corrupted", 64, "64"),
  nearMiss: fc.constantFrom<Json>("discont+nonsense", "++", -1, 2 ** 32, 1.5, "discont|gap", ""),
};

const videoCaps = fc.record({
  format: fc.option(fc.constantFrom("I420", "RGB", "NV12", "YUY2", "GRAY8")),
  width: fc.option(fc.integer({ min: 8, max: 320 })),
  height: fc.option(fc.integer({ min: 8, max: 240 })),
  framerate: fc.option(fc.integer({ min: 1, max: 60 })),
}).map(({ format, width, height, framerate }) =>
  [
    "video/x-raw",
    format && `format=${format}`,
    width && `width=${width}`,
    height && `height=${height}`,
    framerate && `framerate=${framerate}/1`,
  ].filter(Boolean).join(",")
);
const audioCaps = fc.record({
  format: fc.option(fc.constantFrom("S16LE", "F32LE", "U8")),
  rate: fc.option(fc.integer({ min: 8000, max: 48000 })),
  channels: fc.option(fc.integer({ min: 1, max: 2 })),
}).map(({ format, rate, channels }) =>
  [
    "audio/x-raw",
    format && `format=${format}`,
    rate && `rate=${rate}`,
    channels && `channels=${channels}`,
  ].filter(Boolean).join(",")
);
const caps: Prop = {
  valid: fc.oneof({ weight: 3, arbitrary: videoCaps }, { weight: 2, arbitrary: audioCaps }),
  nearMiss: fc.constantFrom<Json>(
    "video/x-raw,width=(int)abc",
    "video/x-raw,width=[1,2",
    "EMPTY",
    "NONE",
    "",
    "not caps",
    "video/x-raw,framerate=1/0",
    "audio/x-raw,rate=-5",
    "video/x-raw,width=" + "9".repeat(100),
    5,
    true,
  ),
};

/**
 * A property the lifecycle phase only reads: read-only ones, and those whose change could make a
 * source run flat out (is-live, num-buffers) or flood the log (dump).
 */
const readOnly: Prop = { valid: fc.constant(null), nearMiss: fc.constant(null) };

type ElementType =
  | "videotestsrc"
  | "audiotestsrc"
  | "identity"
  | "queue"
  | "capsfilter"
  | "fakesink";

/** Every property of the six elements; those that are not `readOnly` may be set in a running pipeline. */
const elementProps: Record<ElementType, Record<string, Prop>> = {
  videotestsrc: {
    pattern: enumOf(
      "smpte",
      "snow",
      "black",
      "white",
      "red",
      "green",
      "blue",
      "checkers-1",
      "checkers-2",
      "checkers-4",
      "checkers-8",
      "circular",
      "blink",
      "smpte75",
      "zone-plate",
      "gamut",
      "chroma-zone-plate",
      "solid-color",
      "ball",
      "smpte100",
      "bar",
      "pinwheel",
      "spokes",
      "gradient",
      "colors",
      "smpte-rp-219",
    ),
    "animation-mode": enumOf("frames", "wall-time", "running-time"),
    motion: enumOf("wavy", "sweep", "hsweep"),
    flip: bool(),
    "foreground-color": int(0, 4294967295, true),
    "background-color": int(0, 4294967295, true),
    "horizontal-speed": int(-100, 100),
    k0: int(-100, 100),
    kx: int(-100, 100),
    ky: int(-100, 100),
    kt: int(-100, 100),
    kxt: int(-100, 100),
    kyt: int(-100, 100),
    kxy: int(-100, 100),
    kx2: int(-100, 100),
    ky2: int(-100, 100),
    kt2: int(-100, 100),
    xoffset: int(-100, 100),
    yoffset: int(-100, 100),
    "timestamp-offset": int(0, 1_000_000_000),
    "do-timestamp": readOnly,
    "is-live": readOnly,
    "num-buffers": readOnly,
    blocksize: readOnly,
    typefind: readOnly,
    name: readOnly,
    parent: readOnly,
  },
  audiotestsrc: {
    wave: enumOf(
      "sine",
      "square",
      "saw",
      "triangle",
      "silence",
      "white-noise",
      "pink-noise",
      "sine-table",
      "ticks",
      "gaussian-noise",
      "red-noise",
      "blue-noise",
      "violet-noise",
    ),
    freq: float(20, 20000),
    volume: float(0, 1),
    "apply-tick-ramp": bool(),
    "marker-tick-period": int(0, 10, true),
    "marker-tick-volume": float(0, 1),
    "tick-interval": int(1_000_000, 1_000_000_000, true),
    "timestamp-offset": int(0, 1_000_000_000),
    samplesperbuffer: readOnly,
    "is-live": readOnly,
    "num-buffers": readOnly,
    "do-timestamp": readOnly,
    "can-activate-pull": readOnly,
    "can-activate-push": readOnly,
    blocksize: readOnly,
    typefind: readOnly,
    name: readOnly,
    parent: readOnly,
  },
  identity: {
    "sleep-time": int(0, 1000, true),
    "error-after": int(1, 60),
    "eos-after": int(1, 60),
    "drop-probability": float(0, 1),
    datarate: int(0, 10_000_000),
    "drop-buffer-flags": bufferFlags,
    "single-segment": bool(),
    sync: bool(),
    silent: bool(),
    "drop-allocation": bool(),
    "signal-handoffs": bool(),
    "ts-offset": int(-1_000_000_000, 1_000_000_000),
    qos: bool(),
    dump: readOnly,
    "last-message": readOnly,
    stats: readOnly,
    name: readOnly,
    parent: readOnly,
  },
  queue: {
    "max-size-buffers": int(0, 200, true),
    "max-size-bytes": int(0, 10_000_000, true),
    "max-size-time": int(0, 5_000_000_000, true),
    "min-threshold-buffers": int(0, 2, true),
    leaky: enumOf("no", "upstream", "downstream"),
    "flush-on-eos": bool(),
    silent: bool(),
    "current-level-buffers": readOnly,
    "current-level-bytes": readOnly,
    "current-level-time": readOnly,
    "min-threshold-bytes": readOnly,
    "min-threshold-time": readOnly,
    name: readOnly,
    parent: readOnly,
  },
  capsfilter: {
    caps,
    "caps-change-mode": enumOf("immediate", "delayed"),
    qos: bool(),
    name: readOnly,
    parent: readOnly,
  },
  fakesink: {
    sync: bool(),
    async: bool(),
    silent: bool(),
    qos: bool(),
    "enable-last-sample": bool(),
    "drop-out-of-segment": bool(),
    "signal-handoffs": bool(),
    "max-lateness": int(-1, 1_000_000_000),
    "throttle-time": int(0, 10_000_000, true),
    "render-delay": int(0, 10_000_000, true),
    "processing-deadline": int(0, 100_000_000, true),
    "ts-offset": int(-1_000_000_000, 1_000_000_000),
    "max-bitrate": int(0, 1_000_000_000, true),
    blocksize: int(0, 65536, true),
    "num-buffers": int(-1, 100),
    "state-error": enumOf(
      "none",
      "null-to-ready",
      "ready-to-paused",
      "paused-to-playing",
      "playing-to-paused",
      "paused-to-ready",
      "ready-to-null",
    ),
    dump: readOnly,
    "last-message": readOnly,
    "last-sample": readOnly,
    stats: readOnly,
    "can-activate-pull": readOnly,
    "can-activate-push": readOnly,
    name: readOnly,
    parent: readOnly,
  },
};
const elementTypes = Object.keys(elementProps) as ElementType[];
const settable = (type: ElementType) =>
  Object.entries(elementProps[type]).filter(([, prop]) => prop !== readOnly);

/** Source properties that keep a test source from running flat out forever: live, or a few buffers. */
const sourcePacing = fc.oneof(
  fc.record({ "is-live": fc.constantFrom<Json>(true, "true"), "do-timestamp": bool().valid }),
  fc.record({
    "is-live": fc.constantFrom<Json>(false, "false"),
    "num-buffers": int(1, 60).valid,
  }),
  fc.record({ "num-buffers": int(1, 60).valid }),
);

/** A subset of an element's settable properties, each valid or (with `nearMiss`) sometimes not. */
function propsOf(type: ElementType, nearMiss: boolean): fc.Arbitrary<JsonObject> {
  const entries = settable(type).map(([name, prop]) =>
    [
      name,
      nearMiss
        ? fc.oneof({ weight: 3, arbitrary: prop.valid }, { weight: 1, arbitrary: prop.nearMiss })
        : prop.valid,
    ] as const
  );
  return fc.subarray(entries, { maxLength: Math.min(4, entries.length) }).chain((chosen) =>
    fc.tuple(...chosen.map(([name, value]) => value.map((v) => [name, v] as const)))
  ).map((pairs) => {
    const object: JsonObject = {};
    for (const [name, value] of pairs) put(object, name, value);
    return object;
  });
}

/** How an element is named: by default (type + index), by `name`, or by `properties.name`; the name starts with the type. */
const naming = fc.constantFrom("default", "default", "field", "property");

function elementOf(
  type: ElementType,
  properties: JsonObject,
  how: string,
  index: number,
): JsonObject {
  const element: JsonObject = { type };
  const name = `${type}_${index}`;
  if (how === "field") element.name = name;
  if (how === "property") put(properties, "name", name);
  if (Object.keys(properties).length > 0) element.properties = properties;
  return element;
}

interface Chain {
  elements: JsonObject[];
  /** The element names the server gives them. */
  names: string[];
}

/** A linkable-looking chain: a paced source, up to three filters, a fakesink; its caps may not fit. */
const safeChain: fc.Arbitrary<Chain> = fc.tuple(
  fc.constantFrom<ElementType>("videotestsrc", "audiotestsrc").chain((source) =>
    fc.tuple(fc.constant(source), propsOf(source, false), sourcePacing, naming)
  ),
  fc.array(
    fc.constantFrom<ElementType>("identity", "queue", "capsfilter").chain((type) =>
      fc.tuple(fc.constant(type), propsOf(type, false), naming)
    ),
    { maxLength: 3 },
  ),
  fc.tuple(propsOf("fakesink", false), naming),
).map(([[source, props, pacing, sourceNaming], filters, [sinkProps, sinkNaming]]) => {
  // Pacing last: a random property must not undo it.
  for (const [key, value] of Object.entries(pacing)) put(props, key, value);
  const elements = [
    elementOf(source, props, sourceNaming, 0),
    ...filters.map(([type, p, how], i) => elementOf(type, p, how, i + 1)),
    elementOf("fakesink", sinkProps, sinkNaming, filters.length + 1),
  ];
  const names = elements.map((element, index) =>
    String(
      element.name ?? (element.properties as JsonObject | undefined)?.name ??
        `${element.type}${index}`,
    )
  );
  return { elements, names };
});

/** A property value in gst-launch syntax: bare when it can be, else double-quoted. */
function launchValue(value: Json): string {
  const text = String(value);
  return /^[^\s"'\\!]+$/.test(text) ? text : `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The chain as gst-launch text, `caps[i]` (when set) filtering the link after element i. */
function launchText({ elements }: Chain, caps: (string | null)[]): string {
  return elements.map((element, i) => {
    const link = i === 0 ? "" : caps[i - 1] ? ` ! ${caps[i - 1]} ! ` : " ! ";
    const name = element.name === undefined ? "" : ` name=${element.name}`;
    const properties = Object.entries((element.properties ?? {}) as JsonObject)
      .map(([key, value]) => ` ${key}=${launchValue(value)}`).join("");
    return `${link}${element.type}${name}${properties}`;
  }).join("");
}

/** The `pipeline` of a createPipeline: the element list, with explicit links, or launch text. */
const pipelineOf = fc.tuple(
  safeChain,
  fc.constantFrom("elements", "links", "launch"),
  // Caps on about one link in four.
  fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.oneof(videoCaps, audioCaps) },
    ),
    { minLength: 5, maxLength: 5 },
  ),
).map(([chain, form, caps]): Json => {
  if (form === "launch") return launchText(chain, caps);
  if (form === "elements") return { elements: chain.elements };
  const links = chain.names.slice(1).map((to, i): Json => ({
    from: chain.names[i],
    to,
    ...(caps[i] ? { caps: caps[i] } : {}),
  }));
  return { elements: chain.elements, links };
});

/** Element names a chain of `type` elements may have. */
const nameOf = (type: ElementType) =>
  fc.integer({ min: 0, max: 4 }).chain((index) =>
    fc.constantFrom(`${type}${index}`, `${type}_${index}`)
  );

// ---------------------------------------------------------------------------
// (b) requests from valid pieces, then mutated

const unknownType = fc.oneof(
  fc.constantFrom(
    "fakesnk",
    "videotestsource",
    "",
    " ",
    "FAKESINK",
    "fakesink ",
    "fakesink\u0000",
    "rtspserversink2",
    "__proto__",
    "constructor",
    "toString",
    "caf\u00e9",
  ),
  fc.string({ unit: "binary", maxLength: 30 }),
  longString,
);

/** An element of the six types, in any order and with any naming, or an unknown type. */
const anyElement: fc.Arbitrary<JsonObject> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(fc.constantFrom(...elementTypes), naming, fc.integer({ min: 0, max: 3 }))
      .chain(([type, how, index]) =>
        propsOf(type, true).map((props) => elementOf(type, props, how, index))
      ),
  },
  { weight: 1, arbitrary: unknownType.map((type): JsonObject => ({ type })) },
);

const description = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom("x".repeat(4096), "x".repeat(4097), "\u{1F600}".repeat(2048)),
);

const payloadId: fc.Arbitrary<Json> = fc.oneof(mutatedId, liveId, missingId, badId);
const stateChangeId: fc.Arbitrary<Json> = fc.oneof(liveId, missingId, badId);

/** Ends of a link: element names with and without pads, and names that are not there. */
const linkEnd: fc.Arbitrary<Json> = fc.oneof(
  fc.tuple(fc.constantFrom(...elementTypes), fc.integer({ min: 0, max: 4 })).map(([type, i]) =>
    `${type}${i}`
  ),
  fc.tuple(
    fc.constantFrom(...elementTypes),
    fc.integer({ min: 0, max: 4 }),
    fc.constantFrom("src", "sink", "src_0", "sink_%u", "video_0", "", "."),
  ).map(([type, i, pad]) => `${type}${i}.${pad}`),
  fc.constantFrom("", ".", "..", "a.b.c", "nonexistent", "nonexistent.src", " fakesink1"),
  stringArb,
);

/** gst-launch text: valid chains with characters edited, and text that only looks like it. */
const launchish: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: pipelineOf.filter((p) => typeof p === "string") },
  {
    weight: 4,
    arbitrary: fc.tuple(
      safeChain,
      fc.array(textEdit, { minLength: 1, maxLength: 3 }),
    ).map(([chain, edits]) => edited(launchText(chain, []), edits)),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "videotestsrc ! fakesink",
      "videotestsrc ! ! fakesink",
      "! fakesink",
      "videotestsrc !",
      "videotestsrc name=a a. ! fakesink",
      "videotestsrc name=t ! tee name=t",
      "tee name=t t. ! queue ! fakesink t. ! queue ! fakesink",
      "videotestsrc ! ( queue ! fakesink )",
      "videotestsrc ! video/x-raw,width=320 ! fakesink",
      'videotestsrc ! "video/x-raw, width=(int)320" ! fakesink',
      "videotestsrc pattern=ball pattern=snow ! fakesink",
      "videotestsrc num-buffers=\\ 3 ! fakesink",
      "videotestsrc ! fakesink sink_1::xpos=10",
      "file:///etc/passwd ! fakesink",
      "videotestsrc @preset=x ! fakesink",
      "videotestsrc # comment",
      "a.src_0,src_1 ! b.sink_0",
      "videotestsrc ! fakesink \\\n ",
      "'unterminated ! fakesink",
      "videotestsrc name= ! fakesink",
      "=x ! fakesink",
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: jsonishChar, maxLength: 60 }) },
  { weight: 1, arbitrary: stringArb },
);

const baseRequest: fc.Arbitrary<JsonObject> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant("createPipeline"),
      payload: fc.record({
        id: fc.oneof({ weight: 4, arbitrary: mutatedId }, { weight: 1, arbitrary: badId }),
        description,
        pipeline: fc.oneof(
          {
            weight: 4,
            arbitrary: fc.record({
              elements: fc.array(anyElement, { minLength: 1, maxLength: 5 }),
              links: fc.array(
                fc.record(
                  { from: linkEnd, to: linkEnd, caps: fc.oneof(caps.valid, caps.nearMiss) },
                  {
                    requiredKeys: ["from", "to"],
                  },
                ),
                { maxLength: 4 },
              ),
            }, { requiredKeys: ["elements"] }),
          },
          { weight: 2, arbitrary: pipelineOf },
          { weight: 3, arbitrary: launchish },
        ),
        restart: fc.oneof(fc.constantFrom("never", "on-failure", "always"), garbage),
      }, { requiredKeys: ["id", "pipeline"] }),
    }),
  },
  fc.record({
    type: fc.constantFrom("startPipeline", "pausePipeline", "stopPipeline", "sendEos"),
    payload: fc.record({ id: stateChangeId }),
  }),
  fc.record({
    type: fc.constantFrom("deletePipeline", "getPipeline", "getPipelineGraph"),
    payload: fc.record({ id: payloadId }),
  }),
  fc.record({
    type: fc.constant("seek"),
    payload: fc.record({
      id: stateChangeId,
      position: fc.oneof(fc.integer({ min: 0, max: 10_000 }), numberArb, garbage),
      rate: fc.oneof(fc.constantFrom(1, 2, 0.5, -1, 64, -64, 0, 65, -0), numberArb, garbage),
      flush: fc.oneof(fc.boolean(), garbage),
    }, { requiredKeys: ["id"] }),
  }),
  fc.record({ type: fc.constant("getPipelines") }),
  fc.record({ type: fc.constant("getPipelines"), payload: fc.constant({}) }),
  fc.record({
    type: fc.constant("listElements"),
    payload: fc.record({
      filter: fc.oneof(
        fc.constantFrom(
          "video",
          "sink",
          "",
          "testsrc",
          "\u{1F600}",
          "x".repeat(256),
          "x".repeat(257),
        ),
        stringArb,
      ),
    }, { requiredKeys: [] }),
  }),
  fc.record({
    type: fc.constant("inspectElement"),
    payload: fc.record({
      type: fc.oneof(fc.constantFrom<Json>(...elementTypes), unknownType, garbage),
    }),
  }),
  fc.record({
    type: fc.constant("subscribe"),
    payload: fc.record({
      events: fc.oneof(
        fc.subarray([...eventTypes]),
        fc.array(fc.oneof(fc.constantFrom<Json>(...eventTypes), stringArb), { maxLength: 4 }),
        garbage,
      ),
      pipelines: fc.oneof(fc.array(fc.oneof(liveId, missingId, badId), { maxLength: 4 }), garbage),
      statsIntervalMs: fc.oneof(fc.integer({ min: 100, max: 60000 }), numberArb, garbage),
    }, { requiredKeys: [] }),
  }),
  fc.tuple(fc.constantFrom(...elementTypes), payloadId).chain(([type, id]) =>
    fc.record({
      type: fc.constant("getElementProperty"),
      payload: fc.record({
        id: fc.constant(id),
        element: nameOf(type),
        property: fc.oneof(
          fc.constantFrom(...Object.keys(elementProps[type])),
          fc.constantFrom("nonexistent", "", "Name", "name\u0000", "__proto__"),
        ),
      }),
    })
  ),
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...elementTypes), fc.oneof(mutatedId, missingId)).chain((
      [type, id],
    ) =>
      fc.constantFrom(...Object.entries(elementProps[type])).chain(([property, prop]) =>
        fc.record({
          type: fc.constant("setElementProperty"),
          payload: fc.record({
            id: fc.constant(id),
            element: nameOf(type),
            property: fc.constant(property),
            value: fc.oneof(prop.valid, prop.nearMiss, garbage),
          }),
        })
      )
    ),
  },
  fc.record({
    type: fc.oneof(
      fc.constantFrom(
        "__proto__",
        "constructor",
        "toString",
        "hasOwnProperty",
        "valueOf",
        "CreatePipeline",
        "getPipelines ",
        "getPipelines\u0000",
        "",
      ),
      fc.string({ unit: "binary", maxLength: 20 }),
    ),
    payload: fc.record({ id: payloadId }),
  }),
).map((request) => {
  put(request, "requestId", TAG);
  return request;
});

type Mutation = {
  op: "remove" | "set" | "add" | "wrap" | "toArray" | "retype" | "duplicate" | "repeat";
  at: number;
  key: string;
  value: Json;
  count: number;
};

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom(
    "remove",
    "set",
    "set",
    "set",
    "add",
    "add",
    "wrap",
    "toArray",
    "retype",
    "duplicate",
    "repeat",
  ),
  at: fc.nat(),
  key: fc.oneof(
    fc.constantFrom(
      "type",
      "requestId",
      "payload",
      "id",
      "pipeline",
      "elements",
      "name",
      "properties",
      "description",
      "element",
      "property",
      "value",
      "restart",
      "links",
      "from",
      "to",
      "caps",
      "position",
      "rate",
      "flush",
      "filter",
      "events",
      "pipelines",
      "statsIntervalMs",
      "__proto__",
      "constructor",
      "",
      "\u{1F600}",
    ),
    fc.string({ maxLength: 10 }),
  ),
  value: garbage,
  count: fc.constantFrom(2, 3, 1000, 1001),
});

/** Every place in a message: [parent, key] pairs, the root as [null, null]. */
function places(root: Json): [Json[] | JsonObject | null, string | number | null][] {
  const found: [Json[] | JsonObject | null, string | number | null][] = [[null, null]];
  const stack: Json[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (Array.isArray(node)) {
      node.forEach((child, index) => {
        found.push([node, index]);
        stack.push(child);
      });
    } else if (isObject(node)) {
      for (const [key, child] of Object.entries(node)) {
        found.push([node, key]);
        stack.push(child);
      }
    }
  }
  return found;
}

function retyped(value: Json): Json {
  if (typeof value === "string") {
    return value.length > 0 && !isNaN(Number(value)) ? Number(value) : value.length;
  }
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return value ? 1 : "false";
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length > 0 ? value[0] : null;
  return JSON.stringify(value);
}

function mutate(message: Json, mutations: Mutation[]): Json {
  let root = structuredClone(message);
  for (const mutation of mutations) {
    const all = places(root);
    const [parent, key] = all[mutation.at % all.length];
    const current = parent === null ? root : (parent as Record<string | number, Json>)[key!];
    let replacement: Json | undefined = current;
    switch (mutation.op) {
      case "remove":
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else if (parent !== null) delete parent[key as string];
        continue;
      case "set":
        replacement = structuredClone(mutation.value);
        break;
      case "add":
        // Copies: generated constants ([] and {}) are shared between samples.
        if (isObject(current)) put(current, mutation.key, structuredClone(mutation.value));
        else if (Array.isArray(current)) current.push(structuredClone(mutation.value));
        continue;
      case "wrap":
        replacement = [current];
        break;
      case "toArray":
        replacement = isObject(current) ? Object.values(current) : { ...[current] };
        break;
      case "retype":
        replacement = retyped(current);
        break;
      case "duplicate":
        if (Array.isArray(current) && current.length > 0) {
          current.push(structuredClone(current[mutation.at % current.length]));
        }
        continue;
      case "repeat":
        // Up to 1001 copies of the first entry (over the 1000 elements limit), within a few MB.
        if (
          Array.isArray(current) && current.length > 0 &&
          serialise(current[0]).length * mutation.count < 4_000_000
        ) {
          const first = current[0];
          current.length = 0;
          for (let i = 0; i < mutation.count; i++) current.push(structuredClone(first));
        }
        continue;
    }
    if (parent === null) root = replacement;
    else if (Array.isArray(parent)) parent[key as number] = replacement;
    else put(parent, key as string, replacement);
  }
  return root;
}

/** The requestId a message gets in place of TAG: unique per message, in several forms (or none). */
const tagStyle = fc.constantFrom(
  "string",
  "string",
  "number",
  "number",
  "unicode",
  "long",
  "float",
  "big",
  "none",
);
let tagCounter = 0;

function tagged(message: Json, style: string): Json {
  if (!isObject(message) || message.requestId !== TAG) return message;
  const n = ++tagCounter;
  const tags: Record<string, Json> = {
    string: `fz-${n}`,
    number: n,
    unicode: `\u00e9\u{1F600}\u0000-${n}`,
    long: `${"r".repeat(300)}-${n}`,
    float: -(n + 0.25),
    big: n * 2 ** 70,
  };
  if (style === "none") delete message.requestId;
  else put(message, "requestId", tags[style]);
  return message;
}

// ---------------------------------------------------------------------------
// (c) real pipelines on random ids

type LifecycleOp = {
  op:
    | "create"
    | "start"
    | "pause"
    | "stop"
    | "delete"
    | "get"
    | "list"
    | "graph"
    | "getProperty"
    | "setProperty"
    | "sendEos"
    | "seek";
  id: string;
  pipeline: Json;
  restart: string | null;
  element: string;
  property: string;
  value: Json;
  seek: { position: number; rate: number; flush: boolean | null };
};

const lifecycleOp: fc.Arbitrary<LifecycleOp> = fc.record({
  op: fc.constantFrom<LifecycleOp["op"]>(
    "create",
    "create",
    "create",
    "start",
    "start",
    "start",
    "pause",
    "stop",
    "stop",
    "delete",
    "delete",
    "get",
    "list",
    "graph",
    "getProperty",
    "getProperty",
    "setProperty",
    "setProperty",
    "sendEos",
    "seek",
  ),
  id: fc.oneof({ weight: 6, arbitrary: liveId }, { weight: 1, arbitrary: missingId }),
  pipeline: pipelineOf,
  restart: fc.constantFrom(null, null, null, "never", "on-failure", "always"),
  target: fc.constantFrom(...elementTypes).chain((type) =>
    fc.tuple(
      nameOf(type),
      fc.constantFrom(...Object.keys(elementProps[type])),
      fc.oneof(
        ...settable(type).map(([name, prop]) => prop.valid.map((value) => [name, value] as const)),
      ),
    )
  ),
  seek: fc.record({
    position: fc.integer({ min: 0, max: 5000 }),
    rate: fc.constantFrom(1, 1, 2, 0.5, -1),
    flush: fc.option(fc.boolean()),
  }),
}).map(({ target: [element, readable, [settableName, value]], ...rest }) => ({
  ...rest,
  element,
  property: rest.op === "setProperty" ? settableName : readable,
  value,
}));

// ---------------------------------------------------------------------------
// (a) arbitrary text

const numberText = fc.constantFrom(
  "1e308",
  "-0",
  "1e999",
  "-1e999",
  "5e-324",
  "123456789012345678901234567890",
  "0.1e-400",
  "01",
  "1.",
  ".5",
  "-",
  "0x10",
  "NaN",
  "Infinity",
);

type RawMessage = string | Uint8Array;

const rawMessage: fc.Arbitrary<RawMessage> = fc.oneof(
  { weight: 9, arbitrary: fc.string({ unit: "binary", maxLength: 300 }) },
  { weight: 6, arbitrary: fc.string({ unit: "grapheme", maxLength: 100 }) },
  { weight: 9, arbitrary: fc.string({ unit: jsonishChar, maxLength: 200 }) },
  { weight: 12, arbitrary: fc.json({ depthSize: "medium" }) },
  {
    weight: 9,
    arbitrary: fc.anything({ withNullPrototype: true, maxDepth: 4 }).map((value) => {
      try {
        return JSON.stringify(value) ?? "undefined";
      } catch {
        return String(value);
      }
    }),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.constantFrom("array", "object", "mixed", "unclosed"),
      depthArb,
    ).map(([kind, depth]) => kind === "unclosed" ? "[".repeat(depth) : deepText(kind, depth)),
  },
  { weight: 3, arbitrary: numberText },
  {
    weight: 3,
    arbitrary: fc.tuple(numberText, fc.nat()).map(([number, n]) =>
      `{"type":"getPipelines","requestId":${number},"payload":{"n":${n}}}`
    ),
  },
  {
    // Valid requests with a few characters edited: often still JSON, often not quite.
    weight: 15,
    arbitrary: fc.tuple(baseRequest, tagStyle, fc.array(textEdit, { minLength: 1, maxLength: 3 }))
      .map(([request, style, edits]) => edited(serialise(tagged(request, style)), edits)),
  },
  {
    weight: 9,
    arbitrary: fc.record({
      type: fc.oneof(fc.constantFrom(...requestTypes), stringArb, garbage),
      requestId: garbage,
      payload: garbage,
    }, { requiredKeys: [] }).map((message) => serialise(message as Json)),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(
      fc.constantFrom("\uFEFF", " ", "\n\t", "\u00a0", "\u0000"),
      fc.constantFrom("", " ", "\u0000", "\n", "x"),
    ).map(([before, after]) => `${before}{"type":"getPipelines"}${after}`),
  },
  {
    // Just over and under the size limit.
    weight: 1,
    arbitrary: fc.integer({ min: -2, max: 2 }).map((delta) => {
      const text = '{"type":"getPipelines","requestId":"padded"}';
      return text + " ".repeat(MAX_MESSAGE_BYTES + delta - text.length);
    }),
  },
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 200 }) },
);

// ---------------------------------------------------------------------------
// The connection: exactly one reply per message, each checked

interface Outgoing {
  /** Where the message came from, to find it again: phase and index in the sample. */
  origin: string;
  data: RawMessage;
  /** Extra checks for a valid request (the lifecycle phase). */
  check?: (reply: Record<string, unknown>) => string | undefined;
  /** For the budget: state changes may wait on GStreamer. */
  stateChange?: boolean;
}

interface Expected {
  request: string | null;
  requestId: string | number | null;
  /** payload.id, when it is a string: the pipeline whose history a failure shows. */
  pipeline?: string;
}

/** What the server must echo, found the way docs/protocol.md says it reads a message. */
function expectedEcho(data: RawMessage): Expected {
  const none = { request: null, requestId: null };
  if (typeof data !== "string") return none;
  const bytes = encoder.encode(data);
  if (bytes.length > MAX_MESSAGE_BYTES) return none;
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch {
    return none;
  }
  if (!isObject(json)) return none;
  const id = json.requestId;
  const pipeline = isObject(json.payload) ? json.payload.id : undefined;
  return {
    request: typeof json.type === "string" ? json.type : null,
    requestId: typeof id === "string" || (typeof id === "number" && Number.isFinite(id))
      ? JSON.parse(JSON.stringify(id))
      : null,
    ...(typeof pipeline === "string" ? { pipeline } : {}),
  };
}

function keyOf(requestId: unknown): string {
  if (requestId === null) return "null";
  return typeof requestId === "number" ? `n:${requestId}` : `s:${requestId}`;
}

function sizeOf(data: RawMessage): number {
  return typeof data === "string" ? encoder.encode(data).length : data.length;
}

function shown(data: RawMessage, limit = 1500): string {
  if (typeof data !== "string") return `binary frame [${data.join(",")}]`;
  const text = JSON.stringify(data);
  return text.length <= limit
    ? text
    : `${text.slice(0, limit)}... (${data.length} characters, ${sizeOf(data)} bytes)`;
}

const knownCodes = new Set<string>(errorCodes);
const knownEvents = new Set<string>(eventTypes);

/** What is wrong with a reply, or undefined: the shape of docs/protocol.md, a known code, the echo. */
function replyProblem(reply: Record<string, unknown>, expected: Expected): string | undefined {
  const keys = Object.keys(reply).sort().join(",");
  if (!Object.is(reply.requestId, expected.requestId)) {
    return `requestId ${JSON.stringify(reply.requestId)} instead of ${
      JSON.stringify(expected.requestId)
    }`;
  }
  if (reply.type === "result") {
    if (keys !== "ok,payload,request,requestId,type") return `a result with keys ${keys}`;
    if (reply.ok !== true) return "a result without ok: true";
    if (reply.request !== expected.request) {
      return `request ${JSON.stringify(reply.request)}, expected ${
        JSON.stringify(expected.request)
      }`;
    }
    if (!isObject(reply.payload)) return "a result whose payload is not an object";
    return undefined;
  }
  if (keys !== "error,ok,request,requestId,type") return `an error with keys ${keys}`;
  if (reply.ok !== false) return "an error without ok: false";
  if (reply.request !== expected.request) {
    return `request ${JSON.stringify(reply.request)}, expected ${JSON.stringify(expected.request)}`;
  }
  const error = reply.error;
  if (!isObject(error)) return "error is not an object";
  const errorKeys = Object.keys(error).sort().join(",");
  if (errorKeys !== "code,message" && errorKeys !== "code,details,message") {
    return `error with keys ${errorKeys}`;
  }
  if (typeof error.code !== "string" || !knownCodes.has(error.code)) {
    return `unknown error code ${JSON.stringify(error.code)}`;
  }
  if (error.code === "INTERNAL") return "INTERNAL: an unexpected exception in the server";
  if (typeof error.message !== "string" || error.message.length === 0) {
    return "an error without a message";
  }
  if ("details" in error && !isObject(error.details)) return "details that are not an object";
  return undefined;
}

interface Pending {
  outgoing: Outgoing;
  expected: Expected;
  timer: ReturnType<typeof setTimeout>;
  big: boolean;
  /**
   * How long its reply may take: longer for a state change, or a request sent while one on the
   * same pipeline id was in flight (the server runs a request on a pipeline being deleted after
   * that delete, which waits for GStreamer), and the more so the more of them are ahead of it.
   */
  budgetMs: number;
  /** Its line in the history of its pipeline id, completed with the outcome. */
  history?: HistoryLine;
  /** The lines of the requests sent before it for the same id. */
  before?: HistoryLine[];
}

type HistoryLine = { text: string; outcome: string };

class FuzzSocket {
  readonly #socket: WebSocket;
  readonly #pending = new Map<string, Pending>();
  /** The last requests sent for each pipeline id, with their outcome, to show with a failure. */
  readonly #history = new Map<string, HistoryLine[]>();
  #changed = Promise.withResolvers<void>();
  #bigInFlight = false;
  failure: Error | undefined;
  replies = 0;
  events = 0;
  readonly codes = new Map<string, number>();
  readonly closed: Promise<CloseEvent>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    socket.addEventListener("message", (event) => this.#receive(event.data));
    this.closed.then((event) => {
      this.#fail(`the server closed the connection (${event.code} ${event.reason})`);
    });
  }

  static async connect(url: string): Promise<FuzzSocket> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve, { once: true });
      socket.addEventListener("error", () => reject(new Error(`Could not connect to ${url}`)), {
        once: true,
      });
    });
    return new FuzzSocket(socket);
  }

  #fail(problem: string, pending?: Pending): void {
    if (this.failure) return;
    const culprit = pending
      ? `\n  message (${pending.outgoing.origin}): ${shown(pending.outgoing.data)}`
      : "";
    const inFlight = [...this.#pending.values()]
      .filter((p) => p !== pending)
      .sort((a, b) => sizeOf(b.outgoing.data) - sizeOf(a.outgoing.data))
      .slice(0, 3)
      .map((p) => `\n  in flight (${p.outgoing.origin}): ${shown(p.outgoing.data, 300)}`)
      .join("");
    const history = (pending?.before ?? [])
      .map(({ text, outcome }) => `\n    ${text} -> ${outcome}`).join("");
    const before = history
      ? `\n  sent before it, for id '${pending?.expected.pipeline}':${history}`
      : "";
    this.failure = new Error(`${problem}${culprit}${before}${inFlight}`);
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#notify();
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") return this.#fail("a binary frame from the server");
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return this.#fail(`a frame that is not JSON: ${shown(data, 300)}`);
    }
    if (!isObject(message) || typeof message.type !== "string") {
      return this.#fail(`a message without a type: ${shown(data, 300)}`);
    }
    if (message.type !== "result" && message.type !== "error") {
      this.events++;
      // Every event but stats names the node it happened on.
      const keys = message.type === "stats" ? "payload,type" : "node,payload,type";
      if (
        Object.keys(message).sort().join(",") !== keys ||
        (message.type !== "stats" && typeof message.node !== "string") ||
        !knownEvents.has(message.type)
      ) {
        return this.#fail(`an event of another shape or type: ${shown(data, 300)}`);
      }
      return;
    }
    const id = message.requestId;
    if (id !== null && typeof id !== "string" && typeof id !== "number") {
      return this.#fail(`a reply with requestId ${JSON.stringify(id)}`);
    }
    const key = keyOf(id);
    const pending = this.#pending.get(key);
    if (!pending) {
      return this.#fail(`a reply that answers nothing in flight: ${shown(data, 600)}`);
    }
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    if (pending.big) this.#bigInFlight = false;
    this.replies++;
    const code = message.type === "error" && isObject(message.error)
      ? String(message.error.code)
      : "ok";
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
    if (pending.history) {
      const state = isObject(message.payload) && typeof message.payload.state === "string"
        ? ` ${message.payload.state}`
        : "";
      pending.history.outcome = `${code}${state}`;
    }
    // No time limit on a reply that came: only the no-reply timer below fails a silent server.
    const problem = replyProblem(message, pending.expected) ?? pending.outgoing.check?.(message);
    if (problem) return this.#fail(`${problem}\n  reply: ${shown(data, 1000)}`, pending);
    this.#notify();
  }

  /**
   * Sends one message once no other message in flight expects the same requestId (so that each
   * reply tells which message it answers), and no other big one is in flight; resolves on its reply.
   */
  async #exchange(outgoing: Outgoing, expected: Expected): Promise<void> {
    const key = keyOf(expected.requestId);
    const big = sizeOf(outgoing.data) > BIG_BYTES;
    while (!this.failure && (this.#pending.has(key) || (big && this.#bigInFlight))) {
      await this.#changed.promise;
    }
    if (this.failure) return;
    const stateChangesAhead = expected.pipeline === undefined ? 0 : [...this.#pending.values()]
      .filter((p) => p.outgoing.stateChange && p.expected.pipeline === expected.pipeline).length;
    const budgetMs = outgoing.stateChange || stateChangesAhead > 0
      ? STATE_CHANGE_BUDGET_MS + stateChangesAhead * QUEUED_STATE_CHANGE_MS
      : REPLY_BUDGET_MS;
    const pending: Pending = {
      outgoing,
      expected,
      big,
      budgetMs,
      timer: setTimeout(() => {
        this.#fail(
          `no reply within ${budgetMs + 5000} ms (expected requestId ${
            JSON.stringify(expected.requestId)
          })`,
          pending,
        );
      }, budgetMs + 5000),
    };
    this.#pending.set(key, pending);
    if (expected.pipeline !== undefined) {
      // The last requests sent for each pipeline id, to show with a failure.
      const lines = this.#history.get(expected.pipeline) ?? [];
      pending.before = lines.slice(-6);
      pending.history = { text: shown(outgoing.data, 300), outcome: "(no reply yet)" };
      this.#history.set(expected.pipeline, [...pending.before, pending.history]);
    }
    if (big) this.#bigInFlight = true;
    this.#socket.send(outgoing.data);
    while (!this.failure && this.#pending.get(key) === pending) await this.#changed.promise;
  }

  /**
   * Runs the messages, up to `concurrency` in flight; throws the first failure. Those answered with
   * requestId null can only go one at a time: they have a worker of their own, in order, so that
   * waiting for one another does not hold up the others.
   */
  async run(messages: Outgoing[], concurrency: number): Promise<void> {
    const lanes: [Outgoing, Expected][][] = [[], []];
    for (const message of messages) {
      const expected = expectedEcho(message.data);
      lanes[expected.requestId === null ? 0 : 1].push([message, expected]);
    }
    const next = [0, 0];
    const worker = async (lane: number) => {
      while (next[lane] < lanes[lane].length && !this.failure) {
        await this.#exchange(...lanes[lane][next[lane]++]);
      }
    };
    await Promise.all([
      worker(0),
      ...Array.from({ length: concurrency - 1 }, () => worker(1)),
    ]);
    if (this.failure) throw this.failure;
  }

  get open(): boolean {
    return this.#socket.readyState === WebSocket.OPEN;
  }

  async close(): Promise<void> {
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    if (this.#socket.readyState !== WebSocket.CLOSED) {
      this.failure ??= new Error("closed by the test");
      this.#socket.close();
      await this.closed;
    }
  }
}

// ---------------------------------------------------------------------------
// Turning samples into messages

function mutatedMessage(
  [request, mutations, style]: [JsonObject, Mutation[], string],
  origin: string,
): Outgoing {
  return { origin, data: serialise(tagged(mutate(request, mutations), style)) };
}

/** The errors a valid request on a real pipeline may get (it may not exist, or not be in the state). */
const allowedCodes: Record<LifecycleOp["op"], string[]> = {
  create: ["DUPLICATE_ID", "LINK_FAILED"],
  start: ["PIPELINE_NOT_FOUND", "STATE_CHANGE_FAILED"],
  pause: ["PIPELINE_NOT_FOUND", "STATE_CHANGE_FAILED"],
  // fakesink state-error can make any state change fail, NULL included.
  stop: ["PIPELINE_NOT_FOUND", "STATE_CHANGE_FAILED"],
  delete: ["PIPELINE_NOT_FOUND"],
  get: ["PIPELINE_NOT_FOUND"],
  list: [],
  graph: ["PIPELINE_NOT_FOUND"],
  getProperty: ["PIPELINE_NOT_FOUND", "ELEMENT_NOT_FOUND"],
  setProperty: ["PIPELINE_NOT_FOUND", "ELEMENT_NOT_FOUND"],
  sendEos: ["PIPELINE_NOT_FOUND", "INVALID_STATE"],
  seek: ["PIPELINE_NOT_FOUND", "INVALID_STATE", "SEEK_FAILED"],
};

const lifecycleTypes: Record<LifecycleOp["op"], string> = {
  create: "createPipeline",
  start: "startPipeline",
  pause: "pausePipeline",
  stop: "stopPipeline",
  delete: "deletePipeline",
  get: "getPipeline",
  list: "getPipelines",
  graph: "getPipelineGraph",
  getProperty: "getElementProperty",
  setProperty: "setElementProperty",
  sendEos: "sendEos",
  seek: "seek",
};

function lifecyclePayload(op: LifecycleOp): JsonObject | undefined {
  const { id } = op;
  switch (op.op) {
    case "create":
      return { id, pipeline: op.pipeline, ...(op.restart ? { restart: op.restart } : {}) };
    case "list":
      return undefined;
    case "getProperty":
      return { id, element: op.element, property: op.property };
    case "setProperty":
      return { id, element: op.element, property: op.property, value: op.value };
    case "seek": {
      const { position, rate, flush } = op.seek;
      return { id, position, rate, ...(flush === null ? {} : { flush }) };
    }
    default:
      return { id };
  }
}

/** What a successful reply to a valid request must say, beyond the shape. */
function resultProblem(op: LifecycleOp, result: JsonObject): string | undefined {
  if (op.op === "list") return Array.isArray(result.pipelines) ? undefined : "no pipelines list";
  if (result.id !== op.id) return `payload.id ${JSON.stringify(result.id)} instead of '${op.id}'`;
  if (op.op === "create" && result.state !== "NULL") return "a new pipeline not in NULL";
  if (op.op === "stop" && result.state !== "NULL") return "a stopped pipeline not in NULL";
  if (["start", "pause", "get"].includes(op.op) && !stateNames.includes(result.state as string)) {
    return `state ${JSON.stringify(result.state)}`;
  }
  if (op.op === "graph" && typeof result.dot !== "string") return "no dot graph";
  if (op.op.endsWith("Property") && !("value" in result)) return "no value read back";
  return undefined;
}

let lifecycleCounter = 0;

function lifecycleMessage(op: LifecycleOp, origin: string): Outgoing {
  const n = ++lifecycleCounter;
  const requestId = n % 2 === 0 ? `life-${n}` : 1e9 + n;
  const type = lifecycleTypes[op.op];
  const payload = lifecyclePayload(op);
  const check = (reply: Record<string, unknown>): string | undefined => {
    if (reply.ok === true) return resultProblem(op, reply.payload as JsonObject);
    const error = reply.error as JsonObject;
    const code = error.code as string;
    // Any request that waits on the pipeline's state may be refused while an earlier sendEos or
    // seek is still untaken by GStreamer (its data not flowing); the refusal names it.
    const untaken = code === "INVALID_STATE" && isObject(error.details) &&
      typeof error.details.untaken === "string";
    return allowedCodes[op.op].includes(code) || untaken
      ? undefined
      : `${code} for a valid ${type} (allowed: ${allowedCodes[op.op].join(", ") || "none"})`;
  };
  return {
    origin,
    data: JSON.stringify({ type, requestId, ...(payload ? { payload } : {}) }),
    check,
    stateChange: ["start", "pause", "stop", "delete", "sendEos", "seek"].includes(op.op),
  };
}

// ---------------------------------------------------------------------------

const server = await startServer({ GSTREAMER_MAX_REQUESTS_PER_SECOND: "0" });
const fuzz = await FuzzSocket.connect(server.url);
const client = await TestClient.connect(server.url);

/** Set once the server process ends (a crash shows as 139, SIGSEGV). */
let serverExit: number | undefined;
server.exited.then((code) => serverExit = code);

Deno.test.afterAll(async () => {
  await fuzz.close();
  await client.close();
  // A crash was reported by the step that saw the connection go.
  if (serverExit !== undefined) return;
  // A server stuck on a request may not finish its shutdown: it is killed then, and that fails.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<"stuck">((resolve) =>
    timer = setTimeout(() => resolve("stuck"), 15_000)
  );
  const code = await Promise.race([server.stop(), stuck]);
  clearTimeout(timer);
  if (code === "stuck") {
    Deno.kill(server.pid, "SIGKILL");
    await server.exited;
  }
  assert.equal(code, 0, "server exits 0 on SIGTERM (within 15 s)");
});

Deno.test("fuzzing the protocol: every message gets one well-formed reply, the server keeps working", async (t) => {
  console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} replays this run)`);
  const started = performance.now();
  const reproduce = async (error: unknown): Promise<never> => {
    const text = error instanceof Error ? error.message : String(error);
    if (!fuzz.open) {
      // The connection went away: give a crashed server's exit code a moment to arrive.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        server.exited,
        new Promise((resolve) => timer = setTimeout(resolve, 2000)),
      ]);
      clearTimeout(timer);
    }
    const start = server.logs.findIndex((line) => line.includes("failed unexpectedly"));
    const cause = serverExit !== undefined
      ? `\n  the server exited with ${serverExit}; its log ends:\n${
        server.logs.slice(-15).join("\n")
      }`
      : start < 0
      ? ""
      : `\n  server log:\n${server.logs.slice(start, start + 6).join("\n")}`;
    throw new Error(`${text}${cause}\n  seed: FUZZ_SEED=${SEED} deno test -A test/fuzz_test.ts`);
  };
  let sent = 0;

  const rawDone = await t.step("(a) arbitrary text, JSON and binary frames", async () => {
    const messages = fc.sample(rawMessage, { seed: SEED, numRuns: RAW_MESSAGES })
      .map((data, i): Outgoing => ({ origin: `raw #${i}`, data }));
    await fuzz.run(messages, CONCURRENCY).catch(reproduce);
    sent += messages.length;
  });

  if (!rawDone) return;
  const mixedDone = await t.step(
    "(b) mutated requests interleaved with (c) real pipelines on random ids",
    async () => {
      const mixed = fc.sample(
        fc.oneof(
          {
            weight: 2,
            arbitrary: fc.tuple(
              baseRequest,
              fc.array(mutationArb, { maxLength: 4 }),
              tagStyle,
            ).map((sample) => ({ mutated: sample })),
          },
          { weight: 1, arbitrary: lifecycleOp.map((op) => ({ lifecycle: op })) },
        ),
        { seed: SEED + 1, numRuns: MIXED_MESSAGES },
      );
      const messages = mixed.map((item, i) =>
        "mutated" in item
          ? mutatedMessage(item.mutated, `mutated #${i}`)
          : lifecycleMessage(item.lifecycle, `lifecycle #${i}`)
      );
      const lifecycle = mixed.filter((item) => "lifecycle" in item).length;
      assert.ok(lifecycle >= 2000, `only ${lifecycle} real pipeline requests`);
      await fuzz.run(messages, CONCURRENCY).catch(reproduce);
      sent += messages.length;
    },
  );

  if (!mixedDone) return;
  await t.step(
    "every message was answered once; the server still lists, deletes and runs pipelines",
    async () => {
      assert.equal(fuzz.failure, undefined);
      assert.equal(fuzz.replies, sent, "one reply per message");
      assert.ok(sent >= MIN_MESSAGES, `only ${sent} messages`);
      assert.ok(fuzz.open, "the fuzzing connection is still open");

      const listed = expectOk(await client.request("getPipelines"));
      for (const { id } of listed.payload.pipelines as { id: string }[]) {
        expectOk(await client.request("deletePipeline", { id }));
      }
      assert.deepEqual(expectOk(await client.request("getPipelines")).payload.pipelines, []);

      const id = `after-fuzz-${SEED}`;
      expectOk(
        await client.request("createPipeline", {
          id,
          pipeline: {
            elements: [
              { type: "videotestsrc", properties: { "num-buffers": 30 } },
              { type: "fakesink" },
            ],
          },
        }),
      );
      expectOk(await client.request("startPipeline", { id }));
      await client.event("pipelineEos", (p) => p.id === id);
      expectOk(await client.request("deletePipeline", { id }));

      const unexpected = server.logs.filter((line) =>
        /Request '.*' failed unexpectedly/.test(line)
      );
      assert.deepEqual(unexpected, [], "no unexpected exception in the server log");
      // Not failed on (GStreamer's own assertions, reported separately), but shown.
      const criticals = new Map<string, number>();
      server.logs.forEach((line, i) => {
        if (!line.includes("-CRITICAL **")) return;
        // The text follows on the same line, or (longer ones) on the next; numbers vary.
        const text = (line.replace(/^.*?CRITICAL \*\*: [\d:.]+: ?/, "") || server.logs[i + 1])
          .replace(/element \S+,/, "element X,");
        criticals.set(text, (criticals.get(text) ?? 0) + 1);
      });
      if (criticals.size > 0) {
        const shownCriticals = [...criticals].map(([text, n]) => `${n}x ${text}`).join("; ");
        console.log(`GStreamer CRITICAL lines in the server log: ${shownCriticals}`);
      }
      assert.equal(fuzz.failure, undefined, "no stray reply on the fuzzing connection");

      const codes = [...fuzz.codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`);
      console.log(
        `${sent} messages (${RAW_MESSAGES} raw, ${MIXED_MESSAGES} mutated or real), ` +
          `${fuzz.events} events, ${Math.round(performance.now() - started)} ms; ` +
          `replies: ${codes.join(", ")}`,
      );
    },
  );
});
