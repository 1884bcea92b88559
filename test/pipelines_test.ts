/**
 * The pipeline protocol against the real server and real GStreamer:
 * the seed's messages verbatim, lifecycle, run-time failures and events.
 */
import assert from "node:assert/strict";
import {
  addTimings,
  type Observed,
  type Reply,
  segmentsSent,
  serverTimings,
  startServer,
  TestClient,
} from "./helpers.ts";

const server = await startServer();
const client = await TestClient.connect(server.url);

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, "server exits 0 on SIGTERM");
});

function expectOk(reply: Reply): Reply {
  assert.equal(reply.ok, true, `expected ok, got ${JSON.stringify(reply.error)}`);
  assert.equal(reply.type, "result");
  return reply;
}

function expectError(reply: Reply, code: string): Reply {
  assert.equal(reply.ok, false, `expected ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.type, "error");
  assert.equal(reply.error?.code, code, reply.error?.message ?? "");
  assert.ok(reply.error?.message, "errors carry a message");
  return reply;
}

let counter = 0;
/** A unique pipeline id per test, so tests do not see each other's events. */
function freshId(label: string): string {
  return `${label}-${++counter}`;
}

async function createAndStart(id: string, elements: unknown[]): Promise<Reply> {
  expectOk(await client.request("createPipeline", { id, pipeline: { elements } }));
  return expectOk(await client.request("startPipeline", { id }));
}

Deno.test("the seed's messages work verbatim, headless autovideosink included", async () => {
  const seed = [
    {
      type: "createPipeline",
      payload: {
        id: "pipeline-123",
        description: "Example Pipeline",
        pipeline: {
          elements: [
            { type: "videotestsrc", properties: { pattern: "ball" } },
            { type: "autovideosink" },
          ],
        },
      },
    },
    { type: "startPipeline", payload: { id: "pipeline-123" } },
    { type: "getPipelines" },
    { type: "stopPipeline", payload: { id: "pipeline-123" } },
    { type: "deletePipeline", payload: { id: "pipeline-123" } },
  ];
  const replies: Reply[] = [];
  for (const message of seed) {
    replies.push(await client.sendRaw(JSON.stringify(message)));
  }
  for (const [i, reply] of replies.entries()) {
    expectOk(reply);
    assert.equal(reply.request, seed[i].type);
    assert.equal(reply.requestId, null, "a request without requestId gets null");
  }
  assert.equal(replies[0].payload.id, "pipeline-123");
  assert.equal(replies[0].payload.description, "Example Pipeline");
  assert.equal(replies[1].payload.state, "PLAYING");
  const listed = replies[2].payload.pipelines.find((p: { id: string }) => p.id === "pipeline-123");
  assert.equal(listed.state, "PLAYING");
  assert.equal(listed.description, "Example Pipeline");
  assert.ok(!Number.isNaN(Date.parse(listed.createdAt)));
  assert.equal(listed.lastError, null);
  assert.equal(replies[3].payload.state, "NULL");
  await client.event("pipelineDeleted", (p) => p.id === "pipeline-123");
});

Deno.test("startPipeline reports PLAYING, confirmed by state events", async () => {
  const id = freshId("states");
  const started = await createAndStart(id, [{ type: "videotestsrc" }, { type: "fakesink" }]);
  assert.deepEqual(started.payload, { id, state: "PLAYING" });
  for (const [old, now] of [["NULL", "READY"], ["READY", "PAUSED"], ["PAUSED", "PLAYING"]]) {
    await client.event(
      "pipelineStateChanged",
      (p) => p.id === id && p.old === old && p.new === now,
    );
  }
  const listed = expectOk(await client.request("getPipeline", { id }));
  assert.equal(listed.payload.state, "PLAYING");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("a stopped pipeline can be started again", async () => {
  const id = freshId("restart");
  await createAndStart(id, [{ type: "videotestsrc", properties: { "is-live": true } }, {
    type: "fakesink",
  }]);
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.equal(stopped.payload.state, "NULL");
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  const again = expectOk(await client.request("startPipeline", { id }));
  assert.equal(again.payload.state, "PLAYING");
  await client.nextStats((p) => p.id === id && p.state === "PLAYING" && p.sinks[0]?.rendered > 0);
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("delete while playing frees the pipeline and announces it", async () => {
  const id = freshId("delete-playing");
  await createAndStart(id, [{ type: "videotestsrc", properties: { "is-live": true } }, {
    type: "fakesink",
  }]);
  const deleted = expectOk(await client.request("deletePipeline", { id }));
  assert.deepEqual(deleted.payload, { id });
  await client.event("pipelineDeleted", (p) => p.id === id);
  const listed = expectOk(await client.request("getPipelines"));
  assert.ok(!listed.payload.pipelines.some((p: { id: string }) => p.id === id));
  expectError(await client.request("startPipeline", { id }), "PIPELINE_NOT_FOUND");
});

Deno.test("requests on a pipeline being deleted wait for the delete, then find it gone", async () => {
  // A source that connects and then waits for data that never comes: its start stays under way,
  // and the delete queued behind it takes as long.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const connected = listener.accept().then((conn) => accepted.push(conn));
  const id = freshId("delete-waits");
  try {
    expectOk(
      await client.request("createPipeline", {
        id,
        pipeline: `tcpclientsrc host=127.0.0.1 port=${listener.addr.port} ! fakesink`,
      }),
    );
    const since = client.received.length;
    const starting = client.request("startPipeline", { id });
    await connected;
    const deleting = client.request("deletePipeline", { id });
    const during = Promise.all([
      client.request("getPipeline", { id }),
      client.request("startPipeline", { id }),
      client.request("deletePipeline", { id }),
    ]);
    // The source's peer hangs up: the start ends, and so does the delete behind it.
    for (const conn of accepted) conn.close();
    await starting;
    const deleted = expectOk(await deleting);
    for (const reply of await during) expectError(reply, "PIPELINE_NOT_FOUND");
    // Each was answered after the delete (none ran on the pipeline while it was going), and the
    // delete told one pipelineDeleted, after no state change.
    const replies = client.received.slice(since);
    for (const reply of await during) {
      assert.ok(
        replies.indexOf(reply) > replies.indexOf(deleted),
        `${reply.request} answered first`,
      );
    }
    const told = replies.filter((m) =>
      m.type.startsWith("pipeline") && (m as { payload?: { id?: string } }).payload?.id === id
    );
    assert.equal(told.at(-1)?.type, "pipelineDeleted");
    assert.equal(told.filter((m) => m.type === "pipelineDeleted").length, 1);
  } finally {
    listener.close();
  }
});

Deno.test("EOS from num-buffers is announced and the pipeline returns to NULL", async () => {
  const id = freshId("eos");
  await createAndStart(id, [
    { type: "videotestsrc", properties: { "num-buffers": 10 } },
    { type: "fakesink" },
  ]);
  await client.event("pipelineEos", (p) => p.id === id);
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  const info = expectOk(await client.request("getPipeline", { id }));
  assert.equal(info.payload.state, "NULL");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("a filesrc of a missing file fails with STATE_CHANGE_FAILED and a pipelineError", async () => {
  const id = freshId("missing-file");
  expectOk(
    await client.request("createPipeline", {
      id,
      pipeline: {
        elements: [
          { type: "filesrc", properties: { location: "missing/clip.h264" } },
          { type: "fakesink" },
        ],
      },
    }),
  );
  const reply = expectError(await client.request("startPipeline", { id }), "STATE_CHANGE_FAILED");
  assert.match(reply.error!.message, /filesrc0/);
  const error = await client.event("pipelineError", (p) => p.id === id);
  assert.equal(error.payload.element, "filesrc0");
  assert.match(error.payload.message, /not found|No such file/i);
  assert.equal(typeof error.payload.debug, "string");
  const info = expectOk(await client.request("getPipeline", { id }));
  assert.equal(info.payload.state, "NULL");
  assert.equal(info.payload.lastError.element, "filesrc0");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("an error while playing is announced, the pipeline goes to NULL and keeps the error", async () => {
  const id = freshId("runtime-error");
  // identity posts a real GStreamer error from the streaming thread after five buffers.
  await createAndStart(id, [
    { type: "videotestsrc", properties: { "is-live": true } },
    { type: "capsfilter", properties: { caps: "video/x-raw,width=64,height=48" } },
    { type: "identity", properties: { "error-after": 5 } },
    { type: "fakesink" },
  ]);
  const error = await client.event("pipelineError", (p) => p.id === id);
  assert.equal(error.payload.element, "identity2");
  await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
  const info = expectOk(await client.request("getPipeline", { id }));
  assert.equal(info.payload.lastError.element, "identity2");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("stats carry per-pipeline and server figures every interval", async () => {
  const id = freshId("stats");
  await createAndStart(id, [
    { type: "videotestsrc", properties: { "is-live": true } },
    { type: "fakesink" },
  ]);
  const stats = await client.nextStats((p) => p.id === id && p.sinks[0]?.fps !== null);
  const entry = stats.payload.pipelines.find((p: { id: string }) => p.id === id);
  assert.equal(entry.state, "PLAYING");
  assert.equal(entry.kind, "pipeline");
  assert.ok(entry.uptime > 0);
  // typeof first: null >= 0 holds, and a playing pipeline answers its position query.
  assert.ok(
    typeof entry.position === "number" && entry.position >= 0,
    `position ${entry.position}`,
  );
  assert.equal(entry.duration, null, "a live test source has no duration");
  assert.equal(entry.sinks[0].element, "fakesink1");
  assert.ok(entry.sinks[0].rendered > 0);
  assert.equal(entry.sinks[0].dropped, 0);
  assert.ok(entry.sinks[0].fps > 5 && entry.sinks[0].fps < 60, `fps ${entry.sinks[0].fps}`);
  assert.equal(entry.errors, 0);
  assert.equal(entry.warnings, 0);
  assert.ok(stats.payload.server.rssBytes > 0);
  assert.ok(
    typeof stats.payload.server.cpuPercent === "number" && stats.payload.server.cpuPercent >= 0,
  );
  assert.ok(stats.payload.server.clients >= 1);
  assert.ok(!Number.isNaN(Date.parse(stats.payload.timestamp)));

  const health = await (await fetch(`${server.httpUrl}/healthz`)).json();
  assert.equal(health.status, "ok");
  assert.match(health.gstreamer, /GStreamer 1\./);
  assert.ok(health.pipelines >= 1);
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  assert.match(metrics, new RegExp(`gstreamer_pipeline_state\\{id="${id}"\\} 4`));
  assert.match(
    metrics,
    new RegExp(`gstreamer_sink_rendered_frames\\{id="${id}",element="fakesink1"\\} [1-9]`),
  );
  assert.match(metrics, /gstreamer_server_rss_bytes [1-9]/);
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("/metrics times each request and the phases inside it", async () => {
  const before = await serverTimings(server);
  const id = freshId("timed");
  await createAndStart(id, [{ type: "videotestsrc" }, { type: "fakesink" }]);
  // A start of what already plays, and a delete of what is stopped, change no state: no phase.
  expectOk(await client.request("startPipeline", { id }));
  expectOk(await client.request("stopPipeline", { id }));
  expectOk(await client.request("deletePipeline", { id }));
  // A create that fails: counted as an error, and its build, which failed, is not a phase.
  expectError(
    await client.request("createPipeline", {
      id: freshId("untimed"),
      pipeline: { elements: [{ type: "nosuchelement" }] },
    }),
    "UNKNOWN_ELEMENT",
  );
  // What a client names is never a label of its own.
  expectError(await client.request("noSuchRequest" as "getPipelines", {}), "UNKNOWN_TYPE");
  const after = await serverTimings(server);
  const between = new Map<string, Observed>();
  addTimings(between, before, after);
  const added = (key: string) => between.get(key) ?? { seconds: 0, count: 0 };
  for (
    const [key, count] of Object.entries({
      "createPipeline ok": 1,
      "startPipeline ok": 2,
      "stopPipeline ok": 1,
      "deletePipeline ok": 1,
      "createPipeline error": 1,
      "unknown error": 1,
      build: 1,
      start: 1,
      stop: 1,
    })
  ) {
    assert.equal(added(key).count, count, `${key} observed ${added(key).count} times`);
    assert.ok(added(key).seconds > 0, `${key} took ${added(key).seconds} s`);
  }
  // The row's insert, its two desired states, its removal; the failed create's insert, taken back.
  assert.equal(added("store_write").count, 6);
  assert.ok(![...after.keys()].some((key) => key.startsWith("noSuchRequest")));
});

Deno.test("the server's cpuPercent counts its streaming threads", async () => {
  // A non-live source runs flat out on its streaming thread; the main thread is mostly idle.
  const id = freshId("busy");
  await createAndStart(id, [{ type: "videotestsrc" }, { type: "fakesink" }]);
  try {
    await client.nextStats((p) => p.id === id);
    // The next round's figure covers a whole interval of the busy thread.
    const stats = await client.nextStats((p) => p.id === id);
    const { cpuPercent } = stats.payload.server;
    assert.ok(cpuPercent > 10, `cpuPercent ${cpuPercent} with a thread running flat out`);
    assert.ok(cpuPercent <= 100 * navigator.hardwareConcurrency + 10, `cpuPercent ${cpuPercent}`);
  } finally {
    expectOk(await client.request("deletePipeline", { id }));
  }
});

Deno.test("a client that joins between two stats rounds shares the rounds of those before it", async () => {
  const isStats = (m: { type: string }) => m.type === "stats";
  const first = await TestClient.connect(server.url);
  let second: TestClient | undefined;
  try {
    await first.waitForNext(isStats, 5000, "stats");
    // Half an interval later: counted from its own arrival, it would have rounds of its own.
    await new Promise((resolve) => setTimeout(resolve, 500));
    second = await TestClient.connect(server.url);
    for (let i = 0; i < 3; i++) await second.waitForNext(isStats, 5000, "stats");
    const rounds = (c: TestClient) =>
      c.received.filter(isStats).map((m) =>
        (m as { payload: { timestamp: string } }).payload.timestamp
      );
    const firstRounds = new Set(rounds(first));
    for (const round of rounds(second)) {
      assert.ok(
        firstRounds.has(round),
        `round ${round} only for the second; first got ${[...firstRounds]}`,
      );
    }
  } finally {
    await second?.close();
    await first.close();
  }
});

Deno.test("a stats round read in slices reports every pipeline once", async () => {
  // More pipelines than a slice of the round (STATS_SLICE, src/domain/registry.ts), a few running.
  const ids = Array.from({ length: 130 }, (_, i) => freshId(`sliced-${i}`));
  for (const [i, id] of ids.entries()) {
    const elements = [
      { type: "videotestsrc", properties: { "is-live": true } },
      { type: "fakesink" },
    ];
    expectOk(
      await client.request("createPipeline", {
        id,
        pipeline: { elements },
        ...(i % 40 === 0 ? { desiredState: "playing" } : {}),
      }),
    );
  }
  try {
    const last = ids.at(-1);
    const stats = await client.nextStats((p) => p.id === last);
    const reported = stats.payload.pipelines.map((p: { id: string }) => p.id);
    assert.equal(new Set(reported).size, reported.length, "no pipeline twice");
    assert.deepEqual(ids.filter((id) => !reported.includes(id)), [], "none left out");
    const running = stats.payload.pipelines.filter((p: { id: string; state: string }) =>
      ids.includes(p.id) && p.state === "PLAYING"
    );
    assert.equal(running.length, 4);
  } finally {
    for (const id of ids) expectOk(await client.request("deletePipeline", { id }));
  }
});

Deno.test("20 clients at once all get replies and events", async () => {
  const clients = await Promise.all(
    Array.from({ length: 20 }, () => TestClient.connect(server.url)),
  );
  try {
    const ids = clients.map((_, i) => freshId(`many-${i}`));
    const replies = await Promise.all(
      clients.map((c, i) =>
        c.request("createPipeline", {
          id: ids[i],
          pipeline: { elements: [{ type: "videotestsrc" }, { type: "fakesink" }] },
        })
      ),
    );
    replies.forEach(expectOk);
    const started = await Promise.all(
      clients.map((c, i) => c.request("startPipeline", { id: ids[i] })),
    );
    for (const reply of started) assert.equal(expectOk(reply).payload.state, "PLAYING");
    // Every client sees every pipeline's creation event, not only its own.
    await Promise.all(
      clients.map((c) =>
        Promise.all(ids.map((id) => c.event("pipelineCreated", (p) => p.id === id)))
      ),
    );
    const deleted = await Promise.all(
      clients.map((c, i) => c.request("deletePipeline", { id: ids[i] })),
    );
    deleted.forEach(expectOk);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("a create's event and its reply leave in one write, and so do a delete's", async () => {
  // The server's writes to its clients, as TCP data segments (the store is in memory here).
  const cycles = 50;
  const ids = Array.from({ length: cycles }, () => freshId("one-write"));
  const before = await segmentsSent(server);
  for (const id of ids) {
    expectOk(
      await client.request("createPipeline", {
        id,
        pipeline: { elements: [{ type: "videotestsrc" }, { type: "fakesink" }] },
        desiredState: "playing",
      }),
    );
    expectOk(await client.request("deletePipeline", { id }));
  }
  const perCycle = (await segmentsSent(server) - before) / cycles;
  // Two replies and two events a cycle: four writes when each message leaves on its own.
  assert.ok(perCycle < 3, `${perCycle} writes a cycle; two expected`);
  for (const id of ids) {
    const created = client.received.findIndex((m) =>
      m.type === "pipelineCreated" && (m as { payload: { id: string } }).payload.id === id
    );
    const reply = client.received.findIndex((m) =>
      m.type === "result" && (m as Reply).request === "createPipeline" &&
      (m as Reply).payload?.id === id
    );
    assert.ok(created >= 0 && created < reply, `${id}: pipelineCreated comes before the reply`);
  }
});
Deno.test("unknown element names the closest factories", async () => {
  const reply = expectError(
    await client.request("createPipeline", {
      id: freshId("typo"),
      pipeline: { elements: [{ type: "videotestsrcc" }, { type: "fakesink" }] },
    }),
    "UNKNOWN_ELEMENT",
  );
  assert.ok((reply.error!.details!.suggestions as string[]).includes("videotestsrc"));
  assert.match(reply.error!.message, /videotestsrcc/);
});

Deno.test("errors name what is wrong: every error code", async (t) => {
  const id = freshId("errors");
  const create = (elements: unknown[], pipelineId = id) =>
    client.request("createPipeline", { id: pipelineId, pipeline: { elements } });

  await t.step("UNKNOWN_PROPERTY lists the element's properties", async () => {
    const reply = expectError(
      await create([{ type: "videotestsrc", properties: { patern: "ball" } }, {
        type: "fakesink",
      }]),
      "UNKNOWN_PROPERTY",
    );
    assert.ok((reply.error!.details!.properties as string[]).includes("pattern"));
    assert.match(reply.error!.message, /patern/);
    // The closest names come first, as for a misspelt element type.
    assert.equal((reply.error!.details!.suggestions as string[])[0], "pattern");
    assert.match(reply.error!.message, /has no property 'patern'; closest: pattern, /);
  });
  await t.step("INVALID_PROPERTY_VALUE gives the expected type and range", async () => {
    const reply = expectError(
      await create([{ type: "videotestsrc", properties: { "num-buffers": -5 } }, {
        type: "fakesink",
      }]),
      "INVALID_PROPERTY_VALUE",
    );
    assert.equal(reply.error!.details!.minimum, -1);
    assert.equal(reply.error!.details!.maximum, 2147483647);
    assert.match(reply.error!.message, /-5/);
    const enumReply = expectError(
      await create([{ type: "videotestsrc", properties: { pattern: "balls" } }]),
      "INVALID_PROPERTY_VALUE",
    );
    assert.ok((enumReply.error!.details!.values as string[]).includes("ball"));
  });
  await t.step("LINK_FAILED names both elements and their caps", async () => {
    const reply = expectError(
      await create([{ type: "audiotestsrc" }, { type: "videoconvert" }]),
      "LINK_FAILED",
    );
    assert.equal(reply.error!.details!.from, "audiotestsrc0");
    assert.equal(reply.error!.details!.to, "videoconvert1");
    assert.match(String(reply.error!.details!.fromCaps), /audio\/x-raw/);
    assert.match(String(reply.error!.details!.toCaps), /video\/x-raw/);
  });
  await t.step("ELEMENT_NOT_ALLOWED for a sink that would crash the process", async () => {
    const reply = expectError(
      await create([{ type: "videotestsrc" }, { type: "dfbvideosink" }]),
      "ELEMENT_NOT_ALLOWED",
    );
    assert.match(reply.error!.message, /framebuffer/);
  });
  await t.step("DUPLICATE_ID", async () => {
    expectOk(await create([{ type: "fakesrc" }, { type: "fakesink" }]));
    expectError(await create([{ type: "fakesrc" }, { type: "fakesink" }]), "DUPLICATE_ID");
    expectOk(await client.request("deletePipeline", { id }));
  });
  await t.step("INVALID_ID", async () => {
    for (const bad of ["", "has space", "x".repeat(129), "slash/id", "ünï"]) {
      expectError(await create([{ type: "fakesrc" }], bad), "INVALID_ID");
    }
    expectError(await client.request("startPipeline", { id: "bad id" }), "INVALID_ID");
    expectOk(await create([{ type: "fakesrc" }, { type: "fakesink" }], "a".repeat(128)));
    expectOk(await client.request("deletePipeline", { id: "a".repeat(128) }));
  });
  await t.step("PIPELINE_NOT_FOUND", async () => {
    for (const type of ["startPipeline", "stopPipeline", "deletePipeline", "getPipeline"]) {
      const reply = expectError(
        await client.request(type, { id: "no-such-pipeline" }),
        "PIPELINE_NOT_FOUND",
      );
      assert.match(reply.error!.message, /no-such-pipeline/);
    }
  });
  await t.step("ELEMENT_NOT_FOUND", async () => {
    expectOk(await create([{ type: "fakesrc" }, { type: "fakesink" }]));
    const reply = expectError(
      await client.request("getElementProperty", { id, element: "nope", property: "sync" }),
      "ELEMENT_NOT_FOUND",
    );
    assert.deepEqual(reply.error!.details!.elements, ["fakesrc0", "fakesink1"]);
    expectOk(await client.request("deletePipeline", { id }));
  });
  await t.step("INVALID_REQUEST gives the JSON path of the bad field", async () => {
    const cases: [unknown, string][] = [
      [{ type: "createPipeline", payload: { id } }, "payload.pipeline"],
      [
        { type: "createPipeline", payload: { id, pipeline: { elements: [{}] } } },
        "payload.pipeline.elements[0].type",
      ],
      [
        { type: "createPipeline", payload: { id, pipeline: { elements: [] } } },
        "payload.pipeline.elements",
      ],
      [{ type: "startPipeline", payload: { id: 5 } }, "payload.id"],
      [{ type: "startPipeline" }, "payload.id"],
      [{ payload: {} }, "type"],
      [{ type: "getPipelines", requestId: { a: 1 } }, "requestId"],
      [{ type: "getPipelines", payload: [1] }, "payload"],
    ];
    for (const [message, path] of cases) {
      const reply = expectError(await client.sendRaw(JSON.stringify(message)), "INVALID_REQUEST");
      assert.equal(reply.error!.details!.path, path, JSON.stringify(message));
    }
    for (const text of ["{not json", "[]", "42", "null", '"text"']) {
      const reply = expectError(await client.sendRaw(text), "INVALID_REQUEST");
      assert.equal(reply.request, null);
    }
    const binary = expectError(await client.sendRaw(new Uint8Array([1, 2, 3])), "INVALID_REQUEST");
    assert.match(binary.error!.message, /Binary/);
  });
  await t.step("UNKNOWN_TYPE lists the known types", async () => {
    const reply = expectError(await client.request("explodePipeline", {}), "UNKNOWN_TYPE");
    assert.equal(reply.request, "explodePipeline");
    assert.ok((reply.error!.details!.known as string[]).includes("createPipeline"));
  });
  await t.step("MESSAGE_TOO_LARGE over 1 MiB, and the connection carries on", async () => {
    const big = JSON.stringify({ type: "getPipelines", payload: { pad: "x".repeat(1024 * 1024) } });
    expectError(await client.sendRaw(big), "MESSAGE_TOO_LARGE");
    expectOk(await client.request("getPipelines"));
  });
  await t.step("a failed request leaves nothing behind", async () => {
    const before = expectOk(await client.request("getPipelines")).payload.pipelines.length;
    expectError(
      await create([{ type: "videotestsrc" }, { type: "fakesink", properties: { sync: "maybe" } }]),
      "INVALID_PROPERTY_VALUE",
    );
    const after = expectOk(await client.request("getPipelines")).payload.pipelines.length;
    assert.equal(after, before);
    expectOk(await create([{ type: "videotestsrc" }, { type: "fakesink" }]));
    expectOk(await client.request("deletePipeline", { id }));
  });
  await t.step("names and text GStreamer would read otherwise are refused", async () => {
    // GStreamer refuses (and frees) a second element of a name: the server must never try one.
    // An rtspserversink 's' is served through elements named 's', 's-pay' and 's-relay'.
    const served = (other: string) =>
      `videotestsrc ! x264enc ! rtspserversink name=s path=${id} fakesrc name=${other} ! fakesink`;
    for (const other of ["s-relay", "s-pay"]) {
      const reply = expectError(
        await client.request("createPipeline", { id, pipeline: served(other) }),
        "INVALID_REQUEST",
      );
      assert.match(reply.error!.message, new RegExp(`'${other}' is wanted by the relay of`));
    }
    const sinks = [{ type: "rtspserversink", name: "cam", properties: { path: id } }, {
      type: "rtspserversink",
      name: "cam-pay",
      properties: { path: `${id}-b` },
    }];
    expectError(await create([{ type: "videotestsrc" }, ...sinks]), "INVALID_REQUEST");
    // C reads text up to a NUL: the server would name, or set, something else than it reports.
    const nulName = expectError(
      await client.request("createPipeline", {
        id,
        pipeline: 'videotestsrc name="a\u0000x" ! fakesink name="a\u0000y"',
      }),
      "INVALID_REQUEST",
    );
    assert.match(nulName.error!.message, /expected an element name of 1 to 64 characters/);
    const nulValue = expectError(
      await create([{ type: "videotestsrc" }, {
        type: "capsfilter",
        properties: { caps: "video/x-raw\u0000,width=320" },
      }, { type: "fakesink" }]),
      "INVALID_PROPERTY_VALUE",
    );
    assert.match(nulValue.error!.message, /holds a NUL character/);
    const nulPad = expectError(
      await client.request("createPipeline", {
        id,
        pipeline: {
          elements: [{ type: "fakesrc", name: "a" }, { type: "fakesink", name: "b" }],
          links: [{ from: "a.src\u0000x", to: "b" }],
        },
      }),
      "INVALID_REQUEST",
    );
    assert.equal(nulPad.error!.details!.path, "payload.pipeline.links[0].from");
    const names = expectOk(await client.request("getPipelines")).payload.pipelines
      .map((pipeline: { id: string }) => pipeline.id);
    assert.ok(!names.includes(id), "nothing was left behind");
  });
});

Deno.test("requestId is echoed, string or number", async () => {
  const numeric = await client.sendRaw(JSON.stringify({ type: "getPipelines", requestId: 42 }));
  assert.equal(numeric.requestId, 42);
  const text = await client.sendRaw(JSON.stringify({ type: "nope", requestId: "abc" }));
  assert.equal(text.requestId, "abc");
  assert.equal(text.error?.code, "UNKNOWN_TYPE");
});

Deno.test("a WebSocket on another path is refused and plain HTTP gets JSON errors", async () => {
  const wrongPath = server.url.replace("/gstreamer", "/other");
  await assert.rejects(TestClient.connect(wrongPath));
  // "//healthz" is a path, not a host followed by "/" (the console's page).
  for (const path of ["/nothing", "//healthz"]) {
    const notFound = await fetch(`${server.httpUrl}${path}`);
    assert.equal(notFound.status, 404, path);
    assert.equal((await notFound.json()).error.message, `No route for GET ${path}`);
  }
  const upgradeRequired = await fetch(`${server.httpUrl}/gstreamer`);
  assert.equal(upgradeRequired.status, 426);
  await upgradeRequired.body?.cancel();
});

Deno.test("a WHEP or WHIP offer refused before its body is read closes its connection; the next request is answered", async () => {
  // One client, so that the next request would go on the same kept-alive connection.
  const http = Deno.createHttpClient({});
  try {
    for (const path of ["/whep/cam", "/whip/cam"]) {
      for (const [type, status] of [["application/sdp", 413], ["text/plain", 415]] as const) {
        const refused = await fetch(`${server.httpUrl}${path}`, {
          client: http,
          method: "POST",
          headers: { "content-type": type },
          body: new Uint8Array(1024 * 1024).fill(97),
        });
        assert.equal(refused.status, status, path);
        assert.equal(refused.headers.get("connection"), "close", `${path}, ${status}`);
        await refused.body?.cancel();
        // Left kept alive, the rest of the body was read as this request, which then waited.
        const next = await fetch(`${server.httpUrl}/healthz`, {
          client: http,
          signal: AbortSignal.timeout(10_000),
        });
        assert.equal(next.status, 200);
        await next.body?.cancel();
      }
    }
  } finally {
    http.close();
  }
});

Deno.test("no stats message names a pipeline after its pipelineDeleted", async () => {
  // A stats round reads its pipelines a slice at a time, across turns of the event loop. Batches
  // of pipelines are made, and each is deleted (by ten connections at once) once the next one is
  // made: the batch being deleted is the first in the list, read in a round's first slices, so a
  // round that sent what it read before a deletion would name a pipeline after its
  // pipelineDeleted. Rounds run every 100 ms; this goes on until 20 rounds came while deleting.
  const watcher = await TestClient.connect(server.url);
  const connections = await Promise.all(
    Array.from({ length: 10 }, () => TestClient.connect(server.url)),
  );
  const batch = (n: number) => Array.from({ length: 100 }, (_, i) => freshId(`batch${n}-${i}`));
  const pipeline = "videotestsrc ! fakesink";
  // The work shared out: one connection alone would pass the per-client request limit.
  const eachConnection = (ids: string[], request: (c: TestClient, id: string) => Promise<Reply>) =>
    Promise.all(connections.map(async (connection, k) => {
      for (let i = k; i < ids.length; i += connections.length) {
        expectOk(await request(connection, ids[i]));
      }
      connection.received.length = 0;
    }));
  let older: string[] = [];
  try {
    expectOk(await watcher.request("subscribe", { statsIntervalMs: 100 }));
    let roundsWhileDeleting = 0;
    for (let n = 0; roundsWhileDeleting < 20; n++) {
      assert.ok(n < 200, `only ${roundsWhileDeleting} stats rounds came in 200 batches`);
      const newer = batch(n);
      await eachConnection(newer, (c, id) => c.request("createPipeline", { id, pipeline }));
      const roundsBefore = watcher.received.filter((m) => m.type === "stats").length;
      await eachConnection(older, (c, id) => c.request("deletePipeline", { id }));
      roundsWhileDeleting += watcher.received.filter((m) => m.type === "stats").length -
        roundsBefore;
      older = newer;
    }
    // The watcher's messages in the order sent: stats may name a pipeline only before its
    // pipelineDeleted.
    const deleted = new Set<string>();
    const named = new Set<string>();
    for (const message of watcher.received) {
      if (message.type === "pipelineDeleted") deleted.add(message.payload.id);
      if (message.type !== "stats") continue;
      for (const { id } of message.payload.pipelines as { id: string }[]) {
        if (deleted.has(id)) named.add(id);
      }
    }
    assert.ok(deleted.size >= 100, `the watcher saw ${deleted.size} pipelineDeleted events`);
    assert.deepEqual([...named], [], "stats named pipelines after their pipelineDeleted");
  } finally {
    for (const id of older) await client.request("deletePipeline", { id });
    client.received.length = 0;
    await Promise.all([watcher, ...connections].map((c) => c.close()));
  }
});

Deno.test("pipelines deleted while a stats round reads them are skipped, never read freed", async () => {
  // A stats round reads a few pipelines at a time across several turns of the event loop; one
  // deleted meanwhile must not be read (with fatal-criticals, a read of a freed pipeline aborts).
  // The last pipelines of the list are deleted and made again for 3 s, while rounds run every
  // 100 ms over the whole list and reach them late.
  const watcher = await TestClient.connect(server.url);
  const make = async (id: string, by = client) => {
    expectOk(
      await by.request("createPipeline", {
        id,
        pipeline: "videotestsrc is-live=true ! fakesink",
      }),
    );
    expectOk(await by.request("startPipeline", { id }));
  };
  const steady = Array.from({ length: 120 }, (_, i) => `stats-steady-${i}`);
  const churned = Array.from({ length: 20 }, (_, i) => `stats-churn-${i}`);
  // A connection per churned pipeline: together they send more than the per-client limit
  // (GSTREAMER_MAX_REQUESTS_PER_SECOND, 1000 by default) allows one connection.
  const churners = await Promise.all(churned.map(() => TestClient.connect(server.url)));
  try {
    expectOk(await watcher.request("subscribe", { statsIntervalMs: 100 }));
    for (const id of [...steady, ...churned]) await make(id);
    const rounds = () => watcher.waitForNext((m) => m.type === "stats", 15000, "a stats round");
    await rounds();
    const end = performance.now() + 3000;
    while (performance.now() < end) {
      await Promise.all(churned.map(async (id, i) => {
        expectOk(await churners[i].request("deletePipeline", { id }));
        await make(id, churners[i]);
        churners[i].received.length = 0;
      }));
    }
    await rounds();
    expectOk(await client.request("getPipelines"));
  } finally {
    await Promise.all(
      [...steady, ...churned].map((id) => client.request("deletePipeline", { id })),
    );
    await Promise.all(churners.map((churner) => churner.close()));
    await watcher.close();
  }
});
