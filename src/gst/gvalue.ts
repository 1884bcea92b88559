/** GValue storage and reading GValues back into JSON. */
import { gtype, lib, type Pointer, readCString, takeCString } from "./native.ts";
import { instanceType, Layout, readI32, readPointer, readString, readU32 } from "./layout.ts";

/** Fundamental GType ids (G_TYPE_MAKE_FUNDAMENTAL(n) = n << 2). */
export const Fundamental = {
  CHAR: 12n,
  UCHAR: 16n,
  BOOLEAN: 20n,
  INT: 24n,
  UINT: 28n,
  LONG: 32n,
  ULONG: 36n,
  INT64: 40n,
  UINT64: 44n,
  ENUM: 48n,
  FLAGS: 52n,
  FLOAT: 56n,
  DOUBLE: 60n,
  STRING: 64n,
  POINTER: 68n,
  BOXED: 72n,
  PARAM: 76n,
  OBJECT: 80n,
} as const;

export const GVALUE_SIZE = Layout.GValue.size;

/** A zeroed GValue initialised to `type`; call `unset` when done. */
export class GValue {
  readonly buffer = new Uint8Array(GVALUE_SIZE);
  constructor(readonly type: bigint) {
    lib().gobject.g_value_init(this.buffer, type);
  }
  unset(): void {
    lib().gobject.g_value_unset(this.buffer);
  }
}

export function fundamentalOf(type: bigint): bigint {
  return gtype(lib().gobject.g_type_fundamental(type));
}

export function typeName(type: bigint): string {
  return readCString(lib().gobject.g_type_name(type)) ?? `GType ${type}`;
}

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Reads a GValue (of any type) as JSON: numbers, booleans and strings as such, enums by nick, the rest serialised. */
export function readGValue(value: Uint8Array<ArrayBuffer>, type: bigint): JsonValue {
  const g = lib().gobject;
  switch (fundamentalOf(type)) {
    case Fundamental.BOOLEAN:
      return g.g_value_get_boolean(value) !== 0;
    // Each fundamental type has its own getter: GLib type-checks them (a CRITICAL otherwise).
    case Fundamental.CHAR:
      return g.g_value_get_schar(value);
    case Fundamental.UCHAR:
      return g.g_value_get_uchar(value);
    case Fundamental.INT:
      return g.g_value_get_int(value);
    case Fundamental.UINT:
      return g.g_value_get_uint(value);
    case Fundamental.LONG:
      return jsonNumber(g.g_value_get_long(value));
    case Fundamental.ULONG:
      return jsonNumber(g.g_value_get_ulong(value));
    case Fundamental.INT64:
      return jsonNumber(g.g_value_get_int64(value));
    case Fundamental.UINT64:
      return jsonNumber(g.g_value_get_uint64(value));
    case Fundamental.FLOAT:
      return g.g_value_get_float(value);
    case Fundamental.DOUBLE:
      return g.g_value_get_double(value);
    case Fundamental.STRING:
      return readCString(g.g_value_get_string(value));
    case Fundamental.ENUM:
      return enumNick(type, g.g_value_get_enum(value));
    case Fundamental.FLAGS:
      return flagNicks(type, g.g_value_get_flags(value));
    case Fundamental.OBJECT: {
      const object = g.g_value_get_object(value);
      return object === null ? null : typeName(instanceType(object));
    }
    case Fundamental.BOXED: {
      const boxed = g.g_value_get_boxed(value);
      if (boxed === null) return null;
      const name = typeName(type);
      if (name === "GstCaps") return takeCString(lib().gst.gst_caps_to_string(boxed));
      if (name === "GstStructure") return takeCString(lib().gst.gst_structure_to_string(boxed));
      // Media, not settings: a frame written out would be megabytes of text in a reply.
      if (name === "GstSample") return describeSample(boxed);
      if (name === "GstBuffer") return `GstBuffer of ${lib().gst.gst_buffer_get_size(boxed)} bytes`;
      if (name === "GstBufferList") return name;
      return takeCString(lib().gst.gst_value_serialize(value)) ?? name;
    }
    default: {
      // GStreamer's own text form ("a+b" for flags, caps and fractions as gst-launch writes them).
      const serialised = takeCString(lib().gst.gst_value_serialize(value));
      if (serialised !== null) return serialised;
      const text = takeCString(g.g_strdup_value_contents(value));
      return text === "NULL" ? null : text;
    }
  }
}

/** "GstSample of N bytes, CAPS": what a sample holds, without its bytes. */
function describeSample(sample: Pointer): string {
  const { gst } = lib();
  const buffer = gst.gst_sample_get_buffer(sample);
  const caps = gst.gst_sample_get_caps(sample);
  const bytes = buffer === null ? 0 : gst.gst_buffer_get_size(buffer);
  return `GstSample of ${bytes} bytes` +
    (caps === null ? "" : `, ${takeCString(gst.gst_caps_to_string(caps))}`);
}

/** 64-bit integers beyond 2^53 stay exact as decimal strings. */
export function jsonNumber(value: number | bigint): number | string {
  if (typeof value === "number") return value;
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

export interface EnumValue {
  value: number;
  name: string;
  nick: string;
}

/** The values of an enum or flags type, read from its class. */
export function enumValues(type: bigint): EnumValue[] {
  const g = lib().gobject;
  const isFlags = fundamentalOf(type) === Fundamental.FLAGS;
  const klass = g.g_type_class_ref(type);
  if (klass === null) return [];
  try {
    const fields = isFlags ? Layout.GFlagsClass : Layout.GEnumClass;
    const count = readU32(klass, fields.nValues);
    const values = readPointer(klass, fields.values);
    if (values === null) return [];
    const out: EnumValue[] = [];
    for (let i = 0; i < count; i++) {
      const value = Deno.UnsafePointer.offset(values, i * Layout.GEnumValue.size)!;
      out.push({
        value: isFlags
          ? readU32(value, Layout.GEnumValue.value)
          : readI32(value, Layout.GEnumValue.value),
        name: readString(value, Layout.GEnumValue.name) ?? "",
        nick: readString(value, Layout.GEnumValue.nick) ?? "",
      });
    }
    return out;
  } finally {
    g.g_type_class_unref(klass);
  }
}

/** Flags as the nicks they are written with ("a+b"), largest flags first; "0" for none. */
function flagNicks(type: bigint, value: number): string {
  let rest = value >>> 0;
  const nicks: string[] = [];
  const values = enumValues(type).filter((v) => v.value !== 0).sort((a, b) => b.value - a.value);
  for (const flag of values) {
    if (rest !== 0 && (rest & flag.value) >>> 0 === flag.value) {
      nicks.push(flag.nick);
      rest = (rest & ~flag.value) >>> 0;
    }
  }
  if (rest !== 0) nicks.push(`0x${rest.toString(16)}`);
  return nicks.length > 0 ? nicks.reverse().join("+") : "0";
}

function enumNick(type: bigint, value: number): string | number {
  return enumValues(type).find((v) => v.value === value)?.nick ?? value;
}
