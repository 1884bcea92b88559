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
const BUFFER_TYPES = new Set(["buffer", "GstBuffer"]);
/** Type names GStreamer reads as each kind of range's type (gst_structure_gtype_from_abbr, g_type_from_name). */
const INT_TYPES = new Set(["int", "i", "gint"]);
const INT64_TYPES = new Set(["gint64"]);
const DOUBLE_TYPES = new Set(["double", "d", "gdouble"]);
const FRACTION_TYPES = new Set(["fraction", "GstFraction"]);
/** Words GStreamer's int parser takes (gst_value_deserialize_int_helper), as numbers. */
const INT_WORDS: Record<string, bigint> = {
  little_endian: 1234n,
  big_endian: 4321n,
  byte_order: 1234n,
};

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

/**
 * What is wrong with the text of one value of GStreamer type `typeName` (a GstBuffer property, a
 * GstValueArray of ranges): the same checks as for a caps field; null when nothing is.
 */
export function valueTextProblem(text: string, typeName: string): string | null {
  try {
    const reader = new CapsReader(text);
    reader.value(typeName, BUFFER_TYPES.has(typeName) ? "buffer" : null);
    return null;
  } catch (error) {
    if (error instanceof CapsProblem) return error.message;
    return null;
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

  value(field: string, type: string | null): void {
    this.#skipSpace();
    this.#value(field, type);
  }

  #value(field: string, outerType: string | null): void {
    // A cast may come on an item of a list or array too: `{ (int)[5,1], 2 }`.
    let type = outerType;
    if (this.#peek() === "(") {
      const start = this.#at;
      this.#skipBalanced("(", ")");
      type = this.text.slice(start + 1, this.#at - 1).trim();
      this.#skipSpace();
    }
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
    } else if (BUFFER_TYPES.has(type) && !/^([0-9a-fA-F]{2})*$/.test(value)) {
      throw new CapsProblem(
        `field '${field}': a (${type}) is written as hex digits, two a byte; ${
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
function checkRange(field: string, rangeType: string | null, written: string[]): void {
  const where = `field '${field}': the range [${written.join(", ")}]`;
  // A cast on a bound gives the range its type: `[ (int)5, (int)1 ]`.
  let type = rangeType;
  const bounds = written.map((bound) => {
    const cast = bound.match(/^\(\s*([^)]*?)\s*\)\s*(.*)$/);
    if (!cast) return bound;
    type ??= cast[1];
    return cast[2];
  });
  const untyped = type === null;
  const ints = bounds.map(readInt);
  const asInts = ints.every((value) => value !== null);
  if (
    (INT_TYPES.has(type ?? "") || INT64_TYPES.has(type ?? "") || (untyped && asInts)) &&
    (bounds.length === 2 || bounds.length === 3)
  ) {
    if (!asInts) {
      throw new CapsProblem(`${where} must have whole numbers for bounds`);
    }
    const [start, end, step = 1n] = ints as bigint[];
    if (start >= end) throw new CapsProblem(`${where} must start below its end`);
    if (step <= 0n) throw new CapsProblem(`${where} must have a step above 0`);
    if (start % step !== 0n || end % step !== 0n) {
      throw new CapsProblem(`${where} must have ends that are multiples of its step`);
    }
    return;
  }
  const fractions = bounds.map(readFraction);
  if (
    (FRACTION_TYPES.has(type ?? "") || (untyped && fractions.every((f) => f !== null))) &&
    bounds.length === 2
  ) {
    if (fractions.some((fraction) => fraction === null)) {
      throw new CapsProblem(`${where} must have fractions (n/d) for bounds`);
    }
    const [[startN, startD], [endN, endD]] = fractions as [number, number][];
    if (startD === 0 || endD === 0) return; // GStreamer refuses these itself
    if (startN / startD >= endN / endD) throw new CapsProblem(`${where} must start below its end`);
    return;
  }
  if ((DOUBLE_TYPES.has(type ?? "") || untyped) && bounds.length === 2) {
    const [start, end] = bounds.map(readDouble);
    if (start === null || end === null) {
      if (untyped) return; // not numbers: not a range GStreamer reads either
      throw new CapsProblem(`${where} must have numbers for bounds`);
    }
    if (!(start < end)) throw new CapsProblem(`${where} must start below its end`);
  }
}

/** An int as GStreamer reads one: base 0 (0x hex, a leading 0 octal), or a word it knows. */
function readInt(text: string): bigint | null {
  if (text in INT_WORDS) return INT_WORDS[text];
  if (text === "max") return 2n ** 31n - 1n;
  if (text === "min") return -(2n ** 31n);
  const match = text.match(/^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/);
  if (!match) return null;
  const digits = match[2];
  const value = /^0[xX]/.test(digits)
    ? BigInt(digits)
    : digits.length > 1 && digits.startsWith("0")
    ? BigInt(`0o${digits.slice(1)}`)
    : BigInt(digits);
  return match[1] === "-" ? -value : value;
}

function readFraction(text: string): [number, number] | null {
  const match = text.match(/^([+-]?\d+)\s*\/\s*([+-]?\d+)$/);
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/** A double as GStreamer reads one (g_ascii_strtod, and the words max and min); NaN is kept. */
function readDouble(text: string): number | null {
  if (text === "max") return Number.MAX_VALUE;
  if (text === "min") return -Number.MAX_VALUE;
  if (/^[+-]?(nan|inf|infinity)$/i.test(text)) return Number(text.replace(/inf$/i, "Infinity"));
  if (text === "" || !/^[+-]?[\d.]/.test(text)) return null;
  const value = Number(text);
  return Number.isNaN(value) ? null : value;
}
