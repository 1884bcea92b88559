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
import postgres from "postgres";
import { describeStatus, RtspConn } from "./rtsp_client.ts";

/** Short, so that the test is quick; the default is 6 s. */
const LEASE_SECONDS = 3;
/** The fencing window docs/cluster.md promises: a resumed node has stopped its copies by then. */
const FENCING_WINDOW_MS = 2000;

interface Node {
  id: string;
  server: ServerProcess;
  client: TestClient;
  /** Connected as another node would be: its getPipelines lists this node's own pipelines. */
  local: TestClient;
  recordingsDir: string;
}

async function startNode(pg: Postgres, id: string, leaseSeconds: number): Promise<Node> {
  // Each node its own disk, as on separate machines.
  const recordingsDir = await Deno.makeTempDir({ prefix: `cluster_${id}_recordings_` });
  const server = await startServer({
    GSTREAMER_DATABASE_URL: pg.url,
    GSTREAMER_NODE_ID: id,
    GSTREAMER_LEASE_SECONDS: String(leaseSeconds),
    GSTREAMER_RECORDINGS_DIR: recordingsDir,
  });
  return {
    id,
    server,
    client: await TestClient.connect(server.url),
    local: await TestClient.connect(`${server.url}?peer=1`),
    recordingsDir,
  };
}

/** Runs `test` against nodes of these ids on a PostgreSQL of its own, then stops them all. */
async function withCluster(
  ids: string[],
  test: (nodes: Node[], pg: Postgres) => Promise<void>,
  leaseSeconds = LEASE_SECONDS,
): Promise<void> {
  const pg = await startPostgres();
  const nodes: Node[] = [];
  try {
    for (const id of ids) nodes.push(await startNode(pg, id, leaseSeconds));
    await test(nodes, pg);
  } finally {
    await stopAll(nodes);
    await pg.remove();
  }
}

async function stopAll(nodes: Node[]): Promise<void> {
  for (const node of nodes) {
    await node.client.close().catch(() => {});
    await node.local.close().catch(() => {});
    try {
      Deno.kill(node.server.pid, "SIGCONT");
      Deno.kill(node.server.pid, "SIGKILL");
    } catch {
      // exited already
    }
    await node.server.exited;
    await Deno.remove(node.recordingsDir, { recursive: true });
  }
}

/** The pipelines a node runs, by id, with their state, as the node itself lists them. */
async function statesOn(node: Node): Promise<Map<string, string>> {
  const reply = expectOk(await node.local.request("getPipelines", {}));
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

/** Waits until the heartbeat of every node of `nodes` has moved forward `rounds` times. */
async function waitForHeartbeats(pg: Postgres, nodes: Node[], rounds: number): Promise<void> {
  const heartbeats = async () =>
    new Map(
      (await pg.query("SELECT id, extract(epoch FROM heartbeat_at) FROM nodes")).split("\n")
        .map((row) => row.split("|")).map(([id, at]) => [id, Number(at)]),
    );
  const last = await heartbeats();
  const moved = new Map(nodes.map((node) => [node.id, 0]));
  await waitUntil(
    async () => {
      for (const [id, at] of await heartbeats()) {
        if (at > last.get(id)!) moved.set(id, (moved.get(id) ?? 0) + 1);
        last.set(id, at);
      }
      return nodes.every((node) => moved.get(node.id)! >= rounds);
    },
    20000,
    `${rounds} heartbeats of every node`,
  );
}

function live(id: string) {
  return { id, pipeline: "videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! fakesink" };
}

Deno.test("cluster: getNodes lists every node with its load; kill -9 of a node and its playing pipelines play on the others; a clean stop hands them over at once", async () => {
  await withCluster(["a", "b", "c"], async (nodes, pg) => {
    const [a, b, c] = nodes;
    const ids = ["one", "two", "three"];
    for (const id of ids) {
      expectOk(await a.client.request("createPipeline", { ...live(id), node: "a" }));
      expectOk(await a.client.request("startPipeline", { id }));
    }
    // Stays stopped.
    expectOk(await a.client.request("createPipeline", { ...live("idle"), node: "a" }));

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
    await a.local.close();
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
    await b.local.close();
    assert.equal(await b.server.stop(), 0);
    // Handed back as b stopped, not left to run out: b's leases would still hold for seconds.
    assert.equal(await pg.query("SELECT count(*) FROM pipelines WHERE owner = 'b'"), "0");
    const stopped = expectOk(await c.client.request("getNodes", {})).payload.nodes
      .find((n: { id: string }) => n.id === "b");
    assert.equal(stopped.up, false);
    for (const id of onB) {
      await waitUntil(async () => (await statesOn(c)).has(id), 30000, `'${id}' on c`);
    }
    assert.deepEqual([...(await statesOn(c)).keys()].sort(), ["idle", "one", "three", "two"]);
    // c lists a pipeline it adopts before the pipeline reaches PLAYING: wait for the states.
    const playingOnC = async () =>
      [...(await statesOn(c)).entries()].filter(([, state]) => state === "PLAYING").map(([id]) =>
        id
      ).sort();
    await waitUntil(
      async () => (await playingOnC()).length === 3,
      30000,
      "the three playing pipelines PLAYING on c",
    );
    assert.deepEqual(await playingOnC(), ["one", "three", "two"]);
  });
});

Deno.test("cluster: a node frozen past its lease loses its pipelines to the others, and once it resumes stops its copies (and RTSP paths and readers) and does not claim them back", async () => {
  await withCluster(["a", "b"], async (nodes) => {
    const [a, b] = nodes;
    expectOk(
      await a.client.request("createPipeline", { id: "cam", pipeline: cameraLaunch("cam") }),
    );
    expectOk(await a.client.request("startPipeline", { id: "cam" }));
    assert.equal(await describeStatus(a.server.rtspUrl, "cam"), 200);
    // A reader of a's copy: a stops serving it once a finds its lease lost.
    const reader = await waitUntil(
      async () => {
        const conn = await RtspConn.open(a.server.rtspUrl);
        try {
          await conn.play("cam");
          return conn;
        } catch (error) {
          conn.close();
          throw error; // 503 until the encoder's first buffers reach the path
        }
      },
      10000,
      "a's reader playing 'cam'",
    );
    const reading = reader.drain();
    await waitUntil(() => reader.drained > 0, 10000, "a's reader receiving");

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
    await waitUntil(
      async () => !(await statesOn(a)).has("cam"),
      30000,
      "a dropping its copy of 'cam'",
    );
    const windowMs = Math.round(performance.now() - resumedAt);
    console.log(`a stopped its copy ${windowMs} ms after SIGCONT`);
    // From the end of the window on: one copy, on b; a serves no path 'cam'.
    const settled = Math.max(0, FENCING_WINDOW_MS - (performance.now() - resumedAt));
    await new Promise((resolve) => setTimeout(resolve, settled));
    assert.deepEqual(await playingOn([a, b], "cam"), ["b"]);
    assert.equal(await describeStatus(a.server.rtspUrl, "cam"), 404);
    assert.equal(await describeStatus(b.server.rtspUrl, "cam"), 200);
    // a's reader gets nothing more (its session ended; the connection may stay open).
    const readSoFar = reader.drained;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(reader.drained, readSoFar, "a still sends its reader data after the window");
    reader.close();
    await reading;
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
  });
});

Deno.test("cluster: any node answers: a client on a creates, controls and deletes a pipeline on b with the replies b gives; getPipelines on every node lists every pipeline once, with its node; events from all three nodes reach one client once each", async () => {
  await withCluster(["a", "b", "c"], async (nodes) => {
    const [a, b, c] = nodes;
    type Event = { type: string; node?: string; payload: { id?: string } };
    const eventsOnC = () => c.client.received.filter((m) => m.type !== "stats") as Event[];

    // On b, from a.
    const created = expectOk(
      await a.client.request("createPipeline", {
        ...live("remote"),
        node: "b",
      }),
    ).payload;
    assert.equal(created.node, "b");
    assert.equal(created.rtspUrl, b.server.rtspUrl);
    assert.ok((await statesOn(b)).has("remote"));
    assert.ok(!(await statesOn(a)).has("remote"));
    expectOk(await a.client.request("startPipeline", { id: "remote" }));
    assert.equal((await statesOn(b)).get("remote"), "PLAYING");
    const details = expectOk(await a.client.request("getPipeline", { id: "remote" })).payload;
    assert.equal(details.node, "b");
    assert.ok(Array.isArray(details.elements));
    expectOk(
      await a.client.request("setElementProperty", {
        id: "remote",
        element: "videotestsrc0",
        property: "pattern",
        value: "ball",
      }),
    );
    const property = expectOk(
      await b.client.request("getElementProperty", {
        id: "remote",
        element: "videotestsrc0",
        property: "pattern",
      }),
    ).payload;
    assert.equal(property.value, "ball");
    // Errors come back as b gives them.
    const direct = expectError(
      await b.client.request("getElementProperty", {
        id: "remote",
        element: "nope",
        property: "x",
      }),
      "ELEMENT_NOT_FOUND",
    );
    const forwarded = expectError(
      await a.client.request("getElementProperty", {
        id: "remote",
        element: "nope",
        property: "x",
      }),
      "ELEMENT_NOT_FOUND",
    );
    assert.deepEqual(forwarded, direct);
    const unknownNode = expectError(
      await a.client.request("createPipeline", { ...live("nowhere"), node: "z" }),
      "NODE_UNAVAILABLE",
    );
    assert.match(unknownNode.message, /No node 'z'; the nodes up are: a, b, c/);

    // Placed on the least-loaded node: b has one, so the next two go to a and c.
    const placedOn = new Map<string, string>([["remote", "b"]]);
    for (const id of ["p1", "p2"]) {
      placedOn.set(id, expectOk(await b.client.request("createPipeline", live(id))).payload.node);
    }
    assert.deepEqual([placedOn.get("p1"), placedOn.get("p2")].sort(), ["a", "c"]);
    const expected = [...placedOn].map(([id, node]) => `${id}@${node}`).sort();

    // Every node lists every pipeline once, with its node.
    for (const node of nodes) {
      const listed = expectOk(await node.client.request("getPipelines", {})).payload.pipelines
        .map((p: { id: string; node: string }) => `${p.id}@${p.node}`).sort();
      assert.deepEqual(listed, expected, `getPipelines on ${node.id}`);
    }

    // Recordings stay on their node, and are listed and stopped from any node.
    expectOk(await b.client.request("startRecording", { path: "lobby" }));
    const recordings = expectOk(await a.client.request("listRecordings", {})).payload.recordings;
    assert.deepEqual(recordings.map((r: { path: string; node: string }) => `${r.path}@${r.node}`), [
      "lobby@b",
    ]);
    assert.equal(
      expectOk(await a.client.request("stopRecording", { path: "lobby" })).payload.node,
      "b",
    );
    assert.deepEqual(
      expectOk(await c.client.request("listRecordings", {})).payload.recordings,
      [],
    );

    expectOk(await a.client.request("deletePipeline", { id: "remote" }));
    assert.ok(!(await statesOn(b)).has("remote"));
    expectError(await a.client.request("getPipeline", { id: "remote" }), "PIPELINE_NOT_FOUND");

    // Events: each pipeline's creation once, from the node it happened on.
    await waitUntil(
      () => eventsOnC().some((event) => event.type === "pipelineDeleted" && event.node === "b"),
      10000,
      "the deletion on b, on c's client",
    );
    const creations = eventsOnC().filter((event) => event.type === "pipelineCreated");
    assert.deepEqual(
      creations.map((event) => `${event.payload.id}@${event.node}`).sort(),
      expected,
    );
    assert.equal(eventsOnC().filter((event) => event.type === "pipelineDeleted").length, 1);
  });
});

Deno.test("cluster: movePipeline hands a playing pipeline and its RTSP path to another node", async () => {
  await withCluster(["a", "b"], async (nodes) => {
    const [a, b] = nodes;
    expectOk(
      await a.client.request("createPipeline", {
        id: "cam",
        pipeline: cameraLaunch("cam"),
        node: "a",
      }),
    );
    expectOk(await a.client.request("startPipeline", { id: "cam" }));
    const moved = expectOk(await b.client.request("movePipeline", { id: "cam", node: "b" }))
      .payload;
    assert.deepEqual(moved, { id: "cam", node: "b", rtspUrl: b.server.rtspUrl });
    await waitUntil(
      async () => (await playingOn([a, b], "cam")).join() === "b",
      15000,
      "'cam' playing on b alone",
    );
    assert.equal(await describeStatus(a.server.rtspUrl, "cam"), 404);
    assert.equal(await describeStatus(b.server.rtspUrl, "cam"), 200);
    // Moving it where it is changes nothing; to a node that is not there is refused.
    assert.deepEqual(
      expectOk(await a.client.request("movePipeline", { id: "cam", node: "b" })).payload,
      moved,
    );
    expectError(
      await a.client.request("movePipeline", { id: "cam", node: "z" }),
      "NODE_UNAVAILABLE",
    );
    assert.deepEqual(await playingOn([a, b], "cam"), ["b"]);
  });
});

Deno.test("cluster: PostgreSQL restarts: every node keeps its pipelines playing (none moves or runs twice), changes are refused meanwhile, and events flow between nodes again afterwards", async () => {
  // The default lease: a restart of the database is shorter than it.
  await withCluster(["a", "b"], async (nodes, pg) => {
    const [a, b] = nodes;
    for (const node of nodes) {
      const id = `on-${node.id}`;
      expectOk(await a.client.request("createPipeline", { ...live(id), node: node.id }));
      expectOk(await a.client.request("startPipeline", { id }));
    }
    await pg.stop("immediate");
    const refused = expectError(
      await a.client.request("createPipeline", { ...live("during"), node: "a" }, 20000),
      "STORAGE_FAILED",
    );
    assert.match(refused.message, /the database at postgres:\/\/.* cannot be reached/);
    // Clients go on asking while it is away: every write tries to connect. The client's own
    // back-off grew with each failed attempt, so that the pool reconnected seconds after the
    // database was back, and every node's fence stopped its pipelines.
    for (let round = 0; round < 20; round++) {
      await Promise.all(nodes.map(async (node) =>
        expectError(
          await node.client.request("createPipeline", {
            ...live(`during-${round}`),
            node: node.id,
          }),
          "STORAGE_FAILED",
        )
      ));
    }
    await pg.start();
    await waitUntil(
      async () => (await a.client.request("createPipeline", { ...live("after"), node: "a" })).ok,
      20000,
      "a create accepted once the database is back",
    );
    // Events sent before b listens again are lost (docs/cluster.md); once it does, they arrive.
    await b.server.waitForLog("hears other nodes' events again");
    const seen = b.client.received.length;
    expectOk(await a.client.request("deletePipeline", { id: "after" }));
    await b.client.waitFor(
      (m) => b.client.received.indexOf(m) >= seen && m.type === "pipelineDeleted",
      10000,
      "a's pipelineDeleted reaching b's client after the restart",
    );
    // Two more renewal rounds (each node's heartbeat moves twice): still where they were, once.
    await waitForHeartbeats(pg, nodes, 2);
    for (const node of nodes) {
      assert.deepEqual(await playingOn(nodes, `on-${node.id}`), [node.id]);
    }
    assert.ok(
      a.server.logs.every((line) => !line.includes("stopping its")),
      a.server.logs.join("\n"),
    );
  }, 6);
});

Deno.test("cluster: a create the database could not answer in time is refused and leaves no row behind, though its INSERT was waiting on a lock", async () => {
  await withCluster(["a"], async ([a], pg) => {
    // Another session inserts the same id and keeps its transaction open: a's INSERT waits on it.
    const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    const session = await sql.reserve();
    try {
      await session`BEGIN`;
      await session`
        INSERT INTO pipelines (id, definition, desired_state, created_at)
        VALUES ('held', '{}', 'stopped', '2026-01-01T00:00:00.000Z')`;
      const refused = expectError(
        await a.client.request("createPipeline", live("held"), 20000),
        "STORAGE_FAILED",
      );
      assert.match(refused.message, /no answer within 5 s/);
      // Before the fix, the INSERT went on waiting and committed here: a row the client was told
      // failed, which no node ran and the next create was refused for (DUPLICATE_ID).
      await session`ROLLBACK`;
      expectOk(await a.client.request("createPipeline", live("held")));
      assert.equal(await pg.query("SELECT count(*) FROM pipelines WHERE id = 'held'"), "1");
      expectOk(await a.client.request("deletePipeline", { id: "held" }));
      assert.equal(await pg.query("SELECT count(*) FROM pipelines WHERE id = 'held'"), "0");
    } finally {
      session.release();
      await sql.end({ timeout: 1 });
    }
  });
});

Deno.test("cluster: after PostgreSQL restarts, a node takes its id again: a second server of that id is still refused", async () => {
  await withCluster(["a"], async ([a], pg) => {
    await pg.stop("fast");
    await pg.start();
    // Its session comes back with the id's lock first, then its LISTENs.
    await a.server.waitForLog("hears other nodes' events again", 20000);
    const second = await startServer({
      GSTREAMER_DATABASE_URL: pg.url,
      GSTREAMER_NODE_ID: "a",
      GSTREAMER_LEASE_SECONDS: String(LEASE_SECONDS),
    }).then(
      async (server) => {
        await server.stop();
        return "started";
      },
      (error: Error) => error.message,
    );
    assert.match(second, /another running server is node 'a' of this database/);
  });
});

Deno.test("cluster: a node frozen before any link to it was opened answers forwarded requests with NODE_UNAVAILABLE, not never; a move to a full node is refused before its pipeline stops; requests forwarded from many clients are not limited as one client's", async () => {
  const pg = await startPostgres();
  const nodes: Node[] = [];
  try {
    // b takes one pipeline and at most 5 requests a second from any one client.
    const b = await startServer({
      GSTREAMER_DATABASE_URL: pg.url,
      GSTREAMER_NODE_ID: "b",
      GSTREAMER_LEASE_SECONDS: String(LEASE_SECONDS),
      GSTREAMER_MAX_PIPELINES: "1",
      GSTREAMER_MAX_REQUESTS_PER_SECOND: "5",
    });
    nodes.push({
      id: "b",
      server: b,
      client: await TestClient.connect(b.url),
      local: await TestClient.connect(`${b.url}?peer=1`),
      recordingsDir: await Deno.makeTempDir({ prefix: "cluster_b_recordings_" }),
    });
    nodes.push(await startNode(pg, "a", LEASE_SECONDS));
    nodes.push(await startNode(pg, "c", LEASE_SECONDS));
    const [bNode, a, c] = nodes;
    expectOk(await a.client.request("createPipeline", { ...live("on-b"), node: "b" }));
    expectOk(await a.client.request("createPipeline", { ...live("on-a"), node: "a" }));
    const full = expectError(
      await a.client.request("movePipeline", { id: "on-a", node: "b" }),
      "LIMIT_REACHED",
    );
    assert.match(full.message, /Node 'b' holds 1 pipelines, its limit/);
    assert.ok((await statesOn(a)).has("on-a"), "the refused move left on-a on a");

    // Three clients of a, 4 requests each at once: 12 through a's one link, each client under 5.
    const clients = [a.client, await TestClient.connect(a.server.url)];
    clients.push(await TestClient.connect(a.server.url));
    const replies = await Promise.all(
      clients.flatMap((client) =>
        Array.from({ length: 4 }, () => client.request("getPipeline", { id: "on-b" }))
      ),
    );
    assert.deepEqual(replies.filter((reply) => !reply.ok).map((reply) => reply.error?.code), []);
    for (const client of clients.slice(1)) await client.close();

    // c has never forwarded to b: its link opens now, to a node that takes the connection in its
    // kernel but never answers the upgrade.
    Deno.kill(bNode.server.pid, "SIGSTOP");
    const askedAt = performance.now();
    const reply = await c.client.request("getPipeline", { id: "on-b" }, 30000)
      .finally(() => Deno.kill(bNode.server.pid, "SIGCONT"));
    const waitedMs = performance.now() - askedAt;
    expectError(reply, "NODE_UNAVAILABLE");
    console.log(`NODE_UNAVAILABLE after ${Math.round(waitedMs)} ms`);
  } finally {
    await stopAll(nodes);
    await pg.remove();
  }
});
