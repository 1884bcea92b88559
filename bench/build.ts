/**
 * Build benchmark: launch text in, PLAYING out, for two larger graphs than
 * control_plane.ts's `videotestsrc ! fakesink`, against gst-launch-1.0 doing
 * the same in the same run.
 *
 * Graphs, both sent to the server as gst-launch text (createPipeline's
 * `pipeline` is a string, read by our parser src/launch.ts and built element
 * by element):
 * - chain: a 50-element chain, videotestsrc ! capsfilter ! 47 elements
 *   cycling through queue, videoconvert, a format capsfilter, videoscale, a
 *   size capsfilter and identity ! fakesink. Formats (I420, RGBA, NV12, YUY2)
 *   and sizes change along the chain, so every converter and scaler really
 *   negotiates and converts.
 * - tee: videotestsrc ! capsfilter ! tee, and four branches
 *   `t. ! queue ! videoconvert ! fakesink` (15 elements).
 * The sinks have sync=true (fakesink's default is false): frames then flow at
 * 30/s once PLAYING, as into a real sink, instead of a non-live source
 * running flat out on every core while the startPipeline reply, or
 * gst-launch-1.0's "New clock" line, is on its way.
 *
 * For each graph, N rounds of: one createPipeline (text) + startPipeline
 * until its reply says PLAYING, timed from sending createPipeline to that
 * reply, then deletePipeline (not timed); one `gst-launch-1.0 <same text>`,
 * timed from spawn until it has reached PLAYING (launchUntilPlaying), then
 * killed; and one parseLaunch of the text in this process, to show what our
 * parser costs on its own. Ours and gst-launch-1.0 alternate which goes first,
 * so load from elsewhere falls on both alike. A few rounds of each before
 * are not counted (the server's first request builds its factory table).
 *
 * Prints p50 and p99 of ours and of gst-launch-1.0, and the ratio
 * gst-launch / ours (how many times faster; gst-launch-1.0 also pays process
 * start-up and registry loading). There is no target: nothing is PASS/MISS.
 *
 *   deno run --allow-all bench/build.ts [--runs 100]
 */
import { parseLaunch } from "../src/domain/launch.ts";
import { type ServerProcess, startServer, TestClient } from "../test/helpers.ts";
import {
  createAndStart,
  expectOk,
  killAllLaunched,
  launchUntilPlaying,
  ms,
  parseNumberOptions,
  stopServer,
  summarize,
  type Summary,
} from "./measure.ts";

// ---------------------------------------------------------------- options

interface Options {
  /** Timed rounds per graph (ours, gst-launch-1.0 and parse, once each). */
  runs: number;
}

function parseOptions(args: string[]): Options {
  const options = parseNumberOptions<Options>(args, { runs: 100 });
  if (options.runs < 1) throw new Error("--runs needs at least 1");
  return options;
}

/** Rounds before the timed ones, for both sides. */
const WARMUP_ROUNDS = 3;
/** parseLaunch calls timed as one batch, for a mean below the timer's resolution. */
const PARSE_BATCH = 1000;

// ---------------------------------------------------------------- the graphs

export interface Graph {
  key: string;
  label: string;
  text: string;
}

/** Element `i` (0-based) of the 47 in the middle of the chain. */
function chainMiddle(i: number): string {
  const group = Math.floor(i / 6);
  const format = ["I420", "RGBA", "NV12", "YUY2"][group % 4];
  const [width, height] = [[320, 240], [160, 120], [240, 180]][group % 3];
  return [
    "queue max-size-buffers=2",
    "videoconvert",
    `capsfilter caps=video/x-raw,format=${format}`,
    "videoscale",
    `capsfilter caps=video/x-raw,width=${width},height=${height}`,
    "identity silent=true",
  ][i % 6];
}

/** The 50-element chain; also built by event_loop.ts. */
export const chain: Graph = {
  key: "chain",
  label: "50-element chain",
  text: [
    "videotestsrc is-live=false pattern=ball",
    "capsfilter caps=video/x-raw,format=I420,width=320,height=240,framerate=30/1",
    ...Array.from({ length: 47 }, (_, i) => chainMiddle(i)),
    "fakesink sync=true",
  ].join(" ! "),
};

const tee: Graph = {
  key: "tee",
  label: "4-way tee",
  text: [
    "videotestsrc is-live=false pattern=smpte ! " +
    "capsfilter caps=video/x-raw,format=I420,width=320,height=240 ! tee name=t",
    ...Array.from(
      { length: 4 },
      () => "t. ! queue max-size-buffers=2 ! videoconvert ! fakesink sync=true",
    ),
  ].join(" "),
};

/**
 * The text as gst-launch-1.0 arguments. gst-launch-1.0 escapes the spaces
 * inside each argument (gst_parse_launchv), so the text has to be split into
 * words as a shell would; with no quotes or backslashes in it, that is a
 * split at whitespace.
 */
function launchArgs(text: string): string[] {
  if (/["'\\]/.test(text)) throw new Error(`launchArgs: quotes or backslashes in '${text}'`);
  return text.trim().split(/\s+/);
}

// ---------------------------------------------------------------- the run

interface GraphResults {
  graph: Graph;
  elements: number;
  links: number;
  /** Elements in the server's pipeline graph (getPipelineGraph), when it could be counted. */
  builtElements: number | null;
  /** The server's first create+start of this graph (not counted). */
  firstMs: number;
  ours: Summary;
  launch: Summary;
  parse: Summary;
  /** Mean of PARSE_BATCH parses in a row. */
  parseBatchMs: number;
}

/**
 * Elements in a GStreamer dot graph: each is a `subgraph cluster_...` whose
 * first label holds its type and name; its pads' clusters have an empty one.
 */
function countDotElements(dot: string): number | null {
  const elementCluster = /subgraph cluster_\S+ \{(?:(?!label=)[^{}])*label="[^"]/g;
  const elements = (dot.match(elementCluster) ?? []).length;
  return elements > 0 ? elements : null;
}

async function ours(client: TestClient, id: string, text: string): Promise<number> {
  const { playingMs } = await createAndStart(client, id, text);
  expectOk(await client.request("deletePipeline", { id }), `delete ${id}`);
  client.received.length = 0; // events we do not look at
  return playingMs;
}

async function theirs(args: string[]): Promise<number> {
  const launch = await launchUntilPlaying(args);
  await launch.kill();
  return launch.playingAfter;
}

function timedParse(text: string): number {
  const startedAt = performance.now();
  parseLaunch(text);
  return performance.now() - startedAt;
}

async function runGraph(client: TestClient, graph: Graph, runs: number): Promise<GraphResults> {
  const parsed = parseLaunch(graph.text);
  const args = launchArgs(graph.text);
  console.log(
    `${graph.label}: ${parsed.elements.length} elements, ${parsed.links.length} links, ` +
      `${graph.text.length} characters; ${WARMUP_ROUNDS} warm-up + ${runs} timed rounds ...`,
  );

  // Warm-up, not counted; the first one also shows that the server built every element.
  const firstId = `${graph.key}-warmup-0`;
  const firstMs = (await createAndStart(client, firstId, graph.text)).playingMs;
  const graphReply = expectOk(
    await client.request("getPipelineGraph", { id: firstId }),
    `graph ${firstId}`,
  );
  const builtElements = countDotElements(String(graphReply.payload?.dot ?? ""));
  expectOk(await client.request("deletePipeline", { id: firstId }), `delete ${firstId}`);
  client.received.length = 0;
  for (let i = 0; i < WARMUP_ROUNDS; i++) {
    if (i > 0) await ours(client, `${graph.key}-warmup-${i}`, graph.text);
    await theirs(args);
    timedParse(graph.text);
  }

  const oursMs: number[] = [];
  const launchMs: number[] = [];
  const parseMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const id = `${graph.key}-${i}`;
    if (i % 2 === 0) {
      oursMs.push(await ours(client, id, graph.text));
      launchMs.push(await theirs(args));
    } else {
      launchMs.push(await theirs(args));
      oursMs.push(await ours(client, id, graph.text));
    }
    parseMs.push(timedParse(graph.text));
  }
  const remaining = expectOk(await client.request("getPipelines"), "getPipelines");
  if (remaining.payload.pipelines.length !== 0) {
    throw new Error(`${remaining.payload.pipelines.length} pipelines left after ${graph.label}`);
  }

  const batchStart = performance.now();
  for (let i = 0; i < PARSE_BATCH; i++) parseLaunch(graph.text);
  const parseBatchMs = (performance.now() - batchStart) / PARSE_BATCH;

  return {
    graph,
    elements: parsed.elements.length,
    links: parsed.links.length,
    builtElements,
    firstMs,
    ours: summarize(oursMs),
    launch: summarize(launchMs),
    parse: summarize(parseMs),
    parseBatchMs,
  };
}

// ---------------------------------------------------------------- report

const us = (milliseconds: number) => `${(milliseconds * 1000).toFixed(1)} µs`;
const ratio = (baseline: number, value: number) => `${(baseline / value).toFixed(1)}x`;

function report(serverStartMs: number, runs: number, results: GraphResults[]): void {
  const lines = [
    "",
    "=== build benchmark ===",
    `server start to listening: ${ms(serverStartMs)}; ${runs} timed rounds per graph, ours and ` +
    `gst-launch-1.0 interleaved (alternating which goes first)`,
    "ours: createPipeline (launch text) + startPipeline until the reply says PLAYING; " +
    'gst-launch-1.0: spawn until "New clock"; ratio: gst-launch / ours',
  ];
  for (const r of results) {
    const built = r.builtElements === null
      ? "element count not read from the server's graph"
      : r.builtElements === r.elements
      ? "the server's graph has all of them"
      : `WARNING: the server's graph has ${r.builtElements}`;
    lines.push(
      "",
      `${r.graph.label} (${r.elements} elements, ${r.links} links; ${built}); first ` +
        `create+start (not counted): ${ms(r.firstMs)}`,
      `  p50: ours ${ms(r.ours.p50)}, gst-launch ${ms(r.launch.p50)}, ` +
        `ratio ${ratio(r.launch.p50, r.ours.p50)}`,
      `  p99: ours ${ms(r.ours.p99)}, gst-launch ${ms(r.launch.p99)}, ` +
        `ratio ${ratio(r.launch.p99, r.ours.p99)}`,
      `  mean: ours ${ms(r.ours.mean)}, gst-launch ${ms(r.launch.mean)}`,
      `  min/max: ours ${ms(r.ours.min)} / ${ms(r.ours.max)}, ` +
        `gst-launch ${ms(r.launch.min)} / ${ms(r.launch.max)}`,
      `  parseLaunch alone: p50 ${us(r.parse.p50)}, p99 ${us(r.parse.p99)}, mean of ` +
        `${PARSE_BATCH} in a row ${us(r.parseBatchMs)} (${
          (r.parse.p50 / r.ours.p50 * 100).toFixed(1)
        }% of our p50)`,
    );
  }
  console.log(lines.join("\n"));
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  let server: ServerProcess | undefined;
  let client: TestClient | undefined;
  const interrupted = async () => {
    await killAllLaunched();
    await server?.stop();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const startedAt = performance.now();
    server = await startServer();
    const serverStartMs = performance.now() - startedAt;
    client = await TestClient.connect(server.url);
    const results: GraphResults[] = [];
    for (const graph of [chain, tee]) results.push(await runGraph(client, graph, options.runs));
    report(serverStartMs, options.runs, results);
  } finally {
    await killAllLaunched();
    await client?.close().catch(() => {});
    if (server) await stopServer(server);
    Deno.removeSignalListener("SIGINT", interrupted);
  }
}

if (import.meta.main) await main();
