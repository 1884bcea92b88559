/**
 * Import-layer checker: every local import must run down the layers of
 * docs/architecture.md, and no local modules may import each other in a cycle.
 *
 *     deno run --allow-read tools/check_layers.ts
 *
 * Run from the repository root. It reads every `.ts` file under `ffi/` and
 * `src/`, finds its local imports (static `import`, `import type`,
 * `export ... from`, side-effect `import "x"` and `import("x")` with a string
 * literal) and prints one `file:line: message` line per problem, exiting 1;
 * with none it prints `layers ok: ...` and exits 0. Bare specifiers (npm
 * packages, `node:` modules) are allowed everywhere.
 *
 * The pure part, checkLayers(), works on an in-memory map of path -> source,
 * so it can be tested without files.
 */

/** A layer: a file may import only from its own layer or lower ones. */
export interface Layer {
  /** Short name used in messages. */
  name: string;
  /** Lower numbers are lower layers. */
  level: number;
  /** Repository-relative globs: `**` is any path, `*` any name within one folder. */
  globs: readonly string[];
}

/**
 * The layers, lowest first (docs/architecture.md). The first layer with a
 * matching glob wins; CLIENT is checked before all of them.
 */
export const LAYERS: readonly Layer[] = [
  { level: 0, name: "ffi", globs: ["ffi/**"] },
  { level: 1, name: "gst", globs: ["src/gst/**"] }, // the GStreamer layer
  { level: 2, name: "domain", globs: ["src/domain/**"] }, // the pipeline domain
  { level: 3, name: "api", globs: ["src/api/**"] }, // wire shapes, error codes, dispatch
  { level: 4, name: "transport", globs: ["src/transport/**"] }, // HTTP, WebSocket, push route
  { level: 5, name: "app", globs: ["src/*"] }, // src/main.ts, src/config.ts, ...
];

/**
 * The published typed client: it may import no local module at all, and any
 * module may import it, type-only.
 */
export const CLIENT = "src/client.ts";

/** The folders whose `.ts` files the CLI checks. */
export const ROOTS: readonly string[] = ["ffi", "src"];

/** Named at the end of every message. */
const DOC = "docs/architecture.md";

/** Cycle enumeration stops after this many cycles (their number can grow exponentially). */
const CYCLE_LIMIT = 200;

/** One local or bare import found in a source file. */
export interface ImportRef {
  specifier: string;
  /** 1-based line of the `import` / `export` keyword. */
  line: number;
  /** `import type`, `export type`, or every named binding marked `type` (erased at run time). */
  typeOnly: boolean;
  kind: "static" | "export" | "side-effect" | "dynamic";
}

export interface Problem {
  file: string;
  line: number;
  kind: "cycle" | "upward" | "client" | "unlayered" | "unresolved";
  message: string;
}

export interface Report {
  /** How many modules were checked. */
  modules: number;
  /** How many distinct import cycles were found. */
  cycles: number;
  /** How many import statements run up the layers. */
  upward: number;
  /** Sorted by file, then line. */
  problems: Problem[];
}

/** `file:line: message` */
export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}

// ---------------------------------------------------------------------------
// Layers

export type Placement =
  | { kind: "client" }
  | { kind: "layer"; layer: Layer }
  | { kind: "none" };

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") {
      re += "[^/]*";
    } else {
      re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${re}$`);
}

const layerPatterns = LAYERS.map((layer) => ({
  layer,
  patterns: layer.globs.map(globToRegExp),
}));

/** Which layer a repository-relative path is in. */
export function placementOf(path: string): Placement {
  const p = normalizePath(path);
  if (p === CLIENT) return { kind: "client" };
  for (const { layer, patterns } of layerPatterns) {
    if (patterns.some((re) => re.test(p))) return { kind: "layer", layer };
  }
  return { kind: "none" };
}

/** "src/gst/, src/domain/, ... or src/": where a file under `root` may go. */
function placesUnder(root: string): string {
  const places = LAYERS.flatMap((l) => l.globs)
    .filter((g) => g.startsWith(`${root}/`))
    .map((g) => g.replace(/\*+$/, ""));
  const all = places.length > 0
    ? places
    : LAYERS.flatMap((l) => l.globs).map((g) => g.replace(/\*+$/, ""));
  return all.length === 1 ? all[0] : `${all.slice(0, -1).join(", ")} or ${all[all.length - 1]}`;
}

// ---------------------------------------------------------------------------
// Paths (repository-relative, forward slashes)

/** Collapses `.`, `..` and repeated slashes; a leading `..` is kept. */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const part of path.replaceAll("\\", "/").split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}

function isRelative(specifier: string): boolean {
  return specifier.startsWith("./") || specifier.startsWith("../");
}

/** The repository-relative path a relative specifier in `importer` points at. */
export function resolveSpecifier(importer: string, specifier: string): string {
  const dir = normalizePath(importer).split("/").slice(0, -1).join("/");
  return normalizePath(`${dir}/${specifier.replace(/[?#].*$/, "")}`);
}

/** Only code counts as a module: JSON, Wasm, text and such imported as data are leaves. */
const MODULE_EXTENSION = /\.(ts|tsx|mts|cts|js|jsx|mjs|cjs)$/;

// ---------------------------------------------------------------------------
// Tokens: just enough of a TypeScript lexer to skip comments, strings,
// template literals and regular expressions, so that an `import` in any of
// them is not taken for a real one.

interface Token {
  kind: "ident" | "punct" | "string" | "template" | "regex";
  value: string;
  line: number;
  /** For templates: true when there is no `${...}` in it. */
  plain?: boolean;
}

/** After these keywords a `/` starts a regular expression, not a division. */
const REGEX_AFTER = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

const IDENT_CHAR = /[A-Za-z0-9_$#\u0080-\uffff]/;

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  /** One counter of open `{` per template substitution we are in. */
  const substitutions: number[] = [];
  const n = src.length;
  let i = 0;
  let line = 1;

  /** Scans template text from `j` (just after `` ` `` or `}`); returns the index after it. */
  const scanTemplate = (j: number, opened: boolean): number => {
    const startLine = line;
    let value = "";
    while (j < n) {
      const c = src[j];
      if (c === "\\") {
        if (src[j + 1] === "\n") line++;
        value += src[j + 1] ?? "";
        j += 2;
      } else if (c === "`") {
        tokens.push({ kind: "template", value, line: startLine, plain: opened });
        return j + 1;
      } else if (c === "$" && src[j + 1] === "{") {
        tokens.push({ kind: "template", value, line: startLine, plain: false });
        tokens.push({ kind: "punct", value: "${", line });
        substitutions.push(0);
        return j + 2;
      } else {
        if (c === "\n") line++;
        value += c;
        j++;
      }
    }
    tokens.push({ kind: "template", value, line: startLine, plain: false });
    return n;
  };

  const regexAllowed = (): boolean => {
    const prev = tokens[tokens.length - 1];
    if (prev === undefined) return true;
    if (prev.kind === "punct") return prev.value !== ")" && prev.value !== "]";
    if (prev.kind === "ident") return REGEX_AFTER.has(prev.value);
    return false;
  };

  while (i < n) {
    const c = src[i];
    if (c === "\n") {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === "/" && src[i + 1] === "/") {
      while (i < n && src[i] !== "\n") i++;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let j = i; j < stop; j++) if (src[j] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let value = "";
      const startLine = line;
      while (j < n && src[j] !== c && src[j] !== "\n") {
        if (src[j] === "\\") {
          if (src[j + 1] === "\n") line++;
          value += src[j + 1] ?? "";
          j += 2;
        } else {
          value += src[j];
          j++;
        }
      }
      tokens.push({ kind: "string", value, line: startLine });
      i = src[j] === c ? j + 1 : j;
    } else if (c === "`") {
      i = scanTemplate(i + 1, true);
    } else if (c === "/" && regexAllowed()) {
      // A regular expression ends on its line; if it does not, it was a division.
      let j = i + 1;
      let inClass = false;
      let closed = false;
      while (j < n && src[j] !== "\n") {
        const d = src[j];
        if (d === "\\") {
          j += 2;
          continue;
        }
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        else if (d === "/" && !inClass) {
          closed = true;
          break;
        }
        j++;
      }
      if (closed) {
        j++;
        while (j < n && /[A-Za-z]/.test(src[j])) j++;
        tokens.push({ kind: "regex", value: src.slice(i, j), line });
        i = j;
      } else {
        tokens.push({ kind: "punct", value: "/", line });
        i++;
      }
    } else if (IDENT_CHAR.test(c)) {
      let j = i + 1;
      while (j < n && IDENT_CHAR.test(src[j])) j++;
      tokens.push({ kind: "ident", value: src.slice(i, j), line });
      i = j;
    } else if (c === "{") {
      if (substitutions.length > 0) substitutions[substitutions.length - 1]++;
      tokens.push({ kind: "punct", value: c, line });
      i++;
    } else if (c === "}") {
      if (substitutions.length > 0 && substitutions[substitutions.length - 1] === 0) {
        substitutions.pop();
        i = scanTemplate(i + 1, false);
      } else {
        if (substitutions.length > 0) substitutions[substitutions.length - 1]--;
        tokens.push({ kind: "punct", value: c, line });
        i++;
      }
    } else {
      tokens.push({ kind: "punct", value: c, line });
      i++;
    }
  }
  return tokens;
}

// ---------------------------------------------------------------------------
// Imports

function isIdent(t: Token | undefined, value?: string): boolean {
  return t !== undefined && t.kind === "ident" && (value === undefined || t.value === value);
}

function isPunct(t: Token | undefined, value: string): boolean {
  return t !== undefined && t.kind === "punct" && t.value === value;
}

function isSpecifier(t: Token | undefined): t is Token {
  return t !== undefined && (t.kind === "string" || (t.kind === "template" && t.plain === true));
}

/**
 * `{ type A }`, `{ type A as B }` and `{ type as }` are type-only;
 * `{ type }` and `{ type as B }` import a binding named `type`.
 */
function isTypeSpecifier(spec: Token[]): boolean {
  return isIdent(spec[0], "type") && spec.length !== 1 && spec.length !== 3;
}

/**
 * The clause of `import ... from "x"` / `export ... from "x"` starting at
 * tokens[start] (just after the keyword), or null when it is not one.
 */
function scanClause(
  tokens: Token[],
  start: number,
): { specifier: string; typeOnly: boolean; end: number } | null {
  let j = start;
  let clauseType = false;
  if (isIdent(tokens[j], "type")) {
    const next = tokens[j + 1];
    const defaultNamedType = (isIdent(next, "from") && isSpecifier(tokens[j + 2])) ||
      isPunct(next, ",");
    if (!defaultNamedType) {
      clauseType = true;
      j++;
    }
  }
  let depth = 0;
  let bindingOutsideBraces = false;
  const specs: Token[][] = [];
  let current: Token[] = [];
  for (; j < tokens.length; j++) {
    const t = tokens[j];
    if (depth === 0 && isIdent(t, "from") && isSpecifier(tokens[j + 1])) {
      const typeOnly = clauseType ||
        (!bindingOutsideBraces && specs.length > 0 && specs.every(isTypeSpecifier));
      return { specifier: tokens[j + 1].value, typeOnly, end: j + 1 };
    }
    if (isPunct(t, "{")) {
      depth++;
      current = [];
    } else if (isPunct(t, "}")) {
      if (depth === 0) return null;
      depth--;
      if (current.length > 0) specs.push(current);
      current = [];
    } else if (isPunct(t, ",")) {
      if (depth > 0 && current.length > 0) specs.push(current);
      current = [];
    } else if (depth === 0 && (t.kind === "ident" || isPunct(t, "*"))) {
      bindingOutsideBraces = true;
    } else if (depth > 0 && (t.kind === "ident" || t.kind === "string")) {
      current.push(t);
    } else {
      return null;
    }
  }
  return null;
}

/** Every import and re-export in `source`, local or bare, in source order. */
export function extractImports(source: string): ImportRef[] {
  const tokens = tokenize(source);
  const refs: ImportRef[] = [];
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind !== "ident" || (t.value !== "import" && t.value !== "export")) continue;
    if (isPunct(tokens[k - 1], ".")) continue; // obj.import(...), obj?.export
    const next = tokens[k + 1];
    if (t.value === "import") {
      if (isPunct(next, "(")) {
        const arg = tokens[k + 2];
        if (isSpecifier(arg) && (isPunct(tokens[k + 3], ")") || isPunct(tokens[k + 3], ","))) {
          refs.push({ specifier: arg.value, line: t.line, typeOnly: false, kind: "dynamic" });
          k += 2;
        }
      } else if (isSpecifier(next)) {
        refs.push({ specifier: next.value, line: t.line, typeOnly: false, kind: "side-effect" });
        k += 1;
      } else if (!isPunct(next, ".")) { // import.meta
        const clause = scanClause(tokens, k + 1);
        if (clause !== null) {
          refs.push({
            specifier: clause.specifier,
            line: t.line,
            typeOnly: clause.typeOnly,
            kind: "static",
          });
          k = clause.end;
        }
      }
    } else {
      const reexport = isPunct(next, "*") || isPunct(next, "{") ||
        (isIdent(next, "type") && (isPunct(tokens[k + 2], "*") || isPunct(tokens[k + 2], "{")));
      if (!reexport) continue;
      const clause = scanClause(tokens, k + 1);
      if (clause !== null) {
        refs.push({
          specifier: clause.specifier,
          line: t.line,
          typeOnly: clause.typeOnly,
          kind: "export",
        });
        k = clause.end;
      }
    }
  }
  return refs;
}

// ---------------------------------------------------------------------------
// Cycles

/**
 * The elementary cycles of a graph (Johnson's algorithm), each once, as
 * [a, b, ..., a] starting from its smallest node in `nodes` order.
 */
function elementaryCycles(
  nodes: string[],
  successors: Map<string, string[]>,
  limit: number,
): { cycles: string[][]; truncated: boolean } {
  const index = new Map(nodes.map((node, i) => [node, i]));
  const adj = nodes.map((node) =>
    [...new Set((successors.get(node) ?? []).map((m) => index.get(m)!))].sort((a, b) => a - b)
  );
  const radj: number[][] = nodes.map(() => []);
  adj.forEach((ws, v) => ws.forEach((w) => radj[w].push(v)));

  const cycles: string[][] = [];
  let truncated = false;

  const reach = (s: number, edges: number[][]): Set<number> => {
    const seen = new Set([s]);
    const todo = [s];
    while (todo.length > 0) {
      for (const w of edges[todo.pop()!]) {
        if (w >= s && !seen.has(w)) {
          seen.add(w);
          todo.push(w);
        }
      }
    }
    return seen;
  };

  for (let s = 0; s < nodes.length && !truncated; s++) {
    // The strongly connected component of s among the nodes from s on.
    const forward = reach(s, adj);
    const component = new Set([...reach(s, radj)].filter((v) => forward.has(v)));
    if (component.size === 1 && !adj[s].includes(s)) continue;

    const blocked = new Set<number>();
    const blockedBy = new Map<number, Set<number>>();
    const stack: number[] = [];
    const unblock = (v: number): void => {
      blocked.delete(v);
      const waiting = blockedBy.get(v);
      if (waiting === undefined) return;
      blockedBy.delete(v);
      for (const w of waiting) if (blocked.has(w)) unblock(w);
    };
    const circuit = (v: number): boolean => {
      let found = false;
      stack.push(v);
      blocked.add(v);
      for (const w of adj[v]) {
        if (truncated) break;
        if (!component.has(w)) continue;
        if (w === s) {
          cycles.push([...stack, s].map((x) => nodes[x]));
          found = true;
          if (cycles.length >= limit) truncated = true;
        } else if (!blocked.has(w) && circuit(w)) {
          found = true;
        }
      }
      if (found) unblock(v);
      else {
        for (const w of adj[v]) {
          if (!component.has(w)) continue;
          if (!blockedBy.has(w)) blockedBy.set(w, new Set());
          blockedBy.get(w)!.add(v);
        }
      }
      stack.pop();
      return found;
    };
    circuit(s);
  }
  return { cycles, truncated };
}

// ---------------------------------------------------------------------------
// The check

/**
 * Checks the import layers and cycles of `files` (repository-relative path ->
 * source text). Relative imports are resolved against the paths of `files`;
 * bare specifiers are not checked.
 */
export function checkLayers(files: ReadonlyMap<string, string>): Report {
  const sources = new Map<string, string>();
  for (const [path, source] of files) sources.set(normalizePath(path), source);
  const modules = [...sources.keys()].sort();
  const problems: Problem[] = [];
  /** importer -> target -> line of the first import of it. */
  const edges = new Map<string, Map<string, number>>();
  let upward = 0;

  for (const file of modules) {
    const from = placementOf(file);
    if (from.kind === "none") {
      const root = file.includes("/") ? file.split("/")[0] : "";
      problems.push({
        file,
        line: 1,
        kind: "unlayered",
        message: `not in any layer; move it into ${placesUnder(root)} (${DOC})`,
      });
    }
    const targets = new Map<string, number>();
    edges.set(file, targets);

    for (const ref of extractImports(sources.get(file)!)) {
      if (!isRelative(ref.specifier)) continue; // npm packages, node: modules
      const target = resolveSpecifier(file, ref.specifier);
      if (!MODULE_EXTENSION.test(target)) continue; // data, not code
      const problem = (kind: Problem["kind"], message: string) =>
        problems.push({ file, line: ref.line, kind, message });

      if (!sources.has(target)) {
        problem(
          "unresolved",
          ROOTS.some((root) => target.startsWith(`${root}/`))
            ? `imports ${ref.specifier} (${target}), which does not exist`
            : `imports ${ref.specifier} (${target}), which is outside ${
              ROOTS.map((r) => `${r}/`).join(" and ")
            } and so in no layer (${DOC})`,
        );
        continue;
      }
      if (!targets.has(target)) targets.set(target, ref.line);

      const to = placementOf(target);
      if (from.kind === "client") {
        problem(
          "client",
          `imports ${target}: the client (${CLIENT}) is published on its own and may import ` +
            `no local module, only npm packages and node: modules (${DOC})`,
        );
      } else if (to.kind === "client") {
        if (!ref.typeOnly) {
          problem(
            "client",
            `imports ${CLIENT} as a value: the client may be imported only type-only ` +
              `(import type ...) (${DOC})`,
          );
        }
      } else if (
        from.kind === "layer" && to.kind === "layer" && to.layer.level > from.layer.level
      ) {
        upward++;
        problem(
          "upward",
          `imports ${target} (${to.layer.name}, layer ${to.layer.level}) ` +
            `from ${from.layer.name} (layer ${from.layer.level}): ` +
            `imports must run down the layers (${DOC})`,
        );
      }
    }
  }

  const successors = new Map([...edges].map(([f, ts]) => [f, [...ts.keys()]]));
  const { cycles, truncated } = elementaryCycles(modules, successors, CYCLE_LIMIT);
  for (const cycle of cycles) {
    problems.push({
      file: cycle[0],
      line: edges.get(cycle[0])!.get(cycle[1])!,
      kind: "cycle",
      message: `import cycle: ${cycle.join(" -> ")}`,
    });
  }
  if (truncated) {
    const last = cycles[cycles.length - 1];
    problems.push({
      file: last[0],
      line: edges.get(last[0])!.get(last[1])!,
      kind: "cycle",
      message: `more import cycles not listed: stopped after ${CYCLE_LIMIT}; break these first`,
    });
  }

  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  problems.sort((a, b) => order(a.file, b.file) || a.line - b.line || order(a.message, b.message));
  return { modules: modules.length, cycles: cycles.length, upward, problems };
}

// ---------------------------------------------------------------------------
// CLI

/** Every `.ts` file under `roots` of `dir`, keyed by its path relative to `dir`. */
export async function readTree(
  dir = ".",
  roots: readonly string[] = ROOTS,
): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(`${dir}/${rel}`));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        files.set(path, await Deno.readTextFile(`${dir}/${path}`));
      }
    }
  };
  for (const root of roots) await walk(root);
  return files;
}

if (import.meta.main) {
  const report = checkLayers(await readTree("."));
  if (report.problems.length === 0) {
    console.log(
      `layers ok: ${report.modules} modules, ${report.cycles} cycles, ` +
        `${report.upward} upward imports`,
    );
  } else {
    for (const problem of report.problems) console.error(formatProblem(problem));
    Deno.exitCode = 1;
  }
}
