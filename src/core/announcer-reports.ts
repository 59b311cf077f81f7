/**
 * Who announces each IP, as the speakers report it in their membership Leases, for the controller's
 * `lodestone.dev/announcing-node` annotation. A report is information only: it never decides who answers.
 *
 * Several nodes may report one IP for a moment: a node that died still reports what it held until its Lease
 * expires, while its successor already reports the IPs it took over; a node that comes back reports an IP again
 * before the node that held it meanwhile drops it. The node that began reporting the IP most recently is named (the
 * one that took it last), by the time this table first saw the IP in that node's report; a tie goes to the first
 * name in order. A node whose Lease expired names nothing. Every change returns the IPs whose owner it may have
 * changed, so the caller's work is proportional to the change, not to the number of IPs.
 */
/** IPs handled per step of reportSteps (about a millisecond). */
const STEP_IPS = 1_000;

export class AnnouncerReports {
  /** Per node: IP key → when this table first saw it in that node's report; and whether its Lease is live. */
  readonly #nodes = new Map<string, { ips: Map<string, number>; expiresAt: number }>();
  /** Per IP key: the nodes reporting it. */
  readonly #reporters = new Map<string, Set<string>>();

  /**
   * A node's report (the IP keys it announces) and when its Lease expires, both as read at `now` (monotonic ms).
   * Returns the IP keys whose owner may have changed.
   */
  report(node: string, ips: Iterable<string>, expiresAt: number, now: number): string[] {
    const steps = this.reportSteps(node, ips, expiresAt, now);
    for (;;) {
      const r = steps.next();
      if (r.done === true) return r.value;
    }
  }

  /** `report`, a step per STEP_IPS addresses, for a caller that spreads a large report over event-loop turns. */
  *reportSteps(node: string, ips: Iterable<string>, expiresAt: number, now: number): Generator<void, string[], void> {
    let entry = this.#nodes.get(node);
    const wasLive = entry !== undefined && entry.expiresAt > now;
    if (entry === undefined) this.#nodes.set(node, (entry = { ips: new Map(), expiresAt }));
    entry.expiresAt = expiresAt;
    const changed: string[] = [];
    const next = new Set<string>();
    let n = 0;
    for (const k of ips) {
      next.add(k);
      if (++n % STEP_IPS === 0) yield;
    }
    for (const k of entry.ips.keys()) {
      if (++n % STEP_IPS === 0) yield;
      if (next.has(k)) continue;
      entry.ips.delete(k);
      this.#unlink(k, node);
      changed.push(k);
    }
    const live = expiresAt > now;
    for (const k of next) {
      if (++n % STEP_IPS === 0) yield;
      if (entry.ips.has(k)) {
        // Coming back to life (a renewal after an expiry): every IP it reports may change hands again.
        if (live !== wasLive) changed.push(k);
        continue;
      }
      entry.ips.set(k, now);
      let set = this.#reporters.get(k);
      if (set === undefined) this.#reporters.set(k, (set = new Set()));
      set.add(node);
      changed.push(k);
    }
    return changed;
  }

  /** A renewal with the same report: only the expiry moves (an expired node coming back names its IPs again). */
  renew(node: string, expiresAt: number, now: number): string[] {
    const entry = this.#nodes.get(node);
    if (entry === undefined) return [];
    const wasLive = entry.expiresAt > now;
    entry.expiresAt = expiresAt;
    return wasLive === expiresAt > now ? [] : [...entry.ips.keys()];
  }

  /** The node's Lease is gone: it names nothing any more. */
  remove(node: string): string[] {
    const entry = this.#nodes.get(node);
    if (entry === undefined) return [];
    this.#nodes.delete(node);
    const changed = [...entry.ips.keys()];
    for (const k of changed) this.#unlink(k, node);
    return changed;
  }

  /** Nodes whose Lease expired by `now` (and were live before `since`): the IPs they reported. */
  expired(since: number, now: number): string[] {
    const changed: string[] = [];
    for (const entry of this.#nodes.values()) {
      if (entry.expiresAt <= now && entry.expiresAt > since) changed.push(...entry.ips.keys());
    }
    return changed;
  }

  /** The earliest expiry after `now`, for the caller's timer. */
  nextExpiry(now: number): number | undefined {
    let next: number | undefined;
    for (const e of this.#nodes.values())
      if (e.expiresAt > now && (next === undefined || e.expiresAt < next)) next = e.expiresAt;
    return next;
  }

  /** The node to name for an IP at `now`, if any live node reports it. */
  owner(ipKey: string, now: number): string | undefined {
    const set = this.#reporters.get(ipKey);
    if (set === undefined) return undefined;
    let best: string | undefined;
    let bestAt = -Infinity;
    for (const node of set) {
      const entry = this.#nodes.get(node);
      const at = entry?.ips.get(ipKey);
      if (entry === undefined || at === undefined || entry.expiresAt <= now) continue;
      if (at > bestAt || (at === bestAt && best !== undefined && node < best)) {
        best = node;
        bestAt = at;
      }
    }
    return best;
  }

  #unlink(ipKey: string, node: string): void {
    const set = this.#reporters.get(ipKey);
    if (set === undefined) return;
    set.delete(node);
    if (set.size === 0) this.#reporters.delete(ipKey);
  }
}
