/** The C library (glibc, Linux only): malloc_trim (src/gst/memory.ts), getrusage (src/gst/cpu_time.ts). */
export const libcSymbols = {
  // int malloc_trim (size_t pad): walks every malloc arena, so it runs on the pool
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
  // int getrusage (int who, struct rusage *usage): the kernel sums every thread of the process,
  // one or two per running pipeline, so it runs on the pool
  getrusage: { parameters: ["i32", "buffer"], result: "i32", nonblocking: true },
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
