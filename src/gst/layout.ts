/**
 * Every struct offset and vtable slot the code reads or writes, in one table, and the check
 * that proves each against the running GLib/GStreamer before the server uses it
 * (docs/architecture.md: the layout table).
 *
 * Offsets are for 64-bit Linux with GStreamer 1.22. A GStreamer built another way would make
 * a blind read return garbage and a blind write corrupt memory, so `verifyLayout` runs at
 * start-up, compares each entry with what a public accessor or a value we made says, and
 * throws a LayoutError naming the GStreamer version and the failed check. Nothing here is
 * written to a real object before that check has passed.
 */
import { cstr, lib, type Pointer, readCString } from "./native.ts";

export const Layout = {
  /** GTypeInstance: the class pointer first; GTypeClass: the GType first. */
  GTypeInstance: { class: 0 },
  GTypeClass: { type: 0 },
  /** GTypeQuery (g_type_query). */
  GTypeQuery: { size: 24, type: 0, typeName: 8, classSize: 16, instanceSize: 20 },
  /** GValue: the GType, then two 8-byte data slots; arrays of GValues are laid side by side. */
  GValue: { size: 24, data: 8 },
  GList: { data: 0, next: 8 },
  GError: { message: 8 },
  /** GParamSpec, and the minimum/maximum that numeric subclasses keep right after it. */
  GParamSpec: { name: 8, flags: 16, valueType: 24, ownerType: 32, numericMinimum: 72 },
  GEnumClass: { nValues: 16, values: 24 },
  GFlagsClass: { nValues: 12, values: 16 },
  /** GEnumValue and GFlagsValue: value, name, nick. */
  GEnumValue: { size: 24, value: 0, name: 8, nick: 16 },
  GstMessage: { type: 64, src: 80 },
  /** GPollFD (Unix): the descriptor, the events asked for, the events found. */
  GPollFD: { size: 8, fd: 0, events: 4, revents: 6 },
  GstStaticPadTemplate: { nameTemplate: 0, direction: 8, presence: 12, staticCaps: 16 },
  GstStaticCaps: { string: 8 },
  /** GstRTSPAuth: its private struct; in it the methods needing credentials, then the schemes. */
  GstRTSPAuth: { priv: 24 },
  GstRTSPAuthPrivate: { methods: 72, authMethods: 76 },
  /** The create_element vfunc: after GObjectClass (136 bytes) and gen_key. */
  GstRTSPMediaFactoryClass: { createElement: 144 },
  /** The check vfunc: after GObjectClass (136 bytes) and authenticate. */
  GstRTSPAuthClass: { check: 144 },
  /**
   * The request being handled (rtsp-context.h): server, conn, client, request, uri, method,
   * auth, token... `auth` is proved at start-up; the fields read beside it (client, request,
   * token) are checked by their type each time one is read.
   */
  GstRTSPContext: { size: 128, conn: 8, client: 16, request: 24, auth: 48, token: 56 },
  /** A GstMiniObject (a token, a caps) starts with its GType. */
  GstMiniObject: { type: 0 },
} as const;

/** The table's shape, with any offsets (a test checks that a wrong one is caught). */
export type LayoutTable = { [S in keyof typeof Layout]: { [F in keyof typeof Layout[S]]: number } };

/** The layout of this GStreamer is not the one the table describes: the server must not start. */
export class LayoutError extends Error {
  constructor(readonly check: string, detail: string, readonly version: string) {
    super(
      `${version} is laid out differently than this server expects (check '${check}': ${detail}). ` +
        "The server reads and writes some GStreamer structures directly and refuses to run " +
        "rather than corrupt memory: run it with GStreamer 1.22 on 64-bit Linux, or update " +
        "src/gst/layout.ts for this version",
    );
    this.name = "LayoutError";
  }
}

// Field access by offset: the only raw reads and writes of native memory outside ffi/.

export function readPointer(base: Pointer, offset: number): Deno.PointerValue {
  return Deno.UnsafePointer.create(new Deno.UnsafePointerView(base).getBigUint64(offset));
}

export function readI32(base: Pointer, offset: number): number {
  return new Deno.UnsafePointerView(base).getInt32(offset);
}

export function readU32(base: Pointer, offset: number): number {
  return new Deno.UnsafePointerView(base).getUint32(offset);
}

export function readU64(base: Pointer, offset: number): bigint {
  return new Deno.UnsafePointerView(base).getBigUint64(offset);
}

export function readString(base: Pointer, offset: number): string | null {
  return readCString(readPointer(base, offset));
}

/** A writable view of `length` 32-bit words at `offset` (RTSP auth's private fields). */
export function u32Fields(base: Pointer, offset: number, length: number): Uint32Array {
  return new Uint32Array(Deno.UnsafePointerView.getArrayBuffer(base, length * 4, offset));
}

/** Stores a function pointer in a class's vtable slot (done only after verifyLayout). */
export function writeSlot(klass: Pointer, offset: number, fn: Pointer): void {
  new BigUint64Array(Deno.UnsafePointerView.getArrayBuffer(klass, 8, offset))[0] = BigInt(
    Deno.UnsafePointer.value(fn),
  );
}

/** The GType of an object (G_TYPE_FROM_INSTANCE). */
export function instanceType(instance: Pointer): bigint {
  return readU64(readPointer(instance, Layout.GTypeInstance.class)!, Layout.GTypeClass.type);
}

export function classOf(instance: Pointer): Pointer {
  return readPointer(instance, Layout.GTypeInstance.class)!;
}

/** A GError's message, then frees it (GError is transfer full wherever we receive one). */
export function takeGErrorMessage(gerror: Deno.PointerValue): string | null {
  if (gerror === null) return null;
  const message = readString(gerror, Layout.GError.message);
  lib().glib.g_error_free(gerror);
  return message;
}

/** GST_RTSP_AUTH_BASIC and GST_RTSP_AUTH_DIGEST, the schemes written by the setter we check with. */
export const RtspAuthScheme = { BASIC: 1, DIGEST: 2 } as const;

/**
 * Checks every entry of `table` (the real one unless a test gives another); throws LayoutError
 * at the first that does not hold.
 */
export function verifyLayout(version: string, table: LayoutTable = Layout): void {
  const fail = (check: string, detail: string): never => {
    throw new LayoutError(check, detail, version);
  };
  const expect = (check: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) {
      fail(check, `expected ${String(expected)}, found ${String(actual)}`);
    }
  };
  checkTypeSystem(expect, table);
  checkGValue(expect, table);
  checkGList(expect, table);
  checkGError(expect, table);
  checkParamSpecs(expect, table);
  checkEnums(expect, table);
  checkMessage(expect, table);
  checkPollFd(expect, table);
  checkPadTemplates(expect, table);
  checkRtspAuth(expect, table);
  checkMediaFactorySlot(expect, table);
  checkRtspAuthCheckSlot(expect, table);
}

type Expect = (check: string, actual: unknown, expected: unknown) => void;

const G_TYPE_INT = 24n;
const G_TYPE_OBJECT = 80n;

function checkTypeSystem(expect: Expect, table: LayoutTable): void {
  const { gobject, gst } = lib();
  const query = new Uint8Array(table.GTypeQuery.size);
  gobject.g_type_query(G_TYPE_OBJECT, query);
  const fields = new DataView(query.buffer);
  expect("GTypeQuery.type", fields.getBigUint64(table.GTypeQuery.type, true), G_TYPE_OBJECT);
  expect(
    "GTypeQuery.type_name",
    readCString(Deno.UnsafePointer.create(fields.getBigUint64(table.GTypeQuery.typeName, true))),
    "GObject",
  );
  // GObjectClass is 136 bytes and GObject 24: the media factory's slot offset builds on the first.
  expect(
    "GTypeQuery.class_size (GObjectClass)",
    fields.getUint32(table.GTypeQuery.classSize, true),
    136,
  );
  expect(
    "GTypeQuery.instance_size (GObject)",
    fields.getUint32(table.GTypeQuery.instanceSize, true),
    24,
  );
  const bin = gst.gst_object_ref_sink(gst.gst_bin_new(cstr("layout-probe")))!;
  try {
    const klass = readPointer(bin, table.GTypeInstance.class)!;
    const name = readCString(gobject.g_type_name(readU64(klass, table.GTypeClass.type)));
    expect(
      "GTypeInstance.g_class / GTypeClass.g_type",
      name,
      readCString(gobject.g_type_name_from_instance(bin)),
    );
  } finally {
    gst.gst_object_unref(bin);
  }
}

function checkGValue(expect: Expect, table: LayoutTable): void {
  const { gobject } = lib();
  const value = new Uint8Array(table.GValue.size);
  gobject.g_value_init(value, G_TYPE_INT);
  gobject.g_value_set_int(value, 0x5eed);
  const view = new DataView(value.buffer);
  expect("GValue.g_type", view.getBigUint64(0, true), G_TYPE_INT);
  expect("GValue.data", view.getInt32(table.GValue.data, true), 0x5eed);
  gobject.g_value_unset(value);
}

function checkGList(expect: Expect, table: LayoutTable): void {
  const { glib } = lib();
  const first = Deno.UnsafePointer.create(0x1000n);
  const second = Deno.UnsafePointer.create(0x2000n);
  const list = glib.g_list_append(glib.g_list_append(null, first), second)!;
  try {
    expect("GList.data", readU64(list, table.GList.data), 0x1000n);
    const next = readPointer(list, table.GList.next);
    expect("GList.next", Deno.UnsafePointer.equals(next, glib.g_list_last(list)), true);
  } finally {
    glib.g_list_free(list);
  }
}

function checkGError(expect: Expect, table: LayoutTable): void {
  const gerror = lib().glib.g_error_new_literal(1, 2, cstr("layout probe"))!;
  const message = readString(gerror, table.GError.message);
  lib().glib.g_error_free(gerror);
  expect("GError.message", message, "layout probe");
}

const PARAM_READWRITE = 3;

function checkParamSpecs(expect: Expect, table: LayoutTable): void {
  const { gobject } = lib();
  const offsets = table.GParamSpec;
  const probes: [string, () => Deno.PointerValue, (spec: Pointer) => [unknown, unknown]][] = [
    [
      "gint8",
      () => gobject.g_param_spec_char(cstr("probe-char"), null, null, -7, 11, 3, PARAM_READWRITE),
      (spec) => [readI8(spec, offsets.numericMinimum), readI8(spec, offsets.numericMinimum + 1)],
    ],
    [
      "gint",
      () => gobject.g_param_spec_int(cstr("probe-int"), null, null, -7, 11, 3, PARAM_READWRITE),
      (spec) => [readI32(spec, offsets.numericMinimum), readI32(spec, offsets.numericMinimum + 4)],
    ],
    [
      "gint64",
      () =>
        gobject.g_param_spec_int64(cstr("probe-int64"), null, null, -7n, 11n, 3n, PARAM_READWRITE),
      (spec) => [
        Number(new Deno.UnsafePointerView(spec).getBigInt64(offsets.numericMinimum)),
        Number(new Deno.UnsafePointerView(spec).getBigInt64(offsets.numericMinimum + 8)),
      ],
    ],
    [
      "gfloat",
      () => gobject.g_param_spec_float(cstr("probe-float"), null, null, -7, 11, 3, PARAM_READWRITE),
      (spec) => [
        new Deno.UnsafePointerView(spec).getFloat32(offsets.numericMinimum),
        new Deno.UnsafePointerView(spec).getFloat32(offsets.numericMinimum + 4),
      ],
    ],
    [
      "gdouble",
      () =>
        gobject.g_param_spec_double(cstr("probe-double"), null, null, -7, 11, 3, PARAM_READWRITE),
      (spec) => [
        new Deno.UnsafePointerView(spec).getFloat64(offsets.numericMinimum),
        new Deno.UnsafePointerView(spec).getFloat64(offsets.numericMinimum + 8),
      ],
    ],
  ];
  for (const [type, make, range] of probes) {
    const spec = gobject.g_param_spec_ref_sink(make())!;
    try {
      expect(
        "GParamSpec.name",
        readString(spec, offsets.name),
        readCString(gobject.g_param_spec_get_name(spec)),
      );
      // The flags as given, plus the G_PARAM_STATIC_* bits GObject may add above bit 4.
      expect("GParamSpec.flags", readU32(spec, offsets.flags) & 0x1f, PARAM_READWRITE);
      expect("GParamSpec.owner_type", readU64(spec, offsets.ownerType), 0n);
      expect(`GParamSpec minimum/maximum (${type})`, range(spec).join(" to "), "-7 to 11");
    } finally {
      gobject.g_param_spec_unref(spec);
    }
  }
  // A real element property: GstObject's "name" holds a string.
  const { gst } = lib();
  const bin = gst.gst_object_ref_sink(gst.gst_bin_new(cstr("layout-probe")))!;
  try {
    const klass = readPointer(bin, table.GTypeInstance.class)!;
    const spec = gobject.g_object_class_find_property(klass, cstr("name"))!;
    expect("GParamSpec.value_type", readU64(spec, offsets.valueType), 64n);
  } finally {
    gst.gst_object_unref(bin);
  }
}

function readI8(base: Pointer, offset: number): number {
  return new Deno.UnsafePointerView(base).getInt8(offset);
}

function checkEnums(expect: Expect, table: LayoutTable): void {
  const { gobject, gst } = lib();
  const stateClass = gobject.g_type_class_ref(gst.gst_state_get_type())!;
  try {
    expect("GEnumClass.n_values (GstState)", readU32(stateClass, table.GEnumClass.nValues), 5);
    const values = readPointer(stateClass, table.GEnumClass.values)!;
    const playing = gobject.g_enum_get_value(stateClass, 4);
    expect(
      "GEnumClass.values / GEnumValue size",
      Deno.UnsafePointer.equals(
        playing,
        Deno.UnsafePointer.offset(values, 4 * table.GEnumValue.size),
      ),
      true,
    );
    expect(
      "GEnumValue.value",
      readI32(values, 4 * table.GEnumValue.size + table.GEnumValue.value),
      4,
    );
    expect("GEnumValue.nick", readString(playing!, table.GEnumValue.nick), "playing");
    expect("GEnumValue.name", readString(playing!, table.GEnumValue.name), "GST_STATE_PLAYING");
  } finally {
    gobject.g_type_class_unref(stateClass);
  }
  const flagsClass = gobject.g_type_class_ref(gst.gst_seek_flags_get_type())!;
  try {
    const count = readU32(flagsClass, table.GFlagsClass.nValues);
    const values = readPointer(flagsClass, table.GFlagsClass.values)!;
    const flush = gobject.g_flags_get_first_value(flagsClass, 1)!;
    const index = Number(
      (Deno.UnsafePointer.value(flush) as bigint) - (Deno.UnsafePointer.value(values) as bigint),
    ) / table.GEnumValue.size;
    expect("GFlagsClass.values", Number.isInteger(index) && index >= 0 && index < count, true);
    expect("GFlagsValue.nick", readString(flush, table.GEnumValue.nick), "flush");
  } finally {
    gobject.g_type_class_unref(flagsClass);
  }
}

function checkMessage(expect: Expect, table: LayoutTable): void {
  const { gst } = lib();
  const bin = gst.gst_object_ref_sink(gst.gst_bin_new(cstr("layout-probe")))!;
  const message = gst.gst_message_new_eos(bin)!;
  try {
    expect("GstMessage.type", readI32(message, table.GstMessage.type), 1); // GST_MESSAGE_EOS
    expect(
      "GstMessage.src",
      Deno.UnsafePointer.equals(readPointer(message, table.GstMessage.src), bin),
      true,
    );
  } finally {
    gst.gst_message_unref(message);
    gst.gst_object_unref(bin);
  }
}

/** G_IO_IN: what a bus's descriptor is watched for. */
export const G_IO_IN = 1;

/** A bus's GPollFD asks for G_IO_IN (and HUP, ERR), and g_poll finds it once a message waits and not after. */
function checkPollFd(expect: Expect, table: LayoutTable): void {
  const { gst, glib } = lib();
  const { size, fd, events, revents } = table.GPollFD;
  const bus = gst.gst_bus_new()!;
  const pollFd = new Uint8Array(Math.max(size, 8));
  const view = new DataView(pollFd.buffer);
  try {
    gst.gst_bus_get_pollfd(bus, pollFd);
    expect("GPollFD.events", view.getUint16(events, true) & G_IO_IN, G_IO_IN);
    expect("GPollFD.fd", view.getInt32(fd, true) >= 0, true);
    expect("GPollFD.revents (no message)", glib.g_poll(pollFd, 1, 0), 0);
    gst.gst_bus_post(bus, gst.gst_message_new_eos(null));
    expect("GPollFD.revents (a message)", glib.g_poll(pollFd, 1, 0), 1);
    expect("GPollFD.revents", view.getUint16(revents, true) & G_IO_IN, G_IO_IN);
    const message = gst.gst_bus_pop_filtered(bus, -1);
    if (message !== null) gst.gst_message_unref(message);
    expect("GPollFD.revents (popped)", glib.g_poll(pollFd, 1, 0), 0);
  } finally {
    gst.gst_object_unref(bus);
  }
}

function checkPadTemplates(expect: Expect, table: LayoutTable): void {
  const { gst } = lib();
  const factory = gst.gst_element_factory_find(cstr("tee"));
  if (factory === null) return; // no tee: introspection has nothing to misread with it either
  try {
    const templates = new Map<string, Pointer>();
    for (
      let node = gst.gst_element_factory_get_static_pad_templates(factory);
      node !== null;
      node = readPointer(node, table.GList.next)
    ) {
      const template = readPointer(node, table.GList.data)!;
      templates.set(readString(template, table.GstStaticPadTemplate.nameTemplate) ?? "", template);
    }
    const source = templates.get("src_%u");
    const sink = templates.get("sink");
    expect("GstStaticPadTemplate.name_template", source !== undefined && sink !== undefined, true);
    expect(
      "GstStaticPadTemplate.direction",
      readI32(source!, table.GstStaticPadTemplate.direction),
      1,
    );
    expect(
      "GstStaticPadTemplate.presence",
      readI32(source!, table.GstStaticPadTemplate.presence),
      2,
    );
    const caps = Deno.UnsafePointer.offset(sink!, table.GstStaticPadTemplate.staticCaps)!;
    expect("GstStaticCaps.string", readString(caps, table.GstStaticCaps.string), "ANY");
  } finally {
    gst.gst_object_unref(factory);
  }
}

/**
 * GstRTSPAuth keeps the methods that need credentials (no setter) next to the schemes it offers
 * (a setter): the setter must write exactly the word after the one we write later.
 */
function checkRtspAuth(expect: Expect, table: LayoutTable): void {
  const { rtsp, gobject } = lib();
  const auth = rtsp.gst_rtsp_auth_new()!;
  try {
    const priv = readPointer(auth, table.GstRTSPAuth.priv);
    expect("GstRTSPAuth.priv", priv !== null, true);
    const methods = u32Fields(priv!, table.GstRTSPAuthPrivate.methods, 1);
    const schemes = u32Fields(priv!, table.GstRTSPAuthPrivate.authMethods, 1);
    expect("GstRTSPAuthPrivate.methods (starts empty)", methods[0], 0);
    for (const scheme of [RtspAuthScheme.BASIC | RtspAuthScheme.DIGEST, RtspAuthScheme.BASIC]) {
      rtsp.gst_rtsp_auth_set_supported_methods(auth, scheme);
      expect("GstRTSPAuthPrivate.auth_methods", schemes[0], scheme);
    }
    expect("GstRTSPAuthPrivate.methods (untouched by the setter)", methods[0], 0);
  } finally {
    gobject.g_object_unref(auth);
  }
  const token = rtsp.gst_rtsp_token_new_empty()!;
  try {
    expect(
      "GstMiniObject.type (a GstRTSPToken)",
      readU64(token, table.GstMiniObject.type),
      BigInt(rtsp.gst_rtsp_token_get_type()),
    );
  } finally {
    lib().gst.gst_mini_object_unref(token);
  }
}

/** A fresh name for a probe type: a type lives as long as the process, which may check twice. */
function probeTypeName(base: string): string {
  const { gobject } = lib();
  let name = base;
  for (let i = 1; BigInt(gobject.g_type_from_name(cstr(name))) !== 0n; i++) name = `${base}${i}`;
  return name;
}

/**
 * The auth's check slot and the context's auth field: a probe subclass puts a plain callback in
 * its check slot, a context we made names a probe instance as its auth, and the public
 * gst_rtsp_auth_check must reach the callback with that auth and that context.
 */
function checkRtspAuthCheckSlot(expect: Expect, table: LayoutTable): void {
  const { rtsp, gobject } = lib();
  const offset = table.GstRTSPAuthClass.check;
  const parent = BigInt(rtsp.gst_rtsp_auth_get_type());
  const query = new Uint8Array(table.GTypeQuery.size);
  gobject.g_type_query(parent, query);
  const sizes = new DataView(query.buffer);
  const classSize = sizes.getUint32(table.GTypeQuery.classSize, true);
  expect("GstRTSPAuthClass size holds check", offset + 8 <= classSize, true);
  let seen: { auth: bigint; ctx: bigint } | null = null;
  const probe = new Deno.UnsafeCallback(
    { parameters: ["pointer", "pointer", "pointer"], result: "i32" } as const,
    (auth, ctx) => {
      seen = { auth: Deno.UnsafePointer.value(auth), ctx: Deno.UnsafePointer.value(ctx) };
      return 1;
    },
  );
  const classInit = new Deno.UnsafeCallback(
    { parameters: ["pointer", "pointer"], result: "void" } as const,
    (klass) => writeSlot(klass!, offset, probe.pointer),
  );
  const context = new BigUint64Array(table.GstRTSPContext.size / 8);
  const contextPointer = Deno.UnsafePointer.of(context)!;
  try {
    const type = gobject.g_type_register_static_simple(
      parent,
      cstr(probeTypeName("GstControlAuthProbe")),
      classSize,
      classInit.pointer,
      sizes.getUint32(table.GTypeQuery.instanceSize, true),
      null,
      0,
    );
    expect("registering the auth probe type", BigInt(type) !== 0n, true);
    const auth = gobject.g_object_new_with_properties(type, 0, null, null)!;
    context[table.GstRTSPContext.auth / 8] = BigInt(Deno.UnsafePointer.value(auth));
    rtsp.gst_rtsp_context_push_current(contextPointer);
    try {
      // With the auth field elsewhere, the check finds no auth and says yes without a call.
      rtsp.gst_rtsp_auth_check(cstr("layout.probe"));
      const called = seen as { auth: bigint; ctx: bigint } | null;
      expect("GstRTSPContext.auth / GstRTSPAuthClass.check", called !== null, true);
      expect("GstRTSPAuthClass.check (auth)", called!.auth, Deno.UnsafePointer.value(auth));
      expect(
        "GstRTSPAuthClass.check (context)",
        called!.ctx,
        Deno.UnsafePointer.value(contextPointer),
      );
    } finally {
      rtsp.gst_rtsp_context_pop_current(contextPointer);
      gobject.g_object_unref(auth);
    }
  } finally {
    // The class keeps classInit's and probe's addresses, but is never instantiated again.
    classInit.close();
    probe.close();
  }
}

/**
 * The create_element slot: a probe subclass of the media factory puts a plain callback in the
 * slot of its own class; the public gst_rtsp_media_factory_create_element must call it.
 */
function checkMediaFactorySlot(expect: Expect, table: LayoutTable): void {
  const { rtsp, gobject, gst } = lib();
  const offset = table.GstRTSPMediaFactoryClass.createElement;
  const parent = BigInt(rtsp.gst_rtsp_media_factory_get_type());
  const query = new Uint8Array(table.GTypeQuery.size);
  gobject.g_type_query(parent, query);
  const sizes = new DataView(query.buffer);
  const classSize = sizes.getUint32(table.GTypeQuery.classSize, true);
  expect("GstRTSPMediaFactoryClass size holds create_element", offset + 8 <= classSize, true);
  let called = false;
  const probe = new Deno.UnsafeCallback(
    { parameters: ["pointer", "pointer"], result: "pointer" } as const,
    () => {
      called = true;
      return null;
    },
  );
  const classInit = new Deno.UnsafeCallback(
    { parameters: ["pointer", "pointer"], result: "void" } as const,
    (klass) => writeSlot(klass!, offset, probe.pointer),
  );
  try {
    const type = gobject.g_type_register_static_simple(
      parent,
      cstr(probeTypeName("GstControlLayoutProbe")),
      classSize,
      classInit.pointer,
      sizes.getUint32(table.GTypeQuery.instanceSize, true),
      null,
      0,
    );
    expect("registering the media factory probe type", BigInt(type) !== 0n, true);
    const factory = gobject.g_object_new_with_properties(type, 0, null, null)!;
    try {
      // Should the slot be elsewhere, the default implementation runs: give it a launch line so
      // it returns an element (dropped below) instead of logging a critical.
      rtsp.gst_rtsp_media_factory_set_launch(factory, cstr("fakesrc"));
      const url = new Uint8Array(64); // only checked for NULL before the vfunc is called
      const made = rtsp.gst_rtsp_media_factory_create_element(factory, Deno.UnsafePointer.of(url));
      if (made !== null) gst.gst_object_unref(gst.gst_object_ref_sink(made));
      expect("GstRTSPMediaFactoryClass.create_element", called, true);
    } finally {
      gobject.g_object_unref(factory);
    }
  } finally {
    // The class keeps classInit's and probe's addresses, but is never instantiated again.
    classInit.close();
    probe.close();
  }
}
