/**
 * Recording benchmark: --paths paced pushes (720p30 H.264 at about 4 Mbit/s, `ffmpeg -re ...
 * -f h264 http://.../push/recN`), measured over --seconds with nothing
 * recorded, then over --seconds with every path recorded (MP4, the default format),
 * in the same run, on the same server at its defaults (the disk store; recordings in a folder of
 * bench/.work). Reported: the server's CPU in both windows and their ratio; bytes the recordings
 * wrote against bytes the pushes brought in over the recorded window. Then, with the pushes ended,
 * the export of one path's whole recording (GET /recordings/rec0/export, in MP4 and in MPEG-TS)
 * against `cat` of the same segment files, both read to the end by this process, best of 3 each.
 *
 *   deno run -A bench/recording.ts [--paths 16] [--seconds 60] [--segment 10]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import {
  cpuSplit,
  expectOk,
  generateClip,
  killChildren,
  mib,
  parseNumberOptions,
  serverProcessId,
  sleep,
  spawn,
  startUsage,
  StatsWatcher,
  stopServer,
  type Usage,
  within,
  workDir,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, { paths: 16, seconds: 60, segment: 10 });

/**
 * The bytes the pushes `ids` brought in (bytesIn) and their recordings wrote (bytesWritten) so far,
 * both from the next stats broadcast, so that the two are read at the same moment.
 */
async function nextBytes(
  stats: StatsWatcher,
  ids: string[],
): Promise<{ received: number; written: number }> {
  if ((await within(stats.next(), 10000)) === null) {
    throw new Error("No stats broadcast within 10 s");
  }
  const { pipelines, recordings } = stats.latest!;
  return {
    received: pipelines.filter((p) => ids.includes(p.id))
      .reduce((sum, p) => sum + Number(p.bytesIn ?? 0), 0),
    written: recordings.filter((r) => ids.includes(r.path))
      .reduce((sum, r) => sum + r.bytesWritten, 0),
  };
}

async function window(pid: number, seconds: number): Promise<Usage> {
  const meter = startUsage(pid);
  for (let left = seconds; left > 0; left--) {
    await sleep(1000);
    meter.sample();
  }
  return meter.stop();
}

/** Reads a stream to its end; its byte count. */
async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.length;
  return bytes;
}

/** The best of 3 timed reads (the machine is shared: the fastest is the least disturbed). */
async function bestOf3(read: () => Promise<number>): Promise<{ seconds: number; bytes: number }> {
  let best = { seconds: Infinity, bytes: 0 };
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    const bytes = await read();
    const seconds = (performance.now() - started) / 1000;
    if (seconds < best.seconds) best = { seconds, bytes };
  }
  return best;
}

async function exportAgainstCat(httpUrl: string, recordingsDir: string, path: string) {
  const listed = await (await fetch(`${httpUrl}/recordings/${path}/`)).json();
  const segments = listed.segments as { file: string; start: string; end: string }[];
  const files = segments.map((s) => `${recordingsDir}/${path}/${s.file}`);
  const span = `from=${segments[0].start}&to=${segments.at(-1)!.end}`;
  const cat = async () => {
    const child = new Deno.Command("cat", { args: files, stdout: "piped" }).spawn();
    const bytes = await drain(child.stdout);
    const { code } = await child.status;
    if (code !== 0) throw new Error(`cat of ${files.length} segments exited ${code}`);
    return bytes;
  };
  await cat(); // the files in the page cache for both
  const catRun = await bestOf3(cat);
  const rate = (r: { seconds: number; bytes: number }) => r.bytes / 1048576 / r.seconds;
  console.log(
    `\nExport of /${path}'s whole recording (${files.length} segments) against cat of them:`,
  );
  console.log(
    `  cat:           ${mib(catRun.bytes / 1024)} in ${catRun.seconds.toFixed(3)} s, ` +
      `${rate(catRun).toFixed(0)} MiB/s`,
  );
  for (const format of ["mp4", "ts"]) {
    const exported = await bestOf3(async () => {
      const response = await fetch(`${httpUrl}/recordings/${path}/export?${span}&format=${format}`);
      if (response.status !== 200) {
        throw new Error(`export: ${response.status} ${await response.text()}`);
      }
      return drain(response.body!);
    });
    console.log(
      `  export (${format.padEnd(3)}):  ${mib(exported.bytes / 1024)} in ${
        exported.seconds.toFixed(3)
      } s, ` +
        `${rate(exported).toFixed(0)} MiB/s: ${
          (rate(exported) / rate(catRun)).toFixed(3)
        } of cat's`,
    );
  }
}

async function main(): Promise<void> {
  // Long enough for both windows: raw H.264 cannot be looped (ffmpeg cannot seek back in it).
  const clipSeconds = 2 * options.seconds + 40;
  const clip = await generateClip(
    `record-720p30-4M-g60-${clipSeconds}s.h264`,
    clipSeconds,
    "4M",
    60,
  );
  const dataDir = await Deno.makeTempDir({ prefix: "bench_data_" });
  const recordingsDir = `${workDir}recordings`;
  await Deno.remove(recordingsDir, { recursive: true }).catch(() => {});
  const server = await startServer({
    GSTREAMER_DATA_DIR: dataDir,
    GSTREAMER_RECORDINGS_DIR: recordingsDir,
    GSTREAMER_MAX_PUSHES: String(Math.max(16, options.paths)),
  });
  const ids = Array.from({ length: options.paths }, (_, at) => `rec${at}`);
  // Inside the try, so that a failed connect still stops the server.
  let client: TestClient | undefined;
  try {
    client = await TestClient.connect(server.url);
    const stats = new StatsWatcher(client);
    const pid = serverProcessId(server);
    console.log(`Pushing ${options.paths} paced 720p30 streams (${clip}) ...`);
    // deno-fmt-ignore
    const pushes = ids.map((id) =>
      spawn("ffmpeg", [
        "-v", "error", "-nostdin", "-re", "-f", "h264", "-framerate", "30",
        "-i", clip, "-c", "copy", "-f", "h264", `${server.httpUrl}/push/${id}`,
      ])
    );
    for (const id of ids) {
      await stats.until(id, (p) => Number(p?.bitrate ?? 0) > 1e6, 60000, `push ${id} at speed`)
        .catch((error) => {
          throw new Error(
            `${error.message}\n${pushes[ids.indexOf(id)].stderrTail()}\n` +
              `${JSON.stringify(stats.latest?.pipelines.map((p) => [p.id, p.fps]))}\n` +
              server.logs.slice(-8).join("\n"),
          );
        });
    }
    await sleep(3000);

    console.log(`Window 1: ${options.seconds} s, pushed and not recorded ...`);
    const plain = await window(pid, options.seconds);

    for (const id of ids) {
      expectOk(
        await client.request("startRecording", { path: id, segmentSeconds: options.segment }),
        `startRecording ${id}`,
      );
    }
    await sleep(3000);
    const before = await nextBytes(stats, ids);
    console.log(`Window 2: ${options.seconds} s, pushed and recorded ...`);
    const recorded = await window(pid, options.seconds);
    const after = await nextBytes(stats, ids);
    const listed = expectOk(await client.request("listRecordings", {}), "listRecordings");
    const waiting = (listed.payload.recordings as { state: string }[])
      .filter((r) => r.state !== "recording").length;
    for (const push of pushes) {
      if ((await Promise.race([push.exited, sleep(0).then(() => null)])) !== null) {
        console.log(`A push ended early: ${push.stderrTail()}`);
      }
    }

    const received = after.received - before.received;
    const wrote = after.written - before.written;
    console.log(
      `\n${options.paths} paced 720p30 pushes (~4 Mbit/s each), ${options.seconds} s windows, ` +
        `server at its defaults (disk store):`,
    );
    console.log(
      `  server CPU, pushed only:     ${plain.cpuPercent.toFixed(1)} % of one core ` +
        `(${cpuSplit(plain)}), RSS ${mib(plain.rssKib)}`,
    );
    console.log(
      `  server CPU, pushed+recorded: ${recorded.cpuPercent.toFixed(1)} % of one core ` +
        `(${cpuSplit(recorded)}), RSS ${mib(recorded.rssKib)}`,
    );
    console.log(`  CPU ratio recorded/not: ${(recorded.cpuPercent / plain.cpuPercent).toFixed(2)}`);
    // 2 decimals: bytesWritten is the segment files' size at the recordings' last sweep (once a
    // second), so each end of the window may lag the broadcast by up to ~1 s of its length.
    console.log(
      `  bytes written ${mib(wrote / 1024)} against bytes received ${mib(received / 1024)} ` +
        `over the recorded window: ratio ${(wrote / received).toFixed(2)}`,
    );
    console.log(
      `  recordings not recording at the end: ${waiting} of ${options.paths}; ` +
        `segments on disk: ${
          (listed.payload.segments as unknown[]).length
        } (${options.segment} s each)`,
    );
    // Stopped first, so the segments listed for cat are the ones exported.
    for (const id of ids) expectOk(await client.request("stopRecording", { path: id }), "stop");
    for (const push of pushes) await push.kill();
    await exportAgainstCat(server.httpUrl, recordingsDir, ids[0]);
  } finally {
    await killChildren();
    await client?.close();
    await stopServer(server);
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    await Deno.remove(recordingsDir, { recursive: true }).catch(() => {});
  }
}

await main();
