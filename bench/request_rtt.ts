/**
 * What one request costs over the WebSocket before any GStreamer work (issue 14): the round trips
 * of `getPipelines` and of `getElementProperty` (a server holding one playing pipeline, at the
 * defaults but for the request limit, below, and the tests' `:memory:` store, which neither
 * request touches) against the floor under them, the round trip of the same text to a bare WebSocket echo
 * server in another Deno process (Deno.serve), all from this process over loopback, by turns in the
 * same run; beside them, gstd's round trips of `list_pipelines` and `element_get` over its TCP
 * protocol, on the same pipeline (bench/build_gstd.sh builds it; skipped without it).
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
async function connect(url: string): Promise<(text: string) => Promise<string>> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`Could not connect to ${url}`));
  });
  const echo = !url.endsWith("/gstreamer");
  let replied: ((text: string) => void) | null = null;
  socket.onmessage = (event) => {
    const text = String(event.data);
    if (!text.startsWith('{"type":"result"') && !text.startsWith('{"type":"error"') && !echo) {
      return; // an event
    }
    replied?.(text);
  };
  return (text) =>
    new Promise<string>((resolve) => {
      replied = resolve;
      socket.send(text);
    });
}

/** Our request as the client sends it, and the same question asked of gstd. */
const requests = [
  { ours: "getPipelines", payload: {}, gstd: "list_pipelines" },
  {
    ours: "getElementProperty",
    payload: { id: "probe", element: "sink", property: "sync" },
    gstd: "element_get probe sink sync",
  },
];
type Asked = (typeof requests)[number];

/** One round's round trips of `asked`: `request` sends our text (or the echo's), gstd's sends its own. */
async function timed(
  request: (text: string) => Promise<unknown>,
  asked: Asked,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < options.requests / options.rounds; i++) {
    const text = JSON.stringify({ type: asked.ours, requestId: `r${i}`, payload: asked.payload });
    const startedAt = performance.now();
    await request(text);
    times.push(performance.now() - startedAt);
  }
  return times;
}

const server = await startServer({ GSTREAMER_MAX_REQUESTS_PER_SECOND: "0" });
let gstd: Gstd | null = null;
let echoServer: Deno.ChildProcess | null = null;
try {
  const gstdPath = await findGstd();
  gstd = gstdPath ? await startGstd(gstdPath) : null;
  echoServer = new Deno.Command(Deno.execPath(), {
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
  const lines = echoServer.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const port = Number((await lines.read()).value?.trim());
  const ours = await connect(server.url);
  const subscribed = JSON.parse(
    await ours(JSON.stringify({ type: "subscribe", requestId: "s", payload: { events: [] } })),
  );
  if (!subscribed.ok) throw new Error(`subscribe: ${JSON.stringify(subscribed.error)}`);
  const probe = "videotestsrc is-live=true ! fakesink name=sink";
  for (const type of ["createPipeline", "startPipeline"]) {
    const reply = JSON.parse(
      await ours(
        JSON.stringify({ type, requestId: type, payload: { id: "probe", pipeline: probe } }),
      ),
    );
    if (!reply.ok) throw new Error(`${type}: ${JSON.stringify(reply.error)}`);
  }
  const echo = await connect(`ws://127.0.0.1:${port}/`);
  const gstdClient = gstd ? await GstdClient.connect(gstd.port) : null;
  if (gstdClient) {
    await gstdClient.command(`pipeline_create probe ${probe}`);
    await gstdClient.command("pipeline_play probe");
  }
  const line = (label: string, times: number[]) =>
    `  ${label.padEnd(48)} p50 ${ms(percentile(times, 50))}, p99 ${ms(percentile(times, 99))}`;
  const ratio = (ours: number[], base: number[]) =>
    `${(percentile(ours, 50) / percentile(base, 50)).toFixed(2)}x`;
  console.log(
    `request round trips, ${options.requests} each, over loopback, by turns in ${options.rounds} ` +
      "rounds; both servers hold one playing pipeline:",
  );
  for (const asked of requests) {
    const oursTimes: number[] = [];
    const echoTimes: number[] = [];
    const gstdTimes: number[] = [];
    const gstdRequest = () => gstdClient!.command(asked.gstd);
    // An error reply would be timed as if it were the answer (gstd's command throws on one).
    const oursRequest = async (text: string) => {
      const reply = await ours(text);
      if (!reply.startsWith('{"type":"result"')) throw new Error(`${asked.ours}: ${reply}`);
    };
    // Warm-up, then by turns, so that the machine's slow moments fall on each.
    await timed(oursRequest, asked);
    await timed(echo, asked);
    if (gstdClient) await timed(gstdRequest, asked);
    for (let round = 0; round < options.rounds; round++) {
      oursTimes.push(...await timed(oursRequest, asked));
      echoTimes.push(...await timed(echo, asked));
      if (gstdClient) gstdTimes.push(...await timed(gstdRequest, asked));
    }
    console.log(line(`ours, ${asked.ours} (request limit off)`, oursTimes));
    console.log(line("bare Deno WebSocket echo of it (the floor)", echoTimes));
    if (gstd) console.log(line(`gstd ${gstd.version}, ${asked.gstd} (TCP)`, gstdTimes));
    else console.log("  gstd: not installed (bench/build_gstd.sh builds it)");
    console.log(
      `  ours / echo at p50: ${ratio(oursTimes, echoTimes)} (the server's own work per request: ${
        ms(percentile(oursTimes, 50) - percentile(echoTimes, 50))
      })` + (gstd ? `; ours / gstd at p50: ${ratio(oursTimes, gstdTimes)}` : ""),
    );
  }
  gstdClient?.close();
  lines.releaseLock();
} finally {
  if (echoServer) {
    echoServer.kill();
    await echoServer.status;
  }
  await stopServer(server);
  await gstd?.stop();
}
Deno.exit(0);
