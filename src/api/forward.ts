/**
 * Any node answers (docs/cluster.md): a request about a pipeline another node holds goes to that
 * node, and its reply comes back unchanged; createPipeline goes to the node named, or to the
 * least-loaded one; getPipelines gathers every node's. A request that came from another node
 * (RequestContext.peer) is always answered here, so nothing is forwarded twice.
 */
import { DomainError } from "../domain/errors.ts";
import { nodeUnavailable } from "../domain/cluster.ts";
import type { NodeInfo } from "../domain/store_postgres.ts";
import type { PipelineInfo } from "../domain/types.ts";
import type { Reply, RequestType, Route } from "./protocol.ts";

/** What routing needs to know about the cluster, and how it reaches another node. */
export interface ClusterView {
  self: string;
  /** Whether this node has pipeline `id` (running, being built, or unbuildable). */
  holds(id: string): boolean;
  /** The stored owner of `id` and whether it is up; null when no pipeline `id` is stored. */
  ownerOf(
    id: string,
  ): Promise<{ node: string | null; advertiseUrl: string | null; up: boolean } | null>;
  nodes(): Promise<NodeInfo[]>;
  localPipelines(): PipelineInfo[];
  send(
    node: string,
    advertiseUrl: string,
    type: string,
    payload: unknown,
    timeoutMs?: number,
  ): Promise<Reply>;
}

/**
 * How long getPipelines waits for each other node: one that does not answer (frozen, cut off) is
 * left out rather than holding up the list.
 */
const LIST_TIMEOUT_MS = 2000;

/** Requests about one pipeline, named by `payload.id`. */
const pipelineRequests = new Set<RequestType>([
  "startPipeline",
  "pausePipeline",
  "stopPipeline",
  "deletePipeline",
  "getPipeline",
  "getElementProperty",
  "setElementProperty",
  "sendEos",
  "seek",
  "getPipelineGraph",
  "movePipeline",
]);

export function clusterRoute(view: ClusterView): Route {
  return async (type, payload) => {
    const fields = (payload ?? {}) as Record<string, unknown>;
    if (pipelineRequests.has(type)) {
      const id = fields.id as string;
      if (view.holds(id)) return null;
      const owner = await view.ownerOf(id);
      if (owner === null || owner.node === view.self) return null; // PIPELINE_NOT_FOUND here
      if (owner.node === null || !owner.up || owner.advertiseUrl === null) {
        throw new DomainError(
          "NODE_UNAVAILABLE",
          `Pipeline '${id}' is ` +
            (owner.node === null
              ? "held by no node"
              : `held by node '${owner.node}', which is down`) +
            " at the moment; a node takes it over within a lease (GSTREAMER_LEASE_SECONDS)",
          { id, node: owner.node },
        );
      }
      return await view.send(owner.node, owner.advertiseUrl, type, payload);
    }
    if (type === "createPipeline") {
      const { node: named, ...rest } = fields;
      if (named === view.self) return null;
      const nodes = await view.nodes();
      const target = named === undefined
        ? leastLoaded(nodes, view.self)
        : nodes.find((node) => node.id === named && node.up);
      if (!target && named !== undefined) throw nodeUnavailable(String(named), nodes);
      if (!target || target.id === view.self) return null; // every node full: LIMIT_REACHED here
      return await view.send(target.id, target.advertiseUrl, type, rest);
    }
    if (type === "getPipelines") return await allPipelines(view);
    return null;
  };
}

/** The up node with the most room for its capacity; this one among equals. */
function leastLoaded(nodes: NodeInfo[], self: string): NodeInfo | undefined {
  const load = (node: NodeInfo) => node.pipelines / Math.max(1, node.capacity);
  return nodes.filter((node) => node.up && node.pipelines < node.capacity).sort((a, b) =>
    load(a) - load(b) || Number(b.id === self) - Number(a.id === self)
  )[0];
}

/** Every node's pipelines: this node's, then each other up node's, in node order. */
async function allPipelines(view: ClusterView): Promise<Reply> {
  const others = (await view.nodes()).filter((node) => node.up && node.id !== view.self);
  const replies = await Promise.all(
    others.map((node) =>
      view.send(node.id, node.advertiseUrl, "getPipelines", {}, LIST_TIMEOUT_MS).catch((
        error: Error,
      ) => {
        console.error(`getPipelines of node '${node.id}' failed: ${error.message}`);
        return null;
      })
    ),
  );
  const pipelines = [...view.localPipelines()];
  for (const reply of replies) {
    if (reply?.ok) pipelines.push(...(reply.payload as { pipelines: PipelineInfo[] }).pipelines);
  }
  return {
    type: "result",
    request: "getPipelines",
    requestId: null,
    ok: true,
    payload: { pipelines },
  };
}
