/** libgio-2.0 symbols. C signatures in the comments. */
export const gioSymbols = {
  // gboolean g_socket_set_option (GSocket *socket, gint level, gint optname, gint value,
  //   GError **error): a setsockopt of an int; FALSE (with errno's GError) when refused
  g_socket_set_option: {
    parameters: ["pointer", "i32", "i32", "i32", "pointer"],
    result: "i32",
  },
  // gboolean g_socket_shutdown (GSocket *socket, gboolean shutdown_read, gboolean shutdown_write,
  //   GError **error): shutdown(2), which any thread may call; FALSE on a socket already closed
  g_socket_shutdown: { parameters: ["pointer", "i32", "i32", "pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;
