/** What the WebRTC scenarios (whep.ts, whip.ts) do in pages and with the server's log. */
import type { Page } from "playwright-core";

/**
 * Plays `whepUrl` in a new <video id="video"> of `page` with the server's player module and
 * `options` (its WhepOptions: token, iceServers, iceTransportPolicy).
 */
export async function play(
  page: Page,
  playerUrl: string,
  whepUrl: string,
  options: Record<string, unknown> = {},
): Promise<{ ok: boolean; status?: number; message?: string }> {
  // Page code as text: it runs in the browser (this file is type-checked without the DOM).
  return await page.evaluate(`(async () => {
    const { playWhep } = await import(${JSON.stringify(playerUrl)});
    const video = document.createElement("video");
    Object.assign(video, { muted: true, autoplay: true, playsInline: true, id: "video" });
    document.body.append(video);
    try {
      globalThis.player = await playWhep(video, ${JSON.stringify(whepUrl)},
        ${JSON.stringify(options)});
      return { ok: true };
    } catch (error) {
      return { ok: false, status: error.status, message: String(error) };
    }
  })()`);
}

/** Screenshots into test/output/<folder>/. */
export async function screenshots(folder: string) {
  const outputDir = new URL(`../output/${folder}/`, import.meta.url);
  await Deno.mkdir(outputDir, { recursive: true });
  return async (page: Page, name: string): Promise<void> => {
    await page.screenshot({ path: new URL(`${name}.png`, outputDir).pathname });
  };
}

export async function scenario(name: string, run: () => Promise<void>): Promise<void> {
  const started = performance.now();
  await run();
  console.log(`ok ${name} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

/** What the player of `page` has received of audio: packets, decoded samples and the codec. */
export async function audioReceived(page: Page) {
  return await page.evaluate(`(async () => {
    const stats = await player.connection.getStats();
    for (const report of stats.values()) {
      if (report.type !== "inbound-rtp" || report.kind !== "audio") continue;
      return {
        packets: report.packetsReceived ?? 0,
        samples: report.totalSamplesReceived ?? 0,
        codec: stats.get(report.codecId)?.mimeType ?? null,
      };
    }
    return { packets: 0, samples: 0, codec: null };
  })()`) as { packets: number; samples: number; codec: string | null };
}
