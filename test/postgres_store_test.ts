/**
 * The store in PostgreSQL (GSTREAMER_DATABASE_URL), against a real PostgreSQL of the test's own:
 * versioned migrations at start-up, everything acknowledged surviving kill -9 of the server, and
 * the database going away and coming back.
 */
import assert from "node:assert/strict";
import {
  expectError,
  expectOk,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { startPostgres } from "./postgres.ts";

const live = (id: string) => ({
  id,
  pipeline: "videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! fakesink",
});

async function pipelines(client: TestClient): Promise<Map<string, { state: string }>> {
  const reply = expectOk(await client.request("getPipelines", {}));
  return new Map(reply.payload.pipelines.map((p: { id: string; state: string }) => [p.id, p]));
}

async function killed(server: ServerProcess, client: TestClient): Promise<void> {
  await client.close();
  Deno.kill(server.pid, "SIGKILL");
  await server.exited;
}

Deno.test("PostgreSQL store: migrated once at start-up; pipelines, desired states and recordings survive kill -9", async () => {
  const pg = await startPostgres();
  try {
    const env = { GSTREAMER_DATABASE_URL: pg.url };
    let server = await startServer(env);
    let client = await TestClient.connect(server.url);
    assert.ok(
      server.logs.some((line) => line.includes(`Pipelines: ${pg.url}`)),
      server.logs.join("\n"),
    );
    assert.equal(
      await pg.query("SELECT version, name FROM schema_migrations ORDER BY version"),
      "1|pipelines and recordings\n2|nodes and leases",
    );
    expectOk(await client.request("createPipeline", live("playing")));
    expectOk(await client.request("startPipeline", { id: "playing" }));
    expectOk(await client.request("createPipeline", live("stopped")));
    expectOk(await client.request("createPipeline", live("deleted")));
    expectOk(await client.request("deletePipeline", { id: "deleted" }));
    expectOk(await client.request("startRecording", { path: "lobby", segmentSeconds: 5 }));
    assert.equal(
      await pg.query("SELECT id, desired_state FROM pipelines ORDER BY seq"),
      "playing|playing\nstopped|stopped",
    );
    await killed(server, client);

    server = await startServer(env);
    client = await TestClient.connect(server.url);
    const restored = await waitUntil(
      async () => {
        const found = await pipelines(client);
        return found.get("playing")?.state === "PLAYING" ? found : null;
      },
      10000,
      "'playing' playing again",
    );
    assert.deepEqual([...restored.keys()], ["playing", "stopped"]);
    assert.equal(restored.get("stopped")!.state, "NULL");
    const recordings = expectOk(await client.request("listRecordings", {})).payload.recordings;
    assert.deepEqual(recordings.map((r: { path: string }) => r.path), ["lobby"]);
    // Started again against a migrated database: nothing applied twice.
    assert.equal(await pg.query("SELECT count(*) FROM schema_migrations"), "2");
    await client.close();
    assert.equal(await server.stop(), 0);
  } finally {
    await pg.remove();
  }
});

Deno.test("PostgreSQL store: while the database is gone, changes are refused naming it and pipelines play on; once back, nothing acknowledged is lost", async () => {
  const pg = await startPostgres();
  try {
    // A long lease: this test is about the store; test/cluster_test.ts has the outage within a lease.
    const env = { GSTREAMER_DATABASE_URL: pg.url, GSTREAMER_LEASE_SECONDS: "30" };
    let server = await startServer(env);
    let client = await TestClient.connect(server.url);
    expectOk(await client.request("createPipeline", live("kept")));
    expectOk(await client.request("startPipeline", { id: "kept" }));

    await pg.stop("immediate"); // a crash of the database
    const refused = expectError(
      await client.request("createPipeline", live("refused"), 20000),
      "STORAGE_FAILED",
    );
    assert.match(
      refused.message,
      /could not be saved: the database at postgres:\/\/.* cannot be reached/,
    );
    // A failed request leaves nothing behind; what runs keeps running.
    const during = await pipelines(client);
    assert.deepEqual([...during.keys()], ["kept"]);
    assert.equal(during.get("kept")!.state, "PLAYING");

    await pg.start();
    // The client reconnects by itself: the first change after the restart may still meet the
    // connection that died, the next ones do not.
    await waitUntil(
      async () => {
        const reply = await client.request("createPipeline", live("after"), 20000);
        return reply.ok;
      },
      20000,
      "a create accepted once the database is back",
    );
    await killed(server, client);

    server = await startServer(env);
    client = await TestClient.connect(server.url);
    assert.deepEqual([...(await pipelines(client)).keys()], ["kept", "after"]);
    await client.close();
    assert.equal(await server.stop(), 0);
  } finally {
    await pg.remove();
  }
});

Deno.test("PostgreSQL store: a database that cannot be reached at start-up is named, and the server exits 1 to be started again", async () => {
  const pg = await startPostgres();
  await pg.remove(); // a port where no database listens
  await assert.rejects(
    startServer({ GSTREAMER_DATABASE_URL: `postgres://gst:secret@127.0.0.1:${pg.port}/postgres` }),
    (error: Error) => {
      assert.match(error.message, /exited with 1 before listening/);
      assert.match(
        error.message,
        /database at postgres:\/\/gst:\*\*\*@127\.0\.0\.1:\d+.* cannot be reached/,
      );
      assert.doesNotMatch(error.message, /secret/);
      return true;
    },
  );
});
