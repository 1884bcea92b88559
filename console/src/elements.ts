/// <reference lib="dom" />
/** Every element factory the server has, searchable, with what inspectElement tells of each. */
import { useEffect, useRef, useState } from "preact/hooks";
import type { ElementSummary, GstClient, InspectedElement } from "../../src/client.ts";
import { inspect } from "./details.ts";
import { html } from "./ui.ts";

let listed: Promise<ElementSummary[]> | null = null;

export function ElementsDialog({ client, onClose }: { client: GstClient; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [elements, setElements] = useState<ElementSummary[] | null>(null);
  const [filter, setFilter] = useState("");
  const [chosen, setChosen] = useState<InspectedElement | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    dialog.current!.showModal();
    listed ??= client.listElements({}).then((answer) => answer.elements);
    listed.then(setElements, (e) => {
      listed = null;
      setError(e.message);
    });
  }, []);

  const needle = filter.trim().toLowerCase();
  const shown = (elements ?? []).filter((e) =>
    needle === "" || e.name.includes(needle) || e.longName.toLowerCase().includes(needle) ||
    e.klass.toLowerCase().includes(needle)
  );
  const choose = (name: string) =>
    inspect(client, name).then(setChosen, (e) => setError(e.message));

  return html`<dialog ref=${dialog} class="elements" onClose=${onClose} aria-labelledby="elements-title">
    <header class="row"><h2 id="elements-title">Elements</h2>
      <input type="search" placeholder="Filter by name or class" autofocus value=${filter}
        aria-label="Filter elements" onInput=${(e: Event) =>
    setFilter((e.target as HTMLInputElement).value)} />
      <span class="sub">${elements ? `${shown.length} of ${elements.length}` : "loading…"}</span>
      <button class="icon" aria-label="Close" onClick=${() => dialog.current?.close()}>✕</button>
    </header>
    ${error ? html`<p class="bad">${error}</p>` : null}
    <div class="split">
      <ul class="element-list" role="listbox" aria-label="Element factories">
        ${
    shown.slice(0, 400).map((e) =>
      html`
        <li key=${e.name} role="option" tabindex="0"
          aria-selected=${chosen?.name === e.name}
          class=${chosen?.name === e.name ? "selected" : ""}
          onClick=${() => choose(e.name)}
          onKeyDown=${(ev: KeyboardEvent) => ev.key === "Enter" && choose(e.name)}>
                  <code>${e.name}</code><span class="sub">${e.klass}</span></li>
      `
    )
  }
      </ul>
      <div class="element-info">
        ${
    chosen
      ? html`
        <h3>${chosen.longName} <code>${chosen.name}</code></h3>
        <p>${chosen.description}</p>
        <p class="sub">${chosen.klass} · plugin ${chosen.plugin} · rank ${chosen.rank}</p>
        <h4>Pads</h4>
        <ul>${chosen.padTemplates.map((p) =>
          html`<li><code>${p.name}</code> ${p.direction}, ${p.presence}
              <div class="caps">${p.caps}</div></li>`
        )}</ul>
        <h4>Properties</h4>
        <table class="props">
          <tbody>${chosen.properties.map((p) =>
            html`
              <tr>
                <td><code>${p.name}</code></td>
                <td>${p.blurb}<div class="sub">${p.type}${p.values
                  ? `: ${p.values.map((v) => v.nick).join(", ")}`
                  : ""} ·
                              default ${JSON.stringify(p.default)} · ${p.flags.join(
                                ", ",
                              )}</div></td>
              </tr>
            `
          )}</tbody>
        </table>
      `
      : html`<p class="sub">Choose an element to see its pads and properties.</p>`
  }
      </div>
    </div>
  </dialog>`;
}
