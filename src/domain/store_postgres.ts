/**
 * The store in PostgreSQL (GSTREAMER_DATABASE_URL), through the `postgres` client: each write is
 * one statement, committed (synchronous_commit as the server sets it, `on` by default) before its
 * promise resolves. Concurrent writes go over a small pool, and PostgreSQL's own group commit
 * shares their WAL flushes. While the database cannot be reached every write is refused with
 * STORAGE_FAILED naming it; the client reconnects by itself once it is back.
 */
import postgres from "postgres";
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

/** Any number: the key of the advisory lock nodes take to migrate one at a time. */
const MIGRATION_LOCK = 0x6773_7463;
/** How long a write waits for a connection before it is refused. */
const CONNECT_TIMEOUT_S = 5;

type Sql = ReturnType<typeof postgres>;

export class PostgresStore implements PipelineStore {
  readonly location: string;
  readonly #sql: Sql;
  readonly #pipelines: StoredPipeline[];
  readonly #recordings: StoredRecording[];
  #closed: Promise<void> | null = null;

  private constructor(
    location: string,
    sql: Sql,
    pipelines: StoredPipeline[],
    recordings: StoredRecording[],
  ) {
    this.location = location;
    this.#sql = sql;
    this.#pipelines = pipelines;
    this.#recordings = recordings;
  }

  /** Connects, applies the migrations the database needs, and reads the rows. */
  static async open(url: string): Promise<PostgresStore> {
    const location = withoutPassword(url);
    let sql: Sql;
    try {
      sql = postgres(url, {
        max: 4,
        connect_timeout: CONNECT_TIMEOUT_S,
        onnotice: () => {}, // "relation already exists, skipping" and the like
        connection: { application_name: "gst-control-server" },
      });
    } catch (error) {
      throw new Error(`GSTREAMER_DATABASE_URL is not a PostgreSQL URL: ${message(error)}`);
    }
    try {
      await migrate(sql, location);
      const pipelines = await sql<
        { id: string; definition: string; desired_state: DesiredState; created_at: string }[]
      >`SELECT id, definition, desired_state, created_at FROM pipelines ORDER BY seq`;
      const recordings = await sql<{ path: string; options: string; created_at: string }[]>`
        SELECT path, options, created_at FROM recordings ORDER BY seq`;
      return new PostgresStore(
        location,
        sql,
        pipelines.map((row) => ({
          id: row.id,
          definition: JSON.parse(row.definition),
          desiredState: row.desired_state,
          createdAt: row.created_at,
        })),
        recordings.map((row) => ({
          path: row.path,
          options: JSON.parse(row.options),
          createdAt: row.created_at,
        })),
      );
    } catch (error) {
      await sql.end({ timeout: 1 }).catch(() => {});
      const why = `the store at ${location} could not be opened: ${reason(error, location)}`;
      throw isUnreachable(error) ? new DatabaseUnreachable(why) : new Error(why);
    }
  }

  all(): StoredPipeline[] {
    return this.#pipelines;
  }

  recordings(): StoredRecording[] {
    return this.#recordings;
  }

  putRecording(path: string, options: Record<string, unknown>, createdAt: string): Promise<void> {
    return this.#write({ op: "record", id: path }, (sql) =>
      sql`
      INSERT INTO recordings (path, options, created_at)
      VALUES (${path}, ${JSON.stringify(options)}, ${createdAt})
      ON CONFLICT (path) DO UPDATE SET options = EXCLUDED.options, created_at = EXCLUDED.created_at`);
  }

  removeRecording(path: string): Promise<void> {
    return this.#write(
      { op: "unrecord", id: path },
      (sql) => sql`DELETE FROM recordings WHERE path = ${path}`,
    );
  }

  insert(id: string, definition: Record<string, unknown>, createdAt: string): Promise<void> {
    return this.#write({ op: "insert", id }, (sql) =>
      sql`
      INSERT INTO pipelines (id, definition, desired_state, created_at)
      VALUES (${id}, ${JSON.stringify(definition)}, 'stopped', ${createdAt})`);
  }

  setDesiredState(id: string, state: DesiredState): Promise<void> {
    return this.#write(
      { op: "setState", id },
      (sql) => sql`UPDATE pipelines SET desired_state = ${state} WHERE id = ${id}`,
    );
  }

  remove(id: string): Promise<void> {
    return this.#write({ op: "remove", id }, (sql) => sql`DELETE FROM pipelines WHERE id = ${id}`);
  }

  /** Waits for the writes under way, then closes the connections. */
  close(): Promise<void> {
    this.#closed ??= this.#sql.end({ timeout: 5 });
    return this.#closed;
  }

  async #write(write: StoreWrite, statement: (sql: Sql) => Promise<unknown>): Promise<void> {
    const what = writeSubject(write);
    if (this.#closed !== null) {
      throw storageFailed(this.location, what, write.id, "the store is closed");
    }
    try {
      await statement(this.#sql);
    } catch (error) {
      throw storageFailed(this.location, what, write.id, reason(error, this.location));
    }
  }
}

/** Applies the migrations the database still needs; one node at a time (an advisory lock). */
async function migrate(sql: Sql, location: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx.unsafe(MIGRATIONS_TABLE);
    const [{ version }] = await tx<{ version: number }[]>`
      SELECT coalesce(max(version), 0)::int AS version FROM schema_migrations`;
    for (const migration of pendingMigrations(version, location)) {
      await tx.unsafe(migration.postgres);
      await tx`
        INSERT INTO schema_migrations (version, name, applied_at)
        VALUES (${migration.version}, ${migration.name}, ${new Date().toISOString()})`;
    }
  });
}

/** The URL as it may be shown: without its password. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "GSTREAMER_DATABASE_URL";
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The database could not be reached at start-up: trying again later may work. */
export class DatabaseUnreachable extends Error {}

function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? "";
  // 57P01 and its kin: the server shuts down, or is starting up.
  return ["ECONNREFUSED", "CONNECT_TIMEOUT", "ECONNRESET", "CONNECTION_CLOSED", "ENOTFOUND"]
    .includes(code) || code.startsWith("57P");
}

/** Why a write failed, said so that an operator knows where to look. */
function reason(error: unknown, location: string): string {
  const code = (error as { code?: string }).code ?? "";
  if (isUnreachable(error)) {
    return `the database at ${location} cannot be reached (${code}: ${message(error)})`;
  }
  return message(error);
}
