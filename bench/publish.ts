/**
 * Publish benchmark: one RTSP publish (ANNOUNCE/RECORD, `ffmpeg -re -c copy -f rtsp
 * -rtsp_transport tcp`) of a 1080p30 ~8 Mbit/s H.264 clip read by --readers RTSP/TCP clients,
 * and in the same run the same clip sent the other way the server takes a stream, `POST
 * /push/{name}` (`ffmpeg -re -c copy -f h264`, Content-Type video/h264), read the same way.
 * The two are printed side by side, with publish/push as the ratio.
 *
 * Each run: the sender starts; once the server's stats show frames flowing, --readers
 * `ffprobe -rtsp_transport tcp -show_entries packet=size,flags` connect at once (they demux and
 * list every packet without decoding, which is what lets 50 of them run on 2 cores). Halfway
 * through, a late joiner (`gst-launch-1.0 rtspsrc protocols=tcp latency=0 ! rtph264depay
 * wait-for-keyframe=true ! avdec_h264 output-corrupt=false ! fakesink num-buffers=1`, as in
 * bench/push.ts part 2) times spawn to the PLAY reply and to its first decoded frame; a joiner
 * waits for the next key frame, uniform over one key-frame interval (1 s here), so one sample
 * says little and --joiners N runs N of them one after the other.
 *
 * Frames lost: a reader starts wherever it joined, and frames before its first key frame do not
 * count. Every packet a reader lists (stdout only; ffprobe's errors go to stderr) is put back in
 * its place in the clip by its size (place and account in bench/measure.ts): the server passes P
 * and B frames through unchanged, so their sizes in the clip (ffprobe on the file) and at the
 * reader are equal up to a constant, and a run of five equal differences anchors the reader's
 * list in the clip. What the reader should have got is every frame of the clip from its first
 * key frame to the end; what it got is what it listed that finds its place. Lost = should - got,
 * told apart as lost inside the stream or at its end. A packet that finds no place is counted as
 * "unplaced". A reader that did not end by itself with exit 0, or whose list found no place, is
 * "failed" and left out of the figures; every reader counted failed or short is printed with
 * why (its exit, the frames it missed, its stderr's last lines).
 *
 * Server CPU: utime + stime of the server process from /proc, from the moment every reader shows
 * in the stats (rtspClients) until the sender exits. In the same window the whole machine's busy
 * time (/proc/stat), the readers' and the sender's, so a saturated machine shows as such.
 *
 *   deno run --allow-all bench/publish.ts [--seconds 60] [--readers 50] [--joiners 1]
 *
 * PUBLISH_SECONDS and READERS in the environment set the defaults of --seconds and --readers.
 */
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  type Account,
  account,
  type Child,
  cpuSplit,
  endReader,
  GroupMeter,
  groupReasons,
  type Join,
  joinOnce,
  killChildren,
  machineBusy,
  machineTicks,
  mib,
  MISSING_KEPT,
  type Packet,
  parseNumberOptions,
  probePackets,
  type ReaderEnd,
  runChecked,
  serverProcessId,
  sleep,
  spawn,
  startReader,
  startUsage,
  StatsWatcher,
  stopServer,
  type Usage,
  verdict,
  whyShort,
  within,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  /** Length of the clip, in seconds. */
  seconds: number;
  /** RTSP/TCP clients reading each stream for its whole length. */
  readers: number;
  /** Late joiners per run, one after the other from halfway. */
  joiners: number;
}

function parseOptions(args: string[]): Options {
  const fromEnv = (name: string, fallback: number) => {
    const text = Deno.env.get(name);
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a whole number >= 1`);
    return value;
  };
  const options = parseNumberOptions<Options>(args, {
    seconds: fromEnv("PUBLISH_SECONDS", 60),
    readers: fromEnv("READERS", 50),
    joiners: 1,
  });
  if (options.seconds < 4) throw new Error("--seconds needs at least 4");
  if (options.readers < 1 || options.joiners < 1) {
    throw new Error("--readers and --joiners need at least 1");
  }
  return options;
}

const FPS = 30;
const GOP = 30;
const BITRATE = "8M";
const keyFrameIntervalMs = (GOP / FPS) * 1000;

// ---------------------------------------------------------------- the clip

const workDir = new URL("./.work/", import.meta.url).pathname;

interface Clip {
  path: string;
  packets: Packet[];
  /** Mean bitrate over the clip, in bit/s. */
  bitrate: number;
}

/**
 * testsrc2 1080p30 with moving noise (plain testsrc2 needs far less than 8 Mbit/s), libx264
 * veryfast at 8 Mbit/s, a key frame every 30 frames, in MP4 (the senders get timestamps from
 * the file), into bench/.work/ once.
 */
async function makeClip(seconds: number): Promise<Clip> {
  const path = `${workDir}publish-1080p30-${BITRATE}-g${GOP}-${seconds}s.mp4`;
  let exists = false;
  try {
    exists = Deno.statSync(path).size > 0;
  } catch {
    // not there yet
  }
  if (!exists) {
    Deno.mkdirSync(workDir, { recursive: true });
    console.log(
      `Generating ${path} (${seconds} s of 1080p30 at ${BITRATE}b/s; about 1x real time on 2 cores) ...`,
    );
    const partial = `${path}.partial.mp4`;
    // deno-fmt-ignore
    await runChecked("ffmpeg", [
      "-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=1920x1080:rate=${FPS}`,
      "-vf", "noise=alls=8:allf=t", "-t", String(seconds),
      "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
      "-b:v", BITRATE, "-maxrate", BITRATE, "-bufsize", "16M",
      "-g", String(GOP), "-keyint_min", String(GOP), "-sc_threshold", "0",
      "-an", "-movflags", "+faststart", partial,
    ]);
    Deno.renameSync(partial, path);
  }
  const packets = await probePackets(path);
  const bytes = packets.reduce((sum, packet) => sum + packet.size, 0);
  return { path, packets, bitrate: (bytes * 8) / (packets.length / FPS) };
}

// ---------------------------------------------------------------- one run

type Kind = "publish" | "push";

/** One reader: its frames counted from its first key frame, how it ended, why it is short. */
interface Reader extends Account {
  end: ReaderEnd;
  /** Why it is counted short or failed; null when it got every frame and ended cleanly. */
  reason: string | null;
}

interface RunResult {
  kind: Kind;
  name: string;
  /** Frames the server counted for the stream (its end-of-stream log line). */
  serverFrames: number | null;
  serverEndLine: string;
  /** Milliseconds from the sender's spawn to frames in the stats. */
  flowingAfter: number;
  /** Milliseconds from the readers' spawn to all of them in the stats. */
  readersInAfter: number | null;
  /** Readers in the stats at each broadcast while they connected (ms after their spawn). */
  arrivals: { at: number; clients: number }[];
  readersSeen: number;
  minClientsInWindow: number;
  accounts: Reader[];
  joiners: Join[];
  joinerFailures: string[];
  usage: Usage;
  /** Percent of one core over the window. */
  readersCpu: number;
  senderCpu: number;
  /** Percent of all cores busy over the window. */
  machineBusy: number;
  /** Bitrate in the stats (publish: its "bitrate"; push: bytes over time), bit/s. */
  statsBitrate: number | null;
  senderExit: number | null;
  senderOutput: string;
}

function senderArgs(kind: Kind, clip: string, server: ServerProcess, name: string): string[] {
  // deno-fmt-ignore
  return kind === "publish"
    ? [
      "-v", "error", "-re", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp",
      `${server.rtspUrl}/${name}`,
    ]
    : [
      "-v", "error", "-re", "-i", clip, "-c", "copy", "-bsf:v", "h264_mp4toannexb",
      "-flush_packets", "1", "-f", "h264", "-content_type", "video/h264",
      `${server.httpUrl}/push/${name}`,
    ];
}

async function runOne(
  kind: Kind,
  server: ServerProcess,
  serverPid: number,
  stats: StatsWatcher,
  clip: Clip,
  options: Options,
): Promise<RunResult> {
  const name = `bench-${kind}`;
  const url = `${server.rtspUrl}/${name}`;
  console.log(`${kind}: sending ${clip.packets.length} frames at ${FPS} fps ...`);
  const sender = spawn("ffmpeg", senderArgs(kind, clip.path, server, name));
  const readers: Child[] = [];
  try {
    const senderGone = sender.exited.then(({ code }) => {
      throw new Error(`The sending ffmpeg exited ${code} early:\n${sender.output()}`);
    });
    senderGone.catch(() => {}); // raced below; its end after them is expected
    await Promise.race([
      stats.until(name, (p) => p?.frames > 0, 20000, `frames of ${kind} '${name}'`),
      senderGone,
    ]);
    const flowingAt = performance.now();
    const flowingAfter = flowingAt - sender.spawnedAt;

    // Late joiners, one after the other from halfway through the clip
    // (timed from the first frames, whether or not the readers are in by then).
    const joiners: Join[] = [];
    const joinerFailures: string[] = [];
    const joining = (async () => {
      const halfway = flowingAt + (options.seconds * 1000) / 2;
      await sleep(Math.max(0, halfway - performance.now()));
      for (let n = 0; n < options.joiners; n++) {
        if (n > 0) await sleep(Math.random() * keyFrameIntervalMs);
        const result = await joinOnce(url, flowingAt);
        if (typeof result === "string") joinerFailures.push(result);
        else joiners.push(result);
      }
    })();

    console.log(`${kind}: frames flow; starting ${options.readers} readers ...`);
    const readersAt = performance.now();
    for (let i = 0; i < options.readers; i++) {
      readers.push(startReader(url));
    }
    let readersInAfter: number | null = null;
    const arrivals: { at: number; clients: number }[] = [];
    for (const deadline = readersAt + 30000; performance.now() < deadline;) {
      await Promise.race([within(stats.next(), deadline - performance.now()), senderGone]);
      const clients = stats.pipeline(name)?.rtspClients ?? 0;
      arrivals.push({ at: performance.now() - readersAt, clients });
      if (clients >= options.readers) {
        readersInAfter = performance.now() - readersAt;
        break;
      }
    }
    if (readersInAfter === null) {
      console.warn(`${kind}: not every reader showed in the stats within 30 s`);
    }
    const readersSeen = stats.pipeline(name)?.rtspClients ?? 0;

    // The window: from every reader in until the sender exits.
    const meter = startUsage(serverPid);
    const readerMeter = new GroupMeter(readers.map((reader) => reader.process.pid));
    const senderMeter = new GroupMeter([sender.process.pid]);
    const machineFrom = machineTicks();
    let minClientsInWindow = readersSeen;
    let statsBitrate: number | null = null;
    const bitrates: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await within(stats.next(), 1500);
        if (!sampling) return;
        meter.sample();
        readerMeter.sample();
        senderMeter.sample();
        const entry = stats.pipeline(name);
        if (!entry) continue;
        minClientsInWindow = Math.min(minClientsInWindow, entry.rtspClients ?? 0);
        if (typeof entry.bitrate === "number" && entry.bitrate > 0) bitrates.push(entry.bitrate);
      }
    })();

    const senderEnd = await within(sender.exited, options.seconds * 1000 + 60000);
    const machineTo = machineTicks();
    const usage = meter.stop();
    const readersSeconds = readerMeter.seconds();
    const senderSeconds = senderMeter.seconds();
    sampling = false;
    await sampler;
    if (senderEnd === null) await sender.kill();
    if (bitrates.length > 0) statsBitrate = bitrates.reduce((a, b) => a + b, 0) / bitrates.length;
    await joining;

    const endLine = await server.waitForLog(
      kind === "publish" ? `Publish '${name}' from` : `Push '${name}' ended`,
      15000,
    ).catch(() => "");
    const framesMatch = endLine.match(/(\d+) frames/);

    // A reader joined while frames flowed: it is counted from its first key frame, not short
    // of the frames sent before it was there.
    const accounts = await Promise.all(readers.map(async (reader): Promise<Reader> => {
      const end = await endReader(reader, 20000);
      const counted = account(clip.packets, end.packets, { from: "first-key" });
      return { ...counted, end, reason: whyShort(counted, end, GOP) };
    }));
    await stats.until(name, (p) => p === undefined, 15000, `${kind} '${name}' to end`)
      .catch((error) => console.warn((error as Error).message));
    return {
      kind,
      name,
      serverFrames: framesMatch ? Number(framesMatch[1]) : null,
      serverEndLine: endLine,
      flowingAfter,
      readersInAfter,
      arrivals,
      readersSeen,
      minClientsInWindow,
      accounts,
      joiners,
      joinerFailures,
      usage,
      readersCpu: (readersSeconds / usage.seconds) * 100,
      senderCpu: (senderSeconds / usage.seconds) * 100,
      machineBusy: machineBusy(machineFrom, machineTo),
      statsBitrate,
      senderExit: senderEnd?.code ?? null,
      senderOutput: sender.output(),
    };
  } finally {
    await sender.kill();
    await Promise.all(readers.map((reader) => reader.kill()));
  }
}

// ---------------------------------------------------------------- report

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

interface Figures {
  placed: Reader[];
  failed: number;
  lostTotal: number;
  lostWorst: number;
  shortReaders: number;
  unplaced: number;
  minGot: number;
  medianGot: number;
  firstFrame: number;
  afterPlay: number;
}

function figures(run: RunResult): Figures {
  const placed = run.accounts.filter((a) => a.firstKey !== null && a.end.clean);
  const lost = placed.map((a) => a.expected - a.got);
  const got = placed.map((a) => a.got);
  return {
    placed,
    failed: run.accounts.length - placed.length,
    lostTotal: lost.reduce((sum, value) => sum + value, 0),
    lostWorst: lost.length ? Math.max(...lost) : NaN,
    shortReaders: lost.filter((value) => value > 0).length,
    unplaced: placed.reduce((sum, a) => sum + a.unplaced, 0),
    minGot: got.length ? Math.min(...got) : NaN,
    medianGot: median(got),
    firstFrame: median(run.joiners.map((j) => j.firstFrame)),
    afterPlay: median(run.joiners.map((j) => j.firstFrame - j.setup)),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row, index) => {
    const line = row.map((cell, column) => cell.padEnd(widths[column])).join(" | ").trimEnd();
    return index === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("-|-")}` : line;
  }).join("\n");
}

function report(clip: Clip, options: Options, serverStartMs: number, runs: RunResult[]): void {
  const [publish, push] = runs;
  const [a, b] = runs.map(figures);
  const cores = navigator.hardwareConcurrency;
  const ratio = (x: number, y: number) => (Number.isFinite(x / y) ? (x / y).toFixed(2) : "-");
  const f0 = (value: number) => (Number.isFinite(value) ? value.toFixed(0) : "-");
  const f1 = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : "-");
  const joinCell = (run: RunResult, f: Figures) =>
    run.joiners.length === 0
      ? `none (${run.joinerFailures.length} failed)`
      : `${f0(f.firstFrame)} (after PLAY ${f0(f.afterPlay)})`;
  const lostCell = (f: Figures) =>
    `${f.lostTotal} (worst reader ${Number.isFinite(f.lostWorst) ? f.lostWorst : "-"}, ` +
    `${f.shortReaders} readers short)`;
  const rows = [
    ["figure", "publish (RTSP ANNOUNCE/RECORD)", "push (POST /push, video/h264)", "publish/push"],
    [
      "frames sent (clip) / counted by the server",
      ...runs.map((r) => `${clip.packets.length} / ${r.serverFrames ?? "?"}`),
      "",
    ],
    [
      "readers placed / started (in the stats)",
      ...runs.map((r, i) => `${[a, b][i].placed.length} / ${r.accounts.length} (${r.readersSeen})`),
      "",
    ],
    [
      "frames per reader from its first key frame, min / median",
      ...[a, b].map((f) => `${f0(f.minGot)} / ${f0(f.medianGot)}`),
      "",
    ],
    ["frames lost, all readers (target 0)", lostCell(a), lostCell(b), ""],
    [
      "server CPU, % of one core",
      f1(publish.usage.cpuPercent),
      f1(push.usage.cpuPercent),
      ratio(publish.usage.cpuPercent, push.usage.cpuPercent),
    ],
    [
      "server RSS, mean / peak",
      ...runs.map((r) => `${mib(r.usage.rssKib)} / ${mib(r.usage.rssPeakKib)}`),
      "",
    ],
    [
      `late joiner, spawn to first decoded frame, ms${options.joiners > 1 ? " (median)" : ""}`,
      joinCell(publish, a),
      joinCell(push, b),
      ratio(a.firstFrame, b.firstFrame),
    ],
    [
      `readers' CPU, % of one core; machine busy, % of all ${cores} cores`,
      ...runs.map((r) => `${f0(r.readersCpu)}; ${f0(r.machineBusy)}`),
      "",
    ],
  ];
  const lines = [
    "",
    `=== publish benchmark: ${options.seconds} s of 1080p${FPS} H.264 at ` +
    `${(clip.bitrate / 1e6).toFixed(1)} Mbit/s (key frame every ${GOP} frames), ` +
    `${options.readers} RTSP/TCP readers ===`,
    `clip: ${clip.path}, ${clip.packets.length} frames; server start to listening ` +
    `${f0(serverStartMs)} ms`,
    table(rows),
    "",
    ...runs.map((r, i) => {
      const f = [a, b][i];
      return `${r.kind}: frames in the stats ${f0(r.flowingAfter)} ms after the sender's spawn; ` +
        `readers in the stats ${
          r.arrivals.map((x) => `${x.clients} at ${(x.at / 1000).toFixed(1)} s`).join(", ")
        } after their spawn; readers in the stats >= ${r.minClientsInWindow} in the window of ` +
        `${r.usage.seconds.toFixed(1)} s; ` +
        `server CPU split ${cpuSplit(r.usage)}; bitrate in the stats ` +
        `${r.statsBitrate === null ? "-" : `${(r.statsBitrate / 1e6).toFixed(1)} Mbit/s`}; ` +
        `${f.unplaced} listed packets unplaced; ${f.failed} readers failed; sender exit ` +
        `${r.senderExit ?? "killed"}; late joiners ${
          r.joiners.map((j) => `${f0(j.firstFrame)} (setup ${f0(j.setup)})`).join(", ") || "-"
        } ms; server: ${r.serverEndLine || "no end line"}`;
    }),
    `frames lost, publish: ${verdict(a.lostTotal === 0 && a.failed === 0)}; push: ${
      verdict(b.lostTotal === 0 && b.failed === 0)
    }. A joiner waits for the next key frame: ${f0(keyFrameIntervalMs / 2)} ms on average ` +
    `after PLAY, up to ${f0(keyFrameIntervalMs)} ms; one joiner is one sample of that.`,
  ];
  // Percent of one core: the machine's busy time less ours (server, readers, sender).
  const others = (r: RunResult) =>
    r.machineBusy * cores - r.usage.cpuPercent - r.readersCpu - r.senderCpu;
  lines.push(
    `machine, % of one core (${cores} cores = ${cores * 100}%): ${
      runs.map((r) =>
        `${r.kind}: busy ${f0(r.machineBusy * cores)}, of which server ${
          f0(r.usage.cpuPercent)
        }, ` +
        `${options.readers} readers ${f0(r.readersCpu)}, sender ${f0(r.senderCpu)}, other ` +
        `processes ${f0(others(r))}`
      ).join("; ")
    }`,
  );
  const saturated = runs.filter((r) => r.machineBusy >= 90);
  if (saturated.length > 0) {
    lines.push(
      `WARNING: the machine was saturated (${
        saturated.map((r) => `${f0(r.machineBusy)}% of all cores busy during the ${r.kind} run`)
          .join(", ")
      }): losses, CPU and first-frame times then say as much about the machine as about the ` +
        `server. ${
          saturated.some((r) => r.readersCpu >= others(r))
            ? "The readers took most of it: try READERS=20 (or --readers 20)."
            : "Most of it was other processes than this bench's: run it again on a quiet machine."
        }`,
    );
  }
  for (const [run, f] of runs.map((r, i) => [r, [a, b][i]] as const)) {
    const where = new Map<number, number>();
    for (const account of f.placed) {
      for (const index of account.missing) where.set(index, (where.get(index) ?? 0) + 1);
    }
    if (where.size > 0) {
      lines.push(
        `  ${run.kind}: frames lost, by index in the clip (0 to ${clip.packets.length - 1}) ` +
          `x readers that lost it (first ${MISSING_KEPT} per reader): ${
            [...where].sort((x, y) => x[0] - y[0]).slice(0, 20).map(([i, n]) => `${i}x${n}`)
              .join(", ")
          }`,
      );
    }
    // Every reader counted failed or short, and why (readers with the same reason together).
    const reasons = run.accounts.map((reader) =>
      reader.reason === null
        ? null
        : `${f.placed.includes(reader) ? "short" : "failed"}: ${reader.reason}`
    );
    for (const line of groupReasons(reasons, `  ${run.kind} reader`)) {
      lines.push(line.slice(0, 600));
    }
    for (const failure of run.joinerFailures.slice(0, 3)) {
      lines.push(`  ${run.kind} late joiner failed: ${failure.slice(0, 300)}`);
    }
    if (run.senderExit !== 0) {
      lines.push(`  ${run.kind} sender: ${run.senderOutput.slice(-500)}`);
    }
  }
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  let server: ServerProcess | undefined;
  let client: TestClient | undefined;
  // The server's default disk store, in a directory of its own (nothing restored, nothing left).
  const dataDir = await Deno.makeTempDir({ prefix: "bench-publish-" });
  const interrupted = async () => {
    await killChildren();
    await server?.stop();
    Deno.removeSync(dataDir, { recursive: true });
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const clip = await makeClip(options.seconds);
    const startedAt = performance.now();
    server = await startServer({ GSTREAMER_DATA_DIR: dataDir });
    const serverStartMs = performance.now() - startedAt;
    const serverPid = serverProcessId(server);
    client = await TestClient.connect(server.url);
    const stats = new StatsWatcher(client);
    const runs: RunResult[] = [];
    for (const kind of ["publish", "push"] as const) {
      runs.push(await runOne(kind, server, serverPid, stats, clip, options));
      await sleep(2000); // let the server settle between runs
    }
    report(clip, options, serverStartMs, runs);
  } finally {
    await killChildren();
    await client?.close().catch(() => {});
    if (server) await stopServer(server);
    Deno.removeSignalListener("SIGINT", interrupted);
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
