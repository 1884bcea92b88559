/**
 * The SQLite store's writer, on a thread of its own (src/domain/store_sqlite.ts): the main thread never
 * waits for the disk. Writes that arrive while a commit is under way are committed together, in
 * one transaction with one fsync (group commit); each write is answered once its commit returned.
 */
/// <reference lib="deno.worker" />
import { DatabaseSync } from "node:sqlite";
import type { StoreWrite } from "./store.ts";
import { rowWriter, type StoreReply, type StoreRequest } from "./store_sqlite.ts";

let db: DatabaseSync | null = null;
let writeRow: (write: StoreWrite) => void;

function reply(message: StoreReply): void {
  self.postMessage(message);
}

function open(location: string): void {
  db = new DatabaseSync(location);
  // The main thread made the schema; this connection only writes rows.
  db.exec("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
  writeRow = rowWriter(db);
}

/** Commits a batch: all in one transaction, or one by one when that fails. */
function commit(batch: { seq: number; write: StoreWrite }[]): void {
  const committed: number[] = [];
  const failed: { seq: number; message: string }[] = [];
  try {
    db!.exec("BEGIN IMMEDIATE");
    for (const { write } of batch) writeRow(write);
    db!.exec("COMMIT");
    reply({ type: "written", committed: batch.map(({ seq }) => seq), failed });
    return;
  } catch {
    if (db!.isTransaction) db!.exec("ROLLBACK");
  }
  // One write that fails must not fail the others: each in its own transaction.
  for (const { seq, write } of batch) {
    try {
      writeRow(write);
      committed.push(seq);
    } catch (error) {
      failed.push({ seq, message: (error as Error).message });
    }
  }
  reply({ type: "written", committed, failed });
}

self.onmessage = (event: MessageEvent<StoreRequest>) => {
  const request = event.data;
  if (request.type === "open") {
    try {
      open(request.location);
      reply({ type: "opened" });
    } catch (error) {
      reply({ type: "openFailed", message: (error as Error).message });
    }
  } else if (request.type === "write") {
    if (db === null) {
      const message = "the store's writer is not open";
      reply({
        type: "written",
        committed: [],
        failed: request.batch.map(({ seq }) => ({ seq, message })),
      });
    } else {
      commit(request.batch);
    }
  } else if (request.type === "close") {
    db?.close();
    db = null;
    reply({ type: "closed" });
    self.close();
  }
};
