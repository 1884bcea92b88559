/**
 * This server as one node of several sharing a PostgreSQL database (docs/cluster.md): it
 * heartbeats, renews the leases of the pipelines it holds, claims pipelines no live node holds, and
 * stops its copies of pipelines it no longer holds, before anything else.
 *
 * Fencing: a renewal sent at local time t moves the lease to the database's now() + lease, which is
 * later than t + lease. So a node that stops everything once t + lease - margin has passed without
 * a newer renewal has stopped before any other node can claim. A frozen node (SIGSTOP) plays nothing
 * while frozen; when it resumes, its GStreamer threads run at once, and the fence check (every
 * FENCE_CHECK_MS) stops them: that is the window in which a pipeline can play on two nodes.
 */
import { DomainError, errorMessage } from "./errors.ts";
import type { PipelineRegistry } from "./registry.ts";
import type { NodeInfo, PostgresStore } from "./store_postgres.ts";

/** How often the node checks that its leases are still good: the fencing window's main part. */
export const FENCE_CHECK_MS = 100;
/** Most pipelines one claim takes, so that nodes share what a dead node held. */
const CLAIM_BATCH = 8;
/** How often movePipeline looks whether the target took the pipeline. */
const MOVE_POLL_MS = 50;

/** A node that is not known, or not up. */
export function nodeUnavailable(node: string, nodes: NodeInfo[]): DomainError {
  const known = nodes.find((entry) => entry.id === node);
  const up = nodes.filter((entry) => entry.up).map((entry) => entry.id);
  return new DomainError(
    "NODE_UNAVAILABLE",
    (known ? `Node '${node}' is down` : `No node '${node}'`) +
      `; the nodes up are: ${up.join(", ") || "none"}`,
    { node, up },
  );
}

/** What `lookup` finds in the database; NODE_UNAVAILABLE, saying why, when it cannot be asked. */
export async function unlessAway<T>(lookup: Promise<T>, what: string): Promise<T> {
  try {
    return await lookup;
  } catch (error) {
    throw new DomainError(
      "NODE_UNAVAILABLE",
      `Cannot tell ${what}: ${errorMessage(error)}; try again once the database is back`,
      {},
    );
  }
}

export interface ClusterOptions {
  store: PostgresStore;
  registry: PipelineRegistry;
  /** This node's load, as getNodes shows it. */
  load: () => { cpuPercent: number };
}

export class ClusterNode {
  readonly #options: ClusterOptions;
  readonly #leaseMs: number;
  /** When the last renewal that succeeded was sent (performance.now()). */
  #renewedAt: number;
  #ticking = false;
  /** A wake-up came during a round: run another at once after it. */
  #again = false;
  #timers: ReturnType<typeof setInterval>[] = [];

  /** `openedAt`: when the store's claims at start-up were sent. */
  constructor(options: ClusterOptions, openedAt: number) {
    this.#options = options;
    this.#leaseMs = options.store.node.leaseSeconds * 1000;
    this.#renewedAt = openedAt;
  }

  get id(): string {
    return this.#options.store.node.id;
  }

  /** Says where this node is reached (once it listens), and that it is up. */
  register(urls: { advertiseUrl: string; rtspUrl: string }): Promise<void> {
    return this.#options.store.register(urls);
  }

  /** Heartbeats, renews and claims every quarter lease from now on; checks the fence often. */
  start(): void {
    this.#timers.push(
      setInterval(() => this.#fenceIfLate(), FENCE_CHECK_MS),
      setInterval(() => void this.#tick(), this.#leaseMs / 4),
    );
  }

  /** Runs a round now (a pipeline was handed to this node). */
  wake(): void {
    void this.#tick();
  }

  /**
   * Hands pipeline `id`, held here, to node `target`: stops it here, gives the row to `target` and
   * wakes it, and waits (up to a lease) for it to take the pipeline, which it then builds and brings
   * to its desired state.
   */
  async move(id: string, target: string): Promise<{ id: string; node: string; rtspUrl: string }> {
    const { registry, store } = this.#options;
    const stored = registry.storedForm(id);
    const nodes = await this.nodes();
    const to = nodes.find((node) => node.id === target);
    if (to?.id === this.id) return { id, node: to.id, rtspUrl: to.rtspUrl };
    if (!to?.up) throw nodeUnavailable(target, nodes);
    // Refused before it stops here: a full node would not take it, and it would be off a lease.
    if (to.pipelines >= to.capacity) {
      throw new DomainError(
        "LIMIT_REACHED",
        `Node '${target}' holds ${to.pipelines} pipelines, its limit (GSTREAMER_MAX_PIPELINES ` +
          `there, ${to.capacity}): pipeline '${id}' stays on node '${this.id}'`,
        { id, node: target, limit: to.capacity },
      );
    }
    await registry.evict(id);
    let epoch: number;
    try {
      epoch = await store.handOver(id, target);
    } catch (error) {
      await registry.adopt(stored); // still held here: it plays here again
      throw error;
    }
    const deadline = performance.now() + this.#leaseMs;
    while (!(await store.taken(id, target, epoch))) {
      if (performance.now() > deadline) {
        throw new DomainError(
          "NODE_UNAVAILABLE",
          `Pipeline '${id}' was handed to node '${target}', which did not take it within ` +
            `${this.#leaseMs / 1000} s; whichever node claims it next runs it`,
          { id, node: target },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, MOVE_POLL_MS));
    }
    return { id, node: target, rtspUrl: to.rtspUrl };
  }

  /** Every node, with its load and whether it is up. */
  nodes(): Promise<NodeInfo[]> {
    return unlessAway(this.#options.store.nodes(), "the nodes");
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  /** A renewal is late enough that another node may soon claim: stop every copy now. */
  #fenceIfLate(): void {
    const margin = Math.min(1000, this.#leaseMs / 5);
    if (performance.now() - this.#renewedAt < this.#leaseMs - margin) return;
    const held = this.#options.store.held();
    if (held.length === 0) return;
    console.error(
      `Node '${this.id}' could not renew its leases for ${
        Math.round(performance.now() - this.#renewedAt)
      } ms: stopping its ${held.length} pipelines, which other nodes may claim now`,
    );
    this.#drop(held);
  }

  #drop(ids: string[]): void {
    for (const id of ids) {
      this.#options.store.forget(id);
      void this.#options.registry.evict(id).catch((error) =>
        console.error(`Stopping pipeline '${id}' after its lease was lost: ${errorMessage(error)}`)
      );
    }
  }

  async #tick(): Promise<void> {
    if (this.#ticking) { // a slow round is not stacked; a wake-up runs one more after it
      this.#again = true;
      return;
    }
    this.#ticking = true;
    this.#again = false;
    try {
      this.#fenceIfLate();
      const sentAt = performance.now();
      const lost = await this.#options.store.renew(this.#options.load());
      this.#renewedAt = sentAt;
      if (lost.length > 0) {
        console.error(`Node '${this.id}' lost ${lost.join(", ")} to other nodes: stopping them`);
        this.#drop(lost);
      }
      const { registry, store } = this.#options;
      const room = Math.min(CLAIM_BATCH, store.node.capacity - registry.storedCount);
      for (const claimed of await store.claim(room)) {
        console.log(
          `Node '${this.id}' took over pipeline '${claimed.id}' (epoch ${claimed.epoch})`,
        );
        void registry.adopt(claimed);
      }
    } catch (error) {
      // The database is away: the fence check stops everything if it stays away too long.
      console.error(`Node '${this.id}' could not renew its leases: ${errorMessage(error)}`);
    } finally {
      this.#ticking = false;
      if (this.#again) void this.#tick();
    }
  }
}
