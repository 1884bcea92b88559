/**
 * Where pipeline definitions, their desired state and the recordings live between runs. Two
 * backends share this interface and one schema, made by the versioned migrations below at
 * start-up:
 *
 * - SQLite (the default, `src/domain/store_sqlite.ts`): a file in GSTREAMER_DATA_DIR, or memory;
 * - PostgreSQL (`src/domain/store_postgres.ts`) when GSTREAMER_DATABASE_URL is set.
 *
 * Either way a write's promise resolves only once its change is committed: an `ok` reply means the
 * change survives `kill -9` of the server.
 */
import { DomainError } from "./errors.ts";
import type { DesiredState } from "./types.ts";

export interface StoredPipeline {
  id: string;
  /** The createPipeline payload as it was accepted (without the id). */
  definition: Record<string, unknown>;
  desiredState: DesiredState;
  createdAt: string;
}

export interface StoredRecording {
  path: string;
  /** The startRecording payload as it was accepted (without the path). */
  options: Record<string, unknown>;
  createdAt: string;
}

export interface PipelineStore {
  /** Where it is, for messages (a PostgreSQL URL without its password). */
  readonly location: string;
  /** Every stored pipeline in the order they were created (as read at open). */
  all(): StoredPipeline[];
  /** Every recording that runs, with the options it was started with (as read at open). */
  recordings(): StoredRecording[];
  /** Keeps (or replaces) the recording of `path`. */
  putRecording(path: string, options: Record<string, unknown>, createdAt: string): Promise<void>;
  removeRecording(path: string): Promise<void>;
  /** A new row; `state` (default "stopped") when the same request starts it: one commit for both. */
  insert(
    id: string,
    definition: Record<string, unknown>,
    createdAt: string,
    state?: DesiredState,
  ): Promise<void>;
  setDesiredState(id: string, state: DesiredState): Promise<void>;
  remove(id: string): Promise<void>;
  /** Commits what is pending, then closes; writes after this are refused. */
  close(): Promise<void>;
}

/** One row change, as a backend's writer takes it. */
export interface StoreWrite {
  /** Pipelines: insert, setState, remove; recordings (id = the path): record, unrecord. */
  op: "insert" | "setState" | "remove" | "record" | "unrecord";
  id: string;
  definition?: string;
  createdAt?: string;
  state?: DesiredState;
}

/**
 * The schema, version by version: each is applied once, in order, in a transaction that also
 * records it in `schema_migrations`. The two dialects make the same tables; PostgreSQL has no
 * rowid, so its rows carry `seq` for their order.
 */
export const migrations: { version: number; name: string; sqlite: string; postgres: string }[] = [
  {
    version: 1,
    name: "pipelines and recordings",
    // IF NOT EXISTS: a SQLite file made before migrations were versioned has these already.
    sqlite: `
      CREATE TABLE IF NOT EXISTS pipelines (
        id TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        desired_state TEXT NOT NULL CHECK (desired_state IN ('playing', 'paused', 'stopped')),
        created_at TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS recordings (
        path TEXT PRIMARY KEY,
        options TEXT NOT NULL,
        created_at TEXT NOT NULL
      );`,
    postgres: `
      CREATE TABLE pipelines (
        id TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        desired_state TEXT NOT NULL CHECK (desired_state IN ('playing', 'paused', 'stopped')),
        created_at TEXT NOT NULL,
        seq BIGSERIAL NOT NULL
      );
      CREATE TABLE recordings (
        path TEXT PRIMARY KEY,
        options TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seq BIGSERIAL NOT NULL
      );`,
  },
  {
    version: 2,
    name: "nodes and leases",
    // Only PostgreSQL has several nodes; SQLite gets the same columns, which stay empty.
    sqlite: `
      ALTER TABLE pipelines ADD COLUMN owner TEXT;
      ALTER TABLE pipelines ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE pipelines ADD COLUMN lease_until TEXT;
      ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT '';
      CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        advertise_url TEXT NOT NULL,
        rtsp_url TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopped_at TEXT,
        cpu_percent REAL NOT NULL DEFAULT 0,
        capacity INTEGER NOT NULL
      );`,
    postgres: `
      ALTER TABLE pipelines ADD COLUMN owner TEXT,
        ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN lease_until TIMESTAMPTZ;
      CREATE INDEX pipelines_owner ON pipelines (owner);
      ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT '';
      ALTER TABLE recordings DROP CONSTRAINT recordings_pkey;
      ALTER TABLE recordings ADD PRIMARY KEY (node, path);
      CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        advertise_url TEXT NOT NULL,
        rtsp_url TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL,
        stopped_at TIMESTAMPTZ,
        cpu_percent REAL NOT NULL DEFAULT 0,
        capacity INTEGER NOT NULL
      );`,
  },
];

export const MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`;

/** The migrations a database at `version` still needs; refuses one a newer server migrated. */
export function pendingMigrations(version: number, location: string): typeof migrations {
  const known = migrations.at(-1)!.version;
  if (version > known) {
    throw new Error(
      `the store at ${location} has schema version ${version}, made by a newer server; this one ` +
        `knows up to version ${known}: run the newer server, or restore a backup`,
    );
  }
  return migrations.filter((migration) => migration.version > version);
}

/** What a write changes, for messages: "pipeline 'x'" or "the recording of '/x'". */
export function writeSubject(write: StoreWrite): string {
  return write.op === "record" || write.op === "unrecord"
    ? `the recording of '/${write.id}'`
    : `pipeline '${write.id}'`;
}

/** The error a request gets when its change could not be committed (and the log line). */
export function storageFailed(location: string, what: string, id: string, reason: string) {
  console.error(`Writing ${what} to ${location} failed: ${reason}`);
  return new DomainError(
    "STORAGE_FAILED",
    `The change to ${what} could not be saved: ${reason}`,
    { id, store: location },
  );
}
