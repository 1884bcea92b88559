/**
 * Any node answers (docs/cluster.md): a request about a pipeline another node holds goes to that
 * node, and its reply comes back unchanged; createPipeline goes to the node named, or to the
 * least-loaded one; getPipelines gathers every node's. A request that came from another node
 * (RequestContext.peer) is always answered here, so nothing is forwarded twice.
 */
import { DomainError } from "../domain/errors.ts";
import { nodeUnavailable, unlessAway } from "../domain/cluster.ts";
import type { NodeInfo } from "../domain/store_postgres.ts";
import type { PipelineInfo } from "../domain/types.ts";
import type { Reply, RequestType, Route } from "./protocol.ts";

/** What routing needs to know about the cluster, and how it reaches another node. */
export interface ClusterView {
  self: string;
  /** No other node can exist: the store is not PostgreSQL. */
  alone: boolean;
  /** Whether this node has pipeline `id` (running, being built, or unbuildable). */
  holds(id: string): boolean;
  /** The stored owner of `id` and whether it is up; null when no pipeline `id` is stored. */
  ownerOf(
    id: string,
  ): Promise<{ node: string | null; advertiseUrl: string | null; up: boolean } | null>;
  nodes(): Promise<NodeInfo[]>;
  localPipelines(): PipelineInfo[];
  /** listRecordings answered here, from this node's recordings and disk. */
  localRecordings(payload: unknown): Promise<Record<string, unknown[]>>;
  /** Whether this node records `path`. */
  recordsHere(path: string): boolean;
  /** Another node that records `path`, and whether it is up; null when none. */
  recorderOf(path: string): Promise<{ node: string; advertiseUrl: string; up: boolean } | null>;
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
  const elsewhere = routeElsewhere(view);
  return (type, payload) => {
    const fields = (payload ?? {}) as Record<string, unknown>;
    // Answered here, as can be told without a look-up: a pipeline this node has, or a create
    // that names no node on a server alone.
    if (pipelineRequests.has(type) && view.holds(fields.id as string)) return null;
    if (type === "createPipeline" && view.alone && fields.node === undefined) return null;
    return elsewhere(type, payload);
  };
}

/** The rest of the route: the requests that need the database or the other nodes to decide. */
function routeElsewhere(view: ClusterView): Route {
  return async (type, payload) => {
    const fields = (payload ?? {}) as Record<string, unknown>;
    if (pipelineRequests.has(type)) {
      const id = fields.id as string;
      if (view.holds(id)) return null;
      const owner = await unlessAway(view.ownerOf(id), `the node that holds pipeline '${id}'`);
      if (owner === null) return null; // PIPELINE_NOT_FOUND here
      if (owner.node === view.self) {
        // Handed to this node (movePipeline), which builds it at its next round.
        throw new DomainError(
          "NODE_UNAVAILABLE",
          `Pipeline '${id}' is being taken over by this node ('${view.self}'); try again in a ` +
            "moment",
          { id, node: view.self },
        );
      }
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
      // The database away: made here, where storing it fails with STORAGE_FAILED naming it.
      const nodes = await view.nodes().catch(() => null);
      if (nodes === null) return null;
      const target = named === undefined
        ? leastLoaded(nodes, view.self)
        : nodes.find((node) => node.id === named && node.up);
      if (!target && named !== undefined) throw nodeUnavailable(String(named), nodes);
      if (!target || target.id === view.self) return null; // every node full: LIMIT_REACHED here
      return await view.send(target.id, target.advertiseUrl, type, rest);
    }
    if (type === "getPipelines") {
      return await gather(view, type, payload, { pipelines: view.localPipelines() });
    }
    if (type === "listRecordings") {
      return await gather(view, type, payload, await view.localRecordings(payload));
    }
    if (type === "stopRecording") {
      const path = fields.path as string;
      if (view.recordsHere(path)) return null;
      const recorder = await unlessAway(
        view.recorderOf(path),
        `the node that records '${path}'`,
      );
      if (recorder === null) return null; // RECORDING_NOT_FOUND here
      if (!recorder.up) {
        throw new DomainError(
          "NODE_UNAVAILABLE",
          `The recording of '${path}' is on node '${recorder.node}', which is down; it goes on ` +
            "when that node is back",
          { path, node: recorder.node },
        );
      }
      return await view.send(recorder.node, recorder.advertiseUrl, type, payload);
    }
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

/**
 * A list request answered by every node: this node's `local` answer, then each other up node's,
 * in node order, list by list (`pipelines`; `recordings` and `segments`).
 */
async function gather(
  view: ClusterView,
  type: RequestType,
  payload: unknown,
  local: Record<string, unknown[]>,
): Promise<Reply> {
  // The database away: this node's own list, which is all it can know.
  const nodes = await view.nodes().catch(() => []);
  const others = nodes.filter((node) => node.up && node.id !== view.self);
  const replies = await Promise.all(
    others.map((node) =>
      view.send(node.id, node.advertiseUrl, type, payload, LIST_TIMEOUT_MS).catch((
        error: Error,
      ) => {
        console.error(`${type} of node '${node.id}' failed: ${error.message}`);
        return null;
      })
    ),
  );
  const merged: Record<string, unknown[]> = {};
  for (const [key, items] of Object.entries(local)) merged[key] = [...items];
  for (const reply of replies) {
    if (!reply?.ok) continue;
    for (const [key, items] of Object.entries(reply.payload as Record<string, unknown[]>)) {
      merged[key]?.push(...items);
    }
  }
  return { type: "result", request: type, requestId: null, ok: true, payload: merged };
}
