/**
 * What more clients cost a server whose clients all take stats (issue 14, steady state): our
 * server at the defaults with --live live pipelines, first with one client taking stats, then with
 * --clients clients that joined --spacing ms apart (a console, dashboards and scripts come at any
 * time). Each window counts the stats rounds the clients were sent (distinct timestamps) and the
 * server's CPU, split by thread group; the ratios are many clients against one, in the same run.
 * Until 2026-12-05 each client counted its interval from when it joined, so each had rounds of
 * its own.
 *
 *   deno run --allow-all bench/stats_clients.ts [--live 200] [--clients 10] [--spacing 97]
 *     [--window 10] [--settle 3]
 */
import { startServer, TestClient } from "../test/helpers.ts";
import {
  cpuSplit,
  expectOk,
  measure,
  parseNumberOptions,
  serverProcessId,
  sleep,
  startLivePipelines,
  stopServer,
  type Usage,
} from "./measure.ts";

const options = parseNumberOptions(Deno.args, {
  live: 200,
  clients: 10,
  spacing: 97,
  window: 10,
  settle: 3,
});

/** Stats rounds the clients received (one timestamp a round) and the server's usage meanwhile. */
async function window(
  pid: number,
  clients: TestClient[],
): Promise<{ rounds: number; usage: Usage }> {
  await sleep(options.settle * 1000);
  for (const client of clients) client.received.length = 0;
  const usage = await measure(pid, options.window);
  const timestamps = clients.flatMap((client) =>
    client.received.filter((m) => m.type === "stats").map((m) =>
      (m as { payload: { timestamp: string } }).payload.timestamp
    )
  );
  return { rounds: new Set(timestamps).size, usage };
}

/** CPU of the server's own threads: all but GStreamer's streaming threads, which cost the same. */
const ownThreads = (usage: Usage) => usage.cpuByGroup.main + usage.cpuByGroup.other;

const server = await startServer({
  GSTREAMER_DATA_DIR: Deno.makeTempDirSync(),
  GSTREAMER_MAX_PIPELINES: String(options.live + 10),
});
try {
  const pid = serverProcessId(server);
  const control = await TestClient.connect(server.url);
  expectOk(await control.request("subscribe", { events: [] }), "subscribe");
  console.log(`Starting ${options.live} live pipelines ...`);
  await startLivePipelines(control, options.live);
  const clients = [await TestClient.connect(server.url)];
  const one = await window(pid, clients);
  for (let i = 1; i < options.clients; i++) {
    await sleep(options.spacing);
    clients.push(await TestClient.connect(server.url));
  }
  const many = await window(pid, clients);
  const line = (label: string, { rounds, usage }: { rounds: number; usage: Usage }) =>
    `  ${label.padEnd(44)} ${rounds} stats rounds in ${options.window} s; CPU ${
      usage.cpuPercent.toFixed(1)
    }% of one core (${cpuSplit(usage)})`;
  console.log(
    [
      `=== stats with more clients: ${options.live} live pipelines ===`,
      line("one client", one),
      line(`${options.clients} clients, joined ${options.spacing} ms apart`, many),
      `  ${options.clients} clients vs one: rounds ${(many.rounds / one.rounds).toFixed(2)}x, ` +
      `CPU of the main and other threads (not streaming) ${
        (ownThreads(many.usage) / ownThreads(one.usage)).toFixed(2)
      }x, whole process ${(many.usage.cpuPercent / one.usage.cpuPercent).toFixed(2)}x`,
    ].join("\n"),
  );
  for (const client of [...clients, control]) await client.close();
} finally {
  await stopServer(server);
}
