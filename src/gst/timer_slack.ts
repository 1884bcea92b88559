/**
 * Timer slack: how much later than asked the kernel may fire a thread's timer, so that timers due
 * close together are served in one wake-up. Every live pipeline wakes its streaming thread on a
 * clock wait at every frame: 200 of them at 30 frames a second are 6000 timers a second, which at
 * the kernel's default slack (50 µs) each cost a wake-up of their own. A wider slack lets them share
 * wake-ups, at the cost of each firing up to that much late: 1 ms by default, a small part of a
 * frame (33 ms at 30 fps) or of an RTP jitter buffer's latency (200 ms by default).
 *
 * A thread starts with the slack of the thread that started it, so the main thread's reaches the
 * threads it starts afterwards: Deno's pool threads, and from them GStreamer's streaming threads.
 * Not the few pool threads Deno started before this code ran (one of them carries the GLib loop of
 * gst-rtsp-server), nor the streaming threads those start: another thread's slack can be set only
 * through /proc, which needs CAP_SYS_NICE, and which Deno opens only to --allow-all. A process
 * started with the slack (systemd's TimerSlackNSec=) has it on every thread.
 */
import { libc } from "./native.ts";

const PR_SET_TIMERSLACK = 29;
const PR_GET_TIMERSLACK = 30;
/** The kernel's slack for a process no one changed it for (prctl(2)). */
const KERNEL_DEFAULT_SLACK_NS = 50_000;

/** Widened, or why not. */
export type TimerSlackResult =
  | { widened: true }
  | { widened: false; reason: string };

/**
 * Gives the calling thread (call it on the main thread, first) a timer slack of `microseconds`. A
 * process started with another slack (systemd's TimerSlackNSec=) keeps it: that was asked for.
 */
export function widenTimerSlack(microseconds: number): TimerSlackResult {
  const c = libc();
  if (c === null) return { widened: false, reason: "timer slack is set through glibc" };
  const startedNs = c.symbols.prctl(PR_GET_TIMERSLACK, 0n);
  if (startedNs !== KERNEL_DEFAULT_SLACK_NS) {
    return {
      widened: false,
      reason: `the process was started with a slack of ${
        startedNs / 1000
      } µs, which the server keeps`,
    };
  }
  const slackNs = microseconds * 1000;
  if (c.symbols.prctl(PR_SET_TIMERSLACK, BigInt(slackNs)) !== 0) {
    return { widened: false, reason: "prctl(PR_SET_TIMERSLACK) failed" };
  }
  return { widened: true };
}
