/**
 * Position and duration queries of many pipelines, one pool call for all of them (a query can
 * wait on a streaming thread, so it never runs on the main thread; a pool call per pipeline woke
 * a pool thread per pipeline per stats round). A GHashTable maps each pipeline, with a reference
 * of its own, to a new query, and `g_hash_table_foreach` runs `gst_element_query` on each pair on
 * a pool thread: a GHFunc (key, value, user_data) given a function of the first two, as GLib's
 * `g_list_foreach (list, (GFunc) g_object_unref, NULL)` does. The table owns the references and
 * the queries: its last unref frees them all.
 */
import { cFunctions, lib, type Pointer } from "./native.ts";

export const FORMAT_TIME = 3;
export const NANOSECONDS_PER_MS = 1_000_000n;

/** A pipeline's position and duration in ms, null where unknown (a duration not asked is null). */
export interface QueriedTimes {
  position: number | null;
  duration: number | null;
}

/**
 * Each pipeline's position (or duration) in ms, null where GStreamer does not know (a query
 * nobody answered keeps its -1). `pipelines` must not repeat one: the table would free the first
 * one's query when the second is inserted.
 */
export async function queryTimes(
  pipelines: readonly Pointer[],
  what: "position" | "duration",
): Promise<(number | null)[]> {
  if (pipelines.length === 0) return [];
  const { glib, gst } = lib();
  const { gstObjectUnref, gstMiniObjectUnref, gstElementQuery } = cFunctions();
  const table = glib.g_hash_table_new_full(null, null, gstObjectUnref, gstMiniObjectUnref)!;
  try {
    const queries = pipelines.map((pipeline) => {
      const query = what === "position"
        ? gst.gst_query_new_position(FORMAT_TIME)!
        : gst.gst_query_new_duration(FORMAT_TIME)!;
      glib.g_hash_table_insert(table, gst.gst_object_ref(pipeline), query);
      return query;
    });
    await glib.g_hash_table_foreach_async(table, gstElementQuery, null);
    const parse = what === "position" ? gst.gst_query_parse_position : gst.gst_query_parse_duration;
    const out = new BigInt64Array(1);
    return queries.map((query) => {
      parse(query, null, out);
      return out[0] >= 0n ? Number(out[0] / NANOSECONDS_PER_MS) : null;
    });
  } finally {
    glib.g_hash_table_unref(table);
  }
}
