/**
 * The store in PostgreSQL (GSTREAMER_DATABASE_URL), through the `postgres` client: each write is
 * one statement, committed (synchronous_commit as the server sets it, `on` by default) before its
 * promise resolves. Concurrent writes go over a small pool, and PostgreSQL's own group commit
 * shares their WAL flushes. While the database cannot be reached every write is refused with
 * STORAGE_FAILED naming it; the client reconnects by itself once it is back.
 *
 * Several nodes may share the database (docs/cluster.md). Each pipeline row has an owner node, a
 * lease (`lease_until`, in the database's clock) and an epoch, raised by every claim. A node holds
 * the pipelines it claimed or created at the epoch it got; its writes to a pipeline name that
 * epoch, so a node that lost a pipeline (frozen past its lease) cannot change it any more.
 */
import postgres from "postgres";
import { DomainError } from "./errors.ts";
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
/** NOTIFY channels: every node's events, and "a pipeline was handed to you". */
const EVENT_CHANNEL = "gst_events";
const WAKE_CHANNEL = "gst_wake";
/** How soon the event connection tries to LISTEN again after it closed. */
const RELISTEN_MS = 250;
/** PostgreSQL's NOTIFY payload limit is 8000 bytes. */
const NOTIFY_LIMIT = 7900;
/** How long start-up waits for the node id to be let go by a server of that id that just died. */
const NODE_LOCK_WAIT_MS = 3000;
/** How long a write waits for a connection before it is refused. */
const CONNECT_TIMEOUT_S = 5;
/** How long any database call may take before it fails (bounded). */
const QUERY_TIMEOUT_MS = 5000;

/**
 * Seconds before the client connects again after a connection failed, by failures in a row (the
 * count is the pool's). The client's own back-off grows to 20 s: after a database restart of a
 * second or two the pool then waited seconds to reconnect, its queries timed out, and the fence
 * stopped every pipeline though the database was back well within the lease.
 */
function reconnectBackoff(failures: number): number {
  return Math.min(0.05 * 2 ** failures, 0.5) * (0.5 + Math.random() / 2);
}

/** This server as a node of the cluster. */
export interface NodeIdentity {
  /** GSTREAMER_NODE_ID. */
  id: string;
  /** How long a claim or renewal holds a pipeline (GSTREAMER_LEASE_SECONDS). */
  leaseSeconds: number;
  /** Most pipelines this node takes (GSTREAMER_MAX_PIPELINES). */
  capacity: number;
}

/** A pipeline this node has just claimed, at the epoch that fences its writes. */
export interface ClaimedPipeline extends StoredPipeline {
  epoch: number;
}

/** A node as getNodes lists it. */
export interface NodeInfo {
  id: string;
  /** Where its HTTP and WebSocket API is reached (GSTREAMER_ADVERTISE_URL). */
  advertiseUrl: string;
  /** Its RTSP base URL. */
  rtspUrl: string;
  /** Heartbeating within its lease, and not stopped. */
  up: boolean;
  pipelines: number;
  cpuPercent: number;
  capacity: number;
  startedAt: string;
  heartbeatAt: string;
}

interface PipelineRow {
  id: string;
  definition: string;
  desired_state: DesiredState;
  created_at: string;
  epoch: string;
  seq: string;
}

type Sql = ReturnType<typeof postgres>;

export class PostgresStore implements PipelineStore {
  readonly location: string;
  readonly node: NodeIdentity;
  readonly #sql: Sql;
  /** The pipelines this node holds, with the epoch it holds each at. */
  readonly #held = new Map<string, number>();
  /** Pipelines this node is inserting: its own, though not held until the row is committed. */
  readonly #inserting = new Set<string>();
  /** The desired state last stored of each pipeline held (a write reported failed restores it). */
  readonly #desired = new Map<string, DesiredState>();
  /** How many desired-state writes were asked of each pipeline held: the last one's undo only. */
  readonly #writes = new Map<string, number>();
  #pipelines: StoredPipeline[] = [];
  #recordings: StoredRecording[] = [];
  #closed: Promise<void> | null = null;
  readonly #url: string;
  /**
   * This node's own session, on a connection of its own that is never recycled: it holds the node
   * id's lock (#lockNodeId) and LISTENs for other nodes' events (listen). Both end with the
   * connection (the database restarting); #reattach takes them again.
   */
  #session: Sql | null = null;
  #attached = false;
  #reattaching = false;
  #listenedBefore = false;
  #onEvent: ((node: string, event: { type: string; payload: unknown }) => void) | null = null;
  #onWake: (() => void) | null = null;
  /** Told when another server took this node's id while the session was away (onNodeIdTaken). */
  #onNodeIdTaken: ((error: NodeIdTaken) => void) | null = null;
  #idTaken = false;
  #idTakenWhy = "";
  /** The session's backend that holds the lock: a connection cut on our side may leave it on. */
  #lockHolder: { pid: number; since: Date } | null = null;
  /** Open: a session that closed meanwhile is attached again from then on (#reattach). */
  #opened = false;

  private constructor(location: string, url: string, sql: Sql, node: NodeIdentity) {
    this.location = location;
    this.#url = url;
    this.#sql = sql;
    this.node = node;
  }

  /**
   * Connects, applies the migrations the database needs, takes the node's id (refused while
   * another running server has it), and claims the pipelines this node had, then unowned ones.
   */
  static async open(url: string, node: NodeIdentity): Promise<PostgresStore> {
    const location = withoutPassword(url);
    let sql: Sql;
    try {
      sql = postgres(url, {
        max: 4,
        connect_timeout: CONNECT_TIMEOUT_S,
        backoff: reconnectBackoff,
        onnotice: () => {}, // "relation already exists, skipping" and the like
        connection: { application_name: "gst-control-server" },
      });
    } catch (error) {
      throw new Error(`GSTREAMER_DATABASE_URL is not a PostgreSQL URL: ${message(error)}`);
    }
    let store: PostgresStore | null = null;
    try {
      await migrate(sql, location);
      store = new PostgresStore(location, url, sql, node);
      store.#openSession();
      await store.#lockNodeId(NODE_LOCK_WAIT_MS);
      // Recordings stay on the node that made them; rows from before nodes existed are this one's.
      await sql`UPDATE recordings SET node = ${node.id} WHERE node = ''`;
      const recordings = await sql<{ path: string; options: string; created_at: string }[]>`
        SELECT path, options, created_at FROM recordings WHERE node = ${node.id} ORDER BY seq`;
      store.#recordings = recordings.map((row) => ({
        path: row.path,
        options: JSON.parse(row.options),
        createdAt: row.created_at,
      }));
      // What this node had before it stopped is its own again (its id is locked: no other
      // running server has it); then whatever no node holds.
      store.#pipelines = await store.claim(node.capacity, { own: true });
      store.#opened = true;
      if (!store.#attached) store.#reattach(); // its session closed while it opened
      return store;
    } catch (error) {
      if (store) {
        store.#closed = Promise.resolve(); // its session is not taken again (#reattach)
        await store.#session?.end({ timeout: 1 }).catch(() => {});
      }
      await sql.end({ timeout: 1 }).catch(() => {});
      if (error instanceof NodeIdTaken) throw error;
      const why = `the store at ${location} could not be opened: ${reason(error, location)}`;
      throw isUnreachable(error) ? new DatabaseUnreachable(why) : new Error(why);
    }
  }

  /** Ids of the pipelines this node holds. */
  held(): string[] {
    return [...this.#held.keys()];
  }

  /**
   * Claims up to `room` pipelines no live node holds: unowned ones, and those whose lease ran out
   * (never in the first lease after the database itself started, so that a database restart
   * gives every owner the time to renew). `own` also takes back rows this node id owns.
   */
  async claim(room: number, { own = false } = {}): Promise<ClaimedPipeline[]> {
    if (room <= 0) return [];
    const me = this.node.id;
    const lease = this.node.leaseSeconds;
    const rows = await bounded(this.#sql<PipelineRow[]>`
      WITH candidates AS (
        SELECT id FROM pipelines
        WHERE owner IS NULL OR (owner = ${me} AND (${own} OR NOT id = ANY(${[
      ...this.held(),
      ...this.#inserting,
    ]}::text[])))
          OR (
          lease_until < now() AND pg_postmaster_start_time() < now() - make_interval(secs => ${lease})
        )
        ORDER BY seq LIMIT ${room} FOR UPDATE SKIP LOCKED
      )
      UPDATE pipelines p
      SET owner = ${me}, epoch = p.epoch + 1, lease_until = now() + make_interval(secs => ${lease})
      FROM candidates c WHERE p.id = c.id
      RETURNING p.id, p.definition, p.desired_state, p.created_at, p.epoch, p.seq`);
    return [...rows].sort((a, b) => Number(a.seq) - Number(b.seq)).map((row) => {
      this.#held.set(row.id, Number(row.epoch));
      this.#desired.set(row.id, row.desired_state);
      return {
        id: row.id,
        definition: JSON.parse(row.definition),
        desiredState: row.desired_state,
        createdAt: row.created_at,
        epoch: Number(row.epoch),
      };
    });
  }

  /**
   * Renews the lease of every pipeline this node holds and beats the node's heart, in one
   * statement. Returns the ids this node no longer holds (another node claimed them): they are
   * forgotten here, and their copies must stop at once.
   */
  async renew(load: { cpuPercent: number }): Promise<string[]> {
    const me = this.node.id;
    const ids = [...this.#held.keys()];
    const epochs = ids.map((id) => this.#held.get(id)!);
    const rows = await bounded(this.#sql<{ id: string }[]>`
      WITH heartbeat AS (
        UPDATE nodes SET heartbeat_at = now(), cpu_percent = ${load.cpuPercent}, stopped_at = NULL
        WHERE id = ${me}
      ),
      held AS (SELECT * FROM unnest(${ids}::text[], ${epochs}::bigint[]) AS h(id, epoch))
      UPDATE pipelines p
      SET lease_until = now() + make_interval(secs => ${this.node.leaseSeconds})
      FROM held WHERE p.id = held.id AND p.owner = ${me} AND p.epoch = held.epoch
      RETURNING p.id`);
    const renewed = new Set(rows.map((row) => row.id));
    const lost = ids.filter((id) => !renewed.has(id) && this.#held.get(id) !== undefined);
    for (const id of lost) this.#forgetHeld(id);
    return lost;
  }

  /**
   * Hands pipeline `id` (its copy here stopped already) to node `target`, which takes it in its
   * next claim. Returns the epoch it was handed over at.
   */
  async handOver(id: string, target: string): Promise<number> {
    const rows = await bounded(this.#sql<{ epoch: string }[]>`
      UPDATE pipelines SET owner = ${target}, epoch = epoch + 1,
        lease_until = now() + make_interval(secs => ${this.node.leaseSeconds})
      WHERE id = ${id} AND owner = ${this.node.id} AND epoch = ${this.#held.get(id) ?? -1}
      RETURNING epoch`);
    if (rows.length === 0) throw this.#notHeld(id);
    this.#forgetHeld(id);
    await bounded(this.#sql`SELECT pg_notify(${WAKE_CHANNEL}, ${target})`);
    return Number(rows[0].epoch);
  }

  /** Whether node `node` has taken pipeline `id` since it was handed over at `epoch`. */
  async taken(id: string, node: string, epoch: number): Promise<boolean> {
    const [row] = await bounded(this.#sql<{ taken: boolean }[]>`
      SELECT owner = ${node} AND epoch > ${epoch} AS taken FROM pipelines WHERE id = ${id}`);
    return row?.taken ?? false;
  }

  /** The node that holds `id` and where it is reached, or null when no such pipeline is stored. */
  async ownerOf(
    id: string,
  ): Promise<{ node: string | null; advertiseUrl: string | null; up: boolean } | null> {
    const [row] = await bounded(this.#sql<
      { owner: string | null; advertise_url: string | null; up: boolean | null }[]
    >`
      SELECT p.owner, n.advertise_url, n.stopped_at IS NULL AND p.lease_until > now()
        AND n.heartbeat_at > now() - make_interval(secs => ${this.node.leaseSeconds}) AS up
      FROM pipelines p LEFT JOIN nodes n ON n.id = p.owner WHERE p.id = ${id}`);
    if (!row) return null;
    return { node: row.owner, advertiseUrl: row.advertise_url, up: row.up ?? false };
  }

  /** Another node that records `path`, where it is reached, and whether it is up. */
  async recorderOf(
    path: string,
  ): Promise<{ node: string; advertiseUrl: string; up: boolean } | null> {
    const [row] = await bounded(this.#sql<{ node: string; advertise_url: string; up: boolean }[]>`
      SELECT r.node, n.advertise_url, n.stopped_at IS NULL
        AND n.heartbeat_at > now() - make_interval(secs => ${this.node.leaseSeconds}) AS up
      FROM recordings r JOIN nodes n ON n.id = r.node
      WHERE r.path = ${path} AND r.node <> ${this.node.id} LIMIT 1`);
    return row ? { node: row.node, advertiseUrl: row.advertise_url, up: row.up } : null;
  }

  /**
   * Calls `onEvent` with every event another node publishes, and `onWake` when a pipeline is
   * handed to this node, on this node's session. Its LISTENs end with the session's connection
   * (the database restarting): #reattach makes them again.
   */
  async listen(
    onEvent: (node: string, event: { type: string; payload: unknown }) => void,
    onWake: () => void,
  ): Promise<void> {
    this.#onEvent = onEvent;
    this.#onWake = onWake;
    await this.#listen();
  }

  /**
   * `handler` is told, once, when the session came back to find this node's id taken by another
   * server (it started while the database was away and this node's lock with it): the two would
   * fight over the same pipelines, so this one must stop, and hand nothing back (close).
   */
  onNodeIdTaken(handler: (error: NodeIdTaken) => void): void {
    this.#onNodeIdTaken = handler;
    if (this.#idTaken) handler(new NodeIdTaken(this.#idTakenWhy));
  }

  #openSession(): void {
    // `onnotify` is the option the client's own listen() uses; its types leave it out.
    const options = {
      max: 1,
      max_lifetime: null,
      fetch_types: false,
      connect_timeout: CONNECT_TIMEOUT_S,
      backoff: reconnectBackoff,
      onnotice: () => {},
      connection: { application_name: "gst-control-server" },
      onclose: () => {
        this.#attached = false;
        this.#reattach();
      },
      onnotify: (channel: string, text: string) => this.#notified(channel, text),
    };
    this.#session = postgres(this.#url, options);
  }

  #notified(channel: string, text: string): void {
    if (channel === WAKE_CHANNEL) {
      if (text === this.node.id) this.#onWake?.();
      return;
    }
    let message: { node: string; event: { type: string; payload: unknown } };
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.node !== this.node.id) this.#onEvent?.(message.node, message.event);
  }

  /**
   * Takes this node's id: a session advisory lock, which the database lets go when the session
   * ends (the process died, its socket closed), not before. Waits up to `waitMs` for a server of
   * this id that was killed a moment ago, until the database sees its socket close.
   */
  async #lockNodeId(waitMs: number): Promise<void> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const [row] = await bounded(this.#session!<{ locked: boolean; pid: number; since: Date }[]>`
        SELECT pg_try_advisory_lock(hashtextextended(${"gst-node:" + this.node.id}, 0)) AS locked,
          pid, backend_start AS since
        FROM pg_stat_activity WHERE pid = pg_backend_pid()`);
      if (row.locked) {
        this.#lockHolder = { pid: row.pid, since: row.since };
        break;
      }
      if (performance.now() >= deadline) {
        throw new NodeIdTaken(
          `another running server is node '${this.node.id}' of this database: give each node ` +
            "its own GSTREAMER_NODE_ID",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    this.#attached = true;
  }

  /**
   * Takes the node id again on a new session. Its former backend may still hold it, when the
   * connection was cut on this side only (a NAT or proxy reset it): that backend is this node's,
   * so it is ended first (the same process and start time: not another's that reuses its pid).
   */
  async #relockNodeId(): Promise<void> {
    const former = this.#lockHolder;
    if (former !== null) {
      await bounded(this.#session!`
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE pid = ${former.pid} AND backend_start = ${former.since}
          AND pid <> pg_backend_pid()`);
    }
    await this.#lockNodeId(NODE_LOCK_WAIT_MS);
  }

  /** LISTENs on the session, when asked to (listen). */
  async #listen(): Promise<void> {
    if (this.#onEvent === null) return;
    const again = this.#listenedBefore;
    await bounded(
      this.#session!.unsafe(`LISTEN ${EVENT_CHANNEL}; LISTEN ${WAKE_CHANNEL}`).simple(),
    );
    this.#listenedBefore = true;
    if (again) console.log(`Node '${this.node.id}' hears other nodes' events again`);
  }

  /**
   * The session's connection closed: takes the node id and LISTENs again on a new one, soon, and
   * again while the database is away. One attempt at a time.
   */
  #reattach(): void {
    if (!this.#opened || this.#closed !== null || this.#idTaken || this.#reattaching) return;
    this.#reattaching = true;
    setTimeout(async () => {
      try {
        if (!this.#attached) await this.#relockNodeId();
        await this.#listen();
        this.#reattaching = false;
      } catch (error) {
        this.#reattaching = false;
        if (error instanceof NodeIdTaken) {
          this.#idTaken = true;
          this.#idTakenWhy = error.message;
          console.error(
            `Node '${this.node.id}': ${error.message} (it started while the database was away)`,
          );
          this.#onNodeIdTaken?.(error);
          return;
        }
        this.#reattach();
      }
    }, RELISTEN_MS);
  }

  /**
   * Sends an event of this node to the others (NOTIFY). PostgreSQL takes payloads up to 8000
   * bytes: a longer one goes without its `debug` text, or not at all (logged).
   */
  publish(event: { type: string; payload: unknown }): void {
    let text = JSON.stringify({ node: this.node.id, event });
    if (text.length > NOTIFY_LIMIT) {
      const payload = event.payload as { debug?: unknown };
      text = JSON.stringify({
        node: this.node.id,
        event: { ...event, payload: { ...payload, debug: null } },
      });
    }
    if (new TextEncoder().encode(text).length > NOTIFY_LIMIT) {
      console.error(`Event ${event.type} is too large to reach other nodes (${text.length} bytes)`);
      return;
    }
    this.#sql`SELECT pg_notify(${EVENT_CHANNEL}, ${text})`.catch((error) =>
      console.error(`Event ${event.type} did not reach other nodes: ${message(error)}`)
    );
  }

  /** Stops holding `id` here (its copy was stopped after its lease was lost). */
  forget(id: string): void {
    this.#forgetHeld(id);
  }

  #forgetHeld(id: string): void {
    this.#held.delete(id);
    this.#desired.delete(id);
    this.#writes.delete(id);
  }

  /** Says where this node is reached, and that it is up. */
  async register(urls: { advertiseUrl: string; rtspUrl: string }): Promise<void> {
    await this.#sql`
      INSERT INTO nodes (id, advertise_url, rtsp_url, started_at, heartbeat_at, capacity)
      VALUES (${this.node.id}, ${urls.advertiseUrl}, ${urls.rtspUrl}, now(), now(),
        ${this.node.capacity})
      ON CONFLICT (id) DO UPDATE SET advertise_url = EXCLUDED.advertise_url,
        rtsp_url = EXCLUDED.rtsp_url, started_at = now(), heartbeat_at = now(),
        stopped_at = NULL, capacity = EXCLUDED.capacity`;
  }

  /** Every node that ever registered, with its load and whether it is up. */
  async nodes(): Promise<NodeInfo[]> {
    const rows = await bounded(this.#sql<
      {
        id: string;
        advertise_url: string;
        rtsp_url: string;
        up: boolean;
        pipelines: number;
        cpu_percent: number;
        capacity: number;
        started_at: Date;
        heartbeat_at: Date;
      }[]
    >`
      SELECT id, advertise_url, rtsp_url, cpu_percent, capacity, started_at,
        (SELECT count(*)::int FROM pipelines p WHERE p.owner = nodes.id) AS pipelines,
        heartbeat_at, stopped_at IS NULL
          AND heartbeat_at > now() - make_interval(secs => ${this.node.leaseSeconds}) AS up
      FROM nodes ORDER BY id`);
    return rows.map((row) => ({
      id: row.id,
      advertiseUrl: row.advertise_url,
      rtspUrl: row.rtsp_url,
      up: row.up,
      pipelines: row.pipelines,
      cpuPercent: row.cpu_percent,
      capacity: row.capacity,
      startedAt: row.started_at.toISOString(),
      heartbeatAt: row.heartbeat_at.toISOString(),
    }));
  }

  /**
   * Hands back every pipeline this node holds (a clean stop: its pipelines are stopped already),
   * so that other nodes claim them at once, and marks the node stopped.
   */
  async release(): Promise<void> {
    const ids = [...this.#held.keys()];
    this.#held.clear();
    this.#desired.clear();
    this.#writes.clear();
    await this.#sql`
      UPDATE pipelines SET owner = NULL, lease_until = NULL
      WHERE owner = ${this.node.id} AND id = ANY(${ids}::text[])`;
    await this.#sql`UPDATE nodes SET stopped_at = now() WHERE id = ${this.node.id}`;
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
      INSERT INTO recordings (node, path, options, created_at)
      VALUES (${this.node.id}, ${path}, ${JSON.stringify(options)}, ${createdAt})
      ON CONFLICT (node, path)
      DO UPDATE SET options = EXCLUDED.options, created_at = EXCLUDED.created_at`);
  }

  removeRecording(path: string): Promise<void> {
    return this.#write(
      { op: "unrecord", id: path },
      (sql) => sql`DELETE FROM recordings WHERE node = ${this.node.id} AND path = ${path}`,
    );
  }

  async insert(
    id: string,
    definition: Record<string, unknown>,
    createdAt: string,
    state: DesiredState = "stopped",
  ): Promise<void> {
    // Known from before the row exists, so that no claim of this node's takes it for a lost one.
    this.#inserting.add(id);
    let inserted = false;
    try {
      await this.#write(
        { op: "insert", id },
        // Nothing when the id is taken: the row that has it is then looked up (below).
        (sql) =>
          sql`
          INSERT INTO pipelines (id, definition, desired_state, created_at, owner, epoch,
            lease_until)
          VALUES (${id}, ${JSON.stringify(definition)}, ${state}, ${createdAt}, ${this.node.id}, 1,
            now() + make_interval(secs => ${this.node.leaseSeconds}))
          ON CONFLICT (id) DO NOTHING`,
        {
          check: (result) => {
            if (result.count === 0) return;
            inserted = true;
            this.#held.set(id, 1);
            this.#desired.set(id, state);
          },
          // The row this insert made (its count was 1), unless a create asked again since, of
          // this node's, holds the id by now.
          undo: () =>
            this.#held.has(id) || this.#inserting.has(id) ? null : this.#sql`
            DELETE FROM pipelines WHERE id = ${id} AND owner = ${this.node.id} AND epoch = 1`,
        },
      );
    } finally {
      this.#inserting.delete(id);
    }
    if (inserted) return;
    const [row] = await bounded(this.#sql<{ owner: string | null }[]>`
      SELECT owner FROM pipelines WHERE id = ${id}`).catch(() => [undefined]);
    throw new DomainError(
      "DUPLICATE_ID",
      `A pipeline with id '${id}' already exists` +
        (row?.owner ? ` (on node '${row.owner}')` : ""),
      { id, node: row?.owner ?? null },
    );
  }

  setDesiredState(id: string, state: DesiredState): Promise<void> {
    const epoch = this.#held.get(id) ?? -1;
    const stored = this.#desired.get(id);
    const write = (this.#writes.get(id) ?? 0) + 1;
    this.#writes.set(id, write);
    return this.#write(
      { op: "setState", id },
      (sql) =>
        sql`
        UPDATE pipelines SET desired_state = ${state}
        WHERE id = ${id} AND owner = ${this.node.id} AND epoch = ${epoch}`,
      {
        check: (result) => {
          if (result.count === 0) throw this.#notHeld(id);
          this.#desired.set(id, state);
        },
        // The state this write replaced, unless another write of it was asked since (which
        // stores what the pipeline wants now, or fails and says so).
        undo: () =>
          this.#writes.get(id) !== write || stored === undefined ? null : this.#sql`
          UPDATE pipelines SET desired_state = ${stored}
          WHERE id = ${id} AND owner = ${this.node.id} AND epoch = ${epoch}`,
      },
    );
  }

  async remove(id: string): Promise<void> {
    await this.#write(
      { op: "remove", id },
      (sql) =>
        sql`
        DELETE FROM pipelines
        WHERE id = ${id} AND owner = ${this.node.id} AND epoch = ${this.#held.get(id) ?? -1}`,
      {
        check: (result) => {
          if (result.count === 0) throw this.#notHeld(id);
        },
      },
    );
    this.#forgetHeld(id);
  }

  /** A write to a pipeline another node has taken over: fenced by the epoch. */
  #notHeld(id: string): Error {
    return new Error(
      `node '${this.node.id}' no longer holds pipeline '${id}': another node took it over ` +
        "after this one missed its lease",
    );
  }

  /**
   * Hands the pipelines back (they are stopped by now) so that other nodes take them at once,
   * waits for the writes under way, then closes the connections.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      // With this node's id taken by another server, the rows of that id are that server's.
      if (!this.#idTaken) {
        await this.release().catch((error) =>
          console.error(
            `Node '${this.node.id}' could not hand its pipelines back: ${message(error)}`,
          )
        );
      }
      // The node id is let go with the session.
      await this.#session?.end({ timeout: 1 });
      await this.#sql.end({ timeout: 5 });
    })();
    return this.#closed;
  }

  /**
   * Runs a write's statement; its result goes to `check`. A write refused for its time that
   * changed a row after all (`count`) is `undo`ne, so that a change its client was told failed
   * leaves nothing.
   */
  async #write<T extends { count: number }>(
    write: StoreWrite,
    statement: (sql: Sql) => Query<T>,
    { check, undo }: { check?: (result: T) => void; undo?: () => Query<unknown> | null } = {},
  ): Promise<void> {
    const what = writeSubject(write);
    if (this.#closed !== null) {
      throw storageFailed(this.location, what, write.id, "the store is closed");
    }
    try {
      const result = await bounded(statement(this.#sql), (late) => {
        if (late.count === 0) return;
        const undoing = undo?.();
        if (!undoing) return;
        console.error(`Writing ${what} was made after it was reported failed: undoing it`);
        bounded(undoing).catch((error) =>
          console.error(`Undoing ${what} failed: ${reason(error, this.location)}`)
        );
      });
      check?.(result);
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

/** Another running server has this node id: two nodes with one id would fight over pipelines. */
export class NodeIdTaken extends Error {}

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

/**
 * A query as the client (postgres 3.4.9, pinned) makes it. `state` is set once it went to a
 * connection; `canceller` asks the database to cancel it, and returns that request's promise.
 */
type Query<T> = Promise<T> & {
  state?: unknown;
  canceller?: ((query: unknown) => Promise<void>) | null;
};

/**
 * A database call that does not answer within QUERY_TIMEOUT_MS fails: a query can wait forever on
 * a connection that a database shutting down left open. One that went to a connection is also
 * cancelled (it may wait on a lock, and would otherwise still run after its caller was told it
 * failed: a create refused, whose row then appeared). One still waiting for a connection is not:
 * the client's cancel of it leaves that connection opening for good. Whatever still answers
 * after the timeout goes to `answeredLate`, which undoes a change that was made all the same.
 */
function bounded<T>(query: Query<T>, answeredLate?: (result: T) => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      const cancel = query.state ? query.canceller : null;
      if (cancel) {
        query.canceller = null;
        // Query.cancel() drops this promise: a refused cancel would be an unhandled rejection.
        cancel(query)?.catch(() => {});
      }
      reject(
        Object.assign(new Error(`no answer within ${QUERY_TIMEOUT_MS / 1000} s`), {
          code: "QUERY_TIMEOUT",
        }),
      );
    }, QUERY_TIMEOUT_MS);
  });
  query.then((result) => {
    if (timedOut) answeredLate?.(result);
  }, () => {});
  return Promise.race([query, late]).finally(() => clearTimeout(timer));
}

/** The database could not be reached at start-up: trying again later may work. */
export class DatabaseUnreachable extends Error {}

function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? "";
  // 57P01 and its kin: the server shuts down, or is starting up.
  return [
    "ECONNREFUSED",
    "CONNECT_TIMEOUT",
    "ECONNRESET",
    "CONNECTION_CLOSED",
    "ENOTFOUND",
    "QUERY_TIMEOUT",
  ]
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
