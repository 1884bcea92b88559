/**
 * Whether another process runs, asked of the kernel with kill(pid, 0): Deno refuses /proc/PID to
 * any permission short of --allow-all, and Deno.kill needs --allow-run, which the server has not.
 */
import { libc } from "./native.ts";

const EPERM = 1;

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
