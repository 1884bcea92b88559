/**
 * The server runs with Deno's permissions of `deno task start`, not --allow-all, and Deno refuses
 * device and /proc paths to those (`Deno.statSync("/dev/fb0")` throws NotCapable). The checks that
 * read such paths go through C instead; here they run under the server's own permissions.
 */
import assert from "node:assert/strict";
import { runAsServer } from "./helpers.ts";

Deno.test("under the server's permissions, pathExists sees /proc and device paths, processRuns sees processes", async () => {
  const script = `
    import { pathExists } from "./src/gst/registry.ts";
    import { processRuns } from "./src/gst/process.ts";
    console.log(JSON.stringify({
      proc: pathExists("/proc/meminfo"),
      missing: pathExists("/no/such/path"),
      parentRuns: processRuns(${Deno.pid}),
      noneRuns: processRuns(2147483647),
    }));
  `;
  const output = await runAsServer(script);
  assert.deepEqual(JSON.parse(output), {
    proc: true,
    missing: false,
    parentRuns: true,
    noneRuns: false,
  });
});
