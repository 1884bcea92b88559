/**
 * A pipeline's restart policy: whether a run that ended is started again, and after how long.
 * Restarts wait 1 s, doubling per failure up to a minute; a minute of PLAYING resets that.
 */
import type { RestartPolicy } from "./spec.ts";

const RESTART_BASE_MS = 1000;
const RESTART_MAX_MS = 60_000;
const HEALTHY_AFTER_MS = 60_000;

export interface SupervisorHooks {
  /** Whether the pipeline still wants to run when the back-off is over. */
  wanted(): boolean;
  /** Starts the pipeline again (a failed attempt schedules the next one itself). */
  restart(): void;
  /** Tells the world a restart is scheduled (pipelineRestarting). */
  scheduled(attempt: number, delayMs: number, reason: string): void;
}

export class Supervisor {
  /** Times the pipeline was started again by this supervisor. */
  restarts = 0;
  /** Failures since it was last healthy for a minute: the back-off doubles with each. */
  #failureStreak = 0;
  #pending: { timer: ReturnType<typeof setTimeout>; delayMs: number } | null = null;

  constructor(readonly policy: RestartPolicy, readonly hooks: SupervisorHooks) {}

  /** Whether a run that ended this way is started again under the policy. */
  restartsAfter(how: "error" | "eos" | "start failed"): boolean {
    return this.policy === "always" || (this.policy === "on-failure" && how !== "eos");
  }

  /**
   * Starts the pipeline again after the back-off; returns the delay. Only one restart is
   * pending at a time. `playingSince` is when the run that ended reached PLAYING.
   */
  schedule(reason: string, playingSince: number | null): number {
    if (this.#pending) return this.#pending.delayMs;
    const healthy = playingSince !== null && performance.now() - playingSince >= HEALTHY_AFTER_MS;
    if (healthy) this.#failureStreak = 0;
    const delayMs = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** this.#failureStreak);
    this.#failureStreak++;
    const timer = setTimeout(() => {
      this.#pending = null;
      if (!this.hooks.wanted()) return;
      this.restarts++;
      this.hooks.restart();
    }, delayMs);
    this.#pending = { timer, delayMs };
    this.hooks.scheduled(this.restarts + 1, delayMs, reason);
    return delayMs;
  }

  cancel(): void {
    if (!this.#pending) return;
    clearTimeout(this.#pending.timer);
    this.#pending = null;
  }
}
