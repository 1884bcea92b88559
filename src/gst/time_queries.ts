/**
 * Position and duration queries of many pipelines in one trip to a thread of their own
 * (time_worker.ts). Started with the first pipeline (startTimeQueries); the process ends it by
 * exiting.
 */

export const FORMAT_TIME = 3;
export const NANOSECONDS_PER_MS = 1_000_000n;

/** A batch: pipelines by address (each held by the caller until the answer), durations wanted. */
export interface TimeBatch {
  seq: number;
  addresses: bigint[];
  durations: boolean[];
}

/** A pipeline's position and duration in ms, null where unknown (or the duration not asked). */
export interface QueriedTimes {
  position: number | null;
  duration: number | null;
}

/** Milliseconds, null where unknown (a duration not asked for is null too). */
export interface TimeAnswer {
  seq: number;
  positions: (number | null)[];
  durations: (number | null)[];
}

let worker: Worker | null = null;
let nextSeq = 0;
const waiting = new Map<
  number,
  { resolve: (answer: TimeAnswer) => void; reject: (e: Error) => void }
>();

function start(): Worker {
  const started = new Worker(new URL("./time_worker.ts", import.meta.url), { type: "module" });
  started.onmessage = (event: MessageEvent<TimeAnswer>) => {
    waiting.get(event.data.seq)?.resolve(event.data);
    waiting.delete(event.data.seq);
  };
  started.onerror = (event) => {
    event.preventDefault();
    // The next batch starts a new one; the batches under way fail (their figures are null).
    started.terminate();
    if (worker === started) worker = null;
    const error = new Error(`The time query thread failed: ${event.message}`);
    for (const { reject } of waiting.values()) reject(error);
    waiting.clear();
  };
  return started;
}

/**
 * Starts the query thread unless it runs. Pipeline's constructor calls it: started at the first
 * stats round instead, the thread (a V8 isolate) came whenever a round first found a
 * running pipeline, so the process's memory and descriptors jumped at no fixed point.
 */
export function startTimeQueries(): void {
  worker ??= start();
}

/** Asks the query thread; the caller holds a reference to each pipeline until this settles. */
export function queryTimes(addresses: bigint[], durations: boolean[]): Promise<TimeAnswer> {
  startTimeQueries();
  const seq = nextSeq++;
  return new Promise((resolve, reject) => {
    waiting.set(seq, { resolve, reject });
    worker!.postMessage({ seq, addresses, durations } satisfies TimeBatch);
  });
}
