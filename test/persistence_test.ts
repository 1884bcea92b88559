/**
 * Pipelines survive the server: definitions and desired states are kept in
 * SQLite under GSTREAMER_DATA_DIR and come back on the next start, even
 * after kill -9.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { expectOk, type ServerProcess, startServer, TestClient } from "./helpers.ts";

const testPipeline = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  description: `kept ${id}`,
  pipeline: {
    elements: [
      { type: "videotestsrc", properties: { "is-live": true, pattern: "ball" } },
      { type: "capsfilter", properties: { caps: "video/x-raw,width=64,height=48" } },
      { type: "fakesink", name: "out" },
    ],
  },
  ...extra,
});

async function withServer<T>(
  env: Record<string, string>,
  body: (server: ServerProcess, client: TestClient) => Promise<T>,
): Promise<T> {
  const server = await startServer(env);
  const client = await TestClient.connect(server.url);
  try {
    return await body(server, client);
  } finally {
    await client.close();
    await server.stop();
  }
}

async function pipelinesById(client: TestClient) {
  const reply = expectOk(await client.request("getPipelines", {}));
  // deno-lint-ignore no-explicit-any
  return new Map<string, any>(reply.payload.pipelines.map((p: { id: string }) => [p.id, p]));
}

Deno.test("pipelines and their desired state come back after a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  const created = await withServer(env, async (_server, client) => {
    const playing = expectOk(await client.request("createPipeline", testPipeline("playing")));
    expectOk(await client.request("startPipeline", { id: "playing" }));
    expectOk(
      await client.request("createPipeline", testPipeline("stopped", { restart: "always" })),
    );
    expectOk(await client.request("startPipeline", { id: "stopped" }));
    expectOk(await client.request("stopPipeline", { id: "stopped" }));
    expectOk(await client.request("createPipeline", testPipeline("deleted")));
    expectOk(await client.request("deletePipeline", { id: "deleted" }));
    return playing.payload.createdAt;
  });
  await withServer(env, async (server, client) => {
    assert.ok(server.logs.some((line) => line.includes("2 restored")), server.logs.join("\n"));
    const pipelines = await pipelinesById(client);
    assert.deepEqual([...pipelines.keys()], ["playing", "stopped"]);
    const stopped = pipelines.get("stopped");
    assert.equal(stopped.state, "NULL");
    assert.equal(stopped.desiredState, "stopped");
    assert.equal(stopped.restart, "always");
    const playing = pipelines.get("playing");
    assert.equal(playing.createdAt, created);
    assert.equal(playing.description, "kept playing");
    assert.equal(playing.desiredState, "playing");
    // Restored and playing again: a stats round shows its sink rendering (or this times out).
    await client.nextStats((p) =>
      p.id === "playing" && p.state === "PLAYING" && p.sinks[0]?.rendered > 0
    );
  });
});

Deno.test("kill -9 during a burst of creates loses no acknowledged pipeline", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_kill_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  const server = await startServer(env);
  const client = await TestClient.connect(server.url);
  const acknowledged: string[] = [];
  const burst = Array.from({ length: 300 }, (_, i) => `burst-${i}`);
  let killed = false;
  const requests = burst.map((id) =>
    client.request("createPipeline", testPipeline(id), 8000).then((reply) => {
      if (reply.ok) acknowledged.push(id);
      // Killed while requests are still in flight: some are acknowledged, some not yet.
      if (acknowledged.length === 100 && !killed) {
        killed = true;
        Deno.kill(server.pid, "SIGKILL");
      }
    }).catch(() => {})
  );
  await server.exited;
  await Promise.allSettled(requests);
  await client.close();
  assert.ok(killed, "the server was killed during the burst");
  assert.ok(acknowledged.length >= 100 && acknowledged.length < burst.length);

  // The file is a readable database before the server touches it again.
  const db = new DatabaseSync(`${dataDir}/pipelines.db`, { readOnly: true });
  const integrity = db.prepare("PRAGMA integrity_check").get() as Record<string, string>;
  assert.equal(Object.values(integrity)[0], "ok");
  db.close();

  await withServer(env, async (_server, restarted) => {
    const pipelines = await pipelinesById(restarted);
    const missing = acknowledged.filter((id) => !pipelines.has(id));
    assert.deepEqual(missing, [], "every acknowledged create is back");
    for (const id of pipelines.keys()) assert.ok(burst.includes(id), `unexpected ${id}`);
  });
});

Deno.test("kill -9 while many clients start pipelines at once loses no acknowledged start", async () => {
  // Concurrent changes share commits (group commit); each reply still means it is on disk.
  const dataDir = await Deno.makeTempDir({ prefix: "persist_starts_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  const server = await startServer(env);
  const clients = await Promise.all(
    Array.from({ length: 10 }, () => TestClient.connect(server.url)),
  );
  const created: string[] = [];
  await Promise.all(clients.map(async (client, c) => {
    for (let i = 0; i < 10; i++) {
      const id = `start-${c}-${i}`;
      expectOk(await client.request("createPipeline", testPipeline(id)));
      created.push(id);
    }
  }));
  const started: string[] = [];
  let killed = false;
  const starts = clients.flatMap((client, c) =>
    Array.from({ length: 10 }, (_, i) => `start-${c}-${i}`).map((id) =>
      client.request("startPipeline", { id }, 8000).then((reply) => {
        if (reply.ok) started.push(id);
        if (started.length === 40 && !killed) {
          killed = true;
          Deno.kill(server.pid, "SIGKILL");
        }
      }).catch(() => {})
    )
  );
  await server.exited;
  await Promise.allSettled(starts);
  await Promise.all(clients.map((client) => client.close()));
  assert.ok(killed, "the server was killed while the starts were under way");

  await withServer(env, async (_server, restarted) => {
    const pipelines = await pipelinesById(restarted);
    assert.deepEqual(created.filter((id) => !pipelines.has(id)), [], "every created pipeline");
    const notPlaying = started.filter((id) => pipelines.get(id)?.desiredState !== "playing");
    assert.deepEqual(notPlaying, [], "every acknowledged start is stored as playing");
  });
});

Deno.test("a create that fails after its row was written leaves no row behind", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_failed_create_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  await withServer(env, async (_server, client) => {
    const served = (id: string, path: string) => ({
      id,
      pipeline: {
        elements: [
          { type: "videotestsrc", properties: { "is-live": true } },
          { type: "x264enc", properties: { tune: "zerolatency" } },
          { type: "rtspserversink", properties: { path } },
        ],
      },
    });
    expectOk(await client.request("createPipeline", served("owner", "taken")));
    // Refused once built: the path is served already; and a link GStreamer refuses.
    const conflict = await client.request("createPipeline", served("second", "taken"));
    assert.equal(conflict.ok, false, JSON.stringify(conflict));
    const badLink = await client.request("createPipeline", {
      id: "bad-link",
      pipeline: {
        elements: [{ type: "audiotestsrc" }, { type: "videoconvert" }, { type: "fakesink" }],
      },
    });
    assert.equal(badLink.error?.code, "LINK_FAILED", JSON.stringify(badLink));
  });
  await withServer(env, async (_server, client) => {
    assert.deepEqual([...(await pipelinesById(client)).keys()], ["owner"]);
  });
});

/**
 * Makes the store refuse writes to pipelines whose id starts with `fail-`, as a full or failing
 * disk would: a trigger in the database file, added beside the running server.
 */
function refuseWritesToFailIds(dataDir: string): void {
  const db = new DatabaseSync(`${dataDir}/pipelines.db`);
  for (const event of ["INSERT", "UPDATE", "DELETE"]) {
    const row = event === "DELETE" ? "OLD" : "NEW";
    db.exec(`
      CREATE TRIGGER refuse_${event.toLowerCase()} BEFORE ${event} ON pipelines
      WHEN ${row}.id LIKE 'fail-%' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;
    `);
  }
  db.close();
}

Deno.test("a change the store cannot save fails with STORAGE_FAILED and changes nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_storage_failed_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  await withServer(env, async (_server, client) => {
    expectOk(await client.request("createPipeline", testPipeline("fail-kept")));
    expectOk(await client.request("createPipeline", testPipeline("kept")));
    refuseWritesToFailIds(dataDir);

    // A create: refused, and the id is free; a create beside it, in the same moment, is kept.
    const [refused, beside] = await Promise.all([
      client.request("createPipeline", testPipeline("fail-new")),
      client.request("createPipeline", testPipeline("beside")),
    ]);
    assert.equal(refused.error?.code, "STORAGE_FAILED", JSON.stringify(refused));
    assert.match(refused.error!.message, /fail-new.*could not be saved: disk on fire/);
    expectOk(beside);
    let pipelines = await pipelinesById(client);
    assert.ok(!pipelines.has("fail-new"));

    // A start: refused, and the pipeline is back where it was (stopped, in NULL).
    const start = await client.request("startPipeline", { id: "fail-kept" });
    assert.equal(start.error?.code, "STORAGE_FAILED", JSON.stringify(start));
    pipelines = await pipelinesById(client);
    assert.equal(pipelines.get("fail-kept").desiredState, "stopped");
    assert.equal(pipelines.get("fail-kept").state, "NULL");

    // A delete: refused, and the pipeline is still there.
    const deleted = await client.request("deletePipeline", { id: "fail-kept" });
    assert.equal(deleted.error?.code, "STORAGE_FAILED", JSON.stringify(deleted));
    assert.ok((await pipelinesById(client)).has("fail-kept"));

    // Others are untouched.
    expectOk(await client.request("startPipeline", { id: "kept" }));
  });
  await withServer(env, async (_server, client) => {
    const pipelines = await pipelinesById(client);
    assert.deepEqual([...pipelines.keys()].sort(), ["beside", "fail-kept", "kept"]);
    assert.equal(pipelines.get("fail-kept").desiredState, "stopped");
    assert.equal(pipelines.get("kept").desiredState, "playing");
  });
});

Deno.test("a delete stops the pipeline while its row is removed; when the row stays, it plays again", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_delete_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  await withServer(env, async (server, client) => {
    for (const id of ["fail-playing", "gone"]) {
      expectOk(await client.request("createPipeline", testPipeline(id)));
      expectOk(await client.request("startPipeline", { id }));
    }
    refuseWritesToFailIds(dataDir);
    const watcher = await TestClient.connect(server.url);
    try {
      const told = (id: string) =>
        watcher.received
          // deno-lint-ignore no-explicit-any
          .filter((m: any) => m.type.startsWith("pipeline") && m.payload.id === id)
          // deno-lint-ignore no-explicit-any
          .map((m: any) => `${m.type} ${m.payload.old ?? ""} ${m.payload.new ?? ""}`.trim());

      // A delete that the store takes: the pipeline stops on the way, but its last event is
      // pipelineDeleted (no state change is told of a pipeline that is going).
      expectOk(await client.request("deletePipeline", { id: "gone" }));
      await watcher.event("pipelineDeleted", (payload) => payload.id === "gone");
      assert.deepEqual(told("gone"), ["pipelineDeleted"]);

      // A delete that the store refuses: it stopped while the row was being removed, so it says
      // so, and goes back to playing; the delete fails and the pipeline stays.
      const refused = await client.request("deletePipeline", { id: "fail-playing" });
      assert.equal(refused.error?.code, "STORAGE_FAILED", JSON.stringify(refused));
      assert.match(refused.error!.message, /fail-playing.*disk on fire/);
      const pipeline = (await pipelinesById(client)).get("fail-playing");
      assert.equal(pipeline.state, "PLAYING");
      assert.equal(pipeline.desiredState, "playing");
      await watcher.event(
        "pipelineStateChanged",
        (payload) => payload.id === "fail-playing" && payload.new === "PLAYING",
      );
      assert.deepEqual(told("fail-playing"), [
        "pipelineStateChanged PLAYING NULL",
        "pipelineStateChanged NULL READY",
        "pipelineStateChanged READY PAUSED",
        "pipelineStateChanged PAUSED PLAYING",
      ]);
      await client.nextStats((p) => p.id === "fail-playing" && p.state === "PLAYING");
    } finally {
      await watcher.close();
    }
  });
  await withServer(env, async (_server, client) => {
    const pipelines = await pipelinesById(client);
    assert.deepEqual([...pipelines.keys()], ["fail-playing"]);
    assert.equal(pipelines.get("fail-playing").desiredState, "playing");
  });
});

Deno.test("a create that asks for a state starts in the same request, or leaves nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_create_started_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  await withServer(env, async (server, client) => {
    expectOk(await client.request("createPipeline", testPipeline("fail-before")));
    refuseWritesToFailIds(dataDir);
    const watcher = await TestClient.connect(server.url);
    try {
      const playing = expectOk(
        await client.request(
          "createPipeline",
          testPipeline("playing", { desiredState: "playing" }),
        ),
      );
      assert.equal(playing.payload.state, "PLAYING");
      assert.equal(playing.payload.desiredState, "playing");
      const paused = expectOk(
        await client.request("createPipeline", testPipeline("paused", { desiredState: "paused" })),
      );
      assert.equal(paused.payload.state, "PAUSED");

      // Its start fails (no such file): the create fails with the cause, even for a pipeline
      // whose policy would try again, and nothing stays.
      const failing = await client.request("createPipeline", {
        id: "missing-file",
        pipeline: "filesrc location=media/no-such-file.mp4 ! fakesink",
        restart: "always",
        desiredState: "playing",
      });
      assert.equal(failing.error?.code, "STATE_CHANGE_FAILED", JSON.stringify(failing));
      assert.match(failing.error!.message, /'missing-file' could not go to PLAYING: filesrc0/);
      // The store refuses its row: the pipeline it had started is stopped and gone.
      const refused = await client.request(
        "createPipeline",
        testPipeline("fail-playing", { desiredState: "playing" }),
      );
      assert.equal(refused.error?.code, "STORAGE_FAILED", JSON.stringify(refused));
      const bad = await client.request(
        "createPipeline",
        testPipeline("bad", { desiredState: "running" }),
      );
      assert.equal(bad.error?.code, "INVALID_REQUEST");
      assert.match(bad.error!.message, /desiredState.*"playing"\|"paused"\|"stopped"/);

      const pipelines = await pipelinesById(client);
      assert.deepEqual([...pipelines.keys()].sort(), ["fail-before", "paused", "playing"]);
      // A watcher hears of each started pipeline once, as created in the state it reached; of
      // the failed creates, nothing.
      await watcher.event("pipelineCreated", (payload) => payload.id === "paused");
      const heard = watcher.received
        .filter((m) => m.type.startsWith("pipeline"))
        // deno-lint-ignore no-explicit-any
        .map((m: any) => `${m.type} ${m.payload.id} ${m.payload.state ?? ""}`.trim());
      assert.deepEqual(heard, ["pipelineCreated playing PLAYING", "pipelineCreated paused PAUSED"]);
    } finally {
      await watcher.close();
    }
  });
  await withServer(env, async (_server, client) => {
    const pipelines = await pipelinesById(client);
    assert.deepEqual([...pipelines.keys()].sort(), ["fail-before", "paused", "playing"]);
    assert.equal(pipelines.get("playing").desiredState, "playing");
    assert.equal(pipelines.get("paused").desiredState, "paused");
    await client.nextStats((p) => p.id === "playing" && p.state === "PLAYING");
  });
});

Deno.test("a stored pipeline that no longer builds comes back in an error state", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "persist_broken_" });
  const env = { GSTREAMER_DATA_DIR: dataDir };
  await withServer(env, async (_server, client) => {
    expectOk(await client.request("createPipeline", testPipeline("fine")));
    expectOk(await client.request("createPipeline", testPipeline("broken")));
    expectOk(await client.request("startPipeline", { id: "broken" }));
  });
  // As if the plugin of one of its elements had been removed since.
  const db = new DatabaseSync(`${dataDir}/pipelines.db`);
  const row = db.prepare("SELECT definition FROM pipelines WHERE id = 'broken'").get() as {
    definition: string;
  };
  const definition = JSON.parse(row.definition);
  definition.pipeline.elements[0].type = "removedpluginsrc";
  db.prepare("UPDATE pipelines SET definition = ? WHERE id = 'broken'").run(
    JSON.stringify(definition),
  );
  db.close();

  await withServer(env, async (server, client) => {
    assert.ok(server.logs.some((line) => line.includes("1 could not be rebuilt")));
    const pipelines = await pipelinesById(client);
    assert.equal(pipelines.get("fine").state, "NULL");
    const broken = pipelines.get("broken");
    assert.equal(broken.state, "NULL");
    assert.equal(broken.desiredState, "playing");
    assert.match(broken.lastError.message, /removedpluginsrc/);
    const start = await client.request("startPipeline", { id: "broken" });
    assert.equal(start.error?.code, "STATE_CHANGE_FAILED");
    assert.match(start.error!.message, /could not be rebuilt.*removedpluginsrc/);
    // Still usable: a valid pipeline runs beside it, and the broken one can be deleted.
    expectOk(await client.request("startPipeline", { id: "fine" }));
    expectOk(await client.request("deletePipeline", { id: "broken" }));
    assert.equal((await pipelinesById(client)).has("broken"), false);
  });
  await withServer(env, async (_server, client) => {
    assert.deepEqual([...(await pipelinesById(client)).keys()], ["fine"]);
  });
});

Deno.test("GSTREAMER_DATA_DIR=:memory: keeps nothing", async () => {
  const cwdEntries = async () => {
    const names: string[] = [];
    for await (const entry of Deno.readDir(new URL("../", import.meta.url))) names.push(entry.name);
    return names.sort();
  };
  const before = await cwdEntries();
  const env = { GSTREAMER_DATA_DIR: ":memory:" };
  await withServer(env, async (server, client) => {
    assert.ok(server.logs.some((line) => line.includes("Pipelines: :memory:")));
    expectOk(await client.request("createPipeline", testPipeline("ephemeral")));
  });
  await withServer(env, async (_server, client) => {
    assert.equal((await pipelinesById(client)).size, 0);
  });
  const after = (await cwdEntries()).filter((name) => name !== "media");
  assert.deepEqual(after, before.filter((name) => name !== "media"));
});

Deno.test("an unwritable data directory stops start-up with a message naming it", async () => {
  const file = await Deno.makeTempFile({ prefix: "not_a_dir_" });
  await assert.rejects(
    startServer({ GSTREAMER_DATA_DIR: file }),
    new RegExp(`exited with 78[\\s\\S]*GSTREAMER_DATA_DIR=${file}`),
  );
});
