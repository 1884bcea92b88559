/**
 * Debian's Chromium, driven headless by playwright-core, for the tests of what browsers see.
 * Screenshots go to test/output/<folder>/ (not checked in).
 */
import { type Browser, chromium, type Page } from "playwright-core";

/** Debian's Chromium (start_server.sh test installs it); CHROMIUM names another. */
export const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

const outputRoot = new URL("./output/", import.meta.url);

/** The flags a closed network needs: no background fetches to Google's hosts, no QUIC. */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * WebRTC on loopback (inside a test's own network namespace): loopback candidates allowed, host
 * candidates not hidden behind mDNS names, video that plays without a gesture.
 */
const WEBRTC_ARGS = [
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

/** A fake camera and microphone (a test pattern and a beep), granted without asking. */
const FAKE_MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"];

export function launchChromium(
  options: { webrtc?: boolean; fakeMedia?: boolean } = {},
): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...CHROMIUM_ARGS,
      ...(options.webrtc ? WEBRTC_ARGS : []),
      ...(options.fakeMedia ? FAKE_MEDIA_ARGS : []),
    ],
  });
}

export interface WatchedPage {
  page: Page;
  /** Every console error and uncaught exception of the page so far. */
  errors: string[];
  /** Writes a screenshot as test/output/<folder>/<name>.png and returns its path. */
  shot(name: string): Promise<string>;
}

export async function openPage(
  browser: Browser,
  url: string,
  folder: string,
  viewport = { width: 1440, height: 900 },
): Promise<WatchedPage> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`page: ${error.message}`));
  const directory = new URL(`${folder}/`, outputRoot);
  await Deno.mkdir(directory, { recursive: true });
  await page.goto(url);
  return {
    page,
    errors,
    async shot(name) {
      const path = new URL(`${name}.png`, directory).pathname;
      await page.screenshot({ path });
      return path;
    },
  };
}

/** What the page's <video id="video"> has shown: frames, size, time, and audio decoded. */
export async function videoPlayback(page: Page) {
  // Page code as text: it runs in the browser (this file is type-checked without the DOM).
  return await page.evaluate(`(() => {
    const video = document.getElementById("video");
    return {
      frames: video.getVideoPlaybackQuality().totalVideoFrames,
      width: video.videoWidth,
      height: video.videoHeight,
      time: video.currentTime,
      audioBytes: video.webkitAudioDecodedByteCount ?? 0,
    };
  })()`) as { frames: number; width: number; height: number; time: number; audioBytes: number };
}
