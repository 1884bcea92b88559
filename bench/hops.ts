/**
 * What a start costs before any server code (issue 14): `videotestsrc ! fakesink` parsed and
 * brought to PLAYING in this process, either with synchronous calls on one thread (the C floor's
 * way) or as the server does it, with each call on Deno's FFI pool (PAUSED, PLAYING, then the wait
 * for PLAYING: three hops to a pool thread and back). The pool's way is also timed with an idle
 * pause before every 50 cycles, as a server meets requests between quiet moments: a thread woken
 * after idling can be slow to run on a virtual machine.
 *
 * Last, how long the main thread itself waits to hand a call to the pool, as the server's delete
 * does (its store sync, then the NULL change, back to back): two pool calls in a row, with this
 * thread raised as the server raises its own (src/gst/priority.ts), first idle, then while
 * non-live pipelines, started from the pool as the server starts them, keep every core busy.
 *
 * Both ways are timed again with a short idle gap before every cycle (`--gap-ms`), as a server
 * sees one client's cycles, and the pool's way is then split into its three steps; then the same
 * three calls made synchronously on one Worker thread, woken once to start and waking this thread
 * once when done, as a helper thread of our own (in C or not) would make them. Beside them, the
 * same calls from C (bench/floor.c, as gstd makes them): made directly, and handed one by one to a
 * worker thread as the server hands them to the pool, each back to back and after the same gap.
 * Then the rows with the gap once more, with every CPU kept from halting by a busy loop at nice 19:
 * on a virtual machine, a thread woken on a halted vCPU waits for the host to run that vCPU again,
 * and Deno's pool way, with more threads to wake, pays that more often than C's direct calls.
 *
 *   deno run --allow-all bench/hops.ts [--cycles 400] [--pause-ms 300] [--gap-ms 1]
 *     [--hand-offs 400]
 */
import { gstSymbols } from "../ffi/gstreamer.ts";
import { openLibrary } from "../ffi/loader.ts";
import { raiseThisThread } from "../src/gst/priority.ts";
import { processThreads } from "../test/helpers.ts";
import { buildFloor, runFloor } from "./floor.ts";
import { mean, ms, parseNumberOptions, percentile, sleep } from "./measure.ts";

const options = parseNumberOptions(Deno.args, {
  cycles: 400,
  "pause-ms": 300,
  "gap-ms": 1,
  "hand-offs": 400,
});
const { gst_init_check, gst_parse_launch, gst_object_unref } = openLibrary("gstreamer-1.0", {
  gst_init_check: gstSymbols.gst_init_check,
  gst_parse_launch: { parameters: ["buffer", "pointer"], result: "pointer" },
  gst_object_unref: gstSymbols.gst_object_unref,
}).symbols;
const sync = openLibrary("gstreamer-1.0", {
  gst_element_set_state: { parameters: ["pointer", "i32"], result: "i32" },
  gst_element_get_state: { parameters: ["pointer", "pointer", "pointer", "u64"], result: "i32" },
}).symbols;
const pool = openLibrary("gstreamer-1.0", {
  gst_element_set_state: { parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  gst_element_get_state: {
    parameters: ["pointer", "pointer", "pointer", "u64"],
    result: "i32",
    nonblocking: true,
  },
}).symbols;

const PAUSED = 3, PLAYING = 4, NULL = 1;
/** GstStateChangeReturn: a get_state that ends at PLAYING; FAILURE or ASYNC (timed out) is not. */
const SUCCESS = 1;
const TIMEOUT_NS = 5_000_000_000n;
if (gst_init_check(null, null, new Uint8Array(8)) === 0) throw new Error("gst_init failed");
const launch = new TextEncoder().encode("videotestsrc ! fakesink\0");

/**
 * The Worker way (bench/hops_worker.ts): the three calls on one thread of our own, which the main
 * thread wakes and which wakes it back. Its words in `shared`: `asked`, `done` and `result` (the
 * start's last GstStateChangeReturn; Int32 slots) and the pipeline's address (a BigInt64 at
 * `addressByte`).
 */
const WorkerSlots = { asked: 0, done: 1, result: 4, addressByte: 8 };
const shared = new SharedArrayBuffer(24);
const workerWords = new Int32Array(shared);
const workerAddress = new BigInt64Array(shared, WorkerSlots.addressByte, 1);
const startWorker = new Worker(new URL("./hops_worker.ts", import.meta.url), { type: "module" });
startWorker.postMessage({ shared, slots: WorkerSlots });

/** Starts `pipeline` on the Worker; null ends the Worker. */
async function startOnWorker(pipeline: Deno.PointerObject | null): Promise<void> {
  workerAddress[0] = BigInt(Deno.UnsafePointer.value(pipeline));
  Atomics.store(workerWords, WorkerSlots.done, 0);
  Atomics.store(workerWords, WorkerSlots.asked, 1);
  Atomics.notify(workerWords, WorkerSlots.asked);
  const waiting = Atomics.waitAsync(workerWords, WorkerSlots.done, 0);
  if (waiting.async) await waiting.value;
  if (pipeline !== null) mustBePlaying(Atomics.load(workerWords, WorkerSlots.result));
}

/** A start that did not reach PLAYING is not a time to count. */
function mustBePlaying(result: number): void {
  if (result !== SUCCESS) {
    throw new Error(`the pipeline did not reach PLAYING (returned ${result})`);
  }
}

/** The pool's way, step by step: each call's time on the pool and back, then the wait. */
interface Steps {
  paused: number[];
  playing: number[];
  wait: number[];
}

/**
 * `options.cycles` create -> PLAYING times; `pause` is an idle time before every 50th cycle
 * (`every: 50`) or before each (`every: 1`, as a server between one client's requests).
 */
async function cycles(
  way: "sync" | "pool" | "worker",
  pause = { ms: 0, every: 50 },
  steps?: Steps,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = -5; i < options.cycles; i++) {
    if (pause.ms > 0 && i % pause.every === 0) await sleep(pause.ms);
    const startedAt = performance.now();
    const pipeline = gst_parse_launch(launch, null);
    if (pipeline === null) throw new Error("parse failed");
    if (way === "sync") {
      sync.gst_element_set_state(pipeline, PLAYING);
      mustBePlaying(sync.gst_element_get_state(pipeline, null, null, TIMEOUT_NS));
    } else if (way === "worker") {
      await startOnWorker(pipeline);
    } else {
      const parsedAt = performance.now();
      await pool.gst_element_set_state(pipeline, PAUSED);
      const pausedAt = performance.now();
      await pool.gst_element_set_state(pipeline, PLAYING);
      const playingAt = performance.now();
      mustBePlaying(await pool.gst_element_get_state(pipeline, null, null, TIMEOUT_NS));
      if (steps && i >= 0) {
        steps.paused.push(pausedAt - parsedAt);
        steps.playing.push(playingAt - pausedAt);
        steps.wait.push(performance.now() - playingAt);
      }
    }
    if (i >= 0) times.push(performance.now() - startedAt);
    await pool.gst_element_set_state(pipeline, NULL);
    gst_object_unref(pipeline);
  }
  return times;
}

/**
 * The time this thread spends in each of two pool calls made back to back (only the hand-off:
 * the calls are awaited afterwards), a few ms apart so that the pool's threads go idle between.
 */
async function handOffs(
  pipeline: Deno.PointerValue,
): Promise<{ first: number[]; second: number[] }> {
  const first: number[] = [], second: number[] = [];
  for (let i = 0; i < options["hand-offs"]; i++) {
    await sleep(2);
    let startedAt = performance.now();
    const one = pool.gst_element_get_state(pipeline, null, null, 0n);
    first.push(performance.now() - startedAt);
    startedAt = performance.now();
    const two = pool.gst_element_get_state(pipeline, null, null, 0n);
    second.push(performance.now() - startedAt);
    await Promise.all([one, two]);
  }
  return { first, second };
}

const line = (label: string, times: number[]) =>
  `  ${label.padEnd(44)} ${
    [50, 80, 90, 99].map((p) => `p${p} ${ms(percentile(times, p))}`).join(", ")
  }`;
const oneThread = await cycles("sync");
const onPool = await cycles("pool");
const afterIdle = await cycles("pool", { ms: options["pause-ms"], every: 50 });
// A server meets one client's requests with its threads idle in between: each cycle after a
// short pause, on one thread and on the pool, the latter step by step.
const gap = { ms: options["gap-ms"], every: 1 };
const oneThreadAfterGap = await cycles("sync", gap);
const steps: Steps = { paused: [], playing: [], wait: [] };
const onPoolAfterGap = await cycles("pool", gap, steps);
const onWorkerAfterGap = await cycles("worker", gap);
const p50 = (times: number[]) => ms(percentile(times, 50));
const against = (ours: number[], theirs: number[]) =>
  `${(percentile(ours, 50) / percentile(theirs, 50)).toFixed(2)}x`;
console.log(
  [
    `create -> PLAYING of 'videotestsrc ! fakesink' in this process, ${options.cycles} cycles each:`,
    line("synchronous calls on one thread", oneThread),
    line("three pool calls (PAUSED, PLAYING, wait)", onPool),
    line(`the same, ${options["pause-ms"]} ms idle every 50 cycles`, afterIdle),
    line(`synchronous, ${options["gap-ms"]} ms idle before each cycle`, oneThreadAfterGap),
    line(`three pool calls, ${options["gap-ms"]} ms idle before each`, onPoolAfterGap),
    `    of which, p50: the PAUSED call ${p50(steps.paused)}, the PLAYING call ` +
    `${p50(steps.playing)}, the wait for PLAYING ${p50(steps.wait)}`,
    line(`the three on one Worker, ${options["gap-ms"]} ms idle before each`, onWorkerAfterGap),
    `  p50 against the three pool calls: the Worker ${
      against(onWorkerAfterGap, onPoolAfterGap)
    }, ` +
    `synchronous calls on this thread ${against(oneThreadAfterGap, onPoolAfterGap)}`,
  ].join("\n"),
);

/**
 * `run` with a busy loop at nice 19 on every CPU: our threads take a CPU from it at once. Each loop
 * ends by itself once this process is gone, should it die before it stops them.
 */
async function withCpusKeptAwake<T>(run: () => Promise<T>): Promise<T> {
  const loops = Array.from(
    { length: navigator.hardwareConcurrency },
    () =>
      new Deno.Command("nice", {
        args: ["-n", "19", "sh", "-c", 'while kill -0 "$PPID" 2>/dev/null; do :; done'],
        stdin: "null",
        stdout: "null",
      }).spawn(),
  );
  try {
    return await run();
  } finally {
    for (const loop of loops) {
      loop.kill();
      await loop.status;
    }
  }
}

const idleUs = options["gap-ms"] * 1000;
const scratch = await Deno.makeTempDir();
const floor = await buildFloor(scratch);
if (floor) {
  const c = {
    direct: await runFloor(floor, options.cycles),
    handedOff: await runFloor(floor, options.cycles, { handOff: true }),
    directAfterGap: await runFloor(floor, options.cycles, { idleUs }),
    handedOffAfterGap: await runFloor(floor, options.cycles, { idleUs, handOff: true }),
  };
  console.log(
    [
      `the same from C (bench/floor.c), ${options.cycles} cycles each:`,
      line("calls made directly (the C floor)", c.direct),
      line("handed to a worker thread one by one", c.handedOff),
      line(`directly, ${options["gap-ms"]} ms idle before each cycle`, c.directAfterGap),
      line(`handed off, ${options["gap-ms"]} ms idle before each`, c.handedOffAfterGap),
      `  p50 against C's direct calls, ${options["gap-ms"]} ms idle before each: Deno's pool ` +
      `${against(onPoolAfterGap, c.directAfterGap)}, Deno's synchronous calls ` +
      `${against(oneThreadAfterGap, c.directAfterGap)}, C's hand-offs ` +
      `${against(c.handedOffAfterGap, c.directAfterGap)}; back to back: Deno's pool ` +
      `${against(onPool, c.direct)}, C's hand-offs ${against(c.handedOff, c.direct)}`,
    ].join("\n"),
  );
}
const awake = await withCpusKeptAwake(async () => ({
  sync: await cycles("sync", gap),
  pool: await cycles("pool", gap),
  worker: await cycles("worker", gap),
  direct: floor ? await runFloor(floor, options.cycles, { idleUs }) : null,
  handedOff: floor ? await runFloor(floor, options.cycles, { idleUs, handOff: true }) : null,
}));
console.log(
  [
    `with every CPU kept from halting (a busy loop at nice 19 on each), ${
      options["gap-ms"]
    } ms idle before each cycle:`,
    line("synchronous calls on one thread", awake.sync),
    line("three pool calls (PAUSED, PLAYING, wait)", awake.pool),
    line("the three on one Worker", awake.worker),
    ...(awake.direct && awake.handedOff
      ? [
        line("C, calls made directly", awake.direct),
        line("C, handed to a worker thread one by one", awake.handedOff),
        `  p50 against C's direct calls: Deno's pool ${against(awake.pool, awake.direct)}, ` +
        `Deno's synchronous calls ${against(awake.sync, awake.direct)}, C's hand-offs ${
          against(awake.handedOff, awake.direct)
        }`,
      ]
      : []),
    `  p50 against the same with the CPUs free to halt: Deno's pool ${
      against(awake.pool, onPoolAfterGap)
    }, Deno's synchronous calls ${against(awake.sync, oneThreadAfterGap)}, the Worker ${
      against(awake.worker, onWorkerAfterGap)
    }`,
  ].join("\n"),
);
await Deno.remove(scratch, { recursive: true });

// The hogs' streaming threads start from the pool, as the server's do, and at the default
// priority: GLib's shared thread pool was first made by the synchronous cycles above, before this
// thread is raised (docs/architecture.md, rule 11). Their nice values are printed to show it.
const hogs = Array.from({ length: navigator.hardwareConcurrency }, () => {
  const pipeline = gst_parse_launch(launch, null);
  if (pipeline === null) throw new Error("parse failed");
  return pipeline;
});
const raised = raiseThisThread(-10);
const idle = await handOffs(hogs[0]);
for (const hog of hogs) await pool.gst_element_set_state(hog, PLAYING);
const busy = await handOffs(hogs[0]);
const streamingNice = [...(await processThreads(Deno.pid)).values()]
  .filter((thread) => thread.name.startsWith("videotestsrc"))
  .map((thread) => thread.nice);
for (const hog of hogs) {
  await pool.gst_element_set_state(hog, NULL);
  gst_object_unref(hog);
}
const handOffLine = (label: string, times: number[]) =>
  `${line(label, times)}, max ${ms(Math.max(...times))}, mean ${ms(mean(times))}`;
console.log(
  [
    `handing a call to the pool, two back to back, ${options["hand-offs"]} times; this thread ` +
    (raised.raised ? "at nice -10, as the server's main thread" : `not raised (${raised.reason})`) +
    ":",
    `  streaming threads' nice values while busy: ${streamingNice.join(", ")}`,
    handOffLine("idle, first call", idle.first),
    handOffLine("idle, second call", idle.second),
    handOffLine(`${hogs.length} non-live pipelines playing, first call`, busy.first),
    handOffLine(`${hogs.length} non-live pipelines playing, second call`, busy.second),
    `  mean of both, busy against idle: ${
      (mean([...busy.first, ...busy.second]) / mean([...idle.first, ...idle.second])).toFixed(2)
    }x`,
  ].join("\n"),
);
// The Worker waits in Atomics.wait, which terminate() does not end: it is told to end instead.
await startOnWorker(null);
