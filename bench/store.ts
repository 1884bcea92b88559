/**
 * Store write latency (issue 14): what an acknowledged change costs at the defaults, the SQLite
 * disk store (the row written on the main thread, the WAL's fdatasync on Deno's file threads, the
 * promise resolved after it), beside the floor under it measured in the same run: one
 * 4 KiB write and fdatasync of a file in the same folder. Both are timed back to back and after the
 * thread has been idle for a while (0, 2 and 5 ms), because on a virtual machine a thread that has
 * slept wakes slowly, and the disk's answer wakes it: a request arriving after an idle pause
 * pays that, which back-to-back timing hides.
 *
 *   deno run --allow-all bench/store.ts [--writes 300] [--dir=DIR]
 *
 * The folder defaults to a new one under ./data (the server's default data directory), removed
 * at the end; the gaps are 0, 2 and 5 ms.
 */
import { SqliteStore } from "../src/domain/store_sqlite.ts";
import { ms, parseNumberOptions, sleep, summarize } from "./measure.ts";

const GAPS_MS = [0, 2, 5];
const options = parseNumberOptions(Deno.args.filter((a) => !a.startsWith("--dir")), {
  writes: 300,
});
const dirArg = Deno.args.find((a) => a.startsWith("--dir="))?.slice("--dir=".length);
const base = dirArg ?? "./data";
await Deno.mkdir(base, { recursive: true });
const dir = await Deno.makeTempDir({ dir: base, prefix: "store-" });

async function timed(gapMs: number, write: (i: number) => Promise<void> | void) {
  const times: number[] = [];
  for (let i = 0; i < options.writes; i++) {
    if (gapMs > 0) await sleep(gapMs);
    const startedAt = performance.now();
    await write(i);
    times.push(performance.now() - startedAt);
  }
  return summarize(times);
}

try {
  const store = await SqliteStore.open(dir);
  const file = await Deno.open(`${dir}/fdatasync-floor`, { write: true, create: true });
  const page = new Uint8Array(4096);
  const definition = { pipeline: { elements: [{ type: "videotestsrc" }, { type: "fakesink" }] } };
  console.log(`store write latency in ${dir}, ${options.writes} writes per row (p50 / p99):`);
  let row = 0;
  for (const gap of GAPS_MS) {
    const ours = await timed(
      gap,
      () => store.insert(`p${row++}`, definition, new Date().toISOString()),
    );
    const floor = await timed(gap, (_i) => {
      file.seekSync(0, Deno.SeekMode.Start);
      file.writeSync(page);
      file.syncDataSync(); // fdatasync, as the store's WAL sync (FsFile.syncData)
    });
    console.log(
      `  idle ${gap} ms before each: store ${ms(ours.p50)} / ${ms(ours.p99)}; ` +
        `write+fdatasync ${ms(floor.p50)} / ${ms(floor.p99)}; ratio p50 ${
          (ours.p50 / floor.p50).toFixed(2)
        }x`,
    );
  }
  file.close();
  await store.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
