/**
 * Where a request's time goes inside the server: the domain reports each phase of a pipeline's
 * life as it ends, and /metrics shows them (gstreamer_phase_duration_seconds). Only phases that
 * succeed, and starts and stops that change the state, are reported: a refusal ends early, and a
 * start of what already plays does nothing, and either would read as speed.
 */

/**
 * - `build`: a pipeline made from its definition (elements, properties, links), in NULL;
 * - `store_write`: a pipeline's row written and on disk (insert, desired state, removal);
 * - `start`: a pipeline brought to PLAYING or PAUSED from another state, as GStreamer confirms it;
 * - `stop`: a pipeline brought to NULL from another state.
 */
export type Phase = "build" | "store_write" | "start" | "stop";

/** Told each phase's duration as it ends. */
export type PhaseObserver = (phase: Phase, milliseconds: number) => void;

/**
 * Runs `work` now and tells `observe` how long it took, its synchronous part included, once it
 * succeeds.
 */
export function timed<T>(observe: PhaseObserver, phase: Phase, work: () => Promise<T>): Promise<T> {
  const startedAt = performance.now();
  return work().then((value) => {
    observe(phase, performance.now() - startedAt);
    return value;
  });
}
