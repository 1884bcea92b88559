/**
 * `listElements()` and `inspectElement()` in-process against the real
 * registry, and checked against what `gst-inspect-1.0` itself prints.
 */
import assert from "node:assert/strict";
import { GstError as ServerError } from "../src/gst/errors.ts";
import { initGstreamer } from "../src/gst/init.ts";
import {
  type InspectedElement as ElementDetails,
  inspectElement,
  listElements,
  type PropertyInfo,
} from "../src/gst/introspect.ts";
import { cstr, lib } from "../src/gst/native.ts";

initGstreamer();

const inspectOutputs = new Map<string, string>();

/** `gst-inspect-1.0 [args]` output (cached). */
async function gstInspect(...args: string[]): Promise<string> {
  const key = args.join(" ");
  const cached = inspectOutputs.get(key);
  if (cached !== undefined) return cached;
  const output = await new Deno.Command("gst-inspect-1.0", {
    args,
    env: { NO_COLOR: "1", GST_DEBUG: "0" },
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.equal(output.code, 0, `gst-inspect-1.0 ${key} failed`);
  const text = new TextDecoder().decode(output.stdout);
  inspectOutputs.set(key, text);
  return text;
}

/** A "Factory Details" / "Plugin Details" field such as "Long-name". */
function detail(text: string, field: string): string {
  const match = text.match(new RegExp(`^  ${field} {2,}(.*)$`, "m"));
  assert.ok(match, `gst-inspect-1.0 printed no ${field}`);
  return match[1].trim();
}

interface InspectedProperty {
  name: string;
  flags: string;
  /** The type line: "Integer. Range: -1 - 2147483647 Default: -1", 'Enum "X" Default: 0, "smpte"', ... */
  typeLine: string;
  /** The "(n): nick  - description" lines of an enum or flags property. */
  values: { value: number; nick: string }[];
}

/** The "Element Properties" blocks of gst-inspect-1.0 output. */
function inspectedProperties(text: string): Map<string, InspectedProperty> {
  const properties = new Map<string, InspectedProperty>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const head = lines[i].match(/^ {2}([a-z][a-z0-9-]*)\s*: /);
    const flags = lines[i + 1]?.match(/^\s+flags: (.*)$/);
    if (!head || !flags) continue;
    const values: InspectedProperty["values"] = [];
    for (let j = i + 3; j < lines.length; j++) {
      const value = lines[j].match(/^\s+\((0x[0-9a-f]+|-?\d+)\): (\S+)/);
      if (!value) break;
      values.push({ value: Number(value[1]), nick: value[2] });
    }
    properties.set(head[1], {
      name: head[1],
      flags: flags[1],
      typeLine: lines[i + 2].trim(),
      values,
    });
  }
  return properties;
}

/** Pad templates as gst-inspect-1.0 prints them: "name/direction/presence". */
function inspectedTemplates(text: string): string[] {
  return [...text.matchAll(/^ {2}(SRC|SINK|UNKNOWN) template: '(.*)'\n {4}Availability: (.*)$/gm)]
    .map(([, direction, name, presence]) =>
      `${name}/${direction.toLowerCase()}/${
        presence.toLowerCase() === "on request" ? "request" : presence.toLowerCase()
      }`
    );
}

function property(details: ElementDetails, name: string): PropertyInfo {
  const found = details.properties.find((p) => p.name === name);
  assert.ok(found, `${details.name} has no property ${name}`);
  return found;
}

Deno.test("listElements() lists every element factory sorted by name", () => {
  const all = listElements();
  assert.ok(all.length > 1000, `only ${all.length} elements`);
  const names = all.map((e) => e.name);
  assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  assert.equal(new Set(names).size, names.length);
  const videotestsrc = all.find((e) => e.name === "videotestsrc");
  assert.deepEqual(videotestsrc, {
    name: "videotestsrc",
    longName: "Video test source",
    klass: "Source/Video",
    rank: 0,
    plugin: "videotestsrc",
  });
  // Generic elements (no Source/Sink/... klass) are listed too.
  assert.ok(names.includes("capsfilter"));
});

Deno.test("listElements() agrees with gst-inspect-1.0 on factory details", async () => {
  for (const name of ["videotestsrc", "x264enc", "h264parse", "queue", "tee"]) {
    const text = await gstInspect(name);
    const [info] = listElements().filter((e) => e.name === name);
    assert.ok(info, name);
    assert.equal(info.longName, detail(text, "Long-name"), name);
    assert.equal(info.klass, detail(text, "Klass"), name);
    assert.equal(`(${info.rank})`, detail(text, "Rank").match(/\(\d+\)$/)?.[0], name);
    const pluginSection = text.slice(text.indexOf("Plugin Details:"));
    assert.equal(info.plugin, detail(pluginSection, "Name"), name);
  }
});

Deno.test("listElements() filters by name, long name and klass, ignoring case", async () => {
  const h264 = listElements("h264").map((e) => e.name);
  assert.ok(h264.includes("h264parse"), "h264parse by name");
  // "x264 H.264 Encoder": a "." inside a word does not hide it.
  assert.ok(h264.includes("x264enc"), "x264enc by long name");
  assert.deepEqual(listElements("H264").map((e) => e.name), h264);
  for (const e of listElements("h264")) {
    assert.match(`${e.name} ${e.longName} ${e.klass}`.replace(/\./g, ""), /h264/i);
  }

  const videoSinks = listElements("Sink/Video");
  assert.ok(videoSinks.length > 0);
  assert.ok(videoSinks.every((e) => /sink\/video/i.test(`${e.name} ${e.longName} ${e.klass}`)));
  // Every element gst-inspect-1.0 lists for the klass tokens Sink and Video with that exact
  // klass text is found, and nothing found by klass is unknown to it.
  const inspected = [
    ...(await gstInspect("-t", "Sink/Video")).matchAll(/^[^:\s]+: {2}([^:\s]+): /gm),
  ].map((m) => m[1]);
  assert.ok(inspected.length > 0);
  const byKlass = videoSinks.filter((e) => /sink\/video/i.test(e.klass)).map((e) => e.name);
  const all = new Map(listElements().map((e) => [e.name, e]));
  assert.deepEqual(
    byKlass.sort(),
    inspected.filter((n) => /sink\/video/i.test(all.get(n)?.klass ?? "")).sort(),
  );

  assert.deepEqual(listElements("no-such-element-anywhere"), []);
  assert.equal(listElements("").length, listElements().length);
});

Deno.test("inspectElement() describes videotestsrc as gst-inspect-1.0 does", async () => {
  const details = inspectElement("videotestsrc");
  const text = await gstInspect("videotestsrc");
  assert.equal(details.name, "videotestsrc");
  assert.equal(details.longName, detail(text, "Long-name"));
  assert.equal(details.klass, "Source/Video");
  assert.equal(details.description, detail(text, "Description"));
  assert.equal(details.author, detail(text, "Author"));
  const inspected = inspectedProperties(text);
  assert.deepEqual(details.properties.map((p) => p.name), [...inspected.keys()]);

  const pattern = property(details, "pattern");
  assert.equal(pattern.type, "GstVideoTestSrcPattern");
  assert.equal(pattern.default, "smpte");
  assert.deepEqual(pattern.flags, ["readable", "writable"]);
  assert.ok(pattern.values?.some((v) => v.nick === "ball" && v.name === "Moving ball"));
  assert.deepEqual(
    pattern.values?.map(({ value, nick }) => ({ value, nick })),
    inspected.get("pattern")!.values,
  );
  assert.match(
    inspected.get("pattern")!.typeLine,
    /^Enum "GstVideoTestSrcPattern" Default: 0, "smpte"/,
  );

  const numBuffers = property(details, "num-buffers");
  assert.equal(numBuffers.type, "gint");
  assert.equal(numBuffers.minimum, -1);
  assert.equal(numBuffers.maximum, 2147483647);
  assert.equal(numBuffers.default, -1);
  assert.match(
    inspected.get("num-buffers")!.typeLine,
    /^Integer\. Range: -1 - 2147483647 Default: -1/,
  );

  const isLive = property(details, "is-live");
  assert.equal(isLive.type, "gboolean");
  assert.equal(isLive.default, false);
  assert.equal(isLive.minimum, undefined);
  assert.equal(inspected.get("is-live")!.typeLine, "Boolean. Default: false");

  const background = property(details, "background-color");
  assert.deepEqual(background.flags, ["readable", "writable", "controllable"]);
  assert.equal(inspected.get("background-color")!.flags, "readable, writable, controllable");

  assert.deepEqual(details.padTemplates.map((t) => `${t.name}/${t.direction}/${t.presence}`), [
    "src/src/always",
  ]);
  assert.match(details.padTemplates[0].caps, /^video\/x-raw, format=\(string\)\{/);
  assert.match(details.padTemplates[0].caps, /; video\/x-bayer, /);
});

Deno.test("inspectElement() gives request and sometimes pad templates", async () => {
  const tee = inspectElement("tee");
  assert.deepEqual(
    tee.padTemplates.map((t) => `${t.name}/${t.direction}/${t.presence}`),
    inspectedTemplates(await gstInspect("tee")),
  );
  const request = tee.padTemplates.find((t) => t.name === "src_%u");
  assert.deepEqual(request, { name: "src_%u", direction: "src", presence: "request", caps: "ANY" });

  const decodebin = inspectElement("decodebin");
  assert.deepEqual(
    decodebin.padTemplates.map((t) => `${t.name}/${t.direction}/${t.presence}`),
    inspectedTemplates(await gstInspect("decodebin")),
  );
  assert.ok(decodebin.padTemplates.some((t) => t.presence === "sometimes"));
});

Deno.test("inspectElement() gives unsigned and 64-bit ranges exactly", async () => {
  const bitrate = property(inspectElement("x264enc"), "bitrate");
  assert.equal(bitrate.type, "guint");
  const inspectedBitrate = inspectedProperties(await gstInspect("x264enc")).get("bitrate")!;
  const range = inspectedBitrate.typeLine.match(
    /^Unsigned Integer\. Range: (\d+) - (\d+) Default: (\d+)/,
  );
  assert.ok(range, inspectedBitrate.typeLine);
  assert.equal(bitrate.minimum, Number(range[1]));
  assert.equal(bitrate.maximum, Number(range[2]));
  assert.equal(bitrate.default, Number(range[3]));
  assert.ok(bitrate.flags.includes("mutable-playing"));

  // guint64 beyond 2^53 stays exact, as a string; values that fit stay numbers.
  const maxSizeTime = property(inspectElement("queue"), "max-size-time");
  assert.equal(maxSizeTime.type, "guint64");
  assert.equal(maxSizeTime.minimum, 0);
  assert.equal(maxSizeTime.maximum, "18446744073709551615");
  assert.equal(maxSizeTime.default, 1000000000);
  assert.match(
    inspectedProperties(await gstInspect("queue")).get("max-size-time")!.typeLine,
    /^Unsigned Integer64\. Range: 0 - 18446744073709551615 Default: 1000000000/,
  );
});

Deno.test("inspectElement() gives flags values and a flags default", async () => {
  const flags = property(inspectElement("playbin"), "flags");
  assert.equal(flags.type, "GstPlayFlags");
  const inspected = inspectedProperties(await gstInspect("playbin")).get("flags")!;
  const line = inspected.typeLine.match(/^Flags "GstPlayFlags" Default: 0x[0-9a-f]+, "(.*)"$/);
  assert.ok(line, inspected.typeLine);
  assert.deepEqual(String(flags.default).split("+").sort(), line[1].split("+").sort());
  assert.deepEqual(flags.values?.map(({ value, nick }) => ({ value, nick })), inspected.values);
});

Deno.test("inspectElement() ranges and enum types match gst-inspect-1.0 for common elements", async () => {
  let compared = 0;
  for (
    const name of ["audiotestsrc", "queue2", "x264enc", "rtph264pay", "udpsrc", "identity"]
  ) {
    const details = inspectElement(name);
    for (const inspected of inspectedProperties(await gstInspect(name)).values()) {
      const ours = property(details, inspected.name);
      const range = inspected.typeLine.match(
        /^(?:Unsigned )?Integer(?:64)?\. Range: (\S+) - (\S+)/,
      );
      if (range) {
        assert.deepEqual(
          [String(ours.minimum), String(ours.maximum)],
          [range[1], range[2]],
          `${name}.${ours.name}`,
        );
        compared++;
      }
      const enumType = inspected.typeLine.match(/^(?:Enum|Flags) "(.*)" Default/);
      if (enumType) {
        assert.equal(ours.type, enumType[1], `${name}.${ours.name}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 50, `only ${compared} compared`);
});

Deno.test("inspectElement() of an unknown type throws UNKNOWN_ELEMENT with suggestions", () => {
  let error: unknown;
  try {
    inspectElement("videotestsrcc");
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof ServerError, `expected a ServerError, got ${error}`);
  assert.equal(error.code, "UNKNOWN_ELEMENT");
  assert.match(error.message, /^Unknown element type 'videotestsrcc'; closest: .*videotestsrc/);
  const suggestions = error.details?.suggestions as string[];
  assert.ok(suggestions.includes("videotestsrc"));
  assert.equal(error.details?.type, "videotestsrcc");
});

Deno.test("inspectElement() gives back every factory reference it takes", () => {
  const { gst } = lib();
  for (const name of ["videotestsrc", "tee", "x264enc"]) {
    const factory = gst.gst_element_factory_find(cstr(name))!;
    // GObject.ref_count: the guint after the GTypeInstance class pointer.
    const refCount = () => new Deno.UnsafePointerView(factory).getUint32(8);
    inspectElement(name);
    const before = refCount();
    for (let i = 0; i < 5; i++) inspectElement(name);
    assert.equal(refCount(), before, name);
    gst.gst_object_unref(factory);
  }
});
