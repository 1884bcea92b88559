/**
 * HLS of any served RTSP path (issue 11, section 3). Being written: see the HLS helper's report.
 */
import type { RtspServer } from "../gst/rtsp.ts";

export interface HlsOptions {
  rtsp: RtspServer;
  /** The media directory (the server's own pipelines read no files, but a policy needs one). */
  mediaDir: string;
  /** Where our RTSP server is reached from here: 127.0.0.1 or ::1. */
  rtspHost: string;
  /** RTSP credentials the HLS pipelines read with, when the server requires them. */
  credentials?: { user: string; password: string };
  /** Asks whatever produces `path` for a key frame (an HLS stream starts at one). */
  requestKeyFrame?: (path: string) => void;
}

export class HlsHub {
  readonly #options: HlsOptions;

  constructor(options: HlsOptions) {
    this.#options = options;
  }

  pollBuses(): void {}

  async closeAll(): Promise<void> {}
}
