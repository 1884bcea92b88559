/** libglib-2.0 symbols. C signatures in the comments. */
export const glibSymbols = {
  // void g_free (gpointer mem)
  g_free: { parameters: ["pointer"], result: "void" },
  // GMainLoop *g_main_loop_new (GMainContext *context, gboolean is_running)
  g_main_loop_new: { parameters: ["pointer", "i32"], result: "pointer" },
  // void g_main_loop_run (GMainLoop *loop): blocks, so it runs on a pool thread
  g_main_loop_run: {
    parameters: ["pointer"],
    result: "void",
    nonblocking: true,
  },
  // void g_main_loop_quit (GMainLoop *loop)
  g_main_loop_quit: { parameters: ["pointer"], result: "void" },
  // void g_error_free (GError *error)
  g_error_free: { parameters: ["pointer"], result: "void" },
  // void g_list_free (GList *list)
  g_list_free: { parameters: ["pointer"], result: "void" },
  // GList *g_list_concat (GList *list1, GList *list2): list2 joined at list1's end (walks list1)
  g_list_concat: { parameters: ["pointer", "pointer"], result: "pointer" },
  // void g_list_free_full (GList *list, GDestroyNotify free_func): on a pool thread, where a last
  //   reference may finalize an object whose finalize waits (src/gst/rtsp.ts, sessionsByPath)
  g_list_free_full_async: {
    name: "g_list_free_full",
    parameters: ["pointer", "pointer"],
    result: "void",
    nonblocking: true,
  },
  // GError *g_error_new_literal (GQuark domain, gint code, const gchar *message): layout check
  g_error_new_literal: { parameters: ["u32", "i32", "buffer"], result: "pointer" },
  // GList *g_list_append (GList *list, gpointer data): layout check
  g_list_append: { parameters: ["pointer", "pointer"], result: "pointer" },
  // gboolean g_file_test (const gchar *filename, GFileTest test): a stat, on the calling thread
  g_file_test: { parameters: ["buffer", "i32"], result: "i32" },
  // gboolean g_unix_open_pipe (gint *fds, gint flags, GError **error): glib-unix.h
  g_unix_open_pipe: { parameters: ["buffer", "i32", "pointer"], result: "i32" },
  // gchar **g_strsplit (const gchar *string, const gchar *delimiter, gint max_tokens): a new
  //   GStrv (transfer full: whoever takes it frees it with g_strfreev)
  g_strsplit: { parameters: ["buffer", "buffer", "i32"], result: "pointer" },
  // GHashTable *g_hash_table_new_full (GHashFunc hash_func, GEqualFunc key_equal_func,
  //   GDestroyNotify key_destroy_func, GDestroyNotify value_destroy_func): NULL, NULL compare
  //   keys as pointers
  g_hash_table_new_full: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  // gboolean g_hash_table_insert (GHashTable *hash_table, gpointer key, gpointer value)
  g_hash_table_insert: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
  // void g_hash_table_foreach (GHashTable *hash_table, GHFunc func, gpointer user_data): on a pool
  //   thread, where func may wait (src/gst/time_queries.ts)
  g_hash_table_foreach_async: {
    name: "g_hash_table_foreach",
    parameters: ["pointer", "pointer", "pointer"],
    result: "void",
    nonblocking: true,
  },
  // void g_hash_table_unref (GHashTable *hash_table): the last one destroys keys and values
  g_hash_table_unref: { parameters: ["pointer"], result: "void" },
  // gint g_poll (GPollFD *fds, guint nfds, gint timeout): with timeout 0 it never waits
  g_poll: { parameters: ["buffer", "u32", "i32"], result: "i32" },
  // The same with timeout -1, for the bus watch (src/gst/bus_watch.ts): it waits on a pool thread
  // until a descriptor is readable.
  g_poll_async: {
    name: "g_poll",
    parameters: ["buffer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // gboolean g_close (gint fd, GError **error)
  g_close: { parameters: ["i32", "pointer"], result: "i32" },
  // GList *g_list_last (GList *list): layout check
  g_list_last: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libgmodule-2.0: the address of a C function, for C code that takes one. */
export const gmoduleSymbols = {
  // GModule *g_module_open (const gchar *file_name, GModuleFlags flags): a library already loaded
  //   by that name gives the same library, with one more reference
  g_module_open: { parameters: ["buffer", "i32"], result: "pointer" },
  // gboolean g_module_symbol (GModule *module, const gchar *symbol_name, gpointer *symbol)
  g_module_symbol: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // gboolean g_module_close (GModule *module): drops that reference
  g_module_close: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export const G_MODULE_BIND_LAZY = 1;
