import { type AnnouncerCandidate, type AnnouncerRanking, rankAnnouncers, withoutDead } from "./announcer-ranking.ts";
import { type IpAddress, compareIp, formatIp, ipKey } from "./ip.ts";

/**
 * From the cluster's state to "which IPs does this node announce": groups Services by IP (Services sharing an
 * IP are announced from one node), finds each IP's pool, ranks its announcers, and keeps this node's wins as
 * claims for the announcer. Pure; the speaker calls it whenever an input changes.
 */

/** The speaker's view of a Service (kube/ maps a V1Service onto it). */
export interface AnnouncedService {
  /** "namespace/name" */
  readonly key: string;
  readonly namespace: string;
  /** status.loadBalancer.ingress[].ip, written by the controller. */
  readonly ingressIps: readonly IpAddress[];
  /** spec.externalIPs, announced only where the pool opts in. */
  readonly externalIps: readonly IpAddress[];
  readonly localTraffic: boolean;
  /** Nodes holding a ready endpoint of this Service (from EndpointSlices); used when localTraffic. */
  readonly endpointNodes: ReadonlySet<string>;
}

/** The part of a pool the speaker needs, with its selectors already turned into predicates. */
export interface AnnouncePool {
  readonly name: string;
  readonly contains: (ip: IpAddress) => boolean;
  /** The pool's serviceAllocation namespace restrictions (externalIPs are accepted only from allowed tenants). */
  readonly allowsNamespace: (namespace: string) => boolean;
  readonly interfaces?: readonly string[];
  readonly nodeSelector?: (labels: Readonly<Record<string, string>>) => boolean;
  readonly externalIPs: boolean;
  readonly gratuitous: { readonly intervalMs: number; readonly count: number; readonly refreshSeconds?: number };
}

/** Exactly the shape of the announcer's Claim (src/net/announcer.ts). */
export interface AnnounceClaim {
  readonly key: string;
  readonly ip: IpAddress;
  readonly interfaces?: readonly string[];
  readonly gratuitous: { readonly intervalMs: number; readonly count: number; readonly refreshSeconds?: number };
}

export interface PlannedIp {
  /** ipKey(ip), computed once: every later step looks the IP up by it. */
  readonly key: string;
  readonly ip: IpAddress;
  readonly pool: string;
  /** Keys of the Services using this IP, sorted. */
  readonly services: readonly string[];
  readonly announcer: AnnouncerRanking;
  /** Ranked among the nodes with local endpoints (a Service on it has externalTrafficPolicy Local). */
  readonly localTraffic: boolean;
}

/** An IP a Service carries that no node announces, and why (for a Warning Event). */
export interface Unannounced {
  readonly service: string;
  readonly ip: IpAddress;
  readonly reason: "outside-pools" | "external-ips-disabled" | "namespace-not-allowed" | "ingress-of-another-service";
  readonly message: string;
}

export interface AnnouncePlan {
  /** In IP order. */
  readonly ips: readonly PlannedIp[];
  /** The same, by IP key. */
  readonly byKey: ReadonlyMap<string, PlannedIp>;
  /** The caller's name for the nodes and pools this plan ranked with (PlanOptions.context). */
  readonly context: string | undefined;
  /** The candidates alive when this plan ranked. */
  readonly alive: ReadonlySet<string>;
  /** Each planned IP's pool's announce settings, by pool name: what a claim of it carries. */
  readonly poolSettings: ReadonlyMap<string, Pick<AnnounceClaim, "interfaces" | "gratuitous">>;
  /** What this node announces now. */
  readonly claims: readonly AnnounceClaim[];
  readonly unannounced: readonly Unannounced[];
}

interface Group {
  key: string;
  ip: IpAddress;
  pool: AnnouncePool;
  services: AnnouncedService[];
}

export interface PlanOptions {
  /**
   * A name for everything a ranking reads besides the IP's own Services and the candidates' liveness: the
   * candidates' other fields and the pools (e.g. their fields and the pool ConfigMaps' versions). With `previous`
   * planned under the same name, an IP whose Services did not change keeps its ranking, so a plan after a Service
   * change costs the grouping, not the hashing; after nodes died (and none came alive) it keeps the ranking
   * without them, so a failover costs a look at each IP, not a ranking of each.
   */
  readonly context?: string;
  readonly previous?: AnnouncePlan;
}

/** Groups of IPs ranked between two yields of planSteps; a step stays well under a millisecond. */
const STEP = 256;

export function planAnnouncements(
  self: string,
  services: readonly AnnouncedService[],
  pools: readonly AnnouncePool[],
  nodes: readonly AnnouncerCandidate[],
  options: PlanOptions = {},
): AnnouncePlan {
  const steps = planSteps(self, services, pools, nodes, options);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/**
 * planAnnouncements in steps: the generator yields every few hundred Services or IPs, so a caller on an event
 * loop can let other work (heartbeats, ARP/NDP answers) run between steps. It holds no clock; when to go on is
 * the caller's choice.
 */
export function* planSteps(
  self: string,
  services: readonly AnnouncedService[],
  pools: readonly AnnouncePool[],
  nodes: readonly AnnouncerCandidate[],
  options: PlanOptions = {},
): Generator<void, AnnouncePlan, void> {
  const groups = new Map<string, Group>();
  const unannounced: Unannounced[] = [];
  const add = (svc: AnnouncedService, ip: IpAddress, pool: AnnouncePool) => {
    const k = ipKey(ip);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, { key: k, ip, pool, services: [svc] });
    else if (!g.services.includes(svc)) g.services.push(svc);
  };
  const poolOf = (ip: IpAddress) => pools.find((p) => p.contains(ip));
  // Who holds each IP in status.loadBalancer.ingress: the allocator's decision, which an externalIP never overrides.
  const ingressHolders = new Map<string, string[]>();
  for (const svc of services) {
    for (const ip of svc.ingressIps) {
      const holders = ingressHolders.get(ipKey(ip));
      if (holders === undefined) ingressHolders.set(ipKey(ip), [svc.key]);
      else holders.push(svc.key);
    }
  }
  let n = 0;
  for (const svc of services) {
    if (++n % (4 * STEP) === 0) yield;
    for (const ip of svc.ingressIps) {
      const pool = poolOf(ip);
      if (pool === undefined) {
        unannounced.push({
          service: svc.key,
          ip,
          reason: "outside-pools",
          message: `${formatIp(ip)} is in no Lodestone pool, so no node announces it`,
        });
      } else add(svc, ip, pool);
    }
    for (const ip of svc.externalIps) {
      const pool = poolOf(ip);
      // CVE-2020-8554: any tenant may write spec.externalIPs; announcing arbitrary ones would let it capture
      // another's traffic. Never an IP another Service holds as its ingress (Services sharing an IP through the
      // allocator each hold it there themselves); then only IPs of a pool that opts in, and only for namespaces
      // that pool serves.
      const holders = ingressHolders.get(ipKey(ip)) ?? [];
      if (holders.length > 0 && !holders.includes(svc.key)) {
        unannounced.push({
          service: svc.key,
          ip,
          reason: "ingress-of-another-service",
          message: `externalIP ${formatIp(ip)} refused: it is the load-balancer IP of Service ${holders.join(", ")}, which always wins`,
        });
      } else if (pool === undefined) {
        unannounced.push({
          service: svc.key,
          ip,
          reason: "outside-pools",
          message: `externalIP ${formatIp(ip)} is in no Lodestone pool, so no node announces it`,
        });
      } else if (!pool.externalIPs) {
        unannounced.push({
          service: svc.key,
          ip,
          reason: "external-ips-disabled",
          message: `externalIP ${formatIp(ip)} is in pool ${pool.name}, which does not set announce.externalIPs`,
        });
      } else if (!pool.allowsNamespace(svc.namespace)) {
        unannounced.push({
          service: svc.key,
          ip,
          reason: "namespace-not-allowed",
          message: `externalIP ${formatIp(ip)}: pool ${pool.name} does not serve namespace ${svc.namespace}`,
        });
      } else add(svc, ip, pool);
    }
  }
  const ips: PlannedIp[] = [];
  const byKey = new Map<string, PlannedIp>();
  const claims: AnnounceClaim[] = [];
  const poolSettings = new Map<string, Pick<AnnounceClaim, "interfaces" | "gratuitous">>();
  const alive = new Set(nodes.filter((c) => c.alive).map((c) => c.name));
  const sameContext =
    options.context !== undefined && options.previous?.context === options.context ? options.previous : undefined;
  // A node that came alive may rank above an IP's owner: then every IP is ranked again.
  const previous =
    sameContext !== undefined && [...alive].every((n) => sameContext.alive.has(n)) ? sameContext : undefined;
  const dead = new Set(previous === undefined ? [] : [...previous.alive].filter((n) => !alive.has(n)));
  const sorted = [...groups.values()].sort((a, b) => compareIp(a.ip, b.ip));
  yield;
  n = 0;
  for (const g of sorted) {
    if (++n % STEP === 0) yield;
    const keys = g.services.map((s) => s.key);
    if (keys.length > 1) keys.sort();
    const local = g.services.filter((s) => s.localTraffic).map((s) => s.endpointNodes);
    const before = previous?.byKey.get(g.key);
    // Endpoints are not part of the context: an IP of a Local Service is ranked again every time.
    const reusable =
      before !== undefined &&
      local.length === 0 &&
      !before.localTraffic &&
      before.pool === g.pool.name &&
      sameKeys(before.services, keys);
    const kept =
      reusable && before !== undefined
        ? dead.size === 0
          ? before.announcer
          : withoutDead(before.announcer, dead)
        : undefined;
    const planned: PlannedIp =
      kept !== undefined && before !== undefined
        ? kept === before.announcer
          ? before
          : { ...before, announcer: kept }
        : {
            key: g.key,
            ip: g.ip,
            pool: g.pool.name,
            services: keys,
            localTraffic: local.length > 0,
            announcer: rankAnnouncers(nodes, {
              ip: g.ip,
              ...(g.pool.nodeSelector === undefined ? {} : { nodeSelector: g.pool.nodeSelector }),
              ...(g.pool.interfaces === undefined ? {} : { interfaces: g.pool.interfaces }),
              ...(local.length === 0 ? {} : { localEndpointNodes: local }),
            }),
          };
    ips.push(planned);
    byKey.set(g.key, planned);
    let settings = poolSettings.get(g.pool.name);
    if (settings === undefined) {
      settings = {
        ...(g.pool.interfaces === undefined ? {} : { interfaces: g.pool.interfaces }),
        gratuitous: g.pool.gratuitous,
      };
      poolSettings.set(g.pool.name, settings);
    }
    if (planned.announcer.ok && planned.announcer.owner === self) claims.push(claimOf(planned, settings));
  }
  return { ips, byKey, context: options.context, alive, poolSettings, claims, unannounced };
}

const claimOf = (p: PlannedIp, settings: Pick<AnnounceClaim, "interfaces" | "gratuitous">): AnnounceClaim => ({
  key: p.services.join(","),
  ip: p.ip,
  ...settings,
});

/**
 * The plan after nodes died, when nothing else changed since `previous` (the same Services, slices, pools and
 * `context`, no node came alive): each IP keeps its ranking without the dead, so a failover costs a look at each
 * IP — no grouping of Services, no ranking. Undefined when that does not hold, or when an IP is left with no
 * eligible node (a full plan then says why).
 */
export function followDeaths(
  self: string,
  previous: AnnouncePlan,
  nodes: readonly AnnouncerCandidate[],
  context: string,
): AnnouncePlan | undefined {
  if (previous.context !== context) return undefined;
  const alive = new Set(nodes.filter((c) => c.alive).map((c) => c.name));
  if (![...alive].every((n) => previous.alive.has(n))) return undefined;
  const dead = new Set([...previous.alive].filter((n) => !alive.has(n)));
  const ips: PlannedIp[] = [];
  const byKey = new Map<string, PlannedIp>();
  const claims: AnnounceClaim[] = [];
  for (const p of previous.ips) {
    const announcer = p.announcer.ok ? withoutDead(p.announcer, dead) : p.announcer;
    if (announcer === undefined) return undefined;
    const planned = announcer === p.announcer ? p : { ...p, announcer };
    ips.push(planned);
    byKey.set(planned.key, planned);
    const settings = previous.poolSettings.get(p.pool);
    if (announcer.ok && announcer.owner === self && settings !== undefined) claims.push(claimOf(planned, settings));
  }
  return { ...previous, ips, byKey, alive, claims };
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * IPs this node wins only because the ranking changed while their current owner is still a member (a node
 * came back, a label changed): taking them at once would let two nodes answer until the old owner hears the
 * news, so the speaker waits a settle time for them. IPs whose owner died, left or was fenced are taken at once.
 */
export function gainsToSettle(
  self: string,
  previousOwners: ReadonlyMap<string, string>,
  plan: AnnouncePlan,
  members: ReadonlySet<string>,
): ReadonlySet<string> {
  const out = new Set<string>();
  for (const p of plan.ips) {
    if (!p.announcer.ok || p.announcer.owner !== self) continue;
    const before = previousOwners.get(p.key);
    if (before !== undefined && before !== self && members.has(before)) out.add(p.key);
  }
  return out;
}

/** IP key → owner, to compare one plan with the next. */
export function ownersOf(plan: AnnouncePlan): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of plan.ips) if (p.announcer.ok) m.set(p.key, p.announcer.owner);
  return m;
}
