/**
 * The main thread's priority (GSTREAMER_MAIN_THREAD_NICE, src/gst/priority.ts), read from the real
 * server's threads in /proc: the main thread raised, the threads started after it (Deno's pool,
 * GStreamer's streaming threads) at the default; and the server still serving, with the reason
 * logged, where the process may not raise it.
 */
import assert from "node:assert/strict";
import { expectOk, launchOf, type ServerProcess, startServer, TestClient } from "./helpers.ts";

/** Each thread's name and nice value, by thread id. */
async function threadNices(pid: number): Promise<Map<number, { name: string; nice: number }>> {
  const threads = new Map<number, { name: string; nice: number }>();
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const stat = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/stat`);
    // "tid (name) state ppid ...": the name may hold spaces and parentheses; nice is field 19.
    const nameEnd = stat.lastIndexOf(")");
    const fields = stat.slice(nameEnd + 2).split(" ");
    threads.set(Number(task.name), {
      name: stat.slice(stat.indexOf("(") + 1, nameEnd),
      nice: Number(fields[19 - 3]),
    });
  }
  return threads;
}

/** The nice this suite runs at, which a server it starts inherits. */
const suiteNice = (await threadNices(Deno.pid)).get(Deno.pid)!.nice;
/**
 * The first and third tests are about a server started at nice 0: one started at another nice
 * keeps it (the last test), and an unprivileged suite cannot start one lower.
 */
const notAtNiceZero = suiteNice !== 0;
if (notAtNiceZero) {
  console.warn(`priority_test: this suite runs at nice ${suiteNice}; two tests need nice 0`);
}

/** The server at the defaults, started through `command args...`, which runs it in its place. */
function startUnder(command: string, ...args: string[]): Promise<ServerProcess> {
  const direct = launchOf("src/main.ts");
  return startServer({}, 20000, { command, args: [...args, direct.command, ...direct.args] });
}

/** Starts a live pipeline, so that a streaming thread runs, and returns every thread's nice. */
async function withStreamingThread(server: ServerProcess) {
  const client = await TestClient.connect(server.url);
  try {
    expectOk(
      await client.request("createPipeline", {
        id: "priority-live",
        pipeline: "videotestsrc is-live=true ! fakesink",
        desiredState: "playing",
      }),
    );
    const threads = await threadNices(server.pid);
    expectOk(await client.request("deletePipeline", { id: "priority-live" }));
    return threads;
  } finally {
    await client.close();
  }
}

Deno.test({
  name: "the main thread is raised to GSTREAMER_MAIN_THREAD_NICE, and only it",
  ignore: notAtNiceZero,
}, async () => {
  const server = await startServer({ GSTREAMER_MAIN_THREAD_NICE: "-7" });
  try {
    const threads = await withStreamingThread(server);
    const raised = server.logs.some((line) => line.includes("Main thread at nice -7"));
    const refused = server.logs.find((line) => line.includes("Main thread left at its priority"));
    assert.ok(raised || refused, `no priority line in the log:\n${server.logs.join("\n")}`);
    assert.equal(threads.get(server.pid)?.nice, raised ? -7 : 0, "the main thread");
    const streaming = [...threads.values()].filter((t) => t.name.startsWith("videotestsrc"));
    assert.ok(streaming.length > 0, `no streaming thread among ${JSON.stringify([...threads])}`);
    const others = [...threads].filter(([tid]) => tid !== server.pid);
    assert.deepEqual(others.filter(([, t]) => t.nice !== 0), [], "other threads keep nice 0");
    if (Deno.uid() === 0) assert.ok(raised, `root may raise it, yet: ${refused}`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("GSTREAMER_MAIN_THREAD_NICE=0 leaves the main thread as it started", async () => {
  const server = await startServer({ GSTREAMER_MAIN_THREAD_NICE: "0" });
  try {
    const threads = await withStreamingThread(server);
    assert.equal(threads.get(server.pid)?.nice, suiteNice);
    assert.ok(!server.logs.some((line) => line.includes("Main thread")), server.logs.join("\n"));
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test({
  name: "without CAP_SYS_NICE the server says why the main thread stays, and serves",
  ignore: notAtNiceZero,
}, async () => {
  // setpriv leaves the capability out of what the server may have, root or not.
  const server = await startUnder(
    "setpriv",
    "--bounding-set",
    "-sys_nice",
    "--inh-caps",
    "-sys_nice",
    "--",
  );
  try {
    const threads = await withStreamingThread(server);
    assert.equal(threads.get(server.pid)?.nice, 0);
    const refused = server.logs.find((line) => line.includes("Main thread left at its priority"));
    assert.match(refused ?? "", /nice -10 needs CAP_SYS_NICE .* RLIMIT_NICE of at least 30/);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("a server started at another nice keeps it, on every thread", async () => {
  const server = await startUnder("nice", "-n", "5");
  const started = Math.min(19, suiteNice + 5);
  try {
    const threads = await withStreamingThread(server);
    assert.deepEqual(
      [...threads].filter(([, t]) => t.nice !== started),
      [],
      `every thread at nice ${started}`,
    );
    const kept = server.logs.find((line) => line.includes("Main thread left at its priority"));
    assert.match(kept ?? "", new RegExp(`started at nice ${started}, which the server keeps`));
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
