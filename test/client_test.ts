/**
 * src/client.ts against the real server: every request through its method, every reply and
 * event checked against the zod schemas of src/messages.ts (which proves those schemas true),
 * typed errors, event iterators, reconnection with the subscription sent again, token auth; and
 * GET /schema.json, which must be docs/schema.json and name every message.
 */
import assert from "node:assert/strict";
import { type EventType, GstClient, GstClientError } from "../src/client.ts";
import type { GstClientOptions, ServerEvent } from "../src/client.ts";
import { parseServerMessage } from "../src/api/messages.ts";
import { eventTypes, requestSchemas, type RequestType } from "../src/api/protocol.ts";
import { definitionNames, schemaText } from "../src/api/schema.ts";
import { startServer } from "./helpers.ts";

const requestTypes = Object.keys(requestSchemas) as RequestType[];

/** Records every message the server sends a client, and each one that does not fit its schema. */
class MessageCheck {
  /** "result:TYPE", "error" and "event:TYPE" for each kind of message seen. */
  readonly seen = new Set<string>();
  readonly misfits: string[] = [];

  readonly onMessage = (message: unknown) => {
    const { type, request } = message as { type: string; request?: string };
    this.seen.add(
      type === "result" ? `result:${request}` : type === "error" ? type : `event:${type}`,
    );
    try {
      parseServerMessage(message);
    } catch (error) {
      this.misfits.push(`${JSON.stringify(message).slice(0, 500)}\n  ${error}`);
    }
  };

  assertAllFit(): void {
    assert.deepEqual(this.misfits, [], "messages that do not fit their schema");
  }
}

function connect(url: string, check: MessageCheck, options: GstClientOptions = {}) {
  return GstClient.connect(url, { onMessage: check.onMessage, ...options });
}

/** Reads `events` until one matches; fails after `timeoutMs` naming `what`. */
function waitForEvent<E extends ServerEvent, F extends E>(
  events: AsyncIterator<E>,
  predicate: (event: E) => event is F,
  what: string,
  timeoutMs?: number,
): Promise<F>;
function waitForEvent<E extends ServerEvent>(
  events: AsyncIterator<E>,
  predicate: (event: E) => boolean,
  what: string,
  timeoutMs?: number,
): Promise<E>;
async function waitForEvent<E extends ServerEvent>(
  events: AsyncIterator<E>,
  predicate: (event: E) => boolean,
  what: string,
  timeoutMs = 15000,
): Promise<E> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([events.next(), timeout]);
      if (next.done) throw new Error(`The events ended before ${what}`);
      if (predicate(next.value)) return next.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

function eventFor<T extends EventType>(type: T, id: string) {
  return (event: ServerEvent): event is Extract<ServerEvent, { type: T }> =>
    event.type === type && (event.payload as { id?: string }).id === id;
}

/** The next call of a listener registration (onReconnect, onDisconnect). */
function once<T>(register: (listener: (value: T) => void) => () => void): Promise<T> {
  return new Promise((resolve) => {
    const off = register((value) => {
      off();
      resolve(value);
    });
  });
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<GstClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof GstClientError, `expected a GstClientError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** A port that was free a moment ago (listen on 0, read it, close). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const videotest = (
  id: string,
  sourceProperties: Record<string, string | number | boolean> = {},
) => ({
  id,
  pipeline: {
    elements: [
      { type: "videotestsrc", name: "src", properties: sourceProperties },
      { type: "fakesink", name: "out", properties: { sync: true } },
    ],
  },
});

Deno.test("every request through the client; every reply and event fits its schema", async () => {
  const server = await startServer();
  const check = new MessageCheck();
  const client = await connect(server.url, check);
  const events = client.events();
  try {
    const subscription = await client.subscribe({ statsIntervalMs: 200 });
    assert.deepEqual(subscription, {
      events: [...eventTypes],
      pipelines: null,
      statsIntervalMs: 200,
    });

    const created = await client.createPipeline({
      ...videotest("demo", { pattern: "ball" }),
      description: "client test",
    });
    assert.equal(created.id, "demo");
    assert.equal(created.state, "NULL");
    assert.equal(created.description, "client test");
    await waitForEvent(events, eventFor("pipelineCreated", "demo"), "pipelineCreated");

    const { pipelines } = await client.getPipelines();
    assert.deepEqual(pipelines.map((p) => p.id), ["demo"]);
    const details = await client.getPipeline({ id: "demo" });
    assert.ok("elements" in details);
    assert.deepEqual(details.elements.map((e) => e.name), ["src", "out"]);
    assert.match(details.launch ?? "", /^videotestsrc /);

    const read = await client.getElementProperty({
      id: "demo",
      element: "src",
      property: "pattern",
    });
    assert.equal(read.value, "ball");
    const set = await client.setElementProperty({
      id: "demo",
      element: "src",
      property: "pattern",
      value: "smpte",
    });
    assert.equal(set.value, "smpte");

    assert.deepEqual(await client.startPipeline({ id: "demo" }), { id: "demo", state: "PLAYING" });
    await waitForEvent(
      events,
      (e) =>
        e.type === "pipelineStateChanged" && e.payload.id === "demo" && e.payload.new === "PLAYING",
      "the state change to PLAYING",
    );
    const stats = await waitForEvent(
      events,
      (e) =>
        e.type === "stats" &&
        e.payload.pipelines.some((p) => p.id === "demo" && p.sinks.length > 0),
      "stats of the playing pipeline",
    );
    assert.equal(stats.type, "stats");

    assert.deepEqual(await client.pausePipeline({ id: "demo" }), { id: "demo", state: "PAUSED" });
    assert.deepEqual(await client.seek({ id: "demo", position: 1000 }), {
      id: "demo",
      position: 1000,
      rate: 1,
    });
    assert.equal((await client.startPipeline({ id: "demo" })).state, "PLAYING");
    const graph = await client.getPipelineGraph({ id: "demo" });
    assert.match(graph.dot, /digraph/);

    assert.deepEqual(await client.sendEos({ id: "demo" }), { id: "demo" });
    await waitForEvent(events, eventFor("pipelineEos", "demo"), "pipelineEos");
    assert.deepEqual(await client.stopPipeline({ id: "demo" }), { id: "demo", state: "NULL" });
    assert.deepEqual(await client.deletePipeline({ id: "demo" }), { id: "demo" });
    await waitForEvent(events, eventFor("pipelineDeleted", "demo"), "pipelineDeleted");

    const listed = await client.listElements({ filter: "videotestsrc" });
    assert.ok(listed.elements.some((e) => e.name === "videotestsrc"));
    assert.ok((await client.listElements()).elements.length > listed.elements.length);
    const inspected = await client.inspectElement({ type: "videotestsrc" });
    const pattern = inspected.properties.find((p) => p.name === "pattern");
    assert.ok(pattern?.values?.some((v) => v.nick === "ball"));

    // gst-launch text; the stream of 30 buffers ends by itself.
    await client.createPipeline({
      id: "launch",
      pipeline: "videotestsrc num-buffers=30 ! fakesink",
    });
    await client.startPipeline({ id: "launch" });
    await waitForEvent(events, eventFor("pipelineEos", "launch"), "the end of the launch stream");
    const launched = await client.getPipeline({ id: "launch" });
    assert.ok("launch" in launched);
    assert.match(launched.launch ?? "", /^videotestsrc num-buffers=30 ! fakesink/);
    await client.deletePipeline({ id: "launch" });

    // An error while running, with a restart policy: pipelineError, then pipelineRestarting.
    await client.createPipeline({
      id: "broken",
      restart: "on-failure",
      pipeline: {
        elements: [
          { type: "videotestsrc" },
          { type: "identity", name: "fail", properties: { "error-after": 10 } },
          { type: "fakesink", properties: { sync: true } },
        ],
      },
    });
    await client.startPipeline({ id: "broken" });
    const failed = await waitForEvent(events, eventFor("pipelineError", "broken"), "pipelineError");
    assert.equal(failed.payload.element, "fail");
    await waitForEvent(events, eventFor("pipelineRestarting", "broken"), "pipelineRestarting");
    const broken = await client.getPipeline({ id: "broken" });
    assert.equal(broken.lastError?.element, "fail");
    await client.deletePipeline({ id: "broken" });

    // A sink that gets every buffer late warns (as in docs/protocol.md, pipelineWarning).
    await client.createPipeline({
      id: "slow",
      pipeline: {
        elements: [
          { type: "videotestsrc", properties: { "is-live": true } },
          { type: "identity", properties: { "sleep-time": 40000 } },
          { type: "fakesink", name: "out", properties: { sync: true, "max-lateness": 0 } },
        ],
      },
    });
    await client.startPipeline({ id: "slow" });
    await waitForEvent(events, eventFor("pipelineWarning", "slow"), "pipelineWarning");
    await client.deletePipeline({ id: "slow" });

    // Recording a served path: started, a segment, listed, stopped; recorded again, its path
    // goes away (recordingError), stopped and deleted.
    await client.createPipeline({
      id: "cam",
      pipeline: "videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=15 ! " +
        "rtspserversink path=cam",
    });
    await client.startPipeline({ id: "cam" });
    const recording = await client.startRecording({ path: "cam", segmentSeconds: 1 });
    // "waiting" until the path's stream has data, which x264enc may not have given yet
    assert.ok(["recording", "waiting"].includes(recording.state), recording.state);
    assert.equal(recording.lastError, null);
    await waitForEvent(events, (e) => e.type === "recordingStarted", "recordingStarted");
    const segment = await waitForEvent(
      events,
      (e) => e.type === "recordingSegment",
      "recordingSegment",
    );
    const recorded = await client.listRecordings({ path: "cam" });
    assert.ok(
      segment.type === "recordingSegment" &&
        recorded.segments.some((s) => s.file === segment.payload.file),
    );
    assert.equal((await client.stopRecording({ path: "cam" })).path, "cam");
    await waitForEvent(events, (e) => e.type === "recordingStopped", "recordingStopped");
    await client.startRecording({ path: "cam", format: "mkv" });
    await client.stopPipeline({ id: "cam" });
    await waitForEvent(events, (e) => e.type === "recordingError", "recordingError");
    await client.stopRecording({ path: "cam" });
    const deleted = await client.deleteRecording({ path: "cam" });
    assert.ok(deleted.deleted.length > 0);
    await client.deletePipeline({ id: "cam" });
    const { nodes } = await client.getNodes();
    assert.equal(nodes.length, 1); // SQLite: this server alone
    assert.equal(nodes[0].up, true);
    await client.createPipeline({ id: "stay", pipeline: "videotestsrc ! fakesink" });
    const stayed = await client.movePipeline({ id: "stay", node: nodes[0].id });
    assert.deepEqual(stayed, { id: "stay", node: nodes[0].id, rtspUrl: nodes[0].rtspUrl });
    await client.deletePipeline({ id: "stay" });

    // Typed errors.
    const notFound = await rejectsWith(client.getPipeline({ id: "nope" }), "PIPELINE_NOT_FOUND");
    assert.equal(notFound.request, "getPipeline");
    assert.deepEqual(notFound.details, { id: "nope" });
    assert.equal(notFound.message, "No pipeline with id 'nope'");
    const invalid = await rejectsWith(client.seek({ id: "demo", position: -1 }), "INVALID_REQUEST");
    assert.deepEqual(invalid.details, { path: "payload.position" });

    // Every request's result, the error reply and every event were seen, and fit.
    check.assertAllFit();
    const expected = [
      ...requestTypes.map((type) => `result:${type}`),
      "error",
      ...eventTypes.map((type) => `event:${type}`),
    ];
    assert.deepEqual(expected.filter((kind) => !check.seen.has(kind)), []);
  } finally {
    await client.close();
    await server.stop();
  }
});

Deno.test("GET /schema.json is docs/schema.json, with every request, reply and event", async () => {
  const documented = await Deno.readTextFile(new URL("../docs/schema.json", import.meta.url));
  assert.equal(schemaText(), documented, "docs/schema.json is out of date: run deno task schema");
  const server = await startServer();
  try {
    const response = await fetch(`${server.httpUrl}/schema.json`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/schema+json");
    assert.equal(await response.text(), documented);
  } finally {
    await server.stop();
  }
  const schema = JSON.parse(documented);
  const defs = schema.$defs as Record<string, { properties: Record<string, { const?: string }> }>;
  for (const type of requestTypes) {
    assert.equal(defs[definitionNames.request(type)]?.properties.type.const, type);
    assert.equal(defs[definitionNames.result(type)]?.properties.request.const, type);
  }
  for (const type of eventTypes) {
    assert.equal(defs[definitionNames.event(type)]?.properties.type.const, type);
  }
  assert.equal(defs[definitionNames.error].properties.type.const, "error");
  // Every $ref points at a definition.
  for (const [, ref] of documented.matchAll(/"\$ref": "#\/\$defs\/([^"]+)"/g)) {
    assert.ok(ref in defs, `$ref to a missing definition ${ref}`);
  }
});

Deno.test("event iterators: each from when it started; ending one; close ends them all", async () => {
  const server = await startServer();
  const check = new MessageCheck();
  const client = await connect(server.url, check);
  try {
    const early = client.events("pipelineCreated");
    await client.createPipeline(videotest("a"));
    const late = client.events("pipelineCreated", "pipelineDeleted");
    await client.createPipeline(videotest("b"));
    await client.deletePipeline({ id: "a" });
    await client.deletePipeline({ id: "b" });

    const lateSeen: string[] = [];
    for await (const event of late) {
      lateSeen.push(`${event.type} ${event.payload.id}`);
      if (event.type === "pipelineDeleted" && event.payload.id === "b") break;
    }
    assert.deepEqual(lateSeen, ["pipelineCreated b", "pipelineDeleted a", "pipelineDeleted b"]);
    assert.equal((await late.next()).done, true, "an iterator left with break is done");

    assert.equal((await early.next()).value?.payload.id, "a");
    assert.equal((await early.next()).value?.payload.id, "b");
    await early.return();
    assert.equal((await early.next()).done, true);

    const open = client.events();
    const waiting = open.next();
    await client.close();
    assert.equal((await waiting).done, true, "close() ends the iterators");
    assert.equal((await client.events().next()).done, true);
    await rejectsWith(client.getPipelines(), "CLOSED");
    check.assertAllFit();
  } finally {
    await client.close();
    await server.stop();
  }
});

Deno.test("a dropped connection rejects requests in flight; unanswered requests time out", async () => {
  // A stand-in server that never answers getPipeline and drops the connection on getPipelines.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      if (JSON.parse(event.data).type === "getPipelines") socket.close(4000, "dropped on purpose");
    };
    return response;
  });
  const client = await GstClient.connect(`ws://127.0.0.1:${server.addr.port}/`, {
    reconnect: false,
  });
  try {
    const timedOut = await rejectsWith(
      client.getPipeline({ id: "x" }, { timeoutMs: 200 }),
      "TIMEOUT",
    );
    assert.equal(timedOut.request, "getPipeline");
    const disconnected = once(client.onDisconnect.bind(client));
    const lost = await rejectsWith(client.getPipelines(), "CONNECTION_LOST");
    assert.match(lost.message, /lost/);
    assert.deepEqual(await disconnected, {
      code: 4000,
      reason: "dropped on purpose",
      reconnecting: false,
    });
    assert.equal(client.connected, false);
    await rejectsWith(client.getPipelines(), "CLOSED");
  } finally {
    await client.close();
    await server.shutdown();
  }
});

Deno.test("gives up after maxAttempts: waiting requests reject, iterators end", async () => {
  let upgrades = 0;
  // Takes the first connection, drops it on getPipelines, and refuses every later one.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (++upgrades > 1) return new Response("unavailable", { status: 503 });
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = () => socket.close(4000, "dropped on purpose");
    return response;
  });
  const client = await GstClient.connect(`ws://127.0.0.1:${server.addr.port}/`, {
    reconnect: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 },
  });
  try {
    const events = client.events();
    await rejectsWith(client.getPipelines(), "CONNECTION_LOST");
    const waiting = await rejectsWith(client.getPipeline({ id: "x" }), "CLOSED");
    assert.match(waiting.message, /after 3 attempts/);
    assert.equal(upgrades, 4);
    assert.equal((await events.next()).done, true);
  } finally {
    await client.close();
    await server.shutdown();
  }
});

Deno.test("reconnects by itself after a server restart and subscribes again", async () => {
  const port = String(freePort());
  let server = await startServer({ GSTREAMER_WS_PORT: port });
  const check = new MessageCheck();
  const client = await connect(server.url, check, {
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
  });
  try {
    const filter = { events: ["pipelineCreated", "pipelineDeleted"] satisfies EventType[] };
    const subscribed = await client.subscribe(filter);
    assert.deepEqual(subscribed.events, filter.events);

    const disconnected = once(client.onDisconnect.bind(client));
    assert.equal(await server.stop(), 0);
    assert.deepEqual(await disconnected, {
      code: 1001,
      reason: "Server shutting down",
      reconnecting: true,
    });
    // Registered once the old server is gone: this reconnection can only be to the new one.
    const reconnected = once(client.onReconnect.bind(client));
    // Made while disconnected: it waits for the connection.
    const queued = client.getPipelines();
    server = await startServer({ GSTREAMER_WS_PORT: port });
    const info = await reconnected;
    assert.deepEqual(await queued, { pipelines: [] });
    assert.ok(info.attempts >= 1);
    assert.deepEqual(info.subscription, { ...subscribed, events: filter.events });
    assert.equal(client.connected, true);

    // Requests work again, and the server-side filter is back: starting the pipeline sends state
    // changes before its reply, so without the filter one would arrive before pipelineDeleted.
    const events = client.events();
    assert.deepEqual((await client.getPipelines()).pipelines, []);
    await client.createPipeline(videotest("again", { "num-buffers": 1000 }));
    await client.startPipeline({ id: "again" });
    await client.deletePipeline({ id: "again" });
    const received: string[] = [];
    await waitForEvent(events, (event) => {
      received.push(event.type);
      return event.type === "pipelineDeleted";
    }, "pipelineDeleted");
    assert.deepEqual(received, ["pipelineCreated", "pipelineDeleted"]);
    check.assertAllFit();
  } finally {
    await client.close();
    await server.stop();
  }
});

Deno.test("token auth: as a subprotocol or in the query; refused without it", async () => {
  const token = "client-test-token";
  const server = await startServer({ GSTREAMER_AUTH_TOKEN: token });
  try {
    await rejectsWith(GstClient.connect(server.url, { reconnect: false }), "CONNECT_FAILED");
    await rejectsWith(
      GstClient.connect(server.url, { token: "wrong-token", reconnect: false }),
      "CONNECT_FAILED",
    );
    const check = new MessageCheck();
    for (const options of [{ token }, { token, tokenIn: "query" as const, protocols: ["gst"] }]) {
      const client = await connect(server.url, check, options);
      try {
        assert.deepEqual(await client.getPipelines(), { pipelines: [] });
      } finally {
        await client.close();
      }
    }
    check.assertAllFit();
    const schema = await fetch(`${server.httpUrl}/schema.json`);
    assert.equal(schema.status, 200, "the schema needs no token");
    await schema.body?.cancel();
  } finally {
    await server.stop();
  }
});

Deno.test("the token goes as the subprotocols bearer and TOKEN, or in the query", async () => {
  const seen: { query: string | null; protocols: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const protocols = request.headers.get("sec-websocket-protocol");
    seen.push({ query: new URL(request.url).searchParams.get("token"), protocols });
    return Deno.upgradeWebSocket(request, protocols ? { protocol: "bearer" } : {}).response;
  });
  const url = `ws://127.0.0.1:${server.addr.port}/gstreamer`;
  try {
    for (
      const options of [
        { token: "plain-token", protocols: ["gst"] },
        { token: "plain-token", tokenIn: "query" as const },
        // A subprotocol cannot hold "/" or "=": such a token goes in the query.
        { token: "a/b=c-token" },
      ]
    ) {
      const client = await GstClient.connect(url, { ...options, reconnect: false });
      await client.close();
    }
    assert.deepEqual(seen, [
      { query: null, protocols: "gst, bearer, plain-token" },
      { query: "plain-token", protocols: null },
      { query: "a/b=c-token", protocols: null },
    ]);
  } finally {
    await server.shutdown();
  }
});
