/**
 * libgstreamer-1.0 symbols. C signatures in the comments.
 * Names ending in `_async` are second declarations of a C symbol with
 * `nonblocking: true`: they run on Deno's FFI thread pool and return a
 * Promise, for calls that may wait on a streaming thread (docs/architecture.md, threading rule 1).
 */
export const gstSymbols = {
  // gboolean gst_init_check (int *argc, char ***argv, GError **error)
  gst_init_check: { parameters: ["pointer", "pointer", "buffer"], result: "i32" },
  // gchar *gst_version_string (void)
  gst_version_string: { parameters: [], result: "pointer" },
  // GstRegistry *gst_registry_get (void)
  gst_registry_get: { parameters: [], result: "pointer" },
  // GstPluginFeature *gst_registry_lookup_feature (GstRegistry *registry, const char *name)
  gst_registry_lookup_feature: {
    parameters: ["pointer", "buffer"],
    result: "pointer",
  },
  // void gst_plugin_feature_set_rank (GstPluginFeature *feature, guint rank)
  gst_plugin_feature_set_rank: { parameters: ["pointer", "u32"], result: "void" },
  // guint gst_plugin_feature_get_rank (GstPluginFeature *feature)
  gst_plugin_feature_get_rank: { parameters: ["pointer"], result: "u32" },
  // const gchar *gst_plugin_feature_get_plugin_name (GstPluginFeature *feature)
  gst_plugin_feature_get_plugin_name: {
    parameters: ["pointer"],
    result: "pointer",
  },
  // GList *gst_registry_get_feature_list (GstRegistry *registry, GType type)
  gst_registry_get_feature_list: { parameters: ["pointer", "usize"], result: "pointer" },
  // GType gst_element_factory_get_type (void)
  gst_element_factory_get_type: { parameters: [], result: "usize" },
  // gchar *gst_value_serialize (const GValue *value)
  gst_value_serialize: { parameters: ["buffer"], result: "pointer" },
  // void gst_plugin_feature_list_free (GList *list)
  gst_plugin_feature_list_free: { parameters: ["pointer"], result: "void" },
  // const gchar *gst_element_factory_get_metadata (GstElementFactory *factory, const gchar *key)
  gst_element_factory_get_metadata: {
    parameters: ["pointer", "buffer"],
    result: "pointer",
  },
  // GstElement *gst_element_factory_make (const gchar *factoryname, const gchar *name)
  gst_element_factory_make: { parameters: ["buffer", "buffer"], result: "pointer" },
  // GstElement *gst_pipeline_new (const gchar *name)
  gst_pipeline_new: { parameters: ["buffer"], result: "pointer" },
  // GstBus *gst_pipeline_get_bus (GstPipeline *pipeline)
  gst_pipeline_get_bus: { parameters: ["pointer"], result: "pointer" },
  // void gst_pipeline_set_auto_flush_bus (GstPipeline *pipeline, gboolean auto_flush)
  gst_pipeline_set_auto_flush_bus: { parameters: ["pointer", "i32"], result: "void" },
  // gboolean gst_bin_add (GstBin *bin, GstElement *element)
  gst_bin_add: { parameters: ["pointer", "pointer"], result: "i32" },
  // gboolean gst_bin_remove (GstBin *bin, GstElement *element)
  gst_bin_remove: { parameters: ["pointer", "pointer"], result: "i32" },
  // GstElement *gst_element_factory_make_with_properties (const gchar *factoryname, guint n,
  //                                                       const gchar *names[], const GValue values[])
  gst_element_factory_make_with_properties: {
    parameters: ["buffer", "u32", "buffer", "buffer"],
    result: "pointer",
  },
  // GstIterator *gst_bin_iterate_sinks (GstBin *bin)
  gst_bin_iterate_sinks: { parameters: ["pointer"], result: "pointer" },
  // GstIteratorResult gst_iterator_next (GstIterator *it, GValue *elem)
  gst_iterator_next: { parameters: ["pointer", "buffer"], result: "i32" },
  // void gst_iterator_resync (GstIterator *it)
  gst_iterator_resync: { parameters: ["pointer"], result: "void" },
  // void gst_iterator_free (GstIterator *it)
  gst_iterator_free: { parameters: ["pointer"], result: "void" },
  // gboolean gst_element_link (GstElement *src, GstElement *dest)
  gst_element_link: { parameters: ["pointer", "pointer"], result: "i32" },
  // GstStateChangeReturn gst_element_set_state (GstElement *element, GstState state)
  gst_element_set_state_async: {
    name: "gst_element_set_state",
    parameters: ["pointer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // GstStateChangeReturn gst_element_get_state (GstElement *element, GstState *state,
  //   GstState *pending, GstClockTime timeout): timeout 0 returns at once
  gst_element_get_state: {
    parameters: ["pointer", "buffer", "buffer", "u64"],
    result: "i32",
  },
  gst_element_get_state_async: {
    name: "gst_element_get_state",
    parameters: ["pointer", "buffer", "buffer", "u64"],
    result: "i32",
    nonblocking: true,
  },
  // void gst_mini_object_unref (GstMiniObject *mini_object): also how tokens, permissions and
  //   queries are released (their *_unref functions are inline wrappers, not symbols)
  gst_mini_object_unref: { parameters: ["pointer"], result: "void" },
  // GstMiniObject *gst_mini_object_ref (GstMiniObject *mini_object)
  gst_mini_object_ref: { parameters: ["pointer"], result: "pointer" },
  // GstPad *gst_element_get_static_pad (GstElement *element, const gchar *name)
  gst_element_get_static_pad: { parameters: ["pointer", "buffer"], result: "pointer" },
  // GstCaps *gst_pad_query_caps (GstPad *pad, GstCaps *filter)
  gst_pad_query_caps: { parameters: ["pointer", "pointer"], result: "pointer" },
  // gchar *gst_caps_to_string (const GstCaps *caps)
  gst_caps_to_string: { parameters: ["pointer"], result: "pointer" },
  // void gst_caps_unref (GstCaps *caps)
  gst_caps_unref: { parameters: ["pointer"], result: "void" },
  // GstMessage *gst_bus_pop_filtered (GstBus *bus, GstMessageType types): never waits
  gst_bus_pop_filtered: { parameters: ["pointer", "i32"], result: "pointer" },
  // void gst_bus_set_flushing (GstBus *bus, gboolean flushing)
  gst_bus_set_flushing: { parameters: ["pointer", "i32"], result: "void" },
  // void gst_bus_get_pollfd (GstBus *bus, GPollFD *fd): readable while a message waits
  gst_bus_get_pollfd: { parameters: ["pointer", "buffer"], result: "void" },
  // GstBus *gst_bus_new (void): layout check
  gst_bus_new: { parameters: [], result: "pointer" },
  // gboolean gst_bus_post (GstBus *bus, GstMessage *message): takes the message; layout check
  gst_bus_post: { parameters: ["pointer", "pointer"], result: "i32" },
  // void gst_message_unref (GstMessage *msg)
  gst_message_unref: { parameters: ["pointer"], result: "void" },
  // void gst_message_parse_error (GstMessage *message, GError **gerror, gchar **debug)
  gst_message_parse_error: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "void",
  },
  // void gst_message_parse_warning (GstMessage *message, GError **gerror, gchar **debug)
  gst_message_parse_warning: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "void",
  },
  // void gst_message_parse_state_changed (GstMessage *message, GstState *oldstate,
  //   GstState *newstate, GstState *pending)
  gst_message_parse_state_changed: {
    parameters: ["pointer", "buffer", "buffer", "buffer"],
    result: "void",
  },
  // gchar *gst_object_get_name (GstObject *object)
  gst_object_get_name: { parameters: ["pointer"], result: "pointer" },
  // GstObject *gst_object_get_parent (GstObject *object): with a reference, or NULL
  gst_object_get_parent: { parameters: ["pointer"], result: "pointer" },
  // GstQuery *gst_query_new_position (GstFormat format): position -1 until an element answers
  gst_query_new_position: { parameters: ["i32"], result: "pointer" },
  // GstQuery *gst_query_new_duration (GstFormat format): duration -1 until an element answers
  gst_query_new_duration: { parameters: ["i32"], result: "pointer" },
  // void gst_query_parse_position (GstQuery *query, GstFormat *format, gint64 *cur)
  gst_query_parse_position: { parameters: ["pointer", "pointer", "buffer"], result: "void" },
  // void gst_query_parse_duration (GstQuery *query, GstFormat *format, gint64 *duration)
  gst_query_parse_duration: { parameters: ["pointer", "pointer", "buffer"], result: "void" },
  // gpointer gst_object_ref (gpointer object)
  gst_object_ref: { parameters: ["pointer"], result: "pointer" },
  // gpointer gst_object_ref_sink (gpointer object)
  gst_object_ref_sink: { parameters: ["pointer"], result: "pointer" },
  // void gst_object_unref (gpointer object)
  gst_object_unref: { parameters: ["pointer"], result: "void" },
  // gboolean gst_value_deserialize (GValue *dest, const gchar *src)
  gst_value_deserialize: { parameters: ["buffer", "buffer"], result: "i32" },
  // gboolean gst_structure_get_uint64 (const GstStructure *structure,
  //   const gchar *fieldname, guint64 *value)
  gst_structure_get_uint64: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  // void gst_structure_free (GstStructure *structure)
  gst_structure_free: { parameters: ["pointer"], result: "void" },
  // gchar *gst_structure_to_string (const GstStructure *structure)
  gst_structure_to_string: { parameters: ["pointer"], result: "pointer" },
  // GstBuffer *gst_buffer_new_memdup (gconstpointer data, gsize size): copies the bytes
  gst_buffer_new_memdup: { parameters: ["buffer", "usize"], result: "pointer" },
  // gsize gst_buffer_get_size (GstBuffer *buffer)
  gst_buffer_get_size: { parameters: ["pointer"], result: "usize" },
  // GstBuffer *gst_sample_get_buffer (GstSample *sample): transfer none
  gst_sample_get_buffer: { parameters: ["pointer"], result: "pointer" },
  // GstCaps *gst_sample_get_caps (GstSample *sample): transfer none
  gst_sample_get_caps: { parameters: ["pointer"], result: "pointer" },
  // GstEvent *gst_event_new_eos (void)
  gst_event_new_eos: { parameters: [], result: "pointer" },
  // GstEvent *gst_event_new_flush_start (void)
  gst_event_new_flush_start: { parameters: [], result: "pointer" },
  // const gchar *gst_event_type_get_name (GstEventType type)
  gst_event_type_get_name: { parameters: ["i32"], result: "pointer" },
  // GstEvent *gst_event_new_custom (GstEventType type, GstStructure *structure): takes it
  gst_event_new_custom: { parameters: ["i32", "pointer"], result: "pointer" },
  // GstStructure *gst_structure_new_from_string (const gchar *string)
  gst_structure_new_from_string: { parameters: ["buffer"], result: "pointer" },
  // gboolean gst_element_send_event (GstElement *element, GstEvent *event): takes the event
  gst_element_send_event_async: {
    name: "gst_element_send_event",
    parameters: ["pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // GstElement *gst_bin_new (const gchar *name)
  gst_bin_new: { parameters: ["buffer"], result: "pointer" },
  // GstCaps *gst_pad_get_current_caps (GstPad *pad)
  gst_pad_get_current_caps: { parameters: ["pointer"], result: "pointer" },
  // guint gst_caps_get_size (const GstCaps *caps)
  gst_caps_get_size: { parameters: ["pointer"], result: "u32" },
  // GstStructure *gst_caps_get_structure (const GstCaps *caps, guint index)
  gst_caps_get_structure: { parameters: ["pointer", "u32"], result: "pointer" },
  // const gchar *gst_structure_get_name (const GstStructure *structure)
  gst_structure_get_name: { parameters: ["pointer"], result: "pointer" },
  // GType gst_structure_get_type (void)
  gst_structure_get_type: { parameters: [], result: "usize" },
  // GType gst_element_get_type (void)
  gst_element_get_type: { parameters: [], result: "usize" },
  // GType gst_pad_get_type (void)
  gst_pad_get_type: { parameters: [], result: "usize" },
  // GstIterator *gst_element_iterate_sink_pads (GstElement *element)
  gst_element_iterate_sink_pads: { parameters: ["pointer"], result: "pointer" },
  // GstIterator *gst_element_iterate_src_pads (GstElement *element)
  gst_element_iterate_src_pads: { parameters: ["pointer"], result: "pointer" },
  // GstIterator *gst_bin_iterate_sources (GstBin *bin)
  gst_bin_iterate_sources: { parameters: ["pointer"], result: "pointer" },
  // GstElementFactory *gst_element_factory_find (const gchar *name): transfer full, or NULL
  gst_element_factory_find: { parameters: ["buffer"], result: "pointer" },
  // GstPluginFeature *gst_plugin_feature_load (GstPluginFeature *feature): transfer full, or NULL
  gst_plugin_feature_load: { parameters: ["pointer"], result: "pointer" },
  // GType gst_element_factory_get_element_type (GstElementFactory *factory): 0 until loaded
  gst_element_factory_get_element_type: { parameters: ["pointer"], result: "usize" },
  // const GList *gst_element_factory_get_static_pad_templates (GstElementFactory *factory)
  gst_element_factory_get_static_pad_templates: {
    parameters: ["pointer"],
    result: "pointer",
  },
  // GstCaps *gst_static_caps_get (GstStaticCaps *static_caps): transfer full
  gst_static_caps_get: { parameters: ["pointer"], result: "pointer" },
  // gboolean gst_element_link_pads (GstElement *src, const gchar *srcpadname,
  //                                 GstElement *dest, const gchar *destpadname)
  // A NULL pad name picks any compatible pad, requesting one from a request template if needed.
  gst_element_link_pads: {
    parameters: ["pointer", "buffer", "pointer", "buffer"],
    result: "i32",
  },
  // gboolean gst_element_seek (GstElement *element, gdouble rate, GstFormat format,
  //   GstSeekFlags flags, GstSeekType start_type, gint64 start, GstSeekType stop_type, gint64 stop)
  // A flushing seek waits for the streaming threads: never on the main thread.
  gst_element_seek_async: {
    name: "gst_element_seek",
    parameters: ["pointer", "f64", "i32", "i32", "i32", "i64", "i32", "i64"],
    result: "i32",
    nonblocking: true,
  },
  // GstEvent *gst_event_new_seek (gdouble rate, GstFormat format, GstSeekFlags flags,
  //   GstSeekType start_type, gint64 start, GstSeekType stop_type, gint64 stop)
  gst_event_new_seek: {
    parameters: ["f64", "i32", "i32", "i32", "i64", "i32", "i64"],
    result: "pointer",
  },
  // gboolean gst_pad_push_event (GstPad *pad, GstEvent *event): takes the event; an upstream
  //   event pushed from a sink pad runs the upstream elements' handlers, a source's seek among
  //   them (it waits for the stream lock), so never on the main thread
  gst_pad_push_event_async: {
    name: "gst_pad_push_event",
    parameters: ["pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // gchar *gst_debug_bin_to_dot_data (GstBin *bin, GstDebugGraphDetails details): transfer full
  gst_debug_bin_to_dot_data_async: {
    name: "gst_debug_bin_to_dot_data",
    parameters: ["pointer", "i32"],
    result: "pointer",
    nonblocking: true,
  },
  // GstPad *gst_pad_get_peer (GstPad *pad): transfer full, or NULL
  gst_pad_get_peer: { parameters: ["pointer"], result: "pointer" },
  // gboolean gst_pad_send_event (GstPad *pad, GstEvent *event): takes the event; a serialized
  //   event on a sink pad waits for the pad's stream lock, so never on the main thread
  gst_pad_send_event_async: {
    name: "gst_pad_send_event",
    parameters: ["pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // GstMessage *gst_message_new_eos (GstObject *src): layout check
  gst_message_new_eos: { parameters: ["pointer"], result: "pointer" },
  // GType gst_state_get_type (void): layout check
  gst_state_get_type: { parameters: [], result: "usize" },
  // GType gst_seek_flags_get_type (void): layout check
  gst_seek_flags_get_type: { parameters: [], result: "usize" },
  // gst_element_link_pads on a pool thread: linking in NULL touches no streaming thread, but a
  // long chain queries caps along everything linked so far (docs/architecture.md: building).
  gst_element_link_pads_async: {
    name: "gst_element_link_pads",
    parameters: ["pointer", "buffer", "pointer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;
