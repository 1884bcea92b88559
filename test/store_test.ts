/** The SQLite pipeline store on its own (no server): group commit, checkpoints and closing. */
import assert from "node:assert/strict";
import { SqliteStore } from "../src/domain/store_sqlite.ts";

Deno.test("closing the store commits every write queued before it, and refuses later ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_close_" });
  const store = await SqliteStore.open(dir);
  // 200 at once: the first starts a WAL sync, the others wait for the next one.
  const writes = Array.from({ length: 200 }, (_, i) => store.insert(`p${i}`, { n: i }, "now"));
  const closing = store.close();
  await assert.rejects(store.insert("late", {}, "now"), /could not be saved: the store is closed/);
  await closing;
  const results = await Promise.allSettled(writes);
  assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
  const reopened = await SqliteStore.open(dir);
  try {
    assert.deepEqual(
      reopened.all().map((row) => row.id),
      Array.from({ length: 200 }, (_, i) => `p${i}`),
    );
  } finally {
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writes stay in order and on disk across checkpoints, and the WAL stays small", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_checkpoint_" });
  const store = await SqliteStore.open(dir);
  const ids = Array.from({ length: 1500 }, (_, i) => `p${i}`);
  try {
    // One after the other: the write after a checkpoint's WAL sync waits for the database file's
    // sync, and the setState behind it must still come after its insert.
    for (const id of ids) {
      await Promise.all([
        store.insert(id, { id }, "now"),
        store.setDesiredState(id, "playing"),
      ]);
    }
    // Without checkpoints the WAL holds every page written: about 8 KiB a write here.
    const { size } = await Deno.stat(`${dir}/pipelines.db-wal`);
    assert.ok(size < 8 * 1024 * 1024, `the WAL grew to ${size} bytes`);
  } finally {
    await store.close();
  }
  const reopened = await SqliteStore.open(dir);
  try {
    const rows = reopened.all();
    assert.deepEqual(rows.map((row) => row.id), ids);
    assert.deepEqual(rows.filter((row) => row.desiredState !== "playing"), []);
  } finally {
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});
