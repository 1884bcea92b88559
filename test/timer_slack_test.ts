/**
 * The threads' timer slack (GSTREAMER_TIMER_SLACK_US, src/gst/timer_slack.ts), read from the real
 * server's threads in /proc: the main thread at the setting, and the pool and streaming threads
 * started after it; every thread as started with 0; and a slack the process was started with kept
 * on every thread.
 */
import assert from "node:assert/strict";
import {
  KERNEL_DEFAULT_SLACK_NS,
  launchOf,
  startServer,
  suiteSlackNs,
  threadsWithLivePipelines,
} from "./helpers.ts";

const notAtKernelDefault = suiteSlackNs !== KERNEL_DEFAULT_SLACK_NS;
if (notAtKernelDefault) {
  console.warn(
    `timer_slack_test: this suite runs at a slack of ${suiteSlackNs} ns; two tests need`,
  );
}

Deno.test({
  name: "the main thread takes GSTREAMER_TIMER_SLACK_US, and the threads started after it",
  ignore: notAtKernelDefault,
}, async () => {
  const server = await startServer({ GSTREAMER_TIMER_SLACK_US: "700" });
  try {
    // Started at once, the pipelines' state changes need more pool threads than Deno had started
    // before the server's code ran: the new ones, and the streaming threads they start, inherit.
    const threads = await threadsWithLivePipelines(server, 8);
    assert.ok(
      server.logs.some((l) => l.includes("Timer slack 700 µs")),
      `no timer slack line in the log:\n${server.logs.join("\n")}`,
    );
    assert.equal(threads.get(server.pid)?.slackNs, 700_000, "the main thread");
    const all = [...threads.values()];
    assert.deepEqual(
      all.filter((t) => t.slackNs !== 700_000 && t.slackNs !== KERNEL_DEFAULT_SLACK_NS),
      [],
      "threads at neither the setting nor the kernel's default",
    );
    const streamingAtSetting = all.filter((t) =>
      t.name.startsWith("videotestsrc") && t.slackNs === 700_000
    );
    assert.ok(
      streamingAtSetting.length > 0,
      `no streaming thread at 700 µs: ${JSON.stringify(all)}`,
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("GSTREAMER_TIMER_SLACK_US=0 leaves every thread as started", async () => {
  const server = await startServer({ GSTREAMER_TIMER_SLACK_US: "0" });
  try {
    const threads = await threadsWithLivePipelines(server);
    const others = [...threads.values()].filter((t) => t.slackNs !== suiteSlackNs);
    assert.deepEqual(others, [], `threads not at the suite's ${suiteSlackNs} ns`);
    assert.ok(!server.logs.some((l) => l.includes("Timer slack")), server.logs.join("\n"));
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test({
  name: "a server started with another timer slack keeps it, on every thread",
  ignore: notAtKernelDefault,
}, async () => {
  // A process may set its own slack through /proc; exec keeps it (as systemd's TimerSlackNSec=).
  const direct = launchOf("src/main.ts");
  const server = await startServer({}, 20000, {
    command: "sh",
    args: [
      "-c",
      'echo 2000000 > /proc/self/timerslack_ns && exec "$@"',
      "sh",
      direct.command,
      ...direct.args,
    ],
  });
  try {
    const threads = await threadsWithLivePipelines(server);
    const others = [...threads.values()].filter((t) => t.slackNs !== 2_000_000);
    assert.deepEqual(others, [], "threads not at the 2 ms the process was started with");
    const kept = server.logs.find((l) => l.includes("Timer slack left as started"));
    assert.match(kept ?? "", /started with a slack of 2000 µs, which the server keeps/);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
