/**
 * Supervision: a pipeline's restart policy (never, on-failure, always) with
 * back-off, and start_server.sh bringing the whole server back after a crash.
 */
import assert from "node:assert/strict";
import {
  cameraLaunch,
  expectOk,
  type ServerEvent,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";

const mediaDir = await Deno.makeTempDir({ prefix: "supervision_media_" });
const server = await startServer({ GSTREAMER_MEDIA_DIR: mediaDir });
const client = await TestClient.connect(server.url);

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0, "server exits 0 on SIGTERM");
});

const restarting = (id: string, attempt: number) =>
  client.event("pipelineRestarting", (p) => p.id === id && p.attempt === attempt);

Deno.test("restart always: each end of stream starts it again, waiting 1 s, then 2 s", async () => {
  const id = "always-eos";
  expectOk(
    await client.request("createPipeline", {
      id,
      restart: "always",
      pipeline: {
        elements: [{ type: "videotestsrc", properties: { "num-buffers": 5 } }, {
          type: "fakesink",
        }],
      },
    }),
  );
  expectOk(await client.request("startPipeline", { id }));
  const first = await restarting(id, 1);
  assert.equal(first.payload.delayMs, 1000);
  assert.equal(first.payload.reason, "end of stream");
  const second = await restarting(id, 2);
  assert.equal(second.payload.delayMs, 2000);
  const stats = await client.nextStats((p) => p.id === id && p.restarts >= 1);
  assert.ok(stats.payload.pipelines.find((p: { id: string }) => p.id === id).restarts >= 1);
  const stopped = expectOk(await client.request("stopPipeline", { id }));
  assert.equal(stopped.payload.state, "NULL");
  const info = expectOk(await client.request("getPipeline", { id }));
  assert.equal(info.payload.desiredState, "stopped");
  assert.equal(info.payload.restart, "always");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("restart on-failure: a source that is missing is retried until it appears", async () => {
  const id = "on-failure-file";
  const file = `${mediaDir}/late.bin`;
  expectOk(
    await client.request("createPipeline", {
      id,
      restart: "on-failure",
      pipeline: {
        elements: [{ type: "filesrc", properties: { location: "late.bin" } }, {
          type: "fakesink",
        }],
      },
    }),
  );
  const start = await client.request("startPipeline", { id });
  assert.equal(start.error?.code, "STATE_CHANGE_FAILED");
  assert.equal(start.error?.details?.restartInMs, 1000);
  assert.match(start.error!.message, /trying again in 1000 ms/);
  const info = expectOk(await client.request("getPipeline", { id }));
  assert.equal(info.payload.desiredState, "playing", "a supervised start keeps wanting to play");
  await Deno.writeFile(file, new Uint8Array(64 * 1024));
  // The next attempt finds the file and reads it to the end; EOS is not a failure.
  await client.event("pipelineEos", (p) => p.id === id);
  const after = await waitUntil(
    async () => {
      const reply = expectOk(await client.request("getPipeline", { id }));
      return reply.payload.desiredState === "stopped" ? reply : null;
    },
    15000,
    "the pipeline to settle as stopped after its end of stream",
  );
  assert.ok(after.payload.restarts >= 1);
  expectOk(await client.request("deletePipeline", { id }));
  await Deno.remove(file);
});

Deno.test("restart never: a failed start stays stopped", async () => {
  const id = "never-file";
  expectOk(
    await client.request("createPipeline", {
      id,
      pipeline: {
        elements: [{ type: "filesrc", properties: { location: "absent.bin" } }, {
          type: "fakesink",
        }],
      },
    }),
  );
  const start = await client.request("startPipeline", { id });
  assert.equal(start.error?.code, "STATE_CHANGE_FAILED");
  assert.equal(start.error?.details?.restartInMs, undefined);
  const info = expectOk(await client.request("getPipeline", { id }));
  assert.equal(info.payload.desiredState, "stopped");
  assert.equal(info.payload.restart, "never");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("an unknown restart policy is refused with the choices", async () => {
  const reply = await client.request("createPipeline", {
    id: "bad-policy",
    restart: "sometimes",
    pipeline: { elements: [{ type: "fakesrc" }, { type: "fakesink" }] },
  });
  assert.equal(reply.error?.code, "INVALID_REQUEST");
  assert.match(reply.error!.message, /payload\.restart.*never, on-failure, always/);
});

Deno.test("the back-off goes back to 1 s after a minute of healthy running", async () => {
  const id = "backoff-reset";
  expectOk(
    await client.request("createPipeline", {
      id,
      restart: "always",
      pipeline: {
        elements: [
          { type: "videotestsrc", name: "src", properties: { "is-live": true, "num-buffers": 2 } },
          {
            type: "capsfilter",
            properties: { caps: "video/x-raw,width=32,height=24,framerate=30/1" },
          },
          { type: "fakesink" },
        ],
      },
    }),
  );
  expectOk(await client.request("startPipeline", { id }));
  assert.equal((await restarting(id, 1)).payload.delayMs, 1000);
  assert.equal((await restarting(id, 2)).payload.delayMs, 2000);
  // The next run lasts a little over a minute (1900 frames at 30 fps) before its end of stream.
  expectOk(
    await client.request("setElementProperty", {
      id,
      element: "src",
      property: "num-buffers",
      value: 1900,
    }),
  );
  const third = await client.waitFor<ServerEvent>(
    (m) => m.type === "pipelineRestarting" && m.payload.id === id && m.payload.attempt === 3,
    120000,
    "the restart after the long run",
  );
  assert.equal(third.payload.delayMs, 1000, "a minute of health resets the back-off");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("start_server.sh starts the server again after kill -9, with the pipelines", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "supervised_data_" });
  const supervised = await startServer({ GSTREAMER_DATA_DIR: dataDir }, 60000, {
    command: "bash",
    args: ["start_server.sh"],
  });
  try {
    const first = await TestClient.connect(supervised.url);
    expectOk(
      await first.request("createPipeline", {
        id: "survivor",
        pipeline: {
          elements: [{ type: "videotestsrc", properties: { "is-live": true } }, {
            type: "fakesink",
          }],
        },
      }),
    );
    expectOk(await first.request("startPipeline", { id: "survivor" }));
    const serverPid = Number(
      (await supervised.waitForLog(", process ")).match(/process (\d+)/)![1],
    );
    Deno.kill(serverPid, "SIGKILL");
    await first.closed;
    await supervised.waitForLog("Server died (exit status 137); restarting in 1s");
    const url = await waitUntil(
      () =>
        supervised.logs.filter((line) => line.includes("WebSocket listening on")).at(1)?.match(
          /(ws:\/\/\S+)/,
        )?.[1],
      30000,
      "the restarted server to listen",
    );
    const second = await TestClient.connect(url);
    await waitUntil(
      async () => {
        const reply = expectOk(await second.request("getPipeline", { id: "survivor" }));
        return reply.payload.state === "PLAYING";
      },
      15000,
      "the restored pipeline to play",
    );
    await second.close();
    assert.equal(await supervised.stop(), 0, "SIGTERM to the script stops the server cleanly");
    assert.ok(!supervised.logs.some((line) => line.includes("Server died (exit status 0")));
  } finally {
    await supervised.stop();
  }
});

Deno.test("restart always: an rtspsrc whose camera goes away and comes back recovers by itself", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const cameraPort = String((probe.addr as Deno.NetAddr).port);
  probe.close();
  const startCamera = async () => {
    const camera = await startServer({ GSTREAMER_RTSP_PORT: cameraPort });
    const control = await TestClient.connect(camera.url);
    expectOk(
      await control.request("createPipeline", {
        id: "cam",
        pipeline: cameraLaunch("cam"),
      }),
    );
    expectOk(await control.request("startPipeline", { id: "cam" }));
    await control.close();
    return camera;
  };
  let camera = await startCamera();
  const id = "watcher";
  try {
    expectOk(
      await client.request("createPipeline", {
        id,
        restart: "always",
        pipeline: `rtspsrc location=rtsp://127.0.0.1:${cameraPort}/cam protocols=tcp latency=0 ` +
          "! rtph264depay ! h264parse ! fakesink name=out",
      }),
    );
    expectOk(await client.request("startPipeline", { id }));
    const rendering = (after: number) =>
      client.nextStats((p) => p.id === id && p.state === "PLAYING" && p.sinks[0]?.rendered > after);
    await rendering(0);

    Deno.kill(camera.pid, "SIGKILL");
    await camera.exited;
    // rtspsrc reports a server that went away as a warning and the end of the stream.
    const warning = await client.event("pipelineWarning", (p) => p.id === id);
    assert.match(warning.payload.debug, /server closed the connection/i);
    const dropped = await client.event("pipelineEos", (p) => p.id === id);
    await restarting(id, 1);
    // The first attempt fails while the camera is away (the back-off doubles); then it comes back.
    assert.equal((await restarting(id, 2)).payload.delayMs, 2000);
    camera = await startCamera();
    await client.waitFor(
      (m) =>
        m.type === "pipelineStateChanged" && m.payload.id === id && m.payload.new === "PLAYING" &&
        client.received.indexOf(m) > client.received.indexOf(dropped),
      60000,
      "the watcher to play again",
    );
    await rendering(0);
    const info = expectOk(await client.request("getPipeline", { id }));
    assert.ok(info.payload.restarts >= 1);
    assert.equal(info.payload.desiredState, "playing");
  } finally {
    await client.request("deletePipeline", { id });
    await camera.stop();
  }
});

Deno.test("a start that fails does not take back a pause asked for while it ran", async () => {
  // The first GET is held, then refused; later ones get data that never ends.
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => releaseFirst = resolve);
  let firstArrived!: () => void;
  const firstRequest = new Promise<void>((resolve) => firstArrived = resolve);
  let requests = 0;
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    if (++requests === 1) {
      firstArrived();
      await firstHeld;
      return new Response("not yet", { status: 404 });
    }
    let stream: ReadableStreamDefaultController<Uint8Array>;
    return new Response(
      new ReadableStream({
        start: (controller) => {
          streams.add(stream = controller);
          controller.enqueue(new Uint8Array(4096));
        },
        cancel: () => void streams.delete(stream),
      }),
    );
  });
  const id = "fails-then-pauses";
  try {
    expectOk(
      await client.request("createPipeline", {
        id,
        pipeline: `souphttpsrc location=http://127.0.0.1:${http.addr.port}/ ! fakesink`,
      }),
    );
    const start = client.request("startPipeline", { id });
    await firstRequest;
    const pause = client.request("pausePipeline", { id });
    // Messages of one connection are taken in order: once this replies, the pause is wished.
    const wished = expectOk(await client.request("getPipeline", { id }));
    assert.equal(wished.payload.desiredState, "paused");
    releaseFirst();
    assert.equal((await start).error?.code, "STATE_CHANGE_FAILED");
    assert.equal(expectOk(await pause).payload.state, "PAUSED");
    const info = expectOk(await client.request("getPipeline", { id }));
    assert.equal(info.payload.state, "PAUSED");
    assert.equal(info.payload.desiredState, "paused", "the pause, acknowledged last, is kept");
  } finally {
    releaseFirst();
    await client.request("deletePipeline", { id });
    for (const stream of streams) stream.close();
    await http.shutdown();
  }
});
