import type { BgpAdvertisement, BgpConfig, BgpPeer } from "./bgp-config.ts";
import type { Pool } from "./config.ts";
import { type Family, type IpAddress, familyBits, formatIp } from "./ip.ts";
import { rangeContains } from "./range.ts";
import { type Labels, matchesSelector } from "./selector.ts";
import { EXCLUDE_LABEL } from "./well-known.ts";

/** A Service as BGP needs it: its ingress addresses and whether only nodes with its endpoints may draw traffic. */
export interface BgpService {
  /** "namespace/name". */
  readonly key: string;
  readonly ingress: readonly IpAddress[];
  /** `externalTrafficPolicy: Local`. */
  readonly local: boolean;
}

export interface BgpPlanInput {
  readonly config: BgpConfig;
  readonly pools: readonly Pool[];
  /** This node's labels; undefined while the Node is not known (nothing is advertised then). */
  readonly nodeLabels: Labels | undefined;
  readonly services: Iterable<BgpService>;
  /** Whether this node has a ready endpoint of a Local Service. */
  readonly readyHere: (serviceKey: string) => boolean;
  /** Drain: keep the sessions, advertise nothing. */
  readonly withdrawAll?: boolean;
}

/** One prefix to one peer, with the path attributes the advertisements that chose it give it. */
export interface AdvertisedPrefix {
  /** Canonical text, e.g. `203.0.113.5/32`; also the sort key within a family. */
  readonly prefix: string;
  readonly family: Family;
  readonly localPref?: number;
  /** Sorted, unique; standard, large (`large:…`) and well-known together. */
  readonly communities: readonly string[];
}

export interface PlannedPeer {
  readonly peer: BgpPeer;
  /** v4 first, then v6, each in address order. */
  readonly prefixes: readonly AdvertisedPrefix[];
}

export interface BgpPlan {
  /** The peers this node has a session with (node selectors matched), in name order. */
  readonly peers: readonly PlannedPeer[];
  /** Why this node advertises nothing although it has peers (excluded, Node unknown), for status and logs. */
  readonly silentBecause?: string;
}

/** Pure: the network value of `ip` at `length`. */
function networkOf(ip: IpAddress, length: number): bigint {
  const bits = BigInt(familyBits(ip.family));
  return length === 0 ? 0n : ip.value & (((1n << BigInt(length)) - 1n) << (bits - BigInt(length)));
}

/** Pure: the network of `ip` at `length`, as prefix text. */
export function prefixOf(ip: IpAddress, length: number): { text: string; value: bigint } {
  const bits = BigInt(familyBits(ip.family));
  const mask = length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << (bits - BigInt(length));
  const value = ip.value & mask;
  return { text: `${formatIp({ family: ip.family, value })}/${length}`, value };
}

interface Accumulated {
  readonly family: Family;
  readonly value: bigint;
  readonly length: number;
  /** An address inside the prefix (the one address of a host prefix), for its cached text. */
  readonly ip: IpAddress;
  /** The advertisements that chose the prefix, in config order: nearly always one, whose attributes are kept as is. */
  readonly ads: BgpAdvertisement[];
}

/**
 * Text of host prefixes by address object: the component hands the same parsed ingress addresses to every pass,
 * so a pass at 10,000 Services formats only the addresses that are new.
 */
const hostText = new WeakMap<IpAddress, string>();
function prefixText(a: Accumulated): string {
  const bits = familyBits(a.family);
  if (a.length !== bits) return `${formatIp({ family: a.family, value: a.value })}/${a.length}`;
  let t = hostText.get(a.ip);
  if (t === undefined) hostText.set(a.ip, (t = `${formatIp(a.ip)}/${bits}`));
  return t;
}

function attributes(ads: readonly BgpAdvertisement[]): {
  localPref: number | undefined;
  communities: readonly string[];
} {
  const first = ads[0];
  if (ads.length === 1 && first !== undefined) return { localPref: first.localPref, communities: first.communities };
  let localPref: number | undefined;
  const communities = new Set<string>();
  for (const ad of ads) {
    if (ad.localPref !== undefined && (localPref === undefined || ad.localPref > localPref)) localPref = ad.localPref;
    for (const c of ad.communities) communities.add(c);
  }
  return { localPref, communities: [...communities].sort() };
}

/**
 * Which prefixes this node sends to which peer. A node advertises an address when some advertisement that applies
 * on this node selects its pool, and, for a Local Service, only while the node has a ready endpoint of it (the
 * router then sends traffic only where it is answered without a second hop); for a Cluster Service every eligible
 * node advertises and the router spreads flows by ECMP. A node labelled EXCLUDE_LABEL advertises nothing, as
 * kube-proxy's and MetalLB's rule for external load balancers. Prefixes several advertisements or Services give
 * one peer merge: communities unite, the highest LOCAL_PREF wins (the preference is for the node, not the
 * Service). A peer gets the prefixes of its own address family only. Costs O(addresses × advertisements × peers)
 * and one sort per peer.
 */
export function planBgp(input: BgpPlanInput): BgpPlan {
  const labels = input.nodeLabels;
  const { config } = input;
  const peers = config.peers
    .filter((p) => labels !== undefined && (p.nodeSelector === undefined || matchesSelector(p.nodeSelector, labels)))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (peers.length === 0) return { peers: [] };
  const empty = (silentBecause?: string): BgpPlan => ({
    peers: peers.map((peer) => ({ peer, prefixes: [] })),
    ...(silentBecause === undefined ? {} : { silentBecause }),
  });
  if (labels === undefined) return empty("this node's Node object is not known yet");
  if (input.withdrawAll === true) return empty("draining");
  if (labels[EXCLUDE_LABEL] !== undefined) return empty(`the node is labelled ${EXCLUDE_LABEL}`);

  const peerNames = new Set(peers.map((p) => p.name));
  /** Per pool name: the advertisements in force on this node that select it, with the peers each reaches here. */
  const adsOf = new Map<string, { ad: BgpAdvertisement; peers: readonly string[] }[]>();
  for (const ad of config.advertisements) {
    if (ad.nodeSelector !== undefined && !matchesSelector(ad.nodeSelector, labels)) continue;
    const reach = (ad.peers ?? peers.map((p) => p.name)).filter((n) => peerNames.has(n));
    if (reach.length === 0) continue;
    for (const pool of input.pools) {
      if (ad.pools !== undefined && !ad.pools.includes(pool.name)) continue;
      let list = adsOf.get(pool.name);
      if (list === undefined) adsOf.set(pool.name, (list = []));
      list.push({ ad, peers: reach });
    }
  }
  const bgpPools = input.pools.filter((p) => adsOf.has(p.name));
  // A session carries the prefixes of its own address family (see renderFrrConfig for why). Per peer, prefixes
  // by length then by network value: bigint keys, no text until the end.
  const perPeer = new Map(
    peers.map((p) => [p.name, { family: p.address.family, byLength: new Map<number, Map<bigint, Accumulated>>() }]),
  );
  for (const svc of input.services) {
    if (svc.local && !input.readyHere(svc.key)) continue;
    for (const ip of svc.ingress) {
      const pool = bgpPools.find((p) => p.addresses.some((r) => rangeContains(r, ip)));
      if (pool === undefined) continue;
      for (const { ad, peers: reach } of adsOf.get(pool.name) ?? []) {
        const length = ip.family === 4 ? ad.aggregationLength : ad.aggregationLengthV6;
        const value = networkOf(ip, length);
        for (const name of reach) {
          const session = perPeer.get(name);
          if (session === undefined || session.family !== ip.family) continue;
          let table = session.byLength.get(length);
          if (table === undefined) session.byLength.set(length, (table = new Map()));
          const acc = table.get(value);
          if (acc === undefined) table.set(value, { family: ip.family, value, length, ip, ads: [ad] });
          else if (!acc.ads.includes(ad)) acc.ads.push(ad);
        }
      }
    }
  }
  return {
    peers: peers.map((peer) => {
      const all: Accumulated[] = [];
      for (const table of perPeer.get(peer.name)?.byLength.values() ?? []) for (const a of table.values()) all.push(a);
      all.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : a.length - b.length));
      return {
        peer,
        prefixes: all.map((a) => {
          const { localPref, communities } = attributes(a.ads);
          return {
            prefix: prefixText(a),
            family: a.family,
            ...(localPref === undefined ? {} : { localPref }),
            communities,
          };
        }),
      };
    }),
  };
}
