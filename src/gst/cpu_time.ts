/**
 * The CPU time this process has used, every thread's. The kernel adds up the threads when asked,
 * and with one or two streaming threads per pipeline that is long work with hundreds of live
 * pipelines (node:process's cpuUsage blocks the main thread for it, once a stats round), so where
 * glibc is there it is asked on the pool.
 */
import process from "node:process";
import { libc } from "./native.ts";

const RUSAGE_SELF = 0;

/** User and system CPU time used so far, in microseconds. */
export async function processCpuMicros(): Promise<number> {
  const c = libc();
  if (c === null) {
    const { user, system } = process.cpuUsage();
    return user + system;
  }
  // struct rusage begins with ru_utime and ru_stime, each a struct timeval of two 64-bit fields.
  const usage = new BigInt64Array(18);
  if (await c.symbols.getrusage(RUSAGE_SELF, usage) !== 0) {
    throw new Error("getrusage failed");
  }
  const [userSeconds, userMicros, systemSeconds, systemMicros] = usage;
  return Number(userSeconds + systemSeconds) * 1_000_000 + Number(userMicros + systemMicros);
}
