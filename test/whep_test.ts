/**
 * WHEP and WHIP in real Chromium. The scenarios (test/netns/whep.ts, test/netns/whip.ts) run
 * inside a network namespace of their own with only loopback, so that ICE never reaches the
 * machine's LAN address (the network rule for WebRTC tests); making one needs root, which CI has.
 */
import assert from "node:assert/strict";

async function inOwnNetwork(script: string): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command("unshare", {
    args: [
      "--net",
      "--",
      "sh",
      "-c",
      'ip link set lo up && exec "$0" run --allow-all "$1"',
      Deno.execPath(),
      new URL(script, import.meta.url).pathname,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  console.log(output.trim());
  assert.equal(code, 0, `the scenarios of ${script} failed (exit ${code}); their output is above`);
}

Deno.test("WHEP plays served paths in Chromium (inside a loopback-only network namespace)", () =>
  inOwnNetwork("./netns/whep.ts"));

Deno.test("WHIP takes Chromium's camera (inside a loopback-only network namespace)", () =>
  inOwnNetwork("./netns/whip.ts"));
