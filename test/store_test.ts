/** The SQLite pipeline store on its own (no server): group commit, checkpoints and closing. */
import assert from "node:assert/strict";
import { SqliteStore } from "../src/domain/store_sqlite.ts";
import { runAsServer } from "./helpers.ts";

Deno.test("closing the store commits every write queued before it, and refuses later ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_close_" });
  const store = await SqliteStore.open(dir);
  let walSyncs = 0;
  const restore = onSyncsOf(`${dir}/pipelines.db-wal`, (real) => {
    walSyncs++;
    return real();
  });
  try {
    // 200 at once: the first starts a WAL sync, the others share the next one (group commit).
    const writes = Array.from({ length: 200 }, (_, i) => store.insert(`p${i}`, { n: i }, "now"));
    const closing = store.close();
    await assert.rejects(
      store.insert("late", {}, "now"),
      /could not be saved: the store is closed/,
    );
    await closing;
    const results = await Promise.allSettled(writes);
    assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
    assert.equal(walSyncs, 2);
  } finally {
    restore();
  }
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

Deno.test("the WAL is written out at open, writes do not grow it, and after a crash every write comes back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_written_out_" });
  const wal = `${dir}/pipelines.db-wal`;
  // Fewer writes than a checkpoint takes: all of them stay in the WAL, ahead of its zeros. The
  // process ends without closing the store, so SQLite neither checkpoints nor removes the WAL, as
  // after kill -9.
  const script = `
    import { SqliteStore } from "./src/domain/store_sqlite.ts";
    const store = await SqliteStore.open(${JSON.stringify(dir)});
    const atOpen = Deno.statSync(${JSON.stringify(wal)}).size;
    for (let i = 0; i < 300; i++) await store.insert("p" + i, { i }, "now");
    console.log(JSON.stringify({ atOpen, afterWrites: Deno.statSync(${
    JSON.stringify(wal)
  }).size }));
    Deno.exit(0);
  `;
  try {
    const sizes = JSON.parse(await runAsServer(script));
    assert.ok(sizes.atOpen >= 4 * 1024 * 1024, `the WAL held ${sizes.atOpen} bytes at open`);
    assert.equal(sizes.afterWrites, sizes.atOpen, "300 writes grew the WAL");
    // The rows are only in the WAL (the database file has the schema alone), frames then zeros.
    assert.equal((await Deno.stat(wal)).size, sizes.atOpen);
    const reopened = await SqliteStore.open(dir);
    try {
      assert.deepEqual(
        reopened.all().map((row) => row.id),
        Array.from({ length: 300 }, (_, i) => `p${i}`),
      );
      await reopened.insert("after", {}, "now");
    } finally {
      await reopened.close();
    }
    const again = await SqliteStore.open(dir);
    try {
      assert.equal(again.all().length, 301);
    } finally {
      await again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Makes fdatasync of the file at `path` fail with EIO, as a failing disk does, until the returned
 * function puts the real one back. No disk here refuses a sync (tmpfs and ext4 both accept it), so
 * the failure is injected where Deno's file handle meets the OS.
 */
/** Routes FsFile.syncData of the file at `path` through `sync` (other files sync as before). */
function onSyncsOf(path: string, sync: (real: () => Promise<void>) => Promise<void>): () => void {
  const { ino } = Deno.statSync(path);
  const real = Deno.FsFile.prototype.syncData;
  Deno.FsFile.prototype.syncData = function (this: Deno.FsFile) {
    if (this.statSync().ino !== ino) return real.call(this);
    return sync(() => real.call(this));
  };
  return () => (Deno.FsFile.prototype.syncData = real);
}

function failSyncsOf(path: string): () => void {
  return onSyncsOf(path, () => Promise.reject(new Error("Input/output error (os error 5)")));
}

Deno.test("a failed sync of the WAL fails that write and every later one; what was synced stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_wal_sync_" });
  const store = await SqliteStore.open(dir);
  try {
    await store.insert("kept", {}, "now");
    const restore = failSyncsOf(`${dir}/pipelines.db-wal`);
    try {
      await assert.rejects(
        store.insert("refused", {}, "now"),
        /pipeline 'refused' could not be saved: the disk could not sync .*pipelines\.db-wal: Input\/output error/,
      );
    } finally {
      restore();
    }
    // The disk syncs again, but after a failed fsync the page cache may not match it: the store
    // stays broken until a restart.
    await assert.rejects(
      store.setDesiredState("kept", "playing"),
      /could not be saved: the disk could not sync .*pipelines\.db-wal/,
    );
  } finally {
    await store.close();
  }
  const reopened = await SqliteStore.open(dir);
  try {
    const kept = reopened.all().find((row) => row.id === "kept");
    assert.equal(kept?.desiredState, "stopped");
  } finally {
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writes whose WAL sync failed are taken back: after a restart the rows are as the replies said", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_take_back_" });
  const store = await SqliteStore.open(dir);
  try {
    await store.insert("kept", { n: 1 }, "t1");
    await store.insert("gone", { n: 2 }, "t2", "playing");
    await store.insert("last", { n: 3 }, "t3");
    await store.putRecording("cam", { format: "mp4" }, "t4");
    const restore = failSyncsOf(`${dir}/pipelines.db-wal`);
    try {
      // One sync for the first, the next one for the others (group commit): all fail.
      const refused = [
        store.insert("refused", {}, "t5"),
        store.setDesiredState("kept", "playing"),
        store.remove("gone"),
        store.removeRecording("cam"),
        store.putRecording("new", { format: "ts" }, "t6"),
      ];
      for (const write of refused) await assert.rejects(write, /could not be saved/);
    } finally {
      restore();
    }
  } finally {
    await store.close();
  }
  const reopened = await SqliteStore.open(dir);
  try {
    assert.deepEqual(reopened.all(), [
      { id: "kept", definition: { n: 1 }, desiredState: "stopped", createdAt: "t1" },
      { id: "gone", definition: { n: 2 }, desiredState: "playing", createdAt: "t2" },
      { id: "last", definition: { n: 3 }, desiredState: "stopped", createdAt: "t3" },
    ]);
    assert.deepEqual(reopened.recordings(), [
      { path: "cam", options: { format: "mp4" }, createdAt: "t4" },
    ]);
  } finally {
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed sync of the database file at a checkpoint fails the writes held behind it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_db_sync_" });
  const store = await SqliteStore.open(dir);
  // The database file's sync fails when the test says, so that writes wait behind it first.
  let failDatabaseSync = (_error: Error) => {};
  let databaseSyncs = 0;
  const restore = onSyncsOf(`${dir}/pipelines.db`, () => {
    databaseSyncs++;
    return new Promise((_, reject) => (failDatabaseSync = reject));
  });
  try {
    // One after the other, so that the last one's WAL sync is followed by a checkpoint.
    for (let i = 0; i < 400; i++) await store.insert(`p${i}`, {}, "now");
    assert.equal(databaseSyncs, 1, "the checkpoint's sync of the database file is under way");
    const held = [store.insert("held0", {}, "now"), store.insert("held1", {}, "now")];
    failDatabaseSync(new Error("Input/output error (os error 5)"));
    for (const write of held) {
      await assert.rejects(write, /could not be saved: the disk could not sync .*pipelines\.db: /);
    }
    await assert.rejects(
      store.insert("later", {}, "now"),
      /the disk could not sync .*pipelines\.db: /,
    );
  } finally {
    restore();
    await store.close();
  }
  const reopened = await SqliteStore.open(dir);
  try {
    assert.equal(reopened.all().length, 400);
  } finally {
    await reopened.close();
    await Deno.remove(dir, { recursive: true });
  }
});
