import type { Logger } from "pino";
import type { Pool } from "../core/config.ts";
import { nextConfigMapState, type ConfigMapState } from "../core/config-state.ts";
import type { ConfigProblem } from "../core/errors.ts";
import {
  ipAddressPoolSource,
  l2AdvertisementSource,
  parseIPAddressPool,
  parseL2Advertisement,
  withAdvertisements,
  type ParsedAdvertisement,
} from "../core/metallb-crds.ts";
import type { PoolUsage } from "../core/telemetry.ts";
import type { KubeClient } from "../kube/client.ts";
import type { ObjectRef } from "../kube/events.ts";
import { createInformer, type Informer } from "../kube/informer.ts";
import { projectMetalLB, type SlimMetalLB } from "../kube/objects.ts";

/** What one parse of a MetalLB object changed, for the controller's log and Events. */
export interface MetalLBReport {
  readonly ref: ObjectRef;
  readonly source: string;
  readonly problems: readonly ConfigProblem[];
  /** A good version is in force (this one, or the last good one when this one is broken). */
  readonly everGood: boolean;
  readonly pools: readonly string[];
}

export interface MetalLBPools {
  readonly informers: readonly Informer<SlimMetalLB>[];
  /** Parses what changed since the last call; the reports of objects parsed anew. */
  apply(): MetalLBReport[];
  /** The pools in force from the CRDs, with their advertisements. */
  pools(): readonly Pool[];
  /** The object a problem's source names (`IPAddressPool ns/name`), for its Event. */
  ref(source: string): ObjectRef | undefined;
  /** The objects whose newest version has problems (reported again on becoming leader). */
  invalid(): MetalLBReport[];
}

interface AdState {
  readonly rv: string;
  readonly problems: readonly ConfigProblem[];
  readonly advertisement: ParsedAdvertisement["advertisement"];
}

/**
 * MetalLB's IPAddressPools and L2Advertisements in `namespace` (v1beta1), watched while the CRDs exist (404:
 * an empty list, looked at again later), translated into pools. As with ConfigMaps, a version with problems
 * keeps the last good one in force.
 */
export function createMetalLBPools(o: {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly namespace: string;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly watchTimeoutSeconds?: number;
  readonly absentRetryMs?: number;
}): MetalLBPools {
  const base = `/apis/metallb.io/v1beta1/namespaces/${encodeURIComponent(o.namespace)}`;
  const common = {
    client: o.client,
    logger: o.logger,
    project: projectMetalLB,
    optional: true,
    ...(o.backoff === undefined ? {} : { backoff: o.backoff }),
    ...(o.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: o.watchTimeoutSeconds }),
    ...(o.absentRetryMs === undefined ? {} : { absentRetryMs: o.absentRetryMs }),
  };
  const poolObjects = createInformer<SlimMetalLB>({
    ...common,
    resource: "ipaddresspools",
    path: `${base}/ipaddresspools`,
  });
  const adObjects = createInformer<SlimMetalLB>({
    ...common,
    resource: "l2advertisements",
    path: `${base}/l2advertisements`,
  });
  const poolStates = new Map<string, ConfigMapState & { rv: string }>();
  const adStates = new Map<string, AdState>();
  let inForce: readonly Pool[] = [];

  const ref = (kind: ObjectRef["kind"], s: SlimMetalLB): ObjectRef => ({
    kind,
    namespace: s.namespace,
    name: s.name,
    uid: s.uid,
  });

  function apply(): MetalLBReport[] {
    const reports: MetalLBReport[] = [];
    for (const p of poolObjects.values()) {
      const prev = poolStates.get(p.key);
      if (prev?.rv === p.resourceVersion) continue;
      const source = ipAddressPoolSource(p);
      const next = nextConfigMapState(prev, source, parseIPAddressPool(p));
      poolStates.set(p.key, { ...next, rv: p.resourceVersion });
      reports.push({
        ref: ref("IPAddressPool", p),
        source,
        problems: next.problems,
        everGood: next.everGood,
        pools: next.pools.map((x) => x.name),
      });
    }
    for (const key of [...poolStates.keys()]) if (poolObjects.get(key) === undefined) poolStates.delete(key);
    for (const a of adObjects.values()) {
      const prev = adStates.get(a.key);
      if (prev?.rv === a.resourceVersion) continue;
      const parsed = parseL2Advertisement(a);
      // A broken advertisement keeps its last good version, as a pool does.
      const advertisement = parsed.problems.length === 0 ? parsed.advertisement : prev?.advertisement;
      adStates.set(a.key, { rv: a.resourceVersion, problems: parsed.problems, advertisement });
      reports.push({
        ref: ref("L2Advertisement", a),
        source: l2AdvertisementSource(a),
        problems: parsed.problems,
        everGood: advertisement !== undefined,
        pools: [],
      });
    }
    for (const key of [...adStates.keys()]) if (adObjects.get(key) === undefined) adStates.delete(key);
    const labelsByPool = new Map<string, Readonly<Record<string, string>>>();
    for (const p of poolObjects.values()) labelsByPool.set(p.name, p.labels);
    const ads = [...adStates.values()].flatMap((s) => (s.advertisement === undefined ? [] : [s.advertisement]));
    inForce = withAdvertisements(
      [...poolStates.values()].flatMap((s) => s.pools),
      ads,
      (name) => labelsByPool.get(name) ?? {},
    );
    return reports;
  }

  return {
    informers: [poolObjects, adObjects],
    apply,
    pools: () => inForce,
    ref(source) {
      const m = /^(IPAddressPool|L2Advertisement) ([^/]+)\/(.+)$/.exec(source);
      if (m === null) return undefined;
      const informer = m[1] === "IPAddressPool" ? poolObjects : adObjects;
      const s = informer.get(`${m[2] ?? ""}/${m[3] ?? ""}`);
      return s === undefined ? undefined : ref(m[1] as ObjectRef["kind"], s);
    },
    invalid() {
      const out: MetalLBReport[] = [];
      for (const p of poolObjects.values()) {
        const s = poolStates.get(p.key);
        if (s !== undefined && s.problems.length > 0)
          out.push({
            ref: ref("IPAddressPool", p),
            source: s.configMap,
            problems: s.problems,
            everGood: s.everGood,
            pools: [],
          });
      }
      for (const a of adObjects.values()) {
        const s = adStates.get(a.key);
        if (s !== undefined && s.problems.length > 0)
          out.push({
            ref: ref("L2Advertisement", a),
            source: l2AdvertisementSource(a),
            problems: s.problems,
            everGood: s.advertisement !== undefined,
            pools: [],
          });
      }
      return out;
    },
  };
}

/** What MetalLB's IPAddressPool.status holds (api/v1beta1, IPAddressPoolStatus). */
export interface IPAddressPoolStatus {
  readonly assignedIPv4: number;
  readonly assignedIPv6: number;
  readonly availableIPv4: number;
  readonly availableIPv6: number;
}

const STATUS_FIELDS = ["assignedIPv4", "assignedIPv6", "availableIPv4", "availableIPv6"] as const;

/** int64 on MetalLB's side; a JSON number here, so sizes past 2^53 (an IPv6 /64) are capped there. */
const capped = (n: bigint): number => (n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n));

/** Pure: each CRD pool's status from the allocator's usage. */
export function poolStatuses(names: readonly string[], usage: readonly PoolUsage[]): Map<string, IPAddressPoolStatus> {
  const out = new Map<string, IPAddressPoolStatus>();
  for (const name of names) {
    const of = (family: 4 | 6) => usage.find((u) => u.pool === name && u.family === family);
    const v4 = of(4);
    const v6 = of(6);
    out.set(name, {
      assignedIPv4: v4?.inUse ?? 0,
      assignedIPv6: v6?.inUse ?? 0,
      availableIPv4: capped((v4?.total ?? 0n) - BigInt(v4?.inUse ?? 0)),
      availableIPv6: capped((v6?.total ?? 0n) - BigInt(v6?.inUse ?? 0)),
    });
  }
  return out;
}

/**
 * Writes IPAddressPool.status (a merge patch of /status) for the pools whose counts changed. An installed CRD
 * older than the status fields prunes them (or has no status subresource: 404): then it stops, said once.
 */
export function createPoolStatusWriter(o: {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly namespace: string;
}) {
  const written = new Map<string, string>();
  let unsupported = false;
  return {
    /** Resets what is known as written (a new leader writes everything once). */
    reset(): void {
      written.clear();
    },
    async write(statuses: ReadonlyMap<string, IPAddressPoolStatus>): Promise<void> {
      if (unsupported) return;
      for (const key of [...written.keys()]) if (!statuses.has(key)) written.delete(key);
      for (const [name, status] of statuses) {
        const text = JSON.stringify(status);
        if (written.get(name) === text) continue;
        const res = await o.client.request({
          method: "PATCH",
          path: `/apis/metallb.io/v1beta1/namespaces/${encodeURIComponent(o.namespace)}/ipaddresspools/${encodeURIComponent(name)}/status`,
          body: { status },
        });
        const body = res.body as { status?: Record<string, unknown> } | undefined;
        const pruned = res.status === 200 && STATUS_FIELDS.some((f) => body?.status?.[f] === undefined);
        if (res.status === 404 || pruned) {
          if (res.status === 404) {
            // The pool itself may be gone (deleted meanwhile): only a 404 of the subresource path means old CRDs.
            const pool = await o.client.request({
              method: "GET",
              path: `/apis/metallb.io/v1beta1/namespaces/${encodeURIComponent(o.namespace)}/ipaddresspools/${encodeURIComponent(name)}`,
            });
            if (pool.status !== 200) continue;
          }
          unsupported = true;
          o.logger.info(
            { ipAddressPool: `${o.namespace}/${name}` },
            "the installed IPAddressPool CRD has no status fields (MetalLB older than them): pool status is not written",
          );
          return;
        }
        if (res.status >= 200 && res.status < 300) written.set(name, text);
        else o.logger.debug({ ipAddressPool: name, status: res.status }, "IPAddressPool status write failed; retried");
      }
    },
  };
}
