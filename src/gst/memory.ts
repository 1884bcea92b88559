/**
 * Gives the memory that released pipelines freed back to the system. glibc keeps freed blocks
 * in its arenas (one per thread that allocated, up to eight per core), so after pipelines come
 * and go the process holds tens of MiB it no longer uses. malloc_trim returns them; it walks
 * every arena under its lock, so it runs on the pool, once the releases have stopped for a while
 * (a steady state has no releases, so it costs nothing there).
 */
import { libc } from "./native.ts";

/**
 * How long after the last release each trim runs. The second comes once idle threads have ended
 * (Deno's pool threads after 10 s, GLib's after 15 s): a thread that ends hands its cached blocks
 * back to its arena, and only a trim after that returns them (README, "Soak").
 */
const TRIM_AFTER_MS = [2000, 20000];

const timers: (ReturnType<typeof setTimeout> | undefined)[] = [];

/** A pipeline was freed: trim once no other has been freed for each of TRIM_AFTER_MS. */
export function trimMemorySoon(): void {
  const c = libc();
  if (c === null) return;
  TRIM_AFTER_MS.forEach((delayMs, i) => {
    clearTimeout(timers[i]);
    timers[i] = setTimeout(() => {
      timers[i] = undefined;
      void c.symbols.malloc_trim(0n);
    }, delayMs);
    Deno.unrefTimer(timers[i]!); // never keeps the process alive
  });
}
