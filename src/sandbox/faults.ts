import type { ApiError } from "./api-errors.ts";
import { internalError, tooManyRequests } from "./api-errors.ts";

/** Which requests a fault applies to: a verb (get, list, watch, create, update, patch, delete) and/or a resource
 * (`services`, or `services/status` for the subresource only). Unset matches everything. */
export interface FaultMatch {
  readonly verb?: string;
  readonly resource?: string;
}

export interface FailNext extends FaultMatch {
  readonly code: 409 | 429 | 500;
  /** How many matching requests fail (default 1). */
  readonly count?: number;
  /** For 429: the Retry-After header and details.retryAfterSeconds (default 1). */
  readonly retryAfterSeconds?: number;
}

interface Rule {
  readonly match: FaultMatch;
  readonly code: 409 | 429 | 500;
  remaining: number;
  readonly retryAfterSeconds: number;
}

export interface FaultState {
  readonly failures: readonly { verb?: string; resource?: string; code: number; remaining: number }[];
  readonly latencyMs: number;
  readonly latencyMatch: FaultMatch;
  readonly expireWatches: number;
  readonly serving: boolean;
}

export interface FaultHooks {
  closeWatches(): number;
  stopServing(): Promise<void>;
  resume(): Promise<void>;
  serving(): boolean;
}

const matches = (m: FaultMatch, verb: string, resource: string, subresource: string): boolean =>
  (m.verb === undefined || m.verb === verb) &&
  (m.resource === undefined || m.resource === resource || m.resource === `${resource}/${subresource}`);

/**
 * Fault injection for reliability tests: the in-process API (`sandbox.faults`) and, through
 * `POST /_sandbox/faults`, the same for tests in another process.
 */
export class Faults {
  readonly #hooks: FaultHooks;
  #rules: Rule[] = [];
  #latencyMs = 0;
  #latencyMatch: FaultMatch = {};
  #expire = 0;

  constructor(hooks: FaultHooks) {
    this.#hooks = hooks;
  }

  /** Ends every open watch now (clients see the stream close and must re-watch). Returns how many. */
  closeWatches(): number {
    return this.#hooks.closeWatches();
  }

  /** The next `count` watches get an ERROR event with a 410 Gone Status, as after etcd compaction. */
  expireNextWatches(count = 1): void {
    this.#expire += count;
  }

  /** The next `count` requests matching verb/resource are answered with `code` (409 Conflict, 429, 500). */
  failNext(f: FailNext): void {
    const match: FaultMatch = {
      ...(f.verb === undefined ? {} : { verb: f.verb }),
      ...(f.resource === undefined ? {} : { resource: f.resource }),
    };
    this.#rules.push({ match, code: f.code, remaining: f.count ?? 1, retryAfterSeconds: f.retryAfterSeconds ?? 1 });
  }

  /** Adds `ms` of latency before every matching request is handled (0 turns it off). */
  setLatency(ms: number, match: FaultMatch = {}): void {
    this.#latencyMs = Math.max(0, ms);
    this.#latencyMatch = match;
  }

  /** Closes the listening socket and every connection: clients get connection refused. Data is kept. */
  stopServing(): Promise<void> {
    return this.#hooks.stopServing();
  }

  /** Listens again on the same address and port, with the same data. */
  resume(): Promise<void> {
    return this.#hooks.resume();
  }

  /** Removes every pending failure, latency and watch expiry. */
  clear(): void {
    this.#rules = [];
    this.#latencyMs = 0;
    this.#latencyMatch = {};
    this.#expire = 0;
  }

  state(): FaultState {
    return {
      failures: this.#rules.map((r) => ({ ...r.match, code: r.code, remaining: r.remaining })),
      latencyMs: this.#latencyMs,
      latencyMatch: this.#latencyMatch,
      expireWatches: this.#expire,
      serving: this.#hooks.serving(),
    };
  }

  /** @internal consumed by the server for each API request */
  takeFailure(
    verb: string,
    resource: string,
    subresource: string,
    conflictTarget: () => ApiError,
  ): ApiError | undefined {
    const i = this.#rules.findIndex((r) => matches(r.match, verb, resource, subresource));
    const rule = this.#rules[i];
    if (rule === undefined) return undefined;
    if (--rule.remaining <= 0) this.#rules.splice(i, 1);
    if (rule.code === 409) return conflictTarget();
    if (rule.code === 429) return tooManyRequests(rule.retryAfterSeconds);
    return internalError("injected fault");
  }

  /** @internal */
  latencyFor(verb: string, resource: string, subresource: string): number {
    return this.#latencyMs > 0 && matches(this.#latencyMatch, verb, resource, subresource) ? this.#latencyMs : 0;
  }

  /** @internal */
  takeWatchExpiry(): boolean {
    if (this.#expire <= 0) return false;
    this.#expire--;
    return true;
  }
}
