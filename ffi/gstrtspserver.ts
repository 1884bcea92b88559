/** libgstrtspserver-1.0 symbols. C signatures in the comments. */
export const rtspSymbols = {
  // GstRTSPServer *gst_rtsp_server_new (void)
  gst_rtsp_server_new: { parameters: [], result: "pointer" },
  // void gst_rtsp_server_set_address (GstRTSPServer *server, const gchar *address)
  gst_rtsp_server_set_address: { parameters: ["pointer", "buffer"], result: "void" },
  // void gst_rtsp_server_set_service (GstRTSPServer *server, const gchar *service)
  gst_rtsp_server_set_service: { parameters: ["pointer", "buffer"], result: "void" },
  // guint gst_rtsp_server_attach (GstRTSPServer *server, GMainContext *context): 0 on failure
  gst_rtsp_server_attach: { parameters: ["pointer", "pointer"], result: "u32" },
  // int gst_rtsp_server_get_bound_port (GstRTSPServer *server)
  gst_rtsp_server_get_bound_port: { parameters: ["pointer"], result: "i32" },
  // GstRTSPThreadPool *gst_rtsp_server_get_thread_pool (GstRTSPServer *server)
  gst_rtsp_server_get_thread_pool: { parameters: ["pointer"], result: "pointer" },
  // void gst_rtsp_thread_pool_set_max_threads (GstRTSPThreadPool *pool, gint max_threads)
  gst_rtsp_thread_pool_set_max_threads: { parameters: ["pointer", "i32"], result: "void" },
  // GstRTSPMountPoints *gst_rtsp_server_get_mount_points (GstRTSPServer *server)
  gst_rtsp_server_get_mount_points: { parameters: ["pointer"], result: "pointer" },
  // GstRTSPSessionPool *gst_rtsp_server_get_session_pool (GstRTSPServer *server)
  gst_rtsp_server_get_session_pool: { parameters: ["pointer"], result: "pointer" },
  // guint gst_rtsp_session_pool_cleanup (GstRTSPSessionPool *pool): removes expired sessions
  gst_rtsp_session_pool_cleanup_async: {
    name: "gst_rtsp_session_pool_cleanup",
    parameters: ["pointer"],
    result: "u32",
    nonblocking: true,
  },
  // GList *gst_rtsp_session_pool_filter (GstRTSPSessionPool *pool, GstRTSPSessionPoolFilterFunc func,
  //   gpointer user_data): with no func, every session, each with a reference
  gst_rtsp_session_pool_filter: {
    parameters: ["pointer", "pointer", "pointer"],
    result: "pointer",
  },
  // GstRTSPSessionMedia *gst_rtsp_session_get_media (GstRTSPSession *sess, const gchar *path,
  //   gint *matched)
  gst_rtsp_session_get_media: { parameters: ["pointer", "buffer", "buffer"], result: "pointer" },
  // void gst_rtsp_mount_points_add_factory (GstRTSPMountPoints *mounts, const gchar *path,
  //   GstRTSPMediaFactory *factory): takes ownership of factory
  gst_rtsp_mount_points_add_factory: {
    parameters: ["pointer", "buffer", "pointer"],
    result: "void",
  },
  // void gst_rtsp_mount_points_remove_factory (GstRTSPMountPoints *mounts, const gchar *path)
  gst_rtsp_mount_points_remove_factory: { parameters: ["pointer", "buffer"], result: "void" },
  // GType gst_rtsp_media_factory_get_type (void)
  gst_rtsp_media_factory_get_type: { parameters: [], result: "usize" },
  // void gst_rtsp_media_factory_set_shared (GstRTSPMediaFactory *factory, gboolean shared)
  gst_rtsp_media_factory_set_shared: { parameters: ["pointer", "i32"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;
