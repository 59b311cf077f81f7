import type { Heartbeat } from "./heartbeat-codec.ts";

/**
 * Which speakers are alive, decided from two sources:
 *
 * - the slow, authoritative path: one coordination.k8s.io Lease per node, renewed every `renewIntervalMs`
 *   (one API write per 2 s per node). A Lease is judged by when *this* speaker saw its renewTime change, never by
 *   comparing clocks (as client-go's leader election does), so clock skew between nodes cannot shorten it;
 * - the fast path: authenticated UDP heartbeats every `heartbeatIntervalMs`; a peer silent for `deadAfterMs`
 *   is out at once, although its Lease would stay valid for seconds.
 *
 * A peer never heard over UDP (heartbeats blocked by a firewall, or just started) counts while its Lease is
 * valid: failover then takes the Lease duration, but two speakers never both believe they own an IP.
 *
 * Fencing: a speaker that has not renewed its own Lease for `fenceAfterMs` says so in its heartbeats (apiOk
 * false). While any member can reach the API, members that cannot are left out — the cut-off speaker leaves
 * itself out too, withdraws its IPs, and only then tells the others. `fenceAfterMs` < `leaseDurationMs`, and the
 * others start a Lease's duration no earlier than its renewal really happened, so the cut-off speaker has
 * withdrawn before any peer could judge its Lease expired. When nobody reaches the API (API server down), the
 * members keep serving on heartbeats alone rather than all withdrawing.
 *
 * Pure: time comes in as arguments (`now` monotonic ms, `wallNow` ms since epoch for heartbeat timestamps).
 */
export interface MembershipTiming {
  readonly heartbeatIntervalMs: number;
  readonly deadAfterMs: number;
  readonly renewIntervalMs: number;
  readonly fenceAfterMs: number;
  readonly leaseDurationMs: number;
  /** Heartbeats stamped further than this from the receiver's clock are refused (replays after a restart). */
  readonly maxClockSkewMs: number;
}

export const defaultTiming: MembershipTiming = Object.freeze({
  heartbeatIntervalMs: 150,
  deadAfterMs: 600,
  renewIntervalMs: 2_000,
  fenceAfterMs: 6_000,
  leaseDurationMs: 10_000,
  maxClockSkewMs: 10_000,
});

/** Refuses timings that would break the fencing argument or the failover target; returns the problems. */
export function checkTiming(t: MembershipTiming): string[] {
  const problems: string[] = [];
  if (t.heartbeatIntervalMs <= 0) problems.push("heartbeat interval must be positive");
  if (t.deadAfterMs < 2 * t.heartbeatIntervalMs) problems.push("dead-after must cover at least 2 heartbeats");
  if (t.fenceAfterMs < 2 * t.renewIntervalMs) problems.push("fence-after must cover at least 2 Lease renewals");
  if (t.fenceAfterMs + t.renewIntervalMs > t.leaseDurationMs) {
    problems.push("fence-after plus one renewal interval must stay below the Lease duration");
  }
  return problems;
}

export type HeartbeatRejection = "self" | "old-incarnation" | "replay" | "clock-skew";

export type PeerHeartbeatState = "alive" | "silent" | "leaving" | "never";

export interface PeerView {
  readonly node: string;
  readonly heartbeat: PeerHeartbeatState;
  readonly leaseValid: boolean;
  readonly apiOk: boolean;
  readonly member: boolean;
}

export interface MembershipView {
  /** The nodes that may announce now, this speaker included when it may. */
  readonly members: ReadonlySet<string>;
  readonly selfApiOk: boolean;
  /** This speaker is alive but left out because it cannot reach the API while others can. */
  readonly fenced: boolean;
  readonly peers: readonly PeerView[];
}

interface Peer {
  incarnation: number;
  seq: number;
  heardAt: number | undefined;
  apiOk: boolean;
  leaving: boolean;
  leaseKey: string | undefined;
  leaseSeenAt: number | undefined;
}

export class Membership {
  readonly self: string;
  readonly timing: MembershipTiming;
  readonly #peers = new Map<string, Peer>();
  #renewedAt: number | undefined;
  #ownLeaseKey: string | undefined;
  /** When the Lease watch last showed a renewal of this speaker's own Lease. */
  #ownLeaseSeenAt: number | undefined;
  #stopping = false;

  constructor(self: string, timing: MembershipTiming = defaultTiming) {
    this.self = self;
    this.timing = timing;
  }

  #peer(node: string): Peer {
    let p = this.#peers.get(node);
    if (p === undefined) {
      p = {
        incarnation: 0,
        seq: -1,
        heardAt: undefined,
        apiOk: false,
        leaving: false,
        leaseKey: undefined,
        leaseSeenAt: undefined,
      };
      this.#peers.set(node, p);
    }
    return p;
  }

  /** An authenticated heartbeat arrived. Returns why it was refused, or undefined when accepted. */
  heartbeat(hb: Heartbeat, now: number, wallNow: number): HeartbeatRejection | undefined {
    if (hb.node === this.self) return "self";
    if (Math.abs(wallNow - hb.sentAtMs) > this.timing.maxClockSkewMs) return "clock-skew";
    const p = this.#peer(hb.node);
    if (hb.incarnation < p.incarnation) return "old-incarnation";
    if (hb.incarnation === p.incarnation && hb.seq <= p.seq) return "replay";
    if (hb.incarnation > p.incarnation) p.leaving = false;
    p.incarnation = hb.incarnation;
    p.seq = hb.seq;
    p.heardAt = now;
    p.apiOk = hb.apiOk;
    if (hb.kind === "leaving") p.leaving = true;
    return undefined;
  }

  /**
   * A peer's Lease as the informer shows it. `renewKey` is its renewTime text (any change is a renewal);
   * `renewWallMs` lets a Lease that was already stale when first seen count as expired from the start.
   */
  lease(node: string, renewKey: string | undefined, renewWallMs: number | undefined, now: number, wallNow: number) {
    if (node === this.self) {
      // This speaker's own renewals, as the same watch delivers them: how far that watch has got (see view()).
      if (renewKey !== undefined && renewKey !== this.#ownLeaseKey) this.#ownLeaseSeenAt = now;
      this.#ownLeaseKey = renewKey;
      return;
    }
    const p = this.#peer(node);
    if (renewKey === p.leaseKey) return;
    const first = p.leaseKey === undefined;
    p.leaseKey = renewKey;
    if (renewKey === undefined) p.leaseSeenAt = undefined;
    else if (
      first &&
      renewWallMs !== undefined &&
      wallNow - renewWallMs > this.timing.leaseDurationMs + this.timing.maxClockSkewMs
    ) {
      p.leaseSeenAt = undefined;
    } else p.leaseSeenAt = now;
  }

  leaseGone(node: string): void {
    const p = this.#peers.get(node);
    if (p === undefined) return;
    p.leaseKey = undefined;
    p.leaseSeenAt = undefined;
  }

  /** Forget a node entirely (its Node object was deleted). */
  forget(node: string): void {
    this.#peers.delete(node);
  }

  /** This speaker's own Lease write succeeded at `now`. */
  renewed(now: number): void {
    this.#renewedAt = now;
  }

  /** Graceful shutdown: this speaker leaves the membership in its own view (successors follow its "leaving"). */
  stopping(): void {
    this.#stopping = true;
  }

  selfApiOk(now: number): boolean {
    return this.#renewedAt !== undefined && now - this.#renewedAt < this.timing.fenceAfterMs;
  }

  view(now: number): MembershipView {
    const selfApiOk = this.selfApiOk(now);
    const peers: PeerView[] = [];
    // A peer's Lease is as old as the watch says, not older: when this speaker's own renewals succeed but reach
    // its Lease watch late (an overloaded API server fanning out thousands of Service updates), its peers' do too.
    // Judged against the wall instead, every peer would look expired at once and this speaker would take over
    // every IP while the peers still announce them. Only while its own renewals succeed: otherwise its own Lease
    // shows nothing about the watch.
    const watchAt = selfApiOk && this.#ownLeaseSeenAt !== undefined ? Math.min(now, this.#ownLeaseSeenAt) : now;
    for (const [node, p] of this.#peers) {
      const leaseValid = p.leaseSeenAt !== undefined && watchAt - p.leaseSeenAt < this.timing.leaseDurationMs;
      const heartbeat: PeerHeartbeatState = p.leaving
        ? "leaving"
        : p.heardAt === undefined
          ? "never"
          : now - p.heardAt <= this.timing.deadAfterMs
            ? "alive"
            : "silent";
      const candidate = heartbeat === "alive" || (heartbeat === "never" && leaseValid);
      // While this speaker can see the API, a peer's claim is checked against its Lease; when it cannot, the
      // Leases it sees are stale and the peer's own word is all there is.
      const apiOk = heartbeat === "never" ? leaseValid : p.apiOk && (!selfApiOk || leaseValid);
      peers.push({ node, heartbeat, leaseValid, apiOk, member: candidate });
    }
    const candidates = peers.filter((p) => p.member);
    const selfCandidate = !this.#stopping;
    const anyApiOk = (selfCandidate && selfApiOk) || candidates.some((p) => p.apiOk);
    const members = new Set<string>();
    const result: PeerView[] = [];
    for (const p of peers) {
      const member = p.member && (!anyApiOk || p.apiOk);
      if (member) members.add(p.node);
      result.push({ ...p, member });
    }
    const selfMember = selfCandidate && (!anyApiOk || selfApiOk);
    if (selfMember) members.add(this.self);
    result.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    return { members, selfApiOk, fenced: selfCandidate && !selfMember, peers: result };
  }
}
