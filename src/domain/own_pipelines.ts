/**
 * The server's own pipelines (WHEP and WHIP sessions, HLS streams, recordings): built from
 * definitions the server writes, never listed among the clients' pipelines, each owned and
 * released by the hub that made it.
 */
import { buildPipeline } from "./builder.ts";
import { RtspMounts } from "./mounts.ts";
import { ManagedPipeline } from "./pipeline.ts";
import { ElementPolicy } from "./policy.ts";
import type { ElementSpec, LinkSpec } from "./spec.ts";
import type { PipelineEvent } from "./types.ts";

const UNLISTED = { node: "", rtspUrl: "" };

export class OwnPipelines {
  /**
   * Every element and descriptor is the server's choice; file locations stay inside `directory`.
   */
  readonly #policy: ElementPolicy;
  readonly #mounts = new RtspMounts(undefined);

  constructor(directory: string) {
    this.#policy = new ElementPolicy({ mediaDir: directory, allow: ["*"], descriptors: true });
  }

  /** Builds a pipeline in NULL; its bus events go to `emit`. */
  async build(
    id: string,
    elements: ElementSpec[],
    links: LinkSpec[],
    emit: (event: PipelineEvent) => void,
    startTimeoutMs = 10_000,
  ): Promise<ManagedPipeline> {
    const definition = { pipeline: { elements, links } };
    const built = await buildPipeline(id, definition, {
      policy: this.#policy,
      mounts: this.#mounts,
    });
    return new ManagedPipeline(
      { id, kind: "pipeline", definition, createdAt: new Date(), built },
      // Never listed, so no node names them; their phases are not the clients' (/metrics).
      {
        emit,
        mounts: this.#mounts,
        policy: this.#policy,
        startTimeoutMs,
        stateChangeTimeoutMs: 30_000,
        address: UNLISTED,
        observePhase: () => {},
        storeWrite: () => undefined,
      },
    );
  }
}

/** Why an event ends a pipeline's run (an error's message, or the end of the stream), or null. */
export function endOfRun(event: PipelineEvent): string | null {
  if (event.type === "pipelineEos") return "the stream ended";
  if (event.type === "pipelineError") return event.payload.message;
  return null;
}
