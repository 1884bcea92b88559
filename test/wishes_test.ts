/**
 * Requests that overlap runs: random bursts of startPipeline, pausePipeline and stopPipeline on
 * pipelines whose source (souphttpsrc, from an HTTP server in this test) is refused at random, sent
 * without waiting for each other's replies. After each burst, once every reply is in, the
 * pipeline must be where the last request of the burst left it: its wish (`playing`, `paused`,
 * `stopped`) as the desired state and the matching state, or, when that request was a start or a
 * pause that failed, `stopped` and NULL. A run's end (a refused source) must never undo a request
 * acknowledged after it began. The run is reproducible: WISHES_SEED=<seed> replays it.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { expectOk, type Reply, startServer, TestClient } from "./helpers.ts";

const SEED = Number(Deno.env.get("WISHES_SEED") ?? 20261206);
const PIPELINES = 6;
const BURSTS = 12;

type Wish = "startPipeline" | "pausePipeline" | "stopPipeline";
type Desired = "playing" | "paused" | "stopped";
const wished: Record<Wish, Desired> = {
  startPipeline: "playing",
  pausePipeline: "paused",
  stopPipeline: "stopped",
};
const stateOf: Record<Desired, string> = { playing: "PLAYING", paused: "PAUSED", stopped: "NULL" };

/** What the HTTP server does with one GET: refuse it (404) or stream, after a delay. */
interface Answer {
  refuse: boolean;
  delayMs: number;
}

const plan = fc.sample(
  fc.record({
    bursts: fc.array(
      fc.array(fc.constantFrom<Wish>("startPipeline", "pausePipeline", "stopPipeline"), {
        minLength: 1,
        maxLength: 4,
      }),
      { minLength: BURSTS, maxLength: BURSTS },
    ),
    answers: fc.array(
      fc.record({ refuse: fc.boolean(), delayMs: fc.integer({ min: 0, max: 40 }) }),
      { minLength: 64, maxLength: 64 },
    ),
  }),
  { seed: SEED, numRuns: PIPELINES },
);

/** Serves /N: each GET takes the next answer of pipeline N's list; a stream goes on until cancelled. */
function serveAnswers(answers: Answer[][]) {
  const taken = answers.map(() => 0);
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const n = Number(new URL(request.url).pathname.slice(1));
    const answer = answers[n][taken[n]++ % answers[n].length];
    await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    if (answer.refuse) return new Response("refused", { status: 404 });
    // Pulled as the source reads: a paused pipeline holds the stream back.
    let next: ReturnType<typeof setTimeout> | undefined;
    return new Response(
      new ReadableStream({
        pull: (controller) =>
          new Promise<void>((resolve) => {
            next = setTimeout(() => {
              controller.enqueue(new Uint8Array(4096));
              resolve();
            }, 5);
          }),
        cancel: () => clearTimeout(next),
      }, { highWaterMark: 1 }),
    );
  });
}

Deno.test(`requests sent while runs start and fail leave each pipeline as the last one said (WISHES_SEED=${SEED})`, async () => {
  const http = serveAnswers(plan.map((p) => p.answers));
  const server = await startServer();
  const client = await TestClient.connect(server.url);
  const failures: string[] = [];
  try {
    await Promise.all(plan.map(async ({ bursts }, n) => {
      const id = `wish-${n}`;
      expectOk(
        await client.request("createPipeline", {
          id,
          pipeline: `souphttpsrc location=http://127.0.0.1:${http.addr.port}/${n} ! fakesink`,
        }),
      );
      const history: string[] = [];
      for (const burst of bursts) {
        const replies: Reply[] = await Promise.all(
          burst.map((wish) => client.request(wish, { id })),
        );
        history.push(
          burst.map((wish, i) => `${wish}:${replies[i].ok ? "ok" : replies[i].error?.code}`)
            .join(" "),
        );
        const last = burst.length - 1;
        const reply = replies[last];
        if (!reply.ok) {
          assert.equal(reply.error?.code, "STATE_CHANGE_FAILED", JSON.stringify(reply));
        }
        const desired: Desired = reply.ok ? wished[burst[last]] : "stopped";
        const info = expectOk(await client.request("getPipeline", { id })).payload;
        if (info.desiredState !== desired || info.state !== stateOf[desired]) {
          failures.push(
            `${id}: desiredState ${info.desiredState}, state ${info.state}; expected ${desired}, ` +
              `${stateOf[desired]} after bursts:\n  ${history.join("\n  ")}`,
          );
          return;
        }
      }
      expectOk(await client.request("deletePipeline", { id }));
    }));
    assert.deepEqual(failures, [], `WISHES_SEED=${SEED}`);
  } finally {
    await client.close();
    assert.equal(await server.stop(), 0, "server exits 0 on SIGTERM");
    await http.shutdown();
  }
});
