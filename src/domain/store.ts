/**
 * Where pipeline definitions and their desired state live between runs: an
 * embedded SQLite database (node:sqlite). Every write is committed with
 * synchronous=FULL before it returns, so an acknowledged change survives
 * `kill -9` and power loss; WAL keeps the file readable after either.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { DomainError } from "./errors.ts";

import type { DesiredState } from "./types.ts";

export interface StoredPipeline {
  id: string;
  /** The createPipeline payload as it was accepted (without the id). */
  definition: Record<string, unknown>;
  desiredState: DesiredState;
  createdAt: string;
}

/** Kept on disk in `dataDir/pipelines.db`, or in memory only when `dataDir` is ":memory:". */
export class PipelineStore {
  readonly location: string;
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  readonly #setState: StatementSync;
  readonly #remove: StatementSync;

  constructor(dataDir: string) {
    if (dataDir === ":memory:") {
      this.location = ":memory:";
    } else {
      mkdirSync(dataDir, { recursive: true });
      this.location = join(dataDir, "pipelines.db");
    }
    this.#db = new DatabaseSync(this.location);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS pipelines (
        id TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        desired_state TEXT NOT NULL CHECK (desired_state IN ('playing', 'paused', 'stopped')),
        created_at TEXT NOT NULL
      );
    `);
    // Reading once at open also proves the file is a database this build can use.
    this.#db.prepare("SELECT count(*) FROM pipelines").get();
    this.#insert = this.#db.prepare(
      "INSERT INTO pipelines (id, definition, desired_state, created_at) VALUES (?, ?, 'stopped', ?)",
    );
    this.#setState = this.#db.prepare("UPDATE pipelines SET desired_state = ? WHERE id = ?");
    this.#remove = this.#db.prepare("DELETE FROM pipelines WHERE id = ?");
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

  insert(id: string, definition: Record<string, unknown>, createdAt: string): void {
    this.#write(id, () => this.#insert.run(id, JSON.stringify(definition), createdAt));
  }

  setDesiredState(id: string, state: DesiredState): void {
    this.#write(id, () => this.#setState.run(state, id));
  }

  remove(id: string): void {
    this.#write(id, () => this.#remove.run(id));
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #write(id: string, write: () => unknown): void {
    try {
      write();
    } catch (error) {
      console.error(`Writing pipeline '${id}' to ${this.location} failed:`, error);
      throw new DomainError(
        "STORAGE_FAILED",
        `The change to pipeline '${id}' could not be saved: ${(error as Error).message}`,
        { id, store: this.location },
      );
    }
  }
}
