/**
 * Gives the memory that released pipelines freed back to the system. glibc keeps freed blocks
 * in its arenas (one per thread that allocated, up to eight per core), so after pipelines come
 * and go the process holds tens of MiB it no longer uses. malloc_trim returns them; it walks
 * every arena under its lock, so it runs on the pool, once the releases have stopped for a while
 * (a steady state has no releases, so it costs nothing there).
 */
import { openLibc } from "../../ffi/libc.ts";

/** How long after the last release the trim runs. */
const TRIM_AFTER_MS = 2000;

let libc: ReturnType<typeof openLibc> | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;

/** A pipeline was freed: trim once no other has been freed for TRIM_AFTER_MS. */
export function trimMemorySoon(): void {
  libc ??= openLibc();
  if (libc === null) return;
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = undefined;
    void libc!.symbols.malloc_trim(0n);
  }, TRIM_AFTER_MS);
  Deno.unrefTimer(timer); // never keeps the process alive
}
