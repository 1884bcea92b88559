/**
 * Builds the web console into console/dist: console/src/main.ts and the WHEP player
 * (console/src/whep-player.ts) bundled for the browser (split so that the graph renderer, which
 * is large, loads on first use), with index.html and console.css beside it. The result is checked in, so users build nothing;
 * test/console_bundle_test.ts checks that it matches its sources.
 *
 *     deno task console:build [OUT_DIR]
 */
import { join } from "node:path";

const root = join(import.meta.dirname!, "..");
export const CONSOLE_DIST = join(root, "console/dist");

export async function buildConsole(outDir: string = CONSOLE_DIST): Promise<void> {
  await Deno.remove(outDir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await Deno.mkdir(outDir, { recursive: true });
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=browser",
      "--code-splitting",
      "--minify",
      "--outdir",
      outDir,
      join(root, "console/src/main.ts"),
      // The WHEP player other pages import (and the console's previews).
      join(root, "console/src/whep-player.ts"),
    ],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!bundle.success) throw new Error(`deno bundle failed (exit ${bundle.code})`);
  for (const file of ["index.html", "console.css"]) {
    await Deno.copyFile(join(root, "console", file), join(outDir, file));
  }
}

if (import.meta.main) {
  const outDir = Deno.args[0] ?? CONSOLE_DIST;
  await buildConsole(outDir);
  console.log(`Console built in ${outDir}`);
}
