/** What the domain tells about pipelines: their info, details, events and stats. */
import type { JsonValue } from "../gst/gvalue.ts";
import type { StateName } from "../gst/pipeline.ts";
import type { LinkSpec, RestartPolicy } from "./spec.ts";

export type PipelineKind = "pipeline" | "push" | "publish";

/** What a pipeline should be doing: kept on disk and brought back after a restart. */
export type DesiredState = "playing" | "paused" | "stopped";

export interface PipelineError {
  element: string;
  message: string;
  debug: string | null;
  time: string;
}

export interface PipelineInfo {
  id: string;
  kind: PipelineKind;
  description: string;
  state: StateName;
  desiredState: DesiredState;
  restart: RestartPolicy;
  restarts: number;
  createdAt: string;
  lastError: PipelineError | null;
  /** The node that runs it (GSTREAMER_NODE_ID). */
  node: string;
  /** That node's RTSP base URL, where the paths it serves are read. */
  rtspUrl: string;
}

/** This server as the runner of its pipelines, as PipelineInfo names it. */
export interface NodeAddress {
  node: string;
  rtspUrl: string;
}

/** One element of a pipeline as it runs. */
export interface PipelineElement {
  name: string;
  type: string;
  state: StateName;
  pending?: StateName;
  properties: Record<string, JsonValue>;
}

export type PipelineDetails =
  | PipelineInfo
  | PipelineInfo & {
    elements: PipelineElement[];
    links: LinkSpec[];
    launch: string | null;
  };

export type PipelineEvent =
  | { type: "pipelineCreated"; payload: PipelineInfo }
  | { type: "pipelineDeleted"; payload: { id: string } }
  | { type: "pipelineStateChanged"; payload: { id: string; old: StateName; new: StateName } }
  | { type: "pipelineError"; payload: { id: string } & Omit<PipelineError, "time"> }
  | { type: "pipelineWarning"; payload: { id: string } & Omit<PipelineError, "time"> }
  | { type: "pipelineEos"; payload: { id: string } }
  | {
    type: "pipelineRestarting";
    payload: { id: string; attempt: number; delayMs: number; reason: string };
  };

export interface SinkStatsEntry {
  element: string;
  rendered: number;
  dropped: number;
  fps: number | null;
}

export interface PipelineStats {
  id: string;
  kind: PipelineKind;
  /** RTSP sessions open on the pipeline's paths, for pipelines that serve any. */
  rtspClients?: number;
  /** WebRTC (WHEP) viewers of the same paths. */
  webrtcViewers?: number;
  state: StateName;
  desiredState: DesiredState;
  uptime: number;
  position: number | null;
  duration: number | null;
  sinks: SinkStatsEntry[];
  errors: number;
  warnings: number;
  /** Times the supervisor restarted it (restart policy on-failure or always). */
  restarts: number;
}
