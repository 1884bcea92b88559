/// <reference lib="dom" />
/** What every view shares: htm bound to preact, and formatting of figures. */
import { h, type VNode } from "preact";
import htm from "htm";

/** htm's own type, which Deno reads as CommonJS (the bundle gets the ES module's default). */
type Htm = {
  bind<R>(
    h: (type: never, props: Record<string, unknown>, ...children: unknown[]) => R,
  ): (strings: TemplateStringsArray, ...values: unknown[]) => R | R[];
};

export const html = (htm as unknown as Htm).bind<VNode>(h as never);

export function formatBitrate(bitsPerSecond: number | null | undefined): string {
  if (bitsPerSecond === null || bitsPerSecond === undefined) return "—";
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(2)} Mb/s`;
  if (bitsPerSecond >= 1e3) return `${(bitsPerSecond / 1e3).toFixed(0)} kb/s`;
  return `${bitsPerSecond.toFixed(0)} b/s`;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!(seconds > 0)) return "—";
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  if (minutes > 0) return `${minutes}m ${String(rest).padStart(2, "0")}s`;
  return `${rest}s`;
}

export function formatFps(fps: number | null | undefined): string {
  return fps === null || fps === undefined ? "—" : fps.toFixed(fps >= 100 ? 0 : 1);
}

/** Made once: toLocaleTimeString makes a formatter at each call (0.1 to 0.2 ms each). */
const clock = new Intl.DateTimeFormat([], {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

export function formatTime(date: Date): string {
  return `${clock.format(date)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** A small line of the last values, drawn as one SVG polyline (cheap for hundreds of rows). */
export function Sparkline({ values, label }: { values: readonly number[]; label: string }) {
  const width = 96;
  const height = 22;
  let points = "";
  if (values.length >= 2) {
    let max = 1e-9;
    for (const value of values) if (value > max) max = value;
    const step = width / (values.length - 1);
    const scale = (height - 4) / max;
    for (let i = 0; i < values.length; i++) {
      points += `${Math.round(i * step)},${Math.round(height - 2 - values[i] * scale)} `;
    }
  }
  return html`
    <svg class="spark" width=${width} height=${height} role="img" aria-label=${label}>
      <polyline points=${points} />
    </svg>
  `;
}
