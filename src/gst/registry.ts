/** The element factories GStreamer knows, and the ones we keep out of reach. */
import { closest, distance } from "fastest-levenshtein";
import { cstr, lib, type Pointer, readCString, takeCString } from "./native.ts";
import { Layout, readPointer } from "./layout.ts";

export interface FactoryInfo {
  name: string;
  longName: string;
  klass: string;
  rank: number;
  plugin: string;
}

let factories: Map<string, FactoryInfo> | undefined;

/** Every element factory in the registry (read once; the registry does not change while we run). */
export function elementFactories(): Map<string, FactoryInfo> {
  if (factories) return factories;
  const { gst } = lib();
  factories = new Map();
  // Every element factory, whatever its klass (list_get_elements would skip "Generic" ones like capsfilter).
  const list = gst.gst_registry_get_feature_list(
    gst.gst_registry_get(),
    gst.gst_element_factory_get_type(),
  );
  for (let node = list; node !== null; node = readPointer(node, Layout.GList.next)) {
    const info = factoryInfo(readPointer(node, Layout.GList.data)!);
    factories.set(info.name, info);
  }
  gst.gst_plugin_feature_list_free(list);
  return factories;
}

/** One metadata entry of a factory ("long-name", "klass", "description", "author", ...), "" when unset. */
export function factoryMetadata(factory: Pointer, key: string): string {
  return readCString(lib().gst.gst_element_factory_get_metadata(factory, cstr(key))) ?? "";
}

/** What the registry says about one GstElementFactory (borrowed, not unreffed here). */
export function factoryInfo(factory: Pointer): FactoryInfo {
  const { gst } = lib();
  return {
    name: takeCString(gst.gst_object_get_name(factory)) ?? "",
    longName: factoryMetadata(factory, "long-name"),
    klass: factoryMetadata(factory, "klass"),
    rank: gst.gst_plugin_feature_get_rank(factory),
    plugin: readCString(gst.gst_plugin_feature_get_plugin_name(factory)) ?? "",
  };
}

/** Up to `count` factory names closest to a misspelt one. */
export function closestFactoryNames(name: string, count = 3): string[] {
  return closestNames(name, [...elementFactories().keys()], count);
}

/** Up to `count` of `names` closest to a misspelt one (element types, property names). */
export function closestNames(name: string, names: string[], count = 3): string[] {
  // Names are short; comparing a huge one against each would stall the server.
  const lower = name.toLowerCase().slice(0, 64);
  const ranked = names
    .map((candidate) => ({
      candidate,
      score: candidate.includes(lower) || lower.includes(candidate)
        ? Math.abs(candidate.length - lower.length) / 2
        : distance(lower, candidate),
    }))
    .sort((a, b) => a.score - b.score || a.candidate.localeCompare(b.candidate))
    .slice(0, count)
    .map((r) => r.candidate);
  const best = closest(lower, names);
  return ranked.includes(best) ? ranked : [best, ...ranked].slice(0, count);
}

/**
 * Elements that crash the whole process on this machine, with the reason.
 * dfbvideosink: with no framebuffer device, DirectFB's "Fusion Dispatch"
 * thread segfaults inside libfusion when the sink opens, and autovideosink
 * tries it headless because it is the only video sink with a rank there.
 */
export function crashingElements(
  hasFramebuffer = pathExists("/dev/fb0"),
): Map<string, string> {
  const refused = new Map<string, string>();
  if (!hasFramebuffer) {
    refused.set(
      "dfbvideosink",
      "DirectFB crashes the process when there is no framebuffer device (/dev/fb0)",
    );
  }
  return refused;
}

/** Takes the crashing elements out of auto-plugging (autovideosink, decodebin) by ranking them NONE. */
export function demoteElements(names: Iterable<string>): string[] {
  const { gst } = lib();
  const registry = gst.gst_registry_get();
  const demoted: string[] = [];
  for (const name of names) {
    const feature = gst.gst_registry_lookup_feature(registry, cstr(name));
    if (feature === null) continue;
    gst.gst_plugin_feature_set_rank(feature, 0);
    gst.gst_object_unref(feature);
    const info = factories?.get(name);
    if (info) info.rank = 0;
    demoted.push(name);
  }
  return demoted;
}

const G_FILE_TEST_EXISTS = 1 << 4;

/**
 * Whether `path` exists, asked through GLib: Deno refuses device and /proc paths (/dev/fb0) to
 * any permission short of --allow-all, which the server does not run with.
 */
export function pathExists(path: string): boolean {
  return lib().glib.g_file_test(cstr(path), G_FILE_TEST_EXISTS) !== 0;
}
