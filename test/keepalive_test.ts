/**
 * WebSocket keepalive (GSTREAMER_WS_PING_INTERVAL_MS): a peer that answers no ping is cut off, and
 * its client slot is free again; a client that answers (every WebSocket client does by itself)
 * stays.
 */
import assert from "node:assert/strict";
import { expectOk, startServer, TestClient, waitUntil } from "./helpers.ts";

Deno.test("a WebSocket peer that answers no ping is cut off; one that answers stays", async () => {
  const server = await startServer({ GSTREAMER_WS_PING_INTERVAL_MS: "300" });
  const client = await TestClient.connect(server.url);
  const target = new URL(server.url);
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
  try {
    // A handshake by hand, then silence: no pong, as from a peer that vanished.
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await conn.write(new TextEncoder().encode(
      `GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const received: number[] = [];
    const chunk = new Uint8Array(4096);
    // Not cut off within 10 s: the read fails, and with it the test.
    const giveUp = setTimeout(() => conn.close(), 10_000);
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) break;
      received.push(...chunk.subarray(0, n));
    }
    clearTimeout(giveUp);
    const text = new TextDecoder("latin1").decode(new Uint8Array(received));
    assert.match(text, /^HTTP\/1.1 101 /);
    // The ping (opcode 9) came, and the server then closed the connection.
    assert.ok(received.includes(0x89), "a ping frame");
    await server.waitForLog("no answer to a ping");
    // The slot is free again; the client that answers pings was never cut off.
    await waitUntil(
      async () => (await (await fetch(`${server.httpUrl}/healthz`)).json()).clients === 1,
      5000,
      "one client left",
    );
    expectOk(await client.request("getPipelines", {}));
  } finally {
    try {
      conn.close();
    } catch {
      // closed already
    }
    await client.close();
    assert.equal(await server.stop(), 0);
  }
});
