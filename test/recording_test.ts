/**
 * Recording served paths: segments checked with ffprobe (durations, contiguity, audio), kill -9
 * mid-segment in every format, retention by age and size, the free-space floor, HTTP listing and
 * Range downloads, stop/delete/record again, a path that goes away and comes back, and path
 * traversal in the recording URLs. Real GStreamer, real ffprobe.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  expectError,
  expectOk,
  resourceCounts,
  run,
  type ServerEvent,
  type ServerProcess,
  startServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { mendCutMp4, mp4Boxes } from "../src/domain/mp4_mend.ts";

/** H.264 with a key frame every 0.5 s, and AAC, at /cam. */
const CAMERA = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! " +
  "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtspserversink path=cam  " +
  "audiotestsrc is-live=true ! avenc_aac ! aacparse ! rtspserversink path=cam";
const GOP_SECONDS = 0.5;

interface Probed {
  video: number;
  audio: number;
  duration: number;
}

/** Frames of each stream (decoded and counted) and the video's duration. */
async function probe(file: string, options: string[] = []): Promise<Probed> {
  const { code, stdout, stderr } = await run("ffprobe", [
    ...options,
    ...["-v", "error", "-count_frames", "-show_entries"],
    ...["stream=codec_type,nb_read_frames,duration", "-of", "json", file],
  ]);
  assert.equal(code, 0, `ffprobe ${file}: ${stderr}`);
  const streams = JSON.parse(stdout).streams as {
    codec_type: string;
    nb_read_frames?: string;
    duration?: string;
  }[];
  const video = streams.find((s) => s.codec_type === "video");
  const audio = streams.find((s) => s.codec_type === "audio");
  return {
    video: Number(video?.nb_read_frames ?? 0),
    audio: Number(audio?.nb_read_frames ?? 0),
    duration: Number(video?.duration ?? NaN),
  };
}

/** The types of an MP4 file's top-level boxes, in order. */
async function topLevelBoxes(file: string): Promise<string[]> {
  const bytes = await Deno.readFile(file);
  return [...mp4Boxes(new DataView(bytes.buffer), 0, bytes.length)].map((box) => box.type);
}

/**
 * Writes into an MP4 segment cut short the fault GStreamer 1.22's mp4mux sometimes leaves in one
 * (src/domain/mp4_mend.ts): a whole fragment's chunk of one sample whose `trun` has no size, or
 * neither size nor duration. The bytes go to the `free` box after that `moof`, so nothing else
 * moves. False when no chunk fits.
 */
async function leaveOut(file: string, fields: "size" | "duration and size"): Promise<boolean> {
  const bytes = await Deno.readFile(file);
  const view = new DataView(bytes.buffer);
  const top = [...mp4Boxes(view, 0, bytes.length)];
  for (const [index, moof] of top.entries()) {
    const free = top[index + 1];
    if (moof.type !== "moof" || free?.type !== "free") continue;
    for (const traf of mp4Boxes(view, moof.body, moof.end)) {
      for (const run of traf.type === "traf" ? mp4Boxes(view, traf.body, traf.end) : []) {
        // data offset, then one entry: duration and size
        if (run.type !== "trun" || view.getUint32(run.body) !== 0x301) continue;
        if (view.getUint32(run.body + 4) !== 1) continue;
        const [from, length, flags] = fields === "size" ? [16, 4, 0x101] : [12, 8, 0x001];
        const out = bytes.slice();
        out.copyWithin(run.body + from, run.body + from + length, moof.end);
        const written = new DataView(out.buffer);
        written.setUint32(run.body, flags);
        for (const box of [moof, traf, run]) {
          written.setUint32(box.start, box.end - box.start - length);
        }
        written.setUint32(moof.end - length, free.end - free.start + length);
        out.set(new TextEncoder().encode("free"), moof.end - length + 4);
        await Deno.writeFile(file, out);
        return true;
      }
    }
  }
  return false;
}

async function setUp(env: Record<string, string> = {}, token?: string) {
  const recordings = await Deno.makeTempDir({ prefix: "recordings-test-" });
  const data = await Deno.makeTempDir({ prefix: "recordings-data-" });
  const settings = {
    GSTREAMER_RECORDINGS_DIR: recordings,
    GSTREAMER_DATA_DIR: data,
    GSTREAMER_RECORDINGS_MIN_FREE_MB: "1",
    ...env,
  };
  const server = await startServer(settings);
  const client = await TestClient.connect(token ? `${server.url}?token=${token}` : server.url);
  expectOk(await client.request("createPipeline", { id: "cam", pipeline: CAMERA }));
  expectOk(await client.request("startPipeline", { id: "cam" }));
  return { recordings, data, settings, server, client };
}

async function tearDown(
  parts: { recordings: string; data: string; server: ServerProcess; client: TestClient },
) {
  await parts.client.close();
  assert.equal(await parts.server.stop(), 0, parts.server.logs.slice(-20).join("\n"));
  await Deno.remove(parts.recordings, { recursive: true });
  await Deno.remove(parts.data, { recursive: true });
}

/** The recordingSegment events received so far for `path`. */
function segmentEvents(client: TestClient, path = "cam") {
  return client.received.filter((m) =>
    m.type === "recordingSegment" && (m as ServerEvent).payload.path === path
  ).map((m) =>
    (m as ServerEvent).payload as {
      file: string;
      start: string;
      duration: number;
      bytes: number;
    }
  );
}

/** Waits for an event of `type` about `path` received after message number `from`. */
function eventSince(client: TestClient, from: number, type: string, what: string, path = "cam") {
  return waitUntil(
    () =>
      client.received.slice(from).some((m) =>
        m.type === type && (m as ServerEvent).payload.path === path
      ),
    20000,
    what,
  );
}

Deno.test("recording: segments of the set length, contiguous, with audio; listed and downloaded with Range", async () => {
  const parts = await setUp();
  const { client, server, recordings } = parts;
  try {
    const started = expectOk(
      await client.request("startRecording", { path: "cam", segmentSeconds: 2 }),
    );
    assert.equal(started.payload.format, "mp4");
    // Waiting, without an error, while a stream of the path has no data yet (the audio encoder's
    // first frame can take a moment after startPipeline); recordingStarted comes once it has.
    assert.ok(["recording", "waiting"].includes(started.payload.state), started.payload.state);
    assert.equal(started.payload.lastError, null);
    await client.event("recordingStarted", (p) => p.path === "cam");
    await waitUntil(() => segmentEvents(client).length >= 4, 30000, "4 closed segments");
    const events = segmentEvents(client).slice(0, 4);
    const probed: Probed[] = [];
    for (const event of events) probed.push(await probe(join(recordings, "cam", event.file)));
    for (const [at, p] of probed.entries()) {
      console.log(`  ${events[at].file}: ${JSON.stringify(p)}`);
      assert.ok(p.video > 0 && p.audio > 0, `video and audio in ${events[at].file}`);
      // A closed segment is finalised: a plain MP4 (one moov, no fragments), which players scrub.
      const boxes = await topLevelBoxes(join(recordings, "cam", events[at].file));
      assert.ok(
        boxes.includes("moov") && !boxes.includes("moof"),
        `${events[at].file} is finalised: ${boxes.join(" ")}`,
      );
      // splitmuxsink ends a segment at the last key frame before the set length (the first segment
      // starts at the first key frame it gets).
      if (at > 0) {
        assert.ok(
          p.duration > 2 - GOP_SECONDS - 0.1 && p.duration <= 2 + 0.1,
          `${events[at].file} lasts ${p.duration} s`,
        );
      }
    }
    // The first segment starts at a key frame, as every other one does: a reader that joins the
    // path mid-GOP gets delta frames first, which the recording drops.
    for (const event of events) {
      const flags = await run("ffprobe", [
        ...["-v", "error", "-select_streams", "v", "-show_entries", "packet=flags"],
        ...["-read_intervals", "%+#1", "-of", "csv=p=0", join(recordings, "cam", event.file)],
      ]);
      assert.match(flags.stdout, /^K/, `${event.file} starts with a key frame`);
    }
    // Contiguous: each segment starts where the one before ended (the start is in the name). The
    // first one's file is opened before the stream's first key frame comes: its start is earlier.
    for (let at = 2; at < events.length; at++) {
      const gap = (Date.parse(events[at].start) - Date.parse(events[at - 1].start)) / 1000 -
        probed[at - 1].duration;
      assert.ok(Math.abs(gap) < 0.3, `gap of ${gap.toFixed(3)} s before ${events[at].file}`);
    }

    // In stats: what it wrote, the segment being written, the free space.
    const stats = await client.nextStats(() => true);
    const entry = (stats.payload as { recordings: Record<string, unknown>[] }).recordings[0];
    assert.equal(entry.path, "cam");
    assert.equal(entry.state, "recording");
    assert.ok((entry.bytesWritten as number) > 0 && (entry.freeBytes as number) > 0);
    assert.match(entry.currentSegment as string, /^writing-\d{5}\.mp4$/);

    // The list, over the API and over HTTP.
    const listed = expectOk(await client.request("listRecordings", { path: "cam" })).payload;
    assert.equal(listed.recordings.length, 1);
    assert.ok(listed.recordings[0].bytesWritten > 0);
    assert.match(listed.recordings[0].currentSegment, /^writing-\d{5}\.mp4$/);
    for (const event of events) {
      assert.ok(listed.segments.some((s: { file: string }) => s.file === event.file));
    }
    const recent = expectOk(
      await client.request("listRecordings", { from: events[3].start }),
    ).payload.segments as { file: string }[];
    assert.ok(!recent.some((s) => s.file === events[0].file), "from leaves out older segments");
    const http = await fetch(`${server.httpUrl}/recordings/cam/`);
    const body = await http.json();
    assert.equal(http.status, 200);
    assert.ok(body.segments.some((s: { file: string }) => s.file === events[0].file));

    // Downloads: whole, a range, the last bytes, an unsatisfiable range.
    const file = join(recordings, "cam", events[1].file);
    const bytes = await Deno.readFile(file);
    const url = `${server.httpUrl}/recordings/cam/${events[1].file}`;
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("content-type"), "video/mp4");
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    const part = await fetch(url, { headers: { range: "bytes=100-1099" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-1099/${bytes.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(100, 1100));
    const tail = await fetch(url, { headers: { range: "bytes=-500" } });
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.slice(-500));
    const beyond = await fetch(url, { headers: { range: `bytes=${bytes.length}-` } });
    await beyond.body?.cancel();
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), `bytes */${bytes.length}`);
    // A last byte before the first is an invalid header, which is ignored: the whole file.
    const backwards = await fetch(url, { headers: { range: "bytes=5-2" } });
    assert.equal(backwards.status, 200);
    assert.equal((await backwards.arrayBuffer()).byteLength, bytes.length);
    // ffprobe seeks through HTTP ranges.
    const overHttp = await probe(url);
    assert.equal(overHttp.video, probed[1].video);
  } finally {
    await tearDown(parts);
  }
});

Deno.test("recording: a span across three segments exported as one file, cut at a key frame", async () => {
  const parts = await setUp();
  const { client, server, recordings } = parts;
  try {
    expectOk(await client.request("startRecording", { path: "cam", segmentSeconds: 2 }));
    await waitUntil(() => segmentEvents(client).length >= 5, 30000, "5 closed segments");
    // Segments 1 to 3 (the first starts at the first key frame, before the clock is steady), each
    // with one after it: a segment's end is the next one's start.
    const listed = (await (await fetch(`${server.httpUrl}/recordings/cam/`)).json()).segments as {
      file: string;
      start: string;
      end: string;
    }[];
    const [one, , three] = listed.slice(1, 4);
    const probed: Probed[] = [];
    for (const segment of listed.slice(1, 4)) {
      probed.push(await probe(join(recordings, "cam", segment.file)));
    }
    const spanFrames = probed.reduce((sum, p) => sum + p.video, 0);
    const exportTo = async (query: string, name: string) => {
      const response = await fetch(`${server.httpUrl}/recordings/cam/export?${query}`);
      assert.equal(response.status, 200, await response.clone().text().catch(() => ""));
      assert.equal(response.headers.get("content-length"), null, "streamed, not built first");
      const file = join(recordings, "..", `${crypto.randomUUID()}-${name}`);
      await Deno.writeFile(file, response.body!);
      try {
        return { probed: await probe(file), type: response.headers.get("content-type") };
      } finally {
        await Deno.remove(file);
      }
    };
    const whole = `from=${one.start}&to=${three.end}`;
    // The three whole segments: every frame of them, in each format.
    for (
      const [format, type] of [["mp4", "video/mp4"], ["ts", "video/mp2t"], [
        "mkv",
        "video/x-matroska",
      ]]
    ) {
      const exported = await exportTo(`${whole}&format=${format}`, `whole.${format}`);
      console.log(
        `  whole span as ${format}: ${JSON.stringify(exported.probed)}, segments ${spanFrames}`,
      );
      assert.equal(exported.type, type);
      assert.equal(exported.probed.video, spanFrames, `${format}: the span's frames`);
      assert.ok(exported.probed.audio > 0, `${format}: audio`);
    }
    // Mid-segment: from 0.7 s into the first to 1 s into the third, starting at the key frame
    // before 'from' (a key frame every GOP_SECONDS): no re-encode, so nothing earlier can start.
    const from = Date.parse(one.start) + 700;
    const to = Date.parse(three.start) + 1000;
    const cut = await exportTo(
      `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`,
      "cut.mp4",
    );
    const spanSeconds = (to - from) / 1000;
    console.log(`  ${spanSeconds} s cut: ${JSON.stringify(cut.probed)}`);
    assert.ok(
      cut.probed.video >= spanSeconds * 30 - 6 &&
        cut.probed.video <= (spanSeconds + GOP_SECONDS) * 30 + 6,
      `${cut.probed.video} frames for ${spanSeconds} s from a key frame at most ${GOP_SECONDS} s before`,
    );
    assert.ok(cut.probed.audio > 0);

    // Played back over RTSP at the URL the server printed: the three segments, every frame; then
    // with a seek (PLAY with a Range) 2 s into them.
    const played = `${server.rtspUrl}/recordings/cam?${whole}`;
    const overRtsp = await probe(played, ["-rtsp_transport", "tcp"]);
    console.log(`  over RTSP: ${JSON.stringify(overRtsp)}`);
    assert.equal(overRtsp.video, spanFrames, "RTSP playback: the span's frames");
    assert.ok(overRtsp.audio > 0);
    const seeked = await run("ffmpeg", [
      ...["-v", "info", "-nostdin", "-rtsp_transport", "tcp", "-ss", "2", "-i", played],
      ...["-map", "0:v", "-c", "copy", "-f", "null", "-"],
    ]);
    assert.equal(seeked.code, 0, seeked.stderr);
    const seekedFrames = Number([...seeked.stderr.matchAll(/frame=\s*(\d+)/g)].at(-1)?.[1]);
    console.log(`  over RTSP from 2 s: ${seekedFrames} frames`);
    assert.ok(
      Math.abs(seekedFrames - (spanFrames - 2 * 30)) <= GOP_SECONDS * 30 + 6,
      `${seekedFrames} frames after a seek to 2 s of ${spanFrames}`,
    );
    const none = await run("ffprobe", [
      ...["-v", "error", "-rtsp_transport", "tcp"],
      `${server.rtspUrl}/recordings/cam?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z`,
    ]);
    assert.notEqual(none.code, 0, "a span with no segment is an RTSP error");
    assert.match(none.stderr, /404 Not Found/, none.stderr);
    const bad = await run("ffprobe", [
      ...["-v", "error", "-rtsp_transport", "tcp"],
      `${server.rtspUrl}/recordings/cam?from=yesterday`,
    ]);
    assert.match(bad.stderr, /400 Bad Request/, bad.stderr);
    const twice = await run("ffprobe", [
      ...["-v", "error", "-rtsp_transport", "tcp"],
      `${server.rtspUrl}/recordings/cam?from=${one.start}&from=${three.start}`,
    ]);
    assert.match(twice.stderr, /400 Bad Request/, twice.stderr);

    // Bad spans: clear errors, nothing left behind.
    for (
      const [query, status, text] of [
        ["from=yesterday", 400, /'from' is "yesterday": expected a UTC time/],
        [`from=${three.end}&to=${one.start}`, 400, /'to' must be later than 'from'/],
        ["from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z", 404, /no segment between/],
        [`${whole}&format=avi`, 400, /'format' is "avi": expected one of mp4, ts, mkv/],
        [`${whole}&start=1`, 400, /Unknown span parameter start: a span takes from, to, format/],
        [`${whole}&from=${three.end}`, 400, /Span parameter from given more than once/],
        ["from=2026-02-30T00:00:00Z", 400, /'from' is "2026-02-30T00:00:00Z", no such time/],
      ] as const
    ) {
      const response = await fetch(`${server.httpUrl}/recordings/cam/export?${query}`);
      const body = await response.json();
      assert.equal(response.status, status, `${query}: ${JSON.stringify(body)}`);
      assert.match(body.error.message, text);
    }
    // A wrong query is wrong whatever was recorded: judged before the segments are looked for.
    for (
      const [query, text] of [["from=zz", /'from' is "zz"/], ["format=avi", /'format' is/]] as const
    ) {
      const response = await fetch(`${server.httpUrl}/recordings/never-recorded/export?${query}`);
      const body = await response.json();
      assert.equal(response.status, 400, `${query}: ${JSON.stringify(body)}`);
      assert.match(body.error.message, text);
    }
    // Too few file descriptors left for the span's files (GStreamer would abort the server on a
    // CRITICAL when one cannot open): refused, over HTTP and RTSP, until the limit is back.
    const { fds } = await resourceCounts(server.pid);
    const soft = (limit: string) =>
      run("prlimit", [`--pid=${server.pid}`, `--nofile=${limit}:`]).then((r) =>
        assert.equal(r.code, 0, r.stderr)
      );
    const limits = await Deno.readTextFile(`/proc/${server.pid}/limits`);
    const original = limits.match(/^Max open files\s+(\S+)/m)![1];
    await soft(String(fds + 256)); // 3 segments need 12 more than the 256 kept for the rest
    try {
      const short = await fetch(`${server.httpUrl}/recordings/cam/export?${whole}`);
      const body = await short.json();
      assert.equal(short.status, 503, JSON.stringify(body));
      assert.equal(body.error.code, "TOO_MANY_OPEN_FILES");
      assert.match(body.error.message, /Playing 3 segments takes about 12 file descriptors/);
      const shortOverRtsp = await run("ffprobe", ["-v", "error", "-rtsp_transport", "tcp", played]);
      assert.match(shortOverRtsp.stderr, /503 Service Unavailable/, shortOverRtsp.stderr);
    } finally {
      await soft(original);
    }
    const missing = await fetch(`${server.httpUrl}/recordings/nothing/export`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    // A client that leaves mid-export: the export ends, its folder goes.
    const left = await fetch(`${server.httpUrl}/recordings/cam/export?${whole}`);
    const reader = left.body!.getReader();
    await reader.read();
    await reader.cancel();
    await waitUntil(
      async () => {
        for await (const entry of Deno.readDir(recordings)) {
          if (entry.name.startsWith(".span-")) return false;
        }
        return true;
      },
      10000,
      "no export folder left",
    );
  } finally {
    await tearDown(parts);
  }
});

for (const format of ["mp4", "ts", "mkv"]) {
  Deno.test(`recording (${format}): kill -9 mid-segment; every segment on disk plays; it resumes`, async () => {
    const parts = await setUp();
    const { client, recordings, settings } = parts;
    let server = parts.server;
    let restarted: TestClient | null = null;
    try {
      expectOk(
        await client.request("startRecording", { path: "cam", format, segmentSeconds: 3 }),
      );
      await waitUntil(() => segmentEvents(client).length >= 1, 30000, "a closed segment");
      // Mid-segment: the one being written has been written for 1.5 s of its 3 (MP4: a whole
      // fragment of a second and part of the next).
      const writing = () =>
        [...Deno.readDirSync(join(recordings, "cam"))].find((e) => e.name.startsWith("writing-"));
      await waitUntil(
        () => {
          const entry = writing();
          const born = entry && Deno.statSync(join(recordings, "cam", entry.name)).birthtime;
          return born && Date.now() - born.getTime() > 1500;
        },
        20000,
        "half a segment written",
      );
      Deno.kill(server.pid, "SIGKILL");
      await server.exited;
      // MP4: what the cut segment holds, mended here on a copy; then the faults mp4mux leaves in
      // about one cut segment in eight, which FFmpeg refuses, for the restart to mend.
      let cutHolds: Probed | null = null;
      if (format === "mp4") {
        const cut = join(recordings, "cam", writing()!.name);
        const copy = join(await Deno.makeTempDir({ prefix: "cut-" }), "copy.mp4");
        await Deno.copyFile(cut, copy);
        await mendCutMp4(copy);
        cutHolds = await probe(copy);
        await Deno.remove(copy);
        assert.ok(await leaveOut(cut, "size"), "a whole fragment with a chunk of one sample");
        assert.ok(await leaveOut(cut, "duration and size"), "another chunk of one sample");
        const refused = await run("ffprobe", ["-v", "error", cut]);
        assert.notEqual(refused.code, 0, "FFmpeg reads a trun without sizes");
      }
      // And a segment cut before its first whole fragment (mp4mux writes the moov with it):
      // ftyp, free, then an mdat to the end of the file, which no player can read.
      let cutEarly: string | null = null;
      if (format === "mp4") {
        const cut = await Deno.readFile(join(recordings, "cam", writing()!.name));
        const [ftyp, free] = mp4Boxes(new DataView(cut.buffer), 0, cut.length);
        assert.deepEqual([ftyp.type, free.type], ["ftyp", "free"]);
        const mdat = new Uint8Array(8 + 4096);
        mdat.set(new TextEncoder().encode("mdat"), 4); // size 0: to the end of the file
        cutEarly = join(recordings, "cam", "writing-00099.mp4");
        await Deno.writeFile(cutEarly, new Uint8Array([...cut.subarray(0, free.end), ...mdat]));
      }
      console.log(
        `  on disk at the kill: ${
          [...Deno.readDirSync(join(recordings, "cam"))].map((e) =>
            `${e.name} ${Deno.statSync(join(recordings, "cam", e.name)).size}`
          ).sort().join(", ")
        }`,
      );
      server = await startServer(settings);
      parts.server = server;
      restarted = await TestClient.connect(server.url);
      // The camera pipeline and the recording come back from the store; the recording resumes.
      await restarted.event("recordingStarted", (p) => p.path === "cam");
      const listed = expectOk(await restarted.request("listRecordings", { path: "cam" })).payload;
      assert.equal(listed.recordings[0].format, format);
      // The faults put in above go to the cut segment's first whole fragment. When mp4mux had left
      // another chunk without sizes in that track, of another size, no size can be told for them:
      // the restart keeps the segment aside too (nothing before that fragment to keep).
      const cutAside = server.logs.some((line) =>
        line.includes("was cut short") && line.includes("lacks sample sizes") &&
        !line.includes("writing-00099")
      );
      if (cutEarly !== null) {
        // Kept aside, not listed: one such file in a span would fail its export and replay.
        const aside = [...Deno.readDirSync(join(recordings, "cam"))].filter((e) =>
          e.name.endsWith(".cut.mp4")
        );
        assert.equal(
          aside.length,
          cutAside ? 2 : 1,
          "the segment cut before its first fragment is kept aside",
        );
        assert.ok(server.logs.some((line) => line.includes("before its first whole fragment")));
        assert.ok(!listed.segments.some((s: { file: string }) => s.file.endsWith(".cut.mp4")));
        // It can be deleted by its name, as a segment can.
        for (const { name } of aside) {
          const removed = expectOk(
            await restarted.request("deleteRecording", { path: "cam", file: name }),
          );
          assert.deepEqual(removed.payload.deleted, [name]);
        }
      }
      // MP4 and Matroska keep the segment the kill cut short. MPEG-TS from a path with audio
      // loses it: mpegtsmux holds such a segment until it ends (see docs/protocol.md).
      assert.ok(
        listed.segments.length >= (format === "ts" || cutAside ? 1 : 2),
        `${JSON.stringify(listed.segments)}`,
      );
      // Every segment on disk, the one cut by the kill included (renamed at the restart), plays.
      const played: Probed[] = [];
      for (const segment of listed.segments as { file: string }[]) {
        const p = await probe(join(recordings, "cam", segment.file));
        console.log(`  ${segment.file}: ${JSON.stringify(p)}`);
        assert.ok(p.video > 0, `video frames in ${segment.file}`);
        assert.ok(p.audio > 0, `audio frames in ${segment.file}`);
        played.push(p);
      }
      if (cutHolds !== null && !cutAside) {
        // The mended segment plays every frame it holds.
        const { video, audio } = played.at(-1)!;
        if (server.logs.some((line) => line.includes("cannot be told"))) {
          // mp4mux had left another chunk without sizes in the track the fault went to, with
          // another size: the restart cut the segment where the first of them starts.
          assert.ok(video <= cutHolds.video && audio <= cutHolds.audio, JSON.stringify(cutHolds));
        } else {
          assert.deepEqual({ video, audio }, { video: cutHolds.video, audio: cutHolds.audio });
        }
      }
      await waitUntil(() => segmentEvents(restarted!).length >= 1, 30000, "a segment after it");
    } finally {
      await restarted?.close();
      await tearDown(parts);
    }
  });
}

Deno.test("recording: segments reach the disk: the one being written each second, a closed one before its name, then its folder", async () => {
  const parts = await setUp();
  const { client, server, recordings } = parts;
  const traceDir = await Deno.makeTempDir({ prefix: "recording-strace-" });
  const trace = join(traceDir, "trace");
  // strace sees the server's syscalls, each with the path of its descriptor (-y).
  const strace = new Deno.Command("strace", {
    args: [
      ...["-f", "-y", "-e", "trace=fdatasync,fsync,rename,renameat,renameat2"],
      ...["-o", trace, "-p", String(server.pid)],
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const messages = strace.stderr.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (let seen = ""; !seen.includes("attached");) {
      const { value, done } = await messages.read();
      assert.ok(!done, `strace did not attach: ${seen}`);
      seen += value;
    }
    expectOk(await client.request("startRecording", { path: "cam", segmentSeconds: 3 }));
    const folder = join(recordings, "cam");
    const lines = () => Deno.readTextFileSync(trace).split("\n");
    const written = (segment: string) =>
      lines().filter((line) =>
        line.includes(`fdatasync(`) && line.includes(`${folder}/${segment}>`)
      );
    await waitUntil(() => segmentEvents(client).length >= 1, 30000, "a closed segment");
    const closed = segmentEvents(client)[0].file as string;
    // The closed segment: synced under its first name, renamed, then its folder synced.
    let renamedAt = -1;
    let first = "";
    await waitUntil(
      () => {
        const all = lines();
        renamedAt = all.findIndex((line) => /^\d+ +rename/.test(line) && line.includes(closed));
        first = all[renamedAt]?.match(/(writing-\d{5}\.mp4)/)?.[1] ?? "";
        return renamedAt >= 0 && first !== "" &&
          all.slice(renamedAt + 1).some((line) =>
            line.includes(`fsync(`) && line.includes(`${folder}>`)
          );
      },
      10000,
      `${closed} renamed, then its folder synced`,
    );
    const syncedBefore = lines().slice(0, renamedAt).some((line) =>
      line.includes("fdatasync(") && line.includes(`${folder}/${first}>`)
    );
    assert.ok(syncedBefore, `${first} synced before it became ${closed}`);
    // A segment written since: synced again and again while it grows. Any later one: each sweep
    // (a second apart) waits for its sync, which a busy disk can make late, so that a 3 s
    // segment sees only one (twice in CI runs of the whole suite, never alone).
    const later = (n: number) => `writing-${String(n).padStart(5, "0")}.mp4`;
    const after = Number(first.slice(8, 13));
    await waitUntil(
      () => [1, 2, 3, 4, 5, 6, 7, 8].some((k) => written(later(after + k)).length >= 2),
      30000,
      `a segment after ${first} synced twice while written`,
    ).catch((error) => {
      const syncs = lines().filter((line) => /fdatasync|fsync|rename/.test(line)).slice(-16);
      throw new Error(`${error.message}; the last syncs and renames:\n${syncs.join("\n")}`);
    });
  } finally {
    try {
      strace.kill("SIGINT");
    } catch {
      // already gone
    }
    await messages.cancel();
    await strace.status;
    await Deno.remove(traceDir, { recursive: true });
    await tearDown(parts);
  }
});

Deno.test("recording: retention by age and by size", async () => {
  const parts = await setUp();
  const { client } = parts;
  try {
    expectOk(
      await client.request("createPipeline", {
        id: "cam2",
        pipeline: CAMERA.replaceAll("path=cam", "path=cam2"),
      }),
    );
    expectOk(await client.request("startPipeline", { id: "cam2" }));
    expectOk(
      await client.request("startRecording", {
        path: "cam",
        segmentSeconds: 1,
        retention: { maxAgeSeconds: 3 },
      }),
    );
    await client.event("recordingStarted", (p) => p.path === "cam");
    const first = await waitUntil(
      async () => {
        const { segments } = expectOk(await client.request("listRecordings", { path: "cam" }))
          .payload;
        return segments.length > 0 ? segments[0].file as string : null;
      },
      20000,
      "a segment",
    );
    // The first segment goes once it is more than 3 s old; younger ones stay.
    await waitUntil(
      async () => {
        const { segments } = expectOk(await client.request("listRecordings", { path: "cam" }))
          .payload;
        return !segments.some((s: { file: string }) => s.file === first) && segments.length > 0;
      },
      20000,
      "the oldest segment deleted by age",
    );
    // Every kept segment ended within the age limit (and some slack) of the newest one's end.
    const aged = expectOk(await client.request("listRecordings", { path: "cam" })).payload
      .segments as { end: string }[];
    const newestEnd = Math.max(...aged.map((s) => Date.parse(s.end)));
    for (const s of aged) assert.ok(newestEnd - Date.parse(s.end) < 3000 + 2500, s.end);

    // By size: the closed segments and the one being written stay under maxBytes. A segment is
    // about 270 kB (a second of 2 Mbit/s video and AAC): room for a few, so that some are always
    // kept, whenever a sweep comes in the one being written.
    const maxBytes = 1_000_000;
    expectOk(
      await client.request("startRecording", {
        path: "cam2",
        segmentSeconds: 1,
        retention: { maxBytes },
      }),
    );
    await waitUntil(() => segmentEvents(client, "cam2").length >= 8, 30000, "8 segments of cam2");
    const deletions = parts.server.logs.filter((l) => l.includes("retention deleted"));
    assert.ok(deletions.some((l) => l.includes(`over ${maxBytes} bytes`)), deletions.join("\n"));
    const sized = expectOk(await client.request("listRecordings", { path: "cam2" })).payload
      .segments as { bytes: number }[];
    const total = sized.reduce((sum, s) => sum + s.bytes, 0);
    assert.ok(total <= maxBytes, `${total} bytes kept`);
    // Only the oldest go, until the rest fits: what is kept misses maxBytes by at most the last
    // deleted segment and the one being written, each about the largest closed so far.
    assert.ok(sized.length > 0, "no segment kept");
    const largest = Math.max(...segmentEvents(client, "cam2").map((s) => s.bytes));
    assert.ok(total > maxBytes - 2 * largest, `${total} bytes kept, the largest ${largest}`);
  } finally {
    await tearDown(parts);
  }
});

Deno.test("recording: under the free-space floor, the oldest segments go, then the recording stops", async () => {
  // A floor above any free space: retention cannot meet it.
  const parts = await setUp({ GSTREAMER_RECORDINGS_MIN_FREE_MB: "100000000" });
  const { client, recordings } = parts;
  try {
    // A segment of an earlier recording of another path: not recorded now, so not deleted.
    await Deno.mkdir(join(recordings, "old"));
    const kept = join(recordings, "old", "2026-01-01T00-00-00.000Z.mp4");
    await Deno.writeFile(kept, new Uint8Array(1000));
    // A segment of an earlier recording of the path recorded now: the first to go.
    await Deno.mkdir(join(recordings, "cam"));
    const oldest = "2020-01-01T00-00-00.000Z.mp4";
    await Deno.writeFile(join(recordings, "cam", oldest), new Uint8Array(1000));
    expectOk(await client.request("startRecording", { path: "cam", segmentSeconds: 1 }));
    const error = await client.event("recordingError", (p) => p.path === "cam");
    assert.match(
      (error.payload as { message: string }).message,
      /free space is under the floor .*GSTREAMER_RECORDINGS_MIN_FREE_MB/,
    );
    await client.event("recordingStopped", (p) => p.path === "cam");
    const listed = expectOk(await client.request("listRecordings", {})).payload;
    assert.deepEqual(listed.recordings, []);
    assert.ok(await Deno.stat(kept), "another path's segment stays");
    await assert.rejects(
      Deno.stat(join(recordings, "cam", oldest)),
      Deno.errors.NotFound,
      "the recorded path's oldest segment stays",
    );
    await parts.server.waitForLog(`Recordings: deleted cam/${oldest}: free space under the floor`);
  } finally {
    await tearDown(parts);
  }
});

Deno.test("recording: a path that comes back with other streams keeps its earlier segments as recorded", async () => {
  const parts = await setUp();
  const { client, server, recordings } = parts;
  try {
    expectOk(await client.request("startRecording", { path: "cam", segmentSeconds: 1 }));
    await waitUntil(() => segmentEvents(client).length >= 2, 20000, "2 segments with audio");
    const first = segmentEvents(client);
    // Served again without its audio (a publisher back with other streams does the same).
    const before = client.received.length;
    expectOk(await client.request("deletePipeline", { id: "cam" }));
    expectOk(
      await client.request("createPipeline", {
        id: "cam",
        pipeline: CAMERA.slice(0, CAMERA.indexOf("rtspserversink path=cam") + 23),
        desiredState: "playing",
      }),
    );
    await eventSince(client, before, "recordingStarted", "the recording of the new streams");
    // The segments the earlier streams still had closed before the recording started again.
    const restarted = client.received.findLastIndex((m) => m.type === "recordingStarted");
    const newer = () =>
      client.received.slice(restarted).filter((m) => m.type === "recordingSegment").length;
    await waitUntil(() => newer() >= 2, 20000, "2 segments without audio");
    const span = (from: { start: string }, to: { start: string; duration: number }) =>
      `from=${from.start}&to=${new Date(Date.parse(to.start) + to.duration * 1000).toISOString()}`;
    // The earlier segments are read with their own streams: their audio is still there.
    const earlier = await fetch(
      `${server.httpUrl}/recordings/cam/export?${span(first[0], first.at(-1)!)}`,
    );
    assert.equal(earlier.status, 200, await earlier.clone().text());
    const file = join(recordings, "..", `${crypto.randomUUID()}-earlier.mp4`);
    await Deno.writeFile(file, earlier.body!);
    try {
      const probed = await probe(file);
      assert.ok(probed.video > 0 && probed.audio > 0, JSON.stringify(probed));
    } finally {
      await Deno.remove(file);
    }
    // A span across the change has no one set of streams: refused, naming both.
    const all = segmentEvents(client);
    const across = await fetch(
      `${server.httpUrl}/recordings/cam/export?${span(all[0], all.at(-1)!)}`,
    );
    assert.equal(across.status, 409);
    assert.match(
      (await across.json()).error.message,
      /holds segments recorded with different streams \(h264 \+ aac from \S+, then h264 from /,
    );
  } finally {
    await tearDown(parts);
  }
});

Deno.test("recording: stop, delete, record again; a path that goes away and comes back; bad requests", async () => {
  const parts = await setUp();
  const { client, server } = parts;
  try {
    expectError(await client.request("stopRecording", { path: "cam" }), "RECORDING_NOT_FOUND");
    expectError(
      await client.request("startRecording", { path: "cam", format: "avi" }),
      "INVALID_REQUEST",
    );
    expectError(
      await client.request("startRecording", { path: "../etc", segmentSeconds: 5 }),
      "INVALID_REQUEST",
    );
    expectError(
      await client.request("startRecording", { path: "cam", segmentSeconds: 0 }),
      "INVALID_REQUEST",
    );
    // Longer than any path the server serves: it would wait for ever.
    expectError(
      await client.request("startRecording", { path: "a".repeat(65) }),
      "INVALID_REQUEST",
    );
    expectOk(await client.request("startRecording", { path: "cam", segmentSeconds: 1 }));
    expectError(await client.request("startRecording", { path: "cam" }), "PATH_IN_USE");
    await waitUntil(() => segmentEvents(client).length >= 2, 20000, "2 segments");
    expectError(await client.request("deleteRecording", { path: "cam" }), "INVALID_STATE");

    // The path goes away: the recording waits; it comes back: the recording resumes.
    expectOk(await client.request("stopPipeline", { id: "cam" }));
    await client.event(
      "recordingError",
      (p) => p.path === "cam" && /waits for its path/.test((p as { message: string }).message),
    );
    const waiting = expectOk(await client.request("listRecordings", { path: "cam" })).payload;
    assert.equal(waiting.recordings[0].state, "waiting");
    const before = client.received.length;
    expectOk(await client.request("startPipeline", { id: "cam" }));
    await eventSince(client, before, "recordingStarted", "the recording resumed");
    await eventSince(client, before, "recordingSegment", "a segment after the path came back");
    const resumed = expectOk(await client.request("listRecordings", { path: "cam" })).payload;
    assert.equal(resumed.recordings[0].lastError, null, "the wait's error is over");

    const stopped = expectOk(await client.request("stopRecording", { path: "cam" }));
    assert.equal(stopped.payload.path, "cam");
    await client.event("recordingStopped", (p) => p.path === "cam");
    const { segments } = expectOk(await client.request("listRecordings", { path: "cam" }))
      .payload as { segments: { file: string }[] };
    assert.ok(!segments.some((s) => s.file.startsWith("writing-")));
    // The last segment was finished at the stop: it plays to its end.
    const last = await probe(join(parts.recordings, "cam", segments.at(-1)!.file));
    assert.ok(last.video > 0);

    const one = expectOk(
      await client.request("deleteRecording", { path: "cam", file: segments[0].file }),
    );
    assert.deepEqual(one.payload.deleted, [segments[0].file]);
    expectError(
      await client.request("deleteRecording", { path: "cam", file: segments[0].file }),
      "RECORDING_NOT_FOUND",
    );
    const all = expectOk(await client.request("deleteRecording", { path: "cam" }));
    assert.equal(all.payload.deleted.length, segments.length - 1);
    expectError(await client.request("deleteRecording", { path: "cam" }), "RECORDING_NOT_FOUND");
    assert.equal(await fetch(`${server.httpUrl}/recordings/cam/`).then((r) => r.status), 404);

    // Recording again after all that.
    const again = client.received.length;
    expectOk(await client.request("startRecording", { path: "cam", format: "ts" }));
    await eventSince(client, again, "recordingStarted", "recording again");
    // A stop and a start sent together: the start waits for the stop's last segment, so the two
    // never rename the same files.
    const together = client.received.length;
    const [stoppedAgain, startedAgain] = await Promise.all([
      client.request("stopRecording", { path: "cam" }),
      client.request("startRecording", { path: "cam", format: "ts" }),
    ]);
    expectOk(stoppedAgain);
    expectOk(startedAgain);
    await eventSince(client, together, "recordingStopped", "the stop's event");
    await waitUntil(
      () =>
        client.received.slice(together).filter((m) =>
          m.type === "recordingStarted" && (m as ServerEvent).payload.path === "cam"
        ).length === 1,
      20000,
      "the new recording started",
    );
    const failed = client.received.slice(together).filter((m) => m.type === "recordingError");
    assert.deepEqual(failed, [], "no failure of the stop or the start");
    expectOk(await client.request("stopRecording", { path: "cam" }));
  } finally {
    await tearDown(parts);
  }
});

Deno.test("recording URLs: traversal attempts, other methods and the token", async () => {
  const parts = await setUp({ GSTREAMER_AUTH_TOKEN: "rec-secret" }, "rec-secret");
  const { server, recordings } = parts;
  try {
    // A file beside the recordings directory that no URL may reach.
    const secret = join(recordings, "..", `${crypto.randomUUID()}.mp4`);
    await Deno.writeTextFile(secret, "secret");
    await Deno.mkdir(join(recordings, "cam"), { recursive: true });
    await Deno.writeFile(
      join(recordings, "cam", "2026-01-01T00-00-00.000Z.mp4"),
      new Uint8Array(10),
    );
    const get = (path: string, init: RequestInit = {}) =>
      fetch(`${server.httpUrl}${path}${path.includes("?") ? "&" : "?"}token=rec-secret`, init);
    for (
      const path of [
        `/recordings/../${secret.split("/").at(-1)}`,
        `/recordings/cam/..%2F..%2F${secret.split("/").at(-1)}`,
        `/recordings/%2e%2e/${secret.split("/").at(-1)}`,
        "/recordings/cam/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/recordings/cam/..",
        "/recordings/..%2F/",
        "/recordings/cam/2026-01-01T00-00-00.000Z.mp4/x",
        "/recordings/%2e%2e/export",
        `/recordings/..%2F..%2F${secret.split("/").at(-2)}/export`,
      ]
    ) {
      const response = await get(path);
      const text = await response.text();
      assert.equal(response.status, 404, `${path}: ${response.status} ${text}`);
      assert.doesNotMatch(text, /secret/);
    }
    const ok = await get("/recordings/cam/2026-01-01T00-00-00.000Z.mp4");
    await ok.body?.cancel();
    assert.equal(ok.status, 200);
    const post = await get("/recordings/cam/", { method: "POST" });
    await post.body?.cancel();
    assert.equal(post.status, 405);
    for (const path of ["/recordings/cam/", "/recordings/cam/export"]) {
      const refused = await fetch(`${server.httpUrl}${path}`);
      await refused.body?.cancel();
      assert.equal(refused.status, 401, path);
    }
    await Deno.remove(secret);
  } finally {
    await tearDown(parts);
  }
});

Deno.test("recording (ts) and HLS of a publish: every segment starts at a key frame", async () => {
  const hls = await Deno.makeTempDir({ prefix: "recordings-hls-" });
  const parts = await setUp({ GSTREAMER_HLS_DIR: hls });
  const { client, recordings, server } = parts;
  // A publisher, whose encoder no key frame request reaches: its stream is cut where it has them.
  const publisher = new Deno.Command("gst-launch-1.0", {
    args: [
      ..."-q videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 !"
        .split(" "),
      ..."x264enc speed-preset=ultrafast key-int-max=30 ! rtspclientsink".split(" "),
      `location=${server.rtspUrl}/pub`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  /** The flags of the first video packet of a segment: K for a key frame. */
  const firstPacket = async (file: string) =>
    (await run("ffprobe", [
      ...["-v", "error", "-select_streams", "v", "-show_entries", "packet=flags"],
      ...["-of", "csv=p=0", file],
    ])).stdout.trim().split("\n")[0];
  try {
    expectOk(
      await client.request("startRecording", { path: "pub", format: "ts", segmentSeconds: 2 }),
    );
    await waitUntil(() => segmentEvents(client, "pub").length >= 3, 40000, "three segments");
    // Before, mpegtsmux took the stream NAL by NAL, and splitmuxsink cut it at a parameter set: a
    // segment began with the P frames before the key frame, which no player can decode.
    for (const segment of segmentEvents(client, "pub")) {
      assert.match(await firstPacket(join(recordings, "pub", segment.file)), /^K/, segment.file);
    }
    const listed = await waitUntil(
      async () => {
        const playlist = await fetch(`${server.httpUrl}/hls/pub/index.m3u8`);
        const text = await playlist.text();
        const segments = text.split("\n").filter((line) => line.endsWith(".ts"));
        return segments.length >= 3 ? segments : null;
      },
      40000,
      "three HLS segments",
    );
    for (const segment of listed) {
      const body = await fetch(`${server.httpUrl}/hls/pub/${segment}`);
      const file = join(hls, `fetched-${segment}`);
      await Deno.writeFile(file, new Uint8Array(await body.arrayBuffer()));
      assert.match(await firstPacket(file), /^K/, `HLS ${segment}`);
    }
  } finally {
    publisher.kill();
    await publisher.status;
    await tearDown(parts);
    await Deno.remove(hls, { recursive: true });
  }
});
