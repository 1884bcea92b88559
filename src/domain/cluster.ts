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
import { errorMessage } from "./errors.ts";
import type { PipelineRegistry } from "./registry.ts";
import type { NodeInfo, PostgresStore } from "./store_postgres.ts";

/** How often the node checks that its leases are still good: the fencing window's main part. */
export const FENCE_CHECK_MS = 100;
/** Most pipelines one claim takes, so that nodes share what a dead node held. */
const CLAIM_BATCH = 8;

export interface ClusterOptions {
  store: PostgresStore;
  registry: PipelineRegistry;
  /** This node's load, as getNodes shows it. */
  load: () => { pipelines: number; cpuPercent: number };
}

export class ClusterNode {
  readonly #options: ClusterOptions;
  readonly #leaseMs: number;
  /** When the last renewal that succeeded was sent (performance.now()). */
  #renewedAt: number;
  #ticking = false;
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

  /** Every node, with its load and whether it is up. */
  nodes(): Promise<NodeInfo[]> {
    return this.#options.store.nodes();
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
    if (this.#ticking) return; // a slow round is skipped, not stacked
    this.#ticking = true;
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
    }
  }
}
