/**
 * One managed pipeline: its native GstPipeline and elements (owned through `built`), its
 * operation queue, its state as GStreamer reports it, its bus, and its restart supervisor.
 *
 * Ownership (docs/architecture.md): operations that touch native objects across an await run
 * one at a time in the pipeline's queue, and disposing the pipeline is the last operation ever
 * queued, so nothing queued can see it freed. Synchronous reads (getPipeline, properties) look
 * the pipeline up again each time and find nothing once it is deleted.
 */
import type { JsonValue } from "../gst/gvalue.ts";
import { changedProperties } from "../gst/introspect.ts";
import type { Pointer } from "../gst/native.ts";
import { linkPads, watchDynamicPads } from "../gst/pads.ts";
import { padCaps } from "../gst/element.ts";
import {
  type BusMessage,
  elementState,
  MessageType,
  State,
  StateChange,
  type StateName,
} from "../gst/pipeline.ts";
import { getProperty, holdsText, setProperty } from "../gst/property.ts";
import { resolvesWithin } from "../gst/resolves_within.ts";
import { type BuiltElement, type BuiltPipeline, linkEndText } from "./builder.ts";
import { DomainError, errorMessage } from "./errors.ts";
import { formatLaunch } from "./launch.ts";
import {
  freeUdpPort,
  holdRelaysOpen,
  type Relay,
  RTSP_SINK,
  type RtspMounts,
  timeRelays,
  type Viewers,
} from "./mounts.ts";
import type { ElementPolicy } from "./policy.ts";
import type { PipelineDefinition, RestartPolicy } from "./spec.ts";
import { ByteRate, collectStats, SinkRates } from "./stats.ts";
import type { QueriedTimes } from "../gst/time_queries.ts";
import type { PhaseObserver } from "./phases.ts";
import type { PipelineStore } from "./store.ts";
import { Supervisor } from "./supervisor.ts";
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

const busMessageTypes = MessageType.EOS | MessageType.ERROR | MessageType.WARNING |
  MessageType.STATE_CHANGED | MessageType.DURATION_CHANGED;

/**
 * rtspsrc before GStreamer 1.26.1 can say no-more-pads while another stream's pad is still being
 * added (upstream e26ccf05, "gstrtspsrc: Do not emit signal 'no-more-pads' too early"; Debian 12
 * has 1.22): that pad-added comes after it, 7 ms later in one log. A link from an rtspsrc still
 * waiting at no-more-pads is failed only if no pad has linked it this long after.
 */
const LATE_PAD_GRACE_MS = 2000;
const LATE_PAD_ELEMENTS = new Set(["rtspsrc"]);

/** What every pipeline shares: where events go, the RTSP paths, the store and the policy. */
export interface PipelineHost {
  emit(event: PipelineEvent): void;
  mounts: RtspMounts;
  policy: ElementPolicy;
  /** Runs a write on the store, timed as a `store_write` phase; undefined when nothing is stored. */
  storeWrite(write: (store: PipelineStore) => Promise<void>): Promise<void> | undefined;
  /** How long a start waits for an async change to PLAYING before replying with the pending state. */
  startTimeoutMs: number;
  /**
   * How long a start waits for GStreamer's change of state itself to return (an element opening a
   * file or device, or connecting) before it fails as blocked.
   */
  stateChangeTimeoutMs: number;
  /** This server, as PipelineInfo names it. */
  address: NodeAddress;
  /** Told how long each phase took (src/domain/phases.ts). */
  observePhase: PhaseObserver;
}

export interface PipelineInit {
  id: string;
  kind: PipelineKind;
  definition: PipelineDefinition;
  createdAt: Date;
  built: BuiltPipeline;
  extraStats?: () => Record<string, unknown>;
  /** Keeps its events until announce() (the registry's pipelines, until registered). */
  unannounced?: boolean;
}

type Reached = { id: string; state: StateName; pending?: StateName };

export class ManagedPipeline {
  readonly id: string;
  readonly kind: PipelineKind;
  readonly definition: PipelineDefinition;
  readonly createdAt: Date;
  readonly extraStats?: () => Record<string, unknown>;
  readonly #built: BuiltPipeline;
  readonly #host: PipelineHost;
  readonly #supervisor: Supervisor;
  readonly rates = new SinkRates();
  /** Stops the pad-added handlers; called when the pipeline is released. */
  readonly #unwatch: (() => void)[] = [];
  /** rtspsrc elements that said no-more-pads with a link still waiting (LATE_PAD_GRACE_MS). */
  readonly #latePadWaits = new Map<
    string,
    { timer: ReturnType<typeof setTimeout>; failUnlinked: () => void }
  >();

  state: StateName = "NULL";
  desiredState: DesiredState = "stopped";
  playingSince: number | null = null;
  duration: number | null | undefined = undefined;
  lastError: PipelineError | null = null;
  errors = 0;
  warnings = 0;
  /** An error was already recorded since the last start. */
  #runFailed = false;
  /** Whether its last start found it live (a live source: no preroll, no seeking). */
  #live = false;
  #deleted = false;
  /** A delete is stopping it while the store removes its row (leave): its state changes are not told. */
  #leaving = false;
  /**
   * We are taking it to NULL (a stop, a delete, the end of a run): an error an element posts while
   * it shuts down is told as a warning, not as the run's error, and an EOS is dropped (a bus round
   * can come in the middle, and #toNull reads the bus once NULL is reached, then flushes it).
   * rtspsrc 1.22, for one, can fail its own PAUSE as the stop cuts its connection ("Could not send
   * message. (Received end-of-file)"); a filesink that cannot write its last bytes says so as it
   * closes.
   */
  #stopping = false;
  /**
   * A call GStreamer did not take in time and may still take (#untakenCall): a seek or end of
   * stream waiting for the source's stream lock, which a streaming thread blocked downstream
   * holds; or a state change an element blocks in (`stateChange`), holding the state lock.
   */
  #untaken: UntakenCall | null = null;
  /**
   * A state change a stop cut short while GStreamer made it (#untakenCall): the stop's way to
   * NULL waits for it first, then keeps it as #untaken if it has not returned by then.
   */
  #cutChange: { what: string; done: Promise<void> } | null = null;
  #released: Promise<void> | null = null;
  /** Told when a stop, delete or shutdown is asked; each operation keeps the one of its request. */
  #stopSignal = new StopSignal();
  /**
   * Client wishes (start, pause, stop) so far, and the one the current run enacts: when a run
   * fails or ends, a wish made since it began stands (its change is queued and enacts it), rather
   * than the "stopped" or the restart the end would bring.
   */
  #wishes = 0;
  #runWish = 0;
  /** Runs begun so far, and the last one an error or end of stream ended (its stop may be queued). */
  #runs = 0;
  #endedRun = -1;
  /** Tail of the operation queue: state changes and the final dispose run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Operations queued or running (see #serial's `now`). */
  #operations = 0;
  /**
   * Events from before the registry announced it (a create that also starts it), kept until
   * then: no client hears of a pipeline before its pipelineCreated.
   */
  #unannounced: PipelineEvent[] | null;

  constructor(init: PipelineInit, host: PipelineHost) {
    this.id = init.id;
    this.kind = init.kind;
    this.definition = init.definition;
    this.createdAt = init.createdAt;
    this.extraStats = init.extraStats;
    this.#built = init.built;
    this.#host = host;
    this.#unannounced = init.unannounced ? [] : null;
    this.#supervisor = new Supervisor(init.definition.restart ?? "never", {
      wanted: () => !this.#deleted && !this.#leaving && this.desiredState !== "stopped",
      restart: () => {
        console.log(`Restarting pipeline '${this.id}' (restart ${this.restarts})`);
        // A failed attempt schedules the next one itself.
        this.#attemptStart().catch(() => {});
      },
      scheduled: (attempt, delayMs, reason) =>
        this.#emit({
          type: "pipelineRestarting",
          payload: { id: this.id, attempt, delayMs, reason },
        }),
    });
    this.#watchDynamicLinks();
  }

  get gst() {
    return this.#built.pipeline;
  }

  #emit(event: PipelineEvent): void {
    if (this.#unannounced) this.#unannounced.push(event);
    else this.#host.emit(event);
  }

  /**
   * Its events go out from now on; those kept since it was built follow, but for the state
   * changes of a start made by its create: pipelineCreated already gives the state reached.
   */
  announce(): void {
    const kept = this.#unannounced ?? [];
    this.#unannounced = null;
    for (const event of kept) {
      if (event.type !== "pipelineStateChanged") this.#host.emit(event);
    }
  }

  get restart(): RestartPolicy {
    return this.#supervisor.policy;
  }

  get restarts(): number {
    return this.#supervisor.restarts;
  }

  get mounts() {
    return this.#built.mounts;
  }

  get deleted(): boolean {
    return this.#deleted;
  }

  info(): PipelineInfo {
    return {
      id: this.id,
      kind: this.kind,
      description: this.definition.description ?? "",
      state: this.state,
      desiredState: this.desiredState,
      restart: this.restart,
      restarts: this.restarts,
      createdAt: this.createdAt.toISOString(),
      lastError: this.lastError,
      ...this.#host.address,
    };
  }

  /** The pipeline with its elements (live state, properties that differ from defaults), links and launch text. */
  details(): PipelineDetails {
    const { layout, elements } = this.#built;
    return {
      ...this.info(),
      elements: layout.elements.map((spec) => {
        const name = spec.name!;
        if (spec.type === RTSP_SINK) {
          return { name, type: spec.type, state: this.state, properties: spec.properties ?? {} };
        }
        const { pointer } = elements.get(name)!;
        const { state, pending } = elementState(pointer);
        return {
          name,
          type: spec.type,
          state,
          ...(pending === "VOID_PENDING" ? {} : { pending }),
          properties: changedProperties(pointer, spec.type, name),
        };
      }),
      links: layout.links,
      launch: launchText(this.#built.layout),
    };
  }

  /** An element by name, or ELEMENT_NOT_FOUND listing the names there are. */
  element(name: string): BuiltElement {
    const element = this.#built.elements.get(name);
    if (element) return element;
    const names = [...this.#built.elements.keys()];
    throw new DomainError(
      "ELEMENT_NOT_FOUND",
      `Pipeline '${this.id}' has no element named '${name}'; it has: ${names.join(", ")}`,
      { id: this.id, element: name, elements: names },
    );
  }

  getElementProperty(element: string, property: string) {
    const target = { object: this.element(element).pointer, label: element };
    return { id: this.id, element, property, value: getProperty(target, property) };
  }

  setElementProperty(element: string, property: string, value: JsonValue) {
    const { pointer, type } = this.element(element);
    const target = { object: pointer, label: element };
    if (property === "name") {
      throw new DomainError(
        "INVALID_PROPERTY_VALUE",
        `The name of element '${element}' is fixed once the pipeline is made`,
        { id: this.id, element, property },
      );
    }
    const allowed = this.#host.policy.checkProperty(
      type,
      element,
      property,
      value,
      holdsText(pointer, property),
    );
    setProperty(target, property, allowed);
    return { id: this.id, element, property, value: getProperty(target, property) };
  }

  /**
   * Goes to PLAYING (or PAUSED); resolves with the state reached, confirmed by GStreamer. The
   * wish is stored in the same turn as the start begins, before anything the start's failure
   * stores, so a supervised pipeline whose start fails keeps trying.
   */
  start(target: "playing" | "paused"): Promise<Reached> {
    // Refused before the wish is stored: a refusal changes nothing.
    const refusal = this.#untakenRefusal(target === "playing" ? "a start" : "a pause");
    if (refusal) return Promise.reject(refusal);
    this.#supervisor.cancel();
    return this.#changeDesiredState(target, () => this.#attemptStart());
  }

  /**
   * The start made by a create that asks for `state`, before the pipeline is registered: the
   * desired state is stored with its row, and a failure is not tried again (the create fails
   * and leaves nothing).
   */
  startCreated(state: "playing" | "paused"): Promise<Reached> {
    this.desiredState = state;
    const target = state === "paused" ? "PAUSED" : "PLAYING";
    const stop = this.#stopSignal;
    return this.#serial(() => this.#run(target, this.#wishes, stop), true);
  }

  /** Goes to NULL; a stopped pipeline can be started again. */
  stop(): Promise<{ id: string; state: StateName }> {
    this.#supervisor.cancel();
    this.#askStop("a stop");
    return this.#changeDesiredState("stopped", () => this.#stopRun());
  }

  #stopRun(): Promise<{ id: string; state: StateName }> {
    return this.#serial(async () => {
      this.#drainBus();
      const reached = await this.#toNull();
      if (reached !== "NULL") {
        const blocked = this.#untaken?.stateChange ? this.#untaken.what : null;
        throw new DomainError(
          "STATE_CHANGE_FAILED",
          `Pipeline '${this.id}' could not go to NULL; it is ${reached}` +
            (blocked
              ? `: GStreamer's ${blocked.slice(4)} has not returned (an element is blocked in ` +
                "it). It goes to NULL once that returns"
              : ""),
          { id: this.id, state: reached, ...(blocked ? { blocked } : {}) },
        );
      }
      return { id: this.id, state: reached };
    });
  }

  /**
   * Sets the desired state and does `change`, while the store commits the new desired state on
   * its own thread; replies once both are done. When the commit fails, the pipeline goes back to
   * the desired state it had (the one still stored) and the request fails with STORAGE_FAILED.
   */
  async #changeDesiredState<T>(state: DesiredState, change: () => Promise<T>): Promise<T> {
    const wish = ++this.#wishes;
    const previous = this.desiredState;
    this.desiredState = state;
    // The change first: a start's first pool call goes out before the store's write runs here.
    const changing = change();
    const saving = previous === state ? null : this.#storeDesiredState(state);
    if (saving === null) return await changing;
    const [saved, changed] = await Promise.allSettled([saving, changing]);
    if (saved.status === "rejected") {
      if (this.desiredState === state && !this.#deleted) {
        this.desiredState = previous;
        const back = previous === "stopped" ? this.#stopRun() : this.#attemptStart();
        await back.catch((error) =>
          console.error(`Pipeline '${this.id}' could not go back to ${previous}:`, error)
        );
      }
      throw saved.reason;
    }
    if (changed.status === "rejected") {
      // Refused in the queue (a call GStreamer has not taken came first): a refusal changes nothing.
      const refused = changed.reason instanceof DomainError &&
        changed.reason.details?.untaken !== undefined;
      if (refused && this.#wishes === wish && this.desiredState === state && !this.#deleted) {
        await this.#setDesiredState(previous)?.catch((error) =>
          console.error(`Pipeline '${this.id}' could not store its desired state back:`, error)
        );
      }
      throw changed.reason;
    }
    return changed.value;
  }

  /** Ends the stream: sources stop, and the sinks' end of stream ends the run (pipelineEos). */
  sendEos(): Promise<{ id: string }> {
    const stop = this.#stopSignal;
    return this.#serial(async () => {
      const stopped = () =>
        new DomainError(
          "INVALID_STATE",
          `Pipeline '${this.id}' did not take the end of stream: ${stop.by} came first`,
          { id: this.id, state: this.state, stoppedBy: stop.by },
        );
      if (stop.asked) throw stopped();
      // Paused, nothing flows: GStreamer would hold the event (and this queue) until it plays.
      this.#requireRunning("sendEos", ["PLAYING"]);
      this.#requireNothingUntaken("sendEos");
      const taken = await this.#untakenCall("the end of stream", this.gst.sendEos(), stop);
      if (taken === "stopped") throw stopped();
      if (taken === "timed out") {
        throw new DomainError(
          "INVALID_STATE",
          `Pipeline '${this.id}' did not take the end of stream within ` +
            `${this.#host.startTimeoutMs} ms: its data is not flowing; GStreamer may still take ` +
            "it when data flows. Stop the pipeline to end it",
          { id: this.id, state: this.state, timedOut: true },
        );
      }
      if (!taken) {
        throw new DomainError(
          "INVALID_STATE",
          `Pipeline '${this.id}' did not take the end of stream`,
          { id: this.id, state: this.state },
        );
      }
      // The run is ending: a start or pause after this begins a new one.
      this.#endedRun = this.#runs;
      return { id: this.id };
    });
  }

  /** Moves playback to `position` ms at `rate` (negative plays backwards); flushing by default. */
  seek(position: number, rate = 1, flush = true) {
    const id = this.id;
    const stop = this.#stopSignal;
    return this.#serial(async () => {
      const stopped = () =>
        new DomainError(
          "SEEK_FAILED",
          `Pipeline '${id}' did not take the seek to ${position} ms: ${stop.by} came first`,
          { id, position, rate, stoppedBy: stop.by },
        );
      if (stop.asked) throw stopped();
      // A seek that does not flush waits for data to flow, which a paused pipeline never gives.
      this.#requireRunning(flush ? "seek" : "seek without flush", flush ? undefined : ["PLAYING"]);
      // GStreamer takes a seek on a live pipeline and then stalls it: refuse instead.
      if (this.#live) {
        throw new DomainError(
          "SEEK_FAILED",
          `Pipeline '${id}' is live (a live source sets its pace), so it cannot seek`,
          { id, position, rate, live: true },
        );
      }
      if (this.#untaken) {
        throw new DomainError(
          "SEEK_FAILED",
          `Pipeline '${id}' has not taken ${this.#untaken.what} yet (${this.#untaken.why}); ` +
            "seek again once it has, or stop the pipeline",
          { id, position, rate, untaken: this.#untaken.what },
        );
      }
      const taken = await this.#untakenCall(
        `the seek to ${position} ms`,
        this.gst.seek(position, rate, flush),
        stop,
      );
      if (taken === "stopped") throw stopped();
      if (taken === "timed out") {
        throw new DomainError(
          "SEEK_FAILED",
          `Pipeline '${id}' did not take the seek to ${position} ms within ` +
            `${this.#host.startTimeoutMs} ms: its data is not flowing` +
            (flush ? "" : " (a seek without flush waits for the next buffer)") +
            "; GStreamer may still take it when data flows. Stop the pipeline to end it",
          { id, position, rate, timedOut: true },
        );
      }
      if (!taken) {
        throw new DomainError(
          "SEEK_FAILED",
          `Pipeline '${id}' could not seek to ${position} ms at rate ${rate}: ` +
            "its elements refused (some formats and sources cannot seek)",
          { id, position, rate },
        );
      }
      return { id, position, rate };
    });
  }

  /** The pipeline as a Graphviz DOT graph. */
  async graph(): Promise<{ id: string; dot: string }> {
    return { id: this.id, dot: await this.gst.dot() };
  }

  /** Ends the run with an error found outside GStreamer (bytes that are not the declared format). */
  fail(element: string, message: string): void {
    this.#handle({ kind: "error", source: element, message, debug: null });
  }

  /** Pulls the waiting bus messages and turns them into events; never waits. */
  drainBus(): void {
    this.#drainBus();
  }

  readonly servedRate = new ByteRate();

  /** Bytes its RTSP relays have sent (what it serves), or null when it serves no path. */
  servedBytes(): number | null {
    if (this.mounts.size === 0) return null;
    let bytes = 0;
    for (const { relays } of this.mounts.values()) {
      for (const relay of relays) {
        bytes += Number(getProperty({ object: relay.udpsink, label: "relay" }, "bytes-served"));
      }
    }
    return bytes;
  }

  /** Its stats now; `times`: what this round's queries found (undefined: not asked). */
  stats(now: number, viewers: Viewers | undefined, times: QueriedTimes | undefined): PipelineStats {
    return collectStats(this, now, viewers, times);
  }

  /**
   * A delete's first step: the run stops (to NULL) while `removal` takes its row out of the store,
   * so that the pipeline's threads are not kept busy for the length of a disk sync; release frees
   * it after. No state change is told: a deleted pipeline's last event is pipelineDeleted. When
   * the removal fails, the delete fails and leaves the pipeline as it was: it says that it
   * stopped, and goes back to its desired state.
   */
  async leave(removal: Promise<void>): Promise<void> {
    this.#supervisor.cancel();
    this.#askStop("a delete");
    const before = this.state;
    this.#leaving = true;
    const stopping = this.#serial(() => this.#toNull());
    const [removed] = await Promise.allSettled([removal, stopping]);
    if (removed.status === "fulfilled") return;
    this.#leaving = false;
    if (this.#deleted) throw removed.reason;
    if (this.state !== before) {
      this.#emit({
        type: "pipelineStateChanged",
        payload: { id: this.id, old: before, new: this.state },
      });
    }
    if (this.desiredState !== "stopped") {
      await this.#attemptStart().catch((error) =>
        console.error(`Pipeline '${this.id}' could not go back to ${this.desiredState}:`, error)
      );
    }
    throw removed.reason;
  }

  /** What the store keeps of it, or sets again after a restore. */
  restoreDesiredState(state: DesiredState): Promise<Reached> | null {
    if (state === "stopped") return null;
    this.desiredState = state;
    return this.#attemptStart();
  }

  /**
   * Stops and frees it (the pipeline leaves the registry first). Queued behind any operation
   * under way, and the last one: nothing queued after can see it freed.
   */
  release(by = "a delete"): Promise<void> {
    // Once: a second release (a delete racing shutdown or an eviction) would free it twice.
    this.#released ??= (() => {
      this.#supervisor.cancel();
      this.#askStop(by);
      for (const unwatch of this.#unwatch) unwatch();
      this.#host.mounts.release(this.mounts);
      this.#deleted = true;
      return this.#serial(async () => {
        await this.#endUntaken();
        const blocked = this.#untaken;
        if (blocked?.stateChange) {
          // Freed once GStreamer's change returns (the call holds its own reference meanwhile):
          // the delete, or the shutdown, does not wait for an element that may never let go.
          console.warn(
            `Pipeline '${this.id}': ${blocked.what} has not returned (${blocked.why}); ` +
              "it is freed once it does",
          );
          // Nothing reads its bus any more: a message left there would wake the bus watch.
          this.gst.flushBusAtNull();
          void blocked.done.then(() => this.gst.dispose()).catch((error) =>
            console.error(`Pipeline '${this.id}' could not be freed:`, errorMessage(error))
          );
          return;
        }
        await this.gst.dispose();
      });
    })();
    return this.#released;
  }

  #requireRunning(what: string, states: StateName[] = ["PLAYING", "PAUSED"]): void {
    if (!states.includes(this.state)) {
      throw new DomainError(
        "INVALID_STATE",
        `Pipeline '${this.id}' is ${this.state}: ${what} needs it ${states.join(" or ")}`,
        { id: this.id, state: this.state },
      );
    }
  }

  /** One start; when it fails, a supervised pipeline is scheduled to try again. */
  async #attemptStart(): Promise<Reached> {
    const wish = this.#wishes;
    const stop = this.#stopSignal;
    try {
      const target = this.desiredState === "paused" ? "PAUSED" : "PLAYING";
      return await this.#serial(() => this.#run(target, wish, stop), true);
    } catch (error) {
      if (this.#deleted || this.desiredState === "stopped" || stop.asked) throw error;
      // A wish made since (a pause, another start) stands: its own change, queued behind this
      // one, decides what is stored and whether to try again.
      if (this.#wishes !== wish) throw error;
      // Refused, not failed (an untaken call came first in the queue): the run goes on as it was.
      if (error instanceof DomainError && error.details?.untaken !== undefined) throw error;
      if (!this.#supervisor.restartsAfter("start failed")) {
        // On disk before the failure is told: a start the client saw fail never runs at a reboot.
        await this.#setDesiredState("stopped")?.catch(() => {});
        throw error;
      }
      const delayMs = this.#supervisor.schedule("start failed", this.playingSince);
      if (error instanceof DomainError) {
        const message = error.message.replace(/\.$/, "");
        throw new DomainError(error.code, `${message}; trying again in ${delayMs} ms`, {
          ...error.details,
          restartInMs: delayMs,
        });
      }
      throw error;
    }
  }

  /**
   * Goes to PLAYING or PAUSED, enacting `wish`, and waits (off the main thread) for GStreamer to
   * get there.
   */
  async #run(target: "PLAYING" | "PAUSED", wish: number, stop: StopSignal): Promise<Reached> {
    const { id } = this;
    const startedAt = performance.now();
    // Asked before a stop that came while it waited in the queue: it changes nothing.
    if (stop.asked) throw this.#stoppedFirst(stop, target);
    // An end or error already posted ends the run this would resume: told first (#runEnded sees
    // this wish as one made since), so that the run is begun again below.
    this.#drainBus();
    // A seek or end of stream sent to the pipeline holds its state changes until taken. The wish
    // refused is settled: it changes nothing, and a run's end since is the run's own.
    const refusal = this.#untakenRefusal(target === "PLAYING" ? "a start" : "a pause");
    if (refusal) {
      if (wish === this.#wishes) this.#runWish = wish;
      throw refusal;
    }
    this.#runWish = wish;
    const running = this.state === "PLAYING" || this.state === "PAUSED";
    // A run an error or end of stream ended, whose stop is queued behind this: a new run instead.
    if (running && this.#endedRun === this.#runs) await this.#toNull();
    const resuming = this.state === "PLAYING" || this.state === "PAUSED";
    // Timed only when it changes something: a start of what already plays would read as speed.
    const changing = this.state !== target;
    if (!resuming) {
      this.#runs++;
      this.#runFailed = false;
      // Sometimes pads are removed when a pipeline stops and appear again on the next run.
      for (const link of this.#built.dynamicLinks) {
        link.linked = false;
        link.refused = [];
      }
      for (const source of [...this.#latePadWaits.keys()]) this.#stopLatePadWait(source);
      // Awaited only when there are relays: a start's first pool call goes out in its first turn.
      const relays = [...this.mounts.values()].flatMap((mount) => mount.relays);
      if (relays.length > 0) await this.#assignRelayPorts(relays);
      // Through PAUSED first: only that step tells a live pipeline (NO_PREROLL), which cannot seek.
      // A relay that waits to preroll would hold a live pipeline short of PLAYING (timeRelays).
      for (const mount of this.mounts.values()) timeRelays(mount.relays, true);
      const paused = await this.#changeState("PAUSED", target, stop);
      if (paused === StateChange.FAILURE) return this.#failStart(target);
      this.#live = paused === StateChange.NO_PREROLL;
      for (const mount of this.mounts.values()) timeRelays(mount.relays, this.#live);
      this.#holdRelays(target);
    }
    const result = await this.#changeState(target, target, stop);
    let reached: { state: StateName; pending: StateName };
    if (result === StateChange.ASYNC) {
      // A stop does not wait for a start that cannot finish (a sink that never prerolls): the
      // pipeline goes to NULL beside the wait, which then returns (its call holds a reference).
      const waiting = this.gst.waitForState(this.#host.startTimeoutMs);
      const waited = await Promise.race([waiting, stop.promise]);
      if (waited === "stopped") {
        waiting.catch(() => {});
        await this.#toNull();
        throw this.#stoppedFirst(stop, target);
      }
      if (waited.result === StateChange.FAILURE) return this.#failStart(target);
      reached = waited;
    } else if (result === StateChange.FAILURE) {
      return this.#failStart(target);
    } else {
      reached = this.gst.currentState();
    }
    this.#drainBus();
    // An error while it started (a bus error, a link that failed when its pad appeared) ends it.
    if (this.#runFailed) return this.#failStart(target);
    this.#setState(reached.state);
    if (reached.pending !== "VOID_PENDING") {
      return { id, state: reached.state, pending: reached.pending };
    }
    if (changing) this.#host.observePhase("start", performance.now() - startedAt);
    return { id, state: reached.state };
  }

  /**
   * Asks GStreamer for `state` on the way to `target`, waiting at most the state change timeout:
   * an element can block in the change itself (a source connecting to a server that does not
   * answer, a file that does not open), holding the pipeline's state lock, and a stop must not
   * wait behind it for ever. A change not back by then is kept as #untaken, and the start fails;
   * once it returns, the pipeline goes to NULL and its restart policy, if any, starts it again.
   */
  async #changeState(
    state: "PAUSED" | "PLAYING",
    target: StateName,
    stop: StopSignal,
  ): Promise<number> {
    // Asked while the run got ready (relay ports, the end of a run before): no change begins.
    if (stop.asked) throw this.#stoppedFirst(stop, target);
    const change = this.gst.setState(State[state]);
    const result = await this.#untakenCall(`the change to ${state}`, change, stop, true);
    if (result !== "timed out" && result !== "stopped") return result;
    // A stop's own way to NULL waits for it (#toNull).
    if (result === "stopped") throw this.#stoppedFirst(stop, target);
    this.#toNullOnceReturned();
    throw new DomainError(
      "STATE_CHANGE_FAILED",
      `Pipeline '${this.id}' could not go to ${target}: GStreamer's change to ${state} has not ` +
        `returned within ${this.#host.stateChangeTimeoutMs} ms (an element is blocked in it: a server ` +
        "that does not answer, a file or device that does not open). It goes to NULL once the " +
        "change returns; stop or delete it meanwhile",
      { id: this.id, blocked: `the change to ${state}` },
    );
  }

  /**
   * Brings the pipeline to NULL once the state change it is blocked in returns, then lets its
   * restart policy start it again (the starts it held up were refused). Queued in the
   * same turn as #untaken is cleared (their callbacks run one after the other): no start, refused
   * until then, can come in between and be stopped by it.
   */
  #toNullOnceReturned(): void {
    void this.#untaken?.done.then(async () => {
      if (this.#deleted) return;
      await this.#serial(() => this.#toNull()).catch(() => {});
      if (
        !this.#deleted && this.desiredState !== "stopped" &&
        this.#supervisor.restartsAfter("start failed")
      ) {
        this.#supervisor.schedule("start failed", null);
      }
    });
  }

  /** Every operation asked until now waits no longer for GStreamer (what each waits for: #run). */
  #askStop(by: string): void {
    this.#stopSignal.ask(by);
    this.#stopSignal = new StopSignal();
  }

  #stoppedFirst(stop: StopSignal, target: StateName): DomainError {
    return new DomainError(
      "STATE_CHANGE_FAILED",
      `Pipeline '${this.id}' did not reach ${target}: ${stop.by} came first`,
      { id: this.id, stoppedBy: stop.by },
    );
  }

  async #failStart(target: StateName): Promise<never> {
    this.#drainBus();
    const cause = this.lastError;
    await this.#toNull();
    throw new DomainError(
      "STATE_CHANGE_FAILED",
      `Pipeline '${this.id}' could not go to ${target}` +
        (cause ? `: ${cause.element}: ${cause.message}` : ""),
      { id: this.id, error: cause },
    );
  }

  /**
   * Goes to NULL and records the state GStreamer reached: NULL, or, when the change fails, the
   * state it stayed in (never NULL when it is not). Only ever run from the queue.
   */
  async #toNull(): Promise<StateName> {
    this.#stopping = true;
    const startedAt = performance.now();
    const changing = this.state !== "NULL";
    try {
      await this.#endUntaken();
      // GStreamer's state lock is held by the change: a change to NULL would wait for it too. The
      // pipeline goes to NULL once it returns (#changeState).
      if (this.#untaken?.stateChange) {
        this.#toNullOnceReturned();
        const { state } = this.gst.currentState();
        this.#setState(state);
        return state;
      }
      const failed = await this.gst.setState(State.NULL) === StateChange.FAILURE;
      // What the elements said on the way down, which no bus round may have seen; its state
      // changes are stale (the state reached is recorded below).
      this.#drainBus(busMessageTypes & ~MessageType.STATE_CHANGED);
      if (!failed) this.gst.flushBusAtNull();
      const state = failed ? this.gst.currentState().state : "NULL";
      this.#setState(state);
      if (state === "NULL" && changing) {
        this.#host.observePhase("stop", performance.now() - startedAt);
      }
      return state;
    } finally {
      this.#stopping = false;
    }
  }

  /**
   * Waits for `call` (a seek, an end of stream) at most the start timeout: GStreamer takes it
   * under the source's stream lock, which a streaming thread blocked downstream (a sink waiting on
   * the clock for a far timestamp) holds, and this pipeline's queue (its stop, its delete) must
   * not wait behind it for ever. A call not taken by then is kept as #untaken until it returns.
   */
  async #untakenCall<T>(
    what: string,
    call: Promise<T>,
    stop: StopSignal,
    stateChange = false,
  ): Promise<T | "timed out" | "stopped"> {
    const timeoutMs = stateChange ? this.#host.stateChangeTimeoutMs : this.#host.startTimeoutMs;
    const taken = await Promise.race([resolvesWithin(call, timeoutMs), stop.promise]);
    if (taken !== "timed out" && taken !== "stopped") return taken;
    const done = call.then(() => {}, () => {});
    if (stateChange && taken === "stopped") {
      // Not known to be blocked: the stop waits for it (#endUntaken), and a start asked after the
      // stop queues behind it as usual.
      const cut = { what, done };
      this.#cutChange = cut;
      void done.then(() => {
        if (this.#cutChange === cut) this.#cutChange = null;
      });
      return taken;
    }
    this.#keepUntaken({
      what,
      why: stateChange ? "an element is blocked in it" : "its data is not flowing",
      stateChange,
      done,
      waitedOut: stateChange,
    });
    return taken;
  }

  /** Keeps `untaken` until its call returns (starts, pauses, seeks and ends are refused meanwhile). */
  #keepUntaken(untaken: UntakenCall): void {
    this.#untaken = untaken;
    void untaken.done.then(() => {
      if (this.#untaken === untaken) this.#untaken = null;
    });
  }

  #requireNothingUntaken(request: string): void {
    const refusal = this.#untakenRefusal(request);
    if (refusal) throw refusal;
  }

  #untakenRefusal(request: string): DomainError | null {
    if (!this.#untaken) return null;
    return new DomainError(
      "INVALID_STATE",
      `Pipeline '${this.id}' has not taken ${this.#untaken.what} yet (${this.#untaken.why}): ` +
        `${request} would wait behind it. Stop the pipeline first`,
      { id: this.id, state: this.state, untaken: this.#untaken.what },
    );
  }

  /**
   * A call still waiting for the source's stream lock holds the state changes (an end of stream,
   * sent to the pipeline) or would race the way to NULL to the source's task (a seek restarts the
   * task as the source stops it): a flush from the sources frees the lock, and the call ends first.
   * A state change an element blocks in gets no flush (nothing flows) and one more wait at most.
   */
  async #endUntaken(): Promise<void> {
    const cut = this.#cutChange;
    if (cut && await resolvesWithin(cut.done, this.#host.startTimeoutMs) === "timed out") {
      this.#keepUntaken({
        ...cut,
        why: "an element is blocked in it",
        stateChange: true,
        waitedOut: true,
      });
    }
    const untaken = this.#untaken;
    if (!untaken || untaken.waitedOut) return;
    if (!untaken.stateChange) {
      await resolvesWithin(this.gst.flushStart().catch(() => {}), this.#host.startTimeoutMs);
    }
    await resolvesWithin(untaken.done, this.#host.startTimeoutMs);
  }

  /**
   * Records what the pipeline should be doing, and for client pipelines stores it: the promise
   * resolves once that is committed (null when there is nothing to store).
   */
  #setDesiredState(state: DesiredState): Promise<void> | null {
    if (this.desiredState === state) return null;
    this.desiredState = state;
    return this.#storeDesiredState(state);
  }

  /** Stores `state` as the desired state, for client pipelines; null when nothing is stored. */
  #storeDesiredState(state: DesiredState): Promise<void> | null {
    if (this.kind !== "pipeline" || this.#deleted) return null;
    return this.#host.storeWrite((store) => store.setDesiredState(this.id, state)) ?? null;
  }

  /** The same, when nothing waits for the commit; the store logs a write that fails. */
  #setDesiredStateLater(state: DesiredState): void {
    void this.#setDesiredState(state)?.catch(() => {});
  }

  /** A run ended by itself (error or EOS): restart it if its policy says so, else it stays stopped. */
  #runEnded(how: "error" | "eos"): void {
    // A wish made since the run began stands: its change, queued, enacts it (and may fail).
    if (this.#wishes !== this.#runWish) return;
    try {
      if (this.#supervisor.restartsAfter(how) && this.desiredState !== "stopped") {
        this.#supervisor.schedule(how === "error" ? "error" : "end of stream", this.playingSince);
      } else {
        this.#setDesiredStateLater("stopped");
      }
    } catch (error) {
      console.error(`Pipeline '${this.id}': ${errorMessage(error)}`);
    }
  }

  /**
   * Runs `operation` after the ones queued before it. With `now`, an operation that finds the
   * queue empty begins in the caller's turn, so that its first pool call goes out before whatever
   * the caller does next (a start's store write); only for operations whose opening steps may run
   * there.
   */
  #serial<T>(operation: () => Promise<T>, now = false): Promise<T> {
    const begin = now && this.#operations === 0;
    this.#operations++;
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const queued = this.#queue;
    this.#queue = done;
    const run = begin ? beginNow(operation) : queued.then(operation, operation);
    run.catch(() => {}).then(() => {
      this.#operations--;
      resolve();
    });
    return run;
  }

  #drainBus(types = busMessageTypes): void {
    if (this.#deleted) return;
    for (const message of this.gst.popMessages(types)) this.#handle(message);
  }

  #handle(message: BusMessage): void {
    const { id } = this;
    if (this.#stopping && message.kind === "eos") return;
    if (this.#stopping && message.kind === "error") {
      console.warn(`Pipeline '${id}': ${message.source} while it stopped: ${message.message}`);
      // After the error that ended the run, the rest are its echo (below).
      if (this.#runFailed) return;
      // Told, since it may be news (the last bytes a sink could not write), but as a warning: it
      // is not what ended the run, and starts no restart.
      message = { ...message, kind: "warning", message: `${message.message} (while it stopped)` };
    }
    switch (message.kind) {
      case "state-changed":
        this.#setState(message.new);
        break;
      case "duration-changed":
        this.duration = undefined;
        break;
      case "warning":
        this.warnings++;
        this.#emit({
          type: "pipelineWarning",
          payload: { id, element: message.source, message: message.message, debug: message.debug },
        });
        break;
      case "error":
        // rtspsrc's own error for a pad nothing took, while its late pad is awaited: the link that
        // never came is the cause.
        if (message.debug?.includes("reason not-linked")) this.#failLatePads(message.source);
        // The first error of a run is the cause; the ones that follow (flow errors upstream) are its echo.
        if (this.#runFailed) break;
        this.#runFailed = true;
        this.errors++;
        this.lastError = {
          element: message.source,
          message: message.message,
          debug: message.debug,
          time: new Date().toISOString(),
        };
        this.#emit({
          type: "pipelineError",
          payload: { id, element: message.source, message: message.message, debug: message.debug },
        });
        this.#endedRun = this.#runs;
        this.#stopAfterBusEvent();
        this.#runEnded("error");
        break;
      case "eos":
        // A failed run can still drain to EOS; the error already ended it.
        if (this.#runFailed) break;
        this.#emit({ type: "pipelineEos", payload: { id } });
        this.#endedRun = this.#runs;
        this.#stopAfterBusEvent();
        this.#runEnded("eos");
        break;
    }
  }

  /** An error or EOS ends the run: the pipeline goes to NULL (queued behind any operation under way). */
  #stopAfterBusEvent(): void {
    const run = this.#runs;
    void this.#serial(async () => {
      // A run begun since (a start queued before this stop) is not the one that ended.
      if (this.#deleted || this.state === "NULL" || this.#runs !== run) return;
      const reached = await this.#toNull();
      if (reached !== "NULL") {
        console.error(
          `Pipeline '${this.id}' could not go to NULL after its run ended; it is ${reached}`,
        );
      }
    }).catch((error) =>
      console.error(`Stopping pipeline '${this.id}' failed:`, errorMessage(error))
    );
  }

  #setState(state: StateName): void {
    if (this.#deleted || this.state === state) return;
    const old = this.state;
    this.state = state;
    if (state === "NULL" || state === "READY") {
      this.gst.forgetSinks();
      this.#host.mounts.unserve(this.mounts);
    }
    // Paused, its paths are there to say so (notPlayingCheck), whether or not it played before.
    if (state === "PLAYING" || state === "PAUSED") this.#host.mounts.serve(this.mounts);
    this.#holdRelays(state);
    // Known once data flows; asked again when the pipeline (re)starts or GStreamer says it changed.
    this.duration = undefined;
    if (state === "PLAYING") this.playingSince ??= performance.now();
    else this.playingSince = null;
    if (this.#leaving) return;
    this.#emit({ type: "pipelineStateChanged", payload: { id: this.id, old, new: state } });
  }

  /** Relays stay open with no reader while the pipeline is (or is going) PAUSED, or plays unlive. */
  #holdRelays(state: StateName): void {
    const held = state === "PAUSED" || (state === "PLAYING" && !this.#live);
    for (const mount of this.mounts.values()) holdRelaysOpen(mount, held, state === "PAUSED");
  }

  /** Each relay gets a free loopback port; run from the queue, so its elements stay alive. */
  async #assignRelayPorts(relays: Relay[]): Promise<void> {
    for (const relay of relays) {
      relay.port = await freeUdpPort();
      setProperty({ object: relay.udpsink, label: "relay" }, "port", relay.port);
    }
  }

  /** Makes each waiting link when its source's pad appears; reports the ones that never can. */
  #watchDynamicLinks(): void {
    const bySource = Map.groupBy(this.#built.dynamicLinks, (link) => link.source.pointer);
    for (const [source, links] of bySource) {
      const sourceName = links[0].source.name;
      const fail = (message: string) =>
        this.#handle({ kind: "error", source: sourceName, message, debug: null });
      const failUnlinked = () => {
        for (const link of links) {
          if (link.linked) continue;
          fail(
            `No pad of '${linkEndText(link.source)}' could link to '${linkEndText(link.sink)}'` +
              (link.refused.length > 0
                ? `; pads that appeared: ${link.refused.join(", ")}`
                : "; no matching pad appeared"),
          );
        }
      };
      const padsMayComeLate = LATE_PAD_ELEMENTS.has(
        this.#built.elements.get(sourceName)?.type ?? "",
      );
      const unwatchPads = watchDynamicPads(source, {
        padAdded: (_pad, padName) => {
          linkAppearedPad(source, padName, links, fail);
          if (links.every((link) => link.linked)) this.#stopLatePadWait(sourceName);
        },
        noMorePads: () => {
          if (!padsMayComeLate || links.every((link) => link.linked)) return failUnlinked();
          const timer = setTimeout(() => this.#failLatePads(sourceName), LATE_PAD_GRACE_MS);
          this.#latePadWaits.set(sourceName, { timer, failUnlinked });
        },
      });
      this.#unwatch.push(() => {
        this.#stopLatePadWait(sourceName);
        unwatchPads();
      });
    }
  }

  /** Fails the links still waiting on `source`'s late pad, now (the wait is over). */
  #failLatePads(source: string): void {
    const wait = this.#latePadWaits.get(source);
    this.#stopLatePadWait(source);
    wait?.failUnlinked();
  }

  #stopLatePadWait(source: string): void {
    clearTimeout(this.#latePadWaits.get(source)?.timer);
    this.#latePadWaits.delete(source);
  }
}

/** Links a pad that appeared to the first waiting link it fits (called while its streaming thread waits). */
function linkAppearedPad(
  source: Pointer,
  padName: string,
  links: BuiltPipeline["dynamicLinks"],
  fail: (message: string) => void,
): void {
  for (const link of links) {
    if (link.linked || (link.source.pad !== null && link.source.pad !== padName)) continue;
    if (linkPads(source, padName, link.sink.pointer, link.sink.pad)) {
      link.linked = true;
      return;
    }
    const caps = padCaps(source, padName, "current") ?? padCaps(source, padName, "possible") ??
      "unknown caps";
    link.refused.push(`${padName} (${caps})`);
    if (link.source.pad !== null) {
      fail(
        `Pad '${link.source.name}.${padName}' appeared but could not link to '${
          linkEndText(link.sink)
        }': it gives ${caps}`,
      );
    }
  }
}

/** The layout as gst-launch text, or null when it cannot be written as one (a property holds a list or an object). */
function launchText(layout: BuiltPipeline["layout"]): string | null {
  try {
    return formatLaunch(layout);
  } catch {
    return null;
  }
}

/** Calls `operation` now; a synchronous throw becomes its rejection, so the queue still moves on. */
function beginNow<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return operation();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A call GStreamer has not taken or returned from yet (ManagedPipeline.#untaken). */
interface UntakenCall {
  what: string;
  why: string;
  stateChange: boolean;
  done: Promise<void>;
  /** A way to NULL waited for it in vain already: the next ones do not wait again. */
  waitedOut: boolean;
}

/** Told once, when a stop, delete or shutdown is asked: the operations asked before it end. */
class StopSignal {
  #asked = false;
  #by = "";
  readonly #told = Promise.withResolvers<"stopped">();

  get asked(): boolean {
    return this.#asked;
  }

  /** What was asked ("a stop", "a delete"). */
  get by(): string {
    return this.#by;
  }

  get promise(): Promise<"stopped"> {
    return this.#told.promise;
  }

  ask(by: string): void {
    this.#asked = true;
    this.#by = by;
    this.#told.resolve("stopped");
  }
}
