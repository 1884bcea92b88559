/// <reference lib="dom" />
/** The chart of a pipeline's frame rate and bitrate over the last minutes (uPlot). */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { History } from "./model.ts";
import { formatBitrate, html } from "./ui.ts";

export function RateChart(
  { history, version, withBitrate }: {
    history: History | undefined;
    version: number;
    /** Pushes and publishes count bytes; pipelines have only their sinks' frame rates. */
    withBitrate: boolean;
  },
) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const width = Math.max(240, box.current!.clientWidth);
    plot.current = new uPlot(
      {
        width,
        height: 160,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true },
          fps: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
          bps: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
        },
        axes: [
          { stroke: "#8b95a5", grid: { stroke: "#2a313c" }, ticks: { stroke: "#2a313c" } },
          {
            scale: "fps",
            stroke: "#8b95a5",
            grid: { stroke: "#2a313c" },
            ticks: { stroke: "#2a313c" },
            size: 40,
          },
          ...(withBitrate
            ? [{
              scale: "bps",
              side: 1,
              stroke: "#8b95a5",
              grid: { show: false },
              size: 72,
              values: (_u: uPlot, ticks: number[]) => ticks.map((t) => formatBitrate(t)),
            }]
            : []),
        ],
        series: [
          {},
          { label: "fps", scale: "fps", stroke: "#4fb3ff", width: 1.5 },
          ...(withBitrate
            ? [{
              label: "bitrate",
              scale: "bps",
              stroke: "#f2a444",
              width: 1.5,
              value: (_u: uPlot, v: number) => formatBitrate(v),
            }]
            : []),
        ],
      },
      withBitrate ? [[], [], []] : [[], []],
      box.current!,
    );
    const resize = new ResizeObserver(() => {
      if (box.current) {
        plot.current?.setSize({ width: Math.max(240, box.current.clientWidth), height: 160 });
      }
    });
    resize.observe(box.current!);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [withBitrate]);

  useEffect(() => {
    if (!history) return;
    plot.current?.setData(
      withBitrate ? [history.times, history.fps, history.bitrate] : [history.times, history.fps],
    );
  }, [history, version, withBitrate]);

  return html`<div class="chart" ref=${box}></div>`;
}
