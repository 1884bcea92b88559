/**
 * WebRTC (webrtcbin) negotiation: libgstwebrtc-1.0 session descriptions, GstPromise from
 * libgstreamer, signal emission from libgobject, and SDP text from libgstsdp. C signatures in
 * the comments. Opened only when a WebRTC session is first made (src/gst/webrtc.ts).
 */
export const webrtcSymbols = {
  // GstWebRTCSessionDescription *gst_webrtc_session_description_new (GstWebRTCSDPType type,
  //   GstSDPMessage *sdp): takes the SDP message; GST_WEBRTC_SDP_TYPE_OFFER 1, ANSWER 3
  gst_webrtc_session_description_new: { parameters: ["i32", "pointer"], result: "pointer" },
  // void gst_webrtc_session_description_free (GstWebRTCSessionDescription *desc)
  gst_webrtc_session_description_free: { parameters: ["pointer"], result: "void" },
  // GType gst_webrtc_session_description_get_type (void)
  gst_webrtc_session_description_get_type: { parameters: [], result: "u64" },
} as const satisfies Deno.ForeignLibraryInterface;

export const promiseSymbols = {
  // GstPromise *gst_promise_new (void)
  gst_promise_new: { parameters: [], result: "pointer" },
  // GstPromiseResult gst_promise_wait (GstPromise *promise): blocks until replied, interrupted
  //   or expired; GST_PROMISE_RESULT_REPLIED 2
  gst_promise_wait_async: {
    name: "gst_promise_wait",
    parameters: ["pointer"],
    result: "i32",
    nonblocking: true,
  },
  // void gst_promise_interrupt (GstPromise *promise)
  gst_promise_interrupt: { parameters: ["pointer"], result: "void" },
  // const GstStructure *gst_promise_get_reply (GstPromise *promise): owned by the promise
  gst_promise_get_reply: { parameters: ["pointer"], result: "pointer" },
  // GType gst_pad_get_type (void): get-stats takes a pad (NULL: every stream)
  gst_pad_get_type: { parameters: [], result: "u64" },
  // GType gst_promise_get_type (void)
  gst_promise_get_type: { parameters: [], result: "u64" },
  // const GValue *gst_structure_get_value (const GstStructure *structure, const gchar *fieldname)
  gst_structure_get_value: { parameters: ["pointer", "buffer"], result: "pointer" },
  // gint gst_structure_n_fields (const GstStructure *structure)
  gst_structure_n_fields: { parameters: ["pointer"], result: "i32" },
  // const gchar *gst_structure_nth_field_name (const GstStructure *structure, guint index)
  gst_structure_nth_field_name: { parameters: ["pointer", "u32"], result: "pointer" },
  // gboolean gst_structure_get_uint (const GstStructure *structure, const gchar *fieldname,
  //   guint *value)
  gst_structure_get_uint: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // gboolean gst_structure_has_field (const GstStructure *structure, const gchar *fieldname)
  gst_structure_has_field: { parameters: ["pointer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export const signalSymbols = {
  // guint g_signal_lookup (const gchar *name, GType itype): 0 when there is none
  g_signal_lookup: { parameters: ["buffer", "u64"], result: "u32" },
  // void g_signal_emitv (const GValue *instance_and_params, guint signal_id, GQuark detail,
  //   GValue *return_value): run off the main thread, since handlers may take the element's lock
  g_signal_emitv_async: {
    name: "g_signal_emitv",
    parameters: ["buffer", "u32", "u32", "pointer"],
    result: "void",
    nonblocking: true,
  },
  // void g_value_set_object (GValue *value, gpointer v_object): takes a reference
  g_value_set_object: { parameters: ["buffer", "pointer"], result: "void" },
  // void g_value_set_boxed (GValue *value, gconstpointer v_boxed): copies it
  g_value_set_boxed: { parameters: ["buffer", "pointer"], result: "void" },
  // GType g_type_from_instance is a macro: the instance's class's first field is its GType
} as const satisfies Deno.ForeignLibraryInterface;

export const sdpTextSymbols = {
  // gchar *gst_sdp_message_as_text (const GstSDPMessage *msg)
  gst_sdp_message_as_text: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libnice, under webrtcbin's ICE agent: which local addresses it gathers candidates on. */
export const niceSymbols = {
  // NiceAddress *nice_address_new (void)
  nice_address_new: { parameters: [], result: "pointer" },
  // gboolean nice_address_set_from_string (NiceAddress *addr, const gchar *str)
  nice_address_set_from_string: { parameters: ["pointer", "buffer"], result: "i32" },
  // void nice_address_free (NiceAddress *addr)
  nice_address_free: { parameters: ["pointer"], result: "void" },
  // gboolean nice_agent_add_local_address (NiceAgent *agent, NiceAddress *addr): the agent then
  //   gathers on the addresses added, loopback ones included, instead of every interface's
  nice_agent_add_local_address: { parameters: ["pointer", "pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;
