/**
 * What `gst-inspect-1.0` tells a person, as JSON: the element factories in the
 * registry, and for one of them its metadata, properties (with type, flags,
 * default and range or values) and pad templates. Read-only, on the main
 * thread: no element is made, the element class is enough.
 */
import { GstError } from "./errors.ts";
import { Layout, readI32, readPointer, readString } from "./layout.ts";
import {
  type EnumValue,
  enumValues,
  Fundamental,
  fundamentalOf,
  GValue,
  type JsonValue,
  readGValue,
} from "./gvalue.ts";
import { cstr, gtype, lib, type Pointer, readCString, takeCString } from "./native.ts";
import {
  describeExpected,
  getProperty,
  listClassProperties,
  listProperties,
  ParamFlag,
  type ParamSpec,
} from "./property.ts";
import {
  closestFactoryNames,
  elementFactories,
  type FactoryInfo,
  factoryInfo,
  factoryMetadata,
} from "./registry.ts";

/** One element factory in a listing. */
export type ElementSummary = FactoryInfo;

export interface PropertyInfo {
  name: string;
  nick: string;
  blurb: string;
  /** The GType name of the value ("gint", "GstVideoTestSrcPattern", "GstCaps", ...). */
  type: string;
  flags: string[];
  /** The default as JSON: enums by nick, flags as "a+b", 64-bit integers beyond 2^53 as strings. */
  default: JsonValue;
  /** For numeric types; 64-bit bounds beyond 2^53 as decimal strings. */
  minimum?: number | string;
  maximum?: number | string;
  /** For enum and flags types: every value the type defines. */
  values?: EnumValue[];
}

export interface PadTemplateInfo {
  name: string;
  direction: "src" | "sink" | "unknown";
  presence: "always" | "sometimes" | "request";
  /** The template caps as gst_caps_to_string writes them ("ANY" for any). */
  caps: string;
}

export interface InspectedElement extends FactoryInfo {
  description: string;
  author: string;
  /** Sorted by name, as gst-inspect-1.0 lists them. */
  properties: PropertyInfo[];
  /** Sorted by name, as gst-inspect-1.0 lists them. */
  padTemplates: PadTemplateInfo[];
}

/**
 * Every element factory, and the server's `own` types, sorted by name; `filter` keeps those whose name,
 * long name or klass contains it, ignoring case ("Sink/Video"), and ignoring
 * a "." or "-" inside a word, so "h264" finds "x264 H.264 Encoder" and
 * "mpeg-4" finds mpeg4videoparse.
 */
export function listElements(filter?: string, own: ElementSummary[] = []): ElementSummary[] {
  const needle = filter?.trim().toLowerCase() ?? "";
  const compactNeedle = compact(needle);
  const matches = (info: FactoryInfo) =>
    needle === "" ||
    [info.name, info.longName, info.klass].some((field) => {
      const text = field.toLowerCase();
      return text.includes(needle) || compact(text).includes(compactNeedle);
    });
  return [...elementFactories().values(), ...own]
    .filter(matches)
    .map((info) => ({ ...info }))
    .sort(byName);
}

/** Code-point order, the same on every machine. */
function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Drops a "." or "-" between two letters or digits: "h.264" becomes "h264", "ac-3" "ac3". */
function compact(text: string): string {
  return text.replace(/(?<=[\p{L}\p{N}])[.-](?=[\p{L}\p{N}])/gu, "");
}

/** Everything about one element type, or UNKNOWN_ELEMENT with the closest names. */
export function inspectElement(type: string): InspectedElement {
  const { gst, gobject } = lib();
  // C would read a name with a NUL in it only up to the NUL: another name than the one asked for.
  const found = type.includes("\0") ? null : gst.gst_element_factory_find(cstr(type));
  if (found === null) {
    const suggestions = closestFactoryNames(type);
    throw new GstError(
      "UNKNOWN_ELEMENT",
      `Unknown element type '${type}'; closest: ${suggestions.join(", ")}`,
      { type, suggestions },
    );
  }
  let factory: Pointer | null = null;
  try {
    // The registry's factory knows no GType until its plugin is loaded; loading returns a new reference.
    factory = gst.gst_plugin_feature_load(found);
    const elementType = factory === null
      ? 0n
      : gtype(gst.gst_element_factory_get_element_type(factory));
    if (factory === null || elementType === 0n) {
      throw new GstError(
        "UNKNOWN_ELEMENT",
        `Element '${type}' could not be inspected (its plugin failed to load)`,
        { type },
      );
    }
    const klass = gobject.g_type_class_ref(elementType);
    if (klass === null) {
      throw new Error(`g_type_class_ref returned NULL for element '${type}'`);
    }
    try {
      return {
        ...factoryInfo(factory),
        description: factoryMetadata(factory, "description"),
        author: factoryMetadata(factory, "author"),
        properties: listClassProperties(klass)
          .map(describeProperty)
          .sort(byName),
        padTemplates: padTemplates(factory),
      };
    } finally {
      gobject.g_type_class_unref(klass);
    }
  } finally {
    if (factory !== null) gst.gst_object_unref(factory);
    gst.gst_object_unref(found);
  }
}

const flagNames: [number, string][] = [
  [ParamFlag.READABLE, "readable"],
  [ParamFlag.WRITABLE, "writable"],
  [ParamFlag.CONSTRUCT, "construct"],
  [ParamFlag.CONSTRUCT_ONLY, "construct-only"],
  [ParamFlag.LAX_VALIDATION, "lax-validation"],
  [ParamFlag.EXPLICIT_NOTIFY, "explicit-notify"],
  [ParamFlag.DEPRECATED, "deprecated"],
  [ParamFlag.GST_CONTROLLABLE, "controllable"],
  [ParamFlag.GST_MUTABLE_READY, "mutable-ready"],
  [ParamFlag.GST_MUTABLE_PAUSED, "mutable-paused"],
  [ParamFlag.GST_MUTABLE_PLAYING, "mutable-playing"],
  [ParamFlag.GST_DOC_SHOW_DEFAULT, "doc-show-default"],
  [ParamFlag.GST_CONDITIONALLY_AVAILABLE, "conditionally-available"],
];

function describeProperty(spec: ParamSpec): PropertyInfo {
  const { gobject } = lib();
  const expected = describeExpected(spec);
  const info: PropertyInfo = {
    name: spec.name,
    nick: readCString(gobject.g_param_spec_get_nick(spec.pointer)) ?? "",
    blurb: readCString(gobject.g_param_spec_get_blurb(spec.pointer)) ?? "",
    type: expected.type,
    flags: flagNames.filter(([bit]) => (spec.flags & bit) !== 0).map(([, name]) => name),
    default: defaultValue(spec),
  };
  if (expected.minimum !== undefined) info.minimum = expected.minimum;
  if (expected.maximum !== undefined) info.maximum = expected.maximum;
  const fundamental = fundamentalOf(spec.valueType);
  if (fundamental === Fundamental.ENUM || fundamental === Fundamental.FLAGS) {
    info.values = enumValues(spec.valueType);
  }
  return info;
}

/** The spec's default (what g_param_spec_get_default_value holds), copied into our own GValue. */
function defaultValue(spec: ParamSpec): JsonValue {
  const value = new GValue(spec.valueType);
  try {
    lib().gobject.g_param_value_set_default(spec.pointer, value.buffer);
    return readGValue(value.buffer, spec.valueType);
  } finally {
    value.unset();
  }
}

const directions = ["unknown", "src", "sink"] as const;
const presences = ["always", "sometimes", "request"] as const;

/** The factory's GstStaticPadTemplates. */
function padTemplates(factory: Pointer): PadTemplateInfo[] {
  const { gst } = lib();
  const fields = Layout.GstStaticPadTemplate;
  const templates: PadTemplateInfo[] = [];
  // The list and the templates belong to the factory.
  for (
    let node = gst.gst_element_factory_get_static_pad_templates(factory);
    node !== null;
    node = readPointer(node, Layout.GList.next)
  ) {
    const template = readPointer(node, Layout.GList.data)!;
    templates.push({
      name: readString(template, fields.nameTemplate) ?? "",
      direction: directions[readI32(template, fields.direction)] ?? "unknown",
      presence: presences[readI32(template, fields.presence)] ?? "always",
      caps: staticCapsString(Deno.UnsafePointer.offset(template, fields.staticCaps)!),
    });
  }
  return templates.sort(byName);
}

function staticCapsString(staticCaps: Pointer): string {
  const { gst } = lib();
  const caps = gst.gst_static_caps_get(staticCaps);
  if (caps === null) {
    // Unparseable template caps: give the text the plugin declared.
    return readString(staticCaps, Layout.GstStaticCaps.string) ?? "";
  }
  try {
    return takeCString(gst.gst_caps_to_string(caps)) ?? "";
  } finally {
    gst.gst_caps_unref(caps);
  }
}

/** Property values of a freshly made element, per factory: what "unchanged" means. */
const freshValues = new Map<string, Map<string, string>>();

/** The readable and writable properties of an element, as JSON text by name. */
function writableValues(element: Pointer, label: string): Map<string, string> {
  const values = new Map<string, string>();
  const readWrite = ParamFlag.READABLE | ParamFlag.WRITABLE;
  for (const spec of listProperties(element)) {
    if ((spec.flags & readWrite) !== readWrite || spec.name === "name" || spec.name === "parent") {
      continue;
    }
    try {
      values.set(spec.name, JSON.stringify(getProperty({ object: element, label }, spec.name)));
    } catch {
      // A value JSON cannot show is left out rather than failing the whole answer.
    }
  }
  return values;
}

/**
 * The writable properties of a live element whose value differs from a freshly made
 * element of the same factory (as gst-inspect-1.0 shows defaults): what a user set, or
 * what changed while it ran.
 */
export function changedProperties(
  element: Pointer,
  factory: string,
  label: string,
): Record<string, JsonValue> {
  let fresh = freshValues.get(factory);
  if (fresh === undefined) {
    const { gst } = lib();
    const made = gst.gst_element_factory_make(cstr(factory), null);
    if (made === null) return {};
    const owned = gst.gst_object_ref_sink(made)!;
    try {
      fresh = writableValues(owned, label);
    } finally {
      gst.gst_object_unref(owned);
    }
    freshValues.set(factory, fresh);
  }
  const changed: Record<string, JsonValue> = {};
  for (const [name, text] of writableValues(element, label)) {
    if (fresh.get(name) !== text) changed[name] = JSON.parse(text);
  }
  return changed;
}
