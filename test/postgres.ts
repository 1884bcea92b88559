/**
 * A PostgreSQL cluster of a test's own, from Debian's `postgresql` package: initdb in a temporary
 * folder and pg_ctl on a free loopback port. PostgreSQL refuses to run as root, so as root both run
 * as `nobody` (runuser), who owns the folder.
 */
import { join } from "node:path";
import { run } from "./helpers.ts";

export interface Postgres {
  /** postgres://gst@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  start(): Promise<void>;
  /** "fast" disconnects clients and shuts down cleanly; "immediate" is a crash. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Runs SQL with psql; its rows, one per line, fields split by '|'. */
  query(sql: string): Promise<string>;
  /** Stops it and removes its folder. */
  remove(): Promise<void>;
}

/** The folder of initdb and pg_ctl: Debian keeps them out of PATH, under the major version. */
async function binDir(): Promise<string> {
  const versions: string[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) versions.push(entry.name);
  } catch {
    // not installed
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (await Deno.stat(join(dir, "initdb")).then(() => true, () => false)) return dir;
  }
  throw new Error(
    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql",
  );
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

export async function startPostgres(): Promise<Postgres> {
  const bin = await binDir();
  const folder = await Deno.makeTempDir({ prefix: "pg_test_" });
  const data = join(folder, "data");
  const asRoot = Deno.uid() === 0;
  if (asRoot) {
    const nobody = await run("id", ["-u", "nobody"]);
    const gid = await run("id", ["-g", "nobody"]);
    await Deno.chown(folder, Number(nobody.stdout), Number(gid.stdout));
  }
  const pg = async (command: string, args: string[]) => {
    const [program, ...rest] = asRoot
      ? ["runuser", "-u", "nobody", "--", join(bin, command), ...args]
      : [join(bin, command), ...args];
    const result = await run(program, rest);
    if (result.code !== 0) {
      const log = await Deno.readTextFile(join(folder, "log")).catch(() => "");
      throw new Error(`${command} ${args.join(" ")}: ${result.stderr}${result.stdout}\n${log}`);
    }
    return result.stdout;
  };
  await pg("initdb", ["-D", data, "-U", "gst", "-A", "trust", "-E", "UTF8", "--no-sync"]);
  const port = freePort();
  const options = `-p ${port} -k ${folder} -c listen_addresses=127.0.0.1`;
  const start = () =>
    pg("pg_ctl", ["-D", data, "-l", join(folder, "log"), "-o", options, "-w", "start"]);
  await start();
  let running = true;
  return {
    url: `postgres://gst@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await start();
      running = true;
    },
    async stop(mode = "fast") {
      await pg("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"]);
      running = false;
    },
    async query(sql: string) {
      const result = await run("psql", [
        ...["-h", "127.0.0.1", "-p", String(port), "-U", "gst", "-d", "postgres", "-At", "-c", sql],
      ]);
      if (result.code !== 0) throw new Error(`psql: ${result.stderr}`);
      return result.stdout.trim();
    },
    async remove() {
      if (running) {
        await pg("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => {});
      }
      await Deno.remove(folder, { recursive: true });
    },
  };
}
