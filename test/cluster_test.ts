/**
 * Several nodes over one PostgreSQL (docs/cluster.md), each a real server process against a real
 * PostgreSQL of the test's own: nodes and their load, failover after kill -9, a graceful stop that
 * hands pipelines over, and a node frozen past its lease (SIGSTOP) that stops its copies when it
 * resumes, checked with getPipelines on every node and with RTSP DESCRIBE.
 */
import assert from "node:assert/strict";
import {
  cameraLaunch,
  expectError,
  expectOk,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { type Postgres, startPostgres } from "./postgres.ts";
import { RtspConn } from "./rtsp_client.ts";

/** Short, so that the test is quick; the default is 6 s. */
const LEASE_SECONDS = 3;
/** The fencing window docs/cluster.md promises: a resumed node has stopped its copies by then. */
const FENCING_WINDOW_MS = 2000;

interface Node {
  id: string;
  server: ServerProcess;
  client: TestClient;
}

async function startNode(pg: Postgres, id: string): Promise<Node> {
  const server = await startServer({
    GSTREAMER_DATABASE_URL: pg.url,
    GSTREAMER_NODE_ID: id,
    GSTREAMER_LEASE_SECONDS: String(LEASE_SECONDS),
  });
  return { id, server, client: await TestClient.connect(server.url) };
}

async function startCluster(pg: Postgres, ids: string[]): Promise<Node[]> {
  const nodes: Node[] = [];
  for (const id of ids) nodes.push(await startNode(pg, id));
  return nodes;
}

async function stopAll(nodes: Node[]): Promise<void> {
  for (const node of nodes) {
    await node.client.close().catch(() => {});
    try {
      Deno.kill(node.server.pid, "SIGCONT");
      Deno.kill(node.server.pid, "SIGKILL");
    } catch {
      // exited already
    }
    await node.server.exited;
  }
}

/** The pipelines a node runs, by id, with their state. */
async function statesOn(node: Node): Promise<Map<string, string>> {
  const reply = expectOk(await node.client.request("getPipelines", {}));
  return new Map(
    reply.payload.pipelines.map((p: { id: string; state: string }) => [p.id, p.state]),
  );
}

/** The nodes (of `nodes`) on which pipeline `id` is PLAYING. */
async function playingOn(nodes: Node[], id: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of nodes) {
    if ((await statesOn(node)).get(id) === "PLAYING") found.push(node.id);
  }
  return found;
}

/** The status of an RTSP DESCRIBE of `path` on the server at `base` (rtsp://host:port). */
async function describeStatus(base: string, path: string): Promise<number> {
  const conn = await RtspConn.open(base);
  try {
    await conn.request("DESCRIBE", `${base}/${path}`, { Accept: "application/sdp" });
    return 200;
  } catch (error) {
    const status = (error as Error).message.match(/: (\d{3})\n/)?.[1];
    if (status === undefined) throw error;
    return Number(status);
  } finally {
    conn.close();
  }
}

function live(id: string) {
  return { id, pipeline: "videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! fakesink" };
}

Deno.test("cluster: getNodes lists every node with its load; kill -9 of a node and its playing pipelines play on the others; a clean stop hands them over at once", async () => {
  const pg = await startPostgres();
  let nodes: Node[] = [];
  try {
    nodes = await startCluster(pg, ["a", "b", "c"]);
    const [a, b, c] = nodes;
    const ids = ["one", "two", "three"];
    for (const id of ids) {
      expectOk(await a.client.request("createPipeline", live(id)));
      expectOk(await a.client.request("startPipeline", { id }));
    }
    expectOk(await a.client.request("createPipeline", live("idle"))); // stays stopped

    // Every node sees every node, with its load (a's heartbeat carries its 4 pipelines).
    const listed = await waitUntil(
      async () => {
        const reply = expectOk(await c.client.request("getNodes", {}));
        const found = reply.payload.nodes;
        return found.find((n: { id: string; pipelines: number }) => n.id === "a")?.pipelines === 4
          ? found
          : null;
      },
      10000,
      "node a's load in getNodes",
    );
    assert.deepEqual(listed.map((n: { id: string }) => n.id), ["a", "b", "c"]);
    for (const node of listed) {
      assert.equal(node.up, true, JSON.stringify(node));
      assert.match(node.advertiseUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(node.rtspUrl, /^rtsp:\/\/127\.0\.0\.1:\d+$/);
    }
    // One id in the whole cluster: b refuses an id a holds, naming a, and leaves nothing behind.
    const duplicate = expectError(
      await b.client.request("createPipeline", live("one")),
      "DUPLICATE_ID",
    );
    assert.match(duplicate.message, /'one' already exists \(on node 'a'\)/);
    assert.deepEqual([...(await statesOn(b)).keys()], []);
    const aInfo = listed.find((n: { id: string }) => n.id === "a");
    assert.equal(aInfo.advertiseUrl, a.server.httpUrl);
    assert.equal(aInfo.rtspUrl, a.server.rtspUrl);

    // kill -9 of a: every playing pipeline plays again on b or c, exactly once.
    await a.client.close();
    Deno.kill(a.server.pid, "SIGKILL");
    const killedAt = performance.now();
    await a.server.exited;
    const survivors = [b, c];
    for (const id of ids) {
      await waitUntil(
        async () => (await playingOn(survivors, id)).length === 1,
        30000,
        `'${id}' playing on b or c`,
      );
    }
    const failoverMs = Math.round(performance.now() - killedAt);
    console.log(`failover of 3 playing pipelines after kill -9: ${failoverMs} ms`);
    // The stopped one moved too, and stays stopped.
    const idleOn = await waitUntil(
      async () => {
        for (const node of survivors) {
          if ((await statesOn(node)).has("idle")) return node.id;
        }
        return null;
      },
      30000,
      "'idle' taken over",
    );
    assert.ok(["b", "c"].includes(idleOn));
    const all = [...(await statesOn(b)).keys(), ...(await statesOn(c)).keys()].sort();
    assert.deepEqual(all, ["idle", "one", "three", "two"]);
    const down = expectOk(await b.client.request("getNodes", {})).payload.nodes
      .find((n: { id: string }) => n.id === "a");
    assert.equal(down.up, false);

    // A clean stop of b hands its pipelines back: c takes them without waiting for a lease.
    const onB = [...(await statesOn(b)).keys()];
    await b.client.close();
    assert.equal(await b.server.stop(), 0);
    for (const id of onB) {
      await waitUntil(async () => (await statesOn(c)).has(id), 30000, `'${id}' on c`);
    }
    assert.deepEqual([...(await statesOn(c)).keys()].sort(), ["idle", "one", "three", "two"]);
    assert.deepEqual(
      [...(await statesOn(c)).entries()].filter(([, state]) => state === "PLAYING").map(([id]) =>
        id
      ).sort(),
      ["one", "three", "two"],
    );
    nodes = [c];
  } finally {
    await stopAll(nodes);
    await pg.remove();
  }
});

Deno.test("cluster: a node frozen past its lease loses its pipelines to the others, and stops its copies (and RTSP paths) within the fencing window once it resumes", async () => {
  const pg = await startPostgres();
  let nodes: Node[] = [];
  try {
    nodes = await startCluster(pg, ["a", "b"]);
    const [a, b] = nodes;
    expectOk(
      await a.client.request("createPipeline", { id: "cam", pipeline: cameraLaunch("cam") }),
    );
    expectOk(await a.client.request("startPipeline", { id: "cam" }));
    assert.equal(await describeStatus(a.server.rtspUrl, "cam"), 200);

    Deno.kill(a.server.pid, "SIGSTOP");
    const frozenAt = performance.now();
    await waitUntil(
      async () => (await playingOn([b], "cam")).length === 1,
      30000,
      "'cam' playing on b while a is frozen",
    );
    console.log(`'cam' played on b ${Math.round(performance.now() - frozenAt)} ms after SIGSTOP`);
    assert.equal(await describeStatus(b.server.rtspUrl, "cam"), 200);

    Deno.kill(a.server.pid, "SIGCONT");
    const resumedAt = performance.now();
    const stoppedOnA = await waitUntil(
      async () => !(await statesOn(a)).has("cam"),
      30000,
      "a dropping its copy of 'cam'",
    );
    assert.ok(stoppedOnA);
    const windowMs = Math.round(performance.now() - resumedAt);
    console.log(`a stopped its copy ${windowMs} ms after SIGCONT`);
    // From the end of the window on: one copy, on b; a serves no path 'cam'.
    const settled = Math.max(0, FENCING_WINDOW_MS - (performance.now() - resumedAt));
    await new Promise((resolve) => setTimeout(resolve, settled));
    assert.deepEqual(await playingOn([a, b], "cam"), ["b"]);
    assert.equal(await describeStatus(a.server.rtspUrl, "cam"), 404);
    assert.equal(await describeStatus(b.server.rtspUrl, "cam"), 200);
    // a goes on as a node: it heartbeats again, and b still holds 'cam' (a did not claim it back).
    await waitUntil(
      async () => {
        const reply = expectOk(await b.client.request("getNodes", {}));
        return reply.payload.nodes.every((n: { up: boolean }) => n.up);
      },
      10000,
      "both nodes up again",
    );
    assert.deepEqual(await playingOn([a, b], "cam"), ["b"]);
  } finally {
    await stopAll(nodes);
    await pg.remove();
  }
});
