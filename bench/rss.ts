/**
 * Resident memory of our server (issue 14): idle, and holding --live live pipelines, for each
 * runtime setting named on the command line beside the defaults, in one run. A setting is a V8
 * flag list (`--v8=--max-semi-space-size=1`) or an environment variable (`MALLOC_ARENA_MAX=2`).
 * The first row is `deno task start`'s own flags.
 *
 *   deno run --allow-all bench/rss.ts [--live 200] [--settle 8] [SETTING ...]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import { parseNumberOptions, rssParts, sleep, startLivePipelines, stopServer } from "./measure.ts";

const DEFAULT_V8 = "--max-semi-space-size=4";
const settings = Deno.args.filter((arg) =>
  !/^--(live|settle)(=|$)/.test(arg) && !/^\d+$/.test(arg)
);
const options = parseNumberOptions(
  Deno.args.filter((arg) => !settings.includes(arg)),
  { live: 200, settle: 8 },
);

/** VmRSS, and the part of it that is mapped files (the executable and libraries), in MiB. */
function rss(pid: number): { total: number; files: number } {
  const { rssKib, fileKib } = rssParts(pid);
  return { total: rssKib / 1024, files: fileKib / 1024 };
}

async function measure(setting: string | null): Promise<string> {
  const v8 = setting?.startsWith("--v8=") ? setting.slice("--v8=".length) : DEFAULT_V8;
  const env: Record<string, string> = {};
  if (setting !== null && !setting.startsWith("--v8=")) {
    const [name, value] = setting.split("=");
    env[name] = value ?? "";
  }
  const dataDir = await Deno.makeTempDir({ prefix: "rss-bench-" });
  const server = await startServer(
    { ...env, GSTREAMER_DATA_DIR: dataDir, GSTREAMER_MAX_PIPELINES: String(options.live + 10) },
    20000,
    { command: Deno.execPath(), args: ["run", `--v8-flags=${v8}`, "-A", "src/main.ts"] },
  );
  try {
    const client = await TestClient.connect(server.url);
    await sleep(1500);
    const idle = rss(server.pid);
    await startLivePipelines(client, options.live);
    await sleep(options.settle * 1000);
    const held = rss(server.pid);
    client.received.length = 0;
    await client.close();
    return `  ${(setting ?? `defaults (${DEFAULT_V8})`).padEnd(44)} idle ${
      idle.total.toFixed(1)
    } MiB ` +
      `(files ${idle.files.toFixed(1)}), ${options.live} live pipelines ${
        held.total.toFixed(1)
      } MiB`;
  } finally {
    await stopServer(server);
    await Deno.remove(dataDir, { recursive: true });
  }
}

console.log("server RSS (VmRSS; files: RssFile, the executable's and libraries' pages):");
for (const setting of [null, ...settings]) console.log(await measure(setting));
