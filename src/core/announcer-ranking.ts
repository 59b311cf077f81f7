import { createHash } from "node:crypto";
import { type IpAddress, formatIp } from "./ip.ts";
import { EXCLUDE_LABEL } from "./well-known.ts";

/**
 * Which node announces an IP. Every speaker runs this over the same inputs and gets the same answer without
 * talking to the others: the eligible nodes are ranked by sha256(node + "#" + ip) (MetalLB's rule, so a mixed
 * fleet during a migration agrees) and the first one owns the IP. A hash ranking moves an IP only when its owner
 * leaves or a node that ranks above the owner joins: removing any other node changes nothing.
 */

/** Why a node may not announce an IP; the speaker puts these into Events and logs. */
export type IneligibleReason =
  "not-alive" | "not-ready" | "excluded-by-label" | "node-selector" | "no-interface" | "no-local-endpoint";

/** An address prefix configured on an interface, e.g. 192.0.2.11/24. */
export interface InterfacePrefix {
  readonly ip: IpAddress;
  readonly bits: number;
}

/** What a speaker publishes about one interface of its node, so the others can judge "has an interface for the IP". */
export interface InterfaceSummary {
  readonly name: string;
  readonly prefixes: readonly InterfacePrefix[];
  /** Carries the default route of that family (the announcer's fallback interface). */
  readonly defaultRoute4: boolean;
  readonly defaultRoute6: boolean;
}

export interface AnnouncerCandidate {
  readonly name: string;
  /** In the membership (heartbeats and Lease); see membership.ts. */
  readonly alive: boolean;
  /** The Node's Ready condition. */
  readonly ready: boolean;
  readonly labels: Readonly<Record<string, string>>;
  /** undefined: the node has not published its interfaces yet; it is then given the benefit of the doubt. */
  readonly interfaces: readonly InterfaceSummary[] | undefined;
}

export interface RankingRequest {
  readonly ip: IpAddress;
  /** The pool's announce.nodeSelector as a predicate (core/selector.ts builds it); absent: every node. */
  readonly nodeSelector?: (labels: Readonly<Record<string, string>>) => boolean;
  /** The pool's announce.interfaces; absent: the interface whose subnet holds the IP, else a default route. */
  readonly interfaces?: readonly string[];
  /**
   * externalTrafficPolicy Local: the nodes with a ready local endpoint, one set per Local Service on this IP
   * (several when Services share it). Absent or empty list: Cluster policy, every node may announce.
   */
  readonly localEndpointNodes?: readonly ReadonlySet<string>[];
}

export interface Exclusion {
  readonly node: string;
  readonly reason: IneligibleReason;
}

export type AnnouncerRanking =
  | {
      readonly ok: true;
      readonly owner: string;
      /** Every eligible node, best first: ranking[1] is the successor a handoff goes to. */
      readonly ranking: readonly string[];
      readonly excluded: readonly Exclusion[];
    }
  | {
      readonly ok: false;
      readonly reason: IneligibleReason | "no-nodes";
      readonly message: string;
      readonly excluded: readonly Exclusion[];
    };

/** The ranking key of a node for an IP: hex sha256 of "node#ip" with the IP in canonical text. */
export function rankKey(node: string, ip: IpAddress): string {
  // A pure function's results, remembered per address object: a full plan hashes every IP once per node, and a
  // membership change plans again with the same pairs.
  let byNode = rankKeys.get(ip);
  if (byNode === undefined) rankKeys.set(ip, (byNode = new Map()));
  let key = byNode.get(node);
  if (key === undefined) {
    key = createHash("sha256")
      .update(`${node}#${formatIp(ip)}`)
      .digest("hex");
    byNode.set(node, key);
  }
  return key;
}
const rankKeys = new WeakMap<IpAddress, Map<string, string>>();

function prefixContains(p: InterfacePrefix, addr: IpAddress): boolean {
  if (p.ip.family !== addr.family) return false;
  const width = addr.family === 4 ? 32 : 128;
  const bits = Math.max(0, Math.min(p.bits, width));
  const shift = SHIFTS[width - bits] ?? BigInt(width - bits);
  return p.ip.value >> shift === addr.value >> shift;
}
/** The shift counts as bigints, made once: a plan tests every IP against every node's prefixes. */
const SHIFTS: readonly bigint[] = Array.from({ length: 129 }, (_, i) => BigInt(i));

/** The announcer's own rule for picking an interface, applied to what a node published about itself. */
export function hasInterfaceFor(
  interfaces: readonly InterfaceSummary[] | undefined,
  addr: IpAddress,
  wanted?: readonly string[],
): boolean {
  if (interfaces === undefined) return true;
  if (wanted !== undefined && wanted.length > 0) return interfaces.some((i) => wanted.includes(i.name));
  return interfaces.some(
    (i) => i.prefixes.some((p) => prefixContains(p, addr)) || (addr.family === 4 ? i.defaultRoute4 : i.defaultRoute6),
  );
}

/** The first reason a node may not announce this IP, or undefined when it may. Checked in a fixed order. */
export function ineligibility(node: AnnouncerCandidate, req: RankingRequest): IneligibleReason | undefined {
  if (!node.alive) return "not-alive";
  if (!node.ready) return "not-ready";
  if (Object.hasOwn(node.labels, EXCLUDE_LABEL)) return "excluded-by-label";
  if (req.nodeSelector !== undefined && !req.nodeSelector(node.labels)) return "node-selector";
  if (!hasInterfaceFor(node.interfaces, req.ip, req.interfaces)) return "no-interface";
  return undefined;
}

const reasonText: Readonly<Record<IneligibleReason, string>> = {
  "not-alive": "not alive in the speaker membership",
  "not-ready": "not Ready",
  "excluded-by-label": `labelled ${EXCLUDE_LABEL}`,
  "node-selector": "not matching the pool's announce.nodeSelector",
  "no-interface": "without an interface for the IP",
  "no-local-endpoint": "without a ready local endpoint (externalTrafficPolicy: Local)",
};

/**
 * With externalTrafficPolicy Local, the candidates are the nodes that hold a ready endpoint of every Local
 * Service on the IP; when Services sharing the IP have their endpoints on disjoint nodes, no node serves all of
 * them, so the nodes serving at least one are taken (better than announcing nowhere).
 */
function localFilter(req: RankingRequest): ((node: string) => boolean) | undefined {
  const sets = req.localEndpointNodes;
  if (sets === undefined || sets.length === 0) return undefined;
  return (node) => sets.every((s) => s.has(node));
}

function unionFilter(req: RankingRequest): (node: string) => boolean {
  const sets = req.localEndpointNodes ?? [];
  return (node) => sets.some((s) => s.has(node));
}

export function rankAnnouncers(nodes: readonly AnnouncerCandidate[], req: RankingRequest): AnnouncerRanking {
  const excluded: Exclusion[] = [];
  let eligible: string[] = [];
  for (const node of nodes) {
    const reason = ineligibility(node, req);
    if (reason === undefined) eligible.push(node.name);
    else excluded.push({ node: node.name, reason });
  }
  const local = localFilter(req);
  if (local !== undefined && eligible.length > 0) {
    let kept = eligible.filter(local);
    if (kept.length === 0) kept = eligible.filter(unionFilter(req));
    for (const name of eligible) if (!kept.includes(name)) excluded.push({ node: name, reason: "no-local-endpoint" });
    eligible = kept;
  }
  excluded.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  if (eligible.length === 0) {
    if (nodes.length === 0) {
      return { ok: false, reason: "no-nodes", message: "no speaker nodes are known", excluded };
    }
    const reason = dominantReason(excluded);
    return {
      ok: false,
      reason,
      message: `no node may announce ${formatIp(req.ip)}: ${summarise(excluded)}`,
      excluded,
    };
  }
  const keyed = eligible.map((name) => ({ name, key: rankKey(name, req.ip) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const ranking = keyed.map((k) => k.name);
  return { ok: true, owner: ranking[0] as string, ranking, excluded };
}

/** The most specific reason that excluded the last nodes: the one an operator should fix first. */
function dominantReason(excluded: readonly Exclusion[]): IneligibleReason {
  const order: readonly IneligibleReason[] = [
    "no-local-endpoint",
    "no-interface",
    "node-selector",
    "excluded-by-label",
    "not-ready",
    "not-alive",
  ];
  for (const r of order) if (excluded.some((e) => e.reason === r)) return r;
  return "not-alive";
}

function summarise(excluded: readonly Exclusion[]): string {
  const byReason = new Map<IneligibleReason, string[]>();
  for (const e of excluded) byReason.set(e.reason, [...(byReason.get(e.reason) ?? []), e.node]);
  return [...byReason].map(([r, ns]) => `${ns.length} ${reasonText[r]} (${ns.join(", ")})`).join("; ");
}

/**
 * Everything a ranking reads from the candidates except who is alive, as text (PlanOptions.context): equal text
 * and equal liveness, equal rankings. Liveness is left out because a plan can follow a node's death without
 * ranking again (planSteps drops the dead from each reused ranking).
 */
export function candidatesSignature(nodes: readonly AnnouncerCandidate[]): string {
  return JSON.stringify(
    nodes.map((n) => [
      n.name,
      n.ready,
      Object.entries(n.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      n.interfaces?.map((i) => [
        i.name,
        i.defaultRoute4,
        i.defaultRoute6,
        i.prefixes.map((p) => `${formatIp(p.ip)}/${p.bits}`),
      ]),
    ]),
  );
}

/**
 * The ranking of `r` once the nodes in `dead` are no longer alive: the same hash order without them, and each of
 * them excluded as not alive. Undefined when no eligible node is left (the caller ranks again for the reason).
 */
export function withoutDead(r: AnnouncerRanking, dead: ReadonlySet<string>): AnnouncerRanking | undefined {
  if (!r.ok) return undefined;
  if (!r.ranking.some((n) => dead.has(n)) && !r.excluded.some((e) => dead.has(e.node))) return r;
  const ranking = r.ranking.filter((n) => !dead.has(n));
  const owner = ranking[0];
  if (owner === undefined) return undefined;
  // Liveness is checked first (ineligibility), so a dead node is "not-alive" whatever else excluded it.
  const excluded = [
    ...r.excluded.map((e) => (dead.has(e.node) ? { node: e.node, reason: "not-alive" as const } : e)),
    ...r.ranking.filter((n) => dead.has(n)).map((node) => ({ node, reason: "not-alive" as const })),
  ].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { ok: true, owner, ranking, excluded };
}
