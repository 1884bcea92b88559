/**
 * What the server's main thread costs when nothing is asked of it (issue 14, steady state): our
 * server at the defaults with one client connected (it receives the stats every second), with no
 * pipeline and with --live live pipelines, beside a bare Deno process with one 50 ms timer (the
 * floor for a server that polls every 50 ms), all in the same run. Per window: the main thread's
 * wake-ups a second (voluntary context switches) and its CPU (from schedstat, in nanoseconds),
 * and the whole process's CPU.
 *
 *   deno run --allow-all bench/idle.ts [--live 200] [--window 20] [--settle 3]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import {
  parseNumberOptions,
  sleep,
  startLivePipelines,
  startUsage,
  stopServer,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, { live: 200, window: 20, settle: 3 });

/** The main thread's (tid = pid) voluntary context switches and run time in seconds. */
function mainThread(pid: number): { switches: number; seconds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/status`);
  const schedstat = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/schedstat`);
  return {
    switches: Number(status.match(/^voluntary_ctxt_switches:\s+(\d+)/m)![1]),
    seconds: Number(schedstat.split(" ")[0]) / 1e9,
  };
}

async function measureWindow(pid: number, label: string): Promise<void> {
  await sleep(options.settle * 1000);
  const before = mainThread(pid);
  const usage = startUsage(pid);
  await sleep(options.window * 1000);
  const after = mainThread(pid);
  const result = usage.stop();
  const wakeups = (after.switches - before.switches) / result.seconds;
  const mainPercent = (after.seconds - before.seconds) / result.seconds * 100;
  console.log(
    `  ${label.padEnd(40)} main thread: ${wakeups.toFixed(0).padStart(4)} wake-ups/s, ` +
      `${mainPercent.toFixed(2)}% of a core; process ${result.cpuPercent.toFixed(1)}%`,
  );
}

console.log(`main thread at rest (${options.window} s windows):`);
const bare = new Deno.Command(Deno.execPath(), {
  args: ["eval", "setInterval(() => {}, 50)"],
  stdout: "null",
  stderr: "null",
}).spawn();
try {
  await measureWindow(bare.pid, "bare Deno, one 50 ms timer");
} finally {
  bare.kill();
  await bare.status;
}

const dataDir = await Deno.makeTempDir({ prefix: "idle-bench-" });
const server = await startServer({
  GSTREAMER_DATA_DIR: dataDir,
  GSTREAMER_MAX_PIPELINES: String(Math.max(100, options.live)),
});
try {
  const client = await TestClient.connect(server.url);
  await measureWindow(server.pid, "our server, no pipeline");
  await startLivePipelines(client, options.live);
  await measureWindow(server.pid, `our server, ${options.live} live pipelines`);
  for (let i = 0; i < options.live; i++) {
    await client.request("deletePipeline", { id: `live${i}` });
  }
  client.received.length = 0;
  await client.close();
} finally {
  await stopServer(server);
  await Deno.remove(dataDir, { recursive: true });
}
