/**
 * RTSP basic auth (GSTREAMER_RTSP_USER/GSTREAMER_RTSP_PASSWORD, GSTREAMER_AUTH_TOKEN), checked
 * with real ffprobe and a raw RTSP request. Open access without either is covered by rtsp_test.ts.
 */
import assert from "node:assert/strict";
import { run, type ServerProcess, startServer, TestClient } from "./helpers.ts";

const USER = "viewer";
const PASSWORD = "correct-horse-battery";
const TOKEN = "tok-0123456789abcdef";

const camera = (path: string) => [
  { type: "videotestsrc", properties: { "is-live": true } },
  { type: "capsfilter", properties: { caps: "video/x-raw,width=160,height=120,framerate=15/1" } },
  {
    type: "x264enc",
    properties: { tune: "zerolatency", "key-int-max": 15, speed_preset: "ultrafast" },
  },
  { type: "rtspserversink", properties: { path } },
];

/** Starts a server with `env` that serves a live H.264 camera at /cam. */
async function serveCamera(env: Record<string, string>) {
  const server = await startServer(env);
  // With a token the WebSocket needs it too (here as the `token` query parameter).
  const token = env.GSTREAMER_AUTH_TOKEN;
  const client = await TestClient.connect(
    token === undefined ? server.url : `${server.url}?token=${encodeURIComponent(token)}`,
  );
  const created = await client.request("createPipeline", {
    id: "cam",
    pipeline: { elements: camera("cam") },
  });
  assert.equal(created.ok, true, `${JSON.stringify(created.error)}\n${server.logs.join("\n")}`);
  const started = await client.request("startPipeline", { id: "cam" });
  assert.equal(started.payload?.state, "PLAYING", JSON.stringify(started.error));
  return {
    server,
    async [Symbol.asyncDispose]() {
      await client.close();
      assert.equal(await server.stop(), 0);
    },
  };
}

/** ffprobe of rtsp://[user:password@]host:port/cam over TCP. */
function ffprobe(server: ServerProcess, user?: string, password?: string) {
  const url = new URL(`${server.rtspUrl}/cam`);
  if (user !== undefined) url.username = encodeURIComponent(user);
  if (password !== undefined) url.password = encodeURIComponent(password);
  return run("ffprobe", [
    "-v",
    "error",
    "-rtsp_transport",
    "tcp",
    "-show_entries",
    "stream=codec_name",
    "-of",
    "json",
    url.href,
  ]);
}

async function assertServed(server: ServerProcess, user: string, password: string) {
  const result = await ffprobe(server, user, password);
  assert.equal(result.code, 0, `${user}: ${result.stderr}\n${server.logs.join("\n")}`);
  assert.deepEqual(
    JSON.parse(result.stdout).streams.map((s: { codec_name: string }) => s.codec_name),
    ["h264"],
  );
}

async function assertUnauthorized(server: ServerProcess, user?: string, password?: string) {
  const result = await ffprobe(server, user, password);
  assert.notEqual(result.code, 0, `${user ?? "no user"} was let in`);
  assert.match(result.stderr, /401 Unauthorized/, `${user ?? "no user"}: ${result.stderr}`);
}

/** One raw RTSP request on a fresh connection; the response head (status line and headers). */
async function rtspRequest(
  server: ServerProcess,
  method: string,
  path: string,
  credentials?: { user: string; password: string },
) {
  const { hostname, port } = new URL(server.rtspUrl);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  try {
    const authorization = credentials
      ? `Authorization: Basic ${btoa(`${credentials.user}:${credentials.password}`)}\r\n`
      : "";
    const request =
      `${method} ${server.rtspUrl}${path} RTSP/1.0\r\nCSeq: 1\r\n${authorization}\r\n`;
    await connection.write(new TextEncoder().encode(request));
    let head = "";
    const decoder = new TextDecoder();
    const chunk = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const read = await connection.read(chunk);
      if (read === null) break;
      head += decoder.decode(chunk.subarray(0, read), { stream: true });
    }
    const [status, ...headers] = head.split("\r\n\r\n")[0].split("\r\n");
    return { status, headers: headers.map((line) => line.toLowerCase()) };
  } finally {
    connection.close();
  }
}

Deno.test("RTSP with a user and a token configured accepts only those credentials", async (t) => {
  await using camera = await serveCamera({
    GSTREAMER_RTSP_USER: USER,
    GSTREAMER_RTSP_PASSWORD: PASSWORD,
    GSTREAMER_AUTH_TOKEN: TOKEN,
  });
  const { server } = camera;
  await server.waitForLog("RTSP requires basic auth");
  assert.ok(
    !server.logs.some((line) => line.includes(PASSWORD) || line.includes(TOKEN)),
    "a secret was printed",
  );

  await t.step("every request without credentials gets 401 and a Basic challenge", async () => {
    // OPTIONS and unknown paths too: nothing, not even which paths exist, is told to strangers.
    for (const [method, path] of [["DESCRIBE", "/cam"], ["OPTIONS", "/cam"], ["DESCRIBE", "/x"]]) {
      const response = await rtspRequest(server, method, path);
      assert.equal(response.status, "RTSP/1.0 401 Unauthorized", `${method} ${path}`);
      assert.ok(
        response.headers.some((line) => line.startsWith("www-authenticate: basic realm=")),
        response.headers.join("\n"),
      );
    }
    await assertUnauthorized(server);
  });

  await t.step("with credentials, requests are answered as without auth", async () => {
    const credentials = { user: USER, password: PASSWORD };
    assert.equal(
      (await rtspRequest(server, "OPTIONS", "/cam", credentials)).status,
      "RTSP/1.0 200 OK",
    );
    assert.equal(
      (await rtspRequest(server, "DESCRIBE", "/x", credentials)).status,
      "RTSP/1.0 404 Not Found",
    );
  });

  await t.step("a wrong password, or a right password with another user, gets 401", async () => {
    await assertUnauthorized(server, USER, "wrong-password");
    await assertUnauthorized(server, "someone", PASSWORD);
    await assertUnauthorized(server, "token", PASSWORD);
    await assertUnauthorized(server, USER, TOKEN);
  });

  await t.step("the configured user and password read the H.264 stream", async () => {
    await assertServed(server, USER, PASSWORD);
  });

  await t.step("user 'token' with the API token reads the H.264 stream", async () => {
    await assertServed(server, "token", TOKEN);
  });
});

Deno.test("RTSP with only a token configured needs user 'token' and that token", async () => {
  await using camera = await serveCamera({ GSTREAMER_AUTH_TOKEN: TOKEN });
  const { server } = camera;
  await assertUnauthorized(server);
  await assertUnauthorized(server, "token", "not-the-token");
  await assertServed(server, "token", TOKEN);
});
