/** The C library (glibc, Linux only): malloc_trim (src/gst/memory.ts). */
export const libcSymbols = {
  // int malloc_trim (size_t pad): walks every malloc arena, so it runs on the pool
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** glibc, or null elsewhere (macOS, musl): nothing to trim then. */
export function openLibc(): Deno.DynamicLibrary<typeof libcSymbols> | null {
  if (Deno.build.os !== "linux") return null;
  try {
    return Deno.dlopen("libc.so.6", libcSymbols);
  } catch {
    return null;
  }
}
