import { poolServesNamespace } from "../core/allocation-rules.ts";
import type { AnnouncePool } from "../core/announce-plan.ts";
import { type ConfigMapInput, type Pool, mergePools, parsePoolConfigMap } from "../core/config.ts";
import { advertisedOn } from "../core/metallb-crds.ts";
import { rangeContains } from "../core/range.ts";
import { matchesSelector } from "../core/selector.ts";

type NamespaceLabels = (namespace: string) => Readonly<Record<string, string>> | undefined;

/**
 * The pools as the speaker needs them. Like the controller, a ConfigMap whose newest version has problems keeps
 * its last good pools (the controller reports the problems; the speaker only must not drop IPs it announces).
 */
export function createPoolCache(customPools?: () => readonly Pool[]) {
  const lastGood = new Map<string, { version: string; pools: readonly Pool[] }>();
  return function announcePools(
    configMaps: readonly (ConfigMapInput & { readonly key: string; readonly resourceVersion: string })[],
    namespaceLabels: NamespaceLabels,
  ): AnnouncePool[] {
    const seen = new Set<string>();
    const per: { pools: readonly Pool[] }[] = [];
    for (const cm of configMaps) {
      seen.add(cm.key);
      const cached = lastGood.get(cm.key);
      if (cached === undefined || cached.version !== cm.resourceVersion) {
        const parsed = parsePoolConfigMap(cm);
        if (parsed.problems.length === 0 || cached === undefined) {
          lastGood.set(cm.key, { version: cm.resourceVersion, pools: parsed.pools });
        }
      }
      per.push({ pools: lastGood.get(cm.key)?.pools ?? [] });
    }
    for (const k of [...lastGood.keys()]) if (!seen.has(k)) lastGood.delete(k);
    // Pools from MetalLB's CRDs (the controller's translation, last good versions kept) merge under the same rules.
    if (customPools !== undefined) per.push({ pools: customPools() });
    return mergePools(per).pools.map((p) => toAnnouncePool(p, namespaceLabels));
  };
}

export function toAnnouncePool(pool: Pool, namespaceLabels: NamespaceLabels): AnnouncePool {
  const a = pool.announce;
  const ads = a.advertisements;
  if (ads !== undefined) {
    // A CRD pool: its L2Advertisements decide. The plan takes one interface list per pool, so a pool whose
    // advertisements name different interfaces for different nodes announces on the union of them.
    const restricted = ads.length > 0 && ads.every((ad) => ad.interfaces !== undefined);
    const interfaces = restricted ? [...new Set(ads.flatMap((ad) => ad.interfaces ?? []))] : undefined;
    return {
      name: pool.name,
      contains: (ip) => pool.addresses.some((r) => rangeContains(r, ip)),
      allowsNamespace: (ns) => poolServesNamespace(pool.serviceAllocation, ns, namespaceLabels(ns) ?? {}),
      ...(interfaces === undefined ? {} : { interfaces }),
      nodeSelector: (labels) => advertisedOn(ads, labels).announces,
      externalIPs: a.externalIPs,
      gratuitous: a.gratuitous,
    };
  }
  const selector = a.nodeSelector;
  return {
    name: pool.name,
    contains: (ip) => pool.addresses.some((r) => rangeContains(r, ip)),
    allowsNamespace: (ns) => poolServesNamespace(pool.serviceAllocation, ns, namespaceLabels(ns) ?? {}),
    ...(a.interfaces === undefined ? {} : { interfaces: a.interfaces }),
    // announce.layer2: false: BGP alone advertises the pool (src/app/bgp-component.ts); no node answers ARP/NDP.
    ...(a.layer2 === false
      ? { nodeSelector: () => false }
      : selector === undefined
        ? {}
        : { nodeSelector: (labels) => matchesSelector(selector, labels) }),
    externalIPs: a.externalIPs,
    gratuitous: a.gratuitous,
  };
}
