/// <reference lib="dom" />
/**
 * One pipeline: its state and controls, a chart, RTSP URLs, its graph, and its elements'
 * properties, read and set live.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type {
  GstClient,
  InspectedElement,
  JsonValue,
  PipelineDetails,
  PipelineElement,
  PropertyInfo,
} from "../../src/client.ts";
import { RateChart } from "./chart.ts";
import { renderDot } from "./graph.ts";
import type { Model } from "./model.ts";
import { StateBadge, viewersTitle } from "./pipelines.ts";
import { rtspUrl } from "./session.ts";
import { formatBitrate, formatBytes, formatDuration, html } from "./ui.ts";
import { playWhep, type WhepPlayer } from "./whep-player.ts";

type Tab = "overview" | "graph" | "properties";

/** inspectElement answers, kept for the page's life: an element type does not change. */
const inspected = new Map<string, Promise<InspectedElement>>();
export function inspect(client: GstClient, type: string): Promise<InspectedElement> {
  let answer = inspected.get(type);
  if (!answer) {
    answer = client.inspectElement({ type });
    answer.catch(() => inspected.delete(type));
    inspected.set(type, answer);
  }
  return answer;
}

export type Act = (label: string, run: () => Promise<unknown>) => Promise<void>;

export function Details(
  { client, model, id, act, onClose, token }: {
    client: GstClient;
    model: Model;
    id: string;
    act: Act;
    onClose: () => void;
    /** The session's token, for WHEP previews. */
    token: string | null;
  },
) {
  const info = model.pipelines.get(id);
  const [tab, setTab] = useState<Tab>("overview");
  const [details, setDetails] = useState<PipelineDetails | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);

  const load = () => {
    client.getPipeline({ id }).then(setDetails, (error) => setLoadError(error.message));
  };
  useEffect(() => {
    setDetails(null);
    setLoadError(null);
    load();
  }, [id]);

  if (!info) {
    return html`
      <aside class="details">
        <p class="empty">'${id}' is gone.</p>
      </aside>
    `;
  }
  const stats = model.stats.get(id);
  const served = servedPaths(details, info.kind, id);
  const buttons: [string, string, () => Promise<unknown>, boolean][] = [
    ["Start", "s", () => model.control(client, "startPipeline", id), info.kind === "pipeline"],
    ["Pause", "p", () => model.control(client, "pausePipeline", id), info.kind === "pipeline"],
    ["Stop", "x", () => model.control(client, "stopPipeline", id), info.kind === "pipeline"],
    ["Send EOS", "", () => client.sendEos({ id }), true],
  ];
  return html`<aside class="details" aria-label=${`Pipeline ${id}`}>
    <header>
      <h2>${id} <${StateBadge} info=${info} /></h2>
      <button class="icon" title="Close (Escape)" aria-label="Close" onClick=${onClose}>✕</button>
    </header>
    ${info.description ? html`<p class="sub">${info.description}</p>` : null}
    <div class="actions" role="toolbar" aria-label="Controls">
      ${
    buttons.filter(([, , , shown]) => shown).map(([label, key, run]) =>
      html`
        <button data-action=${label} title=${key ? `${label} (${key})` : label}
          onClick=${() => act(`${label} ${id}`, run)}>${label}</button>
      `
    )
  }
      <button class="danger" data-action="Delete" title="Delete (Delete)"
        onClick=${() =>
    confirm(`Delete '${id}'? Its definition is removed for good.`) &&
    act(`Delete ${id}`, () => client.deletePipeline({ id }))}>Delete</button>
    </div>
    <nav class="tabs" role="tablist">
      ${
    (["overview", "graph", "properties"] as Tab[]).map((name) =>
      html`
        <button role="tab" aria-selected=${tab === name} class=${tab === name ? "active" : ""}
          onClick=${() => setTab(name)}>${name[0].toUpperCase() + name.slice(1)}</button>
      `
    )
  }
    </nav>
    ${
    tab === "overview"
      ? html`<section>
        <dl class="facts">
          <dt>Kind</dt><dd>${info.kind}</dd>
          <dt>Desired</dt><dd>${info.desiredState}</dd>
          <dt>Restart</dt><dd>${info.restart}, ${info.restarts} restart${
        info.restarts === 1 ? "" : "s"
      }</dd>
          ${
        stats?.rtspClients !== undefined
          ? html`
            <dt>Viewers</dt>
            <dd>${viewersTitle(stats)}</dd>
          `
          : null
      }
          <dt>Uptime</dt><dd>${formatDuration(stats?.uptime ?? 0)}</dd>
          <dt>Position</dt><dd>${
        stats?.position != null ? formatDuration(stats.position / 1000) : "—"
      }</dd>
          ${
        stats?.bytesIn !== undefined
          ? html`
            <dt>Received</dt>
            <dd>${formatBytes(stats.bytesIn)} · ${formatBitrate(stats.bitrate)}${stats.format
              ? ` · ${stats.format}`
              : ""}</dd>
          `
          : null
      }
          <dt>Created</dt><dd>${new Date(info.createdAt).toLocaleString()}</dd>
          ${
        stats?.sinks.length
          ? html`
            <dt>Sinks</dt>
            <dd>${stats.sinks.map((sink) =>
              html`<div>
                <code>${sink.element}</code> ${sink.rendered} rendered, ${sink.dropped} dropped</div>`
            )}</dd>
          `
          : null
      }
        </dl>
        ${
        info.lastError
          ? html`<div class="error-box" role="alert"><strong>Last error</strong> from <code>${info.lastError.element}</code>:
              ${info.lastError.message}${
            info.lastError.debug ? html`<pre>${info.lastError.debug}</pre>` : null
          }</div>`
          : null
      }
        <h3>Rate</h3>
        <${RateChart} history=${model.history.get(id)} version=${model.version}
          withBitrate=${stats?.bitrate !== undefined} />
        <h3>Watch</h3>
        ${
        served.length > 0
          ? html`
            ${served.map((path) => html`<${Preview} key=${path} path=${path} token=${token} />`)}
            <p class="sub">Or open the RTSP URL in a player (ffplay, VLC, gst-play-1.0).</p>
          `
          : html`<p class="sub">Serves no RTSP path. Add <code>rtspserversink path=name</code> to watch it.</p>`
      }
        ${
        details && "launch" in details && details.launch
          ? html`
            <h3>Launch text</h3>
            <pre class="launch">${details.launch}</pre>
          `
          : null
      }
      </section>`
      : tab === "graph"
      ? html`<${Graph} client=${client} id=${id} state=${info.state} />`
      : html`<${Properties} client=${client} details=${details} act=${act} reload=${load} />`
  }
    ${loadError ? html`<p class="bad">${loadError}</p>` : null}
  </aside>`;
}

/** The RTSP paths a pipeline serves: its rtspserversinks', or its id for a push or publish. */
function servedPaths(details: PipelineDetails | null, kind: string, id: string): string[] {
  if (kind !== "pipeline") return [id];
  if (!details || !("elements" in details)) return [];
  return details.elements
    .filter((element) => element.type === "rtspserversink")
    .map((element) => String(element.properties.path ?? element.name));
}

/** A served path: its RTSP URL, and a preview in place over WHEP. */
function Preview({ path, token }: { path: string; token: string | null }) {
  const video = useRef<HTMLVideoElement>(null);
  const player = useRef<WhepPlayer | null>(null);
  const [status, setStatus] = useState<"off" | "starting" | "playing" | { error: string }>("off");
  const url = rtspUrl(path);
  useEffect(() => () => void player.current?.stop(), []);
  const start = () => {
    setStatus("starting");
    playWhep(video.current!, `/whep/${encodeURIComponent(path)}`, token ? { token } : {}).then(
      (started) => {
        player.current = started;
        setStatus("playing");
      },
      (error) => setStatus({ error: (error as Error).message }),
    );
  };
  const stop = () => {
    void player.current?.stop();
    player.current = null;
    setStatus("off");
  };
  return html`<div class="preview" data-path=${path}>
    <div class="row"><code>${url}</code>
      <button class="small" onClick=${() => navigator.clipboard?.writeText(url)}>Copy</button>
      ${
    status === "playing" || status === "starting"
      ? html`<button class="small" data-action="Stop preview" onClick=${stop}>Stop preview</button>`
      : html`<button class="small" data-action="Preview" onClick=${start}>Preview</button>`
  }
      ${status === "starting" ? html`<span class="sub">connecting…</span>` : null}
    </div>
    ${typeof status === "object" ? html`<p class="bad">Preview failed: ${status.error}</p>` : null}
    <video ref=${video} muted autoplay playsinline class=${
    status === "off" || typeof status === "object" ? "hidden" : ""
  }></video>
  </div>`;
}

function Graph({ client, id, state }: { client: GstClient; id: string; state: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const draw = async () => {
    setBusy(true);
    try {
      const { dot } = await client.getPipelineGraph({ id });
      const svg = await renderDot(dot);
      box.current?.replaceChildren(svg);
      setError(null);
    } catch (error) {
      setError((error as Error).message);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => void draw(), [id, state]);
  return html`<section>
    <div class="row"><button class="small" onClick=${draw} disabled=${busy}>Refresh graph</button>
      <span class="sub">${
    busy ? "rendering…" : "caps show once the pipeline has been PAUSED"
  }</span></div>
    ${error ? html`<p class="bad">${error}</p>` : null}
    <div class="graph" ref=${box} aria-label="Pipeline graph"></div>
  </section>`;
}

function Properties(
  { client, details, act, reload }: {
    client: GstClient;
    details: PipelineDetails | null;
    act: Act;
    reload: () => void;
  },
) {
  const elements = details && "elements" in details ? details.elements : [];
  const [name, setName] = useState<string | null>(null);
  const element = elements.find((e) => e.name === name) ?? elements[0];
  if (!details) return html`<p class="sub">Loading…</p>`;
  if (!element) return html`<p class="sub">No elements: this pipeline could not be rebuilt.</p>`;
  return html`
    <section class="properties">
      <label>Element <select value=${element.name} onChange=${(e: Event) =>
        setName((e.target as HTMLSelectElement).value)}>
          ${elements.map((e) => html`<option value=${e.name}>${e.name} (${e.type})</option>`)}
        </select></label>
      <button class="small" onClick=${reload}>Reload</button>
      <${ElementProperties} key=${`${details.id}/${element.name}`} client=${client} id=${details
        .id} element=${element}
        act=${act} />
    </section>
  `;
}

function ElementProperties(
  { client, id, element, act }: {
    client: GstClient;
    id: string;
    element: PipelineElement;
    act: Act;
  },
) {
  const [specs, setSpecs] = useState<PropertyInfo[] | null>(null);
  const [values, setValues] = useState<Record<string, JsonValue>>({});
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (element.type === "rtspserversink") {
      setSpecs([]);
      return;
    }
    let live = true;
    inspect(client, element.type).then(async (inspectedElement) => {
      const readable = inspectedElement.properties.filter((p) => p.flags.includes("readable"));
      if (!live) return;
      setSpecs(readable);
      const read = await Promise.allSettled(
        readable.map((p) =>
          client.getElementProperty({ id, element: element.name, property: p.name })
        ),
      );
      if (!live) return;
      const next: Record<string, JsonValue> = {};
      read.forEach((answer, i) => {
        if (answer.status === "fulfilled") next[readable[i].name] = answer.value.value;
      });
      setValues(next);
    }, (e) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [id, element.name]);

  const set = (property: string, value: JsonValue) =>
    act(`Set ${element.name}.${property}`, async () => {
      const answer = await client.setElementProperty({
        id,
        element: element.name,
        property,
        value,
      });
      setValues((old) => ({ ...old, [property]: answer.value }));
    });

  if (error) return html`<p class="bad">${error}</p>`;
  if (!specs) return html`<p class="sub">Loading properties…</p>`;
  if (specs.length === 0) {
    return html`<p class="sub">The server runs this element itself; see its path in Overview.</p>`;
  }
  return html`
    <table class="props">
      <thead>
        <tr>
          <th>Property</th>
          <th>Value</th>
          <th>Type</th>
        </tr>
      </thead>
      <tbody>${specs.map((spec) =>
        html`
          <tr key=${spec.name} data-property=${spec.name}>
            <td title=${spec.blurb}><code>${spec.name}</code></td>
            <td>
              <${PropertyEditor} spec=${spec} value=${values[spec.name]} onSet=${(v: JsonValue) =>
                set(spec.name, v)} />
            </td>
            <td class="sub">${spec.type}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

function editable(spec: PropertyInfo): boolean {
  return spec.flags.includes("writable") && !spec.flags.includes("construct-only");
}

function PropertyEditor(
  { spec, value, onSet }: {
    spec: PropertyInfo;
    value: JsonValue | undefined;
    onSet: (v: JsonValue) => void;
  },
) {
  const [draft, setDraft] = useState<string | null>(null);
  const shown = value === undefined
    ? ""
    : typeof value === "string"
    ? value
    : JSON.stringify(value);
  if (!editable(spec)) return html`<span class="readonly" title="read-only now">${shown}</span>`;
  // Enums (and flags holding one value) offer their values; flag sets are typed as text.
  if (spec.values?.some((v) => v.nick === value)) {
    return html`
      <select aria-label=${spec.name} value=${shown}
        onChange=${(e: Event) => onSet((e.target as HTMLSelectElement).value)}>
            ${spec.values.map((v) => html`<option value=${v.nick}>${v.nick}</option>`)}
          </select>
    `;
  }
  if (spec.type === "gboolean") {
    return html`
      <input type="checkbox" aria-label=${spec.name} checked=${value === true}
        onChange=${(e: Event) => onSet((e.target as HTMLInputElement).checked)} />
    `;
  }
  const numeric = typeof spec.default === "number";
  const parse = (text: string): JsonValue =>
    numeric && text.trim() !== "" && !Number.isNaN(Number(text)) ? Number(text) : text;
  // What is being typed survives the re-renders of each stats event until Enter or leaving.
  const commit = () => {
    if (draft !== null && draft !== shown) onSet(parse(draft));
    setDraft(null);
  };
  return html`
    <input class="value" aria-label=${spec.name} value=${draft ?? shown}
      onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)}
      onKeyDown=${(e: KeyboardEvent) => {
        if (e.key === "Enter") commit();
        if (e.key === "Escape") setDraft(null);
      }}
      onBlur=${commit} />
  `;
}
