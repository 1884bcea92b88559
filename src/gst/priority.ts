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

/**
 * Gives the calling thread (call it on the main thread) the nice value `nice`, below 0; only from
 * nice 0 under the default policy. A process started otherwise (`nice -n 5`, a service's Nice= or
 * a real-time policy) keeps what it was given: the threads started later would go back to nice 0
 * and the default policy, not to what the process was started with.
 */
export function raiseThisThread(nice: number): PriorityResult {
  const c = libc();
  if (c === null) return { raised: false, reason: "thread priorities are set through glibc" };
  const errnoLocation = c.symbols.__errno_location();
  const errno = errnoLocation === null
    ? new Int32Array(1)
    : new Int32Array(Deno.UnsafePointerView.getArrayBuffer(errnoLocation, 4));
  const policy = c.symbols.sched_getscheduler(0);
  errno[0] = 0;
  const startedNice = c.symbols.getpriority(PRIO_PROCESS, 0);
  if (policy === -1 || (startedNice === -1 && errno[0] !== 0)) {
    return { raised: false, reason: `its priority could not be read (errno ${errno[0]})` };
  }
  if (policy !== SCHED_OTHER || startedNice !== 0) {
    return {
      raised: false,
      reason: `the process was started at nice ${startedNice}` +
        (policy !== SCHED_OTHER ? ` with scheduling policy ${policy}` : "") +
        ", which the server keeps (it raises the main thread only from nice 0)",
    };
  }
  const noRealtimePriority = new Int32Array(1); // struct sched_param, 0 for SCHED_OTHER
  if (
    c.symbols.sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, noRealtimePriority) !== 0
  ) {
    return { raised: false, reason: `sched_setscheduler failed (errno ${errno[0]})` };
  }
  if (c.symbols.setpriority(PRIO_PROCESS, 0, nice) !== 0) {
    const code = errno[0];
    return {
      raised: false,
      reason: code === EPERM || code === EACCES
        ? `nice ${nice} needs CAP_SYS_NICE (Docker: --cap-add SYS_NICE) or RLIMIT_NICE of at ` +
          `least ${20 - nice} (systemd: LimitNICE=${nice}); requests wait longer while ` +
          "pipelines keep the CPU busy"
        : `setpriority failed (errno ${code})`,
    };
  }
  return { raised: true };
}
