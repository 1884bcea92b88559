/**
 * The addresses a host setting stands for. The server listens on all of them, for HTTP,
 * WebSocket and RTSP alike, so every URL it prints works with whatever address a client's
 * resolver picks for the name.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

/**
 * `localhost` is both loopback addresses (RFC 6761), whatever /etc/hosts says: clients differ
 * in which one they resolve it to (getaddrinfo here gives 127.0.0.1, GLib ::1). An IP address
 * is itself; any other name is what the system resolver gives for it.
 */
export async function listenAddresses(host: string): Promise<string[]> {
  if (isIP(host) !== 0) return [host];
  if (host.toLowerCase() === "localhost") return ["127.0.0.1", "::1"];
  const found = await lookup(host, { all: true });
  return [...new Set(found.map((entry) => entry.address))];
}
