/// <reference lib="dom" />
/**
 * Creating a pipeline from gst-launch text or JSON. The server's error is shown under the text,
 * and the part of the text it names (details.offset and length) is marked and selected.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { type GstClient, GstClientError, type RestartPolicy } from "../../src/client.ts";
import { html } from "./ui.ts";

type Mode = "launch" | "json";

const EXAMPLES: Record<Mode, string> = {
  launch:
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! " +
    "x264enc tune=zerolatency key-int-max=30 ! rtspserversink path=ball",
  json: JSON.stringify(
    {
      elements: [
        { type: "videotestsrc", name: "src", properties: { "is-live": true, pattern: "smpte" } },
        { type: "fakesink", name: "out", properties: { sync: true } },
      ],
    },
    null,
    2,
  ),
};

interface Problem {
  message: string;
  /** The part of the text at fault. */
  span?: { offset: number; length: number };
  /** The form field at fault, when it is not the text. */
  field?: "id" | "description";
}

/** A JSON.parse error's position, as V8 writes it ("... at position 12 (line 2 column 3)"). */
function jsonProblem(error: Error): Problem {
  const position = /at position (\d+)/.exec(error.message);
  return {
    message: `Not JSON: ${error.message}`,
    ...(position ? { span: { offset: Number(position[1]), length: 1 } } : {}),
  };
}

function serverProblem(error: unknown): Problem {
  if (!(error instanceof GstClientError)) return { message: String(error) };
  const details = error.details ?? {};
  const path = typeof details.path === "string" ? details.path : "";
  const field = path === "payload.id"
    ? "id"
    : path === "payload.description"
    ? "description"
    : undefined;
  const offset = typeof details.offset === "number" ? details.offset : undefined;
  const length = typeof details.length === "number" ? details.length : 1;
  return {
    message: `${error.code}: ${error.message}`,
    ...(offset !== undefined ? { span: { offset, length } } : {}),
    ...(field ? { field } : {}),
  };
}

export function CreateDialog(
  { client, onClose, onCreated }: {
    client: GstClient;
    onClose: () => void;
    onCreated: (id: string) => void;
  },
) {
  const dialog = useRef<HTMLDialogElement>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  const [mode, setMode] = useState<Mode>("launch");
  const [id, setId] = useState("");
  const [description, setDescription] = useState("");
  const [restart, setRestart] = useState<RestartPolicy>("never");
  const [start, setStart] = useState(true);
  const [texts, setTexts] = useState<Record<Mode, string>>({
    launch: EXAMPLES.launch,
    json: EXAMPLES.json,
  });
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);
  const text = texts[mode];

  useEffect(() => {
    dialog.current!.showModal();
  }, []);

  const showProblem = (found: Problem) => {
    setProblem(found);
    if (found.span && area.current) {
      area.current.focus();
      area.current.setSelectionRange(found.span.offset, found.span.offset + found.span.length);
    }
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    let pipeline: string | Record<string, unknown> = text;
    let payload: Record<string, unknown> = {};
    if (mode === "json") {
      try {
        const parsed = JSON.parse(text);
        // A whole createPipeline payload is taken too; its fields win over the form's.
        if (parsed && typeof parsed === "object" && "pipeline" in parsed) {
          payload = parsed;
          pipeline = parsed.pipeline;
        } else {
          pipeline = parsed;
        }
      } catch (error) {
        return showProblem(jsonProblem(error as Error));
      }
    }
    const request = {
      id: id.trim(),
      ...(description ? { description } : {}),
      restart,
      ...payload,
      pipeline,
    } as Parameters<GstClient["createPipeline"]>[0];
    setBusy(true);
    try {
      const created = await client.createPipeline(request);
      setProblem(null);
      if (start) {
        await client.startPipeline({ id: created.id }).catch(() => {});
      }
      onCreated(created.id);
      dialog.current?.close();
    } catch (error) {
      showProblem(serverProblem(error));
    } finally {
      setBusy(false);
    }
  };

  const span = problem?.span;
  return html`
    <dialog ref=${dialog} class="create" onClose=${onClose} aria-labelledby="create-title">
      <form onSubmit=${submit}>
          <h2 id="create-title">New pipeline</h2>
          <div class="grid2">
            <label>Id <input name="id" required autofocus value=${id} placeholder="camera-1"
              aria-invalid=${problem?.field === "id"}
              onInput=${(e: Event) => setId((e.target as HTMLInputElement).value)} /></label>
            <label>Restart policy <select name="restart" value=${restart}
              onChange=${(e: Event) =>
                setRestart((e.target as HTMLSelectElement).value as RestartPolicy)}>
              <option value="never">never</option>
              <option value="on-failure">on-failure</option>
              <option value="always">always</option>
            </select></label>
          </div>
          <label>Description <input name="description" value=${description} placeholder="optional"
            onInput=${(e: Event) => setDescription((e.target as HTMLInputElement).value)} /></label>
          <div class="tabs" role="tablist">
            ${(["launch", "json"] as Mode[]).map((m) =>
              html`
                <button type="button" role="tab"
                  aria-selected=${mode === m} class=${mode === m ? "active" : ""}
                  onClick=${() => {
                    setMode(m);
                    setProblem(null);
                  }}>${m === "launch" ? "gst-launch text" : "JSON"}</button>
              `
            )}
          </div>
          <textarea ref=${area} name="pipeline" spellcheck="false" rows="8"
            aria-label=${mode === "launch" ? "gst-launch text" : "JSON description"}
            aria-invalid=${span !== undefined}
            value=${text}
            onInput=${(e: Event) => {
              const value = (e.target as HTMLTextAreaElement).value;
              setTexts((old) => ({ ...old, [mode]: value }));
              setProblem(null);
            }}></textarea>
          ${problem
            ? html`<div class="problem" role="alert">
          ${
              span
                ? html`<pre class="where">${
                  text.slice(Math.max(0, span.offset - 60), span.offset)
                }<mark>${
                  text.slice(span.offset, span.offset + Math.max(1, span.length)) || " "
                }</mark>${
                  text.slice(span.offset + Math.max(1, span.length), span.offset + span.length + 60)
                }</pre>`
                : null
            }
          <p class="message">${problem.message}</p>
        </div>`
            : null}
          <div class="row end">
            <label class="check"><input type="checkbox" name="start" checked=${start}
              onChange=${(e: Event) =>
                setStart((e.target as HTMLInputElement).checked)} /> Start it</label>
            <button type="button" onClick=${() => dialog.current?.close()}>Cancel</button>
            <button type="submit" class="primary" disabled=${busy}>${busy
              ? "Creating…"
              : "Create"}</button>
          </div>
        </form>
    </dialog>
  `;
}
