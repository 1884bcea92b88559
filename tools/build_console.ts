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
      // The HLS player (hls.js) other pages import.
      join(root, "console/src/hls-player.ts"),
    ],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!bundle.success) throw new Error(`deno bundle failed (exit ${bundle.code})`);
  await nameChunksByContent(outDir);
  for (const file of ["index.html", "console.css"]) {
    await Deno.copyFile(join(root, "console", file), join(outDir, file));
  }
}

/**
 * The bundler's chunk hashes depend on where the checkout is (a clone elsewhere names the graph
 * chunk differently from identical bytes), so the names are made again from the content, with the
 * chunk names inside it left out of the hash.
 */
async function nameChunksByContent(outDir: string): Promise<void> {
  const scripts = new Map<string, string>();
  for await (const entry of Deno.readDir(outDir)) {
    if (entry.isFile && entry.name.endsWith(".js")) {
      scripts.set(entry.name, await Deno.readTextFile(join(outDir, entry.name)));
    }
  }
  const hashed = /^(.+)-[A-Z0-9]{8}\.js$/;
  const chunks = [...scripts.keys()].filter((name) => hashed.test(name));
  const withoutChunkNames = (text: string) =>
    chunks.reduce((result, chunk) => result.replaceAll(chunk, "CHUNK"), text);
  const renamed = new Map<string, string>();
  for (const chunk of chunks) {
    const digest = await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(withoutChunkNames(scripts.get(chunk)!)),
    );
    const hash = [...new Uint8Array(digest).slice(0, 4)]
      .map((byte) => byte.toString(16).padStart(2, "0")).join("").toUpperCase();
    renamed.set(chunk, `${chunk.match(hashed)![1]}-${hash}.js`);
  }
  for (const [name, text] of scripts) {
    const rewritten = [...renamed].reduce(
      (result, [from, to]) => result.replaceAll(from, to),
      text,
    );
    await Deno.remove(join(outDir, name));
    await Deno.writeTextFile(join(outDir, renamed.get(name) ?? name), rewritten);
  }
}

if (import.meta.main) {
  const outDir = Deno.args[0] ?? CONSOLE_DIST;
  await buildConsole(outDir);
  console.log(`Console built in ${outDir}`);
}
