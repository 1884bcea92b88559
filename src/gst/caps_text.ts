/**
 * Caps and structure text that GStreamer 1.22 parses and then refuses with a CRITICAL, found before
 * it is handed over: with G_DEBUG=fatal-criticals (as the tests run) that CRITICAL aborts the
 * server, and without it the value is half made. Each case was seen to abort `gst-launch-1.0` with
 * G_DEBUG=fatal-criticals:
 * - a structure name that is not a letter then letters, digits or / - _ . : + (gst_structure_new_empty
 *   asserts it), also inside a nested `(structure)` or `(GstCaps)` field;
 * - a range whose start is not below its end (int, double, fraction), an int range whose step is
 *   not positive or does not divide both ends, also inside a list `{}` or an array `<>`;
 * - a `(buffer)` that is not hex (gst_buffer_unmap of no buffer);
 * - a `(GstTagList)`/`(taglist)` field that does not start with "taglist".
 * Text this reader does not follow is left to GStreamer, which refuses it with an error of its own.
 */

const NAME = /^[A-Za-z][A-Za-z0-9/\-_.:+]*$/;
const NAME_CHARACTER = /[A-Za-z0-9_+\-/:.]/;
const STRUCTURE_TYPES = new Set(["structure", "GstStructure", "caps", "GstCaps"]);
const TAG_LIST_TYPES = new Set(["taglist", "GstTagList"]);

/** What is wrong with caps or structure text, in words; null when nothing this reader checks is. */
export function capsTextProblem(text: string): string | null {
  try {
    new CapsReader(text).structures();
    return null;
  } catch (error) {
    if (error instanceof CapsProblem) return error.message;
    return null; // not followed here: GStreamer's parser decides
  }
}

class CapsProblem extends Error {}
class NotFollowed extends Error {}

class CapsReader {
  #at = 0;
  constructor(readonly text: string) {}

  structures(): void {
    while (this.#skipSpace() < this.text.length) {
      this.#structure(";");
      if (this.#peek() === ";") this.#at++;
    }
  }

  /** One structure: its name, its features in parentheses, then `, field=value` up to `end`. */
  #structure(end: string): void {
    const name = this.#peek() === '"' ? this.#quoted() : this.#word(NAME_CHARACTER);
    const special = ["ANY", "EMPTY", "NONE"].includes(name);
    if (name !== "" && !special && !NAME.test(name)) {
      throw new CapsProblem(
        `${JSON.stringify(name)} is not a media type or structure name (a letter, then ` +
          "letters, digits or / - _ . : +)",
      );
    }
    if (this.#peek() === "(") this.#skipBalanced("(", ")");
    for (;;) {
      this.#skipSpace();
      const next = this.#peek();
      if (next === undefined || end.includes(next)) return;
      if (next !== ",") throw new NotFollowed();
      this.#at++;
      this.#skipSpace();
      if (this.#peek() === undefined || end.includes(this.#peek()!)) return; // a trailing comma
      const field = this.#word(/[^=\s;]/);
      this.#skipSpace();
      if (this.#peek() !== "=") throw new NotFollowed();
      this.#at++;
      this.#skipSpace();
      let type: string | null = null;
      if (this.#peek() === "(") {
        const start = this.#at;
        this.#skipBalanced("(", ")");
        type = this.text.slice(start + 1, this.#at - 1).trim();
        this.#skipSpace();
      }
      this.#value(field, type);
    }
  }

  #value(field: string, type: string | null): void {
    const next = this.#peek();
    if (next === "{" || next === "<") {
      const close = next === "{" ? "}" : ">";
      this.#at++;
      for (;;) {
        this.#skipSpace();
        if (this.#peek() === close) break;
        this.#value(field, type);
        this.#skipSpace();
        if (this.#peek() === ",") this.#at++;
        else if (this.#peek() !== close) throw new NotFollowed();
      }
      this.#at++;
      return;
    }
    if (next === "[" && type !== null && STRUCTURE_TYPES.has(type)) {
      this.#at++;
      this.#skipSpace();
      this.#structure("]");
      if (this.#peek() !== "]") throw new NotFollowed();
      this.#at++;
      return;
    }
    if (next === "[") {
      this.#at++;
      const bounds = this.#word(/[^\]]/).split(",").map((bound) => bound.trim());
      if (this.#peek() !== "]") throw new NotFollowed();
      this.#at++;
      checkRange(field, type, bounds);
      return;
    }
    const value = next === '"' ? this.#quoted() : this.#word(/[^,;}>\]\s]/);
    if (type === null) return;
    if (STRUCTURE_TYPES.has(type)) {
      const inner = capsTextProblem(value);
      if (inner !== null) throw new CapsProblem(`field '${field}': ${inner}`);
    } else if (type === "buffer" && !/^([0-9a-fA-F]{2})*$/.test(value)) {
      throw new CapsProblem(
        `field '${field}': a (buffer) is written as hex digits, two a byte; ${
          JSON.stringify(value)
        } is not`,
      );
    } else if (TAG_LIST_TYPES.has(type) && !value.startsWith("taglist")) {
      throw new CapsProblem(
        `field '${field}': a (${type}) is written as "taglist, tag=value, ..."`,
      );
    }
  }

  #peek(): string | undefined {
    return this.text[this.#at];
  }

  #skipSpace(): number {
    while (this.#at < this.text.length && /\s/.test(this.text[this.#at])) this.#at++;
    return this.#at;
  }

  #word(character: RegExp): string {
    const start = this.#at;
    while (this.#at < this.text.length && character.test(this.text[this.#at])) this.#at++;
    return this.text.slice(start, this.#at);
  }

  /** A quoted string, unescaped; the reader is left after its closing quote. */
  #quoted(): string {
    let value = "";
    for (this.#at++; this.#at < this.text.length && this.#peek() !== '"'; this.#at++) {
      if (this.#peek() === "\\") this.#at++;
      value += this.text[this.#at] ?? "";
    }
    if (this.#peek() !== '"') throw new NotFollowed();
    this.#at++;
    return value;
  }

  #skipBalanced(open: string, close: string): void {
    let depth = 0;
    do {
      const character = this.#peek();
      if (character === undefined) throw new NotFollowed();
      if (character === open) depth++;
      else if (character === close) depth--;
      this.#at++;
    } while (depth > 0);
  }
}

/** A range's bounds as GStreamer reads them: ints, doubles or fractions, by its type or by their look. */
function checkRange(field: string, type: string | null, bounds: string[]): void {
  const where = `field '${field}': the range [${bounds.join(", ")}]`;
  const integers = bounds.every((bound) => /^[+-]?\d+$/.test(bound));
  const fractions = bounds.every((bound) => /^[+-]?\d+\s*\/\s*[+-]?\d+$/.test(bound));
  if ((type === null || type === "int" || type === "i") && integers) {
    if (bounds.length !== 2 && bounds.length !== 3) return;
    const [start, end, step = 1n] = bounds.map(BigInt);
    if (start >= end) throw new CapsProblem(`${where} must start below its end`);
    if (step <= 0n) throw new CapsProblem(`${where} must have a step above 0`);
    if (start % step !== 0n || end % step !== 0n) {
      throw new CapsProblem(`${where} must have ends that are multiples of its step`);
    }
  } else if ((type === null || type === "fraction") && fractions && bounds.length === 2) {
    const [start, end] = bounds.map((bound) => bound.split("/").map((part) => Number(part)));
    if (start[1] === 0 || end[1] === 0) return; // GStreamer refuses these itself
    if (start[0] / start[1] >= end[0] / end[1]) {
      throw new CapsProblem(`${where} must start below its end`);
    }
  } else if (
    (type === null || type === "double" || type === "d") && bounds.length === 2 &&
    bounds.every((bound) => bound !== "" && Number.isFinite(Number(bound)))
  ) {
    if (Number(bounds[0]) >= Number(bounds[1])) {
      throw new CapsProblem(`${where} must start below its end`);
    }
  }
}
