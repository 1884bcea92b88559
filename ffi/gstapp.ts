/** libgstapp-1.0 symbols. C signatures in the comments. */
export const appSymbols = {
  // GstFlowReturn gst_app_src_push_buffer (GstAppSrc *appsrc, GstBuffer *buffer): takes the buffer
  gst_app_src_push_buffer: { parameters: ["pointer", "pointer"], result: "i32" },
  // GstFlowReturn gst_app_src_end_of_stream (GstAppSrc *appsrc)
  gst_app_src_end_of_stream: { parameters: ["pointer"], result: "i32" },
  // guint64 gst_app_src_get_current_level_bytes (GstAppSrc *appsrc)
  gst_app_src_get_current_level_bytes: { parameters: ["pointer"], result: "u64" },
} as const satisfies Deno.ForeignLibraryInterface;
