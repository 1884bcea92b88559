/**
 * Failed or racing requests leave nothing behind: descriptors, reserved names, mounts, folders and
 * stored rows are back to what they were. Real server, real GStreamer, real HTTP and RTSP clients.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Socket } from "node:net";
import { DatabaseSync } from "node:sqlite";
// @ts-types="npm:@types/ws@8.18.1"
import WebSocket from "ws";
import {
  expectError,
  expectOk,
  resourceCounts,
  type ServerEvent,
  type ServerProcess,
  startServer,
  TestClient,
} from "./helpers.ts";
import { RtspConn } from "./rtsp_client.ts";

Deno.test("a span export whose pipeline cannot be built closes its pipes (500, every time)", async () => {
  const recordings = await Deno.makeTempDir({ prefix: "cleanup-recordings-" });
  const server = await startServer({
    GSTREAMER_RECORDINGS_DIR: recordings,
    GSTREAMER_RECORDINGS_MIN_FREE_MB: "1",
  });
  try {
    // A segment whose stream list names a codec no export chain handles: the build fails.
    await Deno.mkdir(join(recordings, "p"));
    await Deno.writeFile(join(recordings, "p", "2026-12-03T07-30-12.345Z.ts"), new Uint8Array(188));
    await Deno.writeTextFile(
      join(recordings, "p", ".streams.json"),
      JSON.stringify({ video: "vp9", audio: null }),
    );
    const exportOnce = async () => {
      const response = await fetch(`${server.httpUrl}/recordings/p/export`);
      const body = await response.text();
      assert.equal(response.status, 500, body);
    };
    await exportOnce();
    const before = (await resourceCounts(server.pid)).fds;
    for (let i = 0; i < 10; i++) await exportOnce();
    const after = (await resourceCounts(server.pid)).fds;
    // Two descriptors a pipe, one or two pipes an export: ten leaking exports would add 20 or more.
    assert.ok(after - before < 5, `descriptors ${before} -> ${after} over 10 failed exports`);
    const left = [];
    for await (const entry of Deno.readDir(recordings)) {
      if (entry.name.startsWith(".span-")) left.push(entry.name);
    }
    assert.deepEqual(left, [], "no export folder left");
  } finally {
    assert.equal(await server.stop(), 0, server.logs.slice(-20).join("\n"));
    await Deno.remove(recordings, { recursive: true });
  }
});

/** A server with a data and a recordings folder of its own, and a client. */
async function recordingServer(dirs?: { data: string; recordings: string }) {
  const data = dirs?.data ?? await Deno.makeTempDir({ prefix: "cleanup-data-" });
  const recordings = dirs?.recordings ?? await Deno.makeTempDir({ prefix: "cleanup-rec-" });
  const server = await startServer({
    GSTREAMER_DATA_DIR: data,
    GSTREAMER_RECORDINGS_DIR: recordings,
    GSTREAMER_RECORDINGS_MIN_FREE_MB: "1",
  });
  const client = await TestClient.connect(server.url);
  return { data, recordings, server, client };
}

async function stopServer(server: ServerProcess, client: TestClient): Promise<void> {
  await client.close();
  assert.equal(await server.stop(), 0, server.logs.slice(-20).join("\n"));
}

/** What the server answers to an RTSP DESCRIBE of `path`: "200", or the status and reason. */
async function describeAnswer(base: string, path: string): Promise<string> {
  const conn = await RtspConn.open(base);
  try {
    await conn.request("DESCRIBE", `${base}/${path}`, { Accept: "application/sdp" });
    return "200";
  } catch (error) {
    // "DESCRIBE URL: STATUS", the reason, then the headers (whose Date may differ).
    return (error as Error).message.split("\n").slice(0, 2).join("\n");
  } finally {
    conn.close();
  }
}

Deno.test("a startRecording the store refuses leaves no folder and no playback mount", async () => {
  const { data, recordings, server, client } = await recordingServer();
  try {
    // The store refuses rows of paths named fail-*, as a failing disk would.
    const db = new DatabaseSync(`${data}/pipelines.db`);
    db.exec(`CREATE TRIGGER refuse_recording BEFORE INSERT ON recordings
      WHEN NEW.path LIKE 'fail-%' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;`);
    db.close();
    const unmounted = await describeAnswer(server.rtspUrl, "recordings/never-recorded");
    expectError(
      await client.request("startRecording", { path: "fail-x", segmentSeconds: 1 }),
      "STORAGE_FAILED",
    );
    const entries = [];
    for await (const entry of Deno.readDir(recordings)) entries.push(entry.name);
    assert.deepEqual(entries, [], "no folder made for the refused recording");
    // Unmounted, a path gets gst-rtsp-server's plain 404; mounted, our check's reason.
    assert.equal(
      await describeAnswer(server.rtspUrl, "recordings/fail-x"),
      unmounted.replaceAll("never-recorded", "fail-x"),
    );
    const listed = expectOk(await client.request("listRecordings"));
    assert.deepEqual(listed.payload.recordings, []);
  } finally {
    await stopServer(server, client);
    await Deno.remove(data, { recursive: true });
    await Deno.remove(recordings, { recursive: true });
  }
});

/**
 * Sends `requests` in one TCP write on a new connection (so that the server reads them at once)
 * and resolves with their replies, in the order sent.
 */
async function sendTogether(
  url: string,
  requests: { type: string; payload: unknown }[],
): Promise<{ type: string; ok?: boolean; error?: { code: string } }[]> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const replies = new Map<string, unknown>();
  const all = new Promise<void>((resolve) => {
    ws.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (message.requestId === undefined) return;
      replies.set(message.requestId, message);
      if (replies.size === requests.length) resolve();
    });
  });
  const socket = (ws as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (const [index, request] of requests.entries()) {
    ws.send(JSON.stringify({ ...request, requestId: `r${index}` }));
  }
  socket.uncork();
  await all;
  ws.close();
  // deno-lint-ignore no-explicit-any
  return requests.map((_, index) => replies.get(`r${index}`) as any);
}

/*
 * Before 2026-12-04 a stop that came while the start made its folder removed a row not yet
 * stored: the start then stored it, so the recording was listed as stopped but came back after a
 * restart. Now a stop waits for the start's row.
 */
Deno.test("startRecording and stopRecording sent together: the stop wins, and stays after a restart", async () => {
  const dirs = {
    data: await Deno.makeTempDir({ prefix: "cleanup-data-" }),
    recordings: await Deno.makeTempDir({ prefix: "cleanup-rec-" }),
  };
  try {
    let { server, client } = await recordingServer(dirs);
    try {
      for (let round = 0; round < 10; round++) {
        const path = `racy${round}`;
        const [started, stopped] = await sendTogether(server.url, [
          { type: "startRecording", payload: { path, segmentSeconds: 1 } },
          { type: "stopRecording", payload: { path } },
        ]);
        assert.ok(started.ok, JSON.stringify(started));
        assert.ok(stopped.ok, JSON.stringify(stopped));
      }
      const listed = expectOk(await client.request("listRecordings"));
      assert.deepEqual(listed.payload.recordings, [], "every recording stopped");
    } finally {
      await stopServer(server, client);
    }
    ({ server, client } = await recordingServer(dirs));
    try {
      const listed = expectOk(await client.request("listRecordings"));
      assert.deepEqual(
        listed.payload.recordings.map((r: { path: string }) => r.path),
        [],
        "no stopped recording comes back after a restart",
      );
    } finally {
      await stopServer(server, client);
    }
  } finally {
    await Deno.remove(dirs.data, { recursive: true });
    await Deno.remove(dirs.recordings, { recursive: true });
  }
});

/*
 * Two deletes of one pipeline read at once both waited for the store, then both freed it: two
 * ok replies, two pipelineDeleted events, and the second release set a property of the freed
 * relay valve (a CRITICAL, so the server aborted under G_DEBUG=fatal-criticals). Found by review
 * on 2026-12-04. Now the second waits for the first and finds the pipeline gone.
 */
Deno.test("two deletes of one pipeline at once: one deletes it, the other finds it gone", async () => {
  const data = await Deno.makeTempDir({ prefix: "cleanup-data-" });
  const server = await startServer({ GSTREAMER_DATA_DIR: data });
  const client = await TestClient.connect(server.url);
  try {
    for (let round = 0; round < 5; round++) {
      const id = `twice${round}`;
      expectOk(
        await client.request("createPipeline", {
          id,
          pipeline: `videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! x264enc ` +
            `tune=zerolatency ! rtspserversink path=${id}`,
          desiredState: "playing",
        }),
      );
      const from = client.received.length;
      const replies = await sendTogether(server.url, [
        { type: "deletePipeline", payload: { id } },
        { type: "deletePipeline", payload: { id } },
      ]);
      assert.deepEqual(
        replies.map((reply) => reply.ok ? "ok" : reply.error?.code),
        ["ok", "PIPELINE_NOT_FOUND"],
        JSON.stringify(replies),
      );
      // One event: wait for it, then for a later reply, so that a second would be seen.
      await client.waitFor(
        (m) => m.type === "pipelineDeleted" && (m as ServerEvent).payload?.id === id,
        10000,
        `pipelineDeleted ${id}`,
      );
      expectOk(await client.request("getPipelines"));
      const deleted = client.received.slice(from).filter((m) =>
        m.type === "pipelineDeleted" && (m as ServerEvent).payload?.id === id
      );
      assert.equal(deleted.length, 1, `pipelineDeleted events for ${id}`);
    }
  } finally {
    await stopServer(server, client);
    await Deno.remove(data, { recursive: true });
  }
});
