/**
 * What one request costs over the WebSocket before any GStreamer work (issue 14): the round trip
 * of `getPipelines` (a server with no pipelines, at the defaults) against the floor under it, the
 * round trip of the same text to a bare WebSocket echo server in another Deno process (Deno.serve),
 * both from this process over loopback, by turns in the same run; beside them, gstd's round trip
 * of `list_pipelines` over its TCP protocol (bench/build_gstd.sh builds it; skipped without it).
 * The client subscribes to no
 * events and parses only replies. The server's request limit is lifted (GSTREAMER_MAX_REQUESTS_PER_SECOND=0):
 * at its default of 1000 a second, back-to-back requests are refused with RATE_LIMITED, which
 * answers faster than a request that runs.
 *
 *   deno run --allow-all bench/request_rtt.ts [--requests 2000] [--rounds 4]
 */
import { startServer } from "../test/helpers.ts";
import { findGstd, type Gstd, GstdClient, startGstd } from "./gstd.ts";
import { ms, parseNumberOptions, percentile, stopServer } from "./measure.ts";

const options = parseNumberOptions(Deno.args, { requests: 2000, rounds: 4 });

/** A WebSocket that sends one text at a time and waits for the next reply (not an event). */
async function connect(url: string): Promise<(text: string) => Promise<void>> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`Could not connect to ${url}`));
  });
  const echo = !url.endsWith("/gstreamer");
  let replied: (() => void) | null = null;
  socket.onmessage = (event) => {
    const text = String(event.data);
    if (!text.startsWith('{"type":"result"') && !text.startsWith('{"type":"error"') && !echo) {
      return; // an event
    }
    replied?.();
  };
  return (text) =>
    new Promise<void>((resolve) => {
      replied = resolve;
      socket.send(text);
    });
}

async function timed(request: (text: string) => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < options.requests / options.rounds; i++) {
    const text = JSON.stringify({ type: "getPipelines", requestId: `r${i}`, payload: {} });
    const startedAt = performance.now();
    await request(text);
    times.push(performance.now() - startedAt);
  }
  return times;
}

const server = await startServer({ GSTREAMER_MAX_REQUESTS_PER_SECOND: "0" });
const gstdPath = await findGstd();
const gstd: Gstd | null = gstdPath ? await startGstd(gstdPath) : null;
const echoServer = new Deno.Command(Deno.execPath(), {
  args: [
    "eval",
    `Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) },
      (request) => {
        const { socket, response } = Deno.upgradeWebSocket(request);
        socket.onmessage = (event) => socket.send(event.data);
        return response;
      });`,
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
try {
  const lines = echoServer.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const port = Number((await lines.read()).value?.trim());
  const ours = await connect(server.url);
  await ours(JSON.stringify({ type: "subscribe", requestId: "s", payload: { events: [] } }));
  const echo = await connect(`ws://127.0.0.1:${port}/`);
  const oursTimes: number[] = [];
  const echoTimes: number[] = [];
  const gstdTimes: number[] = [];
  const gstdClient = gstd ? await GstdClient.connect(gstd.port) : null;
  const gstdRequest = async () => void await gstdClient!.command("list_pipelines");
  // Warm-up, then by turns, so that the machine's slow moments fall on each.
  await timed(ours);
  await timed(echo);
  if (gstdClient) await timed(gstdRequest);
  for (let round = 0; round < options.rounds; round++) {
    oursTimes.push(...await timed(ours));
    echoTimes.push(...await timed(echo));
    if (gstdClient) gstdTimes.push(...await timed(gstdRequest));
  }
  gstdClient?.close();
  const line = (label: string, times: number[]) =>
    `  ${label.padEnd(40)} p50 ${ms(percentile(times, 50))}, p99 ${ms(percentile(times, 99))}`;
  console.log(`request round trip, ${oursTimes.length} each, over loopback:`);
  console.log(line("ours, getPipelines (default settings)", oursTimes));
  console.log(line("bare Deno WebSocket echo (the floor)", echoTimes));
  if (gstd) console.log(line(`gstd ${gstd.version}, list_pipelines (TCP)`, gstdTimes));
  else console.log("  gstd: not installed (bench/build_gstd.sh builds it)");
  console.log(
    `  ours / echo at p50: ${(percentile(oursTimes, 50) / percentile(echoTimes, 50)).toFixed(2)}x` +
      ` (the server's own work per request: ${
        ms(percentile(oursTimes, 50) - percentile(echoTimes, 50))
      })`,
  );
  if (gstd) {
    console.log(
      `  ours / gstd at p50: ${
        (percentile(oursTimes, 50) / percentile(gstdTimes, 50)).toFixed(2)
      }x`,
    );
  }
  lines.releaseLock();
} finally {
  echoServer.kill();
  await echoServer.status;
  await stopServer(server);
  await gstd?.stop();
}
Deno.exit(0);
