/**
 * Whether another process runs, asked of the kernel with kill(pid, 0), and how many files this one
 * has open, counted through the C library: Deno refuses /proc/PID and /proc/self/fd to any
 * permission short of --allow-all, and Deno.kill needs --allow-run, which the server has not. And
 * a lock file taken without waiting, which Deno's FsFile.lock cannot do.
 */
import { cstr, libc } from "./native.ts";

const EPERM = 1;
const EWOULDBLOCK = 11;
const RLIMIT_NOFILE = 7;
const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_CLOEXEC = 0o2000000;
const LOCK_EX = 2;
const LOCK_NB = 4;

/** True while `pid` runs (ours or another user's); also when it cannot be told (not glibc). */
export function processRuns(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const c = libc();
  if (c === null) return true; // cannot tell: whatever it owns is kept
  if (c.symbols.kill(pid, 0) === 0) return true;
  // EPERM: it runs, as another user; ESRCH: no such process.
  return errno(c) === EPERM;
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

/** The calling thread's errno, read right after a call that failed. */
function errno(c: NonNullable<ReturnType<typeof libc>>): number {
  const location = c.symbols.__errno_location();
  return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
}

/**
 * Takes `path` (made if missing) for this process until it ends, however it ends: an exclusive
 * flock, which the kernel lets go with the process. Null once taken, or where it cannot be told
 * (not glibc); else the process that holds it, as it wrote itself into the file (0: unknown).
 */
export function holdLockFile(path: string): { heldBy: number } | null {
  const c = libc();
  if (c === null) return null;
  const fd = c.symbols.open(cstr(path), O_RDWR | O_CREAT | O_CLOEXEC, 0o644);
  if (fd < 0) throw new Error(`Cannot open ${path} (errno ${errno(c)})`);
  if (c.symbols.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const error = errno(c);
    c.symbols.close(fd);
    if (error !== EWOULDBLOCK) throw new Error(`Cannot lock ${path} (errno ${error})`);
    const heldBy = Number.parseInt(Deno.readTextFileSync(path), 10);
    return { heldBy: Number.isInteger(heldBy) ? heldBy : 0 };
  }
  // The descriptor stays open, and with it the lock; another descriptor writes the number.
  Deno.writeTextFileSync(path, `${Deno.pid}\n`);
  return null;
}
