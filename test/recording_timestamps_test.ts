/**
 * Recording a path whose frames reach the recorder with a timestamp repeated: a raw H.265 push
 * stamps each chunk with its arrival time, and the frame before each key frame comes out stamped
 * like the key frame. h265parse gave the second of two such frames no PTS, and mp4mux failed the
 * recording on it ("Buffer has no PTS"): the segment being written was lost (kept aside as
 * .cut.mp4) and so was the time until the recording started again, at every key frame.
 * (An RTSP publish hits the same at random: rtpjitterbuffer holds a frame at its predecessor's
 * time when its clock estimate steps back.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { expectOk, run, type ServerEvent, startServer, TestClient, waitUntil } from "./helpers.ts";

Deno.test("recording: frames with a repeated timestamp (an H.265 push) are recorded, none lost to 'Buffer has no PTS'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "recording_timestamps_" });
  const clip = join(dir, "clip.h265");
  // 6 s at 30 frame/s, a key frame every 15 frames.
  const made = await run("ffmpeg", [
    ...["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "6"],
    ...["-c:v", "libx265", "-pix_fmt", "yuv420p"],
    ...["-x265-params", "log-level=error:keyint=15:min-keyint=15:bframes=0", "-f", "hevc", clip],
  ]);
  assert.equal(made.code, 0, made.stderr);
  const recordings = join(dir, "recordings");
  const server = await startServer({ GSTREAMER_RECORDINGS_DIR: recordings });
  const client = await TestClient.connect(server.url);
  try {
    // Waits for the path, then starts at the sweep after the push begins.
    expectOk(await client.request("startRecording", { path: "cam", segmentSeconds: 2 }));
    const pusher = new Deno.Command("ffmpeg", {
      args: [
        ...["-v", "error", "-nostdin", "-re", "-f", "hevc", "-i", clip, "-c", "copy"],
        ...["-content_type", "video/h265", "-f", "hevc", `${server.httpUrl}/push/cam`],
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const pushed = await pusher.output();
    assert.equal(pushed.code, 0, new TextDecoder().decode(pushed.stderr));
    // The push's end stops the recording, which then waits for its path (or it failed before).
    await waitUntil(
      () =>
        client.received.some((m) =>
          m.type === "recordingError" &&
          /stream ended|multiplex/.test((m as ServerEvent).payload.message)
        ),
      15000,
      "the recording to see the push end",
    );
    expectOk(await client.request("stopRecording", { path: "cam" }));

    const errors = client.received.filter((m) => m.type === "recordingError")
      .map((m) => (m as ServerEvent).payload.message as string);
    assert.deepEqual(errors.filter((e) => !/stream ended/.test(e)), [], server.logs.join("\n"));
    const files = [...Deno.readDirSync(join(recordings, "cam"))].map((e) => e.name);
    assert.deepEqual(files.filter((f) => f.endsWith(".cut.mp4")), [], files.join(", "));
    // Every frame from the recording's start on: it starts within a second or so of the push.
    let frames = 0;
    for (const file of files.filter((f) => /Z(-\d+)?\.mp4$/.test(f))) {
      const probed = await run("ffprobe", [
        ...["-v", "error", "-count_frames", "-select_streams", "v"],
        ...[
          "-show_entries",
          "stream=nb_read_frames",
          "-of",
          "csv=p=0",
          join(recordings, "cam", file),
        ],
      ]);
      assert.equal(probed.code, 0, `${file}: ${probed.stderr}`);
      frames += Number(probed.stdout.trim());
    }
    assert.ok(frames >= 120, `${frames} of the 180 frames pushed were recorded`);
  } finally {
    await client.close();
    assert.equal(await server.stop(), 0, server.logs.slice(-20).join("\n"));
    await Deno.remove(dir, { recursive: true });
  }
});
