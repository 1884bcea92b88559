/** Start-up and shutdown of the real server process: configuration, missing libraries, signals. */
import assert from "node:assert/strict";
import { loadConfig } from "../src/config.ts";
import { launchOf, startServer, TestClient } from "./helpers.ts";

Deno.test("loadConfig() uses the seed's defaults", () => {
  assert.deepEqual(loadConfig({}), {
    host: "localhost",
    port: 8080,
    rtspPort: 8554,
    path: "/gstreamer",
    statsIntervalMs: 1000,
    dataDir: "./data",
    databaseUrl: undefined,
    nodeId: undefined,
    advertiseUrl: undefined,
    leaseSeconds: 6,
    mediaDir: "./media",
    authToken: undefined,
    rtspCredentials: undefined,
    rtspPublishCredentials: undefined,
    allowedOrigins: [],
    elementsAllow: [],
    elementsDeny: [],
    maxPipelines: 256,
    maxClients: 256,
    maxPushes: 16,
    maxWebrtcSessions: 64,
    webrtcAddresses: [],
    webrtcPorts: undefined,
    webrtcStun: undefined,
    webrtcTurn: undefined,
    maxRequestsPerSecond: 1000,
    httpIdleTimeoutMs: 30000,
    wsPingIntervalMs: 30000,
    rtspWriteTimeoutMs: 10000,
    shutdownTimeoutMs: 10000,
    stateChangeTimeoutMs: 30000,
    rtspLingerMs: 5000,
    hlsDir: "",
    hlsSegmentSeconds: 2,
    hlsIdleTimeoutMs: 30000,
    maxHlsStreams: 16,
    recordingsDir: "./recordings",
    recordingsMinFreeBytes: 1024 * 1024 * 1024,
    mainThreadNice: -10,
    mallocThresholdMib: 4,
    timerSlackUs: 1000,
  });
});

Deno.test("loadConfig() reads the WebRTC settings", () => {
  const config = loadConfig({
    GSTREAMER_WEBRTC_PORTS: "40000-40100",
    GSTREAMER_WEBRTC_STUN: "stun://stun.example.org:3478",
    GSTREAMER_WEBRTC_TURN: "turns://user:secret@turn.example.org:5349",
    GSTREAMER_WEBRTC_ADDRESSES: "192.168.1.10, ::1",
  });
  assert.deepEqual(config.webrtcPorts, { min: 40000, max: 40100 });
  assert.equal(config.webrtcStun, "stun://stun.example.org:3478");
  assert.equal(config.webrtcTurn, "turns://user:secret@turn.example.org:5349");
  assert.deepEqual(config.webrtcAddresses, ["192.168.1.10", "::1"]);
});

Deno.test("loadConfig() names the variable and what it accepts", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ GSTREAMER_WS_PORT: "abc" }, /GSTREAMER_WS_PORT.*0 to 65535/],
    [{ GSTREAMER_WS_PORT: "70000" }, /GSTREAMER_WS_PORT.*0 to 65535/],
    [{ GSTREAMER_WS_PORT: "-1" }, /GSTREAMER_WS_PORT/],
    [{ GSTREAMER_WS_PATH: "no-slash" }, /GSTREAMER_WS_PATH.*starts with '\/'/],
    [{ GSTREAMER_WS_HOST: " " }, /GSTREAMER_WS_HOST/],
    [{ GSTREAMER_AUTH_TOKEN: "short" }, /GSTREAMER_AUTH_TOKEN.*at least 8/],
    [{ GSTREAMER_WEBRTC_ADDRESSES: "127.0.0.1,lan" }, /GSTREAMER_WEBRTC_ADDRESSES.*IP addresses/],
    [{ GSTREAMER_MAX_WEBRTC_SESSIONS: "0" }, /GSTREAMER_MAX_WEBRTC_SESSIONS/],
    [{ GSTREAMER_WEBRTC_PORTS: "40100-40000" }, /GSTREAMER_WEBRTC_PORTS.*MIN-MAX/],
    [{ GSTREAMER_WEBRTC_PORTS: "80-90" }, /GSTREAMER_WEBRTC_PORTS.*1024-65535/],
    [{ GSTREAMER_WEBRTC_STUN: "stun.example.org" }, /GSTREAMER_WEBRTC_STUN.*stun:\/\/HOST/],
    [{ GSTREAMER_WEBRTC_TURN: "turn://host:3478" }, /GSTREAMER_WEBRTC_TURN.*USER:PASSWORD/],
    [{ GSTREAMER_RTSP_USER: "viewer" }, /GSTREAMER_RTSP_PASSWORD.*go together/],
    [
      { GSTREAMER_RTSP_PUBLISH_PASSWORD: "secret-pw" },
      /GSTREAMER_RTSP_PUBLISH_USER.*go together/,
    ],
    [{ GSTREAMER_RTSP_PUBLISH_USER: "a:b", GSTREAMER_RTSP_PUBLISH_PASSWORD: "x" }, /at least 8/],
    [{ GSTREAMER_MAX_PIPELINES: "0" }, /GSTREAMER_MAX_PIPELINES.*from 1/],
    [{ GSTREAMER_MAX_PIPELINES: "-5" }, /GSTREAMER_MAX_PIPELINES.*from 1/],
    [{ GSTREAMER_MAIN_THREAD_NICE: "5" }, /GSTREAMER_MAIN_THREAD_NICE.*from -20 to 0/],
    [{ GSTREAMER_MAIN_THREAD_NICE: "-21" }, /GSTREAMER_MAIN_THREAD_NICE.*nice value/],
    [{ GSTREAMER_MAIN_THREAD_NICE: "high" }, /GSTREAMER_MAIN_THREAD_NICE.*whole number/],
    [{ GSTREAMER_MALLOC_THRESHOLD_MIB: "33" }, /GSTREAMER_MALLOC_THRESHOLD_MIB.*from 0 to 32/],
    [{ GSTREAMER_MALLOC_THRESHOLD_MIB: "-1" }, /GSTREAMER_MALLOC_THRESHOLD_MIB.*of MiB/],
    [{ GSTREAMER_TIMER_SLACK_US: "10001" }, /GSTREAMER_TIMER_SLACK_US.*from 0 to 10000/],
    [{ GSTREAMER_TIMER_SLACK_US: "1ms" }, /GSTREAMER_TIMER_SLACK_US.*of microseconds/],
    [
      { GSTREAMER_MAX_REQUESTS_PER_SECOND: "many" },
      /GSTREAMER_MAX_REQUESTS_PER_SECOND.*0: no limit/,
    ],
    [{ GSTREAMER_STATS_INTERVAL_MS: "5" }, /GSTREAMER_STATS_INTERVAL_MS.*100 to 60000/],
    [{ GSTREAMER_DATABASE_URL: "mysql://db/gst" }, /GSTREAMER_DATABASE_URL.*postgres:\/\//],
    [{ GSTREAMER_NODE_ID: "node a" }, /GSTREAMER_NODE_ID.*letters, digits/],
    [{ GSTREAMER_ADVERTISE_URL: "10.0.0.5:8080" }, /GSTREAMER_ADVERTISE_URL.*http:\/\/10\.0\.0\.5/],
    [{ GSTREAMER_LEASE_SECONDS: "1" }, /GSTREAMER_LEASE_SECONDS.*2 to 300/],
  ];
  for (const [env, pattern] of cases) {
    assert.throws(() => loadConfig(env), pattern, JSON.stringify(env));
  }
});

Deno.test("an invalid setting stops start-up with a message naming it", async () => {
  await assert.rejects(
    startServer({ GSTREAMER_WS_PORT: "eighty" }),
    /exited with 78[\s\S]*GSTREAMER_WS_PORT="eighty"[\s\S]*0 to 65535/,
  );
});

Deno.test("a second server on a taken port or data directory stops at start-up, naming it, and the first runs on", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "taken-" });
  const first = await startServer({ GSTREAMER_DATA_DIR: dataDir });
  try {
    const client = await TestClient.connect(first.url);
    const created = await client.request("createPipeline", {
      id: "mine",
      pipeline: "videotestsrc is-live=true ! fakesink",
      desiredState: "playing",
    });
    assert.equal(created.ok, true);
    // Not a configuration error: started again by a supervisor, it runs once the first has ended.
    // Its ports are the first's too, as for a second copy of one service: the lock is found first.
    await assert.rejects(
      startServer({
        GSTREAMER_DATA_DIR: dataDir,
        GSTREAMER_RTSP_PORT: new URL(first.rtspUrl).port,
      }),
      new RegExp(
        `exited with 1[\\s\\S]*GSTREAMER_DATA_DIR=${dataDir} is in use by another server ` +
          `\\(process ${first.pid}, `,
      ),
    );
    await assert.rejects(
      startServer({ GSTREAMER_WS_PORT: new URL(first.url).port }),
      /exited with 78[\s\S]*EADDRINUSE[\s\S]*\(GSTREAMER_WS_PORT=\d+, GSTREAMER_WS_HOST=127\.0\.0\.1\)/,
    );
    const listed = await client.request("getPipelines");
    assert.deepEqual(
      listed.payload.pipelines.map((p: { id: string; state: string }) => [p.id, p.state]),
      [["mine", "PLAYING"]],
    );
    await client.close();
  } finally {
    assert.equal(await first.stop(), 0);
  }
  // Its lock goes with it.
  const next = await startServer({ GSTREAMER_DATA_DIR: dataDir });
  assert.equal(await next.stop(), 0);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("a shutdown that a pipeline holds up ends at GSTREAMER_SHUTDOWN_TIMEOUT_MS, or at a second signal, naming the pipeline", async (t) => {
  // identity sleeps a minute in its streaming thread, which the change to NULL waits for.
  const stuck = "videotestsrc is-live=true ! identity sleep-time=60000000 ! fakesink async=false";
  const serverWithStuckPipeline = async (env: Record<string, string>) => {
    const server = await startServer(env);
    const client = await TestClient.connect(server.url);
    const created = await client.request("createPipeline", {
      id: "sleeper",
      pipeline: stuck,
      desiredState: "playing",
    });
    assert.equal(created.ok, true, JSON.stringify(created));
    return { server, client };
  };
  await t.step("the timeout", async () => {
    const { server, client } = await serverWithStuckPipeline({
      GSTREAMER_SHUTDOWN_TIMEOUT_MS: "1000",
    });
    Deno.kill(server.pid, "SIGTERM");
    await server.waitForLog("SIGTERM received");
    // On its way out: a load balancer sends no one new.
    const health = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(health.status, 503);
    assert.equal((await health.json()).status, "stopping");
    assert.equal(await server.exited, 1);
    assert.ok(
      server.logs.some((line) =>
        line.includes(
          "Not stopped after 1000 ms (GSTREAMER_SHUTDOWN_TIMEOUT_MS): pipeline " +
            "'sleeper' did not; exiting without waiting",
        )
      ),
      server.logs.join("\n"),
    );
    await client.closed;
  });
  await t.step("a second signal", async () => {
    const { server, client } = await serverWithStuckPipeline({
      GSTREAMER_SHUTDOWN_TIMEOUT_MS: "600000",
    });
    Deno.kill(server.pid, "SIGTERM");
    await server.waitForLog("SIGTERM received");
    Deno.kill(server.pid, "SIGINT");
    assert.equal(await server.exited, 1);
    assert.ok(
      server.logs.some((line) => line.includes("SIGINT received again: exiting without waiting")),
      server.logs.join("\n"),
    );
    await client.closed;
  });
});

Deno.test("missing GStreamer libraries are named with how to install them", async () => {
  await assert.rejects(
    startServer({ GSTREAMER_LIB_DIR: "/nonexistent/lib" }),
    /exited with 78[\s\S]*Could not open the glib-2.0 library[\s\S]*\/nonexistent\/lib\/libglib-2.0.so.0[\s\S]*apt-get install/,
  );
});

Deno.test("a .env file is read, and the environment wins over it", async () => {
  const envFile = await Deno.makeTempFile({ suffix: ".env" });
  try {
    await Deno.writeTextFile(envFile, "GSTREAMER_WS_PATH=/from-file\nGSTREAMER_WS_PORT=1\n");
    const server = await startServer({ GSTREAMER_ENV_FILE: envFile, GSTREAMER_WS_PORT: "0" });
    try {
      assert.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/from-file$/);
      assert.doesNotMatch(server.url, /:1\//);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(envFile);
  }
});

Deno.test("start-up logs the GStreamer version and the URL; SIGTERM closes clients and exits 0", async () => {
  const server = await startServer();
  assert.ok(
    server.logs.some((line) => /^GStreamer 1\.\d+\.\d+/.test(line)),
    server.logs.join("\n"),
  );
  assert.ok(!server.logs.some((line) => line.includes("(ulimit -n)")), server.logs.join("\n"));
  const client = await TestClient.connect(server.url);
  const created = await client.request("createPipeline", {
    id: "running",
    pipeline: {
      elements: [{ type: "videotestsrc", properties: { "is-live": true } }, { type: "fakesink" }],
    },
  });
  assert.equal(created.ok, true);
  assert.equal((await client.request("startPipeline", { id: "running" })).payload.state, "PLAYING");
  const code = await server.stop();
  const closed = await client.closed;
  assert.equal(closed.code, 1001, "clients get a close frame");
  assert.equal(code, 0);
  assert.ok(server.logs.some((line) => /SIGTERM received/.test(line)));
});

Deno.test("/metrics has no samples before the first stats snapshot, where a 0 would read as a fact", async () => {
  const server = await startServer({ GSTREAMER_STATS_INTERVAL_MS: "60000" });
  try {
    const client = await TestClient.connect(server.url);
    const created = await client.request("createPipeline", {
      id: "early",
      pipeline: "videotestsrc is-live=true ! fakesink",
      desiredState: "playing",
    });
    assert.equal(created.ok, true);
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    assert.match(metrics, /^# TYPE gstreamer_server_rss_bytes gauge$/m);
    for (
      const gauge of [
        "gstreamer_server_rss_bytes",
        "gstreamer_pipelines",
        "gstreamer_server_clients",
      ]
    ) {
      assert.doesNotMatch(metrics, new RegExp(`^${gauge} `, "m"), metrics);
    }
    await client.close();
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("a running server has no Worker: stats positions and bus messages come without a V8 isolate of their own", async () => {
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  try {
    const created = await client.request("createPipeline", {
      id: "first",
      pipeline: "videotestsrc ! fakesink",
      desiredState: "playing",
    });
    assert.equal(created.ok, true, JSON.stringify(created.error));
    // A stats round has asked its position (off the main thread) and its bus has been watched.
    const stats = await client.nextStats((p) => p.id === "first" && p.position !== null);
    assert.ok(stats);
    // Deno names a Worker's thread "worker-N"; each Worker is a V8 isolate of 7 to 10 MiB.
    const workers: string[] = [];
    for await (const task of Deno.readDir(`/proc/${server.pid}/task`)) {
      const name = await Deno.readTextFile(`/proc/${server.pid}/task/${task.name}/comm`);
      if (name.startsWith("worker-")) workers.push(name.trim());
    }
    assert.deepEqual(workers, []);
  } finally {
    await client.close();
    await server.stop();
  }
});

Deno.test("start-up warns when the process may open few files (GStreamer aborts when it runs out)", async () => {
  const direct = launchOf("src/main.ts");
  const server = await startServer({}, 20000, {
    command: "prlimit",
    args: ["--nofile=1024:1024", "--", direct.command, ...direct.args],
  });
  try {
    assert.ok(
      server.logs.some((line) =>
        line.startsWith("WARNING: this process may open only 1024 files (ulimit -n)")
      ),
      server.logs.join("\n"),
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
