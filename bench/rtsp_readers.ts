/**
 * RTSP/TCP readers of one path, in a process of their own so that their reading does not slow
 * the process that measures the server (bench/scale.ts). Reads "add N" lines on stdin (opens N
 * more readers, all playing) and answers each line with one JSON line: the bytes each reader has
 * received so far, or {"error": ...}.
 *
 *   deno run --allow-net bench/rtsp_readers.ts rtsp://127.0.0.1:8554 path
 */
import { RtspConn } from "../test/rtsp_client.ts";

const [base, path] = Deno.args;
const readers: RtspConn[] = [];

/** stdin, a line at a time. */
async function* lines(): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    const parts = (pending + chunk).split("\n");
    pending = parts.pop() ?? "";
    yield* parts;
  }
}
const encoder = new TextEncoder();
const answer = (value: unknown) => Deno.stdout.write(encoder.encode(`${JSON.stringify(value)}\n`));

for await (const line of lines()) {
  const [command, count] = line.trim().split(/\s+/);
  try {
    if (command === "add") {
      for (let i = 0; i < Number(count); i++) {
        const reader = await RtspConn.open(base);
        readers.push(reader);
        await reader.play(path);
        void reader.drain();
      }
    }
    await answer({ drained: readers.map((reader) => reader.drained) });
  } catch (error) {
    await answer({ error: String(error) });
  }
}
for (const reader of readers) reader.close();
