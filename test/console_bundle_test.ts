/**
 * console/dist is checked in so that users build nothing; this checks that it is what
 * `deno task console:build` makes from console/src now (a stale bundle fails here).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildConsole, CONSOLE_DIST } from "../tools/build_console.ts";

async function files(directory: string): Promise<Map<string, Uint8Array>> {
  const found = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(directory)) {
    if (entry.isFile) found.set(entry.name, await Deno.readFile(join(directory, entry.name)));
  }
  return found;
}

Deno.test("console/dist is the bundle of console/src (run 'deno task console:build' after a change)", async () => {
  const fresh = await Deno.makeTempDir();
  try {
    await buildConsole(fresh);
    const built = await files(fresh);
    const committed = await files(CONSOLE_DIST);
    assert.deepEqual([...committed.keys()].sort(), [...built.keys()].sort());
    for (const [name, bytes] of built) {
      assert.ok(
        bytes.length === committed.get(name)!.length &&
          bytes.every((byte, i) => byte === committed.get(name)![i]),
        `console/dist/${name} differs from a fresh build: run 'deno task console:build'`,
      );
    }
  } finally {
    await Deno.remove(fresh, { recursive: true });
  }
});
