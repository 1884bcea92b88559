/**
 * The main thread runs every request, event and stats round, and the pipelines' streaming threads
 * are many. Linux shares a busy CPU equally between threads, so with pipelines that keep the CPU
 * busy the main thread got a small share, and every request waited for it. A lower nice value
 * gives it back its share. Only the main thread's: the threads it starts afterwards (Deno's pool,
 * which starts GStreamer's) begin at the default priority (SCHED_RESET_ON_FORK), so the media keeps
 * its place beside other processes.
 */
import { libc } from "./native.ts";

const SCHED_OTHER = 0;
const SCHED_RESET_ON_FORK = 0x40000000;
const PRIO_PROCESS = 0;
const EPERM = 1;
const EACCES = 13;

/** Raised, or why not. */
export type PriorityResult = { raised: true } | { raised: false; reason: string };

/** Gives the calling thread (call it on the main thread) the nice value `nice`, below 0. */
export function raiseThisThread(nice: number): PriorityResult {
  const c = libc();
  if (c === null) return { raised: false, reason: "thread priorities are set through glibc" };
  const errno = () => {
    const location = c.symbols.__errno_location();
    return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
  };
  const noRealtimePriority = new Int32Array(1); // struct sched_param, 0 for SCHED_OTHER
  if (
    c.symbols.sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, noRealtimePriority) !== 0
  ) {
    return { raised: false, reason: `sched_setscheduler failed (errno ${errno()})` };
  }
  if (c.symbols.setpriority(PRIO_PROCESS, 0, nice) !== 0) {
    const code = errno();
    return {
      raised: false,
      reason: code === EPERM || code === EACCES
        ? `nice ${nice} needs CAP_SYS_NICE (Docker: --cap-add SYS_NICE) or RLIMIT_NICE of at ` +
          `least ${20 - nice} (systemd: LimitNICE=${nice})`
        : `setpriority failed (errno ${code})`,
    };
  }
  return { raised: true };
}
