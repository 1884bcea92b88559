/**
 * Whether another process runs, asked of the kernel with kill(pid, 0), and how many files this one
 * has open, counted through the C library: Deno refuses /proc/PID and /proc/self/fd to any
 * permission short of --allow-all, and Deno.kill needs --allow-run, which the server has not.
 */
import { cstr, libc } from "./native.ts";

const EPERM = 1;
const RLIMIT_NOFILE = 7;

/** True while `pid` runs (ours or another user's); also when it cannot be told (not glibc). */
export function processRuns(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const c = libc();
  if (c === null) return true; // cannot tell: whatever it owns is kept
  if (c.symbols.kill(pid, 0) === 0) return true;
  const errnoLocation = c.symbols.__errno_location();
  // EPERM: it runs, as another user; ESRCH: no such process.
  return errnoLocation !== null && new Deno.UnsafePointerView(errnoLocation).getInt32() === EPERM;
}

/**
 * This process's open file descriptors and the most it may open (the soft RLIMIT_NOFILE, which
 * Deno raises to the hard one at start); null where that cannot be told (not glibc, no /proc).
 * GStreamer aborts on a CRITICAL when it runs out, so what opens many checks first.
 */
export function descriptorUse(): { open: number; limit: number } | null {
  const c = libc();
  if (c === null) return null;
  const limits = new BigUint64Array(2); // struct rlimit: rlim_cur, rlim_max
  if (c.symbols.getrlimit(RLIMIT_NOFILE, limits) !== 0) return null;
  const dir = c.symbols.opendir(cstr("/proc/self/fd"));
  if (dir === null) return null;
  let entries = 0;
  try {
    while (c.symbols.readdir(dir) !== null) entries++;
  } finally {
    c.symbols.closedir(dir);
  }
  // Less ".", ".." and the descriptor the listing itself holds.
  return { open: entries - 3, limit: Number(limits[0]) };
}
