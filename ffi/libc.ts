/**
 * The C library (glibc, Linux only): malloc_trim (src/gst/memory.ts), and the address of a C
 * function for C code that takes one (src/gst/native.ts, functionAddress).
 */
export const libcSymbols = {
  // int malloc_trim (size_t pad): walks every malloc arena, so it runs on the pool
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
  // void *dlopen (const char *filename, int flags): with RTLD_NOLOAD, a library already loaded
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  // void *dlsym (void *handle, const char *symbol)
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

export const RTLD_LAZY = 0x1;
export const RTLD_NOLOAD = 0x4;

/** glibc, or null elsewhere (macOS, musl): nothing to trim then. */
export function openLibc(): Deno.DynamicLibrary<typeof libcSymbols> | null {
  if (Deno.build.os !== "linux") return null;
  try {
    return Deno.dlopen("libc.so.6", libcSymbols);
  } catch {
    return null;
  }
}
