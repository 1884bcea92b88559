/**
 * The main thread's priority (GSTREAMER_MAIN_THREAD_NICE, src/gst/priority.ts), read from the real
 * server's threads in /proc: the main thread raised, the threads started after it (Deno's pool,
 * GStreamer's streaming threads) at the default; and the server still serving, with the reason
 * logged, where the process may not raise it.
 */
import assert from "node:assert/strict";
import {
  KERNEL_DEFAULT_SLACK_NS,
  launchOf,
  processThreads,
  type ServerProcess,
  startServer,
  suiteSlackNs,
  threadsWithLivePipelines,
} from "./helpers.ts";

/** The nice this suite runs at, which a server it starts inherits. */
const suiteNice = (await processThreads(Deno.pid)).get(Deno.pid)!.nice;
/**
 * The first and third tests are about a server started at nice 0: one started at another nice
 * keeps it (the last test), and an unprivileged suite cannot start one lower.
 */
const notAtNiceZero = suiteNice !== 0;
if (notAtNiceZero) {
  console.warn(`priority_test: this suite runs at nice ${suiteNice}; two tests need nice 0`);
}

/**
 * The first test tells the threads started after the raise by their timer slack, which the server
 * sets on the main thread just before the nice (src/main.ts): only at the kernel's default slack,
 * as in test/timer_slack_test.ts.
 */
const notAtKernelDefaultSlack = suiteSlackNs !== KERNEL_DEFAULT_SLACK_NS;
if (notAtKernelDefaultSlack) {
  console.warn(
    `priority_test: this suite runs at a slack of ${suiteSlackNs} ns; one test needs the kernel's default`,
  );
}

/** The server at the defaults, started through `command args...`, which runs it in its place. */
function startUnder(command: string, ...args: string[]): Promise<ServerProcess> {
  const direct = launchOf("src/main.ts");
  return startServer({}, 20000, { command, args: [...args, direct.command, ...direct.args] });
}

Deno.test({
  name: "the main thread is raised to GSTREAMER_MAIN_THREAD_NICE, and only it",
  ignore: notAtNiceZero || notAtKernelDefaultSlack,
}, async () => {
  const server = await startServer({
    GSTREAMER_MAIN_THREAD_NICE: "-7",
    GSTREAMER_TIMER_SLACK_US: "700",
  });
  try {
    // As in test/timer_slack_test.ts: eight pipelines at once need pool threads Deno had not
    // started before the server's code ran, and those and their streaming threads are the ones
    // that would inherit the main thread's nice but for SCHED_RESET_ON_FORK.
    const threads = await threadsWithLivePipelines(server, 8);
    assert.ok(
      server.logs.some((line) => line.includes("Timer slack 700 µs")),
      `no timer slack line in the log:\n${server.logs.join("\n")}`,
    );
    const raised = server.logs.some((line) => line.includes("Main thread at nice -7"));
    const refused = server.logs.find((line) => line.includes("Main thread left at its priority"));
    assert.ok(raised || refused, `no priority line in the log:\n${server.logs.join("\n")}`);
    assert.equal(threads.get(server.pid)?.nice, raised ? -7 : 0, "the main thread");
    const streaming = [...threads.values()].filter((t) => t.name.startsWith("videotestsrc"));
    assert.ok(streaming.length > 0, `no streaming thread among ${JSON.stringify([...threads])}`);
    const others = [...threads].filter(([tid]) => tid !== server.pid);
    // The slack is set just before the nice, on the main thread, so a thread with it was started
    // from the main thread after the raise, or from such a thread: one the nice-0 check is about.
    assert.ok(
      others.some(([, t]) => t.slackNs === 700_000),
      `no thread started after the raise: ${JSON.stringify(others)}`,
    );
    assert.deepEqual(others.filter(([, t]) => t.nice !== 0), [], "other threads keep nice 0");
    if (Deno.uid() === 0) assert.ok(raised, `root may raise it, yet: ${refused}`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("GSTREAMER_MAIN_THREAD_NICE=0 leaves the main thread as it started", async () => {
  const server = await startServer({ GSTREAMER_MAIN_THREAD_NICE: "0" });
  try {
    const threads = await threadsWithLivePipelines(server);
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
    const threads = await threadsWithLivePipelines(server);
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
    const threads = await threadsWithLivePipelines(server);
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
