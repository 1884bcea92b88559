/**
 * Building a pipeline from its definition: the elements with their properties (checked
 * against the element policy), caps filters for links that give caps, the links themselves,
 * links that wait for a sometimes pad, and the relays of rtspserversink elements.
 *
 * The pipeline is in NULL while it is built, so nothing here can wait on a streaming thread;
 * links still run on a pool thread, because a link queries caps along everything linked so far
 * and a long chain would hold the event loop (docs/architecture.md: building). The builder owns
 * the pipeline until it hands it over; when anything fails it disposes it, leaving nothing.
 */
import { padCaps, padMediaType } from "../gst/element.ts";
import { GstError } from "../gst/errors.ts";
import type { JsonValue } from "../gst/gvalue.ts";
import type { GValue } from "../gst/gvalue.ts";
import { inspectElement } from "../gst/introspect.ts";
import type { Pointer } from "../gst/native.ts";
import { linkPadsOffThread } from "../gst/pads.ts";
import { Pipeline } from "../gst/pipeline.ts";
import {
  convertProperty,
  holdsText,
  isConstructOnly,
  requireProperty,
  setProperty,
} from "../gst/property.ts";
import { closestFactoryNames, elementFactories } from "../gst/registry.ts";
import { DomainError, type Field, FieldError } from "./errors.ts";
import { launchElementSpans, LaunchParseError, parseLaunch } from "./launch.ts";
import {
  addRelay,
  type Mount,
  type Relay,
  relayElementNames,
  RTSP_SINK,
  type RtspMounts,
} from "./mounts.ts";
import { servableMediaTypes } from "./mounts.ts";
import { defaultElementName, NAME_RULE, namePattern } from "./names.ts";
import type { ElementPolicy } from "./policy.ts";
import type {
  ElementSpec,
  ExplicitDescription,
  LinkSpec,
  PipelineDefinition,
  PipelineDescription,
} from "./spec.ts";

export interface BuiltElement {
  type: string;
  /** Owned by the pipeline (its bin): valid as long as the pipeline is. */
  pointer: Pointer;
}

/** One end of a link, resolved to its element. */
export interface LinkEnd {
  name: string;
  pad: string | null;
  pointer: Pointer;
}

/** A link waiting for its source's pad to appear. */
export interface DynamicLink {
  index: number;
  source: LinkEnd;
  sink: LinkEnd;
  linked: boolean;
  /** Pads that appeared and did not fit, with their caps (for the error). */
  refused: string[];
}

export interface BuiltPipeline {
  pipeline: Pipeline;
  elements: Map<string, BuiltElement>;
  dynamicLinks: DynamicLink[];
  /** Elements the server added (caps filters of links), not part of the description. */
  internal: Set<string>;
  /** The description with every element named and every link explicit. */
  layout: ExplicitDescription;
  /** RTSP paths the pipeline serves while PLAYING. */
  mounts: Map<string, Mount>;
}

export interface BuildContext {
  policy: ElementPolicy;
  mounts: RtspMounts;
}

export function linkEndText(end: { name: string; pad: string | null }): string {
  return end.pad === null ? end.name : `${end.name}.${end.pad}`;
}

const elementsField = ["pipeline", "elements"] as const;
const linksField = ["pipeline", "links"] as const;
/** Elements whose pads pair up into separate paths through them, so a loop through one runs. */
const SEPARATE_PATHS = new Set(["rtpbin", "rtpsession", "webrtcbin"]);

/** The description of a definition: as given, or parsed from gst-launch text. */
export function describe(pipeline: PipelineDefinition["pipeline"]): PipelineDescription {
  if (typeof pipeline !== "string") return pipeline;
  try {
    return parseLaunch(pipeline);
  } catch (error) {
    if (!(error instanceof LaunchParseError)) throw error;
    throw new FieldError(
      "INVALID_REQUEST",
      (at) => `Invalid request at '${at}': ${error.message}`,
      ["pipeline"],
      { offset: error.offset, expected: error.expected },
    );
  }
}

/** The element's name: `name`, or `properties.name` as gst-launch users write it, or type + position. */
function elementName(spec: ElementSpec, index: number): string {
  const nameProperty = spec.properties?.name;
  if (nameProperty === undefined) return spec.name ?? defaultElementName(spec.type, index);
  const field: Field = [...elementsField, index, "properties", "name"];
  if (typeof nameProperty !== "string" || !namePattern.test(nameProperty)) {
    throw new FieldError(
      "INVALID_REQUEST",
      (at) =>
        `Invalid element name ${JSON.stringify(nameProperty)} at '${at}': names are ${NAME_RULE}`,
      field,
    );
  }
  if (spec.name !== undefined && spec.name !== nameProperty) {
    throw new DomainError(
      "INVALID_REQUEST",
      `Element ${index} is named both '${spec.name}' and '${nameProperty}'; give one name`,
      undefined,
      field,
    );
  }
  return nameProperty;
}

/** Refuses unknown and disallowed types before anything is made. */
function checkElementTypes(elements: ElementSpec[], context: BuildContext): void {
  const factories = elementFactories();
  elements.forEach((element, index) => {
    if (element.type === RTSP_SINK) {
      if (!context.mounts.available) {
        throw new DomainError(
          "ELEMENT_NOT_ALLOWED",
          `Element '${RTSP_SINK}' needs the RTSP server, which is not running`,
          { index, type: element.type },
        );
      }
      return;
    }
    context.policy.checkType(element.type, { index });
    if (!factories.has(element.type)) {
      const suggestions = closestFactoryNames(element.type);
      throw new DomainError(
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
 * Makes and configures the elements, then makes the links in order: the given `links`, or each
 * element to the next. A link from an element whose pads come later (sometimes pads) is made
 * when the pad appears. An rtspserversink is made at its link, so it sees what reaches it.
 */
export async function buildPipeline(
  id: string,
  definition: PipelineDefinition,
  context: BuildContext,
): Promise<BuiltPipeline> {
  const description = describe(definition.pipeline);
  const text = typeof definition.pipeline === "string" ? definition.pipeline : null;
  try {
    checkElementTypes(description.elements, context);
  } catch (error) {
    throw text === null ? error : locateInLaunch(error, text, description);
  }
  const pipeline = new Pipeline(id);
  try {
    return await new Builder(pipeline, description, context).build();
  } catch (error) {
    // Still NULL with no streaming thread: releasing it cannot wait on anything.
    await pipeline.dispose();
    throw text === null ? error : locateInLaunch(error, text, description);
  }
}

/**
 * The error with `offset` and `length` added to its details: where in the launch text the
 * element or property at fault is, so that an editor can point at it. Unchanged when the error
 * names no element.
 */
function locateInLaunch(error: unknown, text: string, description: PipelineDescription): unknown {
  if (!(error instanceof DomainError || error instanceof GstError)) return error;
  const details = error.details ?? {};
  const field = error instanceof DomainError ? error.field ?? [] : [];
  const named = [details.element, details.from, details.to].find((v) => typeof v === "string");
  const index = typeof details.index === "number"
    ? details.index
    : field[0] === "pipeline" && field[1] === "elements" && typeof field[2] === "number"
    ? field[2]
    : description.elements.findIndex((element) => element.name === named);
  const element = launchElementSpans(text)[index];
  if (element === undefined) return error;
  const property = field[3] === "properties" && typeof field[4] === "string"
    ? field[4]
    : typeof details.property === "string"
    ? details.property
    : undefined;
  const span = (property !== undefined ? element.properties[property] : undefined) ?? element;
  const located = { ...details, offset: span.offset, length: span.end - span.offset };
  if (error instanceof FieldError) {
    return new FieldError(error.code, error.describe, error.field!, located);
  }
  if (error instanceof DomainError) {
    return new DomainError(error.code, error.message, located, error.field);
  }
  return new GstError(error.code, error.message, located);
}

class Builder {
  readonly #elements = new Map<string, BuiltElement>();
  readonly #rtspSinks = new Map<string, { spec: ElementSpec; index: number }>();
  readonly #dynamicLinks: DynamicLink[] = [];
  readonly #internal = new Set<string>();
  /** Every element name taken so far, with the request's element it belongs to. */
  readonly #claimed = new Map<string, string>();
  readonly #mounts = new Map<string, Mount>();

  constructor(
    readonly pipeline: Pipeline,
    readonly description: PipelineDescription,
    readonly context: BuildContext,
  ) {}

  async build(): Promise<BuiltPipeline> {
    const specs = this.description.elements;
    const names = specs.map((spec, index) => this.#makeElement(spec, index));
    const links: LinkSpec[] = this.description.links ??
      names.slice(1).map((name, i) => ({ from: names[i], to: name }));
    const layout: ExplicitDescription = {
      elements: specs.map(({ type, properties }, index) => {
        const { name: _name, ...rest } = properties ?? {};
        return Object.keys(rest).length > 0
          ? { type, name: names[index], properties: rest }
          : { type, name: names[index] };
      }),
      links,
    };
    this.#refuseLoop(links);
    for (const [index, spec] of links.entries()) await this.#makeLink(spec, index);
    for (const [name, { index }] of this.#rtspSinks) {
      if (!this.#elements.has(name)) {
        throw new DomainError(
          "LINK_FAILED",
          `${RTSP_SINK} '${name}' is not linked to anything; link an encoded stream to it`,
          { to: name },
          [...elementsField, index],
        );
      }
    }
    return {
      pipeline: this.pipeline,
      elements: this.#elements,
      dynamicLinks: this.#dynamicLinks,
      internal: this.#internal,
      layout,
      mounts: this.#mounts,
    };
  }

  /**
   * Takes the GStreamer element names an element of the request will have (an rtspserversink is
   * served through a relay of three): GStreamer refuses a second element of a name in a pipeline.
   */
  #claimNames(owner: string, type: string, index: number): void {
    const names = type === RTSP_SINK ? relayElementNames(owner) : [owner];
    const field = [...elementsField, index, "name"];
    const whose = (claim: string, name: string) =>
      claim === name ? `element '${claim}'` : `the relay of ${RTSP_SINK} '${claim}'`;
    for (const name of names) {
      const holder = this.#claimed.get(name);
      if (holder === undefined) continue;
      if (holder === owner) {
        throw new DomainError(
          "INVALID_REQUEST",
          `Two elements are named '${name}'; element names must be unique in a pipeline`,
          { name },
          field,
        );
      }
      throw new DomainError(
        "INVALID_REQUEST",
        `Element name '${name}' is wanted by ${whose(holder, name)} and by ${whose(owner, name)} ` +
          `(an ${RTSP_SINK} named 'x' is served through elements named ` +
          `${relayElementNames("x").join(", ")}); give one of them another name`,
        { name, elements: [holder, owner] },
        field,
      );
    }
    for (const name of names) this.#claimed.set(name, owner);
  }

  /** Makes one element with its properties; returns its name. */
  #makeElement(spec: ElementSpec, index: number): string {
    const { name: _name, ...properties } = spec.properties ?? {};
    const name = elementName(spec, index);
    this.#claimNames(name, spec.type, index);
    if (spec.type === RTSP_SINK) {
      this.#rtspSinks.set(name, { spec, index });
      return name;
    }
    const notMade = () =>
      new DomainError(
        "UNKNOWN_ELEMENT",
        `Element '${spec.type}' could not be made (its plugin failed to load)`,
        { index, type: spec.type },
      );
    let pointer = this.pipeline.addElement(spec.type, name);
    if (pointer === null) throw notMade();
    const made = pointer;
    const allowed = Object.entries(properties).map(([property, value]) =>
      [
        property,
        this.context.policy.checkProperty(
          spec.type,
          name,
          property,
          value,
          holdsText(made, property),
        ),
      ] as const
    );
    // Construct-only properties can only be given as the element is made: make it again with them.
    const target = { object: made, label: name };
    const atConstruction = allowed.filter(([property]) => isConstructOnly(target, property));
    if (atConstruction.length > 0) {
      const values: { name: string; value: GValue }[] = [];
      try {
        for (const [property, value] of atConstruction) {
          const param = requireProperty(target, property);
          values.push({
            name: param.name,
            value: convertProperty(target, param, value, "construct"),
          });
        }
        pointer = this.pipeline.remakeElement(made, spec.type, name, values);
      } finally {
        for (const { value } of values) value.unset();
      }
      if (pointer === null) throw notMade();
    }
    for (const [property, value] of allowed) {
      if (atConstruction.some(([given]) => given === property)) continue;
      setProperty({ object: pointer, label: name }, property, value as JsonValue);
    }
    this.#elements.set(name, { type: spec.type, pointer });
    return name;
  }

  /**
   * Refuses links that lead from an element back to itself: data cannot flow around a loop, and
   * GStreamer does not refuse one (its bin warns, then caps queries go round it until the stack
   * overflows: a crash of the server).
   */
  #refuseLoop(links: LinkSpec[]): void {
    const next = new Map<string, { to: string; index: number }[]>();
    for (const [index, spec] of links.entries()) {
      const field: Field = [...linksField, index];
      const from = this.#linkEnd(spec.from, [...field, "from"]).name;
      const to = this.#linkEnd(spec.to, [...field, "to"]).name;
      // Its pads pair up into paths of their own (send and receive): a loop through it, such as
      // received RTP sent back, runs.
      if (SEPARATE_PATHS.has(this.#elements.get(from)?.type ?? "")) continue;
      next.set(from, [...next.get(from) ?? [], { to, index }]);
    }
    const done = new Set<string>();
    const path: string[] = [];
    const visit = (name: string): void => {
      if (done.has(name)) return;
      path.push(name);
      for (const { to, index } of next.get(name) ?? []) {
        const back = path.indexOf(to);
        if (back >= 0) {
          const loop = [...path.slice(back), to];
          throw new DomainError(
            "LINK_FAILED",
            `The links make a loop (${loop.join(" -> ")}): data cannot flow around a loop; ` +
              "link every element onwards, away from the ones before it",
            { loop },
            [...linksField, index],
          );
        }
        visit(to);
      }
      path.pop();
      done.add(name);
    };
    for (const name of next.keys()) visit(name);
  }

  async #makeLink(spec: LinkSpec, index: number): Promise<void> {
    const field: Field = [...linksField, index];
    const from = this.#linkEnd(spec.from, [...field, "from"]);
    const to = this.#linkEnd(spec.to, [...field, "to"]);
    if (this.#rtspSinks.has(from.name)) {
      throw new DomainError(
        "LINK_FAILED",
        `'${from.name}' is an ${RTSP_SINK}: nothing can be linked from it`,
        { from: from.name },
        [...field, "from"],
      );
    }
    let source: LinkEnd = { ...from, pointer: this.#elements.get(from.name)!.pointer };
    if (spec.caps !== undefined) {
      // A caps filter is an element of its own, as gst-launch makes it.
      let filterName = `${from.name}-caps${index}`;
      while (this.#claimed.has(filterName)) filterName += "_";
      this.#claimed.set(filterName, filterName);
      const filter = this.pipeline.addElement("capsfilter", filterName)!;
      setProperty({ object: filter, label: `links[${index}].caps` }, "caps", spec.caps);
      this.#elements.set(filterName, { type: "capsfilter", pointer: filter });
      this.#internal.add(filterName);
      const filterEnd = { name: filterName, pad: null, pointer: filter };
      await this.#link(source, filterEnd, index);
      source = filterEnd;
    }
    const rtspSink = this.#rtspSinks.get(to.name);
    if (rtspSink) {
      if (this.#elements.has(to.name)) {
        throw new DomainError(
          "LINK_FAILED",
          `${RTSP_SINK} '${to.name}' takes one stream; it is already linked`,
          { to: to.name },
          [...field, "to"],
        );
      }
      const rtspPath = this.#rtspPath(rtspSink.spec, rtspSink.index, to.name);
      const relay = this.#rtspRelay(rtspSink.index, to.name, source.pointer);
      const mount = this.#mounts.get(rtspPath) ??
        { relays: [], mediaSources: [], heldOpen: false, paused: false };
      mount.relays.push(relay);
      this.#mounts.set(rtspPath, mount);
      this.#elements.set(to.name, { type: RTSP_SINK, pointer: relay.valve });
    }
    await this.#link(source, { ...to, pointer: this.#elements.get(to.name)!.pointer }, index);
  }

  /** `name` or `name.pad` of a link, checked against the elements. */
  #linkEnd(text: string, field: Field): { name: string; pad: string | null } {
    const known = (name: string) => this.#elements.has(name) || this.#rtspSinks.has(name);
    // Element names may contain '.', so the whole text is tried as a name first.
    if (known(text)) return { name: text, pad: null };
    const dot = text.lastIndexOf(".");
    if (dot > 0 && dot < text.length - 1 && known(text.slice(0, dot))) {
      return { name: text.slice(0, dot), pad: text.slice(dot + 1) };
    }
    const names = [...this.#elements.keys(), ...this.#rtspSinks.keys()];
    throw new FieldError(
      "INVALID_REQUEST",
      (at) =>
        `Invalid request at '${at}': ${JSON.stringify(text)} names no element of the pipeline ` +
        `(give "name" or "name.pad"); elements: ${names.join(", ")}`,
      field,
      { elements: names },
    );
  }

  /** Links now, or when the source's pad appears (sometimes pads); LINK_FAILED when it never could. */
  async #link(source: LinkEnd, sink: LinkEnd, index: number): Promise<void> {
    if (await linkPadsOffThread(source.pointer, source.pad, sink.pointer, sink.pad)) return;
    const type = this.#elements.get(source.name)!.type;
    const laterPads = inspectElement(type).padTemplates.some((template) =>
      template.direction === "src" && template.presence === "sometimes"
    );
    const sourcePadExists = source.pad !== null &&
      padCaps(source.pointer, source.pad, "possible") !== null;
    if (laterPads && !sourcePadExists) {
      this.#dynamicLinks.push({ index, source, sink, linked: false, refused: [] });
      return;
    }
    const end = linkEndText;
    const sourceCaps = padCaps(source.pointer, source.pad ?? "src", "possible");
    const sinkCaps = padCaps(sink.pointer, sink.pad ?? "sink", "possible");
    throw new DomainError(
      "LINK_FAILED",
      `Could not link '${end(source)}' to '${end(sink)}': ` +
        `'${source.name}' gives ${sourceCaps ?? "no such static src pad"} and ` +
        `'${sink.name}' takes ${sinkCaps ?? "no such static sink pad"}`,
      { from: end(source), to: end(sink), fromCaps: sourceCaps, toCaps: sinkCaps, link: index },
    );
  }

  /** An rtspserversink in the pipeline: a relay for what the element before it gives. */
  #rtspRelay(index: number, name: string, previous: Pointer): Relay {
    const mediaType = padMediaType(previous, "src");
    const relay = addRelay(this.pipeline, name, mediaType);
    if (relay === null) {
      throw new DomainError(
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
      throw new DomainError(
        "UNKNOWN_PROPERTY",
        `Element '${name}' has no property '${unknown}'; closest: path; it has: path`,
        { element: name, property: unknown, suggestions: ["path"], properties: ["path"] },
      );
    }
    if (typeof path !== "string" || !namePattern.test(path)) {
      throw new DomainError(
        "INVALID_PROPERTY_VALUE",
        `Invalid value ${JSON.stringify(path ?? null)} for property 'path' of element '${name}': ` +
          `expected ${NAME_RULE} (the RTSP path)`,
        { element: name, property: "path", value: path ?? null, index },
      );
    }
    this.context.mounts.requireFree(path);
    return path;
  }
}
