/**
 * docs/protocol.md is executable: its marked examples are replayed in
 * document order on one connection against a fresh server (with a token,
 * small limits and temporary data and media directories; restarted where the
 * document says so), and every documented reply, event, HTTP answer and log
 * line is compared with the real one. The marker scheme and the placeholders
 * are explained in the comment at the top of docs/protocol.md. Coverage: every
 * request type (in its own section), event and error code has an example, and
 * README.md's protocol summary names every request type and event.
 */
import assert from "node:assert/strict";
import { errorCodes } from "../src/api/errors.ts";
import { eventTypes, requestSchemas } from "../src/api/protocol.ts";
import {
  type Reply,
  type ServerEvent,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";

const docPath = "docs/protocol.md";
const docUrl = new URL("../docs/protocol.md", import.meta.url);
const readmeUrl = new URL("../README.md", import.meta.url);

/** Error codes no request can produce on purpose; the doc only describes them. */
const notReproducible = new Set(["INTERNAL", "STORAGE_FAILED"]);

/** The token the docs server requires; the client connects with `?token=`. */
const DOCS_TOKEN = "docs-example-token";

/**
 * The docs server's settings besides its data and media directories (fresh temporary ones);
 * small limits so that the limit examples can reach them. The comment at the top of the doc
 * lists them.
 */
const docsSettings: Record<string, string> = {
  GSTREAMER_AUTH_TOKEN: DOCS_TOKEN,
  GSTREAMER_ALLOWED_ORIGINS: "https://console.example",
  GSTREAMER_MAX_PIPELINES: "2",
  GSTREAMER_MAX_CLIENTS: "1",
  GSTREAMER_MAX_REQUESTS_PER_SECOND: "50",
  GSTREAMER_RECORDINGS_MIN_FREE_MB: "1",
  GSTREAMER_NODE_ID: "node-a",
};

/** After a burst the request budget is empty; it refills fully within a second. */
const BURST_PAUSE_MS = 1000;

const REPLY_TIMEOUT_MS = 20000;
const EVENT_TIMEOUT_MS = 15000;

const kinds = ["request", "reply", "event", "http-get", "upgrade", "restart-server"] as const;
type Kind = typeof kinds[number];

/** The options each kind takes: flags (no value) and `key=value` options. */
const optionRules: Record<Kind, Record<string, "flag" | "value">> = {
  request: {
    raw: "flag",
    binary: "flag",
    "pad-to": "value",
    "unless-exists": "value",
    burst: "value",
  },
  reply: {},
  event: {},
  "http-get": { status: "value", "no-token": "flag" },
  upgrade: { status: "value", origin: "value", "no-token": "flag" },
  // restart-server takes settings (GSTREAMER_NAME=value) instead.
  "restart-server": {},
};

const settingPattern = /^GSTREAMER_[A-Z0-9_]+$/;

interface Example {
  kind: Kind;
  /** Words after the kind: flags (`raw`, `binary`) and `key=value` options; settings for restart-server. */
  options: Map<string, string | undefined>;
  /** For http-get and upgrade: the path. */
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

/** Checks the options of a marker against what its kind takes. */
function checkOptions(kind: Kind, options: Map<string, string | undefined>, where: string): void {
  for (const [key, value] of options) {
    if (kind === "restart-server") {
      if (!settingPattern.test(key) || value === undefined) {
        throw new Error(`${where}: restart-server takes settings NAME=VALUE, not '${key}'`);
      }
      continue;
    }
    const rule = optionRules[kind][key];
    if (rule === undefined) throw new Error(`${where}: ${kind} has no option '${key}'`);
    if (rule === "flag" && value !== undefined) {
      throw new Error(`${where}: '${key}' takes no value`);
    }
    if (rule === "value" && !value) throw new Error(`${where}: '${key}' needs a value`);
  }
  const status = options.get("status");
  if (status !== undefined && !/^[1-5]\d\d$/.test(status)) {
    throw new Error(`${where}: status=${status} is not an HTTP status`);
  }
  if (kind === "upgrade" && (status === undefined || status === "101")) {
    throw new Error(`${where}: an upgrade example documents a refusal: give its status (not 101)`);
  }
  const burst = options.get("burst");
  if (burst !== undefined) {
    if (!/^\d+$/.test(burst) || Number(burst) < 2) {
      throw new Error(`${where}: burst=${burst} is not a whole number of at least 2`);
    }
    for (const other of ["raw", "binary", "pad-to", "unless-exists"]) {
      if (options.has(other)) throw new Error(`${where}: burst does not go with ${other}`);
    }
  }
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
    const where = `${docPath}:${i + 1}`;
    const marker = line.trim().match(/^<!--\s*example:\s*(.*?)\s*-->$/);
    if (!marker) throw new Error(`${where}: malformed example marker: ${line}`);
    const [kind, ...words] = marker[1].split(/\s+/);
    if (!(kinds as readonly string[]).includes(kind)) {
      throw new Error(`${where}: unknown example kind '${kind}'`);
    }
    let argument: string | null = null;
    if (kind === "http-get" || kind === "upgrade") {
      argument = words.shift() ?? null;
      if (!argument?.startsWith("/")) {
        throw new Error(`${where}: ${kind} needs a path starting with '/'`);
      }
    }
    const options = new Map<string, string | undefined>();
    for (const word of words) {
      const equals = word.indexOf("=");
      const key = equals < 0 ? word : word.slice(0, equals);
      if (options.has(key)) throw new Error(`${where}: '${key}' is given twice`);
      options.set(key, equals < 0 ? undefined : word.slice(equals + 1));
    }
    checkOptions(kind as Kind, options, where);
    let j = i + 1;
    while (j < lines.length && lines[j].trim() === "") j++;
    const fence = lines[j]?.match(/^```(\S*)\s*$/);
    if (!fence) {
      throw new Error(`${where}: example marker is not followed by a fenced block`);
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
      !(kind === "http-get" && fence[1] !== "json") && kind !== "restart-server";
    if (kind === "restart-server" && fence[1] !== "text") {
      throw new Error(`${label(example)}: the block must be text (lines of the server's output)`);
    }
    if (isJson) {
      if (fence[1] !== "json") throw new Error(`${label(example)}: the block must be json`);
      try {
        example.json = JSON.parse(text);
      } catch (error) {
        throw new Error(`${label(example)} is not valid JSON: ${(error as Error).message}`);
      }
    }
    if (options.has("burst")) {
      const requestId = (example.json as { requestId?: unknown } | null)?.requestId;
      if (typeof requestId !== "string" && typeof requestId !== "number") {
        throw new Error(`${label(example)}: a burst request needs a requestId to tell its reply`);
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
      throw new Error(`${label(example)} comes before any request (since the server started)`);
    } else if (example.kind === "restart-server") {
      if (open) throw new Error(`${label(example)} comes between a request and its reply`);
      requested = false;
    }
  }
  if (open) throw new Error(`${label(open)} has no documented reply`);
  return examples;
}

const timestampPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Whether `text` is `pattern` in full, where each "<...>" in the pattern stands for any text. */
function matchesPattern(pattern: string, text: string): boolean {
  const parts = pattern.split("<...>").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`, "s").test(text);
}

function show(value: unknown): string {
  return value === undefined ? "(missing)" : JSON.stringify(value);
}

/**
 * Where `actual` differs from the documented `expected`, or null when it
 * matches: documented keys must be present and equal (extra keys are
 * allowed), arrays must have the same length, and the placeholders
 * "<any>", "<string>", "<number>", "<timestamp>" match by kind; in any other
 * string each "<...>" stands for any text.
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
      : expected.includes("<...>")
      ? typeof actual === "string" && matchesPattern(expected, actual)
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

/**
 * Sends a WebSocket upgrade request on a connection of its own and reads the answer, which
 * must be a refusal (the server closes the connection after it).
 */
async function upgradeRequest(
  httpUrl: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const url = new URL(path, httpUrl);
  const connection = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const timer = setTimeout(() => connection.close(), REPLY_TIMEOUT_MS);
  try {
    const request = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
      `Host: ${url.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    await connection.write(new TextEncoder().encode(`${request.join("\r\n")}\r\n\r\n`));
    const decoder = new TextDecoder();
    let answer = "";
    const buffer = new Uint8Array(16384);
    for (;;) {
      const headEnd = answer.indexOf("\r\n\r\n");
      if (headEnd >= 0) {
        const head = answer.slice(0, headEnd);
        const status = Number(head.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
        if (status === 101) return { status, body: "" };
        const length = Number(head.match(/^content-length:\s*(\d+)/im)?.[1] ?? 0);
        const body = answer.slice(headEnd + 4);
        if (new TextEncoder().encode(body).length >= length) return { status, body };
      }
      let read: number | null;
      try {
        read = await connection.read(buffer);
      } catch {
        read = null;
      }
      if (read === null) {
        throw new Error(`the connection ended after ${JSON.stringify(answer)}`);
      }
      answer += decoder.decode(buffer.subarray(0, read), { stream: true });
    }
  } finally {
    clearTimeout(timer);
    try {
      connection.close();
    } catch {
      // already closed
    }
  }
}

/** The JSON of the blocks of this kind, with the example each came from. */
function jsonBlocks(examples: Example[], kind: Kind): Record<string, unknown>[] {
  return examples.filter((e) => e.kind === kind && e.json !== undefined).map((e) =>
    e.json as Record<string, unknown>
  );
}

Deno.test("docs/protocol.md documents every request type, event and error code with an example", async () => {
  const markdown = await Deno.readTextFile(docUrl);
  const examples = parseExamples(markdown);
  for (const type of Object.keys(requestSchemas)) {
    assert.ok(
      jsonBlocks(examples, "reply").some((r) => r.request === type && r.ok === true),
      `${docPath} has no example of a successful '${type}' request`,
    );
    assert.ok(markdown.includes(`### ${type}`), `${docPath} has no '### ${type}' section`);
    // The request's own section shows it, not only some other section.
    assert.ok(
      examples.some((e) =>
        e.kind === "request" && e.section === type &&
        (e.json as { type?: unknown } | undefined)?.type === type
      ),
      `${docPath}: section '### ${type}' has no example of a '${type}' request`,
    );
  }
  // Every event the server sends (src/protocol.ts) needs an executable example.
  for (const type of eventTypes) {
    assert.ok(
      jsonBlocks(examples, "event").some((e) => e.type === type),
      `${docPath} has no '${type}' event`,
    );
  }
  // WebSocket replies, and the HTTP answers (http-get, upgrade) for the codes given before a connection.
  const codes = new Set(
    [
      ...jsonBlocks(examples, "reply"),
      ...jsonBlocks(examples, "http-get"),
      ...jsonBlocks(
        examples,
        "upgrade",
      ),
    ].map((block) => (block.error as { code?: string } | undefined)?.code),
  );
  for (const code of errorCodes) {
    assert.ok(markdown.includes(`### ${code}`), `${docPath} has no '### ${code}' section`);
    if (notReproducible.has(code)) continue;
    assert.ok(codes.has(code), `${docPath} has no example answer with error code ${code}`);
  }
  for (const [name, value] of Object.entries(docsSettings)) {
    assert.ok(
      markdown.includes(`${name}=${value}`),
      `${docPath} does not say that its examples run with ${name}=${value}`,
    );
  }
});

Deno.test("README.md's protocol summary names every request type and event, and links the reference", async () => {
  const readme = await Deno.readTextFile(readmeUrl);
  const start = readme.indexOf("\n## Protocol\n");
  assert.ok(start >= 0, "README.md has no '## Protocol' section");
  const next = readme.indexOf("\n## ", start + 1);
  const summary = readme.slice(start, next < 0 ? undefined : next);
  assert.ok(
    summary.includes("(docs/protocol.md)"),
    "README.md's protocol summary does not link docs/protocol.md",
  );
  for (const type of [...Object.keys(requestSchemas), ...eventTypes]) {
    assert.ok(
      summary.includes(`\`${type}\``),
      `README.md's protocol summary does not name \`${type}\``,
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
  // "<...>" anywhere in a string: the text around it must be there, in full.
  assert.equal(mismatch({ a: "dir (<...>) only" }, { a: "dir (/tmp/m.1) only" }), null);
  assert.match(mismatch({ a: "dir (<...>) only" }, { a: "dir (/tmp/m) only!" }) ?? "", /only/);
  assert.match(mismatch({ a: "<...>/clip" }, { a: 7 }) ?? "", /expected "<...>\/clip"/);
  assert.equal(matchesPattern("a.b<...>", "a.bc"), true);
  assert.equal(matchesPattern("a.b<...>", "axbc"), false);
  assert.equal(matchesPattern("Pipelines: <...>, 1 restored", "Pipelines: x, 2 restored"), false);

  const parses = (marker: string, block = "```json\n{}\n```") => () =>
    parseExamples(`<!-- example: ${marker} -->\n${block}\n`);
  const requestReply = (marker: string, request = "{}") => () =>
    parseExamples(
      `<!-- example: ${marker} -->\n\`\`\`json\n${request}\n\`\`\`\n` +
        "<!-- example: reply -->\n```json\n{}\n```\n",
    );
  assert.throws(parses("request"), /has no documented reply/);
  assert.throws(parses("reqest"), /unknown/);
  assert.throws(requestReply("request rw"), /request has no option 'rw'/);
  assert.throws(requestReply("request raw=1"), /'raw' takes no value/);
  assert.throws(requestReply("request pad-to"), /'pad-to' needs a value/);
  assert.throws(requestReply("request burst=1", '{"requestId": "b"}'), /at least 2/);
  assert.throws(requestReply("request burst=many", '{"requestId": "b"}'), /at least 2/);
  assert.throws(requestReply("request burst=3"), /needs a requestId/);
  assert.throws(requestReply("request burst=3 binary", '{"requestId": "b"}'), /does not go with/);
  assert.equal(requestReply("request burst=3", '{"requestId": "b"}')().length, 2);
  assert.throws(parses("http-get /metrics status=abc"), /not an HTTP status/);
  assert.throws(parses("http-get /metrics no-token=yes"), /takes no value/);
  assert.throws(parses("http-get /metrics origin=x"), /http-get has no option 'origin'/);
  assert.throws(parses("upgrade /gstreamer"), /give its status/);
  assert.throws(parses("upgrade /gstreamer status=101"), /give its status/);
  assert.throws(parses("upgrade gstreamer status=401"), /path starting with/);
  assert.throws(parses("upgrade /gstreamer status=401", "```text\nno\n```"), /must be json/);
  assert.equal(parses("upgrade /gstreamer status=403 origin=https://a.example")().length, 1);
  assert.throws(parses("restart-server", "```json\n{}\n```"), /must be text/);
  assert.throws(parses("restart-server verbose", "```text\n```"), /takes settings/);
  assert.throws(parses("restart-server GSTREAMER_X", "```text\n```"), /takes settings/);
  assert.throws(parses("event"), /comes before any request/);
  assert.throws(
    () =>
      parseExamples(
        "<!-- example: request -->\n```json\n{}\n```\n" +
          "<!-- example: restart-server -->\n```text\n```\n" +
          "<!-- example: reply -->\n```json\n{}\n```\n",
      ),
    /between a request and its reply/,
  );
  assert.throws(
    () =>
      parseExamples(
        "<!-- example: request -->\n```json\n{}\n```\n<!-- example: reply -->\n```json\n{}\n```\n" +
          "<!-- example: restart-server GSTREAMER_MAX_CLIENTS=2 -->\n```text\n```\n" +
          "<!-- example: event -->\n```json\n{}\n```\n",
      ),
    /comes before any request/,
  );
});

Deno.test("docs/protocol.md examples work against the real server", async () => {
  const examples = parseExamples(await Deno.readTextFile(docUrl));
  const dataDir = await Deno.makeTempDir({ prefix: "docs_data_" });
  const mediaDir = await Deno.makeTempDir({ prefix: "docs_media_" });
  const recordingsDir = await Deno.makeTempDir({ prefix: "docs_recordings_" });
  const baseEnv = {
    ...docsSettings,
    GSTREAMER_DATA_DIR: dataDir,
    GSTREAMER_MEDIA_DIR: mediaDir,
    GSTREAMER_RECORDINGS_DIR: recordingsDir,
  };
  const connect = (server: ServerProcess) =>
    TestClient.connect(`${server.url}?token=${encodeURIComponent(DOCS_TOKEN)}`);
  let server: ServerProcess | undefined;
  let client: TestClient | undefined;
  try {
    server = await startServer(baseEnv);
    client = await connect(server);
    /** Events are looked for from the message index where the last request was sent. */
    let windowStart = 0;
    const used = new Set<number>();
    let reply: Reply | undefined;
    let skipping = false;

    const findEvent = async (example: Example): Promise<void> => {
      const received = client!.received;
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

    /** Sends the request N times without waiting (N-1 copies without its requestId) and waits for every reply. */
    /**
     * The burst, and the reply to its last request. The budget refills while the burst arrives: a
     * pause of 1/rate s between two of its messages (a loaded machine) lets one more through, so
     * a burst whose last request was let through is sent again, up to three times in all; a
     * server that limits nothing still fails.
     */
    const sendBurst = async (example: Example, count: number): Promise<Reply | undefined> => {
      const received = client!.received;
      const { requestId, ...copy } = example.json as Record<string, unknown>;
      let last: Reply | undefined;
      for (let attempt = 1; attempt <= 3 && (last === undefined || last.ok); attempt++) {
        const from = received.length;
        const replies = () => received.slice(from).filter(isReply) as Reply[];
        const all = client!.waitForNext(
          () => replies().length >= count,
          REPLY_TIMEOUT_MS,
          `${count} replies`,
        );
        for (let i = 1; i < count; i++) client!.socket.send(JSON.stringify(copy));
        client!.socket.send(JSON.stringify(example.json));
        await all;
        await new Promise((resolve) => setTimeout(resolve, BURST_PAUSE_MS));
        last = replies().find((r) => r.requestId === requestId);
      }
      return last;
    };

    for (const example of examples) {
      switch (example.kind) {
        case "request": {
          const unless = example.options.get("unless-exists");
          skipping = unless !== undefined && await pathExists(unless);
          if (skipping) break;
          windowStart = client.received.length;
          try {
            const burst = example.options.get("burst");
            if (burst !== undefined) {
              reply = await sendBurst(example, Number(burst));
            } else {
              const data = requestData(example);
              const next = client.waitForNext<Reply>(isReply, REPLY_TIMEOUT_MS, "a reply");
              client.socket.send(data);
              reply = await next;
            }
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
          const headers: Record<string, string> = example.options.has("no-token")
            ? {}
            : { authorization: `Bearer ${DOCS_TOKEN}` };
          const response = await fetch(`${server.httpUrl}${example.argument}`, { headers });
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
        case "upgrade": {
          const headers: Record<string, string> = example.options.has("no-token")
            ? {}
            : { Authorization: `Bearer ${DOCS_TOKEN}` };
          const origin = example.options.get("origin");
          if (origin !== undefined) headers.Origin = origin;
          let answer: { status: number; body: string };
          try {
            answer = await upgradeRequest(server.httpUrl, example.argument!, headers);
          } catch (error) {
            fail(example, `no answer: ${(error as Error).message}`);
          }
          const status = Number(example.options.get("status"));
          if (answer.status !== status) {
            fail(example, `HTTP status ${answer.status}, documented ${status}`, answer.body);
          }
          let parsed: unknown;
          try {
            parsed = JSON.parse(answer.body);
          } catch {
            fail(example, "the answer is not JSON", answer.body);
          }
          const problem = mismatch(example.json, parsed);
          if (problem) fail(example, problem, parsed);
          break;
        }
        case "restart-server": {
          await client.close();
          const code = await server.stop();
          if (code !== 0) fail(example, `the server exited with status ${code} on SIGTERM`);
          const settings = Object.fromEntries(
            [...example.options].map(([name, value]) => [name, value ?? ""]),
          );
          server = await startServer({ ...baseEnv, ...settings });
          client = await connect(server);
          windowStart = 0;
          used.clear();
          reply = undefined;
          skipping = false;
          const logs = server.logs;
          for (const line of example.text.split("\n").filter((l) => l.trim() !== "")) {
            try {
              await waitUntil(
                () => logs.some((l) => matchesPattern(line, l)),
                EVENT_TIMEOUT_MS,
                `a line of the server's output that matches ${JSON.stringify(line)}`,
              );
            } catch (error) {
              fail(example, (error as Error).message, logs.join("\n"));
            }
          }
          break;
        }
      }
    }
  } finally {
    await client?.close();
    await server?.stop();
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(mediaDir, { recursive: true });
    await Deno.remove(recordingsDir, { recursive: true });
  }
});
