/** libgobject-2.0 symbols. C signatures in the comments. GType is gsize. */
export const gobjectSymbols = {
  // void g_object_unref (gpointer object)
  g_object_unref: { parameters: ["pointer"], result: "void" },
  // gpointer g_object_ref (gpointer object)
  g_object_ref: { parameters: ["pointer"], result: "pointer" },
  // GParamSpec *g_object_class_find_property (GObjectClass *oclass, const gchar *property_name)
  g_object_class_find_property: {
    parameters: ["pointer", "buffer"],
    result: "pointer",
  },
  // GParamSpec **g_object_class_list_properties (GObjectClass *oclass, guint *n_properties)
  g_object_class_list_properties: {
    parameters: ["pointer", "buffer"],
    result: "pointer",
  },
  // void g_object_set_property (GObject *object, const gchar *property_name, const GValue *value)
  g_object_set_property: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "void",
  },
  // void g_object_get_property (GObject *object, const gchar *property_name, GValue *value)
  g_object_get_property: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "void",
  },
  // GValue *g_value_init (GValue *value, GType g_type)
  g_value_init: { parameters: ["buffer", "usize"], result: "pointer" },
  // void g_value_unset (GValue *value)
  g_value_unset: { parameters: ["buffer"], result: "void" },
  // void g_value_reset (GValue *value)
  g_value_reset: { parameters: ["buffer"], result: "pointer" },
  // void g_value_set_string (GValue *value, const gchar *v_string)
  g_value_set_string: { parameters: ["buffer", "buffer"], result: "void" },
  // void g_value_set_boolean (GValue *value, gboolean v_boolean)
  g_value_set_boolean: { parameters: ["buffer", "i32"], result: "void" },
  // const gchar *g_value_get_string (const GValue *value)
  g_value_get_string: { parameters: ["buffer"], result: "pointer" },
  // gboolean g_value_get_boolean (const GValue *value)
  g_value_get_boolean: { parameters: ["buffer"], result: "i32" },
  // gint g_value_get_int (const GValue *value)
  g_value_get_int: { parameters: ["buffer"], result: "i32" },
  // guint g_value_get_uint (const GValue *value)
  g_value_get_uint: { parameters: ["buffer"], result: "u32" },
  // gint64 g_value_get_int64 (const GValue *value)
  g_value_get_int64: { parameters: ["buffer"], result: "i64" },
  // guint64 g_value_get_uint64 (const GValue *value)
  g_value_get_uint64: { parameters: ["buffer"], result: "u64" },
  // gfloat g_value_get_float (const GValue *value)
  g_value_get_float: { parameters: ["buffer"], result: "f32" },
  // gdouble g_value_get_double (const GValue *value)
  g_value_get_double: { parameters: ["buffer"], result: "f64" },
  // gint g_value_get_enum (const GValue *value)
  g_value_get_enum: { parameters: ["buffer"], result: "i32" },
  // guint g_value_get_flags (const GValue *value)
  g_value_get_flags: { parameters: ["buffer"], result: "u32" },
  // gpointer g_value_get_object (const GValue *value)
  g_value_get_object: { parameters: ["buffer"], result: "pointer" },
  // gpointer g_value_get_boxed (const GValue *value)
  g_value_get_boxed: { parameters: ["buffer"], result: "pointer" },
  // gchar *g_strdup_value_contents (const GValue *value)
  g_strdup_value_contents: { parameters: ["buffer"], result: "pointer" },
  // gboolean g_param_value_validate (GParamSpec *pspec, GValue *value)
  g_param_value_validate: { parameters: ["pointer", "buffer"], result: "i32" },
  // void g_param_value_set_default (GParamSpec *pspec, GValue *value)
  g_param_value_set_default: { parameters: ["pointer", "buffer"], result: "void" },
  // const gchar *g_param_spec_get_nick (GParamSpec *pspec)
  g_param_spec_get_nick: { parameters: ["pointer"], result: "pointer" },
  // const gchar *g_param_spec_get_blurb (GParamSpec *pspec)
  g_param_spec_get_blurb: { parameters: ["pointer"], result: "pointer" },
  // GParamSpec *g_param_spec_get_redirect_target (GParamSpec *pspec): NULL unless an override
  g_param_spec_get_redirect_target: { parameters: ["pointer"], result: "pointer" },
  // const gchar *g_type_name (GType type)
  g_type_name: { parameters: ["usize"], result: "pointer" },
  // GType g_type_from_name (const gchar *name)
  g_type_from_name: { parameters: ["buffer"], result: "usize" },
  // GType g_type_fundamental (GType type_id)
  g_type_fundamental: { parameters: ["usize"], result: "usize" },
  // gboolean g_type_is_a (GType type, GType is_a_type)
  g_type_is_a: { parameters: ["usize", "usize"], result: "i32" },
  // gpointer g_type_class_ref (GType type)
  g_type_class_ref: { parameters: ["usize"], result: "pointer" },
  // void g_type_class_unref (gpointer g_class)
  g_type_class_unref: { parameters: ["pointer"], result: "void" },
  // GType g_type_register_static_simple (GType parent_type, const gchar *type_name, guint class_size,
  //   GClassInitFunc class_init, guint instance_size, GInstanceInitFunc instance_init, GTypeFlags flags)
  g_type_register_static_simple: {
    parameters: ["usize", "buffer", "u32", "function", "u32", "pointer", "i32"],
    result: "usize",
  },
  // void g_type_query (GType type, GTypeQuery *query)
  g_type_query: { parameters: ["usize", "buffer"], result: "void" },
  // GObject *g_object_new_with_properties (GType object_type, guint n_properties,
  //   const char *names[], const GValue values[])
  g_object_new_with_properties: {
    parameters: ["usize", "u32", "pointer", "pointer"],
    result: "pointer",
  },
  // void g_object_force_floating (GObject *object)
  g_object_force_floating: { parameters: ["pointer"], result: "void" },
  // gulong g_signal_connect_data (gpointer instance, const gchar *detailed_signal,
  //   GCallback c_handler, gpointer data, GClosureNotify destroy_data, GConnectFlags connect_flags)
  g_signal_connect_data: {
    parameters: ["pointer", "buffer", "function", "pointer", "pointer", "i32"],
    result: "u64",
  },
  // void g_value_set_schar (GValue *value, gint8 v_char): test/gvalue_test.ts
  g_value_set_schar: { parameters: ["buffer", "i8"], result: "void" },
  // gint8 g_value_get_schar (const GValue *value)
  g_value_get_schar: { parameters: ["buffer"], result: "i8" },
  // guchar g_value_get_uchar (const GValue *value)
  g_value_get_uchar: { parameters: ["buffer"], result: "u8" },
  // glong g_value_get_long (const GValue *value): 64-bit on the LP64 systems we run on
  g_value_get_long: { parameters: ["buffer"], result: "i64" },
  // gulong g_value_get_ulong (const GValue *value)
  g_value_get_ulong: { parameters: ["buffer"], result: "u64" },
  // void g_value_set_int (GValue *value, gint v_int): layout check
  g_value_set_int: { parameters: ["buffer", "i32"], result: "void" },
  // const gchar *g_type_name_from_instance (GTypeInstance *instance): layout check
  g_type_name_from_instance: { parameters: ["pointer"], result: "pointer" },
  // const gchar *g_param_spec_get_name (GParamSpec *pspec): layout check
  g_param_spec_get_name: { parameters: ["pointer"], result: "pointer" },
  // GParamSpec *g_param_spec_ref_sink (GParamSpec *pspec)
  g_param_spec_ref_sink: { parameters: ["pointer"], result: "pointer" },
  // void g_param_spec_unref (GParamSpec *pspec)
  g_param_spec_unref: { parameters: ["pointer"], result: "void" },
  // GParamSpec *g_param_spec_char (const gchar *name, const gchar *nick, const gchar *blurb,
  //   gint8 minimum, gint8 maximum, gint8 default_value, GParamFlags flags): layout check
  g_param_spec_char: {
    parameters: ["buffer", "pointer", "pointer", "i8", "i8", "i8", "u32"],
    result: "pointer",
  },
  // GParamSpec *g_param_spec_int (..., gint minimum, gint maximum, gint default_value, flags)
  g_param_spec_int: {
    parameters: ["buffer", "pointer", "pointer", "i32", "i32", "i32", "u32"],
    result: "pointer",
  },
  // GParamSpec *g_param_spec_int64 (..., gint64 minimum, gint64 maximum, gint64 default, flags)
  g_param_spec_int64: {
    parameters: ["buffer", "pointer", "pointer", "i64", "i64", "i64", "u32"],
    result: "pointer",
  },
  // GParamSpec *g_param_spec_float (..., gfloat minimum, gfloat maximum, gfloat default, flags)
  g_param_spec_float: {
    parameters: ["buffer", "pointer", "pointer", "f32", "f32", "f32", "u32"],
    result: "pointer",
  },
  // GParamSpec *g_param_spec_double (..., gdouble minimum, gdouble maximum, gdouble default, flags)
  g_param_spec_double: {
    parameters: ["buffer", "pointer", "pointer", "f64", "f64", "f64", "u32"],
    result: "pointer",
  },
  // GEnumValue *g_enum_get_value (GEnumClass *enum_class, gint value): layout check
  g_enum_get_value: { parameters: ["pointer", "i32"], result: "pointer" },
  // GFlagsValue *g_flags_get_first_value (GFlagsClass *flags_class, guint value): layout check
  g_flags_get_first_value: { parameters: ["pointer", "u32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;
