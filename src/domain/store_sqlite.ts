/**
 * The default store: an embedded SQLite database (node:sqlite). Every write is committed with
 * synchronous=FULL before its promise resolves, so an acknowledged change survives `kill -9` and
 * power loss; WAL keeps the file readable after either. Writes run on a worker thread
 * (src/domain/store_worker.ts), never on the main thread, and writes that arrive together share
 * one commit.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import {
  MIGRATIONS_TABLE,
  pendingMigrations,
  type PipelineStore,
  storageFailed,
  type StoredPipeline,
  type StoredRecording,
  type StoreWrite,
  writeSubject,
} from "./store.ts";
import type { DesiredState } from "./types.ts";

/** From the main thread to the writer. */
export type StoreRequest =
  | { type: "open"; location: string }
  | { type: "write"; batch: { seq: number; write: StoreWrite }[] }
  | { type: "close" };

/** From the writer to the main thread. */
export type StoreReply =
  | { type: "opened" }
  | { type: "openFailed"; message: string }
  | { type: "written"; committed: number[]; failed: { seq: number; message: string }[] }
  | { type: "closed" };

/** Runs one row change on `db` (the writer thread's connection, or the in-memory one). */
export function rowWriter(db: DatabaseSync): (write: StoreWrite) => void {
  const insert = db.prepare(
    "INSERT INTO pipelines (id, definition, desired_state, created_at) VALUES (?, ?, ?, ?)",
  );
  const setState = db.prepare("UPDATE pipelines SET desired_state = ? WHERE id = ?");
  const remove = db.prepare("DELETE FROM pipelines WHERE id = ?");
  const record = db.prepare(
    "INSERT OR REPLACE INTO recordings (path, options, created_at) VALUES (?, ?, ?)",
  );
  const unrecord = db.prepare("DELETE FROM recordings WHERE path = ?");
  return (write) => {
    if (write.op === "insert") {
      insert.run(write.id, write.definition!, write.state ?? "stopped", write.createdAt!);
    } else if (write.op === "setState") setState.run(write.state!, write.id);
    else if (write.op === "record") record.run(write.id, write.definition!, write.createdAt!);
    else if (write.op === "unrecord") unrecord.run(write.id);
    else remove.run(write.id);
  };
}

interface Waiting {
  /** What the write changes, for messages: "pipeline 'x'" or "the recording of '/x'". */
  what: string;
  id: string;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Kept on disk in `dataDir/pipelines.db`, or in memory only when `dataDir` is ":memory:". */
export class SqliteStore implements PipelineStore {
  readonly location: string;
  /** The main thread's connection: the schema, and reading at start-up. */
  readonly #db: DatabaseSync;
  /** The writer thread; null in memory, where writes cost nothing and run here. */
  readonly #writer: Worker | null;
  readonly #waiting = new Map<number, Waiting>();
  #nextSeq = 0;
  /** Writes waiting for the batch with the writer to be committed. */
  #queued: { seq: number; write: StoreWrite }[] = [];
  #writing = false;
  #broken: string | null = null;
  #closed: Promise<void> | null = null;

  private constructor(location: string, db: DatabaseSync, writer: Worker | null) {
    this.location = location;
    this.#db = db;
    this.#writer = writer;
  }

  /** Opens (creating if needed) the store, and its writer thread once the file is known good. */
  static async open(dataDir: string): Promise<SqliteStore> {
    let location = ":memory:";
    if (dataDir !== ":memory:") {
      mkdirSync(dataDir, { recursive: true });
      location = join(dataDir, "pipelines.db");
    }
    const db = new DatabaseSync(location);
    try {
      db.exec(`
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = FULL;
        PRAGMA busy_timeout = 5000;
      `);
      migrate(db, location);
      // Reading once at open also proves the file is a database this build can use.
      db.prepare("SELECT count(*) FROM pipelines").get();
    } catch (error) {
      db.close();
      throw error;
    }
    if (location === ":memory:") return new SqliteStore(location, db, null);
    const writer = new Worker(new URL("./store_worker.ts", import.meta.url), { type: "module" });
    const opened = await new Promise<StoreReply>((resolve) => {
      writer.onmessage = (event: MessageEvent<StoreReply>) => resolve(event.data);
      writer.onerror = (event) => {
        event.preventDefault();
        resolve({ type: "openFailed", message: event.message });
      };
      writer.postMessage({ type: "open", location } satisfies StoreRequest);
    });
    if (opened.type !== "opened") {
      writer.terminate();
      db.close();
      throw new Error(
        `the store's writer could not open ${location}: ${
          opened.type === "openFailed" ? opened.message : opened.type
        }`,
      );
    }
    const store = new SqliteStore(location, db, writer);
    writer.onmessage = (event: MessageEvent<StoreReply>) => store.#onReply(event.data);
    writer.onerror = (event) => {
      event.preventDefault();
      store.#fail(`the store's writer stopped: ${event.message}`);
    };
    return store;
  }

  /** Every stored pipeline in the order they were created. */
  all(): StoredPipeline[] {
    const rows = this.#db.prepare(
      "SELECT id, definition, desired_state, created_at FROM pipelines ORDER BY rowid",
    ).all() as {
      id: string;
      definition: string;
      desired_state: DesiredState;
      created_at: string;
    }[];
    return rows.map((row) => ({
      id: row.id,
      definition: JSON.parse(row.definition),
      desiredState: row.desired_state,
      createdAt: row.created_at,
    }));
  }

  /** Every recording that runs, by path, with the options it was started with. */
  recordings(): StoredRecording[] {
    const rows = this.#db.prepare(
      "SELECT path, options, created_at FROM recordings ORDER BY rowid",
    ).all() as { path: string; options: string; created_at: string }[];
    return rows.map((row) => ({
      path: row.path,
      options: JSON.parse(row.options),
      createdAt: row.created_at,
    }));
  }

  putRecording(path: string, options: Record<string, unknown>, createdAt: string): Promise<void> {
    return this.#write({ op: "record", id: path, definition: JSON.stringify(options), createdAt });
  }

  removeRecording(path: string): Promise<void> {
    return this.#write({ op: "unrecord", id: path });
  }

  insert(
    id: string,
    definition: Record<string, unknown>,
    createdAt: string,
    state: DesiredState = "stopped",
  ): Promise<void> {
    return this.#write({
      op: "insert",
      id,
      definition: JSON.stringify(definition),
      createdAt,
      state,
    });
  }

  setDesiredState(id: string, state: DesiredState): Promise<void> {
    return this.#write({ op: "setState", id, state });
  }

  remove(id: string): Promise<void> {
    return this.#write({ op: "remove", id });
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (this.#writer !== null && this.#broken === null) {
        await new Promise<void>((resolve) => {
          this.#afterClose = resolve;
          // What is queued or with the writer is committed first; the writer closes after it.
          if (!this.#writing) this.#postClose();
        });
      }
      this.#writer?.terminate();
      this.#fail("the store is closed");
      if (this.#db.isOpen) this.#db.close();
    })();
    return this.#closed;
  }

  #afterClose: (() => void) | null = null;

  #postClose(): void {
    this.#writer!.postMessage({ type: "close" } satisfies StoreRequest);
  }
  /** The in-memory store's writes, on this thread: they cost what a map would. */
  #writeHere: ((write: StoreWrite) => void) | null = null;

  #write(write: StoreWrite): Promise<void> {
    if (this.#broken !== null || this.#closed !== null) {
      return Promise.reject(
        this.#storageFailed(writeSubject(write), write.id, this.#broken ?? "the store is closed"),
      );
    }
    if (this.#writer === null) {
      try {
        this.#writeHere ??= rowWriter(this.#db);
        this.#writeHere(write);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(
          this.#storageFailed(writeSubject(write), write.id, (error as Error).message),
        );
      }
    }
    const seq = this.#nextSeq++;
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(seq, { what: writeSubject(write), id: write.id, resolve, reject });
      this.#queued.push({ seq, write });
      if (!this.#writing) this.#sendQueued();
    });
  }

  /**
   * Group commit: one batch is with the writer at a time, and what is queued meanwhile goes as the
   * next batch, committed in one transaction (one fsync).
   */
  #sendQueued(): void {
    const batch = this.#queued;
    this.#queued = [];
    this.#writing = true;
    this.#writer!.postMessage({ type: "write", batch } satisfies StoreRequest);
  }

  #onReply(reply: StoreReply): void {
    if (reply.type === "written") {
      this.#writing = false;
      for (const seq of reply.committed) {
        this.#waiting.get(seq)?.resolve();
        this.#waiting.delete(seq);
      }
      for (const { seq, message } of reply.failed) {
        const waiting = this.#waiting.get(seq);
        this.#waiting.delete(seq);
        waiting?.reject(this.#storageFailed(waiting.what, waiting.id, message));
      }
      if (this.#queued.length > 0 && this.#broken === null) this.#sendQueued();
      else if (this.#afterClose !== null) this.#postClose();
    } else if (reply.type === "closed") {
      this.#afterClose?.();
    }
  }

  /** Refuses every write from now on, and fails the ones waiting. */
  #fail(reason: string): void {
    this.#broken ??= reason;
    this.#afterClose?.(); // a close waiting for the writer waits no more
    for (const [seq, waiting] of this.#waiting) {
      this.#waiting.delete(seq);
      waiting.reject(this.#storageFailed(waiting.what, waiting.id, reason));
    }
  }

  #storageFailed(what: string, id: string, reason: string) {
    return storageFailed(this.location, what, id, reason);
  }
}

/** Applies the migrations the file still needs, each in a transaction with its record. */
function migrate(db: DatabaseSync, location: string): void {
  db.exec(MIGRATIONS_TABLE);
  const { version } = db.prepare(
    "SELECT coalesce(max(version), 0) AS version FROM schema_migrations",
  ).get() as { version: number };
  for (const migration of pendingMigrations(version, location)) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(migration.sqlite);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
        .run(migration.version, migration.name, new Date().toISOString());
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
}
