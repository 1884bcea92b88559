/**
 * The C library (glibc, Linux only): malloc_trim and mallopt (src/gst/memory.ts), getrusage
 * (src/gst/cpu_time.ts), the calling thread's scheduling (src/gst/priority.ts) and timer slack
 * (src/gst/timer_slack.ts), whether a process runs, its open files and a lock file
 * (src/gst/process.ts).
 */
export const libcSymbols = {
  // int malloc_trim (size_t pad): walks every malloc arena, so it runs on the pool
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
  // int mallopt (int param, int value): sets a field under the main arena's lock, once at start
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  // int getrusage (int who, struct rusage *usage): the kernel sums every thread of the process,
  // one or two per running pipeline, so it runs on the pool
  getrusage: { parameters: ["i32", "buffer"], result: "i32", nonblocking: true },
  // int sched_setscheduler (pid_t pid, int policy, const struct sched_param *param): pid 0 is
  // the calling thread, so it runs on it
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  // int sched_getscheduler (pid_t pid): the calling thread's policy for pid 0
  sched_getscheduler: { parameters: ["i32"], result: "i32" },
  // int getpriority (int which, id_t who): the calling thread's nice for who 0; -1 is a nice value
  // too, so errno tells a failure
  getpriority: { parameters: ["i32", "u32"], result: "i32" },
  // int setpriority (int which, id_t who, int prio): on Linux, who 0 is the calling thread
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  // int prctl (int option, unsigned long arg2, ...): PR_SET_TIMERSLACK and PR_GET_TIMERSLACK act
  // on the calling thread, so it runs on it
  prctl: { parameters: ["i32", "u64"], result: "i32" },
  // int kill (pid_t pid, int sig): signal 0 only asks whether the process exists
  kill: { parameters: ["i32", "i32"], result: "i32" },
  // int getrlimit (int resource, struct rlimit *rlim): RLIMIT_NOFILE, the open-file limit
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  // DIR *opendir (const char *name), struct dirent *readdir (DIR *dirp), int closedir (DIR *dirp):
  // counting /proc/self/fd, which Deno opens only to --allow-all
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  // int open (const char *path, int flags, mode_t mode) and int flock (int fd, int operation):
  // the data directory's lock file, taken without waiting (src/gst/process.ts)
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // int *__errno_location (void): the calling thread's errno, read right after a failed call
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** glibc, or null elsewhere (macOS, musl): nothing is trimmed or raised then. */
export function openLibc(): Deno.DynamicLibrary<typeof libcSymbols> | null {
  if (Deno.build.os !== "linux") return null;
  try {
    return Deno.dlopen("libc.so.6", libcSymbols);
  } catch {
    return null;
  }
}
