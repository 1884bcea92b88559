/**
 * The security settings against the real server: the element policy and GSTREAMER_MEDIA_DIR
 * confinement, GSTREAMER_AUTH_TOKEN on WebSocket, /push and /metrics (/healthz stays open),
 * GSTREAMER_ALLOWED_ORIGINS, the limits (clients, pipelines, requests per second, pushes) and
 * the warning for a non-loopback address without a token. RTSP auth is in rtsp_auth_test.ts and
 * the message size limit in pipelines_test.ts.
 */
import assert from "node:assert/strict";
// @ts-types="npm:@types/ws@8.18.1"
import WebSocket from "ws";
import { loadConfig } from "../src/config.ts";
import { defaultDeniedElements } from "../src/domain/policy.ts";
import {
  type Reply,
  run,
  type ServerEvent,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";

const TOKEN = "sec-token-0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Files: a media directory and, next to it, what must stay out of reach

const dir = await Deno.makeTempDir({ prefix: "security_test_" });
const mediaDir = `${dir}/media`;
const outsideDir = `${dir}/outside`;
await Deno.mkdir(`${mediaDir}/clips`, { recursive: true });
await Deno.mkdir(outsideDir);
await Deno.writeTextFile(`${mediaDir}/clips/in.txt`, "inside the media directory\n");
await Deno.writeTextFile(`${outsideDir}/secret.txt`, "outside the media directory\n");
/** A symlink in the media directory to a file outside it, and one to a directory outside it. */
await Deno.symlink(`${outsideDir}/secret.txt`, `${mediaDir}/escape.txt`);
await Deno.symlink(outsideDir, `${mediaDir}/escape-dir`);
/** A symlink that stays inside. */
await Deno.symlink(`${mediaDir}/clips/in.txt`, `${mediaDir}/alias.txt`);
/** The media directory as the server names it (policy.ts takes its real path). */
const realMediaDir = await Deno.realPath(mediaDir);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/** One second of H.264 (160x120, 30 frame/s, a key frame every 15), for pushes. */
async function makeClip(): Promise<Uint8Array<ArrayBuffer>> {
  const path = `${dir}/clip.h264`;
  const made = await run("ffmpeg", [
    ...["-v", "error", "-nostdin", "-y", "-f", "lavfi"],
    ...["-i", "testsrc=size=160x120:rate=30", "-t", "1"],
    ...["-c:v", "libx264", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "h264", path],
  ]);
  assert.equal(made.code, 0, made.stderr);
  return await Deno.readFile(path);
}
const clip = await makeClip();

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs `fn` with a server started with `env` (port 0), stopping it however `fn` ends. */
async function withServer(
  env: Record<string, string>,
  fn: (server: ServerProcess) => Promise<void>,
): Promise<void> {
  const server = await startServer({ GSTREAMER_MEDIA_DIR: mediaDir, ...env });
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

function expectError(reply: Reply, code: string): NonNullable<Reply["error"]> {
  assert.equal(reply.ok, false, `expected ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.error?.code, code, JSON.stringify(reply.error));
  return reply.error!;
}

function expectOk(reply: Reply) {
  assert.equal(reply.ok, true, JSON.stringify(reply.error));
  return reply.payload;
}

async function pipelineIds(client: TestClient): Promise<string[]> {
  const ids = expectOk(await client.request("getPipelines")).pipelines
    .map((p: { id: string }) => p.id);
  return ids.sort();
}

function create(client: TestClient, id: string, elements: unknown[]): Promise<Reply> {
  return client.request("createPipeline", { id, pipeline: { elements } });
}

/** Starts `id` and waits for its EOS (a pipelineError fails). */
async function runToEos(client: TestClient, id: string): Promise<void> {
  const ended = client.waitFor<ServerEvent>(
    (m) => (m.type === "pipelineEos" || m.type === "pipelineError") && m.payload?.id === id,
    15000,
    `the end of '${id}'`,
  );
  expectOk(await client.request("startPipeline", { id }));
  const end = await ended;
  assert.equal(end.type, "pipelineEos", JSON.stringify(end.payload));
}

const fakePipeline = [{ type: "fakesrc" }, { type: "fakesink" }];

interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
}

/**
 * A WebSocket upgrade request written by hand on a fresh TCP connection: the refusals are HTTP
 * responses with a status and a JSON body, which WebSocket clients do not show.
 */
async function rawUpgrade(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const target = new URL(url);
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
  try {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const lines = [
      `GET ${target.pathname}${target.search} HTTP/1.1`,
      // A Host of the test's own stands for a name that resolves to this server.
      `Host: ${headers.Host ?? target.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).filter(([name]) => name !== "Host")
        .map(([name, value]) => `${name}: ${value}`),
    ];
    await conn.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
    let bytes = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    let head: { status: number; headers: Record<string, string>; end: number } | null = null;
    for (;;) {
      if (head === null) {
        const text = new TextDecoder("latin1").decode(bytes);
        const end = text.indexOf("\r\n\r\n");
        if (end !== -1) {
          const [statusLine, ...headerLines] = text.slice(0, end).split("\r\n");
          const parsed: Record<string, string> = {};
          for (const line of headerLines) {
            const colon = line.indexOf(":");
            parsed[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
          }
          head = { status: Number(statusLine.split(" ")[1]), headers: parsed, end: end + 4 };
        }
      }
      if (head !== null) {
        // A 101 goes on as a WebSocket: the head is all there is to read.
        if (head.status === 101) break;
        const length = Number(head.headers["content-length"] ?? NaN);
        if (bytes.length - head.end >= length) break;
      }
      const n = await conn.read(chunk);
      if (n === null) break;
      const joined = new Uint8Array(bytes.length + n);
      joined.set(bytes);
      joined.set(chunk.subarray(0, n), bytes.length);
      bytes = joined;
    }
    assert.ok(head !== null, `no HTTP response head: ${new TextDecoder().decode(bytes)}`);
    return {
      status: head.status,
      headers: head.headers,
      body: new TextDecoder().decode(bytes.subarray(head.end)),
    };
  } finally {
    conn.close();
  }
}

/** A refusal: its status, a JSON content type, and the error code of its JSON body. */
function assertJsonRefusal(response: RawResponse, status: number, code: string) {
  const shown = JSON.stringify(response);
  assert.equal(response.status, status, shown);
  assert.match(response.headers["content-type"] ?? "", /^application\/json/, shown);
  const body = JSON.parse(response.body);
  assert.equal(body.error?.code, code, shown);
  assert.equal(typeof body.error?.message, "string", shown);
  return body.error as { code: string; message: string; details?: Record<string, unknown> };
}

async function fetchJson(url: string, init: RequestInit = {}): Promise<RawResponse> {
  const response = await fetch(url, init);
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
  };
}

type Opened = { ws: WebSocket } | { status: number; body: string };

/** Opens a WebSocket with the npm `ws` client, which can send headers (Authorization, Origin). */
function openWs(url: string, protocols: string[] = [], options: WebSocket.ClientOptions = {}) {
  return new Promise<Opened>((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.on("error", reject);
    ws.once("open", () => resolve({ ws }));
    ws.once("unexpected-response", (request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (text: string) => (body += text));
      response.on("end", () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
  });
}

async function openedWs(url: string, protocols: string[] = [], options = {}): Promise<WebSocket> {
  const opened = await openWs(url, protocols, options);
  assert.ok("ws" in opened, `refused: ${JSON.stringify(opened)}`);
  return opened.ws;
}

/** One request over a `ws` client and its reply. */
function wsRequest(ws: WebSocket, type: string, payload?: unknown): Promise<Reply> {
  const requestId = crypto.randomUUID();
  return new Promise((resolve) => {
    const onMessage = (data: unknown) => {
      const message = JSON.parse(String(data));
      if (message.requestId !== requestId) return;
      ws.off("message", onMessage);
      resolve(message);
    };
    ws.on("message", onMessage);
    ws.send(JSON.stringify({ type, requestId, payload }));
  });
}

async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((resolve) => ws.once("close", resolve));
  ws.close();
  await closed;
}

/** The number of connected clients, as /healthz tells it. */
async function healthzClients(server: ServerProcess): Promise<number> {
  const response = await fetch(`${server.httpUrl}/healthz`);
  return (await response.json()).clients;
}

// ---------------------------------------------------------------------------------------------
// Element policy

/** Names of the default refusals that this machine's GStreamer has. */
const deniedHere: string[] = [];
for (const name of defaultDeniedElements.keys()) {
  if ((await run("gst-inspect-1.0", ["--exists", name])).code === 0) deniedHere.push(name);
}

Deno.test("element policy by default: refused elements, and locations confined to GSTREAMER_MEDIA_DIR", async (t) => {
  await withServer({}, async (server) => {
    await using client = await TestClient.connect(server.url);
    const before = await pipelineIds(client);

    await t.step(
      "every default refusal on this machine gets ELEMENT_NOT_ALLOWED and its reason",
      async () => {
        assert.ok(deniedHere.length > 0, "no element of defaultDeniedElements on this machine");
        for (const name of deniedHere) {
          const reason = defaultDeniedElements.get(name)!;
          const error = expectError(
            await create(client, `denied-${name}`, [{ type: "fakesrc" }, { type: name }]),
            "ELEMENT_NOT_ALLOWED",
          );
          assert.ok(error.message.includes(name), error.message);
          assert.ok(error.message.includes(reason), `${name}: ${error.message}`);
          assert.equal(error.details?.type, name);
          assert.equal(error.details?.reason, reason);
          assert.equal(error.details?.index, 1);
        }
        assert.deepEqual(await pipelineIds(client), before, "a refused create left a pipeline");
      },
    );

    await t.step(
      "file locations that lead out of the media directory: PROPERTY_NOT_ALLOWED",
      async () => {
        const refused: [string, string, Record<string, string>][] = [
          ["filesrc", "dotdot", { location: "../outside/secret.txt" }],
          ["filesrc", "dotdot-deep", { location: "clips/../../outside/secret.txt" }],
          ["filesrc", "absolute", { location: `${outsideDir}/secret.txt` }],
          ["filesrc", "etc", { location: "/etc/passwd" }],
          ["filesrc", "symlink", { location: "escape.txt" }],
          ["filesrc", "symlink-dir", { location: "escape-dir/secret.txt" }],
          ["filesrc", "absolute-symlink", { location: `${mediaDir}/escape.txt` }],
          ["multifilesrc", "multi", { location: "../outside/frame-%05d.png" }],
          ["uridecodebin", "uri", { uri: "file:///etc/passwd" }],
          ["uridecodebin", "uri-upper", { uri: "FILE:///etc/passwd" }],
          ["uridecodebin", "uri-symlink", { uri: `file://${mediaDir}/escape.txt` }],
          // GLib opens file:/path as it does file:///path.
          ["uridecodebin", "uri-one-slash", { uri: "file:/etc/passwd" }],
          ["playbin", "suburi", {
            uri: `file://${mediaDir}/clips/in.txt`,
            suburi: "file:///etc/passwd",
          }],
          // GObject finds `location` by these names too.
          ["filesrc", "typed-name", { "GstFileSrc::location": "/etc/passwd" }],
          ["uritranscodebin", "underscore", { dest_uri: `file://${outsideDir}/written.mp4` }],
        ];
        // Every case is tried, and each one let through is named in the failure.
        const letThrough: string[] = [];
        for (const [type, id, properties] of refused) {
          const reply = await create(client, `confine-${id}`, [{ type, properties }]);
          if (reply.error?.code !== "PROPERTY_NOT_ALLOWED") {
            letThrough.push(`${id} ${JSON.stringify(properties)}: ${JSON.stringify(reply.error)}`);
            if (reply.ok) expectOk(await client.request("deletePipeline", { id: `confine-${id}` }));
            continue;
          }
          const error = reply.error;
          assert.ok(error.message.includes("GSTREAMER_MEDIA_DIR"), `${id}: ${error.message}`);
          assert.equal(error.details?.mediaDir, realMediaDir, id);
        }
        assert.deepEqual(letThrough, [], `not refused:\n${letThrough.join("\n")}`);
        assert.deepEqual(await pipelineIds(client), before, "a refused create left a pipeline");
        await assert.rejects(Deno.stat(`${outsideDir}/written.mp4`), Deno.errors.NotFound);
      },
    );

    await t.step(
      "a relative path inside works, reads back as the absolute path, and plays",
      async () => {
        expectOk(
          await create(client, "inside", [
            { type: "filesrc", properties: { name: "src", location: "clips/in.txt" } },
            { type: "fakesink" },
          ]),
        );
        const location = expectOk(
          await client.request("getElementProperty", {
            id: "inside",
            element: "src",
            property: "location",
          }),
        );
        assert.equal(location.value, `${realMediaDir}/clips/in.txt`);
        await runToEos(client, "inside");
        // A symlink that stays inside, and a file: URI inside (given back as a file: URI).
        expectOk(
          await create(client, "inside-alias", [
            { type: "filesrc", properties: { name: "src", location: "alias.txt" } },
            { type: "fakesink" },
          ]),
        );
        expectOk(
          await create(client, "inside-uri", [
            {
              type: "uridecodebin",
              properties: { name: "dec", uri: `file://${mediaDir}/clips/in.txt` },
            },
          ]),
        );
        const uri = expectOk(
          await client.request("getElementProperty", {
            id: "inside-uri",
            element: "dec",
            property: "uri",
          }),
        );
        assert.equal(uri.value, `file://${realMediaDir}/clips/in.txt`);
      },
    );

    await t.step(
      "setElementProperty cannot move a location out of the media directory",
      async () => {
        const letThrough: string[] = [];
        for (const property of ["location", "GstFileSrc::location"]) {
          for (const value of [`${outsideDir}/secret.txt`, "../outside/secret.txt", "escape.txt"]) {
            const reply = await client.request("setElementProperty", {
              id: "inside",
              element: "src",
              property,
              value,
            });
            if (reply.error?.code !== "PROPERTY_NOT_ALLOWED") {
              letThrough.push(
                `${property}=${value}: ${JSON.stringify(reply.payload ?? reply.error)}`,
              );
            }
          }
        }
        assert.deepEqual(letThrough, [], `not refused:\n${letThrough.join("\n")}`);
        const location = expectOk(
          await client.request("getElementProperty", {
            id: "inside",
            element: "src",
            property: "location",
          }),
        );
        assert.equal(location.value, `${realMediaDir}/clips/in.txt`, "a refused set changed it");
        // Inside is still fine.
        const set = expectOk(
          await client.request("setElementProperty", {
            id: "inside",
            element: "src",
            property: "location",
            value: "alias.txt",
          }),
        );
        assert.equal(set.value, `${realMediaDir}/alias.txt`);
      },
    );

    await t.step(
      "a name with a NUL in it is no property nor element type (C would read it cut at the NUL)",
      async () => {
        const created = await create(client, "nul-name", [
          { type: "filesrc", properties: { "location\0": "/etc/passwd" } },
          { type: "fakesink" },
        ]);
        assert.equal(created.error?.code, "UNKNOWN_PROPERTY", JSON.stringify(created));
        const set = await client.request("setElementProperty", {
          id: "inside",
          element: "src",
          property: "location\0",
          value: `${outsideDir}/secret.txt`,
        });
        assert.equal(set.error?.code, "UNKNOWN_PROPERTY", JSON.stringify(set));
        const inspected = await client.request("inspectElement", { type: "capsfilter\0x" });
        assert.equal(inspected.error?.code, "UNKNOWN_ELEMENT", JSON.stringify(inspected));
        assert.deepEqual(
          (await pipelineIds(client)).filter((id) => id === "nul-name"),
          [],
          "the refused create left its pipeline",
        );
      },
    );

    await t.step("an rtsp:// location is a URL, not a file: accepted as given", async () => {
      const url = "rtsp://127.0.0.1:9/camera";
      expectOk(
        await create(client, "rtsp-source", [{
          type: "rtspsrc",
          properties: { name: "src", location: url },
        }]),
      );
      const location = expectOk(
        await client.request("getElementProperty", {
          id: "rtsp-source",
          element: "src",
          property: "location",
        }),
      );
      assert.equal(location.value, url);
    });

    for (const id of ["inside", "inside-alias", "inside-uri", "rtsp-source"]) {
      expectOk(await client.request("deletePipeline", { id }));
    }

    await t.step("properties that name a file to write are confined too", async () => {
      // Elements allowed by default that write a file wherever a property says.
      const writers: [string, unknown[]][] = [
        ["mp4mux-recovery", [
          { type: "videotestsrc", properties: { "num-buffers": 5 } },
          { type: "x264enc" },
          { type: "mp4mux", properties: { "moov-recovery-file": `${outsideDir}/moov-recovery` } },
          { type: "fakesink" },
        ]],
        ["x264-stats", [
          { type: "videotestsrc", properties: { "num-buffers": 5 } },
          {
            type: "x264enc",
            properties: { pass: "pass1", "multipass-cache-file": `${outsideDir}/x264.log` },
          },
          { type: "fakesink" },
        ]],
        ["queue2-temp", [
          { type: "videotestsrc", properties: { "num-buffers": 5 } },
          {
            type: "queue2",
            properties: {
              "temp-template": `${outsideDir}/queue2-XXXXXX`,
              "temp-remove": false,
              "use-buffering": true,
            },
          },
          { type: "fakesink" },
        ]],
      ];
      const accepted: string[] = [];
      for (const [id, elements] of writers) {
        const reply = await create(client, id, elements);
        if (reply.ok) {
          // Show what it does with it.
          await runToEos(client, id);
          expectOk(await client.request("deletePipeline", { id }));
          accepted.push(id);
        } else {
          assert.match(
            reply.error!.code,
            /^(PROPERTY|ELEMENT)_NOT_ALLOWED$/,
            JSON.stringify(reply),
          );
        }
      }
      const written = [...Deno.readDirSync(outsideDir)].map((e) => e.name).filter((name) =>
        name !== "secret.txt"
      );
      for (const name of written) await Deno.remove(`${outsideDir}/${name}`);
      assert.deepEqual(
        accepted,
        [],
        `accepted: ${accepted.join(", ")}; then found outside the media directory: ${
          written.join(", ")
        }`,
      );
      assert.deepEqual(written, []);
    });

    assert.deepEqual(await pipelineIds(client), before);
  });
});

Deno.test("GSTREAMER_ELEMENTS_ALLOW=filesink lets filesink in, its location still confined", async () => {
  await withServer({ GSTREAMER_ELEMENTS_ALLOW: "filesink" }, async (server) => {
    await using client = await TestClient.connect(server.url);
    const before = await pipelineIds(client);
    const writer = (location: string) => [
      { type: "videotestsrc", properties: { "num-buffers": 10 } },
      { type: "filesink", properties: { name: "sink", location } },
    ];

    // Inside: the file is written.
    expectOk(await create(client, "write-inside", writer("written.raw")));
    const location = expectOk(
      await client.request("getElementProperty", {
        id: "write-inside",
        element: "sink",
        property: "location",
      }),
    );
    assert.equal(location.value, `${realMediaDir}/written.raw`);
    await runToEos(client, "write-inside");
    const written = await Deno.stat(`${mediaDir}/written.raw`);
    assert.ok(written.isFile && written.size > 0, JSON.stringify(written));
    expectOk(await client.request("deletePipeline", { id: "write-inside" }));

    // Outside, directly, by `..` or through a symlinked directory: refused, nothing written.
    for (
      const path of [
        `${outsideDir}/written.raw`,
        "../outside/written.raw",
        "escape-dir/written.raw",
      ]
    ) {
      const error = expectError(
        await create(client, "write-outside", writer(path)),
        "PROPERTY_NOT_ALLOWED",
      );
      assert.equal(error.details?.property, "location", JSON.stringify(error));
    }
    await assert.rejects(Deno.stat(`${outsideDir}/written.raw`), Deno.errors.NotFound);

    // Allowing filesink lifts nothing else.
    expectError(
      await create(client, "multi", [{ type: "videotestsrc" }, { type: "multifilesink" }]),
      "ELEMENT_NOT_ALLOWED",
    );
    assert.deepEqual(await pipelineIds(client), before);
    await Deno.remove(`${mediaDir}/written.raw`);
  });
});

Deno.test("GSTREAMER_ELEMENTS_DENY=videotestsrc,x264* refuses those, by name and by prefix", async () => {
  await withServer({ GSTREAMER_ELEMENTS_DENY: "videotestsrc,x264*" }, async (server) => {
    await using client = await TestClient.connect(server.url);
    const before = await pipelineIds(client);
    const cases: [string, unknown[]][] = [
      ["videotestsrc", [{ type: "videotestsrc" }, { type: "fakesink" }]],
      ["x264enc", [{ type: "fakesrc" }, { type: "x264enc" }, { type: "fakesink" }]],
    ];
    for (const [type, elements] of cases) {
      const error = expectError(
        await create(client, `deny-${type}`, elements),
        "ELEMENT_NOT_ALLOWED",
      );
      assert.equal(error.details?.type, type);
      assert.match(error.message, /GSTREAMER_ELEMENTS_DENY/);
    }
    assert.deepEqual(await pipelineIds(client), before);
    // What the rules do not name still works.
    expectOk(await create(client, "allowed", [{ type: "audiotestsrc" }, { type: "fakesink" }]));
  });
});

// ---------------------------------------------------------------------------------------------
// Authentication, origins

Deno.test("GSTREAMER_AUTH_TOKEN guards WebSocket, /push and /metrics; /healthz stays open", async (t) => {
  await withServer({ GSTREAMER_AUTH_TOKEN: TOKEN }, async (server) => {
    const withQuery = (token: string) => `${server.url}?token=${encodeURIComponent(token)}`;

    await t.step(
      "a WebSocket without the token, or with a wrong one, gets 401 with JSON",
      async () => {
        const refusals: [string, string, Record<string, string>][] = [
          ["no token", server.url, {}],
          ["wrong bearer", server.url, { Authorization: "Bearer wrong-token-0123456789" }],
          ["empty bearer", server.url, { Authorization: "Bearer " }],
          ["token as basic", server.url, { Authorization: `Basic ${btoa(`token:${TOKEN}`)}` }],
          ["wrong query", withQuery("wrong-token-0123456789"), {}],
          ["wrong prefix", withQuery(TOKEN.slice(0, -1)), {}],
          ["wrong subprotocol", server.url, {
            "Sec-WebSocket-Protocol": "bearer, wrong-token-0123",
          }],
        ];
        for (const [what, url, headers] of refusals) {
          const response = await rawUpgrade(url, headers);
          const error = assertJsonRefusal(response, 401, "UNAUTHORIZED");
          assert.ok(!error.message.includes(TOKEN), what);
          assert.match(response.headers["www-authenticate"] ?? "", /^Bearer/, what);
        }
        // The ws client sees the same refusal.
        const opened = await openWs(server.url, [], {
          headers: { authorization: "Bearer wrong-token-0123456789" },
        });
        assert.ok("status" in opened && opened.status === 401, JSON.stringify(opened));
        assert.equal(JSON.parse(opened.body).error.code, "UNAUTHORIZED");
      },
    );

    await t.step("Authorization: Bearer (npm ws client) is let in and served", async () => {
      const ws = await openedWs(server.url, [], { headers: { authorization: `Bearer ${TOKEN}` } });
      try {
        expectOk(await wsRequest(ws, "getPipelines"));
      } finally {
        await closeWs(ws);
      }
    });

    await t.step("the token query parameter is let in and served", async () => {
      await using client = await TestClient.connect(withQuery(TOKEN));
      expectOk(await client.request("getPipelines"));
    });

    await t.step(
      "subprotocols ['bearer', token]: let in, and 'bearer' is chosen, never the token",
      async () => {
        await using client = await TestClient.connect(server.url, ["bearer", TOKEN]);
        assert.equal(client.socket.protocol, "bearer");
        expectOk(await client.request("getPipelines"));
        const ws = await openedWs(server.url, ["bearer", TOKEN]);
        assert.equal(ws.protocol, "bearer");
        await closeWs(ws);
        const raw = await rawUpgrade(server.url, { "Sec-WebSocket-Protocol": `bearer, ${TOKEN}` });
        assert.equal(raw.status, 101, JSON.stringify(raw));
        assert.equal(raw.headers["sec-websocket-protocol"], "bearer");
      },
    );

    await t.step("POST /push and GET /metrics without the token: 401 with JSON", async () => {
      const requests: [string, RequestInit][] = [
        ["/push/cam", { method: "POST", headers: { "content-type": "video/h264" }, body: clip }],
        ["/push/cam", {
          method: "POST",
          headers: { "content-type": "video/h264", authorization: "Bearer wrong-token-0123" },
          body: clip,
        }],
        ["/metrics", {}],
        ["/metrics", { headers: { authorization: "Bearer wrong-token-0123" } }],
        ["/metrics?token=wrong-token-0123", {}],
      ];
      for (const [path, init] of requests) {
        const response = await fetchJson(`${server.httpUrl}${path}`, init);
        assertJsonRefusal(response, 401, "UNAUTHORIZED");
      }
    });

    await t.step("with Bearer, /metrics answers and a push is taken", async () => {
      const metrics = await fetch(`${server.httpUrl}/metrics`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
      assert.ok((await metrics.text()).length > 0);
      const byQuery = await fetch(`${server.httpUrl}/metrics?token=${encodeURIComponent(TOKEN)}`);
      assert.equal(byQuery.status, 200);
      await byQuery.body?.cancel();
      const push = await fetchJson(`${server.httpUrl}/push/authed`, {
        method: "POST",
        headers: { "content-type": "video/h264", authorization: `Bearer ${TOKEN}` },
        body: clip,
      });
      assert.equal(push.status, 200, push.body);
      assert.equal(JSON.parse(push.body).name, "authed");
    });

    await t.step("GET /healthz needs no token", async () => {
      const response = await fetch(`${server.httpUrl}/healthz`);
      assert.equal(response.status, 200);
      assert.equal((await response.json()).status, "ok");
    });
  });
});

Deno.test("GSTREAMER_ALLOWED_ORIGINS: other browser origins get 403 ORIGIN_NOT_ALLOWED", async () => {
  await withServer({ GSTREAMER_ALLOWED_ORIGINS: "https://ok.example" }, async (server) => {
    for (const origin of ["https://evil.example", "http://ok.example", "https://ok.example.evil"]) {
      const error = assertJsonRefusal(
        await rawUpgrade(server.url, { Origin: origin }),
        403,
        "ORIGIN_NOT_ALLOWED",
      );
      assert.ok(error.message.includes(origin), error.message);
    }
    const refused = await openWs(server.url, [], { origin: "https://evil.example" });
    assert.ok("status" in refused && refused.status === 403, JSON.stringify(refused));

    // The allowed origin, and a client that sends none (not a browser).
    for (const options of [{ origin: "https://ok.example" }, {}]) {
      const ws = await openedWs(server.url, [], options);
      try {
        expectOk(await wsRequest(ws, "getPipelines"));
      } finally {
        await closeWs(ws);
      }
    }

    // A page elsewhere can POST without a preflight: a push or a publish from it is refused too.
    const post = async (path: string, origin?: string) => {
      const response = await fetch(`${server.httpUrl}${path}`, {
        method: "POST",
        headers: origin === undefined ? {} : { origin },
        body: new TextEncoder().encode("not a stream"),
      });
      return { status: response.status, body: await response.json() };
    };
    for (const path of ["/push/from-a-page", "/whip/from-a-page", "/whep/cam"]) {
      const refusedPost = await post(path, "https://evil.example");
      assert.equal(refusedPost.status, 403, path);
      assert.equal(refusedPost.body.error.code, "ORIGIN_NOT_ALLOWED", path);
      assert.match(refusedPost.body.error.message, /'https:\/\/evil\.example' may not POST/);
    }
    // The allowed origin and a sender with none (ffmpeg, curl) get as far as the body: not a stream.
    for (const origin of ["https://ok.example", undefined]) {
      const taken = await post("/push/from-a-page", origin);
      assert.equal(taken.status, 422, JSON.stringify(taken.body));
    }
    const health = await fetch(`${server.httpUrl}/healthz`, {
      headers: { origin: "https://evil.example" },
    });
    await health.body?.cancel();
    assert.equal(health.status, 200, "reads are not refused (CORS keeps the page from them)");
  });
});

Deno.test("GSTREAMER_ALLOWED_ORIGINS: the server's own origin (its console) may connect, a rebound name may not", async () => {
  await withServer({ GSTREAMER_ALLOWED_ORIGINS: "https://ok.example" }, async (server) => {
    const { host, port } = new URL(server.url);
    // The console, loaded from this server: Origin and Host name the same address.
    const own = await rawUpgrade(server.url, { Origin: `http://${host}` });
    assert.equal(own.status, 101, JSON.stringify(own));
    // DNS rebinding: a page of evil.example whose name now resolves to this server.
    assertJsonRefusal(
      await rawUpgrade(server.url, {
        Origin: `http://evil.example:${port}`,
        Host: `evil.example:${port}`,
      }),
      403,
      "ORIGIN_NOT_ALLOWED",
    );
  });
});

Deno.test("GSTREAMER_ALLOWED_ORIGINS: a trailing slash is dropped, a refusal is logged", async () => {
  await withServer(
    { GSTREAMER_ALLOWED_ORIGINS: "https://ok.example/, http://Host.example:9090" },
    async (server) => {
      // Browsers send the origin without a slash (and with the host in lower case).
      for (const origin of ["https://ok.example", "http://host.example:9090"]) {
        const ws = await openedWs(server.url, [], { origin });
        try {
          expectOk(await wsRequest(ws, "getPipelines"));
        } finally {
          await closeWs(ws);
        }
      }
      assertJsonRefusal(
        await rawUpgrade(server.url, { Origin: "https://evil.example" }),
        403,
        "ORIGIN_NOT_ALLOWED",
      );
      const line = await server.waitForLog(
        "Refused a request from origin 'https://evil.example'",
      );
      assert.match(
        line,
        /GSTREAMER_ALLOWED_ORIGINS allows only https:\/\/ok\.example, http:\/\/host\.example:9090/,
      );
    },
  );
});

Deno.test("GSTREAMER_ALLOWED_ORIGINS with a path or no scheme stops start-up, naming the entry", () => {
  for (
    const value of [
      "http://host:9090/app",
      "host.example",
      "https://ok.example/?x=1",
      "ftp://a.example",
    ]
  ) {
    assert.throws(
      () => loadConfig({ GSTREAMER_ALLOWED_ORIGINS: `https://ok.example,${value}` }),
      (error: Error) => {
        assert.match(error.message, /^Invalid GSTREAMER_ALLOWED_ORIGINS=/);
        assert.ok(
          error.message.includes(`lists ${JSON.stringify(value)}, which is not an origin`),
          error.message,
        );
        assert.match(error.message, /scheme:\/\/host\[:port\]/);
        return true;
      },
      value,
    );
  }
  assert.deepEqual(
    loadConfig({ GSTREAMER_ALLOWED_ORIGINS: "https://ok.example/" }).allowedOrigins,
    ["https://ok.example"],
  );
});

// ---------------------------------------------------------------------------------------------
// Limits

Deno.test("the limits' defaults: 256 pipelines, 256 clients", () => {
  const config = loadConfig({});
  assert.equal(config.maxPipelines, 256);
  assert.equal(config.maxClients, 256);
  assert.equal(config.authToken, undefined);
  assert.deepEqual(config.allowedOrigins, []);
});

Deno.test("GSTREAMER_MAX_CLIENTS=2: a third connection gets 503 LIMIT_REACHED until one leaves", async () => {
  await withServer({ GSTREAMER_MAX_CLIENTS: "2" }, async (server) => {
    const first = await TestClient.connect(server.url);
    await using second = await TestClient.connect(server.url);
    const error = assertJsonRefusal(await rawUpgrade(server.url), 503, "LIMIT_REACHED");
    assert.equal(error.details?.setting, "GSTREAMER_MAX_CLIENTS");
    assert.equal(error.details?.limit, 2);
    assert.match(error.message, /GSTREAMER_MAX_CLIENTS/);
    await assert.rejects(TestClient.connect(server.url));
    // The two connected are served as before.
    expectOk(await first.request("getPipelines"));
    expectOk(await second.request("getPipelines"));

    await first.close();
    await waitUntil(
      async () => (await healthzClients(server)) === 1,
      10000,
      "the server to see it leave",
    );
    await using third = await TestClient.connect(server.url);
    expectOk(await third.request("getPipelines"));
  });
});

Deno.test("GSTREAMER_MAX_PIPELINES=3 and GSTREAMER_MAX_PUSHES=1; pushes are not pipelines", async (t) => {
  await withServer({ GSTREAMER_MAX_PIPELINES: "3", GSTREAMER_MAX_PUSHES: "1" }, async (server) => {
    await using client = await TestClient.connect(server.url);

    await t.step(
      "the fourth pipeline gets LIMIT_REACHED naming the setting; a delete frees a place",
      async () => {
        for (const id of ["a", "b", "c"]) expectOk(await create(client, id, fakePipeline));
        const error = expectError(await create(client, "d", fakePipeline), "LIMIT_REACHED");
        assert.match(error.message, /GSTREAMER_MAX_PIPELINES/);
        assert.equal(error.details?.setting, "GSTREAMER_MAX_PIPELINES");
        assert.equal(error.details?.limit, 3);
        assert.deepEqual(await pipelineIds(client), ["a", "b", "c"]);
        expectOk(await client.request("deletePipeline", { id: "a" }));
        expectOk(await create(client, "d", fakePipeline));
        assert.deepEqual(await pipelineIds(client), ["b", "c", "d"]);
      },
    );

    // A push whose body the test ends: it holds its place until then.
    let sending!: ReadableStreamDefaultController<Uint8Array>;
    const half = Math.floor(clip.length / 2);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        sending = controller;
        controller.enqueue(clip.slice(0, half));
      },
    });
    const slowCreated = client.event("pipelineCreated", (p) => p.id === "slow");
    const slow = fetchJson(`${server.httpUrl}/push/slow`, {
      method: "POST",
      headers: { "content-type": "video/h264" },
      body,
    });
    slow.catch(() => {}); // awaited below; a failure before then must not surface on its own

    await t.step(
      "a push is taken with the pipelines at their limit, and does not count",
      async () => {
        const created = await Promise.race([
          slowCreated,
          slow.then((response) => {
            throw new Error(`the push ended before it was created: ${JSON.stringify(response)}`);
          }),
        ]);
        assert.equal(created.payload.kind, "push", JSON.stringify(created.payload));
        assert.deepEqual(await pipelineIds(client), ["b", "c", "d", "slow"]);
        expectError(await create(client, "e", fakePipeline), "LIMIT_REACHED");
        expectOk(await client.request("deletePipeline", { id: "b" }));
        expectOk(await create(client, "e", fakePipeline));
        assert.deepEqual(await pipelineIds(client), ["c", "d", "e", "slow"]);
      },
    );

    await t.step(
      "a second push while one streams gets 503 LIMIT_REACHED; after it ends, one is taken",
      async () => {
        const second = await fetchJson(`${server.httpUrl}/push/second`, {
          method: "POST",
          headers: { "content-type": "video/h264" },
          body: clip,
        });
        const error = assertJsonRefusal(second, 503, "LIMIT_REACHED");
        assert.equal(error.details?.setting, "GSTREAMER_MAX_PUSHES");
        assert.equal(error.details?.limit, 1);
        assert.match(error.message, /GSTREAMER_MAX_PUSHES/);
        assert.ok(!(await pipelineIds(client)).includes("second"));

        sending.enqueue(clip.slice(half));
        sending.close();
        const first = await slow;
        assert.equal(first.status, 200, first.body);
        assert.equal(JSON.parse(first.body).name, "slow");

        const third = await fetchJson(`${server.httpUrl}/push/third`, {
          method: "POST",
          headers: { "content-type": "video/h264" },
          body: clip,
        });
        assert.equal(third.status, 200, third.body);
        assert.equal(JSON.parse(third.body).bytes, clip.length);
      },
    );
  });
});

Deno.test("GSTREAMER_MAX_REQUESTS_PER_SECOND=5: a burst of 30 gets one reply each, some RATE_LIMITED", async () => {
  await withServer({ GSTREAMER_MAX_REQUESTS_PER_SECOND: "5" }, async (server) => {
    await using client = await TestClient.connect(server.url);
    const ids = Array.from({ length: 30 }, (_, i) => `burst-${i}`);
    const replies = ids.map((requestId) =>
      client.waitFor<Reply>(
        (m) => (m.type === "result" || m.type === "error") && (m as Reply).requestId === requestId,
        15000,
        `the reply to ${requestId}`,
      )
    );
    for (const requestId of ids) {
      client.socket.send(JSON.stringify({ type: "getPipelines", requestId }));
    }
    const all = await Promise.all(replies);
    const limited = all.filter((reply) => !reply.ok);
    for (const reply of limited) {
      const error = expectError(reply, "RATE_LIMITED");
      assert.equal(reply.request, "getPipelines");
      assert.equal(error.details?.setting, "GSTREAMER_MAX_REQUESTS_PER_SECOND");
      assert.equal(error.details?.limit, 5);
    }
    assert.ok(limited.length >= 1, "no request of the burst was RATE_LIMITED");
    assert.ok(all.length - limited.length >= 5, `only ${all.length - limited.length} served`);

    // Once the budget refills, requests are served again.
    await waitUntil(
      async () => (await client.request("getPipelines")).ok,
      10000,
      "a request to be served after the burst",
    );
    // By then every burst reply has come, each once.
    for (const requestId of ids) {
      const count = client.received.filter((m) => (m as Reply).requestId === requestId).length;
      assert.equal(count, 1, `${count} replies to ${requestId}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The warning

Deno.test("binding a non-loopback address without a token logs a WARNING naming GSTREAMER_AUTH_TOKEN", async () => {
  const warnings = (logs: string[]) => logs.filter((line) => line.startsWith("WARNING"));

  const open = await startServer({ GSTREAMER_MEDIA_DIR: mediaDir, GSTREAMER_WS_HOST: "0.0.0.0" });
  try {
    const line = await open.waitForLog("WARNING");
    assert.ok(line.startsWith("WARNING"), line);
    assert.match(line, /GSTREAMER_AUTH_TOKEN/);
  } finally {
    await open.stop();
  }

  // With a token, or on loopback, no warning: every line is in once the process has ended.
  for (
    const env of [
      { GSTREAMER_WS_HOST: "0.0.0.0", GSTREAMER_AUTH_TOKEN: TOKEN },
      { GSTREAMER_WS_HOST: "127.0.0.1" },
    ] as Record<string, string>[]
  ) {
    const server = await startServer({ GSTREAMER_MEDIA_DIR: mediaDir, ...env });
    await server.stop();
    assert.ok(
      server.logs.some((line) => line.includes("WebSocket listening")),
      server.logs.join("\n"),
    );
    assert.deepEqual(warnings(server.logs), [], JSON.stringify(env));
  }
});

Deno.test("paths that do not decode get 400 INVALID_PATH on every route, token or not; console folders 404; HEAD reads; recordings' preflight; '..' only as a segment", async () => {
  await withServer({ GSTREAMER_AUTH_TOKEN: TOKEN }, async (server) => {
    const bearer = { Authorization: `Bearer ${TOKEN}` };
    for (
      const [method, path] of [
        ["OPTIONS", "/whep/%zz"],
        ["POST", "/whep/%zz"],
        ["POST", "/whip/%E0%A4%A"],
        ["GET", "/hls/%zz/index.m3u8"],
        ["GET", "/recordings/%zz/"],
        ["POST", "/push/%zz"],
        ["GET", "/console/%zz"],
      ]
    ) {
      for (const headers of [{}, bearer]) {
        const response = await fetch(`${server.httpUrl}${path}`, { method, headers });
        const body = await response.json();
        assert.equal(response.status, 400, `${method} ${path}`);
        assert.equal(body.error.code, "INVALID_PATH", `${method} ${path}`);
        assert.match(body.error.message, /malformed percent-escape.*%25/, `${method} ${path}`);
      }
    }
    for (
      const path of [
        "/console/",
        "/console/.",
        "/console/index.html/",
        "/console/x/../",
        "/console/main.js/",
        `/console/${"a".repeat(256)}`, // longer than a file name can be (it was a 500)
      ]
    ) {
      const response = await fetch(`${server.httpUrl}${path}`);
      const body = await response.json();
      assert.equal(response.status, 404, path);
      assert.equal(body.error.code, "NOT_FOUND", path);
    }
    const reads: [string, HeadersInit][] = [["/healthz", {}], ["/metrics", bearer], [
      "/schema.json",
      {},
    ]];
    for (const [path, headers] of reads) {
      const response = await fetch(`${server.httpUrl}${path}`, { method: "HEAD", headers });
      assert.equal(response.status, 200, `HEAD ${path}`);
      assert.equal(await response.text(), "", `HEAD ${path} has no body`);
    }
    // Read-only routes name the methods they take (these were 404 "No route").
    for (const [path, headers] of [...reads, ["/", {}], ["/console/main.js", {}]] as const) {
      const response = await fetch(`${server.httpUrl}${path}`, { method: "POST", headers });
      const body = await response.json();
      assert.equal(response.status, 405, `POST ${path}`);
      assert.equal(response.headers.get("allow"), "GET, HEAD", `POST ${path}`);
      assert.equal(body.error.code, "METHOD_NOT_ALLOWED", `POST ${path}`);
      assert.match(body.error.message, /^POST \S+: it is only read, with GET/, `POST ${path}`);
    }
    // A page on another origin may read a recording with its token and a range: the preflight.
    const preflight = await fetch(`${server.httpUrl}/recordings/cam/`, {
      method: "OPTIONS",
      headers: {
        origin: "http://page.test",
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization, range",
      },
    });
    await preflight.body?.cancel();
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "http://page.test");
    assert.match(
      preflight.headers.get("access-control-allow-headers") ?? "",
      /authorization.*range/,
    );
    assert.match(preflight.headers.get("access-control-expose-headers") ?? "", /content-range/);
    // ".." is refused as a path segment only: "cam..v2" is a name like any other.
    const offer = (path: string) =>
      fetch(`${server.httpUrl}${path}`, {
        method: "POST",
        headers: { ...bearer, "content-type": "application/sdp" },
        body: "v=0\r\n",
      }).then(async (response) => ({ status: response.status, body: await response.json() }));
    const unserved = await offer("/whep/cam..v2");
    assert.equal(unserved.status, 404);
    assert.match(unserved.body.error.message, /Nothing is served at '\/cam\.\.v2'/);
    const publish = await offer("/whip/pub..x");
    assert.equal(publish.status, 400, JSON.stringify(publish.body));
    assert.match(publish.body.error.message, /not an SDP offer with m-lines/);
    const climbing = await offer("/whep/a/..%2Fb");
    assert.equal(climbing.status, 404);
    assert.match(climbing.body.error.message, /^No stream in/);
    assert.equal(
      server.logs.filter((line) => line.includes("HTTP request failed")).join("\n"),
      "",
      "no request failed inside the server",
    );
  });
});
