/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The web console (GET / on the server's HTTP port): every pipeline live, their controls, graphs
 * and properties, the installed elements and an event log, over the WebSocket protocol.
 */
import { render } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import "uplot/dist/uPlot.min.css";
import type { GstClient } from "../../src/client.ts";
import { CreateDialog } from "./create.ts";
import { type Act, Details } from "./details.ts";
import { ElementsDialog } from "./elements.ts";
import { Model } from "./model.ts";
import { PipelineList } from "./pipelines.ts";
import { type Phase, Session } from "./session.ts";
import { formatBytes, formatDuration, formatTime, html } from "./ui.ts";

const model = new Model();

/** What the browser tests read: how long the latest stats event took to reach the screen. */
declare global {
  var consoleMetrics: { statsRenderMs: number[] };
}
globalThis.consoleMetrics = { statsRenderMs: [] };

/**
 * The model's version, read once a frame at most: a burst of events (hundreds of pipelines made
 * by another client) is drawn once per frame, not once per event.
 */
function useModel(): number {
  const [version, setVersion] = useState(model.version);
  useEffect(() => {
    let frame = 0;
    const unsubscribe = model.subscribe(() => {
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        setVersion(model.version);
      });
    });
    return () => {
      cancelAnimationFrame(frame);
      unsubscribe();
    };
  }, []);
  return version;
}

function Login({ error, onLogin }: { error?: string; onLogin: (token: string) => void }) {
  const [token, setToken] = useState("");
  return html`
    <main class="login">
      <form onSubmit=${(e: Event) => {
        e.preventDefault();
        if (token) onLogin(token);
      }}>
          <h1>GStreamer console</h1>
          <p>This server needs its token (<code>GSTREAMER_AUTH_TOKEN</code>). It is kept for this tab only.</p>
          <label>Token <input type="password" name="token" autocomplete="current-password" autofocus
            value=${token} onInput=${(e: Event) =>
              setToken((e.target as HTMLInputElement).value)} /></label>
          ${error ? html`<p class="bad" role="alert">${error}</p>` : null}
          <button type="submit" class="primary">Connect</button>
        </form>
    </main>
  `;
}

function Health({ phase }: { phase: Phase }) {
  const server = model.server;
  const status = phase.kind === "open"
    ? "connected"
    : phase.kind === "reconnecting"
    ? "reconnecting…"
    : "connecting…";
  return html`<div class="health" aria-label="Server health">
    <span class=${`dot ${phase.kind}`} title=${status}></span><span class="status">${status}</span>
    ${
    server
      ? html`
        <span title="CPU of one core">CPU <b>${server.cpuPercent.toFixed(1)}%</b></span>
        <span title="Resident memory">RSS <b>${formatBytes(server.rssBytes)}</b></span>
        <span>Clients <b>${server.clients}</b></span>
        <span>Pipelines <b>${server.pipelines}</b></span>
        <span>Up <b>${formatDuration(server.uptime)}</b></span>
      `
      : null
  }
  </div>`;
}

function EventLog({ onClose }: { onClose: () => void }) {
  const list = useRef<HTMLOListElement>(null);
  const [level, setLevel] = useState<"all" | "warning" | "error">("all");
  const last = model.log.at(-1)?.seq;
  // Follows new entries while the reader is at the bottom (reading layout only when one came).
  useLayoutEffect(() => {
    const element = list.current;
    if (element && element.scrollHeight - element.scrollTop - element.clientHeight < 80) {
      element.scrollTop = element.scrollHeight;
    }
  }, [last]);
  // Made again only when an entry came or the level changed, not at every stats round: the same
  // rows are then skipped by the diff (hundreds of them, each with its time).
  const entries = useMemo(
    () =>
      model.log.filter((entry) =>
        level === "all" || entry.level === "error" ||
        (level === "warning" && entry.level === "warning")
      ).map((entry) =>
        html`<li key=${entry.seq} class=${entry.level}>
      <time>${formatTime(entry.time)}</time><span class="type">${entry.type}</span>
      ${entry.id ? html`<code>${entry.id}</code>` : null}<span>${entry.text}</span></li>`
      ),
    [last, level],
  );
  return html`<section class="log" aria-label="Event log">
    <header class="row"><h2>Events</h2>
      <select aria-label="Show" value=${level} onChange=${(e: Event) =>
    setLevel((e.target as HTMLSelectElement).value as typeof level)}>
        <option value="all">all</option><option value="warning">warnings and errors</option><option value="error">errors</option>
      </select>
      <button class="icon" aria-label="Hide events" title="Hide (l)" onClick=${onClose}>✕</button>
    </header>
    ${
    entries.length === 0
      ? html`<p class="sub empty-log">No events since this page opened.</p>`
      : null
  }
    <ol ref=${list}>${entries}</ol>
  </section>`;
}

function App() {
  const version = useModel();
  const [phase, setPhase] = useState<Phase>({ kind: "connecting" });
  const [selected, setSelected] = useState<string | null>(null);
  const [dialog, setDialog] = useState<"create" | "elements" | null>(null);
  const [filter, setFilter] = useState("");
  const [showLog, setShowLog] = useState(true);
  const [toast, setToast] = useState<{ text: string; bad: boolean } | null>(null);
  const session = useRef<Session | null>(null);
  const filterBox = useRef<HTMLInputElement>(null);

  useEffect(() => {
    let previous: Phase["kind"] = "connecting";
    const s = new Session({
      phase: (next) => {
        // The log tells when the picture may have been stale.
        if (next.kind === "reconnecting" && previous === "open") {
          model.note("warning", "connection", null, "lost; reconnecting");
        } else if (next.kind === "open" && previous === "reconnecting") {
          model.note("info", "connection", null, "back; pipelines read again");
        }
        previous = next.kind;
        setPhase(next);
      },
      event: (event) => model.apply(event),
      resync: (client) => {
        client.getPipelines().then((answer) => model.replacePipelines(answer.pipelines));
      },
    });
    session.current = s;
    s.start();
    return () => s.close();
  }, []);

  // The stats render figure: from the event's arrival to the DOM holding it, laid out (reading
  // offsetHeight makes the browser do the style and layout work now; painting is left out).
  useLayoutEffect(() => {
    if (model.statsArrivedAt === 0) return;
    void document.body.offsetHeight;
    const figures = globalThis.consoleMetrics.statsRenderMs;
    figures.push(performance.now() - model.statsArrivedAt);
    if (figures.length > 100) figures.shift();
    model.statsArrivedAt = 0;
  }, [version]);

  const client: GstClient | null = phase.kind === "open" || phase.kind === "reconnecting"
    ? phase.client
    : null;

  const act: Act = async (label, run) => {
    try {
      await run();
      setToast({ text: `${label}: done`, bad: false });
    } catch (error) {
      const text = `${label}: ${(error as Error).message}`;
      model.note("error", "request", null, text);
      model.changed();
      setToast({ text, bad: true });
    }
  };
  useEffect(() => {
    if (!toast) return;
    const timer = setTimeout(() => setToast(null), toast.bad ? 8000 : 2500);
    return () => clearTimeout(timer);
  }, [toast]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (dialog || !client || event.ctrlKey || event.metaKey || event.altKey) return;
      if (target.matches("input, textarea, select")) {
        if (event.key === "Escape") target.blur();
        return;
      }
      const id = selected;
      const keys: Record<string, () => void> = {
        n: () => setDialog("create"),
        e: () => setDialog("elements"),
        l: () => setShowLog((shown) => !shown),
        "/": () => filterBox.current?.focus(),
        Escape: () => setSelected(null),
      };
      if (id && model.pipelines.get(id)?.kind === "pipeline") {
        keys.s = () => act(`Start ${id}`, () => model.control(client, "startPipeline", id));
        keys.p = () => act(`Pause ${id}`, () => model.control(client, "pausePipeline", id));
        keys.x = () => act(`Stop ${id}`, () => model.control(client, "stopPipeline", id));
      }
      if (id) {
        keys.Delete = () =>
          confirm(`Delete '${id}'? Its definition is removed for good.`) &&
          act(`Delete ${id}`, () => client.deletePipeline({ id }));
      }
      const run = keys[event.key];
      if (run) {
        event.preventDefault();
        run();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [dialog, client, selected]);

  if (phase.kind === "login") {
    return html`<${Login} error=${phase.error} onLogin=${(token: string) =>
      session.current?.login(token)} />`;
  }
  if (!client) {
    return html`
      <main class="connecting">
        <div>
            <h1>GStreamer console</h1><p>Connecting to the server…</p>
            ${phase.kind === "connecting" && phase.reason
              ? html`<p class="sub">Last try: ${phase.reason}</p>`
              : null}
          </div>
      </main>
    `;
  }
  const shown = selected !== null && model.pipelines.has(selected) ? selected : null;
  const layout = [
    "layout",
    shown && "with-details",
    showLog && "with-log",
    phase.kind === "reconnecting" && "stale",
  ];
  return html`<div class=${layout.filter(Boolean).join(" ")}>
    <header class="top">
      <h1>GStreamer console</h1>
      <input ref=${filterBox} type="search" class="filter" placeholder="Filter (/)" aria-label="Filter pipelines"
        value=${filter} onInput=${(e: Event) => setFilter((e.target as HTMLInputElement).value)} />
      <button class="primary" title="New pipeline (n)" onClick=${() =>
    setDialog("create")}>New pipeline</button>
      <button title="Browse elements (e)" onClick=${() => setDialog("elements")}>Elements</button>
      <button title="Event log (l)" aria-pressed=${showLog} onClick=${() =>
    setShowLog(!showLog)}>Events</button>
      <${Health} phase=${phase} />
      ${
    session.current?.token
      ? html`<button class="small" onClick=${() => session.current?.logout()}>Log out</button>`
      : null
  }
    </header>
    ${
    phase.kind === "reconnecting"
      ? html`<div class="banner" role="status">Connection lost: reconnecting…</div>`
      : null
  }
    <main class="list">
      <${PipelineList} model=${model} filter=${filter} selected=${shown} onSelect=${setSelected} />
    </main>
    ${
    shown
      ? html`
        <${Details} key=${shown} client=${client} model=${model} id=${shown} act=${act}
          token=${session.current?.token ?? null} onClose=${() => setSelected(null)} />
      `
      : null
  }
    ${showLog ? html`<${EventLog} onClose=${() => setShowLog(false)} />` : null}
    ${
    dialog === "create"
      ? html`
        <${CreateDialog} client=${client} onClose=${() => setDialog(null)}
          onCreated=${(id: string) => setSelected(id)} />
      `
      : dialog === "elements"
      ? html`<${ElementsDialog} client=${client} onClose=${() => setDialog(null)} />`
      : null
  }
    ${
    toast
      ? html`<div class=${`toast ${toast.bad ? "bad" : ""}`} role="status">${toast.text}</div>`
      : null
  }
  </div>`;
}

render(html`<${App} />`, document.getElementById("app")!);
