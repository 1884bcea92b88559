/**
 * What elements say while a pipeline is taken down on purpose is not an error of its run: a stop
 * must not end in pipelineError, set lastError or start a restart; such an error is told as a
 * warning. rtspsrc 1.22 posts one now and then (its PAUSE cut short by the stop: "Could not send
 * message. (Received end-of-file)"); here a filesink does every time, as it closes a pipe nobody
 * reads any more. The server reads the bus once the pipeline is in NULL, then flushes it itself
 * (GStreamer's own flush there is off), so it sees that error at every stop.
 */
import assert from "node:assert/strict";
import {
  expectOk,
  freshId,
  type ServerEvent,
  type ServerProcess,
  startServer,
  TestClient,
} from "./helpers.ts";
import { closeQuietly } from "./rtsp_client.ts";

/**
 * A live pipeline whose filesink holds frames for a pipe whose reader has gone, beside the chains
 * of `more`. `act` gets it playing.
 */
async function withFailingClose(
  more: string,
  act: (client: TestClient, server: ServerProcess, id: string) => Promise<void>,
): Promise<void> {
  const media = await Deno.makeTempDir({ prefix: "stop_noise_" });
  const fifo = `${media}/frames.raw`;
  let server;
  let client;
  let reading: Promise<Deno.FsFile> | undefined;
  try {
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    server = await startServer({
      GSTREAMER_MEDIA_DIR: media,
      GSTREAMER_ELEMENTS_ALLOW: "filesink",
      GSTREAMER_STATS_INTERVAL_MS: "250",
    });
    client = await TestClient.connect(server.url);
    const id = freshId("stop-noise");
    // filesink keeps what it writes in its buffer; the stop flushes it into a pipe with no reader.
    const pipeline = "videotestsrc is-live=true ! video/x-raw,width=16,height=16 ! " +
      `filesink location=${fifo} buffer-mode=full buffer-size=16777216 ${more}`;
    reading = Deno.open(fifo, { read: true });
    const created = expectOk(
      await client.request("createPipeline", { id, pipeline, desiredState: "playing" }),
    );
    assert.equal(created.payload.state, "PLAYING");
    // Frames in filesink's buffer, and then nobody at the pipe's other end.
    await client.nextStats((p) =>
      p.id === id &&
      p.sinks.some((s: { element: string; rendered: number }) =>
        s.element.startsWith("filesink") && s.rendered > 0
      )
    );
    (await reading).close();
    reading = undefined;
    await act(client, server, id);
    expectOk(await client.request("deletePipeline", { id }));
  } finally {
    // A reader still waiting for a writer (the create failed) is let go by one that comes.
    if (reading) {
      const writer = await Deno.open(fifo, { write: true });
      closeQuietly(writer);
      closeQuietly(await reading);
    }
    await client?.close();
    await server?.stop();
    await Deno.remove(media, { recursive: true });
  }
}

const warningsOf = (client: TestClient, id: string) =>
  client.received.filter((m) =>
    m.type === "pipelineWarning" && (m as ServerEvent).payload.id === id
  ) as ServerEvent[];

Deno.test("an error posted while a pipeline stops is a warning: no pipelineError, no lastError", async () => {
  await withFailingClose("", async (client, _server, id) => {
    const stopped = expectOk(await client.request("stopPipeline", { id }));
    assert.equal(stopped.payload.state, "NULL");
    assert.deepEqual(client.received.filter((m) => m.type === "pipelineError"), []);
    // Told before the reply, as a warning.
    const warnings = warningsOf(client, id);
    assert.ok(warnings.length > 0, "the filesink's error was not told");
    for (const warning of warnings) {
      assert.match(warning.payload.element, /^filesink/);
      assert.ok(warning.payload.message.endsWith("(while it stopped)"), warning.payload.message);
    }
    const info = expectOk(await client.request("getPipeline", { id })).payload;
    assert.equal(info.lastError, null);
    assert.equal(info.desiredState, "stopped");
    assert.equal(info.state, "NULL");
  });
});

Deno.test("after the error that ends a run, errors posted while it stops are its echo: not told", async () => {
  // identity fails at its 60th frame (2 s at 30 frames a second), after the reader has gone, in a
  // chain of its own: the filesink's chain gets no end of stream, and still holds its frames.
  const failing = "videotestsrc is-live=true ! identity error-after=60 ! fakesink";
  await withFailingClose(failing, async (client, server, id) => {
    const error = await client.event("pipelineError", (p) => p.id === id);
    assert.match(error.payload.element, /^identity/);
    await client.event("pipelineStateChanged", (p) => p.id === id && p.new === "NULL");
    // Seen (logged before the pipeline said NULL), but not told: neither as an error nor as a
    // warning, and lastError is identity's.
    await server.waitForLog(`Pipeline '${id}': filesink`, 5000);
    assert.equal(client.received.filter((m) => m.type === "pipelineError").length, 1);
    assert.deepEqual(warningsOf(client, id), []);
    const info = expectOk(await client.request("getPipeline", { id })).payload;
    assert.match(info.lastError.element, /^identity/);
  });
});
