/**
 * Setting and reading GObject properties from JSON with the property's real
 * GType. Conversion goes through GStreamer's own deserialiser
 * (gst_value_deserialize, the one gst-launch uses) and the range check
 * through the GParamSpec (g_param_value_validate), so every type GStreamer
 * knows works the same way it does on the command line.
 */
import { capsTextProblem, valueTextProblem } from "./caps_text.ts";
import { GstError } from "./errors.ts";
import {
  enumValues,
  Fundamental,
  fundamentalOf,
  GValue,
  jsonNumber,
  type JsonValue,
  readGValue,
  typeName,
} from "./gvalue.ts";
import { classOf, Layout, readPointer, readString, readU32, readU64 } from "./layout.ts";
import { cstr, lib, type Pointer } from "./native.ts";
import { closestNames } from "./registry.ts";

/** GParamFlags (gparam.h) and GStreamer's user flags (gstparamspecs.h, G_PARAM_USER_SHIFT = 8). */
export const ParamFlag = {
  READABLE: 1 << 0,
  WRITABLE: 1 << 1,
  CONSTRUCT: 1 << 2,
  CONSTRUCT_ONLY: 1 << 3,
  LAX_VALIDATION: 1 << 4,
  EXPLICIT_NOTIFY: 1 << 30,
  DEPRECATED: 2 ** 31,
  GST_CONTROLLABLE: 1 << 9,
  GST_MUTABLE_READY: 1 << 10,
  GST_MUTABLE_PAUSED: 1 << 11,
  GST_MUTABLE_PLAYING: 1 << 12,
  GST_DOC_SHOW_DEFAULT: 1 << 13,
  GST_CONDITIONALLY_AVAILABLE: 1 << 14,
} as const;

export interface ParamSpec {
  pointer: Pointer;
  name: string;
  flags: number;
  valueType: bigint;
  ownerType: bigint;
}

function readParamSpec(pointer: Pointer): ParamSpec {
  const fields = Layout.GParamSpec;
  return {
    pointer,
    name: readString(pointer, fields.name) ?? "",
    flags: readU32(pointer, fields.flags),
    valueType: readU64(pointer, fields.valueType),
    ownerType: readU64(pointer, fields.ownerType),
  };
}

/**
 * The properties found so far, by class and name. Every request that reads or sets a property
 * looks one up, and reading a spec is several calls into native memory. A class's specs live as
 * long as the class, and GStreamer's element classes (static types) are never freed. Only specs
 * found are kept: names that do not exist come from clients and would grow the cache.
 */
const foundProperties = new Map<number | bigint, Map<string, Readonly<ParamSpec>>>();

export function findProperty(object: Pointer, name: string): Readonly<ParamSpec> | null {
  // C would read the name only up to a NUL in it: a property other than the one a policy judged.
  if (name.includes("\0")) return null;
  const klass = classOf(object);
  const classKey = Deno.UnsafePointer.value(klass);
  const found = foundProperties.get(classKey)?.get(name);
  if (found) return found;
  const pointer = lib().gobject.g_object_class_find_property(klass, cstr(name));
  if (pointer === null) return null;
  const spec = Object.freeze(readParamSpec(pointer));
  let ofClass = foundProperties.get(classKey);
  if (!ofClass) foundProperties.set(classKey, ofClass = new Map());
  ofClass.set(name, spec);
  return spec;
}

export function listProperties(object: Pointer): ParamSpec[] {
  return listClassProperties(classOf(object));
}

/**
 * Every property of a GObjectClass. Overrides (GParamSpecOverride, from
 * g_object_class_override_property) are followed to the spec they redirect
 * to, as g_object_class_find_property does, so the typed fields are real.
 */
export function listClassProperties(klass: Pointer): ParamSpec[] {
  const g = lib();
  const count = new Uint32Array(1);
  const array = g.gobject.g_object_class_list_properties(klass, count);
  if (array === null) return [];
  const specs: ParamSpec[] = [];
  for (let i = 0; i < count[0]; i++) {
    const pointer = readPointer(array, i * 8)!; // a C array of GParamSpec pointers
    specs.push(readParamSpec(g.gobject.g_param_spec_get_redirect_target(pointer) ?? pointer));
  }
  g.glib.g_free(array);
  return specs;
}

type NumericRange = {
  read: (view: Deno.UnsafePointerView, offset: number) => number | bigint;
  size: number;
  noun: string;
};

const integer = (read: NumericRange["read"], size: number): NumericRange => ({
  read,
  size,
  noun: "an integer",
});

const numericRanges = new Map<bigint, NumericRange>([
  [Fundamental.CHAR, integer((v, o) => v.getInt8(o), 1)],
  [Fundamental.UCHAR, integer((v, o) => v.getUint8(o), 1)],
  [Fundamental.INT, integer((v, o) => v.getInt32(o), 4)],
  [Fundamental.UINT, integer((v, o) => v.getUint32(o), 4)],
  [Fundamental.LONG, integer((v, o) => v.getBigInt64(o), 8)],
  [Fundamental.INT64, integer((v, o) => v.getBigInt64(o), 8)],
  [Fundamental.ULONG, integer((v, o) => v.getBigUint64(o), 8)],
  [Fundamental.UINT64, integer((v, o) => v.getBigUint64(o), 8)],
  [Fundamental.FLOAT, { read: (v, o) => v.getFloat32(o), size: 4, noun: "a number" }],
  [Fundamental.DOUBLE, { read: (v, o) => v.getFloat64(o), size: 8, noun: "a number" }],
]);

/** GST_CLOCK_TIME_NONE: the largest uint64. */
const CLOCK_TIME_NONE = 2n ** 64n - 1n;
/** The longest latency taken: a quarter of the clock's range, so that sums of several do not wrap. */
const LONGEST_LATENCY = 2n ** 62n - 1n;

/** A uint64 property's default (GParamSpecUInt64 keeps it after its minimum and maximum). */
function uint64Default(spec: ParamSpec): bigint {
  return new Deno.UnsafePointerView(spec.pointer).getBigUint64(
    Layout.GParamSpec.numericMinimum + 16,
  );
}

function isIntegerType(fundamental: bigint): boolean {
  return numericRanges.get(fundamental)?.noun === "an integer";
}

/** What a property accepts, for error messages and introspection. */
export function describeExpected(spec: ParamSpec): {
  type: string;
  expected: string;
  minimum?: number | string;
  maximum?: number | string;
  values?: string[];
} {
  const type = typeName(spec.valueType);
  const numeric = numericRanges.get(fundamentalOf(spec.valueType));
  if (numeric) {
    // Numeric GParamSpec subclasses keep minimum and maximum right after the GParamSpec.
    const view = new Deno.UnsafePointerView(spec.pointer);
    const at = Layout.GParamSpec.numericMinimum;
    const minimum = jsonNumber(numeric.read(view, at));
    const maximum = jsonNumber(numeric.read(view, at + numeric.size));
    return { type, minimum, maximum, expected: `${numeric.noun} from ${minimum} to ${maximum}` };
  }
  switch (fundamentalOf(spec.valueType)) {
    case Fundamental.BOOLEAN:
      return { type, expected: "a boolean (true or false)" };
    case Fundamental.STRING:
      return { type, expected: "a string" };
    case Fundamental.ENUM: {
      const values = enumValues(spec.valueType).map((v) => v.nick);
      return {
        type,
        values,
        expected: `one of ${values.join(", ")} (or its number)`,
      };
    }
    case Fundamental.FLAGS: {
      const values = enumValues(spec.valueType).map((v) => v.nick);
      return {
        type,
        values,
        expected: `flags from ${values.join(", ")} joined by '+' (or a number)`,
      };
    }
    default:
      if (type === "GstCaps") {
        return { type, expected: 'caps such as "video/x-raw,width=320"' };
      }
      if (type === "GstFraction") {
        return { type, expected: 'a fraction such as "30/1"' };
      }
      return { type, expected: `a value of type ${type} in GStreamer syntax` };
  }
}

export interface PropertyTarget {
  object: Pointer;
  /** The element's name as the user knows it, for messages. */
  label: string;
}

/** Finds a property or throws UNKNOWN_PROPERTY with the closest names and all that exist. */
export function requireProperty(target: PropertyTarget, name: string): ParamSpec {
  const spec = findProperty(target.object, name);
  if (spec !== null) return spec;
  const known = listProperties(target.object).map((s) => s.name).sort();
  const suggestions = closestNames(name, known);
  throw new GstError(
    "UNKNOWN_PROPERTY",
    `Element '${target.label}' has no property '${name}'; closest: ${suggestions.join(", ")}; ` +
      `it has: ${known.join(", ")}`,
    { element: target.label, property: name, suggestions, properties: known },
  );
}

/** Sets `name` on the object from a JSON value, checking type and range. */
export function setProperty(
  target: PropertyTarget,
  name: string,
  value: JsonValue,
): void {
  const spec = requireProperty(target, name);
  const gvalue = convertProperty(target, spec, value, "now");
  try {
    lib().gobject.g_object_set_property(target.object, cstr(name), gvalue.buffer);
  } finally {
    gvalue.unset();
  }
}

/** Whether the property can only be given when the object is made. */
export function isConstructOnly(target: PropertyTarget, name: string): boolean {
  const spec = findProperty(target.object, name);
  return spec !== null && (spec.flags & ParamFlag.CONSTRUCT_ONLY) !== 0;
}

/**
 * A JSON value converted for the property `spec` of `target`, checked for type and range:
 * to set now, or to give when an object of the same type is made ("construct"). The
 * caller unsets the GValue.
 */
export function convertProperty(
  target: PropertyTarget,
  spec: ParamSpec,
  value: JsonValue,
  when: "now" | "construct",
): GValue {
  const name = spec.name;
  const invalid = (reason: string): GstError => {
    const expected = describeExpected(spec);
    return new GstError(
      "INVALID_PROPERTY_VALUE",
      `Invalid value ${
        JSON.stringify(value)
      } for property '${name}' of element '${target.label}': ${reason}; expected ${expected.expected}`,
      { element: target.label, property: name, value, ...expected },
    );
  };
  if ((spec.flags & ParamFlag.WRITABLE) === 0) {
    throw invalid("the property is read-only");
  }
  if (when === "now" && (spec.flags & ParamFlag.CONSTRUCT_ONLY) !== 0) {
    throw invalid("the property can only be set when the element is made");
  }
  // C would read the text only up to a NUL: a value other than the one asked for (and reported).
  if (holdsNul(value)) {
    throw invalid("it holds a NUL character (\\u0000), where C text ends");
  }
  const g = lib();
  const gvalue = new GValue(spec.valueType);
  let converted = false;
  try {
    const fundamental = fundamentalOf(spec.valueType);
    if (fundamental === Fundamental.STRING) {
      if (typeof value !== "string") throw invalid("not a string");
      g.gobject.g_value_set_string(gvalue.buffer, cstr(value));
    } else if (fundamental === Fundamental.BOOLEAN) {
      const flag = typeof value === "boolean"
        ? value
        : value === "true"
        ? true
        : value === "false"
        ? false
        : undefined;
      if (flag === undefined) throw invalid("not a boolean");
      g.gobject.g_value_set_boolean(gvalue.buffer, flag ? 1 : 0);
    } else if (
      fundamental === Fundamental.OBJECT ||
      fundamental === Fundamental.POINTER ||
      fundamental === Fundamental.PARAM
    ) {
      throw invalid("this property holds an object and cannot be set from JSON");
    } else {
      const text = serialisedForm(value, fundamental);
      if (text === undefined) throw invalid(`a ${jsonKind(value)} cannot be converted`);
      if (isIntegerType(fundamental)) {
        // Checked here in full precision: the deserialiser wraps negative numbers into unsigned types.
        const { minimum, maximum } = describeExpected(spec);
        const number = BigInt(text);
        if (number < BigInt(minimum!) || number > BigInt(maximum!)) {
          throw invalid("it is out of range");
        }
        if (
          fundamental === Fundamental.UINT64 && number > LONGEST_LATENCY &&
          /latency|delay/.test(spec.name) && uint64Default(spec) !== CLOCK_TIME_NONE
        ) {
          // basesink's render-delay and aggregator's latency setters assert a valid time, and
          // GStreamer adds latencies up: a sum that wraps to GST_CLOCK_TIME_NONE ("no time")
          // fails an assertion in gst_query_set_latency. Either is a CRITICAL.
          throw invalid(
            `a latency over ${LONGEST_LATENCY} ns (about 146 years) would overflow GStreamer's ` +
              `clock times as latencies add up; give at most ${LONGEST_LATENCY}`,
          );
        }
      }
      const structured = typeName(spec.valueType);
      const problem = structured === "GstCaps" || structured === "GstStructure"
        ? capsTextProblem(text)
        : valueTextProblem(text, structured);
      if (problem !== null) throw invalid(problem);
      if (g.gst.gst_value_deserialize(gvalue.buffer, cstr(text)) === 0) {
        throw invalid("it could not be converted");
      }
    }
    if (g.gobject.g_param_value_validate(spec.pointer, gvalue.buffer) !== 0) {
      throw invalid("it is out of range");
    }
    converted = true;
    return gvalue;
  } finally {
    if (!converted) gvalue.unset();
  }
}

function holdsNul(value: JsonValue): boolean {
  if (typeof value === "string") return value.includes("\0");
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).some(([key, inner]) => key.includes("\0") || holdsNul(inner));
  }
  return false;
}

/** The gst-launch text for a JSON value, or undefined when the JSON kind cannot fit. */
function serialisedForm(value: JsonValue, fundamental: bigint): string | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined;
    if (isIntegerType(fundamental) && !Number.isInteger(value)) return undefined;
    return isIntegerType(fundamental) ? BigInt(value).toString() : String(value);
  }
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (trimmed === "") return undefined;
    // Integers as text must be plain decimal so that "12abc" or "1e3" are not half-read.
    if (isIntegerType(fundamental)) {
      if (!/^[+-]?\d+$/.test(trimmed)) return undefined;
      // Written again without leading zeros, which GStreamer would read as octal ("012" is 10).
      return BigInt(trimmed).toString();
    }
    if (numericRanges.has(fundamental) && Number.isNaN(Number(trimmed))) return undefined;
    return trimmed;
  }
  return undefined;
}

function jsonKind(value: JsonValue): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Reads a property as JSON. */
export function getProperty(target: PropertyTarget, name: string): JsonValue {
  const spec = requireProperty(target, name);
  if ((spec.flags & ParamFlag.READABLE) === 0) {
    throw new GstError(
      "INVALID_PROPERTY_VALUE",
      `Property '${name}' of element '${target.label}' is write-only`,
      { element: target.label, property: name },
    );
  }
  const gvalue = new GValue(spec.valueType);
  try {
    lib().gobject.g_object_get_property(target.object, cstr(name), gvalue.buffer);
    return readGValue(gvalue.buffer, spec.valueType);
  } finally {
    gvalue.unset();
  }
}

/** Whether the object's property holds text (a string GType), such as a file name. */
export function holdsText(object: Pointer, name: string): boolean {
  const spec = findProperty(object, name);
  return spec !== null && fundamentalOf(spec.valueType) === Fundamental.STRING;
}
