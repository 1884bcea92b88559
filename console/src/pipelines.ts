/// <reference lib="dom" />
/** The list of every pipeline, push and publish, live from the stats events. */
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { PipelineInfo, PipelineStats } from "../../src/client.ts";
import type { Model } from "./model.ts";
import { formatBitrate, formatDuration, formatFps, html, Sparkline } from "./ui.ts";

/** Who watches: RTSP readers and WebRTC viewers. */
export function viewersTitle(stats: PipelineStats | undefined): string {
  return stats?.rtspClients === undefined
    ? "serves no RTSP path"
    : `${stats.rtspClients} RTSP, ${stats.webrtcViewers ?? 0} WebRTC`;
}

export function stateClass(state: string): string {
  return `state state-${state.toLowerCase()}`;
}

/** What the desired state expects GStreamer to show. */
const expected: Record<PipelineInfo["desiredState"], string> = {
  playing: "PLAYING",
  paused: "PAUSED",
  stopped: "NULL",
};

export function StateBadge({ info }: { info: PipelineInfo }) {
  const settled = expected[info.desiredState] === info.state;
  return html`<span class=${
    stateClass(info.state)
  } title=${`GStreamer state ${info.state}, desired ${info.desiredState}`}>
    ${info.state}</span>${
    settled ? null : html`<span class="desired" title="desired state">→ ${info.desiredState}</span>`
  }`;
}

/** Each row's height in pixels (console.css .prow): rows out of view are not rendered. */
const ROW_HEIGHT = 46;
/** The sticky header row's height (console.css .prow.head). */
const HEADER_HEIGHT = 32;
/** Rows rendered beyond each edge of the view, so that scrolling shows no gap. */
const OVERSCAN = 8;

export function PipelineList(
  { model, filter, selected, onSelect }: {
    model: Model;
    filter: string;
    selected: string | null;
    onSelect: (id: string) => void;
  },
) {
  const needle = filter.trim().toLowerCase();
  const rows = [...model.pipelines.values()]
    .filter((info) =>
      needle === "" || info.id.toLowerCase().includes(needle) ||
      info.description.toLowerCase().includes(needle) || info.kind.includes(needle) ||
      info.state.toLowerCase().includes(needle)
    )
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  // Only the rows in view are in the DOM: a stats event then changes a few dozen rows, not
  // hundreds (the list is a window over `rows`; the spacers keep the scroll height).
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 800 });
  useEffect(() => {
    const element = scroller.current!;
    let frame = 0;
    const measure = () => {
      frame = 0;
      setView({ top: element.scrollTop, height: element.clientHeight });
    };
    const later = () => frame ||= requestAnimationFrame(measure);
    element.addEventListener("scroll", later, { passive: true });
    const resize = new ResizeObserver(later);
    resize.observe(element);
    measure();
    return () => {
      element.removeEventListener("scroll", later);
      resize.disconnect();
      cancelAnimationFrame(frame);
    };
  }, []);
  const first = Math.max(0, Math.floor(view.top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((view.top + view.height) / ROW_HEIGHT) + OVERSCAN);
  // The selected row is brought into view (keyboard moves, a pipeline chosen elsewhere).
  useLayoutEffect(() => {
    const index = rows.findIndex((row) => row.id === selected);
    const element = scroller.current;
    if (index < 0 || !element) return;
    const top = index * ROW_HEIGHT;
    if (top < element.scrollTop) element.scrollTop = top;
    else if (top + ROW_HEIGHT + HEADER_HEIGHT > element.scrollTop + element.clientHeight) {
      element.scrollTop = top + ROW_HEIGHT + HEADER_HEIGHT - element.clientHeight;
    }
  }, [selected]);

  const move = (event: KeyboardEvent, id: string) => {
    const index = rows.findIndex((row) => row.id === id);
    const next = event.key === "ArrowDown"
      ? rows[index + 1]
      : event.key === "ArrowUp"
      ? rows[index - 1]
      : null;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onSelect(id);
    } else if (next) {
      event.preventDefault();
      onSelect(next.id);
      requestAnimationFrame(() => document.getElementById(`row-${next.id}`)?.focus());
    }
  };

  if (model.pipelines.size === 0) {
    return html`
      <div class="empty" ref=${scroller}>
        <p>No pipelines yet.</p>
        <p>Create one with <kbd>n</kbd>, or push a stream to <code>POST /push/NAME</code>.</p>
      </div>
    `;
  }
  // Rows are grid boxes rather than table rows so that the browser can skip the style and layout
  // of rows out of view (content-visibility), which a table cannot do: hundreds stay cheap.
  return html`
    <div class="scroller" ref=${scroller}>
      <div class="pipelines" role="table" aria-label="Pipelines" aria-rowcount=${rows.length + 1}>
        <div class="prow head" role="row">
          <span role="columnheader">Id</span><span role="columnheader">State</span>
          <span role="columnheader">Restart</span><span role="columnheader" class="num">Uptime</span>
          <span role="columnheader" class="num">fps</span><span role="columnheader" class="num">Bitrate</span>
          <span role="columnheader">Last 2 min</span><span role="columnheader" class="num">Errors</span>
          <span role="columnheader" class="num">Viewers</span>
        </div>
        <div class="spacer" style=${{ height: `${first * ROW_HEIGHT}px` }}></div>
        ${rows.slice(first, last).map((info, offset) => {
          const stats = model.stats.get(info.id);
          const history = model.history.get(info.id);
          const hasBitrate = stats?.bitrate !== undefined;
          const errors = stats?.errors ?? (info.lastError ? 1 : 0);
          return html`
            <div
              key=${info.id}
              id=${`row-${info.id}`}
              data-id=${info.id}
              role="row"
              aria-rowindex=${first + offset + 2}
              tabindex="0"
              class=${info.id === selected ? "prow selected" : "prow"}
              aria-selected=${info.id === selected}
              onClick=${() => onSelect(info.id)}
              onKeyDown=${(event: KeyboardEvent) => move(event, info.id)}
            >
              <span role="cell" class="id"><span><span class="kind">${info.kind === "pipeline"
                ? ""
                : info.kind}</span>${info.id}</span>
                      ${info.description
                        ? html`<span class="sub">${info.description}</span>`
                        : null}</span>
              <span role="cell"><${StateBadge} info=${info} /></span>
              <span role="cell">${info.restart}${info.restarts > 0
                ? html`
                  <span class="sub">(${info.restarts}×)</span>
                `
                : null}</span>
              <span role="cell" class="num">${formatDuration(stats?.uptime ?? 0)}</span>
              <span role="cell" class="num fps">${formatFps(model.fps.get(info.id))}</span>
              <span role="cell" class="num bitrate">${formatBitrate(stats?.bitrate)}</span>
              <span role="cell">${history
                ? html`
                  <${Sparkline}
                    values=${hasBitrate ? history.bitrate : history.fps}
                    label=${hasBitrate ? "bitrate" : "frames per second"} />
                `
                : null}</span>
              <span role="cell" class=${errors > 0 ? "num bad" : "num"}>${errors}</span>
              <span role="cell" class="num" title=${viewersTitle(
                stats,
              )}>${stats?.rtspClients === undefined
                ? "—"
                : stats.rtspClients + (stats.webrtcViewers ?? 0)}</span>
            </div>
          `;
        })}
        <div class="spacer" style=${{ height: `${(rows.length - last) * ROW_HEIGHT}px` }}></div>
      </div>
    </div>
  `;
}
