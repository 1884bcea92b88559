/**
 * Cluster benchmark (issue 15, docs/cluster.md), with a PostgreSQL of its own (Debian's postgresql,
 * initdb and pg_ctl in a temporary folder, fsync on) and real server processes at the defaults
 * (GSTREAMER_LEASE_SECONDS=6):
 *
 * 1. Failover: three nodes; `--kills` times, three playing pipelines are made on one node, the node
 *    is killed with SIGKILL, and the time until all three play on the other nodes is measured (each
 *    node asked for its own pipelines every 50 ms). The killed node is started again each time.
 * 2. Forwarding: create -> PLAYING -> delete cycles of a pipeline on node b, sent to node a (which
 *    forwards them to b) against sent to b itself, taking turns.
 * 3. The store: the same cycles on one server with the PostgreSQL store against one with the SQLite
 *    store on disk (the default), taking turns.
 *
 *   deno run --allow-all bench/cluster.ts [--kills 5] [--cycles 100]
 */
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import { type Postgres, startPostgres } from "../test/postgres.ts";
import { expectOk, ms, parseNumberOptions, summarize } from "./measure.ts";

interface Options {
  kills: number;
  cycles: number;
}

interface Node {
  id: string;
  server: ServerProcess;
  client: TestClient;
  /** Connected as another node would be: getPipelines lists this node's own pipelines. */
  local: TestClient;
}

const live = "videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! fakesink";

async function startNode(pg: Postgres, id: string): Promise<Node> {
  const server = await startServer({ GSTREAMER_DATABASE_URL: pg.url, GSTREAMER_NODE_ID: id });
  let client: TestClient | undefined;
  try {
    client = await TestClient.connect(server.url);
    return { id, server, client, local: await TestClient.connect(`${server.url}?peer=1`) };
  } catch (error) {
    await client?.close();
    await server.stop();
    throw error;
  }
}

async function stopNode(node: Node): Promise<void> {
  await node.client.close();
  await node.local.close();
  await node.server.stop();
}

async function playingHere(node: Node): Promise<Set<string>> {
  const reply = expectOk(
    await node.local.request("getPipelines", {}),
    `getPipelines on ${node.id}`,
  );
  return new Set(
    reply.payload.pipelines.filter((p: { state: string }) => p.state === "PLAYING").map((
      p: { id: string },
    ) => p.id),
  );
}

async function failover(pg: Postgres, kills: number): Promise<number[]> {
  const nodes: Node[] = [];
  const times: number[] = [];
  try {
    for (const id of ["a", "b", "c"]) nodes.push(await startNode(pg, id));
    for (let round = 0; round < kills; round++) {
      const victim = nodes[round % nodes.length];
      const others = nodes.filter((node) => node !== victim);
      const ids = [0, 1, 2].map((i) => `failover-${round}-${i}`);
      for (const id of ids) {
        expectOk(
          await victim.client.request("createPipeline", { id, pipeline: live, node: victim.id }),
          `create ${id}`,
        );
        expectOk(await victim.client.request("startPipeline", { id }), `start ${id}`);
      }
      await victim.client.close();
      await victim.local.close();
      Deno.kill(victim.server.pid, "SIGKILL");
      const killedAt = performance.now();
      await victim.server.exited;
      for (;;) {
        const playing = new Set<string>();
        for (const node of others) for (const id of await playingHere(node)) playing.add(id);
        if (ids.every((id) => playing.has(id))) break;
        if (performance.now() - killedAt > 60_000) throw new Error("no failover within 60 s");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      times.push(performance.now() - killedAt);
      console.log(`  kill ${round + 1}: node ${victim.id}, ${ms(times.at(-1)!)}`);
      for (const id of ids) expectOk(await others[0].client.request("deletePipeline", { id }), id);
      nodes[nodes.indexOf(victim)] = await startNode(pg, victim.id);
    }
  } finally {
    for (const node of nodes) await stopNode(node).catch(() => {});
  }
  return times;
}

/** Create -> PLAYING -> delete on `node`, sent through `via`; its create -> PLAYING time. */
async function cycle(via: TestClient, node: string | undefined, id: string): Promise<number> {
  const startedAt = performance.now();
  expectOk(
    await via.request("createPipeline", { id, pipeline: live, ...(node ? { node } : {}) }),
    `create ${id}`,
  );
  const started = expectOk(await via.request("startPipeline", { id }), `start ${id}`);
  const elapsed = performance.now() - startedAt;
  if (started.payload.state !== "PLAYING") throw new Error(`${id} did not reach PLAYING`);
  expectOk(await via.request("deletePipeline", { id }), `delete ${id}`);
  return elapsed;
}

async function forwarding(pg: Postgres, cycles: number) {
  const nodes: Node[] = [];
  const forwarded: number[] = [];
  const direct: number[] = [];
  try {
    for (const id of ["a", "b"]) nodes.push(await startNode(pg, id));
    const [a, b] = nodes;
    for (let i = 0; i < cycles; i++) {
      forwarded.push(await cycle(a.client, "b", `fwd-${i}`));
      direct.push(await cycle(b.client, "b", `direct-${i}`));
    }
  } finally {
    for (const node of nodes) await stopNode(node);
  }
  return { forwarded: summarize(forwarded), direct: summarize(direct) };
}

async function stores(pg: Postgres, cycles: number) {
  const dataDir = await Deno.makeTempDir({ prefix: "bench_cluster_sqlite_" });
  let postgres: ServerProcess | undefined;
  let sqlite: ServerProcess | undefined;
  let onPostgres: TestClient | undefined;
  let onSqlite: TestClient | undefined;
  const timesPostgres: number[] = [];
  const timesSqlite: number[] = [];
  try {
    postgres = await startServer({ GSTREAMER_DATABASE_URL: pg.url, GSTREAMER_NODE_ID: "solo" });
    sqlite = await startServer({ GSTREAMER_DATA_DIR: dataDir });
    onPostgres = await TestClient.connect(postgres.url);
    onSqlite = await TestClient.connect(sqlite.url);
    for (let i = 0; i < cycles; i++) {
      timesPostgres.push(await cycle(onPostgres, undefined, `pg-${i}`));
      timesSqlite.push(await cycle(onSqlite, undefined, `sqlite-${i}`));
    }
  } finally {
    await onPostgres?.close();
    await onSqlite?.close();
    await postgres?.stop();
    await sqlite?.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  return { postgres: summarize(timesPostgres), sqlite: summarize(timesSqlite) };
}

async function main(): Promise<void> {
  const options = parseNumberOptions<Options>(Deno.args, { kills: 5, cycles: 100 });
  const pg = await startPostgres();
  try {
    const version = await pg.query("SHOW server_version");
    console.log(`PostgreSQL ${version} (fsync ${await pg.query("SHOW fsync")}), lease 6 s`);
    console.log(
      `Failover after kill -9 of a node holding 3 playing pipelines (${options.kills}x):`,
    );
    const kills = summarize(await failover(pg, options.kills));
    console.log(`  p50 ${ms(kills.p50)}, max ${ms(kills.max)}`);

    console.log(`create -> PLAYING of a pipeline on node b (${options.cycles} cycles each):`);
    const hop = await forwarding(pg, options.cycles);
    console.log(
      `  through node a ${ms(hop.forwarded.p50)} p50, ${ms(hop.forwarded.p99)} p99; ` +
        `direct ${ms(hop.direct.p50)} p50, ${ms(hop.direct.p99)} p99; ` +
        `ratio ${(hop.forwarded.p50 / hop.direct.p50).toFixed(2)} (p50)`,
    );

    console.log(`create -> PLAYING on one server, by store (${options.cycles} cycles each):`);
    const store = await stores(pg, options.cycles);
    console.log(
      `  PostgreSQL ${ms(store.postgres.p50)} p50, ${ms(store.postgres.p99)} p99; ` +
        `SQLite on disk (default) ${ms(store.sqlite.p50)} p50, ${ms(store.sqlite.p99)} p99; ` +
        `ratio ${(store.postgres.p50 / store.sqlite.p50).toFixed(2)} (p50)`,
    );
  } finally {
    await pg.remove();
  }
}

if (import.meta.main) await main();
