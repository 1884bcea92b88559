/**
 * WHEP in real Chromium. The scenarios (test/netns/whep.ts) run inside a network namespace of
 * their own with only loopback, so that ICE never reaches the machine's LAN address (the network
 * rule for WebRTC tests); making one needs root, which CI has.
 */
import assert from "node:assert/strict";

Deno.test("WHEP plays served paths in Chromium (inside a loopback-only network namespace)", async () => {
  const script = new URL("./netns/whep.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command("unshare", {
    args: [
      "--net",
      "--",
      "sh",
      "-c",
      'ip link set lo up && exec "$0" run --allow-all "$1"',
      Deno.execPath(),
      script,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  console.log(output.trim());
  assert.equal(code, 0, `the WHEP scenarios failed (exit ${code}); their output is above`);
});
