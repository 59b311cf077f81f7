import { type AnnounceClaim, type AnnouncePlan, gainsToSettle, ownersOf } from "./announce-plan.ts";
import { ipKey } from "./ip.ts";

/**
 * The speaker's decision between a plan and the announcer: which of the IPs this node wins it announces now.
 * Gains whose previous owner is still a member wait a settle time (that owner must hear the news and withdraw
 * first); gains from a dead, leaving or fenced owner are taken at once and counted as failovers. Pure and keyed
 * by IP: a step costs one look-up per planned IP, never a scan of the other claims. The clock is the caller's
 * (`now`, milliseconds of a monotonic clock).
 */
export interface ClaimState {
  /** What the announcer was last given, by IP key. */
  readonly claimed: ReadonlyMap<string, AnnounceClaim>;
  /** Owner of each IP by the last plan (an IP still settling keeps its old owner); undefined before the first. */
  readonly owners: ReadonlyMap<string, string> | undefined;
  /** IPs this node won from a live member, by IP key: since when it waits. */
  readonly pending: ReadonlyMap<string, number>;
  /** IPs taken over from a node that was no longer a member, since start. */
  readonly failovers: number;
}

export const initialClaimState: ClaimState = Object.freeze({
  claimed: new Map(),
  owners: undefined,
  pending: new Map(),
  failovers: 0,
});

export interface PlanStep {
  readonly self: string;
  readonly now: number;
  /** undefined: not ready to plan (caches not synced, no Lease renewed yet): announce nothing. */
  readonly plan: AnnouncePlan | undefined;
  readonly members: ReadonlySet<string>;
  readonly settleMs: number;
  /**
   * Only for the first plan of a process: who holds each IP right now (the plan without this node). The IPs it
   * wins are held by peers until they hear of it, so they settle like any gain from a live member.
   */
  readonly inheritedOwners?: ReadonlyMap<string, string>;
}

export interface ClaimDecision {
  readonly state: ClaimState;
  /** What the announcer announces from now on, in IP order. Unchanged claims are the same objects as before. */
  readonly claims: readonly AnnounceClaim[];
  readonly added: readonly AnnounceClaim[];
  readonly removed: readonly AnnounceClaim[];
  /** Whether the announcer must be told: an IP came or went, or a claim's interfaces, schedule or Services. */
  readonly changed: boolean;
}

export function decideClaims(state: ClaimState, step: PlanStep): ClaimDecision {
  const { plan, now, self } = step;
  if (plan === undefined) return diff(state, [], state);
  const previousOwners = state.owners ?? step.inheritedOwners ?? new Map<string, string>();
  const settle = gainsToSettle(self, previousOwners, plan, step.members);
  const wins = (k: string): boolean => {
    const p = plan.byKey.get(k);
    return p !== undefined && p.announcer.ok && p.announcer.owner === self;
  };
  const pending = new Map<string, number>();
  for (const [k, since] of state.pending) if (settle.has(k) || wins(k)) pending.set(k, since);
  for (const k of settle) if (!pending.has(k) && !state.claimed.has(k)) pending.set(k, now);
  let failovers = state.failovers;
  const claims: AnnounceClaim[] = [];
  for (const c of plan.claims) {
    const k = ipKey(c.ip);
    const since = pending.get(k);
    if (since !== undefined) {
      if (now - since < step.settleMs) continue;
      pending.delete(k);
    }
    const before = previousOwners.get(k);
    if (before !== undefined && before !== self && !step.members.has(before)) failovers++;
    claims.push(c);
  }
  const owners = ownersOf(plan);
  // An IP still settling keeps its old owner, so the next round does not mistake it for ours already.
  for (const k of pending.keys()) {
    const before = previousOwners.get(k);
    if (before !== undefined) owners.set(k, before);
  }
  return diff(state, claims, { owners, pending, failovers });
}

/** This node withdraws everything (hand-off, shutdown); what it learnt about owners stays. */
export function withdrawAll(state: ClaimState): ClaimState {
  return { ...state, claimed: new Map() };
}

function sameClaim(a: AnnounceClaim, b: AnnounceClaim): boolean {
  const ai = a.interfaces ?? [];
  const bi = b.interfaces ?? [];
  return (
    a.key === b.key &&
    ai.length === bi.length &&
    ai.every((x, i) => x === bi[i]) &&
    a.gratuitous.intervalMs === b.gratuitous.intervalMs &&
    a.gratuitous.count === b.gratuitous.count &&
    a.gratuitous.refreshSeconds === b.gratuitous.refreshSeconds
  );
}

function diff(
  state: ClaimState,
  wanted: readonly AnnounceClaim[],
  next: Pick<ClaimState, "owners" | "pending" | "failovers">,
): ClaimDecision {
  const claimed = new Map<string, AnnounceClaim>();
  const claims: AnnounceClaim[] = [];
  const added: AnnounceClaim[] = [];
  let changed = false;
  for (const c of wanted) {
    const k = ipKey(c.ip);
    const before = state.claimed.get(k);
    if (before === undefined) added.push(c);
    // The same object when nothing changed, so the announcer can tell an unchanged claim at a glance.
    const kept = before !== undefined && sameClaim(before, c) ? before : c;
    if (kept !== before) changed = true;
    claimed.set(k, kept);
    claims.push(kept);
  }
  const removed: AnnounceClaim[] = [];
  for (const [k, c] of state.claimed) if (!claimed.has(k)) removed.push(c);
  if (removed.length > 0) changed = true;
  return { state: { claimed, ...next }, claims, added, removed, changed };
}
