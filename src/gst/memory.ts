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
 * back to its arena, and only a trim after that returns them (docs/measurements.md, "Soak").
 */
const TRIM_AFTER_MS = [2000, 20000];

const timers: (ReturnType<typeof setTimeout> | undefined)[] = [];

/** mallopt parameters (malloc.h). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/** The environment settings through which glibc takes the same thresholds at start. */
const USER_THRESHOLDS = [
  /glibc\.malloc\.(mmap|trim)_threshold/,
  "MALLOC_MMAP_THRESHOLD_",
  "MALLOC_TRIM_THRESHOLD_",
];

/** Set, or why not. */
export type KeepResult = { kept: true } | { kept: false; reason: string };

/**
 * Blocks up to `mib` MiB come from malloc's arenas, and up to twice that of freed memory stays at
 * the top of each arena, mapped, for the next pipeline's buffers. By default glibc maps blocks from
 * 128 KiB up fresh and unmaps them on free, or trims an arena whose free top passes twice the
 * largest such block seen; a raw frame is hundreds of KiB, so pipelines made and deleted at once
 * faulted in every page of every buffer anew (test/memory_test.ts counts the faults;
 * docs/measurements.md has the CPU). malloc_trim does not shrink a thread's arena's top: what stays
 * there is bounded by the trim threshold. `environment` is the process's: thresholds set there
 * (GLIBC_TUNABLES, MALLOC_*_THRESHOLD_) are the user's choice and stay.
 */
export function keepFreedBlocks(
  mib: number,
  environment: Record<string, string | undefined>,
): KeepResult {
  const c = libc();
  if (c === null) return { kept: false, reason: "the thresholds are glibc's" };
  const named = USER_THRESHOLDS.find((setting) =>
    typeof setting === "string"
      ? environment[setting] !== undefined
      : setting.test(environment.GLIBC_TUNABLES ?? "")
  );
  if (named !== undefined) {
    const where = typeof named === "string" ? named : "GLIBC_TUNABLES";
    return { kept: false, reason: `${where} sets malloc's thresholds, and they stay` };
  }
  const bytes = mib * 1024 * 1024;
  // Setting either ends glibc's adaptive thresholds, so both are set.
  if (
    c.symbols.mallopt(M_MMAP_THRESHOLD, bytes) !== 1 ||
    c.symbols.mallopt(M_TRIM_THRESHOLD, 2 * bytes) !== 1
  ) {
    return { kept: false, reason: `mallopt refused ${mib} MiB` };
  }
  return { kept: true };
}

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
