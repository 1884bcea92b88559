/** The pipeline store on its own (no server): group commit and closing. */
import assert from "node:assert/strict";
import { SqliteStore } from "../src/domain/store_sqlite.ts";

Deno.test("closing the store commits every write queued before it, and refuses later ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "store_close_" });
  const store = await SqliteStore.open(dir);
  // 200 at once: one goes to the writer, the others queue behind it for the next batch.
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
