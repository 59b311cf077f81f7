import { type AnnouncerCandidate, type AnnouncerRanking, rankAnnouncers } from "./announcer-ranking.ts";
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
  readonly ip: IpAddress;
  readonly pool: string;
  /** Keys of the Services using this IP, sorted. */
  readonly services: readonly string[];
  readonly announcer: AnnouncerRanking;
}

/** An IP a Service carries that no node announces, and why (for a Warning Event). */
export interface Unannounced {
  readonly service: string;
  readonly ip: IpAddress;
  readonly reason: "outside-pools" | "external-ips-disabled" | "namespace-not-allowed" | "ingress-of-another-service";
  readonly message: string;
}

export interface AnnouncePlan {
  readonly ips: readonly PlannedIp[];
  /** What this node announces now. */
  readonly claims: readonly AnnounceClaim[];
  readonly unannounced: readonly Unannounced[];
}

interface Group {
  ip: IpAddress;
  pool: AnnouncePool;
  services: AnnouncedService[];
}

export function planAnnouncements(
  self: string,
  services: readonly AnnouncedService[],
  pools: readonly AnnouncePool[],
  nodes: readonly AnnouncerCandidate[],
): AnnouncePlan {
  const groups = new Map<string, Group>();
  const unannounced: Unannounced[] = [];
  const add = (svc: AnnouncedService, ip: IpAddress, pool: AnnouncePool) => {
    const k = ipKey(ip);
    const g = groups.get(k) ?? { ip, pool, services: [] };
    if (!g.services.includes(svc)) g.services.push(svc);
    groups.set(k, g);
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
  for (const svc of services) {
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
  const claims: AnnounceClaim[] = [];
  for (const g of [...groups.values()].sort((a, b) => compareIp(a.ip, b.ip))) {
    const local = g.services.filter((s) => s.localTraffic).map((s) => s.endpointNodes);
    const announcer = rankAnnouncers(nodes, {
      ip: g.ip,
      ...(g.pool.nodeSelector === undefined ? {} : { nodeSelector: g.pool.nodeSelector }),
      ...(g.pool.interfaces === undefined ? {} : { interfaces: g.pool.interfaces }),
      ...(local.length === 0 ? {} : { localEndpointNodes: local }),
    });
    const keys = g.services.map((s) => s.key).sort();
    ips.push({ ip: g.ip, pool: g.pool.name, services: keys, announcer });
    if (announcer.ok && announcer.owner === self) {
      claims.push({
        key: keys.join(","),
        ip: g.ip,
        ...(g.pool.interfaces === undefined ? {} : { interfaces: g.pool.interfaces }),
        gratuitous: g.pool.gratuitous,
      });
    }
  }
  return { ips, claims, unannounced };
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
    const before = previousOwners.get(ipKey(p.ip));
    if (before !== undefined && before !== self && members.has(before)) out.add(ipKey(p.ip));
  }
  return out;
}

/** IP key → owner, to compare one plan with the next. */
export function ownersOf(plan: AnnouncePlan): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of plan.ips) if (p.announcer.ok) m.set(ipKey(p.ip), p.announcer.owner);
  return m;
}
