/**
 * Our own reader and writer for gst-launch-1.0 pipeline descriptions
 * (`videotestsrc ! tee name=t t. ! queue ! fakesink`). Pure TypeScript: we never
 * call gst_parse_launch; the result is a plain description the server builds.
 *
 * Grammar (after GStreamer's gst/parse/parse.l and grammar.y):
 *
 *     description := chain+                      chains are separated by whitespace
 *     chain       := start ( link target )*
 *     start       := element [padrefs] | reference
 *     link        := "!" | "!" caps "!"          caps: a media type such as
 *                                                video/x-raw,... up to the next "!",
 *                                                or a quoted string holding one
 *     target      := [padrefs] element [padrefs] the chain goes on from the element
 *                  | reference                   a reference ends the chain
 *     element     := TYPE ( property )*
 *     property    := KEY "=" VALUE               whitespace around "=" is allowed
 *     reference   := NAME "." [PAD] ( "," PAD )*  `t.`, `demux.video_0`, `mux.sink_%d`
 *     padrefs     := "." PAD ( "," PAD )*          `tee name=t .src_0 ! queue`
 *
 * Choices, where gst-launch leaves room:
 * - Every property value stays a string, as gst-launch itself does: it never
 *   types a value but hands the text to gst_value_deserialize for the
 *   property's type, and the server does the same with our strings.
 * - Values: a bare word runs to the next whitespace (so `uri=file:///a.mp4`,
 *   `location=rtsp://h:8554/x` and `caps=video/x-raw,width=320` need no
 *   quotes) and `\x` escapes one character (`a\ b` is "a b"), as in
 *   gst_parse_unescape. "..." and '...' are quoted strings in which `\x` also
 *   stands for x; both kinds of quotes are removed, as a shell would (raw
 *   gst_parse_launch keeps single quotes in the value).
 * - `name=x` is moved out of the properties into `name`. Elements without it
 *   are named `<type><index>` (index in `elements`), the rule the server uses
 *   (gst-launch counts per type instead). A reference must name an element
 *   that has `name=`.
 * - A caps filter becomes the `caps` of its link, kept as written (trimmed),
 *   never an element. Quoted caps after "!" (`a ! "video/x-raw, width=320" ! b`)
 *   are read as a shell would pass them to gst-launch-1.0 (raw
 *   gst_parse_launch rejects the quotes), and a "!" inside a quoted caps field
 *   does not end the caps (GStreamer 1.22 would cut there).
 * - Every link is explicit: `a ! b ! c` gives a→b and b→c. Pad lists
 *   (`t.src_0,src_1 ! m.sink_0,sink_1`) become one link per pair; lists of
 *   different lengths are an error (gst-launch uses only the first pad when
 *   the other side names none, and fails otherwise).
 * - A backslash before a newline is a shell line continuation, read as
 *   whitespace, so scripts split over lines can be pasted as they are.
 * - Stricter than gst-launch, which takes the last one: a name or property
 *   given twice on one element is an error; so are two elements with one
 *   name, counting automatic names.
 *
 * Not supported, each a LaunchParseError that says so: bins in parentheses,
 * child properties (`sink_1::xpos=10`), the `:` link-all operator, URI
 * elements (`file:///a.mp4 ! ...`), presets (`@preset=`) and comments (`#`).
 */
import { defaultElementName, NAME_RULE, namePattern } from "./names.ts";
import type { ElementSpec, ExplicitDescription, LinkSpec } from "./spec.ts";

/** A description that is not valid (or not supported) launch syntax. */
export class LaunchParseError extends Error {
  override name = "LaunchParseError";
  /** 0-based offset into the text (a UTF-16 index, as for String.prototype.slice). */
  readonly offset: number;
  /** What the parser expected at `offset`. */
  readonly expected: string;
  /** What it found there instead, when that is worth saying. */
  readonly found: string | null;
  /** The unsupported construct met at `offset`, if that was the problem. */
  readonly unsupported: string | null;

  constructor(
    offset: number,
    expected: string,
    options: { found?: string; detail?: string; unsupported?: string } = {},
  ) {
    const found = options.found ? `, found ${options.found}` : "";
    const detail = options.unsupported
      ? `; ${options.unsupported} ${options.detail ?? "not supported"}`
      : options.detail
      ? `; ${options.detail}`
      : "";
    super(`At character ${offset}: expected ${expected}${found}${detail}`);
    this.offset = offset;
    this.expected = expected;
    this.found = options.found ?? null;
    this.unsupported = options.unsupported ?? null;
  }
}

const BINS = "bins in parentheses ('( ... )', 'bin.( ... )')";
const MEDIA_TYPE = /[A-Za-z0-9-]+\/[A-Za-z0-9-]+/y;
const IDENTIFIER = /^[A-Za-z0-9_][A-Za-z0-9_%-]*$/;

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
}

function isIdentStart(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_]/.test(c);
}

function isIdentChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_%-]/.test(c);
}

function startsWithMediaType(text: string, at: number): boolean {
  MEDIA_TYPE.lastIndex = at;
  return MEDIA_TYPE.test(text);
}

function trimEndSpace(text: string): string {
  let end = text.length;
  while (end > 0 && isSpace(text[end - 1])) end--;
  return text.slice(0, end);
}

function quote(text: string): string {
  return `'${text}'`;
}

/** A short excerpt for messages, so a long value does not swamp them. */
function excerpt(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/**
 * Scans unquoted caps from `start` to the "!" that ends them: a backslash
 * escapes one character and a "!" inside "..." does not count.
 */
function scanCaps(
  text: string,
  start: number,
): { bang: number } | { openQuote: number } | { end: true } {
  let i = start;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\") {
      i += 2;
    } else if (c === '"') {
      const open = i;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      if (i >= text.length) return { openQuote: open };
      i++;
    } else if (c === "!") {
      return { bang: i };
    } else {
      i++;
    }
  }
  return { end: true };
}

interface ElementNode {
  type: string;
  offset: number;
  /** Just past its last property. */
  end: number;
  /** Where each property's `key=value` starts and ends. */
  propertySpans: Record<string, TextSpan>;
  name?: string;
  nameOffset?: number;
  properties: Record<string, string>;
}

/** One end of a link: an element of the chain or a reference by name. */
interface EndNode {
  index?: number;
  reference?: string;
  pads: string[];
  offset: number;
}

interface LinkNode {
  from: EndNode;
  to: EndNode;
  caps?: string;
  offset: number;
}

class Parser {
  readonly elements: ElementNode[] = [];
  readonly links: LinkNode[] = [];
  pos = 0;

  constructor(readonly text: string) {}

  parse(): ExplicitDescription {
    this.skipSpace();
    if (this.atEnd()) {
      throw new LaunchParseError(this.pos, "an element", {
        found: "the end of the text",
        detail: "the description is empty",
      });
    }
    if (/^gst-launch(-1\.0)?(?![^\s])/.test(this.text.slice(this.pos))) {
      throw new LaunchParseError(this.pos, "an element", {
        found: quote("gst-launch-1.0"),
        detail: "give only the pipeline description, without the command and its options",
      });
    }
    while (!this.atEnd()) {
      this.parseChain();
      this.skipSpace();
    }
    return this.resolve();
  }

  // --- characters ---------------------------------------------------------

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  peek(offset = 0): string | undefined {
    return this.text[this.pos + offset];
  }

  /** Skips whitespace and shell line continuations (backslash, newline); true if any. */
  skipSpace(): boolean {
    const start = this.pos;
    for (;;) {
      if (isSpace(this.peek())) {
        this.pos++;
      } else if (this.peek() === "\\" && (this.peek(1) === "\n" || this.peek(1) === "\r")) {
        this.pos += this.peek(1) === "\r" && this.peek(2) === "\n" ? 3 : 2;
      } else {
        return this.pos > start;
      }
    }
  }

  readIdent(): string {
    const start = this.pos;
    while (isIdentChar(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** What is at `at`, for "found ..." in messages. */
  describe(at = this.pos): string {
    const c = this.text[at];
    if (c === undefined) return "the end of the text";
    if (c === '"' || c === "'") return "a quoted string";
    if (isIdentStart(c)) {
      let end = at;
      while (isIdentChar(this.text[end])) end++;
      return quote(this.text.slice(at, end));
    }
    return quote(c);
  }

  // --- chains --------------------------------------------------------------

  parseChain(): void {
    if (this.peek() === "!") {
      throw new LaunchParseError(this.pos, "an element or a reference before '!'", {
        found: quote("!"),
      });
    }
    let tail: EndNode;
    if (this.referenceAhead()) {
      tail = this.parseReference();
      this.skipSpace();
      if (this.peek() !== "!") {
        throw new LaunchParseError(
          this.pos,
          `'!' after the reference ${quote(this.text.slice(tail.offset, this.pos).trim())}`,
          {
            found: this.describe(),
            detail: "a reference on its own links nothing",
          },
        );
      }
    } else {
      const index = this.parseElement("an element or a reference");
      tail = this.endAfterElement(index);
    }
    for (;;) {
      const save = this.pos;
      this.skipSpace();
      if (this.peek() !== "!") {
        if (tail.pads.length > 0 && tail.index !== undefined) {
          throw new LaunchParseError(this.pos, "'!' after the pad reference", {
            found: this.describe(),
            detail: `a pad reference (${
              quote(`.${tail.pads.join(",")}`)
            }) names the pad of a link that follows`,
          });
        }
        this.pos = save;
        return;
      }
      const offset = this.pos;
      this.pos++;
      const caps = this.parseCaps();
      this.skipSpace();
      const after = caps === undefined ? "after '!'" : "after the caps";
      if (this.referenceAhead()) {
        const reference = this.parseReference();
        this.links.push({ from: tail, to: reference, caps, offset });
        const end = this.pos;
        this.skipSpace();
        if (this.peek() === "!") {
          throw new LaunchParseError(this.pos, "the end of the chain after a reference", {
            found: quote("!"),
            detail: "a reference ends its chain; to link onwards from it, start a new chain " +
              `with it: ${quote(`${reference.reference}. ! ...`)}`,
          });
        }
        this.pos = end;
        return;
      }
      const sinkPads = this.parsePadRefs();
      if (sinkPads) this.skipSpace();
      const index = this.parseElement(
        sinkPads ? "an element after the pad reference" : `an element or a reference ${after}`,
      );
      this.links.push({
        from: tail,
        to: {
          index,
          pads: sinkPads?.pads ?? [],
          offset: sinkPads?.offset ?? this.elements[index].offset,
        },
        caps,
        offset,
      });
      tail = this.endAfterElement(index);
    }
  }

  /** The source end of the element just read, with any `.pad` that follows it. */
  endAfterElement(index: number): EndNode {
    const save = this.pos;
    this.skipSpace();
    const pads = this.parsePadRefs();
    if (pads) return { index, pads: pads.pads, offset: pads.offset };
    this.pos = save;
    return { index, pads: [], offset: this.elements[index].offset };
  }

  // --- references and pads ------------------------------------------------

  /** `name.` or `name.pad` starts here. */
  referenceAhead(): boolean {
    if (!isIdentStart(this.peek())) return false;
    let i = this.pos;
    while (isIdentChar(this.text[i])) i++;
    return this.text[i] === ".";
  }

  parseReference(): EndNode {
    const offset = this.pos;
    const name = this.readIdent();
    this.pos++; // "."
    let i = this.pos;
    while (isSpace(this.text[i])) i++;
    if (this.text[i] === "(") {
      throw new LaunchParseError(offset, "an element or a reference", {
        found: quote(this.text.slice(offset, i + 1)),
        unsupported: BINS,
        detail: "are not supported",
      });
    }
    const pads: string[] = [];
    if (isIdentStart(this.peek())) pads.push(this.readIdent());
    this.parseMorePads(pads);
    this.checkNoColon();
    return { reference: name, pads, offset };
  }

  /** `.pad` or `.pad1,pad2` (a pad reference on an element), if one starts here. */
  parsePadRefs(): { pads: string[]; offset: number } | undefined {
    if (this.peek() !== "." || !isIdentStart(this.peek(1))) return undefined;
    const offset = this.pos;
    this.pos++;
    const pads = [this.readIdent()];
    this.parseMorePads(pads);
    this.checkNoColon();
    return { pads, offset };
  }

  parseMorePads(pads: string[]): void {
    for (;;) {
      const save = this.pos;
      this.skipSpace();
      if (this.peek() !== ",") {
        this.pos = save;
        return;
      }
      this.pos++;
      this.skipSpace();
      if (!isIdentStart(this.peek())) {
        throw new LaunchParseError(this.pos, "a pad name after ','", { found: this.describe() });
      }
      pads.push(this.readIdent());
    }
  }

  checkNoColon(): void {
    if (this.peek() === ":") this.unexpected("whitespace or '!'");
  }

  // --- elements and properties --------------------------------------------

  parseElement(expected: string): number {
    const offset = this.pos;
    if (!isIdentStart(this.peek())) this.unexpected(expected);
    const type = this.readIdent();
    if (this.peek() === "/" && startsWithMediaType(this.text, offset)) {
      throw new LaunchParseError(offset, expected, {
        found: `the caps ${quote(excerpt(this.text.slice(offset).split(/\s*!/)[0]))}`,
        detail: "a caps filter goes between two elements ('a ! video/x-raw ! b'), " +
          "one per link (alternatives are separated by ';')",
      });
    }
    if (this.peek() === ":") {
      this.pos = offset;
      this.unexpectedColon(expected, offset);
    }
    if (this.peek() === ".") {
      // Only after a pad reference: `! .sink_0 mux.` (write `! mux.sink_0`).
      throw new LaunchParseError(offset, expected, {
        found: `the reference ${quote(`${type}.`)}`,
        detail: "a pad reference is followed by the element it belongs to",
      });
    }
    const save = this.pos;
    this.skipSpace();
    if (this.peek() === "=") {
      throw new LaunchParseError(offset, expected, {
        found: `the property ${quote(`${type}=`)}`,
        detail: "properties follow the element type: 'videotestsrc num-buffers=5'",
      });
    }
    this.pos = save;
    const c = this.peek();
    if (c !== undefined && !isSpace(c) && c !== "!" && c !== "\\") {
      this.unexpected(`whitespace or '!' after the element type ${quote(type)}`);
    }
    const index = this.elements.length;
    const element: ElementNode = {
      type,
      offset,
      end: this.pos,
      // No prototype: a property called "__proto__" is then an ordinary key.
      propertySpans: Object.create(null),
      properties: {},
    };
    this.elements.push(element);
    for (;;) {
      const before = this.pos;
      if (!this.skipSpace()) break;
      if (this.peek() === "@") this.unexpected("a property or '!'");
      if (!isIdentStart(this.peek())) {
        this.pos = before;
        break;
      }
      const keyOffset = this.pos;
      const key = this.readIdent();
      if (this.peek() === ":" && this.peek(1) === ":") {
        throw new LaunchParseError(keyOffset, "a property of the element", {
          found: quote(excerpt(this.text.slice(keyOffset).split(/[\s=]/)[0])),
          unsupported: "child properties ('child::property=value')",
          detail: "are not supported",
        });
      }
      this.skipSpace();
      if (this.peek() !== "=") {
        this.pos = before;
        break;
      }
      this.pos++;
      this.parseValue(element, key, keyOffset);
      element.propertySpans[key] = { offset: keyOffset, end: this.pos };
      element.end = this.pos;
    }
    return index;
  }

  parseValue(element: ElementNode, key: string, keyOffset: number): void {
    const spaced = this.skipSpace();
    const offset = this.pos;
    if (this.atEnd() || (spaced && this.peek() === "!")) {
      throw new LaunchParseError(offset, `a value after ${quote(`${key}=`)}`, {
        found: this.describe(),
      });
    }
    let value: string;
    const c = this.peek();
    if (c === '"' || c === "'") {
      value = this.readQuoted();
      const next = this.peek();
      if (next !== undefined && !isSpace(next) && next !== "!") {
        throw new LaunchParseError(this.pos, "whitespace or '!' after the closing quote", {
          found: this.describe(),
        });
      }
    } else {
      value = this.readBare();
    }
    if (key === "name") {
      if (element.name !== undefined) {
        throw new LaunchParseError(keyOffset, "one name= per element", {
          found: `a second name= on the ${element.type}`,
        });
      }
      if (value === "") {
        throw new LaunchParseError(offset, "an element name", { found: "an empty name" });
      }
      if (value.includes(".")) {
        throw new LaunchParseError(offset, "an element name without '.'", {
          found: quote(excerpt(value)),
          detail: "'.' separates an element name from a pad name in links",
        });
      }
      if (!namePattern.test(value)) {
        throw new LaunchParseError(offset, `an element name of ${NAME_RULE}`, {
          found: JSON.stringify(excerpt(value)),
        });
      }
      element.name = value;
      element.nameOffset = offset;
      return;
    }
    if (Object.hasOwn(element.properties, key)) {
      throw new LaunchParseError(keyOffset, `each property once per element`, {
        found: `a second ${quote(`${key}=`)} on the ${element.type}`,
      });
    }
    // defineProperty, so that a property called "__proto__" stays an own property.
    Object.defineProperty(element.properties, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  /** "..." or '...'; a backslash takes the next character literally. */
  readQuoted(): string {
    const open = this.pos;
    const q = this.text[open];
    this.pos++;
    let out = "";
    for (;;) {
      const c = this.peek();
      if (c === undefined || (c === "\\" && this.peek(1) === undefined)) {
        throw new LaunchParseError(open, `a closing ${q} for the quote opened here`, {
          found: "the end of the text",
        });
      }
      if (c === q) {
        this.pos++;
        return out;
      }
      if (c === "\\") {
        out += this.text[this.pos + 1];
        this.pos += 2;
      } else {
        out += c;
        this.pos++;
      }
    }
  }

  /**
   * A bare word, up to whitespace. As gst_parse_unescape does, a backslash
   * escapes the next character, except between double quotes in the word.
   */
  readBare(): string {
    let out = "";
    let inQuotes = false;
    for (;;) {
      const c = this.peek();
      if (c === undefined || isSpace(c)) return out;
      if (c === "\\") {
        const next = this.peek(1);
        if (next === undefined) {
          throw new LaunchParseError(this.pos + 1, "a character after '\\'", {
            found: "the end of the text",
          });
        }
        if (next === "\n" || next === "\r") return out; // a line continuation
        out += inQuotes ? c + next : next;
        this.pos += 2;
        continue;
      }
      if (c === '"') inQuotes = !inQuotes;
      out += c;
      this.pos++;
    }
  }

  // --- caps ------------------------------------------------------------------

  /** The caps of a link, just after its "!", up to and including the closing "!". */
  parseCaps(): string | undefined {
    const save = this.pos;
    this.skipSpace();
    const start = this.pos;
    const c = this.peek();
    if (c === '"' || c === "'") {
      const caps = this.readQuoted();
      let i = 0;
      while (isSpace(caps[i])) i++;
      if (!startsWithMediaType(caps, i)) {
        throw new LaunchParseError(start, "an element, a reference or caps after '!'", {
          found: `the quoted string ${quote(excerpt(caps))}`,
          detail: "only caps (such as \"video/x-raw, width=320\") may be quoted after '!'",
        });
      }
      this.skipSpace();
      if (this.peek() !== "!") {
        throw new LaunchParseError(this.pos, `'!' after the caps ${quote(excerpt(caps))}`, {
          found: this.describe(),
          detail: "a caps filter goes between two elements: 'a ! video/x-raw ! b'",
        });
      }
      this.pos++;
      return caps;
    }
    if (!startsWithMediaType(this.text, start)) {
      this.pos = save;
      return undefined;
    }
    const scan = scanCaps(this.text, start);
    if ("openQuote" in scan) {
      throw new LaunchParseError(scan.openQuote, 'a closing " for the quote opened here', {
        found: "the end of the text",
      });
    }
    if ("end" in scan) {
      const caps = trimEndSpace(this.text.slice(start));
      throw new LaunchParseError(
        this.text.length,
        `'!' after the caps ${quote(excerpt(caps))}`,
        {
          found: "the end of the text",
          detail: "a caps filter goes between two elements: 'a ! video/x-raw ! b'",
        },
      );
    }
    this.pos = scan.bang + 1;
    return trimEndSpace(this.text.slice(start, scan.bang));
  }

  // --- errors ----------------------------------------------------------------

  /** Throws for the unexpected character at pos, naming unsupported syntax. */
  unexpected(expected: string): never {
    const at = this.pos;
    const c = this.peek();
    const fail = (unsupported: string, detail = "are not supported"): never => {
      throw new LaunchParseError(at, expected, { found: this.describe(at), unsupported, detail });
    };
    switch (c) {
      case "(":
      case ")":
        return fail(BINS);
      case "@":
        return fail("presets ('@preset=name')");
      case "#":
        return fail("comments ('# ...')");
      case ":":
        return this.unexpectedColon(expected, at);
      case "/":
        return fail(
          "URI elements ('/path', 'file:///path')",
          "are not supported; use an element with a location or uri property",
        );
      case '"':
      case "'":
        throw new LaunchParseError(at, expected, {
          found: "a quoted string",
          detail: "only property values, and caps right after '!', may be quoted",
        });
      case ".":
        if (isIdentStart(this.peek(1))) {
          let end = at + 1;
          while (isIdentChar(this.text[end])) end++;
          throw new LaunchParseError(at, expected, {
            found: `the pad reference ${quote(this.text.slice(at, end))}`,
            detail: "a pad reference follows an element ('tee name=t .src_0 ! queue') " +
              "or comes just before one after '!' ('! .sink_0 mux')",
          });
        }
    }
    throw new LaunchParseError(at, expected, { found: this.describe(at) });
  }

  unexpectedColon(expected: string, at: number): never {
    let start = at;
    while (start > 0 && isIdentChar(this.text[start - 1])) start--;
    const colon = this.text.indexOf(":", at);
    if (this.text.startsWith("://", colon)) {
      throw new LaunchParseError(start, expected, {
        found: quote(excerpt(this.text.slice(start).split(/\s/)[0])),
        unsupported: "URI elements ('file:///path ! ...')",
        detail: "are not supported; use an element with a location or uri property",
      });
    }
    throw new LaunchParseError(colon, expected, {
      found: quote(":"),
      unsupported: "the ':' link operator (link all pads)",
      detail: "is not supported; use '!'",
    });
  }

  // --- names and links -------------------------------------------------------

  resolve(): ExplicitDescription {
    const owners = new Map<string, number>();
    const names = this.elements.map((element, index) => {
      const name = element.name ?? defaultElementName(element.type, index);
      const other = owners.get(name);
      if (other !== undefined) {
        const previous = this.elements[other];
        const [at, owner, ownerIndex] = element.name !== undefined
          ? [element.nameOffset!, previous, other]
          : previous.name !== undefined
          ? [previous.nameOffset!, element, index]
          : [element.offset, previous, other];
        const how = owner.name !== undefined ? "the name" : "the automatic name";
        throw new LaunchParseError(at, "a name no other element has", {
          found: `${quote(name)}, ${how} of element ${ownerIndex} (${owner.type}) too`,
        });
      }
      owners.set(name, index);
      return name;
    });
    const named = new Map<string, number>();
    this.elements.forEach((element, index) => {
      if (element.name !== undefined) named.set(element.name, index);
    });

    const endName = (end: EndNode): string => {
      if (end.index !== undefined) return names[end.index];
      const name = end.reference!;
      if (named.has(name)) return name;
      const owner = owners.get(name);
      throw new LaunchParseError(end.offset, "the name of an element given with name=", {
        found: quote(`${name}.`),
        detail: owner === undefined
          ? `no element is named ${quote(name)}`
          : `${quote(name)} is only the automatic name of element ${owner}; ` +
            `write name=${name} on it to refer to it`,
      });
    };

    const links: LinkSpec[] = [];
    for (const link of this.links) {
      const from = endName(link.from);
      const to = endName(link.to);
      const fromPads = link.from.pads;
      const toPads = link.to.pads;
      const caps = link.caps === undefined ? {} : { caps: link.caps };
      if (fromPads.length <= 1 && toPads.length <= 1) {
        links.push({
          from: fromPads.length ? `${from}.${fromPads[0]}` : from,
          to: toPads.length ? `${to}.${toPads[0]}` : to,
          ...caps,
        });
      } else if (fromPads.length === toPads.length) {
        fromPads.forEach((pad, i) => {
          links.push({ from: `${from}.${pad}`, to: `${to}.${toPads[i]}`, ...caps });
        });
      } else {
        throw new LaunchParseError(link.offset, "as many pads on each side of '!'", {
          found: `${fromPads.length} and ${toPads.length}`,
          detail: "a pad list links its pads pairwise, in order",
        });
      }
    }

    const elements = this.elements.map((element, index): ElementSpec => ({
      type: element.type,
      name: names[index],
      ...(Object.keys(element.properties).length > 0 ? { properties: element.properties } : {}),
    }));
    return { elements, links };
  }
}

/**
 * Reads a gst-launch-1.0 pipeline description (without the command) into
 * elements and explicit links. Throws LaunchParseError with the offset of the
 * problem and what was expected there.
 */
export function parseLaunch(text: string): ExplicitDescription {
  return new Parser(text).parse();
}

/** A part of a launch text: [offset, end) in UTF-16 code units. */
export interface TextSpan {
  offset: number;
  end: number;
}

/** Where each element of a launch text that parses is, and each of its properties. */
export function launchElementSpans(
  text: string,
): (TextSpan & { properties: Record<string, TextSpan> })[] {
  const parser = new Parser(text);
  parser.parse();
  return parser.elements.map(({ offset, end, propertySpans }) => ({
    offset,
    end,
    properties: propertySpans,
  }));
}

// --- formatting ----------------------------------------------------------------

function formatValue(value: string): string {
  return value !== "" && /^[^\s"'\\!]+$/.test(value)
    ? value
    : `"${value.replace(/[\\"]/g, "\\$&")}"`;
}

function formatCaps(caps: string): string {
  let i = 0;
  while (isSpace(caps[i])) i++;
  if (!startsWithMediaType(caps, i)) {
    throw new Error(
      `formatLaunch: caps ${JSON.stringify(caps)} do not start with a media type ` +
        "such as video/x-raw, so they cannot be written as a caps filter",
    );
  }
  if (i === 0) {
    const scan = scanCaps(`${caps} !`, 0);
    if ("bang" in scan && trimEndSpace(caps) === caps && scan.bang === caps.length + 1) {
      return caps;
    }
  }
  return `"${caps.replace(/[\\"]/g, "\\$&")}"`;
}

function propertyText(value: unknown, where: string): string {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  throw new Error(
    `formatLaunch: ${where} is ${String(value)}; expected a string, number or boolean`,
  );
}

/**
 * Writes a description as launch text that parseLaunch reads back to the
 * same description, for descriptions in the form parseLaunch produces (names
 * set, string values, no empty `properties`). Numbers and booleans are
 * written as their text and so come back as strings. Elements keep their
 * order, and so do links; elements get `name=` only when they are referred
 * to or their name differs from `<type><index>`. Values and caps are
 * double-quoted only when they need it. The text is for parseLaunch (and
 * gst_parse_launch), not a shell command line: caps such as
 * `video/x-raw,format=(string)I420` are not quoted for a shell. Throws an
 * Error for what launch syntax cannot say (unknown link ends, names with '.',
 * a referenced name that is not an identifier, caps without a media type...).
 */
export function formatLaunch(description: ExplicitDescription): string {
  const { elements, links } = description;
  if (elements.length === 0) {
    throw new Error("formatLaunch: a pipeline description needs at least one element");
  }
  const names = elements.map((element, index) => {
    if (!IDENTIFIER.test(element.type)) {
      throw new Error(
        `formatLaunch: element ${index} has type ${JSON.stringify(element.type)}, ` +
          "which is not a factory name",
      );
    }
    const property = element.properties?.name;
    if (property !== undefined && typeof property !== "string") {
      throw new Error(`formatLaunch: element ${index} has a name property that is not a string`);
    }
    if (property !== undefined && element.name !== undefined && property !== element.name) {
      throw new Error(
        `formatLaunch: element ${index} is named both '${element.name}' and '${property}'`,
      );
    }
    const name = element.name ?? property ?? defaultElementName(element.type, index);
    if (name === "" || name.includes(".")) {
      throw new Error(
        `formatLaunch: element ${index} has name ${JSON.stringify(name)}; ` +
          "names must be non-empty and without '.'",
      );
    }
    return name;
  });
  const indexes = new Map<string, number>();
  names.forEach((name, index) => {
    if (indexes.has(name)) {
      throw new Error(
        `formatLaunch: elements ${indexes.get(name)} and ${index} are both '${name}'`,
      );
    }
    indexes.set(name, index);
  });

  const end = (text: string, where: string) => {
    const dot = text.indexOf(".");
    const name = dot < 0 ? text : text.slice(0, dot);
    const pad = dot < 0 ? undefined : text.slice(dot + 1);
    const index = indexes.get(name);
    if (index === undefined) {
      throw new Error(`formatLaunch: ${where} '${text}' names no element of the description`);
    }
    if (pad !== undefined && !IDENTIFIER.test(pad)) {
      throw new Error(`formatLaunch: ${where} '${text}' has a pad name launch syntax cannot write`);
    }
    return { index, pad };
  };
  const ends = links.map((link, j) => ({
    from: end(link.from, `links[${j}].from`),
    to: end(link.to, `links[${j}].to`),
    caps: link.caps === undefined ? undefined : formatCaps(link.caps),
  }));

  // Plan chains: elements in order, links in order. A chain goes on while the
  // next link runs from its last element to the next element to write, with
  // no pad names; other links start or end with a reference ('demux.video_0').
  type Item = string | { element: number };
  const chains: Item[][] = [];
  const referenced = new Set<number>();
  const reference = (e: { index: number; pad?: string }) => {
    referenced.add(e.index);
    return `${names[e.index]}.${e.pad ?? ""}`;
  };
  let chain: Item[] = [];
  let tail: number | null = null;
  let i = 0;
  let j = 0;
  const endChain = () => {
    chains.push(chain);
    chain = [];
    tail = null;
  };
  const writeLink = () => {
    const link = ends[j++];
    chain.push("!");
    if (link.caps !== undefined) chain.push(link.caps, "!");
    if (link.to.index === i && link.to.pad === undefined) {
      chain.push({ element: i });
      tail = i++;
    } else {
      chain.push(reference(link.to));
      endChain();
    }
  };
  while (i < elements.length || j < ends.length) {
    if (tail !== null) {
      if (j < ends.length && ends[j].from.index === tail && ends[j].from.pad === undefined) {
        writeLink();
      } else {
        endChain();
      }
    } else if (j < ends.length && ends[j].from.index < i) {
      chain.push(reference(ends[j].from));
      writeLink();
    } else {
      chain.push({ element: i });
      tail = i++;
    }
  }
  if (chain.length > 0) chains.push(chain);

  const elementText = (index: number): string => {
    const element = elements[index];
    const name = names[index];
    const parts = [element.type];
    if (referenced.has(index) || name !== defaultElementName(element.type, index)) {
      if (referenced.has(index) && !IDENTIFIER.test(name)) {
        throw new Error(
          `formatLaunch: element ${index} is named ${JSON.stringify(name)}, ` +
            "which a reference cannot spell; links to it need a plainer name",
        );
      }
      parts.push(`name=${formatValue(name)}`);
    }
    for (const [key, value] of Object.entries(element.properties ?? {})) {
      if (key === "name") continue;
      if (!IDENTIFIER.test(key)) {
        throw new Error(
          `formatLaunch: element ${index} has property ${JSON.stringify(key)}, ` +
            "which is not a property name",
        );
      }
      parts.push(`${key}=${formatValue(propertyText(value, `${name}.${key}`))}`);
    }
    return parts.join(" ");
  };
  return chains
    .map((items) =>
      items.map((item) => typeof item === "string" ? item : elementText(item.element)).join(" ")
    )
    .join(" ");
}
