/**
 * Malloc's thresholds (GSTREAMER_MALLOC_THRESHOLD_MIB, src/gst/memory.ts), seen from outside: the
 * real server's minor page faults (/proc/PID/stat) while many connections make and delete
 * pipelines at once, against a server left at glibc's own thresholds; and a user's own glibc
 * settings kept, with the reason logged.
 */
import assert from "node:assert/strict";
import { expectOk, type ServerProcess, startServer, TestClient } from "./helpers.ts";

/** Frames of 1.3 MiB: above glibc's first mmap threshold, below the server's default. */
const LAUNCH =
  "videotestsrc is-live=true ! video/x-raw,format=I420,width=1280,height=720 ! fakesink";
const CONNECTIONS = 20;
const CYCLES = 10;

/** The process's minor page faults so far, every thread's. */
function minorFaults(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // "pid (name) state ppid ...": the name may hold spaces and parentheses; minflt is field 10.
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[10 - 3]);
}

/**
 * Minor faults per create -> PLAYING -> delete cycle, CONNECTIONS connections at once, after one
 * pass that warms the server up (its first pipelines fault in libraries and arenas either way).
 */
async function faultsPerCycle(server: ServerProcess): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: CONNECTIONS }, () => TestClient.connect(server.url)),
  );
  try {
    const pass = (label: string) =>
      Promise.all(clients.map(async (client, c) => {
        for (let k = 0; k < CYCLES; k++) {
          const id = `${label}-${c}-${k}`;
          expectOk(
            await client.request("createPipeline", {
              id,
              pipeline: LAUNCH,
              desiredState: "playing",
            }),
          );
          expectOk(await client.request("deletePipeline", { id }));
        }
      }));
    await pass("warm");
    const before = minorFaults(server.pid);
    await pass("counted");
    return (minorFaults(server.pid) - before) / (CONNECTIONS * CYCLES);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}

/** faultsPerCycle of a server started with `env`. */
async function serverFaultsPerCycle(env: Record<string, string>): Promise<number> {
  const server = await startServer(env);
  try {
    return await faultsPerCycle(server);
  } finally {
    await server.stop();
  }
}

/**
 * How many times a server at glibc's thresholds faults a cycle at least, against one at the
 * server's: the first test shows it, and the second that a user's thresholds stay by it.
 */
const FAULT_RATIO = 4;

Deno.test("pipelines made and deleted at once reuse their buffers' memory rather than fault it in anew", async () => {
  const keptFaults = await serverFaultsPerCycle({});
  const glibcFaults = await serverFaultsPerCycle({ GSTREAMER_MALLOC_THRESHOLD_MIB: "0" });
  console.log(
    `minor faults a cycle: ${keptFaults.toFixed(0)} kept, ${glibcFaults.toFixed(0)} at glibc's`,
  );
  // A frame is 338 pages. Seen here and in CI: 4 to 23 faults a cycle kept, 109 to 258 at glibc's.
  assert.ok(
    keptFaults * FAULT_RATIO < glibcFaults,
    `${keptFaults.toFixed(0)} minor faults a cycle at the default, ` +
      `${glibcFaults.toFixed(0)} with GSTREAMER_MALLOC_THRESHOLD_MIB=0`,
  );
});

Deno.test("malloc thresholds set through GLIBC_TUNABLES stay, and the log says so", async () => {
  const keptFaults = await serverFaultsPerCycle({});
  // glibc's first mmap threshold, fixed: every frame mapped fresh and its pages faulted in anew,
  // unless the server overwrote it with its own.
  const server = await startServer({ GLIBC_TUNABLES: "glibc.malloc.mmap_threshold=131072" });
  let userFaults;
  try {
    await server.waitForLog(
      "Malloc left at its thresholds: GLIBC_TUNABLES sets malloc's thresholds, and they stay",
    );
    userFaults = await faultsPerCycle(server);
  } finally {
    await server.stop();
  }
  console.log(
    `minor faults a cycle: ${keptFaults.toFixed(0)} kept, ${userFaults.toFixed(0)} at the user's`,
  );
  assert.ok(
    keptFaults * FAULT_RATIO < userFaults,
    `${keptFaults.toFixed(0)} minor faults a cycle at the default, ` +
      `${userFaults.toFixed(0)} with GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`,
  );
});
