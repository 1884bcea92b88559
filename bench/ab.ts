/**
 * Two commits of the server side by side, by turns (issue 14: a change is kept when it measures
 * better than the commit before it). Each commit is checked out into a temporary git worktree and
 * runs as a server of its own, with the flags of `deno task start`; the rounds alternate which of
 * the two goes first, so that load from elsewhere on a shared machine falls on both alike.
 *
 * In each round, for each commit: `--cycles` create -> PLAYING -> delete cycles over one connection
 * (`videotestsrc ! fakesink`; the p50 of create -> PLAYING and of the delete), then `--clients`
 * connections each doing `--client-cycles` cycles at once (cycles per second; the server's
 * writes per cycle, TCP data segments sent, counted by `ss`; and the server's CPU per cycle by
 * thread group: main, streaming, other; live sources unless `--non-live`).
 * Every connection gets every event, as by default. The store is on disk unless `--memory`; two
 * requests (createPipeline, startPipeline) unless `--one-request`. `--clients 0` times the one
 * connection only.
 *
 *   deno run -A bench/ab.ts BEFORE AFTER [--rounds 8] [--cycles 50] [--clients 50]
 *     [--client-cycles 10] [--memory] [--non-live] [--one-request]
 */
import {
  launchOf,
  segmentsSent,
  type ServerProcess,
  startServer,
  TestClient,
} from "../test/helpers.ts";
import {
  createAndStart,
  expectOk,
  parseNumberOptions,
  percentile,
  startUsage,
  stopServer,
} from "./measure.ts";

const flags = ["--memory", "--non-live", "--one-request"];
const commits = Deno.args.filter((arg) => !arg.startsWith("--") && !/^\d+$/.test(arg));
if (commits.length !== 2) {
  throw new Error(
    "Name two commits (or branches, or tags) to compare: deno run -A bench/ab.ts BEFORE AFTER",
  );
}
const options = parseNumberOptions(
  Deno.args.filter((arg) => !commits.includes(arg) && !flags.includes(arg)),
  { rounds: 8, cycles: 50, clients: 50, "client-cycles": 10 },
);
const memory = Deno.args.includes("--memory");
const live = !Deno.args.includes("--non-live");
const oneRequest = Deno.args.includes("--one-request");
const simple = { elements: [{ type: "videotestsrc" }, { type: "fakesink" }] };
const concurrent = live ? "videotestsrc is-live=true ! fakesink" : "videotestsrc ! fakesink";

async function git(...args: string[]): Promise<string> {
  const output = await new Deno.Command("git", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.success ? output.stdout : output.stderr).trim();
  if (!output.success) throw new Error(`git ${args.join(" ")}: ${text}`);
  return text;
}

interface Side {
  commit: string;
  tree: string;
  server: ServerProcess;
  playing: number[];
  deletes: number[];
  rates: number[];
  /** TCP data segments the server sent per cycle with many connections: about one per write. */
  segments: number[];
  /** The server's CPU per cycle with many connections, in ms, by thread group (startUsage). */
  cpu: Record<string, number>[];
}

async function open(commit: string, dir: string, index: number): Promise<Side> {
  const hash = await git("rev-parse", "--short", `${commit}^{commit}`);
  // By index: a commit against itself shows how far runs differ by noise alone.
  const tree = `${dir}/${index}-${hash}`;
  await git("worktree", "add", "--detach", tree, hash);
  const server = await startServer(
    {
      GSTREAMER_DATA_DIR: memory ? ":memory:" : `${tree}-data`,
      GSTREAMER_MAX_PIPELINES: "10000",
    },
    20000,
    launchOf(`${tree}/src/main.ts`),
  ).catch(async (error) => {
    await git("worktree", "remove", "--force", tree);
    throw error;
  });
  return {
    commit: hash,
    tree,
    server,
    playing: [],
    deletes: [],
    rates: [],
    segments: [],
    cpu: [],
  };
}

async function round(side: Side, label: string): Promise<void> {
  const client = await TestClient.connect(side.server.url);
  for (let i = 0; i < options.cycles; i++) {
    const id = `${label}-one-${i}`;
    side.playing.push((await createAndStart(client, id, simple, oneRequest)).playingMs);
    const startedAt = performance.now();
    expectOk(await client.request("deletePipeline", { id }), `delete ${id}`);
    side.deletes.push(performance.now() - startedAt);
    client.received.length = 0;
  }
  await client.close();
  if (options.clients === 0) return;
  const clients = await Promise.all(
    Array.from({ length: options.clients }, () => TestClient.connect(side.server.url)),
  );
  const segmentsBefore = await segmentsSent(side.server);
  const usage = startUsage(side.server.pid); // launchOf runs deno itself, no wrapper
  const startedAt = performance.now();
  await Promise.all(clients.map(async (connection, c) => {
    for (let i = 0; i < options["client-cycles"]; i++) {
      const id = `${label}-${c}-${i}`;
      await createAndStart(connection, id, concurrent, oneRequest);
      expectOk(await connection.request("deletePipeline", { id }), `delete ${id}`);
      connection.received.length = 0;
    }
  }));
  const seconds = (performance.now() - startedAt) / 1000;
  const cycles = options.clients * options["client-cycles"];
  side.rates.push(cycles / seconds);
  const { cpuByGroup } = usage.stop();
  // Percent of one core over `seconds`, as ms of CPU per cycle.
  side.cpu.push(
    Object.fromEntries(
      Object.entries(cpuByGroup).map((
        [group, percent],
      ) => [group, percent * seconds * 10 / cycles]),
    ),
  );
  side.segments.push((await segmentsSent(side.server) - segmentsBefore) / cycles);
  await Promise.all(clients.map((connection) => connection.close()));
}

const median = (values: number[]) => percentile(values, 50);
const dir = await Deno.makeTempDir({ prefix: "gst-ab-" });
const sides: Side[] = [];
try {
  for (const [index, commit] of commits.entries()) sides.push(await open(commit, dir, index));
  console.log(
    `${sides.map((s) => s.commit).join(" against ")}: ${options.rounds} rounds, ` +
      `${memory ? ":memory:" : "disk store"}, ${oneRequest ? "one request" : "two requests"}, ` +
      `${options.clients} ${live ? "live" : "non-live"} connections ...`,
  );
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) await round(side, `r${r}`);
    const rates = sides.map((s) => `${s.commit} ${s.rates.at(-1)?.toFixed(0)} cycles/s`);
    if (options.clients > 0) console.log(`round ${r + 1}: ${rates.join(", ")}`);
  }
  for (const side of sides) {
    const concurrently = options.clients === 0
      ? ""
      : `${options.clients} connections, median ${
        median(side.rates).toFixed(0)
      } cycles/s (rounds: ${side.rates.map((r) => r.toFixed(0)).join(" ")}), ${
        median(side.segments).toFixed(1)
      } writes a cycle, server CPU a cycle ${
        Object.keys(side.cpu[0]).map((group) =>
          `${group} ${median(side.cpu.map((cpu) => cpu[group])).toFixed(2)}`
        ).join(", ")
      } ms; `;
    console.log(
      `${side.commit}: ${concurrently}one connection, create -> PLAYING p50 ${
        median(side.playing).toFixed(3)
      } ms, delete p50 ${median(side.deletes).toFixed(3)} ms`,
    );
  }
  const [before, after] = sides;
  const rateRatio = options.clients === 0
    ? ""
    : `cycles/s ${(median(after.rates) / median(before.rates)).toFixed(2)}x, `;
  console.log(
    `${after.commit} / ${before.commit}: ${rateRatio}create -> PLAYING ${
      (median(after.playing) / median(before.playing)).toFixed(2)
    }x, delete ${(median(after.deletes) / median(before.deletes)).toFixed(2)}x`,
  );
} finally {
  for (const side of sides) {
    await stopServer(side.server);
    await git("worktree", "remove", "--force", side.tree);
  }
  await Deno.remove(dir, { recursive: true });
}
