/**
 * The registry of pipelines: the one place requests about pipelines enter the domain. It makes
 * pipelines (through the builder), finds them by id, forgets them, keeps the store in step,
 * and reports stored definitions that no longer build.
 *
 * A pipeline being built has its id reserved: requests naming it wait for the build, so a
 * client that sends createPipeline and startPipeline without waiting still gets them in order.
 */
import { setImmediate } from "node:timers";
import { AppSource, IdentityCounters } from "../gst/appsrc.ts";
import { retain } from "../gst/element.ts";
import type { JsonValue } from "../gst/gvalue.ts";
import type { Pointer } from "../gst/native.ts";
import { Pipeline, type StateName, withMessages } from "../gst/pipeline.ts";
import type { RtspServer } from "../gst/rtsp.ts";
import { buildPipeline } from "./builder.ts";
import { DomainError, errorMessage } from "./errors.ts";
import { RtspMounts } from "./mounts.ts";
import { requireValidId } from "./names.ts";
import { type PhaseObserver, timed } from "./phases.ts";
import { ManagedPipeline, type PipelineHost } from "./pipeline.ts";
import type { ElementPolicy } from "./policy.ts";
import { definitionSchema, type PipelineSpec, type RestartPolicy } from "./spec.ts";
import type { PipelineStore, StoredPipeline } from "./store.ts";
import type {
  DesiredState,
  NodeAddress,
  PipelineDetails,
  PipelineError,
  PipelineEvent,
  PipelineInfo,
  PipelineKind,
  PipelineStats,
} from "./types.ts";

/**
 * Pipelines whose counters a stats round reads in one go before it lets other work run: read all
 * at once, hundreds of pipelines held the main thread for milliseconds, and a request that came
 * then waited for all of it (bench/scale.ts's p99, issue 14).
 */
const STATS_SLICE = 50;

/** Resolves after the event loop has taken its waiting I/O (a macrotask, not a microtask). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface RegistryOptions {
  emit: (event: PipelineEvent) => void;
  /** Which elements and file locations clients may use. */
  policy: ElementPolicy;
  /** Keeps definitions and desired states of pipelines (not pushes) across restarts. */
  store?: PipelineStore;
  /** Most pipelines (not counting pushes) that may exist at once. */
  maxPipelines?: number;
  /** Serves `rtspserversink` elements; without it they are refused. */
  rtsp?: RtspServer;
  /** How long startPipeline waits for an async change to PLAYING before replying with the pending state. */
  startTimeoutMs?: number;
  /** How long a start waits for a change of state itself to return (PipelineHost). */
  stateChangeTimeoutMs?: number;
  /**
   * WebRTC viewers per served path (the WHEP sessions). Each also reads the path over RTSP
   * from inside the server: stats count it as a WebRTC viewer, not as an RTSP reader.
   */
  webrtcViewers?: () => ReadonlyMap<string, number>;
  /** This server, as PipelineInfo names it. */
  address: NodeAddress;
  /** Told how long each phase of a pipeline's life took (/metrics); by default nobody. */
  observePhase?: PhaseObserver;
}

interface CreateOptions {
  kind?: PipelineKind;
  extraStats?: () => Record<string, unknown>;
  /** Set when bringing back a stored pipeline: it is not stored again. */
  restoring?: StoredPipeline;
  /**
   * What it should be doing once created (default "stopped"): stored with its row, and reached
   * before the reply; when the start fails, the create fails and leaves nothing.
   */
  desiredState?: DesiredState;
}

/** A push's own references to its appsrc and frame counter (see src/domain/push.ts). */
export interface PushElements {
  source: AppSource;
  counter: IdentityCounters;
}

/** A publish's own references to its udpsrc elements and counters (see src/domain/publish.ts). */
export interface PublishElements {
  sources: Pointer[];
  counters: IdentityCounters[];
}

export class PipelineRegistry {
  readonly #pipelines = new Map<string, ManagedPipeline>();
  /** Ids being built, with their kind; settles when the build has ended either way. */
  readonly #building = new Map<string, { kind: PipelineKind; done: Promise<void> }>();
  /** Deletes under way, by pipeline: a second delete of one waits for the first. */
  readonly #deleting = new Map<ManagedPipeline, Promise<{ id: string }>>();
  /** Set by shutdown: creates are refused from then on. */
  #closing = false;
  readonly #stillStopping = new Set<string>();
  /** Stored definitions that no longer build (a plugin removed): kept, listed, and deletable. */
  readonly #unbuildable = new Map<string, { stored: StoredPipeline; error: PipelineError }>();
  readonly #listeners = new Set<(event: PipelineEvent) => void>();
  readonly #options: RegistryOptions;
  readonly #host: PipelineHost;

  constructor(options: RegistryOptions) {
    this.#options = options;
    this.#host = {
      emit: (event) => this.#emit(event),
      mounts: new RtspMounts(options.rtsp),
      policy: options.policy,
      storeWrite: (write) => this.#storeWrite(write),
      startTimeoutMs: options.startTimeoutMs ?? 5000,
      stateChangeTimeoutMs: options.stateChangeTimeoutMs ?? 30_000,
      address: options.address,
      observePhase: options.observePhase ?? (() => {}),
    };
  }

  /** Calls `listener` with every event from now on; returns the function that stops it. */
  subscribe(listener: (event: PipelineEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: PipelineEvent): void {
    this.#options.emit(event);
    for (const listener of this.#listeners) listener(event);
  }

  get size(): number {
    return this.#pipelines.size + this.#unbuildable.size;
  }

  has(id: string): boolean {
    return this.#pipelines.has(id) || this.#unbuildable.has(id) || this.#building.has(id);
  }

  /** The id of the pipeline (or push) that serves an RTSP path, if one does. */
  pathOwner(path: string): string | undefined {
    return this.#host.mounts.owner(path);
  }

  /** Calls `listener` with each served path as its pipeline stops serving it. */
  onPathUnserved(listener: (path: string) => void): void {
    this.#host.mounts.onUnserved(listener);
  }

  /** The depayloaders a reader of `path` needs, one per stream it serves ([] when none). */
  pathDepayloaders(path: string): string[] {
    const owner = this.#host.mounts.owner(path);
    const pipeline = owner === undefined ? undefined : this.#pipelines.get(owner);
    return pipeline?.mounts.get(path)?.relays.map((relay) => relay.format.depay) ?? [];
  }

  /** The pipeline's info, if it exists (a stored one that no longer builds included). */
  find(id: string): PipelineInfo | undefined {
    return this.#pipelines.get(id)?.info() ?? this.#unbuildableInfo(id);
  }

  /** Builds the pipeline in the NULL state and stores it; on any failure nothing stays behind. */
  async create(spec: PipelineSpec, options: CreateOptions = {}): Promise<PipelineInfo> {
    return (await this.#create(spec, options, (pipeline) => pipeline.info())).result;
  }

  /**
   * Creates a push pipeline and takes references to its appsrc `source` and identity `counter`
   * in the same step that registers it, so the push owns them whatever happens next.
   */
  async createPush(
    spec: PipelineSpec,
    extraStats: () => Record<string, unknown>,
  ): Promise<PushElements> {
    const { result } = await this.#create(spec, { kind: "push", extraStats }, (pipeline) => ({
      source: new AppSource(pipeline.element("source").pointer),
      counter: new IdentityCounters(pipeline.element("counter").pointer),
    }));
    return result;
  }

  /**
   * Creates an RTSP publish's pipeline (src/domain/publish.ts), taking references to its
   * `sources` (udpsrc elements) and identity `counters` as it is registered.
   */
  async createPublish(
    spec: PipelineSpec,
    extraStats: () => Record<string, unknown>,
    names: { sources: string[]; counters: string[] },
  ): Promise<PublishElements> {
    const { result } = await this.#create(spec, { kind: "publish", extraStats }, (pipeline) => ({
      sources: names.sources.map((name) => retain(pipeline.element(name).pointer)),
      counters: names.counters.map((name) => new IdentityCounters(pipeline.element(name).pointer)),
    }));
    return result;
  }

  async #create<T>(
    spec: PipelineSpec,
    options: CreateOptions,
    onRegistered: (pipeline: ManagedPipeline) => T,
  ): Promise<{ pipeline: ManagedPipeline; result: T }> {
    const { id, ...definition } = spec;
    requireValidId(id);
    if (this.#closing) {
      throw new DomainError(
        "NODE_UNAVAILABLE",
        `The server is stopping: pipeline '${id}' was not created; create it when it is back`,
        { id },
      );
    }
    if (this.has(id)) {
      throw new DomainError("DUPLICATE_ID", `A pipeline with id '${id}' already exists`, { id });
    }
    const kind = options.kind ?? "pipeline";
    if (kind === "pipeline" && !options.restoring) this.#checkLimit();
    const createdAt = options.restoring ? new Date(options.restoring.createdAt) : new Date();
    const desiredState = options.desiredState ?? "stopped";
    // The row is committed while the pipeline is built (and started, when asked): the reply
    // waits for both. Whichever takes longer begins first: the write's sync outlasts a build, so
    // a create that only builds writes first; a start outlasts the sync, so a create that starts
    // writes once the start's first pool call is out. Held as its settled result, so that a
    // refused write is never a rejection nobody handles while the build runs.
    const insert = () => {
      if (kind !== "pipeline" || options.restoring) return null;
      const writing = this.#storeWrite((store) =>
        store.insert(id, definition, createdAt.toISOString(), desiredState)
      );
      return writing ? settled(writing) : null;
    };
    let storing = desiredState === "stopped" ? insert() : null;
    const building = timed(
      this.#host.observePhase,
      "build",
      () => buildPipeline(id, definition, this.#host),
    );
    const preparing = building.then((built) => {
      try {
        this.#host.mounts.claim(id, built.mounts);
      } catch (error) {
        void built.pipeline.dispose();
        throw error;
      }
      return new ManagedPipeline(
        {
          id,
          kind,
          definition,
          createdAt,
          built,
          extraStats: options.extraStats,
          unannounced: true,
        },
        this.#host,
      );
    });
    const starting = desiredState === "stopped" ? preparing : preparing.then((pipeline) => {
      const started = pipeline.startCreated(desiredState);
      storing = insert();
      return started;
    });
    const registering = (async () => {
      const started = await settled<unknown>(starting);
      // Null when nothing was written: no store, or a create that starts whose build failed.
      const stored = await storing;
      if (started.status === "fulfilled" && stored?.status !== "rejected") {
        const made = await preparing;
        try {
          return { made, result: onRegistered(made) };
        } catch (error) {
          await releaseFailedCreate(made);
          if (stored) await this.#unstore(id);
          throw error;
        }
      }
      const made = await preparing.catch(() => null);
      if (made) await releaseFailedCreate(made);
      if (stored?.status === "fulfilled") await this.#unstore(id);
      throw started.status === "rejected"
        ? started.reason
        : (stored as PromiseRejectedResult).reason;
    })();
    this.#building.set(id, { kind, done: registering.then(() => {}, () => {}) });
    let registered;
    try {
      registered = await registering;
    } finally {
      this.#building.delete(id);
    }
    const { made: pipeline, result } = registered;
    // From here to the end nothing awaits: the pipeline is registered in one step.
    this.#pipelines.set(id, pipeline);
    this.#emit({ type: "pipelineCreated", payload: pipeline.info() });
    pipeline.announce();
    return { pipeline, result };
  }

  /** A write to the store, timed as a `store_write` phase; undefined when nothing is stored. */
  #storeWrite(write: (store: PipelineStore) => Promise<void>): Promise<void> | undefined {
    const { store } = this.#options;
    return store && timed(this.#host.observePhase, "store_write", () => write(store));
  }

  /** Takes back the row of a create that failed after it was stored (the id is still held). */
  async #unstore(id: string): Promise<void> {
    await this.#storeWrite((store) => store.remove(id))?.catch(() =>
      console.error(
        `Pipeline '${id}' failed to be created but stays stored; it comes back at the next start`,
      )
    );
  }

  #checkLimit(): void {
    const limit = this.#options.maxPipelines;
    if (limit === undefined) return;
    const count = this.storedCount;
    if (count >= limit) {
      throw new DomainError(
        "LIMIT_REACHED",
        `The server already has ${count} pipelines, its limit (GSTREAMER_MAX_PIPELINES); ` +
          "delete one first",
        { limit, setting: "GSTREAMER_MAX_PIPELINES" },
      );
    }
  }

  /**
   * Runs `operation` on the pipeline `id`: at once, or after its build when it is being built
   * (then on what the build left: the pipeline, or PIPELINE_NOT_FOUND).
   */
  #with<T>(id: string, operation: (pipeline: ManagedPipeline) => T): T | Promise<Awaited<T>> {
    requireValidId(id);
    const building = this.#building.get(id);
    if (building) return building.done.then(() => this.#with(id, operation)) as Promise<Awaited<T>>;
    const pipeline = this.#require(id);
    // A request on a pipeline being deleted waits for that delete: it then finds the pipeline gone
    // (a pipeline made since under the same id is not the one it asked about), or, when the delete
    // failed, as it was. Nothing is queued on a pipeline that is going.
    const deleting = this.#deleting.get(pipeline);
    if (deleting) {
      return deleting.catch(() => {}).then(() => {
        if (this.#pipelines.get(id) !== pipeline) throw notFound(id);
        return this.#with(id, operation);
      }) as Promise<Awaited<T>>;
    }
    return operation(pipeline);
  }

  #require(id: string): ManagedPipeline {
    const unbuildable = this.#unbuildable.get(id);
    if (unbuildable) {
      throw new DomainError(
        "STATE_CHANGE_FAILED",
        `Pipeline '${id}' could not be rebuilt from its stored definition: ` +
          `${unbuildable.error.message}; delete it, or restore what it needs and restart the server`,
        { id, error: unbuildable.error },
      );
    }
    const pipeline = this.#pipelines.get(id);
    if (!pipeline) throw notFound(id);
    return pipeline;
  }

  list(): PipelineInfo[] {
    return [
      ...[...this.#pipelines.values()].map((pipeline) => pipeline.info()),
      ...[...this.#unbuildable.keys()].map((id) => this.#unbuildableInfo(id)!),
    ];
  }

  get(id: string): PipelineDetails | Promise<PipelineDetails> {
    const unbuildable = this.#unbuildableInfo(id);
    if (unbuildable) return unbuildable;
    return this.#with(id, (pipeline) => pipeline.details());
  }

  start(id: string) {
    return this.#with(id, (pipeline) => pipeline.start("playing"));
  }

  /**
   * Goes to PAUSED (prerolled: sinks hold their first buffer); kept as the desired state. Not a
   * push or publish: its sender goes on sending, and a pause would end it (its idle timeout).
   */
  pause(id: string) {
    return this.#with(id, (pipeline) => {
      if (pipeline.kind !== "pipeline") {
        throw new DomainError(
          "INVALID_STATE",
          `'${id}' is a ${pipeline.kind}: it plays as its sender sends and cannot be paused; ` +
            "stopPipeline or deletePipeline ends it",
          { id, kind: pipeline.kind },
        );
      }
      return pipeline.start("paused");
    });
  }

  stop(id: string): Promise<{ id: string; state: StateName }> {
    const unbuildable = this.#unbuildable.get(id);
    if (unbuildable) {
      return (async () => {
        await this.#storeWrite((store) => store.setDesiredState(id, "stopped"));
        unbuildable.stored.desiredState = "stopped";
        return { id, state: "NULL" as const };
      })();
    }
    return Promise.resolve(this.#with(id, (pipeline) => pipeline.stop()));
  }

  /** Stops and frees the pipeline from any state, and forgets it. */
  delete(id: string): Promise<{ id: string }> {
    if (this.#unbuildable.has(id)) {
      return (async () => {
        await this.#storeWrite((store) => store.remove(id));
        this.#unbuildable.delete(id);
        this.#emit({ type: "pipelineDeleted", payload: { id } });
        return { id };
      })();
    }
    return Promise.resolve(this.#with(id, (pipeline) => this.#deleteOnce(pipeline)));
  }

  /**
   * Deletes a pipeline, once: a delete that comes while another is under way waits for it (#with),
   * then finds the pipeline gone (PIPELINE_NOT_FOUND), or tries itself when that one failed.
   */
  async #deleteOnce(pipeline: ManagedPipeline): Promise<{ id: string }> {
    const { id } = pipeline;
    const deleting = (async () => {
      const removing = pipeline.kind === "pipeline"
        ? this.#storeWrite((store) => store.remove(id))
        : undefined;
      if (removing) await pipeline.leave(removing);
      await this.#release(pipeline);
      this.#emit({ type: "pipelineDeleted", payload: { id } });
      return { id };
    })();
    this.#deleting.set(pipeline, deleting);
    try {
      return await deleting;
    } finally {
      this.#deleting.delete(pipeline);
    }
  }

  /** Forgets the pipeline at once (later lookups fail), then stops and frees it (once). */
  #release(pipeline: ManagedPipeline, by?: string): Promise<void> {
    if (this.#pipelines.get(pipeline.id) === pipeline) this.#pipelines.delete(pipeline.id);
    return pipeline.release(by);
  }

  getElementProperty(id: string, element: string, property: string) {
    return this.#with(id, (pipeline) => pipeline.getElementProperty(element, property));
  }

  setElementProperty(id: string, element: string, property: string, value: JsonValue) {
    return this.#with(id, (pipeline) => pipeline.setElementProperty(element, property, value));
  }

  sendEos(id: string) {
    return this.#with(id, (pipeline) => pipeline.sendEos());
  }

  seek(id: string, position: number, rate?: number, flush?: boolean) {
    return this.#with(id, (pipeline) => pipeline.seek(position, rate, flush));
  }

  graph(id: string) {
    return this.#with(id, (pipeline) => pipeline.graph());
  }

  /** Ends the pipeline's run with an error found outside GStreamer. */
  fail(id: string, element: string, message: string): void {
    this.#pipelines.get(id)?.fail(element, message);
  }

  /** Pulls every pipeline's waiting bus messages and turns them into events; never waits. */
  pollBuses(): void {
    // Registered pipelines are not disposed (#release forgets one before it is freed).
    const pipelines = [...this.#pipelines.values()];
    for (const pipeline of withMessages(pipelines, (p) => p.gst)) pipeline.drainBus();
  }

  /**
   * Asks the pipeline serving `path` for a key frame on it (a new viewer starts at once when an
   * encoder is upstream; other sources ignore it). Nothing when no pipeline serves the path.
   */
  requestKeyFrame(path: string): void {
    const owner = this.#host.mounts.owner(path);
    const pipeline = owner === undefined ? undefined : this.#pipelines.get(owner);
    for (const relay of pipeline?.mounts.get(path)?.relays ?? []) {
      pipeline!.gst.requestKeyFrame(relay.valve).catch(() => {}); // a pipeline deleted meanwhile
    }
  }

  /** Pulls one pipeline's bus now, for a caller waiting on it more closely than the poll interval. */
  pollBus(id: string): void {
    this.#pipelines.get(id)?.drainBus();
  }

  /**
   * Per-pipeline figures from GStreamer's own counters; no per-buffer work. The position (and
   * unknown duration) queries of every running pipeline run off the main thread in one batch
   * (src/gst/time_queries.ts); the counters are read when it is back, of the pipelines registered
   * then, STATS_SLICE at a time, so that a request waits behind one slice, not the whole round.
   */
  async stats(): Promise<PipelineStats[]> {
    const running = [...this.#pipelines.values()].filter((pipeline) =>
      pipeline.state === "PLAYING" || pipeline.state === "PAUSED"
    );
    const durationUnknown = new Set(
      running.filter((pipeline) => pipeline.duration === undefined).map((pipeline) => pipeline.gst),
    );
    const times = await Pipeline.queryTimes(
      running.map((pipeline) => pipeline.gst),
      (gst) => durationUnknown.has(gst),
    ).catch((error) => {
      console.error("Stats: positions and durations could not be asked:", errorMessage(error));
      return new Map();
    });
    const clients = this.#host.mounts.clientCounts(this.#options.webrtcViewers?.() ?? new Map());
    const registered = [...this.#pipelines.values()];
    const read: { pipeline: ManagedPipeline; stats: PipelineStats }[] = [];
    for (let first = 0; first < registered.length; first += STATS_SLICE) {
      if (first > 0) await nextTurn();
      const now = performance.now();
      for (const pipeline of registered.slice(first, first + STATS_SLICE)) {
        if (this.#pipelines.get(pipeline.id) !== pipeline) continue; // deleted meanwhile
        read.push({
          pipeline,
          stats: pipeline.stats(now, clients(pipeline.mounts), times.get(pipeline.gst)),
        });
      }
    }
    // A pipeline deleted after its slice was read is left out: its pipelineDeleted went out
    // already, and no stats may name it after that (the caller sends without awaiting again).
    return read.filter(({ pipeline }) => this.#pipelines.get(pipeline.id) === pipeline)
      .map(({ stats }) => stats);
  }

  /** Stops and frees every pipeline (after the builds under way); the store keeps them. */
  /** The pipelines a shutdown has not seen stop yet. */
  get stillStopping(): string[] {
    return [...this.#stillStopping];
  }

  async shutdown(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#building.values()].map((building) => building.done));
    await Promise.allSettled([...this.#pipelines.values()].map(async (pipeline) => {
      this.#stillStopping.add(pipeline.id);
      try {
        await this.#release(pipeline, "the server's shutdown");
      } finally {
        this.#stillStopping.delete(pipeline.id);
      }
    }));
    this.#host.mounts.close();
  }

  #unbuildableInfo(id: string): PipelineInfo | undefined {
    const entry = this.#unbuildable.get(id);
    if (!entry) return undefined;
    const { stored, error } = entry;
    return {
      id,
      kind: "pipeline",
      description: String(stored.definition.description ?? ""),
      state: "NULL",
      desiredState: stored.desiredState,
      restart: (stored.definition.restart as RestartPolicy | undefined) ?? "never",
      restarts: 0,
      createdAt: stored.createdAt,
      lastError: error,
      ...this.#options.address,
    };
  }

  /**
   * Brings back every stored pipeline and starts those that were playing. One that no
   * longer builds is kept in the list with the reason as its lastError.
   */
  async restore(): Promise<{ restored: number; unbuildable: number; starting: Promise<unknown> }> {
    const starts: Promise<unknown>[] = [];
    let restored = 0;
    for (const stored of this.#options.store?.all() ?? []) {
      const adopted = await this.adopt(stored);
      if (adopted === null) continue;
      restored++;
      starts.push(adopted.starting);
    }
    return { restored, unbuildable: this.#unbuildable.size, starting: Promise.all(starts) };
  }

  /**
   * Builds a stored pipeline (restored at start, or claimed from another node) and brings it to
   * its desired state. Returns the start under way (it never rejects), or null when the
   * definition no longer builds: then it is kept in the list with the reason as its lastError.
   */
  async adopt(stored: StoredPipeline): Promise<{ starting: Promise<void> } | null> {
    let pipeline: ManagedPipeline;
    try {
      const definition = definitionSchema.parse(stored.definition);
      ({ pipeline } = await this.#create(
        { ...definition, id: stored.id },
        { restoring: stored },
        () => undefined,
      ));
    } catch (error) {
      const message = errorMessage(error);
      const details = (error as { details?: Record<string, unknown> }).details;
      this.#unbuildable.set(stored.id, {
        stored,
        error: {
          element: String(details?.element ?? details?.type ?? ""),
          message,
          debug: null,
          time: new Date().toISOString(),
        },
      });
      console.error(`Pipeline '${stored.id}' could not be restored: ${message}`);
      return null;
    }
    const starting = pipeline.restoreDesiredState(stored.desiredState)?.then(
      () => {},
      (error) =>
        console.error(`Restored pipeline '${stored.id}' did not start: ${errorMessage(error)}`),
    );
    return { starting: starting ?? Promise.resolve() };
  }

  /**
   * Stops and forgets a pipeline this server no longer holds (another node took it over), without
   * touching the store: the row is the new owner's now.
   */
  async evict(id: string): Promise<void> {
    await this.#building.get(id)?.done;
    this.#unbuildable.delete(id);
    const pipeline = this.#pipelines.get(id);
    if (pipeline) await this.#release(pipeline, "another node's takeover");
    this.#emit({ type: "pipelineDeleted", payload: { id } });
  }

  /** A pipeline as the store keeps it (to build it again); INVALID_STATE for a push or publish. */
  storedForm(id: string): StoredPipeline {
    const unbuildable = this.#unbuildable.get(id);
    if (unbuildable) return unbuildable.stored;
    const pipeline = this.#require(id);
    if (pipeline.kind !== "pipeline") {
      throw new DomainError(
        "INVALID_STATE",
        `'${id}' is a ${pipeline.kind}: it stays on the node that receives it, and ends with its ` +
          "sender",
        { id, kind: pipeline.kind },
      );
    }
    return {
      id,
      definition: { ...pipeline.definition },
      desiredState: pipeline.desiredState,
      createdAt: pipeline.createdAt.toISOString(),
    };
  }

  /** Stored pipelines here (built, being built, or unbuildable), against GSTREAMER_MAX_PIPELINES. */
  get storedCount(): number {
    return [...this.#pipelines.values()].filter((p) => p.kind === "pipeline").length +
      [...this.#building.values()].filter((b) => b.kind === "pipeline").length +
      this.#unbuildable.size;
  }
}

function notFound(id: string): DomainError {
  return new DomainError("PIPELINE_NOT_FOUND", `No pipeline with id '${id}'`, { id });
}

/** `promise`'s outcome as a value: it never rejects. */
function settled<T>(promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  return promise.then(
    (value) => ({ status: "fulfilled", value }),
    (reason) => ({ status: "rejected", reason }),
  );
}

/**
 * Releases the pipeline of a create that failed; a release that fails is logged, so that the
 * row is still taken back and the request fails with its own cause.
 */
async function releaseFailedCreate(pipeline: ManagedPipeline): Promise<void> {
  await pipeline.release().catch((error) =>
    console.error(`Pipeline '${pipeline.id}' of a failed create could not be released:`, error)
  );
}
