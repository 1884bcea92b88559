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
  // void gst_rtsp_server_set_backlog (GstRTSPServer *server, gint backlog)
  gst_rtsp_server_set_backlog: { parameters: ["pointer", "i32"], result: "void" },
  // int gst_rtsp_server_get_bound_port (GstRTSPServer *server)
  gst_rtsp_server_get_bound_port: { parameters: ["pointer"], result: "i32" },
  // GstRTSPThreadPool *gst_rtsp_server_get_thread_pool (GstRTSPServer *server)
  gst_rtsp_server_get_thread_pool: { parameters: ["pointer"], result: "pointer" },
  // void gst_rtsp_thread_pool_set_max_threads (GstRTSPThreadPool *pool, gint max_threads)
  gst_rtsp_thread_pool_set_max_threads: { parameters: ["pointer", "i32"], result: "void" },
  // GstRTSPMountPoints *gst_rtsp_server_get_mount_points (GstRTSPServer *server)
  gst_rtsp_server_get_mount_points: { parameters: ["pointer"], result: "pointer" },
  // void gst_rtsp_server_set_mount_points (GstRTSPServer *server, GstRTSPMountPoints *mounts):
  //   takes a reference of its own
  gst_rtsp_server_set_mount_points: { parameters: ["pointer", "pointer"], result: "void" },
  // void gst_rtsp_server_set_session_pool (GstRTSPServer *server, GstRTSPSessionPool *pool):
  //   takes a reference of its own
  gst_rtsp_server_set_session_pool: { parameters: ["pointer", "pointer"], result: "void" },
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
  // GList *gst_rtsp_session_filter (GstRTSPSession *sess, GstRTSPSessionFilterFunc func,
  //   gpointer user_data): with no func, every session media, each with a reference (taken under
  //   the session's lock, so a client thread that removes one cannot free it under us)
  gst_rtsp_session_filter: { parameters: ["pointer", "pointer", "pointer"], result: "pointer" },
  // guint gst_rtsp_session_pool_get_n_sessions (GstRTSPSessionPool *pool): under the pool's lock
  gst_rtsp_session_pool_get_n_sessions: { parameters: ["pointer"], result: "u32" },
  // gboolean gst_rtsp_media_prepare (GstRTSPMedia *media, GstRTSPThread *thread): of a prepared
  //   media, only counts one more user (no thread needed); under its state lock, so on the pool
  gst_rtsp_media_prepare_async: {
    name: "gst_rtsp_media_prepare",
    parameters: ["pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // gboolean gst_rtsp_media_unprepare (GstRTSPMedia *media): one user fewer; the last sets it to
  //   NULL
  gst_rtsp_media_unprepare_async: {
    name: "gst_rtsp_media_unprepare",
    parameters: ["pointer"],
    result: "i32",
    nonblocking: true,
  },
  // guint gst_rtsp_media_n_streams (GstRTSPMedia *media)
  gst_rtsp_media_n_streams: { parameters: ["pointer"], result: "u32" },
  // GstRTSPStream *gst_rtsp_media_get_stream (GstRTSPMedia *media, guint idx): transfer none
  //   (the media keeps its streams as long as it lives)
  gst_rtsp_media_get_stream: { parameters: ["pointer", "u32"], result: "pointer" },
  // GList *gst_rtsp_stream_transport_filter (GstRTSPStream *stream,
  //   GstRTSPStreamTransportFilterFunc func, gpointer user_data): with no func, every transport,
  //   each with a reference (taken under the stream's lock, which gst_rtsp_stream_leave_bin holds
  //   while it sets the stream's elements to NULL: so on the pool)
  gst_rtsp_stream_transport_filter_async: {
    name: "gst_rtsp_stream_transport_filter",
    parameters: ["pointer", "pointer", "pointer"],
    result: "pointer",
    nonblocking: true,
  },
  // void gst_rtsp_stream_transport_message_sent (GstRTSPStreamTransport *trans): runs the
  //   stream's message-sent callback, which takes the stream's locks, so it runs on the pool
  gst_rtsp_stream_transport_message_sent_async: {
    name: "gst_rtsp_stream_transport_message_sent",
    parameters: ["pointer"],
    result: "void",
    nonblocking: true,
  },
  // gboolean gst_rtsp_session_media_matches (GstRTSPSessionMedia *media, const gchar *path,
  //   gint *matched)
  gst_rtsp_session_media_matches: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
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
  // void gst_rtsp_media_factory_set_permissions (GstRTSPMediaFactory *factory,
  //   GstRTSPPermissions *permissions): takes a reference of its own
  gst_rtsp_media_factory_set_permissions: { parameters: ["pointer", "pointer"], result: "void" },
  // GstRTSPAuth *gst_rtsp_auth_new (void)
  gst_rtsp_auth_new: { parameters: [], result: "pointer" },
  // gchar *gst_rtsp_auth_make_basic (const gchar *user, const gchar *pass): base64 of user:pass,
  //   g_free it
  gst_rtsp_auth_make_basic: { parameters: ["buffer", "buffer"], result: "pointer" },
  // void gst_rtsp_auth_add_basic (GstRTSPAuth *auth, const gchar *basic, GstRTSPToken *token):
  //   copies basic, takes a reference of token
  gst_rtsp_auth_add_basic: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  // void gst_rtsp_auth_set_supported_methods (GstRTSPAuth *auth, GstRTSPAuthMethod methods):
  //   the schemes offered in WWW-Authenticate (GST_RTSP_AUTH_BASIC 1, GST_RTSP_AUTH_DIGEST 2)
  gst_rtsp_auth_set_supported_methods: { parameters: ["pointer", "u32"], result: "void" },
  // void gst_rtsp_server_set_auth (GstRTSPServer *server, GstRTSPAuth *auth): takes a reference;
  //   clients accepted from then on use it
  gst_rtsp_server_set_auth: { parameters: ["pointer", "pointer"], result: "void" },
  // GstRTSPToken *gst_rtsp_token_new_empty (void)
  gst_rtsp_token_new_empty: { parameters: [], result: "pointer" },
  // void gst_rtsp_token_set_string (GstRTSPToken *token, const gchar *field,
  //   const gchar *string_value): the token must be writable (a new one is)
  gst_rtsp_token_set_string: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
  // GstRTSPPermissions *gst_rtsp_permissions_new (void): no roles (there is no _new_empty)
  gst_rtsp_permissions_new: { parameters: [], result: "pointer" },
  // void gst_rtsp_permissions_add_role_empty (GstRTSPPermissions *permissions, const gchar *role)
  gst_rtsp_permissions_add_role_empty: { parameters: ["pointer", "buffer"], result: "void" },
  // void gst_rtsp_permissions_add_permission_for_role (GstRTSPPermissions *permissions,
  //   const gchar *role, const gchar *permission, gboolean allowed)
  gst_rtsp_permissions_add_permission_for_role: {
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "void",
  },
  // GstElement *gst_rtsp_media_factory_create_element (GstRTSPMediaFactory *factory,
  //   const GstRTSPUrl *url): calls the class's create_element (layout check)
  gst_rtsp_media_factory_create_element: { parameters: ["pointer", "pointer"], result: "pointer" },
  // void gst_rtsp_media_factory_set_launch (GstRTSPMediaFactory *factory, const gchar *launch)
  gst_rtsp_media_factory_set_launch: { parameters: ["pointer", "buffer"], result: "void" },
  // void gst_rtsp_media_factory_set_transport_mode (GstRTSPMediaFactory *factory,
  //   GstRTSPTransportMode mode): GST_RTSP_TRANSPORT_MODE_PLAY 1, _RECORD 2
  gst_rtsp_media_factory_set_transport_mode: { parameters: ["pointer", "u32"], result: "void" },
  // GType gst_rtsp_auth_get_type (void)
  gst_rtsp_auth_get_type: { parameters: [], result: "usize" },
  // void gst_rtsp_auth_set_default_token (GstRTSPAuth *auth, GstRTSPToken *token): takes a
  //   reference; the token of clients that give no credentials
  gst_rtsp_auth_set_default_token: { parameters: ["pointer", "pointer"], result: "void" },
  // gboolean gst_rtsp_auth_check (const gchar *check): asks the current context's auth
  gst_rtsp_auth_check: { parameters: ["buffer"], result: "i32" },
  // void gst_rtsp_context_push_current (GstRTSPContext *ctx) / _pop_current: this thread's context
  gst_rtsp_context_push_current: { parameters: ["pointer"], result: "void" },
  gst_rtsp_context_pop_current: { parameters: ["pointer"], result: "void" },
  // GType gst_rtsp_token_get_type (void)
  gst_rtsp_token_get_type: { parameters: [], result: "usize" },
  // const gchar *gst_rtsp_token_get_string (GstRTSPToken *token, const gchar *field)
  gst_rtsp_token_get_string: { parameters: ["pointer", "buffer"], result: "pointer" },
  // GType gst_rtsp_client_get_type (void)
  gst_rtsp_client_get_type: { parameters: [], result: "usize" },
  // GstRTSPResult gst_rtsp_client_send_message (GstRTSPClient *client, GstRTSPSession *session,
  //   GstRTSPMessage *message): copies what it sends
  gst_rtsp_client_send_message: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
  // GstRTSPMedia *gst_rtsp_session_media_get_media (GstRTSPSessionMedia *media): transfer none
  gst_rtsp_session_media_get_media: { parameters: ["pointer"], result: "pointer" },
  // GstRTSPTransportMode gst_rtsp_media_get_transport_mode (GstRTSPMedia *media)
  gst_rtsp_media_get_transport_mode: { parameters: ["pointer"], result: "u32" },
  // GstRTSPConnection *gst_rtsp_client_get_connection (GstRTSPClient *client): the client keeps it
  gst_rtsp_client_get_connection: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;
