/**
 * docs/protocol.md is executable: its marked examples are replayed in
 * document order on one connection against a fresh server, and every
 * documented reply, event and HTTP answer is compared with the real one.
 * The marker scheme and the placeholders are explained in the comment at the
 * top of docs/protocol.md.
 */
import assert from "node:assert/strict";
import { errorCodes } from "../src/errors.ts";
import { requestSchemas } from "../src/protocol.ts";
import { type Reply, type ServerEvent, startServer, TestClient } from "./helpers.ts";

const docPath = "docs/protocol.md";
const docUrl = new URL("../docs/protocol.md", import.meta.url);

/** Every event the server sends; each needs an executable example. */
const eventTypes = [
  "pipelineCreated",
  "pipelineDeleted",
  "pipelineStateChanged",
  "pipelineError",
  "pipelineWarning",
  "pipelineEos",
  "stats",
];

/** Error codes no request can produce on purpose; the doc only describes them. */
const notReproducible = new Set(["INTERNAL"]);

const REPLY_TIMEOUT_MS = 20000;
const EVENT_TIMEOUT_MS = 15000;

type Kind = "request" | "reply" | "event" | "http-get";

interface Example {
  kind: Kind;
  /** Words after the kind: flags (`raw`, `binary`) and `key=value` options. */
  options: Map<string, string>;
  /** For http-get: the path. */
  argument: string | null;
  language: string;
  text: string;
  /** Parsed JSON of the block, unless the block is raw text. */
  json: unknown;
  line: number;
  section: string;
}

function label(example: Example): string {
  return `${example.kind} example at ${docPath}:${example.line} (section "${example.section}")`;
}

/** Reads the marked examples in document order and checks that they are well formed. */
function parseExamples(markdown: string): Example[] {
  const lines = markdown.split("\n");
  const examples: Example[] = [];
  let section = "(top)";
  let inFence = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^```/.test(line)) {
      inFence = !inFence;
      continue;
    }
    if (inFence) continue;
    const heading = line.match(/^#+\s+(.*)$/);
    if (heading) section = heading[1].replaceAll("`", "");
    if (!line.includes("<!-- example")) continue;
    const marker = line.trim().match(/^<!--\s*example:\s*(.*?)\s*-->$/);
    if (!marker) throw new Error(`${docPath}:${i + 1}: malformed example marker: ${line}`);
    const [kind, ...words] = marker[1].split(/\s+/);
    if (!["request", "reply", "event", "http-get"].includes(kind)) {
      throw new Error(`${docPath}:${i + 1}: unknown example kind '${kind}'`);
    }
    let argument: string | null = null;
    if (kind === "http-get") {
      argument = words.shift() ?? null;
      if (!argument?.startsWith("/")) {
        throw new Error(`${docPath}:${i + 1}: http-get needs a path starting with '/'`);
      }
    }
    const options = new Map<string, string>();
    for (const word of words) {
      const [key, value] = word.split("=", 2);
      options.set(key, value ?? "");
    }
    let j = i + 1;
    while (j < lines.length && lines[j].trim() === "") j++;
    const fence = lines[j]?.match(/^```(\S*)\s*$/);
    if (!fence) {
      throw new Error(`${docPath}:${i + 1}: example marker is not followed by a fenced block`);
    }
    const start = j + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    if (end === lines.length) throw new Error(`${docPath}:${j + 1}: fenced block is not closed`);
    const text = lines.slice(start, end).join("\n");
    const example: Example = {
      kind: kind as Kind,
      options,
      argument,
      language: fence[1],
      text,
      json: undefined,
      line: j + 1,
      section,
    };
    const isJson = !(kind === "request" && options.has("raw")) &&
      !(kind === "http-get" && fence[1] !== "json");
    if (isJson) {
      if (fence[1] !== "json") throw new Error(`${label(example)}: the block must be json`);
      try {
        example.json = JSON.parse(text);
      } catch (error) {
        throw new Error(`${label(example)} is not valid JSON: ${(error as Error).message}`);
      }
    }
    examples.push(example);
    i = end;
  }
  // Each request has exactly one documented reply before the next request.
  let open: Example | null = null;
  let requested = false;
  for (const example of examples) {
    if (example.kind === "request") {
      requested = true;
      if (open) throw new Error(`${label(open)} has no documented reply`);
      open = example;
    } else if (example.kind === "reply") {
      if (!open) throw new Error(`${label(example)} does not follow a request`);
      open = null;
    } else if (example.kind === "event" && !requested) {
      throw new Error(`${label(example)} comes before any request`);
    }
  }
  if (open) throw new Error(`${label(open)} has no documented reply`);
  return examples;
}

const timestampPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function show(value: unknown): string {
  return value === undefined ? "(missing)" : JSON.stringify(value);
}

/**
 * Where `actual` differs from the documented `expected`, or null when it
 * matches: documented keys must be present and equal (extra keys are
 * allowed), arrays must have the same length, and the placeholders
 * "<any>", "<string>", "<number>", "<timestamp>" and "prefix<...>" match by kind.
 */
function mismatch(expected: unknown, actual: unknown, path = "$"): string | null {
  if (typeof expected === "string") {
    const ok = expected === "<any>"
      ? actual !== undefined
      : expected === "<string>"
      ? typeof actual === "string"
      : expected === "<number>"
      ? typeof actual === "number"
      : expected === "<timestamp>"
      ? typeof actual === "string" && timestampPattern.test(actual)
      : expected.endsWith("<...>")
      ? typeof actual === "string" && actual.startsWith(expected.slice(0, -"<...>".length))
      : actual === expected;
    return ok ? null : `at ${path}: expected ${show(expected)}, got ${show(actual)}`;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `at ${path}: expected an array, got ${show(actual)}`;
    if (actual.length !== expected.length) {
      return `at ${path}: expected ${expected.length} items, got ${actual.length}: ${show(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const found = mismatch(expected[i], actual[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) {
      return `at ${path}: expected an object, got ${show(actual)}`;
    }
    for (const [key, value] of Object.entries(expected)) {
      if (!Object.hasOwn(actual, key)) return `at ${path}.${key}: missing`;
      const found = mismatch(value, (actual as Record<string, unknown>)[key], `${path}.${key}`);
      if (found) return found;
    }
    return null;
  }
  return Object.is(expected, actual)
    ? null
    : `at ${path}: expected ${show(expected)}, got ${show(actual)}`;
}

function fail(example: Example, problem: string, actual?: unknown): never {
  const documented = example.json === undefined ? example.text : JSON.stringify(example.json);
  throw new Error(
    `${label(example)} does not match the real server: ${problem}\n` +
      `  documented: ${documented}` +
      (actual === undefined ? "" : `\n  real:       ${JSON.stringify(actual)}`),
  );
}

/** The bytes or text to send for a request example. */
function requestData(example: Example): string | Uint8Array {
  let text = example.options.has("raw") ? example.text : JSON.stringify(example.json);
  const padTo = example.options.get("pad-to");
  if (padTo !== undefined) {
    const size = Number(padTo);
    const length = new TextEncoder().encode(text).length;
    if (!Number.isInteger(size) || size < length) {
      throw new Error(`${label(example)}: pad-to=${padTo} is smaller than the request`);
    }
    text += " ".repeat(size - length);
  }
  return example.options.has("binary") ? new TextEncoder().encode(text) : text;
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function isReply(message: ServerEvent | Reply): boolean {
  return message.type === "result" || message.type === "error";
}

/** Checks a text answer: `#` lines verbatim, sample lines by series name and labels (values vary). */
function textMismatch(documented: string, real: string): string | null {
  const realLines = real.split("\n");
  for (const line of documented.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      if (!realLines.includes(line)) return `line not found: ${line}`;
    } else {
      const series = line.slice(0, line.lastIndexOf(" ") + 1);
      if (!series.trim() || !realLines.some((l) => l.startsWith(series))) {
        return `series not found: ${series.trim() || line}`;
      }
    }
  }
  return null;
}

Deno.test("docs/protocol.md documents every request type, event and error code with an example", async () => {
  const markdown = await Deno.readTextFile(docUrl);
  const examples = parseExamples(markdown);
  const json = (kind: Kind) =>
    examples.filter((e) => e.kind === kind && e.json !== undefined).map((e) =>
      e.json as Record<string, unknown>
    );
  for (const type of Object.keys(requestSchemas)) {
    assert.ok(
      json("reply").some((r) => r.request === type && r.ok === true),
      `${docPath} has no example of a successful '${type}' request`,
    );
    assert.ok(markdown.includes(`### ${type}`), `${docPath} has no '### ${type}' section`);
  }
  for (const type of eventTypes) {
    assert.ok(json("event").some((e) => e.type === type), `${docPath} has no '${type}' event`);
  }
  for (const code of errorCodes) {
    assert.ok(markdown.includes(`### ${code}`), `${docPath} has no '### ${code}' section`);
    if (notReproducible.has(code)) continue;
    assert.ok(
      json("reply").some((r) => (r.error as { code?: string } | undefined)?.code === code),
      `${docPath} has no reply example with error code ${code}`,
    );
  }
});

Deno.test("docs/protocol.md example checker tells matching from differing replies", () => {
  const documented = {
    ok: true,
    payload: { id: "a", createdAt: "<timestamp>", state: "PLAYING", debug: "../gst<...>" },
    list: [1, "<number>"],
  };
  const real = {
    ok: true,
    extra: 1,
    payload: {
      id: "a",
      createdAt: "2025-01-02T03:04:05.678Z",
      state: "PLAYING",
      debug: "../gstbasesink.c",
    },
    list: [1, 2],
  };
  assert.equal(mismatch(documented, real), null);
  assert.match(
    mismatch(documented, { ...real, payload: { ...real.payload, state: "NULL" } }) ?? "",
    /\$\.payload\.state: expected "PLAYING", got "NULL"/,
  );
  assert.match(mismatch(documented, { ...real, list: [1] }) ?? "", /expected 2 items/);
  assert.match(mismatch({ a: "<any>" }, {}) ?? "", /\$\.a: missing/);
  assert.match(mismatch({ a: "<timestamp>" }, { a: "yesterday" }) ?? "", /expected "<timestamp>"/);
  assert.match(mismatch({ a: "x<...>" }, { a: "yx" }) ?? "", /expected "x<...>"/);
  assert.throws(
    () => parseExamples("<!-- example: request -->\n```json\n{}\n```\n"),
    /has no documented reply/,
  );
  assert.throws(() => parseExamples("<!-- example: reqest -->\n```json\n{}\n```\n"), /unknown/);
});

Deno.test("docs/protocol.md examples work against the real server", async () => {
  const examples = parseExamples(await Deno.readTextFile(docUrl));
  const server = await startServer();
  let client: TestClient | undefined;
  try {
    client = await TestClient.connect(server.url);
    const received = client.received;
    /** Events are looked for from the message index where the last request was sent. */
    let windowStart = 0;
    const used = new Set<number>();
    let reply: Reply | undefined;
    let skipping = false;

    const findEvent = async (example: Example): Promise<void> => {
      const matches = (m: ServerEvent | Reply, i: number) =>
        i >= windowStart && !used.has(i) && !isReply(m) && mismatch(example.json, m) === null;
      for (;;) {
        const index = received.findIndex(matches);
        if (index >= 0) {
          used.add(index);
          return;
        }
        try {
          await client!.waitForNext(
            (m) => matches(m, received.length - 1),
            EVENT_TIMEOUT_MS,
            label(example),
          );
        } catch {
          const type = (example.json as { type?: string }).type;
          const seen = received.slice(windowStart).filter((m) => m.type === type);
          fail(
            example,
            `no matching event within ${EVENT_TIMEOUT_MS} ms; '${type}' events received since ` +
              `the last request: ${seen.length}` +
              seen.slice(-3).map((m) => `\n  - ${mismatch(example.json, m)}: ${show(m)}`).join(""),
          );
        }
      }
    };

    for (const example of examples) {
      switch (example.kind) {
        case "request": {
          const unless = example.options.get("unless-exists");
          skipping = unless !== undefined && await pathExists(unless);
          if (skipping) break;
          windowStart = received.length;
          try {
            const data = requestData(example);
            const next = client.waitForNext<Reply>(isReply, REPLY_TIMEOUT_MS, "a reply");
            client.socket.send(data);
            reply = await next;
          } catch (error) {
            fail(example, `no reply: ${(error as Error).message}`);
          }
          break;
        }
        case "reply": {
          if (skipping) break;
          const problem = mismatch(example.json, reply);
          if (problem) fail(example, problem, reply);
          break;
        }
        case "event":
          if (!skipping) await findEvent(example);
          break;
        case "http-get": {
          const response = await fetch(`${server.httpUrl}${example.argument}`);
          const body = await response.text();
          const status = Number(example.options.get("status") ?? 200);
          if (response.status !== status) {
            fail(example, `HTTP status ${response.status}, documented ${status}`, body);
          }
          if (example.json !== undefined) {
            let parsed: unknown;
            try {
              parsed = JSON.parse(body);
            } catch {
              fail(example, "the answer is not JSON", body);
            }
            const problem = mismatch(example.json, parsed);
            if (problem) fail(example, problem, parsed);
          } else {
            const problem = textMismatch(example.text, body);
            if (problem) fail(example, problem, body);
          }
          break;
        }
      }
    }
  } finally {
    await client?.close();
    await server.stop();
  }
});
