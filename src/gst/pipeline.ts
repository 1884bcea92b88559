/**
 * A GstPipeline we own: elements added to it, links, state changes off the
 * main thread, bus messages pulled without waiting, and the counters
 * GStreamer already keeps (position, duration, sinks' stats).
 */
import { Fundamental, GValue, GVALUE_SIZE } from "./gvalue.ts";
import {
  cstr,
  gtype,
  lib,
  type Pointer,
  pointerSlot,
  readCString,
  slotPointer,
  takeCString,
} from "./native.ts";
import {
  G_IO_IN,
  instanceType,
  Layout,
  readI32,
  readPointer,
  takeGErrorMessage,
} from "./layout.ts";
import { findProperty } from "./property.ts";
import { busDescriptor, unwatchBus, watchBus } from "./bus_watch.ts";
import { trimMemorySoon } from "./memory.ts";
import { FORMAT_TIME, NANOSECONDS_PER_MS, type QueriedTimes, queryTimes } from "./time_queries.ts";
import {
  baseSinkCounters,
  elementState,
  isBaseSink,
  type StateName,
  stateNames,
  structureCounters,
} from "./element.ts";

// The state names live with elements (element.ts); pipelines share them.
export { elementState, type StateName, stateNames };
export const State = { NULL: 1, READY: 2, PAUSED: 3, PLAYING: 4 } as const;

const SeekFlag = {
  FLUSH: 1 << 0,
  ACCURATE: 1 << 1,
  KEY_UNIT: 1 << 2,
  SNAP_BEFORE: 1 << 5,
} as const;
const SeekType = { NONE: 0, SET: 1 } as const;
/** GST_DEBUG_GRAPH_SHOW_ALL: media types, caps, non-default parameters and states. */
const DEBUG_GRAPH_SHOW_ALL = 15;

export const StateChange = { FAILURE: 0, SUCCESS: 1, ASYNC: 2, NO_PREROLL: 3 } as const;

export const MessageType = {
  EOS: 1 << 0,
  ERROR: 1 << 1,
  WARNING: 1 << 2,
  STATE_CHANGED: 1 << 6,
  DURATION_CHANGED: 1 << 18,
} as const;

export type BusMessage =
  | { kind: "eos" | "duration-changed"; source: string }
  | { kind: "error" | "warning"; source: string; message: string; debug: string | null }
  | { kind: "state-changed"; old: StateName; new: StateName; pending: StateName };

export interface SinkStats {
  element: string;
  rendered: number;
  dropped: number;
}

const statsName = cstr("stats");

/** A sink whose counters stats rounds read: `baseSink` ones through gst_base_sink_get_stats. */
interface Sink {
  element: Pointer;
  name: string;
  baseSink: boolean;
}
const sinkFields = { rendered: cstr("rendered"), dropped: cstr("dropped") };

let gstElementType: bigint | undefined;
let gstPadType: bigint | undefined;
let gstStructureType: bigint | undefined;
const elementType = () => gstElementType ??= gtype(lib().gst.gst_element_get_type());
const padType = () => gstPadType ??= gtype(lib().gst.gst_pad_get_type());

/**
 * Every object a GstIterator gives (elements, pads: `type`), each with a reference of the
 * caller's; started over when the iterator resyncs (the bin changed meanwhile). Frees the iterator.
 */
function iterated(iterator: Pointer | null, type: bigint): Pointer[] {
  if (iterator === null) return [];
  const { gst, gobject } = lib();
  const item = new GValue(type);
  let found: Pointer[] = [];
  try {
    for (;;) {
      const result = gst.gst_iterator_next(iterator, item.buffer);
      if (result === 1) { // GST_ITERATOR_OK
        found.push(gst.gst_object_ref(gobject.g_value_get_object(item.buffer)!)!);
        gobject.g_value_reset(item.buffer);
      } else if (result === 2) { // GST_ITERATOR_RESYNC
        for (const object of found) gst.gst_object_unref(object);
        found = [];
        gst.gst_iterator_resync(iterator);
      } else {
        return found;
      }
    }
  } finally {
    item.unset();
    gst.gst_iterator_free(iterator);
  }
}

/** Reused by withMessages: one GPollFD per pipeline polled. */
let pollFds = new Uint8Array(0);

/**
 * The pipelines whose bus holds a message, found with one g_poll that never waits (rather than
 * a pop per pipeline: most buses are empty most of the time). A bus's descriptor is open while
 * its Pipeline is not disposed, which is the caller's to ensure for every pipeline it passes.
 */
export function withMessages<T>(items: readonly T[], pipelineOf: (item: T) => Pipeline): T[] {
  const { size, fd, events, revents } = Layout.GPollFD;
  if (pollFds.length < items.length * size) pollFds = new Uint8Array(items.length * size * 2);
  const view = new DataView(pollFds.buffer);
  items.forEach((item, i) => {
    view.setInt32(i * size + fd, pipelineOf(item).busFd, true);
    view.setUint16(i * size + events, G_IO_IN, true);
    view.setUint16(i * size + revents, 0, true);
  });
  const ready = lib().glib.g_poll(pollFds, items.length, 0);
  if (ready < 0) return [...items]; // interrupted: look at every bus
  if (ready === 0) return [];
  return items.filter((_, i) => view.getUint16(i * size + revents, true) !== 0);
}

export class Pipeline {
  readonly #pipeline: Pointer;
  readonly #bus: Pointer;
  /** The bus's descriptor: readable while a message waits (withMessages). */
  readonly busFd: number;
  #disposed = false;

  constructor(readonly name: string) {
    const { gst } = lib();
    const pipeline = gst.gst_pipeline_new(cstr(name));
    if (pipeline === null) throw new Error(`gst_pipeline_new('${name}') failed`);
    this.#pipeline = gst.gst_object_ref_sink(pipeline)!;
    // GStreamer would flush the bus as the pipeline reaches NULL, dropping what its elements said
    // on the way down (a sink that failed to write its last bytes): the owner reads the bus once
    // NULL is reached, then flushes it (flushBusAtNull).
    gst.gst_pipeline_set_auto_flush_bus(this.#pipeline, 0);
    this.#bus = gst.gst_pipeline_get_bus(this.#pipeline)!;
    this.busFd = busDescriptor(this.#bus);
    watchBus(this.busFd);
  }

  get pointer(): Pointer {
    return this.#pipeline;
  }

  /** Makes an element and adds it to the pipeline, which then owns it; null when the factory is missing. */
  addElement(factory: string, name: string): Pointer | null {
    const { gst } = lib();
    const element = gst.gst_element_factory_make(cstr(factory), cstr(name));
    if (element === null) return null;
    if (gst.gst_bin_add(this.#pipeline, element) === 0) {
      // Refused for its name; gst_bin_add has freed it (it takes the floating reference either way).
      throw new Error(`The pipeline already holds an element named '${name}'`);
    }
    return element;
  }

  /**
   * Makes `factory` again with construct-only properties (they can only be given at that moment)
   * in place of `element`, which leaves the pipeline; null when it cannot be made.
   */
  remakeElement(
    element: Pointer,
    factory: string,
    name: string,
    properties: { name: string; value: GValue }[],
  ): Pointer | null {
    const { gst } = lib();
    const nameValue = new GValue(Fundamental.STRING);
    lib().gobject.g_value_set_string(nameValue.buffer, cstr(name));
    const all = [{ name: "name", value: nameValue }, ...properties];
    const names = all.map((p) => cstr(p.name));
    const nameArray = new BigUint64Array(
      names.map((n) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(n)))),
    );
    // GValues side by side, as C lays out an array of them; the function copies what it needs.
    const values = new Uint8Array(all.length * GVALUE_SIZE);
    all.forEach((p, i) => values.set(p.value.buffer, i * GVALUE_SIZE));
    try {
      gst.gst_bin_remove(this.#pipeline, element);
      const made = gst.gst_element_factory_make_with_properties(
        cstr(factory),
        all.length,
        new Uint8Array(nameArray.buffer),
        values,
      );
      if (made === null) return null;
      // Refused, gst_bin_add has freed it (it takes the floating reference either way).
      if (gst.gst_bin_add(this.#pipeline, made) === 0) return null;
      return made;
    } finally {
      nameValue.unset();
    }
  }

  setState(state: number): Promise<number> {
    return this.#withRef(() => lib().gst.gst_element_set_state_async(this.#pipeline, state));
  }

  /** Waits (off the main thread) up to `timeoutMs` for a pending async change to finish. */
  async waitForState(
    timeoutMs: number,
  ): Promise<{ result: number; state: StateName; pending: StateName }> {
    const state = new Int32Array(1);
    const pending = new Int32Array(1);
    const result = await this.#withRef(() =>
      lib().gst.gst_element_get_state_async(
        this.#pipeline,
        state,
        pending,
        BigInt(timeoutMs) * NANOSECONDS_PER_MS,
      )
    );
    return { result, state: stateNames[state[0]], pending: stateNames[pending[0]] };
  }

  /** The current and pending state, without waiting. */
  currentState(): { state: StateName; pending: StateName } {
    return elementState(this.#pipeline);
  }

  /**
   * Drops the bus's messages, and those posted until the pipeline leaves NULL again (going to
   * READY ends the flushing), as GStreamer's own flush at NULL would: a message left on the bus
   * holds its source, the pipeline itself among them, which would then never be freed.
   */
  flushBusAtNull(): void {
    lib().gst.gst_bus_set_flushing(this.#bus, 1);
  }

  /** Every waiting bus message of the given types, oldest first; never waits. */
  popMessages(types: number): BusMessage[] {
    const { gst } = lib();
    const messages: BusMessage[] = [];
    for (;;) {
      const message = gst.gst_bus_pop_filtered(this.#bus, types);
      if (message === null) return messages;
      try {
        const type = readI32(message, Layout.GstMessage.type);
        const source = readPointer(message, Layout.GstMessage.src);
        // Most messages are state changes of elements inside, which are dropped: name only the rest.
        const name = () =>
          source === null ? "" : takeCString(gst.gst_object_get_name(source)) ?? "";
        if (type === MessageType.STATE_CHANGED) {
          if (!Deno.UnsafePointer.equals(source, this.#pipeline)) continue;
          const old = new Int32Array(1);
          const now = new Int32Array(1);
          const pending = new Int32Array(1);
          gst.gst_message_parse_state_changed(message, old, now, pending);
          messages.push({
            kind: "state-changed",
            old: stateNames[old[0]],
            new: stateNames[now[0]],
            pending: stateNames[pending[0]],
          });
        } else if (type === MessageType.EOS) {
          messages.push({ kind: "eos", source: name() });
        } else if (type === MessageType.DURATION_CHANGED) {
          messages.push({ kind: "duration-changed", source: name() });
        } else if (type === MessageType.ERROR || type === MessageType.WARNING) {
          const error = pointerSlot();
          const debug = pointerSlot();
          const parse = type === MessageType.ERROR
            ? gst.gst_message_parse_error
            : gst.gst_message_parse_warning;
          parse(message, error, debug);
          messages.push({
            kind: type === MessageType.ERROR ? "error" : "warning",
            source: name(),
            message: takeGErrorMessage(slotPointer(error)) ?? "",
            debug: takeCString(slotPointer(debug)),
          });
        }
      } finally {
        gst.gst_message_unref(message);
      }
    }
  }

  /**
   * Position and, where `wantDuration` says so, duration in ms (null where unknown) of each
   * pipeline not disposed: one pool call for the positions and one for the durations
   * (time_queries.ts), each pipeline held by a reference of its own until they are back.
   */
  static async queryTimes(
    pipelines: readonly Pipeline[],
    wantDuration: (pipeline: Pipeline) => boolean,
  ): Promise<Map<Pipeline, QueriedTimes>> {
    const held = [...new Set(pipelines)].filter((pipeline) => !pipeline.#disposed);
    const durationsOf = held.filter(wantDuration);
    const [positions, durations] = await Promise.all([
      queryTimes(held.map((pipeline) => pipeline.#pipeline), "position"),
      queryTimes(durationsOf.map((pipeline) => pipeline.#pipeline), "duration"),
    ]);
    const duration = new Map(durationsOf.map((pipeline, i) => [pipeline, durations[i]]));
    return new Map(
      held.map((pipeline, i) => [
        pipeline,
        { position: positions[i], duration: duration.get(pipeline) ?? null },
      ]),
    );
  }

  /**
   * Rendered and dropped counts of every sink that keeps them (basesink's
   * `stats`), looking inside sink bins such as autovideosink. The sinks are
   * found once and kept (with a reference) until `forgetSinks`, which the
   * owner calls when the pipeline drops below PAUSED and sink bins may
   * replace their children.
   */
  sinkStats(): SinkStats[] {
    // Disposed: the pipeline may be freed already (a GStreamer CRITICAL, seen once in a bench).
    if (this.#disposed) return [];
    this.#sinks ??= this.#findSinks(this.#pipeline);
    return this.#sinks.map((sink) => this.#readSinkStats(sink));
  }

  forgetSinks(): void {
    for (const sink of this.#sinks ?? []) lib().gst.gst_object_unref(sink.element);
    this.#sinks = undefined;
  }

  #sinks: Sink[] | undefined;

  #findSinks(bin: Pointer): Sink[] {
    const { gst } = lib();
    gstStructureType ??= gtype(gst.gst_structure_get_type());
    const found: Sink[] = [];
    for (const element of iterated(gst.gst_bin_iterate_sinks(bin), elementType())) {
      const stats = findProperty(element, "stats");
      if (stats !== null && stats.valueType === gstStructureType) {
        found.push({
          element, // the reference iterated() took is the Sink's
          name: takeCString(gst.gst_object_get_name(element)) ?? "",
          baseSink: isBaseSink(element),
        });
        continue;
      }
      if (isBin(element)) found.push(...this.#findSinks(element));
      gst.gst_object_unref(element);
    }
    return found;
  }

  #readSinkStats(sink: Sink): SinkStats {
    const { rendered, dropped } = sink.baseSink
      ? baseSinkCounters(sink.element, sinkFields)
      : structureCounters(sink.element, statsName, sinkFields);
    return { element: sink.name, rendered, dropped };
  }

  /** Goes to NULL off the main thread, then releases the bus and the pipeline with its elements. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    unwatchBus(this.busFd);
    const { gst } = lib();
    // Stopped already (a delete stops it first): nothing to change, so no trip to the pool.
    const { state, pending } = this.currentState();
    const result = state === "NULL" && pending === "VOID_PENDING"
      ? StateChange.SUCCESS
      : await gst.gst_element_set_state_async(this.#pipeline, State.NULL);
    this.forgetSinks();
    this.flushBusAtNull();
    gst.gst_object_unref(this.#bus);
    if (result === StateChange.FAILURE) {
      // Freeing an element that is not in NULL crashes the process; keeping it is the lesser harm.
      console.error(
        `Pipeline '${this.name}' refused to go to NULL; it is left allocated rather than freed`,
      );
      return;
    }
    gst.gst_object_unref(this.#pipeline);
    trimMemorySoon();
  }

  /** Sends end-of-stream into the pipeline (its sources end, the sinks post EOS); off the main thread. */
  async sendEos(): Promise<boolean> {
    const { gst } = lib();
    // Made inside the call: send_event takes it, and nothing takes it when #withRef refuses.
    return await this.#withRef(() =>
      gst.gst_element_send_event_async(this.#pipeline, gst.gst_event_new_eos())
    ) !== 0;
  }

  /**
   * Asks the encoders upstream of `element` (one of this pipeline's, with a "src" pad) for a key
   * frame now, with its parameter sets: a new viewer then starts at once. Off the main thread.
   */
  async requestKeyFrame(element: Pointer): Promise<boolean> {
    const { gst } = lib();
    return await this.#withRef(async () => {
      // Into its src pad, as if from downstream: it travels up from there.
      const pad = gst.gst_element_get_static_pad(element, cstr("src"));
      if (pad === null) return false;
      try {
        return await gst.gst_pad_send_event_async(pad, forceKeyUnitEvent()) !== 0;
      } finally {
        gst.gst_object_unref(pad);
      }
    });
  }

  /**
   * Seeks in time: forward from `positionMs` to the end, or (negative rate) backward from it.
   * A flushing seek waits for the streaming threads, so it runs on a pool thread.
   */
  async seek(positionMs: number, rate: number, flush: boolean): Promise<boolean> {
    const position = BigInt(Math.round(positionMs)) * NANOSECONDS_PER_MS;
    const flags = (flush ? SeekFlag.FLUSH : 0) | SeekFlag.ACCURATE;
    // Forward, the stop is set to none (-1), not left as it was: a backward seek's stop would
    // stay, and a start past it fails GStreamer's own check (a CRITICAL from gst_segment_do_seek).
    const [startType, start, stopType, stop] = rate >= 0
      ? [SeekType.SET, position, SeekType.SET, -1n]
      : [SeekType.SET, 0n, SeekType.SET, position];
    const { gst } = lib();
    const seekEvent = () =>
      gst.gst_event_new_seek(rate, FORMAT_TIME, flags, startType, start, stopType, stop)!;
    if (flush) {
      // Made inside the call: send_event takes it, and nothing takes it when #withRef refuses.
      return await this.#withRef(() =>
        gst.gst_element_send_event_async(this.#pipeline, seekEvent())
      ) !== 0;
    }
    // Without flush, a source takes the seek only between two buffers, under its stream lock,
    // which a streaming thread blocked downstream (a sink waiting on the clock) holds. Sent to the
    // pipeline, the seek would hold the pipeline's state lock all that while, and a stop would wait
    // behind it; pushed up from each sink's pads, as GstBin does, it holds no element's lock.
    return await this.#withRef(async () => {
      const sinks = iterated(gst.gst_bin_iterate_sinks(this.#pipeline), elementType());
      const padsOfSinks = sinks.map((sink) =>
        iterated(gst.gst_element_iterate_sink_pads(sink), padType())
      );
      for (const sink of sinks) gst.gst_object_unref(sink);
      const pads = padsOfSinks.flat();
      // No sink, or a sink with no sink pad (playbin, which seeks for itself): to the pipeline.
      if (sinks.length === 0 || padsOfSinks.some((sinkPads) => sinkPads.length === 0)) {
        for (const pad of pads) gst.gst_object_unref(pad);
        return await gst.gst_element_send_event_async(this.#pipeline, seekEvent());
      }
      const event = seekEvent();
      try {
        // Taken when every sink's pad took it, as GstBin answers.
        let taken = true;
        for (const pad of pads) {
          const pushed = await gst.gst_pad_push_event_async(pad, gst.gst_mini_object_ref(event));
          taken &&= pushed !== 0;
        }
        return taken ? 1 : 0;
      } finally {
        gst.gst_mini_object_unref(event);
        for (const pad of pads) gst.gst_object_unref(pad);
      }
    }) !== 0;
  }

  /**
   * Flushes the pipeline from both ends: FLUSH_START pushed on every source's pads and sent into
   * every sink's, which waits for nothing and takes no element's lock. It frees a streaming thread
   * blocked downstream, and with it the source's stream lock, under which a seek or an end of
   * stream waits. From the sinks too, since an element between may drop the flush (a valve that
   * drops, with drop-mode forward-sticky-events, lets an end of stream through to a sink that then
   * holds it in PAUSED, but no flush: a stop waited for ever). Off the main thread; the pads stay
   * flushing until the pipeline next leaves NULL.
   */
  async flushStart(): Promise<void> {
    const { gst } = lib();
    await this.#withRef(async () => {
      const padsOf = (elements: Pointer[], iteratePads: (element: Pointer) => Pointer | null) => {
        const pads = elements.flatMap((element) => iterated(iteratePads(element), padType()));
        for (const element of elements) gst.gst_object_unref(element);
        return pads;
      };
      const sourcePads = padsOf(
        iterated(gst.gst_bin_iterate_sources(this.#pipeline), elementType()),
        (source) => gst.gst_element_iterate_src_pads(source),
      );
      const sinkPads = padsOf(
        iterated(gst.gst_bin_iterate_sinks(this.#pipeline), elementType()),
        (sink) => gst.gst_element_iterate_sink_pads(sink),
      );
      try {
        for (const pad of sourcePads) {
          await gst.gst_pad_push_event_async(pad, gst.gst_event_new_flush_start());
        }
        for (const pad of sinkPads) {
          await gst.gst_pad_send_event_async(pad, gst.gst_event_new_flush_start());
        }
      } finally {
        for (const pad of [...sourcePads, ...sinkPads]) gst.gst_object_unref(pad);
      }
    });
  }

  /**
   * Cuts the stream of `element` (one of this pipeline's sources) to `startMs`..`stopMs` (null: to
   * its end), starting at the key frame at or before `startMs`: a flushing seek sent to that element
   * only, so what is downstream of it keeps its state. Off the main thread.
   */
  async cutSource(element: Pointer, startMs: number, stopMs: number | null): Promise<boolean> {
    const start = BigInt(Math.round(startMs)) * NANOSECONDS_PER_MS;
    const stop = stopMs === null ? -1n : BigInt(Math.round(stopMs)) * NANOSECONDS_PER_MS;
    return await this.#withRef(() =>
      lib().gst.gst_element_seek_async(
        element,
        1,
        FORMAT_TIME,
        SeekFlag.FLUSH | SeekFlag.KEY_UNIT | SeekFlag.SNAP_BEFORE,
        SeekType.SET,
        start,
        stopMs === null ? SeekType.NONE : SeekType.SET,
        stop,
      )
    ) !== 0;
  }

  /** The pipeline as a Graphviz DOT graph (gst_debug_bin_to_dot_data, every detail). */
  async dot(): Promise<string> {
    const pointer = await this.#withRef(() =>
      lib().gst.gst_debug_bin_to_dot_data_async(this.#pipeline, DEBUG_GRAPH_SHOW_ALL)
    );
    return takeCString(pointer) ?? "";
  }

  /** Holds a reference across a call that runs on a pool thread, so dispose cannot free the pipeline under it. */
  async #withRef<T>(call: () => Promise<T>): Promise<T> {
    if (this.#disposed) throw new Error("The pipeline was disposed");
    const { gst } = lib();
    gst.gst_object_ref(this.#pipeline);
    try {
      return await call();
    } finally {
      gst.gst_object_unref(this.#pipeline);
    }
  }
}

/** GST_EVENT_CUSTOM_UPSTREAM: GST_EVENT_MAKE_TYPE (270, GST_EVENT_TYPE_UPSTREAM) in 1.22. */
const EVENT_CUSTOM_UPSTREAM = (270 << 8) | 1;
let customUpstreamChecked = false;

/**
 * The upstream force-key-unit event (gst_video_event_new_upstream_force_key_unit, which is in
 * libgstvideo): a custom upstream event of that structure, as encoders read it.
 */
function forceKeyUnitEvent(): Pointer {
  const { gst } = lib();
  if (!customUpstreamChecked) {
    // An enum value from the headers: proved against this GStreamer before the first use.
    const name = readCString(gst.gst_event_type_get_name(EVENT_CUSTOM_UPSTREAM));
    if (name !== "custom-upstream") {
      throw new Error(`GstEventType ${EVENT_CUSTOM_UPSTREAM} is '${name}', not custom-upstream`);
    }
    customUpstreamChecked = true;
  }
  const structure = gst.gst_structure_new_from_string(cstr(
    "GstForceKeyUnit, running-time=(guint64)18446744073709551615, all-headers=(boolean)true, " +
      "count=(uint)0",
  ))!;
  return gst.gst_event_new_custom(EVENT_CUSTOM_UPSTREAM, structure)!;
}

let gstBinType: bigint | undefined;
function isBin(element: Pointer): boolean {
  gstBinType ??= gtype(lib().gobject.g_type_from_name(cstr("GstBin")));
  return lib().gobject.g_type_is_a(instanceType(element), gstBinType) !== 0;
}

export function linkElements(source: Pointer, sink: Pointer): boolean {
  return lib().gst.gst_element_link(source, sink) !== 0;
}
