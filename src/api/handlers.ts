/** What each request does: the registry's operations and introspection, by request type. */
import type { RecordingHub } from "../domain/recording.ts";
import type { PipelineRegistry } from "../domain/registry.ts";
import type { NodeInfo } from "../domain/store_postgres.ts";
import { RTSP_SINK, rtspSinkInspection, rtspSinkSummary } from "../domain/mounts.ts";
import { inspectElement, listElements } from "../gst/introspect.ts";
import { eventTypes, type Handlers } from "./protocol.ts";

export function requestHandlers(
  registry: PipelineRegistry,
  recordings: RecordingHub,
  options: {
    statsIntervalMs: number;
    nodes: () => Promise<NodeInfo[]>;
    move: (id: string, node: string) => Promise<{ id: string; node: string; rtspUrl: string }>;
    /** A client's stats interval may have changed: the next stats round is timed again. */
    subscribed: () => void;
  },
): Handlers {
  return {
    // `node` chose this node (src/api/forward.ts); it is not part of the definition.
    createPipeline: ({ node: _, desiredState, ...spec }) => registry.create(spec, { desiredState }),
    startPipeline: (p) => registry.start(p.id),
    pausePipeline: (p) => registry.pause(p.id),
    stopPipeline: (p) => registry.stop(p.id),
    deletePipeline: (p) => registry.delete(p.id),
    getPipelines: () => ({ pipelines: registry.list() }),
    getPipeline: (p) => registry.get(p.id),
    getElementProperty: (p) => registry.getElementProperty(p.id, p.element, p.property),
    setElementProperty: (p) => registry.setElementProperty(p.id, p.element, p.property, p.value),
    sendEos: (p) => registry.sendEos(p.id),
    seek: (p) => registry.seek(p.id, p.position, p.rate, p.flush),
    getPipelineGraph: (p) => registry.graph(p.id),
    listElements: (p) => ({ elements: listElements(p.filter, [rtspSinkSummary]) }),
    inspectElement: (p) => p.type === RTSP_SINK ? rtspSinkInspection() : inspectElement(p.type),
    startRecording: ({ path, format = "mp4", segmentSeconds = 60, retention = {} }) =>
      recordings.start(path, { format, segmentSeconds, retention }),
    stopRecording: (p) => recordings.stop(p.path),
    listRecordings: (p) => recordings.list(p),
    deleteRecording: (p) => recordings.delete(p.path, p.file),
    getNodes: async () => ({ nodes: await options.nodes() }),
    movePipeline: (p) => options.move(p.id, p.node),
    subscribe: (p, context) => {
      context.subscription.events = p.events ? new Set(p.events) : undefined;
      context.subscription.pipelines = p.pipelines ? new Set(p.pipelines) : undefined;
      context.subscription.statsIntervalMs = p.statsIntervalMs ?? options.statsIntervalMs;
      options.subscribed();
      return {
        events: p.events ?? [...eventTypes],
        pipelines: p.pipelines ?? null,
        statsIntervalMs: context.subscription.statsIntervalMs,
      };
    },
  };
}
