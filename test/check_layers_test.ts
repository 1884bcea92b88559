/**
 * tools/check_layers.ts: the import-layer and cycle checker, on small
 * in-memory trees (path -> source), plus one read of the real tree.
 */
import assert from "node:assert/strict";
import {
  checkLayers,
  extractImports,
  formatProblem,
  placementOf,
  readTree,
} from "../tools/check_layers.ts";

/** checkLayers() on `files`, as the `file:line: message` lines the CLI prints. */
function lines(files: Record<string, string>): string[] {
  return checkLayers(new Map(Object.entries(files))).problems.map(formatProblem);
}

const DOC = "(docs/architecture.md)";

/** One module per layer, each importing the ones below it, as the layout wants. */
const cleanTree: Record<string, string> = {
  "ffi/loader.ts": `import { dlopen } from "node:process";\nexport const open = dlopen;\n`,
  "ffi/glib.ts": `export const glibSymbols = {};\n`,
  "src/gst/native.ts": [
    `import { open } from "../../ffi/loader.ts";`,
    `import { glibSymbols } from "../../ffi/glib.ts";`,
    `export const lib = open(glibSymbols);`,
  ].join("\n"),
  "src/gst/property.ts": `import { lib } from "./native.ts";\nexport const p = lib;\n`,
  "src/domain/errors.ts": `export class ServerError extends Error {}\n`,
  "src/domain/pipelines.ts": [
    `import { ServerError } from "./errors.ts";`,
    `import { p } from "../gst/property.ts";`,
    `import type { Pointer } from "../../ffi/loader.ts";`,
    `export { ServerError, p };`,
  ].join("\n"),
  "src/api/messages.ts": [
    `import { z } from "zod";`,
    `import type * as Client from "../client.ts";`,
    `import { ServerError } from "../domain/errors.ts";`,
    `export type Wire = Client.Reply;`,
    `export * from "../domain/pipelines.ts";`,
  ].join("\n"),
  "src/transport/server.ts": [
    `import http from "node:http";`,
    `import { WebSocketServer } from "ws";`,
    `import { type Wire } from "../api/messages.ts";`,
    `import "../domain/errors.ts";`,
  ].join("\n"),
  "src/config.ts": `import { parse } from "dotenv";\nexport const config = parse("");\n`,
  "src/main.ts": [
    `import { config } from "./config.ts";`,
    `import { startTransport } from "./transport/server.ts";`,
    `import { ServerError } from "./domain/errors.ts";`,
    `const { schemaText } = await import("./api/messages.ts");`,
  ].join("\n"),
  "src/client.ts": [
    `/**`,
    ` * import { GstClient } from "@gst-control/server/client";`,
    ` */`,
    `import { z } from "zod";`,
    `import type { Buffer } from "node:buffer";`,
    `export interface Reply { ok: boolean }`,
  ].join("\n"),
};

Deno.test("a tree that follows the layers passes", () => {
  const report = checkLayers(new Map(Object.entries(cleanTree)));
  assert.deepEqual(report.problems.map(formatProblem), []);
  assert.equal(report.modules, Object.keys(cleanTree).length);
  assert.equal(report.cycles, 0);
  assert.equal(report.upward, 0);
});

Deno.test("the layer table places files as docs/architecture.md says", () => {
  const name = (path: string) => {
    const p = placementOf(path);
    return p.kind === "layer" ? `${p.layer.name}:${p.layer.level}` : p.kind;
  };
  assert.deepEqual(
    [
      "ffi/loader.ts",
      "src/gst/native.ts",
      "src/domain/deep/x.ts",
      "src/api/messages.ts",
      "src/transport/server.ts",
      "src/main.ts",
      "src/config.ts",
      "src/client.ts",
      "src/util/strings.ts",
      "test/helpers.ts",
    ].map(name),
    [
      "ffi:0",
      "gst:1",
      "domain:2",
      "api:3",
      "transport:4",
      "app:5",
      "app:5",
      "client",
      "none",
      "none",
    ],
  );
});

Deno.test("an import cycle is reported once, as the chain of files", () => {
  const files = {
    ...cleanTree,
    "src/domain/a.ts": `import { b } from "./b.ts";\nexport const a = 1;\n`,
    "src/domain/b.ts": `// b\nimport { a } from "./a.ts";\nexport const b = a;\n`,
  };
  assert.deepEqual(lines(files), [
    "src/domain/a.ts:1: import cycle: src/domain/a.ts -> src/domain/b.ts -> src/domain/a.ts",
  ]);
  const report = checkLayers(new Map(Object.entries(files)));
  assert.equal(report.cycles, 1);
  assert.equal(report.upward, 0);
});

Deno.test("every distinct cycle is reported, type-only imports and self-imports included", () => {
  assert.deepEqual(
    lines({
      "src/gst/a.ts": `import type { B } from "./b.ts";\nimport "./c.ts";\n`,
      "src/gst/b.ts": `export type { A } from "./a.ts";\nimport { c } from "./c.ts";\n`,
      "src/gst/c.ts": `\n\nimport { type A } from "./a.ts";\n`,
      "src/gst/d.ts": `import * as self from "./d.ts";\n`,
    }),
    [
      "src/gst/a.ts:1: import cycle: src/gst/a.ts -> src/gst/b.ts -> src/gst/a.ts",
      "src/gst/a.ts:1: import cycle: src/gst/a.ts -> src/gst/b.ts -> src/gst/c.ts -> src/gst/a.ts",
      "src/gst/a.ts:2: import cycle: src/gst/a.ts -> src/gst/c.ts -> src/gst/a.ts",
      "src/gst/d.ts:1: import cycle: src/gst/d.ts -> src/gst/d.ts",
    ],
  );
});

Deno.test("an upward import is reported with file:line and the rule", () => {
  const property = [
    "/**",
    " * Element properties.",
    " */",
    "",
    "import { lib } from './native.ts';",
    "",
    "// the next import runs up the layers",
    'import { ServerError } from "../domain/errors.ts";',
    "export const p = lib;",
  ].join("\n");
  const report = checkLayers(
    new Map(Object.entries({ ...cleanTree, "src/gst/property.ts": property })),
  );
  assert.deepEqual(report.problems.map(formatProblem), [
    "src/gst/property.ts:8: imports src/domain/errors.ts (domain, layer 2) from gst (layer 1): " +
    `imports must run down the layers ${DOC}`,
  ]);
  assert.equal(report.upward, 1);
  assert.equal(report.cycles, 0);
});

Deno.test("type-only upward imports are reported too", () => {
  assert.deepEqual(
    lines({
      ...cleanTree,
      "src/domain/wire.ts": [
        `import type { Wire } from "../api/messages.ts";`,
        `import { type Wire as W2 } from "../api/messages.ts";`,
        `export type { Transport } from "../transport/server.ts";`,
        `export type * from "../transport/server.ts";`,
      ].join("\n"),
      "ffi/types.ts": `import type { Pointer } from "../src/gst/native.ts";\n`,
    }),
    [
      `ffi/types.ts:1: imports src/gst/native.ts (gst, layer 1) from ffi (layer 0): ` +
      `imports must run down the layers ${DOC}`,
      `src/domain/wire.ts:1: imports src/api/messages.ts (api, layer 3) from domain (layer 2): ` +
      `imports must run down the layers ${DOC}`,
      `src/domain/wire.ts:2: imports src/api/messages.ts (api, layer 3) from domain (layer 2): ` +
      `imports must run down the layers ${DOC}`,
      `src/domain/wire.ts:3: imports src/transport/server.ts (transport, layer 4) ` +
      `from domain (layer 2): imports must run down the layers ${DOC}`,
      `src/domain/wire.ts:4: imports src/transport/server.ts (transport, layer 4) ` +
      `from domain (layer 2): imports must run down the layers ${DOC}`,
    ],
  );
});

Deno.test("a multi-line import list is parsed, at the line of its import keyword", () => {
  const source = [
    `import {`, // 1
    `  formatLaunch,`,
    `  LaunchParseError, // a comment with "../api/x.ts" in it`,
    `  type PipelineDescription,`,
    `} from "../api/messages.ts";`,
    ``,
    `export {`, // 7
    `  a,`,
    `  b as c,`,
    `} from "./errors.ts";`,
    `import type {`, // 11
    `  A,`,
    `  B,`,
    `}`,
    `  from`,
    `  "./x.ts";`,
  ].join("\n");
  assert.deepEqual(extractImports(source), [
    { specifier: "../api/messages.ts", line: 1, typeOnly: false, kind: "static" },
    { specifier: "./errors.ts", line: 7, typeOnly: false, kind: "export" },
    { specifier: "./x.ts", line: 11, typeOnly: true, kind: "static" },
  ]);
  assert.deepEqual(lines({ ...cleanTree, "src/domain/launch.ts": source }), [
    `src/domain/launch.ts:1: imports src/api/messages.ts (api, layer 3) from domain (layer 2): ` +
    `imports must run down the layers ${DOC}`,
    `src/domain/launch.ts:11: imports ./x.ts (src/domain/x.ts), which does not exist`,
  ]);
});

Deno.test("a dynamic import with a string literal is seen", () => {
  const source = [
    `export async function load() {`,
    `  const url = import.meta.url;`,
    `  const name = "transport";`,
    `  await import(\`../\${name}/server.ts\`); // not a literal: not followed`,
    `  const { startTransport } = await import(`, // 5
    `    "../transport/server.ts"`,
    `  );`,
    `  return await import('../api/messages.ts', { with: {} });`, // 8
    `}`,
  ].join("\n");
  assert.deepEqual(
    extractImports(source).map((r) => [r.line, r.kind, r.specifier]),
    [
      [5, "dynamic", "../transport/server.ts"],
      [8, "dynamic", "../api/messages.ts"],
    ],
  );
  assert.deepEqual(lines({ ...cleanTree, "src/domain/loader.ts": source }), [
    `src/domain/loader.ts:5: imports src/transport/server.ts (transport, layer 4) ` +
    `from domain (layer 2): imports must run down the layers ${DOC}`,
    `src/domain/loader.ts:8: imports src/api/messages.ts (api, layer 3) from domain (layer 2): ` +
    `imports must run down the layers ${DOC}`,
  ]);
});

Deno.test("imports in comments, strings, templates and regular expressions are not imports", () => {
  const source = [
    `// import { x } from "../api/a.ts";`,
    `/* import "../api/b.ts";`,
    `   export * from "../api/c.ts"; */`,
    `const s = 'import { y } from "../api/d.ts"';`,
    `const t = \`import "../api/e.ts"\`;`,
    `const re = /import "..\\/api\\/f.ts"/;`,
    `const half = 1 / 2; const third = 1 / 3;`,
    `const call = loader.import("../api/g.ts");`,
    `import "./real.ts";`, // 9
  ].join("\n");
  assert.deepEqual(extractImports(source), [
    { specifier: "./real.ts", line: 9, typeOnly: false, kind: "side-effect" },
  ]);
});

Deno.test("type-only means import type, export type, or every named binding marked type", () => {
  const typeOnly = (source: string) => extractImports(source).map((r) => r.typeOnly);
  assert.deepEqual(typeOnly(`import type { A } from "./a.ts";`), [true]);
  assert.deepEqual(typeOnly(`import type * as A from "./a.ts";`), [true]);
  assert.deepEqual(typeOnly(`import type A from "./a.ts";`), [true]);
  assert.deepEqual(typeOnly(`import { type A, type B as C } from "./a.ts";`), [true]);
  assert.deepEqual(typeOnly(`export type { A } from "./a.ts";`), [true]);
  assert.deepEqual(typeOnly(`import { type A, b } from "./a.ts";`), [false]);
  assert.deepEqual(typeOnly(`import D, { type A } from "./a.ts";`), [false]);
  assert.deepEqual(typeOnly(`import type from "./a.ts";`), [false]); // a default named "type"
  assert.deepEqual(typeOnly(`import { type } from "./a.ts";`), [false]);
  assert.deepEqual(typeOnly(`import {} from "./a.ts";`), [false]);
  assert.deepEqual(typeOnly(`export * from "./a.ts";`), [false]);
});

Deno.test("the client may import no local module, and is imported only type-only", () => {
  assert.deepEqual(
    lines({
      ...cleanTree,
      "src/client.ts": [
        `import { z } from "zod";`,
        `import type { lib } from "./gst/native.ts";`,
        `export * from "./config.ts";`,
      ].join("\n"),
      "src/transport/push.ts": [
        `import type { Reply } from "../client.ts";`,
        `import { GstClient } from "../client.ts";`,
      ].join("\n"),
      "src/gst/uses_client.ts": `import { type Reply } from "../client.ts";\n`,
    }),
    [
      `src/client.ts:2: imports src/gst/native.ts: the client (src/client.ts) is published ` +
      `on its own and may import no local module, only npm packages and node: modules ${DOC}`,
      `src/client.ts:3: imports src/config.ts: the client (src/client.ts) is published ` +
      `on its own and may import no local module, only npm packages and node: modules ${DOC}`,
      `src/transport/push.ts:2: imports src/client.ts as a value: the client may be imported ` +
      `only type-only (import type ...) ${DOC}`,
    ],
  );
});

Deno.test("a file in src/ that matches no layer is reported", () => {
  assert.deepEqual(
    lines({
      ...cleanTree,
      "src/util/strings.ts": `export const trim = (s: string) => s.trim();\n`,
      "src/domain/names.ts": `import { trim } from "../util/strings.ts";\n`,
    }),
    [
      `src/util/strings.ts:1: not in any layer; move it into ` +
      `src/gst/, src/domain/, src/api/, src/transport/ or src/ ${DOC}`,
    ],
  );
});

Deno.test("a relative import of a missing module or one outside ffi/ and src/ is reported", () => {
  assert.deepEqual(
    lines({
      ...cleanTree,
      "src/domain/x.ts": [
        `import { helper } from "../../test/helpers.ts";`,
        `import { gone } from "./gone.ts";`,
        `import data from "../../docs/schema.json" with { type: "json" };`,
      ].join("\n"),
    }),
    [
      `src/domain/x.ts:1: imports ../../test/helpers.ts (test/helpers.ts), which is outside ` +
      `ffi/ and src/ and so in no layer ${DOC}`,
      `src/domain/x.ts:2: imports ./gone.ts (src/domain/gone.ts), which does not exist`,
    ],
  );
});

Deno.test("bare specifiers are allowed everywhere, even in the client and ffi", () => {
  assert.deepEqual(
    lines({
      "ffi/a.ts": `import process from "node:process";\nimport { z } from "zod";\n`,
      "src/client.ts": `import WebSocket from "ws";\nimport { z } from "npm:zod@4";\n`,
      "src/gst/b.ts": `import { closest } from "fastest-levenshtein";\n`,
    }),
    [],
  );
});

Deno.test("readTree reads the .ts files under ffi/ and src/ of the repository", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const files = await readTree(root);
  // A file from each folder, so that a walk that stopped at the top level fails.
  for (
    const path of [
      "src/main.ts",
      "src/client.ts",
      "ffi/loader.ts",
      "src/gst/native.ts",
      "src/domain/registry.ts",
      "src/api/handlers.ts",
      "src/transport/body.ts",
    ]
  ) {
    assert.ok(files.has(path), path);
  }
  for (const path of files.keys()) {
    assert.match(path, /^(ffi|src)\/.+\.ts$/);
  }
  assert.equal(
    files.get("src/main.ts"),
    await Deno.readTextFile(new URL("../src/main.ts", import.meta.url)),
  );
});
