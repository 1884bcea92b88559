/**
 * Where part 1's p99 comes from (issue 14): the start of a created pipeline (our `startPipeline`,
 * gstd's `pipeline_play` and its state reads until PLAYING), timed at the client, for
 * `videotestsrc ! fakesink` (part 1's pipeline, which runs flat out once PLAYING and holds a core)
 * and for two that do not run flat out (a live source; a sink that syncs to the clock). Ours at the
 * defaults (the disk store), gstd beside it (bench/build_gstd.sh builds it; skipped without it); the
 * two take turns in rounds. For each: the p50, the p99, and how many starts took over
 * `--slow-ms`.
 *
 *   deno run --allow-all bench/start_tails.ts [--cycles 400] [--rounds 4] [--slow-ms 3]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import { findGstd, type Gstd, GstdClient, gstdCreateUntilPlaying, startGstd } from "./gstd.ts";
import {
  createAndStart,
  expectOk,
  ms,
  parseNumberOptions,
  percentile,
  stopServer,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, { cycles: 400, rounds: 4, "slow-ms": 3 });
const pipelines = [
  { label: "flat out (part 1's)", launch: "videotestsrc ! fakesink" },
  { label: "live source", launch: "videotestsrc is-live=true ! fakesink" },
  { label: "sink that syncs", launch: "videotestsrc ! fakesink sync=true" },
];

const scratch = await Deno.makeTempDir();
const server = await startServer({ GSTREAMER_DATA_DIR: `${scratch}/data` });
let ours: TestClient | null = null;
let gstd: Gstd | null = null;
let theirs: GstdClient | null = null;

let made = 0;
/** `count` starts of `launch` on our server, each created before and deleted after. */
async function ourStarts(client: TestClient, launch: string, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = `tail${made++}`;
    const { createdMs, playingMs } = await createAndStart(client, id, launch);
    times.push(playingMs - createdMs);
    expectOk(await client.request("deletePipeline", { id }), `delete ${id}`);
    client.received.length = 0;
  }
  return times;
}

/** The same on gstd. */
async function gstdStarts(client: GstdClient, launch: string, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const name = `tail${made++}`;
    const { createdMs, playingMs } = await gstdCreateUntilPlaying(client, name, launch);
    times.push(playingMs - createdMs);
    await client.command(`pipeline_delete ${name}`);
  }
  return times;
}

const perRound = Math.ceil(options.cycles / options.rounds);
const summary = (times: number[]) => {
  const slow = times.filter((time) => time > options["slow-ms"]).length;
  return `p50 ${ms(percentile(times, 50))}, p99 ${ms(percentile(times, 99))}, over ` +
    `${options["slow-ms"]} ms: ${slow} of ${times.length} (${
      (100 * slow / times.length).toFixed(1)
    } %)`;
};
console.log(
  `a created pipeline's start, timed at the client, ${perRound * options.rounds} each in ` +
    `${options.rounds} rounds by turns; ours at the defaults (the disk store):`,
);
try {
  const client = ours = await TestClient.connect(server.url);
  const gstdPath = await findGstd();
  gstd = gstdPath ? await startGstd(gstdPath) : null;
  theirs = gstd ? await GstdClient.connect(gstd.port) : null;
  for (const { label, launch } of pipelines) {
    const ourTimes: number[] = [], gstdTimes: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const turns = [
        async () => ourTimes.push(...await ourStarts(client, launch, perRound)),
        async () => theirs && gstdTimes.push(...await gstdStarts(theirs, launch, perRound)),
      ];
      if (round % 2 === 1) turns.reverse();
      for (const turn of turns) await turn();
    }
    console.log(`  ${label}: ${launch}`);
    console.log(`    ours         ${summary(ourTimes)}`);
    const gstdLabel = (gstd ? `gstd ${gstd.version}` : "gstd").padEnd(12);
    console.log(
      `    ${gstdLabel} ${
        gstd ? summary(gstdTimes) : "not installed (bench/build_gstd.sh builds it)"
      }`,
    );
  }
} finally {
  await ours?.close();
  theirs?.close();
  await gstd?.stop();
  await stopServer(server);
  await Deno.remove(scratch, { recursive: true });
}
