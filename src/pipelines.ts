/**
 * The pipeline manager: builds pipelines from element lists, runs their
 * state changes one at a time per pipeline, turns bus messages into events
 * and reads the counters for `stats`.
 */
import { ServerError } from "./errors.ts";
import type { JsonValue } from "./gst/gvalue.ts";
import type { Pointer } from "./gst/native.ts";
import {
  type BusMessage,
  elementState,
  MessageType,
  Pipeline,
  State,
  StateChange,
  type StateName,
} from "./gst/pipeline.ts";
import {
  convertProperty,
  findProperty,
  getProperty,
  isConstructOnly,
  requireProperty,
  setProperty,
} from "./gst/property.ts";
import { Fundamental, fundamentalOf, type GValue } from "./gst/gvalue.ts";
import { closestFactoryNames, elementFactories } from "./gst/registry.ts";
import type { RtspServer } from "./gst/rtsp.ts";
import {
  addRelay,
  closeIdleRelays,
  endMedias,
  freeUdpPort,
  mediaBuilder,
  type Mount,
  pathPattern,
  type Relay,
  RTSP_SINK,
  servableMediaTypes,
} from "./media.ts";
import { padCaps, padMediaType } from "./gst/element.ts";
import { AppSource, identityCounters } from "./gst/appsrc.ts";
import { inspectElement } from "./gst/introspect.ts";
import { linkPads, watchDynamicPads } from "./gst/pads.ts";
import { formatLaunch, LaunchParseError, parseLaunch } from "./launch.ts";
import { changedProperties } from "./gst/introspect.ts";
import type { ElementPolicy } from "./policy.ts";
import type { DesiredState, PipelineStore, StoredPipeline } from "./store.ts";

export interface ElementSpec {
  type: string;
  name?: string;
  properties?: Record<string, JsonValue>;
}

export type RestartPolicy = "never" | "on-failure" | "always";

/** A link between two elements: each end is "name" or "name.pad". */
export interface LinkSpec {
  from: string;
  to: string;
  caps?: string;
}

/** Elements, and the links between them; without links each element links to the next. */
export interface PipelineDescription {
  elements: ElementSpec[];
  links?: LinkSpec[];
}

export interface PipelineSpec {
  id: string;
  description?: string;
  /** The description, or gst-launch text that parses into one. */
  pipeline: PipelineDescription | string;
  restart?: RestartPolicy;
}

/** A link waiting for its source's pad to appear. */
interface DynamicLink {
  index: number;
  source: { name: string; pad: string | null; pointer: Pointer };
  sink: { name: string; pad: string | null; pointer: Pointer };
  linked: boolean;
  /** Pads that appeared and did not fit, with their caps (for the error). */
  refused: string[];
}

interface Built {
  elements: Map<string, { type: string; pointer: Pointer }>;
  dynamicLinks: DynamicLink[];
  /** Elements the server added (caps filters of links), not part of the description. */
  internal: Set<string>;
  /** The description with every element named and every link explicit. */
  layout: PipelineDescription;
}

export interface PipelineError {
  element: string;
  message: string;
  debug: string | null;
  time: string;
}

export interface ElementDetails {
  name: string;
  type: string;
  state: StateName;
  pending?: StateName;
  properties: Record<string, JsonValue>;
}

export type PipelineDetails =
  | PipelineInfo
  | PipelineInfo & {
    elements: ElementDetails[];
    links: LinkSpec[];
    launch: string | null;
  };

export interface PipelineInfo {
  id: string;
  kind: PipelineKind;
  description: string;
  state: StateName;
  /** What the pipeline should be doing: kept on disk and brought back after a restart. */
  desiredState: DesiredState;
  restart: RestartPolicy;
  restarts: number;
  createdAt: string;
  lastError: PipelineError | null;
}

export type ManagerEvent =
  | { type: "pipelineCreated"; payload: PipelineInfo }
  | { type: "pipelineDeleted"; payload: { id: string } }
  | { type: "pipelineStateChanged"; payload: { id: string; old: StateName; new: StateName } }
  | { type: "pipelineError"; payload: { id: string } & Omit<PipelineError, "time"> }
  | { type: "pipelineWarning"; payload: { id: string } & Omit<PipelineError, "time"> }
  | { type: "pipelineEos"; payload: { id: string } }
  | {
    type: "pipelineRestarting";
    payload: { id: string; attempt: number; delayMs: number; reason: string };
  };

export interface SinkStatsEntry {
  element: string;
  rendered: number;
  dropped: number;
  fps: number | null;
}

export type PipelineKind = "pipeline" | "push";

export interface PipelineStats {
  id: string;
  kind: PipelineKind;
  /** RTSP sessions open on the pipeline's paths, for pipelines that serve any. */
  rtspClients?: number;
  state: StateName;
  uptime: number;
  position: number | null;
  duration: number | null;
  sinks: SinkStatsEntry[];
  errors: number;
  warnings: number;
  /** Times the supervisor restarted it (restart policy on-failure or always). */
  restarts: number;
}

export const idPattern = /^[A-Za-z0-9._-]{1,128}$/;
export const elementNamePattern = /^[A-Za-z0-9._-]{1,64}$/;

/** The element's name: `name`, or `properties.name` as gst-launch users write it, or type + position. */
function elementName(
  spec: ElementSpec,
  nameProperty: JsonValue | undefined,
  index: number,
): string {
  const path = `payload.pipeline.elements[${index}]`;
  if (nameProperty !== undefined) {
    if (typeof nameProperty !== "string" || !elementNamePattern.test(nameProperty)) {
      throw new ServerError(
        "INVALID_REQUEST",
        `Invalid element name ${JSON.stringify(nameProperty)} at '${path}.properties.name': ` +
          "names are 1 to 64 characters of letters, digits, '.', '_' and '-'",
        { path: `${path}.properties.name` },
      );
    }
    if (spec.name !== undefined && spec.name !== nameProperty) {
      throw new ServerError(
        "INVALID_REQUEST",
        `Element ${index} is named both '${spec.name}' and '${nameProperty}'; give one name`,
        { path: `${path}.properties.name` },
      );
    }
    return nameProperty;
  }
  return spec.name ?? `${spec.type}${index}`;
}

/** The layout as gst-launch text, or null when it cannot be written as one (a property holds a list or an object). */
function launchText(layout: PipelineDescription): string | null {
  try {
    return formatLaunch({ elements: layout.elements, links: layout.links ?? [] });
  } catch {
    return null;
  }
}

/** Whether the element's property holds text (a string GType), such as a file name. */
function holdsText(element: Pointer, property: string): boolean {
  const spec = findProperty(element, property);
  return spec !== null && fundamentalOf(spec.valueType) === Fundamental.STRING;
}

function linkEndText(end: { name: string; pad: string | null }): string {
  return end.pad === null ? end.name : `${end.name}.${end.pad}`;
}

/** The description of a createPipeline: as given, or parsed from gst-launch text. */
function describe(pipeline: PipelineDescription | string): PipelineDescription {
  if (typeof pipeline !== "string") return pipeline;
  try {
    return parseLaunch(pipeline);
  } catch (error) {
    if (!(error instanceof LaunchParseError)) throw error;
    throw new ServerError(
      "INVALID_REQUEST",
      `Invalid request at 'payload.pipeline': ${error.message}`,
      { path: "payload.pipeline", offset: error.offset, expected: error.expected },
    );
  }
}

function requireValidId(id: string): void {
  if (!idPattern.test(id)) {
    throw new ServerError(
      "INVALID_ID",
      `Invalid pipeline id ${
        JSON.stringify(id)
      }: ids are 1 to 128 characters of letters, digits, '.', '_' and '-'`,
      { id },
    );
  }
}

interface ManagedPipeline {
  id: string;
  kind: PipelineKind;
  /** Figures the owner adds to this pipeline's stats (push streams: bytes, frames, bitrate). */
  extraStats?: () => Record<string, unknown>;
  description: string;
  createdAt: Date;
  pipeline: Pipeline;
  elements: Map<string, { type: string; pointer: Pointer }>;
  state: StateName;
  playingSince: number | null;
  /** Cached duration (ms, null when unknown); undefined means ask GStreamer at the next stats round. */
  duration: number | null | undefined;
  lastError: PipelineError | null;
  /** An error was already recorded since the last start. */
  runFailed: boolean;
  errors: number;
  warnings: number;
  /** Tail of this pipeline's operation queue: state changes and delete run one at a time. */
  queue: Promise<unknown>;
  deleted: boolean;
  previousSinks: Map<string, { rendered: number; at: number }>;
  /** RTSP paths this pipeline serves while PLAYING. */
  mounts: Map<string, Mount>;
  /** Its elements and links as built (launch text parsed). */
  layout: PipelineDescription;
  internal: Set<string>;
  dynamicLinks: DynamicLink[];
  /** Whether its last start found it live (a live source: no preroll, no seeking). */
  live: boolean;
  /** Stops the pad-added handlers; called when the pipeline is released. */
  unwatch: (() => void)[];
  /** The createPipeline payload it was made from (what the store keeps). */
  definition: Omit<PipelineSpec, "id">;
  desiredState: DesiredState;
  restart: RestartPolicy;
  restarts: number;
  /** Failures since it was last healthy for a minute: the back-off doubles with each. */
  failureStreak: number;
  pendingRestart: { timer: ReturnType<typeof setTimeout>; delayMs: number } | null;
}

export interface ManagerOptions {
  emit: (event: ManagerEvent) => void;
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
}

/** Supervised restarts wait 1 s, doubling per failure up to a minute; a minute of PLAYING resets that. */
const RESTART_BASE_MS = 1000;
const RESTART_MAX_MS = 60_000;
const HEALTHY_AFTER_MS = 60_000;

const busMessageTypes = MessageType.EOS | MessageType.ERROR | MessageType.WARNING |
  MessageType.STATE_CHANGED | MessageType.DURATION_CHANGED;

export class PipelineManager {
  readonly #pipelines = new Map<string, ManagedPipeline>();
  /** Stored definitions that no longer build (a plugin removed): kept, listed, and deletable. */
  readonly #unbuildable = new Map<string, { stored: StoredPipeline; error: PipelineError }>();
  /** RTSP path -> id of the pipeline that serves it. */
  readonly #paths = new Map<string, string>();
  readonly #options: ManagerOptions;

  readonly #listeners = new Set<(event: ManagerEvent) => void>();

  constructor(options: ManagerOptions) {
    this.#options = options;
  }

  /** Calls `listener` with every event from now on; returns the function that stops it. */
  subscribe(listener: (event: ManagerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: ManagerEvent): void {
    this.#options.emit(event);
    for (const listener of this.#listeners) listener(event);
  }

  get size(): number {
    return this.#pipelines.size + this.#unbuildable.size;
  }

  /** Builds the pipeline in the NULL state and stores it; on any failure nothing stays behind. */
  create(
    spec: PipelineSpec,
    options: {
      kind?: PipelineKind;
      extraStats?: () => Record<string, unknown>;
      /** Set when bringing back a stored pipeline: it is not stored again. */
      restoring?: StoredPipeline;
    } = {},
  ): PipelineInfo {
    requireValidId(spec.id);
    if (this.#pipelines.has(spec.id) || this.#unbuildable.has(spec.id)) {
      throw new ServerError("DUPLICATE_ID", `A pipeline with id '${spec.id}' already exists`, {
        id: spec.id,
      });
    }
    const kind = options.kind ?? "pipeline";
    const limit = this.#options.maxPipelines;
    if (kind === "pipeline" && !options.restoring && limit !== undefined) {
      const count = [...this.#pipelines.values()].filter((r) => r.kind === "pipeline").length +
        this.#unbuildable.size;
      if (count >= limit) {
        throw new ServerError(
          "LIMIT_REACHED",
          `The server already has ${count} pipelines, its limit (GSTREAMER_MAX_PIPELINES); ` +
            "delete one first",
          { limit, setting: "GSTREAMER_MAX_PIPELINES" },
        );
      }
    }
    const description = describe(spec.pipeline);
    this.#checkElementTypes(description.elements);
    const pipeline = new Pipeline(spec.id);
    try {
      const mounts = new Map<string, Mount>();
      const { elements, dynamicLinks, internal, layout } = this.#build(
        pipeline,
        description,
        mounts,
      );
      const { id: _id, ...definition } = spec;
      const createdAt = options.restoring ? new Date(options.restoring.createdAt) : new Date();
      if (kind === "pipeline" && !options.restoring) {
        this.#options.store?.insert(spec.id, definition, createdAt.toISOString());
      }
      const record: ManagedPipeline = {
        id: spec.id,
        kind,
        extraStats: options.extraStats,
        description: spec.description ?? "",
        createdAt,
        pipeline,
        elements,
        layout,
        internal,
        dynamicLinks,
        unwatch: [],
        live: false,
        state: "NULL",
        playingSince: null,
        duration: undefined,
        lastError: null,
        runFailed: false,
        errors: 0,
        warnings: 0,
        queue: Promise.resolve(),
        deleted: false,
        previousSinks: new Map(),
        mounts,
        definition,
        desiredState: "stopped",
        restart: spec.restart ?? "never",
        restarts: 0,
        failureStreak: 0,
        pendingRestart: null,
      };
      this.#pipelines.set(spec.id, record);
      for (const path of mounts.keys()) this.#paths.set(path, spec.id);
      this.#watchDynamicLinks(record);
      const info = this.#info(record);
      this.#emit({ type: "pipelineCreated", payload: info });
      return info;
    } catch (error) {
      // Still NULL with no streaming thread: releasing it cannot wait on anything.
      void pipeline.dispose();
      throw error;
    }
  }

  /** Refuses unknown and disallowed types before anything is made. */
  #checkElementTypes(elements: ElementSpec[]): void {
    const factories = elementFactories();
    elements.forEach((element, index) => {
      if (element.type === RTSP_SINK) {
        if (!this.#options.rtsp) {
          throw new ServerError(
            "ELEMENT_NOT_ALLOWED",
            `Element '${RTSP_SINK}' needs the RTSP server, which is not running`,
            { index, type: element.type },
          );
        }
        return;
      }
      this.#options.policy.checkType(element.type, { index });
      if (!factories.has(element.type)) {
        const suggestions = closestFactoryNames(element.type);
        throw new ServerError(
          "UNKNOWN_ELEMENT",
          `Unknown element type '${element.type}' (elements[${index}]); closest: ${
            suggestions.join(", ")
          }`,
          { index, type: element.type, suggestions },
        );
      }
    });
  }

  /**
   * Makes and configures the elements, then makes the links in order: the given
   * `links`, or each element to the next. A link from an element whose pads come
   * later (sometimes pads) is made when the pad appears. An rtspserversink is made
   * at its link, so it sees what reaches it.
   */
  #build(
    pipeline: Pipeline,
    description: PipelineDescription,
    mounts: Map<string, Mount>,
  ): Built {
    const elements: ManagedPipeline["elements"] = new Map();
    const specs = description.elements;
    const rtspSinks = new Map<string, { spec: ElementSpec; index: number }>();
    specs.forEach((spec, index) => {
      const { name: nameProperty, ...properties } = spec.properties ?? {};
      const name = elementName(spec, nameProperty, index);
      if (elements.has(name) || rtspSinks.has(name)) {
        throw new ServerError(
          "INVALID_REQUEST",
          `Two elements are named '${name}'; element names must be unique in a pipeline`,
          { path: `payload.pipeline.elements[${index}].name`, name },
        );
      }
      if (spec.type === RTSP_SINK) {
        rtspSinks.set(name, { spec, index });
        return;
      }
      const notMade = () =>
        new ServerError(
          "UNKNOWN_ELEMENT",
          `Element '${spec.type}' could not be made (its plugin failed to load)`,
          { index, type: spec.type },
        );
      let pointer = pipeline.addElement(spec.type, name);
      if (pointer === null) throw notMade();
      const allowed = Object.entries(properties).map(([property, value]) =>
        [
          property,
          this.#options.policy.checkProperty(
            spec.type,
            name,
            property,
            value,
            holdsText(pointer!, property),
          ),
        ] as const
      );
      // Construct-only properties can only be given as the element is made: make it again with them.
      const atConstruction = allowed.filter(([property]) =>
        isConstructOnly({ object: pointer!, label: name }, property)
      );
      if (atConstruction.length > 0) {
        const target = { object: pointer, label: name };
        const values: { name: string; value: GValue }[] = [];
        try {
          for (const [property, value] of atConstruction) {
            const spec = requireProperty(target, property);
            values.push({
              name: spec.name,
              value: convertProperty(target, spec, value, "construct"),
            });
          }
          pointer = pipeline.remakeElement(pointer, spec.type, name, values);
        } finally {
          for (const { value } of values) value.unset();
        }
        if (pointer === null) throw notMade();
      }
      for (const [property, value] of allowed) {
        if (atConstruction.some(([given]) => given === property)) continue;
        setProperty({ object: pointer, label: name }, property, value);
      }
      elements.set(name, { type: spec.type, pointer });
    });

    const names = specs.map((spec, index) =>
      elementName(spec, spec.properties?.name as JsonValue | undefined, index)
    );
    const links: LinkSpec[] = description.links ??
      names.slice(1).map((name, i) => ({ from: names[i], to: name }));
    const layout: PipelineDescription = {
      elements: specs.map(({ type, properties }, index) => {
        const { name: _name, ...rest } = properties ?? {};
        return Object.keys(rest).length > 0
          ? { type, name: names[index], properties: rest }
          : { type, name: names[index] };
      }),
      links,
    };
    const built: Built = { elements, dynamicLinks: [], internal: new Set(), layout };
    links.forEach((spec, index) => {
      const path = `payload.pipeline.links[${index}]`;
      const from = this.#linkEnd(spec.from, elements, rtspSinks, `${path}.from`);
      const to = this.#linkEnd(spec.to, elements, rtspSinks, `${path}.to`);
      if (rtspSinks.has(from.name)) {
        throw new ServerError(
          "LINK_FAILED",
          `'${from.name}' is an ${RTSP_SINK}: nothing can be linked from it`,
          { path: `${path}.from`, from: from.name },
        );
      }
      let source = { name: from.name, pad: from.pad, pointer: elements.get(from.name)!.pointer };
      if (spec.caps !== undefined) {
        // A caps filter is an element of its own, as gst-launch makes it.
        let filterName = `${from.name}-caps${index}`;
        while (elements.has(filterName) || rtspSinks.has(filterName)) filterName += "_";
        const filter = pipeline.addElement("capsfilter", filterName)!;
        setProperty({ object: filter, label: `${path}.caps` }, "caps", spec.caps);
        elements.set(filterName, { type: "capsfilter", pointer: filter });
        built.internal.add(filterName);
        this.#link(built, source, { name: filterName, pad: null, pointer: filter }, index);
        source = { name: filterName, pad: null, pointer: filter };
      }
      const rtspSink = rtspSinks.get(to.name);
      if (rtspSink) {
        if (elements.has(to.name)) {
          throw new ServerError(
            "LINK_FAILED",
            `${RTSP_SINK} '${to.name}' takes one stream; it is already linked`,
            { path: `${path}.to`, to: to.name },
          );
        }
        const rtspPath = this.#rtspPath(rtspSink.spec, rtspSink.index, to.name);
        const relay = this.#rtspRelay(pipeline, rtspSink.index, to.name, source.pointer);
        const mount = mounts.get(rtspPath) ?? { relays: [], mediaSources: [] };
        mount.relays.push(relay);
        mounts.set(rtspPath, mount);
        elements.set(to.name, { type: RTSP_SINK, pointer: relay.valve });
      }
      const sink = { name: to.name, pad: to.pad, pointer: elements.get(to.name)!.pointer };
      this.#link(built, source, sink, index);
    });
    for (const [name, { index }] of rtspSinks) {
      if (!elements.has(name)) {
        throw new ServerError(
          "LINK_FAILED",
          `${RTSP_SINK} '${name}' is not linked to anything; link an encoded stream to it`,
          { path: `payload.pipeline.elements[${index}]`, to: name },
        );
      }
    }
    return built;
  }

  /** Makes each waiting link when its source's pad appears; reports the ones that never can. */
  #watchDynamicLinks(record: ManagedPipeline): void {
    const bySource = Map.groupBy(record.dynamicLinks, (link) => link.source.pointer);
    for (const [source, links] of bySource) {
      const sourceName = links[0].source.name;
      const fail = (message: string) =>
        this.#handle(record, { kind: "error", source: sourceName, message, debug: null });
      record.unwatch.push(watchDynamicPads(source, {
        padAdded: (_pad, padName) => {
          for (const link of links) {
            if (link.linked || (link.source.pad !== null && link.source.pad !== padName)) continue;
            if (linkPads(source, padName, link.sink.pointer, link.sink.pad)) {
              link.linked = true;
              return;
            }
            const caps = padCaps(source, padName, "current") ??
              padCaps(source, padName, "possible") ?? "unknown caps";
            link.refused.push(`${padName} (${caps})`);
            if (link.source.pad !== null) {
              fail(
                `Pad '${sourceName}.${padName}' appeared but could not link to '${
                  linkEndText(link.sink)
                }': it gives ${caps}`,
              );
            }
          }
        },
        noMorePads: () => {
          for (const link of links) {
            if (link.linked) continue;
            fail(
              `No pad of '${linkEndText(link.source)}' could link to '${linkEndText(link.sink)}'` +
                (link.refused.length > 0
                  ? `; pads that appeared: ${link.refused.join(", ")}`
                  : "; no matching pad appeared"),
            );
          }
        },
      }));
    }
  }

  /** `name` or `name.pad` of a link, checked against the elements. */
  #linkEnd(
    text: string,
    elements: ManagedPipeline["elements"],
    rtspSinks: Map<string, unknown>,
    path: string,
  ): { name: string; pad: string | null } {
    const known = (name: string) => elements.has(name) || rtspSinks.has(name);
    // Element names may contain '.', so the whole text is tried as a name first.
    if (known(text)) return { name: text, pad: null };
    const dot = text.lastIndexOf(".");
    if (dot > 0 && dot < text.length - 1 && known(text.slice(0, dot))) {
      return { name: text.slice(0, dot), pad: text.slice(dot + 1) };
    }
    const names = [...elements.keys(), ...rtspSinks.keys()];
    throw new ServerError(
      "INVALID_REQUEST",
      `Invalid request at '${path}': ${JSON.stringify(text)} names no element of the pipeline ` +
        `(give "name" or "name.pad"); elements: ${names.join(", ")}`,
      { path, elements: names },
    );
  }

  /** Links now, or when the source's pad appears (sometimes pads); LINK_FAILED when it never could. */
  #link(
    built: Built,
    source: { name: string; pad: string | null; pointer: Pointer },
    sink: { name: string; pad: string | null; pointer: Pointer },
    index: number,
  ): void {
    if (linkPads(source.pointer, source.pad, sink.pointer, sink.pad)) return;
    const type = built.elements.get(source.name)!.type;
    const laterPads = inspectElement(type).padTemplates.some((template) =>
      template.direction === "src" && template.presence === "sometimes"
    );
    const sourcePadExists = source.pad !== null &&
      padCaps(source.pointer, source.pad, "possible") !== null;
    if (laterPads && !sourcePadExists) {
      built.dynamicLinks.push({ index, source, sink, linked: false, refused: [] });
      return;
    }
    const end = linkEndText;
    const sourceCaps = padCaps(source.pointer, source.pad ?? "src", "possible");
    const sinkCaps = padCaps(sink.pointer, sink.pad ?? "sink", "possible");
    throw new ServerError(
      "LINK_FAILED",
      `Could not link '${end(source)}' to '${end(sink)}': ` +
        `'${source.name}' gives ${sourceCaps ?? "no such static src pad"} and ` +
        `'${sink.name}' takes ${sinkCaps ?? "no such static sink pad"}`,
      { from: end(source), to: end(sink), fromCaps: sourceCaps, toCaps: sinkCaps, link: index },
    );
  }

  /** An rtspserversink in the pipeline: a relay for what the element before it gives. */
  #rtspRelay(
    pipeline: Pipeline,
    index: number,
    name: string,
    previous: Pointer | undefined,
  ): Relay {
    const mediaType = previous === undefined ? null : padMediaType(previous, "src");
    const relay = addRelay(pipeline, name, mediaType);
    if (relay === null) {
      throw new ServerError(
        "LINK_FAILED",
        `Element '${name}' cannot serve ${mediaType ?? "a stream of unknown format"} over RTSP; ` +
          `put an encoder before it. It serves: ${servableMediaTypes.join(", ")}`,
        { index, to: name, fromCaps: mediaType, servable: servableMediaTypes },
      );
    }
    return relay;
  }

  /** The `path` of an rtspserversink, checked and free. */
  #rtspPath(spec: ElementSpec, index: number, name: string): string {
    const { path, ...others } = spec.properties ?? {};
    const unknown = Object.keys(others)[0];
    if (unknown !== undefined) {
      throw new ServerError(
        "UNKNOWN_PROPERTY",
        `Element '${name}' has no property '${unknown}'; it has: path`,
        { element: name, property: unknown, properties: ["path"] },
      );
    }
    if (typeof path !== "string" || !pathPattern.test(path)) {
      throw new ServerError(
        "INVALID_PROPERTY_VALUE",
        `Invalid value ${JSON.stringify(path ?? null)} for property 'path' of element '${name}': ` +
          "expected 1 to 64 characters of letters, digits, '.', '_' and '-' (the RTSP path)",
        { element: name, property: "path", value: path ?? null, index },
      );
    }
    const owner = this.#paths.get(path);
    if (owner !== undefined) {
      throw new ServerError("PATH_IN_USE", `RTSP path '${path}' is already served by '${owner}'`, {
        path,
        id: owner,
      });
    }
    return path;
  }

  /** Whether an RTSP path is taken (by a pipeline or a push). */
  pathInUse(path: string): boolean {
    return this.#paths.has(path);
  }

  has(id: string): boolean {
    return this.#pipelines.has(id) || this.#unbuildable.has(id);
  }

  /** The appsrc element `name` of a pipeline, for feeding it (push streams). */
  appSource(id: string, name: string): AppSource {
    return new AppSource(this.#element(id, name).object);
  }

  /** Per-buffer counters of an identity element `name` (push streams count frames with one). */
  identityCounters(id: string, name: string): { buffers: number; bytes: number } {
    return identityCounters(this.#element(id, name).object);
  }

  /** Ends the pipeline's run with an error found outside GStreamer (such as bytes that are not the declared format). */
  fail(id: string, element: string, message: string): void {
    const record = this.#pipelines.get(id);
    if (record) this.#handle(record, { kind: "error", source: element, message, debug: null });
  }

  list(): PipelineInfo[] {
    return [
      ...[...this.#pipelines.values()].map((record) => this.#info(record)),
      ...[...this.#unbuildable.keys()].map((id) => this.#unbuildableInfo(id)!),
    ];
  }

  /** The pipeline with its elements (live state, properties that differ from defaults), links and launch text. */
  get(id: string): PipelineDetails {
    const unbuildable = this.#unbuildableInfo(id);
    if (unbuildable) return unbuildable;
    const record = this.#require(id);
    const elements = record.layout.elements.map((spec) => {
      const element = record.elements.get(spec.name!)!;
      if (spec.type === RTSP_SINK) {
        return {
          name: spec.name!,
          type: spec.type,
          state: record.state,
          properties: spec.properties ?? {},
        };
      }
      const { state, pending } = elementState(element.pointer);
      return {
        name: spec.name!,
        type: spec.type,
        state,
        ...(pending === "VOID_PENDING" ? {} : { pending }),
        properties: changedProperties(element.pointer, spec.type, spec.name!),
      };
    });
    return {
      ...this.#info(record),
      elements,
      links: record.layout.links ?? [],
      launch: launchText(record.layout),
    };
  }

  /** Ends the stream: sources stop, and the sinks' end of stream ends the run (pipelineEos). */
  sendEos(id: string): Promise<{ id: string }> {
    const record = this.#require(id);
    return this.#serial(record, async () => {
      // Paused, nothing flows: GStreamer would hold the event (and this queue) until it plays.
      this.#requireRunning(record, "sendEos", ["PLAYING"]);
      if (!await record.pipeline.sendEos()) {
        throw new ServerError("INVALID_STATE", `Pipeline '${id}' did not take the end of stream`, {
          id,
          state: record.state,
        });
      }
      return { id };
    });
  }

  /** Moves playback to `position` ms at `rate` (negative plays backwards); flushing by default. */
  seek(
    id: string,
    position: number,
    rate = 1,
    flush = true,
  ): Promise<{ id: string; position: number; rate: number }> {
    const record = this.#require(id);
    return this.#serial(record, async () => {
      // A seek that does not flush waits for data to flow, which a paused pipeline never gives.
      this.#requireRunning(
        record,
        flush ? "seek" : "seek without flush",
        flush ? undefined : ["PLAYING"],
      );
      // GStreamer takes a seek on a live pipeline and then stalls it: refuse instead.
      if (record.live) {
        throw new ServerError(
          "SEEK_FAILED",
          `Pipeline '${id}' is live (a live source sets its pace), so it cannot seek`,
          { id, position, rate, live: true },
        );
      }
      if (!await record.pipeline.seek(position, rate, flush)) {
        throw new ServerError(
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
  async graph(id: string): Promise<{ id: string; dot: string }> {
    const record = this.#require(id);
    return { id, dot: await record.pipeline.dot() };
  }

  #requireRunning(
    record: ManagedPipeline,
    what: string,
    states: StateName[] = ["PLAYING", "PAUSED"],
  ): void {
    if (!states.includes(record.state)) {
      throw new ServerError(
        "INVALID_STATE",
        `Pipeline '${record.id}' is ${record.state}: ${what} needs it ${states.join(" or ")}`,
        { id: record.id, state: record.state },
      );
    }
  }

  getElementProperty(id: string, element: string, property: string) {
    const target = this.#element(id, element);
    return { id, element, property, value: getProperty(target, property) };
  }

  setElementProperty(id: string, element: string, property: string, value: JsonValue) {
    const target = this.#element(id, element);
    const type = this.#require(id).elements.get(element)!.type;
    if (property === "name") {
      throw new ServerError(
        "INVALID_PROPERTY_VALUE",
        `The name of element '${element}' is fixed once the pipeline is made`,
        { id, element, property },
      );
    }
    setProperty(
      target,
      property,
      this.#options.policy.checkProperty(
        type,
        element,
        property,
        value,
        holdsText(target.object, property),
      ),
    );
    return { id, element, property, value: getProperty(target, property) };
  }

  #element(id: string, name: string): { object: Pointer; label: string } {
    const record = this.#require(id);
    const element = record.elements.get(name);
    if (!element) {
      const names = [...record.elements.keys()];
      throw new ServerError(
        "ELEMENT_NOT_FOUND",
        `Pipeline '${id}' has no element named '${name}'; it has: ${names.join(", ")}`,
        { id, element: name, elements: names },
      );
    }
    return { object: element.pointer, label: name };
  }

  /**
   * Goes to PLAYING; resolves with the state reached, confirmed by GStreamer. The wish to
   * play is stored first, so a supervised pipeline whose start fails keeps trying.
   */
  start(id: string): Promise<{ id: string; state: StateName; pending?: StateName }> {
    const record = this.#require(id);
    this.#cancelRestart(record);
    this.#setDesiredState(record, "playing");
    return this.#attemptStart(record);
  }

  /** Goes to PAUSED (prerolled: sinks hold their first buffer); kept as the desired state. */
  pause(id: string): Promise<{ id: string; state: StateName; pending?: StateName }> {
    const record = this.#require(id);
    this.#cancelRestart(record);
    this.#setDesiredState(record, "paused");
    return this.#attemptStart(record);
  }

  /** One start; when it fails, a supervised pipeline is scheduled to try again. */
  async #attemptStart(
    record: ManagedPipeline,
  ): Promise<{ id: string; state: StateName; pending?: StateName }> {
    try {
      const target = record.desiredState === "paused" ? "PAUSED" : "PLAYING";
      return await this.#serial(record, () => this.#run(record, target));
    } catch (error) {
      if (record.deleted || record.desiredState === "stopped") throw error;
      if (record.restart === "never") {
        this.#setDesiredState(record, "stopped");
        throw error;
      }
      const delayMs = this.#scheduleRestart(record, "start failed");
      if (error instanceof ServerError) {
        const message = error.message.replace(/\.$/, "");
        throw new ServerError(error.code, `${message}; trying again in ${delayMs} ms`, {
          ...error.details,
          restartInMs: delayMs,
        });
      }
      throw error;
    }
  }

  /** Goes to PLAYING or PAUSED and waits (off the main thread) for GStreamer to get there. */
  async #run(
    record: ManagedPipeline,
    target: "PLAYING" | "PAUSED",
  ): Promise<{ id: string; state: StateName; pending?: StateName }> {
    const { id } = record;
    const resuming = record.state === "PLAYING" || record.state === "PAUSED";
    if (!resuming) {
      record.runFailed = false;
      // Sometimes pads are removed when a pipeline stops and appear again on the next run.
      for (const link of record.dynamicLinks) {
        link.linked = false;
        link.refused = [];
      }
      await this.#assignRelayPorts(record);
      // Through PAUSED first: only that step tells a live pipeline (NO_PREROLL), which cannot seek.
      const paused = await record.pipeline.setState(State.PAUSED);
      if (paused === StateChange.FAILURE) return this.#failStart(record, target);
      record.live = paused === StateChange.NO_PREROLL;
    }
    const result = await record.pipeline.setState(State[target]);
    let reached: { state: StateName; pending: StateName };
    if (result === StateChange.ASYNC) {
      const waited = await record.pipeline.waitForState(this.#options.startTimeoutMs ?? 5000);
      if (waited.result === StateChange.FAILURE) return this.#failStart(record, target);
      reached = waited;
    } else if (result === StateChange.FAILURE) {
      return this.#failStart(record, target);
    } else {
      reached = record.pipeline.currentState();
    }
    this.#drainBus(record);
    // An error while it started (a bus error, a link that failed when its pad appeared) ends it.
    if (record.runFailed) return this.#failStart(record, target);
    this.#setState(record, reached.state);
    return reached.pending === "VOID_PENDING"
      ? { id, state: reached.state }
      : { id, state: reached.state, pending: reached.pending };
  }

  /** Starts the pipeline again after the back-off; returns the delay. Only one restart is pending at a time. */
  #scheduleRestart(record: ManagedPipeline, reason: string): number {
    if (record.pendingRestart) return record.pendingRestart.delayMs;
    const healthy = record.playingSince !== null &&
      performance.now() - record.playingSince >= HEALTHY_AFTER_MS;
    if (healthy) record.failureStreak = 0;
    const delayMs = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** record.failureStreak);
    record.failureStreak++;
    const timer = setTimeout(() => {
      record.pendingRestart = null;
      if (record.deleted || record.desiredState === "stopped") return;
      record.restarts++;
      console.log(`Restarting pipeline '${record.id}' (restart ${record.restarts})`);
      // A failed attempt schedules the next one itself.
      this.#attemptStart(record).catch(() => {});
    }, delayMs);
    record.pendingRestart = { timer, delayMs };
    this.#emit({
      type: "pipelineRestarting",
      payload: { id: record.id, attempt: record.restarts + 1, delayMs, reason },
    });
    return delayMs;
  }

  #cancelRestart(record: ManagedPipeline): void {
    if (!record.pendingRestart) return;
    clearTimeout(record.pendingRestart.timer);
    record.pendingRestart = null;
  }

  /** Records (and stores, for client pipelines) what the pipeline should be doing. */
  #setDesiredState(record: ManagedPipeline, state: DesiredState): void {
    if (record.desiredState === state) return;
    if (record.kind === "pipeline" && !record.deleted) {
      this.#options.store?.setDesiredState(record.id, state);
    }
    record.desiredState = state;
  }

  /** A run ended by itself (error or EOS): restart it if its policy says so, else it stays stopped. */
  #runEnded(record: ManagedPipeline, how: "error" | "eos"): void {
    const restart = record.restart === "always" ||
      (record.restart === "on-failure" && how === "error");
    try {
      if (restart && record.desiredState !== "stopped") {
        this.#scheduleRestart(record, how === "error" ? "error" : "end of stream");
      } else {
        this.#setDesiredState(record, "stopped");
      }
    } catch (error) {
      console.error(`Pipeline '${record.id}': ${(error as Error).message}`);
    }
  }

  async #failStart(record: ManagedPipeline, target: StateName): Promise<never> {
    this.#drainBus(record);
    const cause = record.lastError;
    await record.pipeline.setState(State.NULL);
    this.#setState(record, "NULL");
    throw new ServerError(
      "STATE_CHANGE_FAILED",
      `Pipeline '${record.id}' could not go to ${target}` +
        (cause ? `: ${cause.element}: ${cause.message}` : ""),
      { id: record.id, error: cause },
    );
  }

  /** Goes to NULL; a stopped pipeline can be started again. */
  stop(id: string): Promise<{ id: string; state: StateName }> {
    const unbuildable = this.#unbuildable.get(id);
    if (unbuildable) {
      this.#options.store?.setDesiredState(id, "stopped");
      unbuildable.stored.desiredState = "stopped";
      return Promise.resolve({ id, state: "NULL" });
    }
    const record = this.#require(id);
    this.#setDesiredState(record, "stopped");
    this.#cancelRestart(record);
    return this.#serial(record, async () => {
      this.#drainBus(record);
      if (await record.pipeline.setState(State.NULL) === StateChange.FAILURE) {
        const { state } = record.pipeline.currentState();
        this.#setState(record, state);
        throw new ServerError(
          "STATE_CHANGE_FAILED",
          `Pipeline '${id}' could not go to NULL; it is ${state}`,
          { id, state },
        );
      }
      this.#setState(record, "NULL");
      return { id, state: "NULL" as const };
    });
  }

  /** Stops and frees the pipeline from any state, and forgets it. */
  delete(id: string): Promise<{ id: string }> {
    if (this.#unbuildable.has(id)) {
      this.#options.store?.remove(id);
      this.#unbuildable.delete(id);
      this.#emit({ type: "pipelineDeleted", payload: { id } });
      return Promise.resolve({ id });
    }
    const record = this.#require(id);
    if (record.kind === "pipeline") this.#options.store?.remove(id);
    return this.#release(record).then(() => {
      this.#emit({ type: "pipelineDeleted", payload: { id } });
      return { id };
    });
  }

  /** Stops and frees the pipeline, leaving the store alone. */
  #release(record: ManagedPipeline): Promise<void> {
    this.#cancelRestart(record);
    for (const unwatch of record.unwatch) unwatch();
    this.#unmount(record);
    record.deleted = true;
    this.#pipelines.delete(record.id);
    for (const path of record.mounts.keys()) this.#paths.delete(path);
    return this.#serial(record, () => record.pipeline.dispose());
  }

  /** Pulls every pipeline's waiting bus messages and turns them into events; never waits. */
  pollBuses(): void {
    for (const record of this.#pipelines.values()) this.#drainBus(record);
  }

  /** Pulls one pipeline's bus now, for a caller waiting on it more closely than the poll interval. */
  pollBus(id: string): void {
    const record = this.#pipelines.get(id);
    if (record) this.#drainBus(record);
  }

  #drainBus(record: ManagedPipeline): void {
    if (record.deleted) return;
    for (const message of record.pipeline.popMessages(busMessageTypes)) {
      this.#handle(record, message);
    }
  }

  #handle(record: ManagedPipeline, message: BusMessage): void {
    const { id } = record;
    switch (message.kind) {
      case "state-changed":
        this.#setState(record, message.new);
        break;
      case "duration-changed":
        record.duration = undefined;
        break;
      case "warning":
        record.warnings++;
        this.#emit({
          type: "pipelineWarning",
          payload: { id, element: message.source, message: message.message, debug: message.debug },
        });
        break;
      case "error":
        // The first error of a run is the cause; the ones that follow (flow errors upstream) are its echo.
        if (record.runFailed) break;
        record.runFailed = true;
        record.errors++;
        record.lastError = {
          element: message.source,
          message: message.message,
          debug: message.debug,
          time: new Date().toISOString(),
        };
        this.#emit({
          type: "pipelineError",
          payload: { id, element: message.source, message: message.message, debug: message.debug },
        });
        this.#stopAfterBusEvent(record);
        this.#runEnded(record, "error");
        break;
      case "eos":
        // A failed run can still drain to EOS; the error already ended it.
        if (record.runFailed) break;
        this.#emit({ type: "pipelineEos", payload: { id } });
        this.#stopAfterBusEvent(record);
        this.#runEnded(record, "eos");
        break;
    }
  }

  /** An error or EOS ends the run: the pipeline goes to NULL (queued behind any operation under way). */
  #stopAfterBusEvent(record: ManagedPipeline): void {
    void this.#serial(record, async () => {
      if (record.deleted || record.state === "NULL") return;
      await record.pipeline.setState(State.NULL);
      this.#setState(record, "NULL");
    }).catch((error) => console.error(`Stopping pipeline '${record.id}' failed`, error));
  }

  #setState(record: ManagedPipeline, state: StateName): void {
    if (record.deleted || record.state === state) return;
    const old = record.state;
    record.state = state;
    if (state === "NULL" || state === "READY") {
      record.pipeline.forgetSinks();
      this.#unmount(record);
    }
    if (state === "PLAYING") this.#mount(record);
    // Known once data flows; asked again when the pipeline (re)starts or GStreamer says it changed.
    record.duration = undefined;
    if (state === "PLAYING") record.playingSince ??= performance.now();
    else record.playingSince = null;
    this.#emit({
      type: "pipelineStateChanged",
      payload: { id: record.id, old, new: state },
    });
  }

  async #assignRelayPorts(record: ManagedPipeline): Promise<void> {
    for (const { relays } of record.mounts.values()) {
      for (const relay of relays) {
        relay.port = await freeUdpPort();
        setProperty({ object: relay.udpsink, label: "relay" }, "port", relay.port);
      }
    }
  }

  #mount(record: ManagedPipeline): void {
    const rtsp = this.#options.rtsp;
    for (const [path, mount] of record.mounts) {
      if (rtsp && !rtsp.isMounted(path)) rtsp.mount(path, mediaBuilder(path, mount));
    }
  }

  #unmount(record: ManagedPipeline): void {
    for (const [path, mount] of record.mounts) {
      this.#options.rtsp?.unmount(path);
      // Clients of the removed path see the end of the stream (RTCP BYE) instead of silence.
      endMedias(mount);
    }
  }

  /** Per-pipeline figures from GStreamer's own counters; no per-buffer work. */
  async stats(): Promise<PipelineStats[]> {
    const now = performance.now();
    const records = [...this.#pipelines.values()];
    const clients = this.#options.rtsp?.sessionsByPath();
    for (const record of records) {
      for (const mount of record.mounts.values()) closeIdleRelays(mount);
    }
    return await Promise.all(records.map(async (record) => {
      const active = record.state === "PLAYING" || record.state === "PAUSED";
      // Sinks are read before the await: the pipeline may be deleted meanwhile.
      const sinks = active ? this.#sinkStats(record, now) : [];
      const position = active ? await record.pipeline.queryPosition().catch(() => null) : null;
      if (active && record.duration === undefined) {
        record.duration = await record.pipeline.queryDuration().catch(() => null);
      }
      const rtspClients = record.mounts.size === 0 ? undefined : [...record.mounts.keys()]
        .reduce((sum, path) => sum + (clients?.get(path) ?? 0), 0);
      return {
        ...record.extraStats?.(),
        ...(rtspClients === undefined ? {} : { rtspClients }),
        id: record.id,
        kind: record.kind,
        state: record.state,
        uptime: record.playingSince === null ? 0 : Math.round(now - record.playingSince) / 1000,
        position,
        duration: active ? record.duration ?? null : null,
        sinks,
        errors: record.errors,
        warnings: record.warnings,
        restarts: record.restarts,
      };
    }));
  }

  #sinkStats(record: ManagedPipeline, now: number): SinkStatsEntry[] {
    return record.pipeline.sinkStats().map((sink) => {
      const previous = record.previousSinks.get(sink.element);
      record.previousSinks.set(sink.element, { rendered: sink.rendered, at: now });
      const fps = previous && now > previous.at && sink.rendered >= previous.rendered
        ? Math.round(((sink.rendered - previous.rendered) * 1000 / (now - previous.at)) * 10) / 10
        : null;
      return { ...sink, fps };
    });
  }

  /** Stops and frees every pipeline; the store keeps them for the next start. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.#pipelines.values()].map((record) => this.#release(record)));
  }

  #require(id: string): ManagedPipeline {
    requireValidId(id);
    const record = this.#pipelines.get(id);
    const unbuildable = this.#unbuildable.get(id);
    if (unbuildable) {
      throw new ServerError(
        "STATE_CHANGE_FAILED",
        `Pipeline '${id}' could not be rebuilt from its stored definition: ` +
          `${unbuildable.error.message}; delete it, or restore what it needs and restart the server`,
        { id, error: unbuildable.error },
      );
    }
    if (!record) {
      throw new ServerError("PIPELINE_NOT_FOUND", `No pipeline with id '${id}'`, { id });
    }
    return record;
  }

  #serial<T>(record: ManagedPipeline, operation: () => Promise<T>): Promise<T> {
    const run = record.queue.then(operation, operation);
    record.queue = run.catch(() => {});
    return run;
  }

  #info(record: ManagedPipeline): PipelineInfo {
    return {
      id: record.id,
      kind: record.kind,
      description: record.description,
      state: record.state,
      desiredState: record.desiredState,
      restart: record.restart,
      restarts: record.restarts,
      createdAt: record.createdAt.toISOString(),
      lastError: record.lastError,
    };
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
    };
  }

  /**
   * Brings back every stored pipeline and starts those that were playing. One that no
   * longer builds is kept in the list with the reason as its lastError.
   */
  restore(parse: (definition: unknown) => Omit<PipelineSpec, "id">): {
    restored: number;
    unbuildable: number;
    starting: Promise<unknown>;
  } {
    const store = this.#options.store;
    const starts: Promise<unknown>[] = [];
    let restored = 0;
    for (const stored of store?.all() ?? []) {
      try {
        this.create({ ...parse(stored.definition), id: stored.id }, { restoring: stored });
        restored++;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const details = error instanceof ServerError ? error.details : undefined;
        const entry = {
          stored,
          error: {
            element: String(details?.element ?? details?.type ?? ""),
            message,
            debug: null,
            time: new Date().toISOString(),
          },
        };
        this.#unbuildable.set(stored.id, entry);
        console.error(`Pipeline '${stored.id}' could not be restored: ${message}`);
        continue;
      }
      if (stored.desiredState !== "stopped") {
        const record = this.#pipelines.get(stored.id)!;
        record.desiredState = stored.desiredState;
        starts.push(
          this.#attemptStart(record).catch((error) =>
            console.error(`Restored pipeline '${stored.id}' did not start: ${error.message}`)
          ),
        );
      }
    }
    return { restored, unbuildable: this.#unbuildable.size, starting: Promise.all(starts) };
  }
}
