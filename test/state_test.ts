/**
 * A pipeline's recorded state is the one GStreamer reports: when the change to NULL that ends a
 * run fails (after a failed start, or after an end of stream), the pipeline is not shown as NULL.
 */
import assert from "node:assert/strict";
import { expectError, expectOk, freshId, startServer, TestClient } from "./helpers.ts";

const server = await startServer();
const client = await TestClient.connect(server.url);

Deno.test.afterAll(async () => {
  await client.close();
  assert.equal(await server.stop(), 0);
});

async function state(id: string): Promise<string> {
  return expectOk(await client.request("getPipeline", { id })).payload.state;
}

Deno.test("a failed start whose change to NULL fails too keeps the state GStreamer reports", async () => {
  const id = freshId("stuck-start");
  // One sink refuses PLAYING (the start fails), the other refuses to leave PAUSED.
  expectOk(
    await client.request("createPipeline", {
      id,
      pipeline: "videotestsrc ! tee name=t t. ! queue ! fakesink state-error=paused-to-playing " +
        "t. ! queue ! fakesink state-error=paused-to-ready",
    }),
  );
  expectError(await client.request("startPipeline", { id }), "STATE_CHANGE_FAILED");
  // The sink that refuses PAUSED→READY holds the pipeline in PAUSED.
  assert.equal(await state(id), "PAUSED");
  assert.equal(
    client.received.some((m) =>
      m.type === "pipelineStateChanged" && m.payload.id === id && m.payload.new === "NULL"
    ),
    false,
  );
  // Stopping again reports the failure instead of claiming NULL.
  const stop = expectError(await client.request("stopPipeline", { id }), "STATE_CHANGE_FAILED");
  assert.match(stop.message, /could not go to NULL; it is PAUSED/);
  assert.equal(stop.details?.state, "PAUSED");
  expectOk(await client.request("deletePipeline", { id }));
});

Deno.test("an end of stream whose change to NULL fails keeps the state GStreamer reports", async () => {
  const id = freshId("stuck-eos");
  expectOk(
    await client.request("createPipeline", {
      id,
      pipeline: "videotestsrc num-buffers=3 ! fakesink state-error=paused-to-ready",
    }),
  );
  expectOk(await client.request("startPipeline", { id }));
  await client.waitFor((m) => m.type === "pipelineEos" && m.payload.id === id);
  await server.waitForLog(`Pipeline '${id}' could not go to NULL after its run ended`);
  // The sink that refuses PAUSED→READY holds the pipeline in PAUSED.
  assert.equal(await state(id), "PAUSED");
  expectOk(await client.request("deletePipeline", { id }));
});
