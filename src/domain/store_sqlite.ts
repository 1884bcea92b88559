/**
 * The default store: an embedded SQLite database (node:sqlite) in WAL mode. A write's promise
 * resolves once the change is on disk, so an acknowledged change survives `kill -9` and power
 * loss; WAL keeps the file readable after either (docs/architecture.md, rule 8).
 *
 * The main thread never waits for the disk. The row change runs here, with synchronous=OFF: SQLite
 * appends it to the WAL in the page cache (tens of microseconds) and never syncs. The wait for the
 * disk is ours: an fdatasync of the WAL on Deno's file threads (`FsFile.syncData`), after which the
 * write's promise resolves, which is what synchronous=FULL would have done in the write itself.
 * Writes made while a sync runs share the next one (group commit). Checkpoints are ours too: every
 * CHECKPOINT_EVERY writes, once the WAL is synced, SQLite copies its pages into the database file,
 * and writes wait until that file is synced in turn, because the next write starts the WAL over.
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

/** Writes between two checkpoints: a few pages of WAL each, about SQLite's own 1000 pages. */
const CHECKPOINT_EVERY = 400;

/**
 * What the WAL is written out to at open, with zeros past its frames: more than CHECKPOINT_EVERY
 * writes fill (a few MB), after which SQLite starts it over from the top. A write within
 * blocks already written syncs only its data; one that grows the file also has to sync its size
 * and new blocks (a journal commit on ext4), which took 0.2 ms more a sync here (bench/store.ts).
 * SQLite reads a WAL only up to its first invalid frame, and zeros are one.
 */
const WAL_WRITTEN_OUT_BYTES = 4 * 1024 * 1024;

/** Writes `wal` out to WAL_WRITTEN_OUT_BYTES with zeros after its end, and syncs that. */
async function writeOut(wal: Deno.FsFile): Promise<void> {
  const { size } = await wal.stat();
  if (size >= WAL_WRITTEN_OUT_BYTES) return;
  await wal.seek(size, Deno.SeekMode.Start);
  const zeros = new Uint8Array(64 * 1024);
  for (let left = WAL_WRITTEN_OUT_BYTES - size; left > 0;) {
    left -= await wal.write(zeros.subarray(0, Math.min(left, zeros.length)));
  }
  await wal.syncData();
}

/** Runs one row change on `db`, in a transaction of its own. */
function rowWriter(db: DatabaseSync): (write: StoreWrite) => void {
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

/**
 * For a write about to run, the change that takes it back: the row it touches as it was (its
 * rowid too, so the order of rows holds), or no row. Run for each write whose sync failed, so that
 * what the page cache, and the next start, reads matches what the requests were told.
 */
function rowUndoer(db: DatabaseSync): (write: StoreWrite) => () => void {
  const tables = {
    pipelines: {
      key: "id",
      row: db.prepare("SELECT rowid AS row_id, * FROM pipelines WHERE id = ?"),
    },
    recordings: {
      key: "path",
      row: db.prepare("SELECT rowid AS row_id, * FROM recordings WHERE path = ?"),
    },
  };
  return (write) => {
    const name = write.op === "record" || write.op === "unrecord" ? "recordings" : "pipelines";
    const { key, row } = tables[name];
    // An insert fails on a row that exists, so there was none.
    const before = write.op === "insert" ? undefined : row.get(write.id);
    return () => {
      db.exec("BEGIN IMMEDIATE");
      try {
        db.prepare(`DELETE FROM ${name} WHERE ${key} = ?`).run(write.id);
        if (before !== undefined) {
          const { row_id, ...columns } = before;
          const names = Object.keys(columns);
          db.prepare(
            `INSERT INTO ${name} (rowid, ${names.join(", ")}) VALUES (?${
              ", ?".repeat(names.length)
            })`,
          ).run(row_id, ...Object.values(columns));
        }
        db.exec("COMMIT");
      } catch (error) {
        db.exec("ROLLBACK");
        throw error;
      }
    };
  };
}

/** The files a disk store syncs: SQLite deletes the WAL only when its last connection closes. */
interface DiskFiles {
  wal: Deno.FsFile;
  database: Deno.FsFile;
}

/** A write that waits for a checkpoint to be synced before it runs. */
interface Held {
  write: StoreWrite;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Kept on disk in `dataDir/pipelines.db`, or in memory only when `dataDir` is ":memory:". */
export class SqliteStore implements PipelineStore {
  readonly location: string;
  /** The one connection: schema, reads at start-up, and every write. */
  readonly #db: DatabaseSync;
  readonly #writeRow: (write: StoreWrite) => void;
  readonly #undoOf: (write: StoreWrite) => () => void;
  /** How to take back each write made since the running sync started, oldest first. */
  #unsyncedUndos: (() => void)[] = [];
  /** Null in memory, where a write is done once SQLite returns. */
  readonly #files: DiskFiles | null;
  /** The WAL sync under way, and the one that takes the writes made since it started. */
  #syncing: Promise<void> | null = null;
  #nextSync: Promise<void> | null = null;
  /** A write was made since the last sync started. */
  #unsynced = false;
  #writesSinceCheckpoint = 0;
  /** While a checkpoint's database sync runs, writes wait here, in order. */
  #checkpointing: Promise<void> | null = null;
  #held: Held[] = [];
  #broken: string | null = null;
  #closed: Promise<void> | null = null;

  private constructor(location: string, db: DatabaseSync, files: DiskFiles | null) {
    this.location = location;
    this.#db = db;
    this.#files = files;
    this.#writeRow = rowWriter(db);
    this.#undoOf = rowUndoer(db);
  }

  /** Opens (creating if needed) the store; the schema is made and synced before it returns. */
  static async open(dataDir: string): Promise<SqliteStore> {
    let location = ":memory:";
    if (dataDir !== ":memory:") {
      mkdirSync(dataDir, { recursive: true });
      location = join(dataDir, "pipelines.db");
    }
    const db = new DatabaseSync(location);
    const opened: Deno.FsFile[] = [];
    try {
      // FULL while the schema is made, so that a migration is on disk when this returns.
      db.exec(`
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = FULL;
        PRAGMA busy_timeout = 5000;
      `);
      migrate(db, location);
      // Reading once at open also proves the file is a database this build can use.
      db.prepare("SELECT count(*) FROM pipelines").get();
      if (location === ":memory:") return new SqliteStore(location, db, null);
      db.exec("PRAGMA synchronous = OFF; PRAGMA wal_autocheckpoint = 0;");
      const wal = Deno.openSync(`${location}-wal`, { read: true, write: true, create: true });
      opened.push(wal);
      const database = Deno.openSync(location, { read: true, write: true });
      opened.push(database);
      // Under SQLite's write lock: no other connection, in any process, appends frames meanwhile.
      db.exec("BEGIN IMMEDIATE");
      try {
        await writeOut(wal);
      } catch (error) {
        console.warn(
          `Writing out ${location}-wal failed (${(error as Error).message}): ` +
            "each write may take longer to sync",
        );
      } finally {
        db.exec("ROLLBACK");
      }
      return new SqliteStore(location, db, { wal, database });
    } catch (error) {
      // SQLite's connection first: closing any descriptor of a file drops the process's locks on it.
      if (db.isOpen) db.close();
      for (const file of opened) file.close();
      throw error;
    }
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

  /** Writes accepted before the close are on disk when it resolves; later ones are refused. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#checkpointing;
      await Promise.allSettled([this.#syncing, this.#nextSync]);
      this.#fail("the store is closed");
      if (this.#db.isOpen) {
        // SQLite checkpoints as its last connection closes: with FULL, that is synced too.
        if (this.#files !== null) this.#db.exec("PRAGMA synchronous = FULL");
        this.#db.close();
      }
      this.#files?.wal.close();
      this.#files?.database.close();
    })();
    return this.#closed;
  }

  #write(write: StoreWrite): Promise<void> {
    if (this.#broken !== null || this.#closed !== null) {
      return Promise.reject(
        this.#storageFailed(writeSubject(write), write.id, this.#broken ?? "the store is closed"),
      );
    }
    if (this.#checkpointing !== null) {
      return new Promise((resolve, reject) => this.#held.push({ write, resolve, reject }));
    }
    return this.#commit(write);
  }

  /** Runs the write and resolves once it is on disk. */
  #commit(write: StoreWrite): Promise<void> {
    let undo;
    try {
      undo = this.#files === null ? null : this.#undoOf(write);
      this.#writeRow(write);
    } catch (error) {
      return Promise.reject(
        this.#storageFailed(writeSubject(write), write.id, (error as Error).message),
      );
    }
    if (undo === null) return Promise.resolve();
    this.#unsyncedUndos.push(undo);
    this.#writesSinceCheckpoint++;
    return this.#synced().catch((error: Error) => {
      throw this.#storageFailed(writeSubject(write), write.id, error.message);
    });
  }

  /** Resolves once the WAL, with every write made so far, is on disk. */
  #synced(): Promise<void> {
    this.#unsynced = true;
    if (this.#syncing === null) return this.#syncWal();
    // The running sync may have started before this write reached the file: the next one takes it.
    this.#nextSync ??= this.#syncing.catch(() => {}).then(() => {
      this.#nextSync = null;
      return this.#syncWal();
    });
    return this.#nextSync;
  }

  #syncWal(): Promise<void> {
    if (this.#broken !== null) return Promise.reject(new Error(this.#broken));
    this.#unsynced = false;
    const covered = this.#unsyncedUndos;
    this.#unsyncedUndos = [];
    const syncing: Promise<void> = this.#files!.wal.syncData().then(
      () => {
        if (this.#syncing === syncing) this.#syncing = null;
        this.#checkpointWhenDue();
      },
      (error: Error) => {
        if (this.#syncing === syncing) this.#syncing = null;
        const reason = `the disk could not sync ${this.location}-wal: ${error.message}`;
        // Every write not yet synced is refused (those made since this sync began fail with it).
        this.#takeBack([...covered, ...this.#unsyncedUndos]);
        this.#unsyncedUndos = [];
        // After a failed fsync the page cache may no longer match the disk: no write is trusted.
        this.#fail(reason);
        throw new Error(reason);
      },
    );
    this.#syncing = syncing;
    return syncing;
  }

  /**
   * Copies the WAL into the database file once it is synced and nothing is written since. The
   * database file is synced before the next write, which starts the WAL over.
   */
  #checkpointWhenDue(): void {
    if (this.#writesSinceCheckpoint < CHECKPOINT_EVERY) return;
    if (this.#unsynced || this.#syncing !== null || this.#checkpointing !== null) return;
    if (this.#broken !== null || this.#closed !== null) return;
    this.#writesSinceCheckpoint = 0;
    try {
      this.#db.exec("PRAGMA wal_checkpoint(PASSIVE)");
    } catch (error) {
      console.warn(`Checkpoint of ${this.location} failed (tried again later):`, error);
      return;
    }
    this.#checkpointing = this.#files!.database.syncData().then(
      () => {
        this.#checkpointing = null;
        const held = this.#held;
        this.#held = [];
        // Accepted before a close that may have come since: they still run.
        for (const { write, resolve, reject } of held) this.#commit(write).then(resolve, reject);
      },
      (error: Error) => {
        this.#checkpointing = null;
        this.#fail(`the disk could not sync ${this.location}: ${error.message}`);
      },
    );
  }

  /**
   * Takes back refused writes, newest first. Not synced: after the failure no sync is trusted,
   * but the page cache, which a restart of this process reads, then holds no refused change.
   */
  #takeBack(undos: (() => void)[]): void {
    for (const undo of undos.reverse()) {
      try {
        undo();
      } catch (error) {
        console.error(`Taking back a refused write in ${this.location} failed:`, error);
      }
    }
  }

  /** Refuses every write from now on, and fails the ones held. */
  #fail(reason: string): void {
    this.#broken ??= reason;
    const held = this.#held;
    this.#held = [];
    for (const { write, reject } of held) {
      reject(this.#storageFailed(writeSubject(write), write.id, reason));
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
