/** libgstbase-1.0 symbols. C signatures in the comments. */
export const baseSymbols = {
  // GType gst_base_sink_get_type (void)
  gst_base_sink_get_type: { parameters: [], result: "usize" },
  // GstStructure * gst_base_sink_get_stats (GstBaseSink *sink): a new structure, the caller frees it
  gst_base_sink_get_stats: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;
