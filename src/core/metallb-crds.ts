import { z } from "zod";
import {
  buildPool,
  issueProblems,
  LabelSelectorSchema,
  PoolSchema,
  toSelector,
  type Advertisement,
  type ParsedPools,
  type Pool,
} from "./config.ts";
import type { ConfigProblem } from "./errors.ts";
import { ConfigCodes, configMessages, problem } from "./errors.ts";
import type { LabelSelector } from "./selector.ts";
import { matchesSelector } from "./selector.ts";

/**
 * MetalLB 0.13+'s configuration, read from its CRDs (metallb.io/v1beta1 IPAddressPool and L2Advertisement,
 * api/v1beta1 in MetalLB) and translated field for field into Lodestone's pool model, as MetalLB's own
 * internal/config does (addressPoolFromCR, l2AdvertisementFromCR). Pure: objects in, pools and problems out.
 */

/** What is read of either kind: the object's identity and spec, as the API server returns them. */
export interface MetalLBObject {
  readonly namespace: string;
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly spec: unknown;
}

/** The source a CRD pool's problems and Events name: `IPAddressPool metallb-system/default`. */
export const ipAddressPoolSource = (o: Pick<MetalLBObject, "namespace" | "name">): string =>
  `IPAddressPool ${o.namespace}/${o.name}`;
export const l2AdvertisementSource = (o: Pick<MetalLBObject, "namespace" | "name">): string =>
  `L2Advertisement ${o.namespace}/${o.name}`;

const selectors = z.array(z.unknown()).optional();
const PoolSpec = z.looseObject({
  addresses: z.array(z.unknown()).optional(),
  autoAssign: z.unknown().optional(),
  avoidBuggyIPs: z.unknown().optional(),
  serviceAllocation: z
    .looseObject({
      priority: z.unknown().optional(),
      namespaces: z.unknown().optional(),
      namespaceSelectors: selectors,
      serviceSelectors: selectors,
    })
    .optional(),
});
const AdvertisementSpec = z.looseObject({
  ipAddressPools: z.array(z.string()).optional(),
  ipAddressPoolSelectors: selectors,
  nodeSelectors: selectors,
  interfaces: z.array(z.string()).optional(),
});

/** MetalLB names a pool by its object name (a DNS subdomain, up to 253 characters). */
const CrdPoolSchema = PoolSchema.extend({ name: z.string().min(1) });

function parseSelectors(
  list: readonly unknown[] | undefined,
  source: string,
  at: string,
  problems: ConfigProblem[],
): LabelSelector[] | undefined {
  if (list === undefined || list.length === 0) return undefined;
  const out: LabelSelector[] = [];
  list.forEach((raw, i) => {
    const r = LabelSelectorSchema.safeParse(raw, { reportInput: true });
    if (!r.success)
      for (const issue of r.error.issues)
        problems.push(...issueProblems(issue, source, `${at}[${i}]`, LabelSelectorSchema));
    else out.push(toSelector(r.data));
  });
  return out;
}

/**
 * One IPAddressPool as a pool: addresses, autoAssign, avoidBuggyIPs and serviceAllocation (priority, namespaces,
 * namespaceSelectors, serviceSelectors). MetalLB hands out the lowest free address and lets Services of any
 * namespaces share one by key; the pool keeps both. Announcing comes from the L2Advertisements (withAdvertisements).
 */
export function parseIPAddressPool(o: MetalLBObject): ParsedPools {
  const source = ipAddressPoolSource(o);
  const problems: ConfigProblem[] = [];
  const spec = PoolSpec.safeParse(o.spec ?? {});
  if (!spec.success) {
    problems.push(
      problem(
        ConfigCodes.wrongType,
        source,
        "spec",
        configMessages.wrongType("a mapping", Array.isArray(o.spec) ? "a list" : typeof o.spec),
      ),
    );
    return { pools: [], problems };
  }
  const s = spec.data;
  const sa = s.serviceAllocation;
  const priority = sa?.priority;
  if (priority !== undefined && !(typeof priority === "number" && Number.isInteger(priority)))
    problems.push(
      problem(
        ConfigCodes.wrongType,
        source,
        "spec.serviceAllocation.priority",
        configMessages.wrongType("an integer", typeof priority),
      ),
    );
  const namespaceSelectors = parseSelectors(
    sa?.namespaceSelectors,
    source,
    "spec.serviceAllocation.namespaceSelectors",
    problems,
  );
  const serviceSelectors = parseSelectors(
    sa?.serviceSelectors,
    source,
    "spec.serviceAllocation.serviceSelectors",
    problems,
  );
  const raw = CrdPoolSchema.safeParse(
    {
      name: o.name,
      addresses: s.addresses ?? [],
      ...(s.autoAssign === undefined ? {} : { autoAssign: s.autoAssign }),
      ...(s.avoidBuggyIPs === undefined ? {} : { avoidBuggyIPs: s.avoidBuggyIPs }),
      allocationOrder: "lowest",
      ...(typeof priority === "number" && Number.isInteger(priority) ? { priority } : {}),
      serviceAllocation: {
        ...(sa?.namespaces === undefined ? {} : { namespaces: sa.namespaces }),
        allowCrossNamespaceSharing: true,
      },
    },
    { reportInput: true },
  );
  if (!raw.success) {
    for (const issue of raw.error.issues) problems.push(...issueProblems(issue, source, "spec", CrdPoolSchema));
    return { pools: [], problems };
  }
  const built = buildPool(raw.data, source, "spec", problems);
  if (problems.length > 0) return { pools: [], problems };
  const pool: Pool = Object.freeze({
    ...built,
    path: "spec",
    serviceAllocation: Object.freeze({
      ...built.serviceAllocation,
      ...(namespaceSelectors === undefined ? {} : { namespaceSelectors }),
      ...(serviceSelectors === undefined ? {} : { serviceSelectors }),
    }),
    // Until an L2Advertisement selects it, nothing announces it (MetalLB: a pool without advertisement).
    announce: Object.freeze({ ...built.announce, advertisements: Object.freeze([]) }),
  });
  return { pools: [pool], problems };
}

/** An L2Advertisement, validated: which pools it selects, and the Advertisement each of them gets. */
export interface ParsedAdvertisement {
  readonly advertisement?: {
    readonly poolNames?: readonly string[];
    readonly poolSelectors?: readonly LabelSelector[];
    readonly value: Advertisement;
  };
  readonly problems: readonly ConfigProblem[];
}

export function parseL2Advertisement(o: MetalLBObject): ParsedAdvertisement {
  const source = l2AdvertisementSource(o);
  const problems: ConfigProblem[] = [];
  const spec = AdvertisementSpec.safeParse(o.spec ?? {}, { reportInput: true });
  if (!spec.success) {
    for (const issue of spec.error.issues) problems.push(...issueProblems(issue, source, "spec", AdvertisementSpec));
    return { problems };
  }
  const s = spec.data;
  const poolSelectors = parseSelectors(s.ipAddressPoolSelectors, source, "spec.ipAddressPoolSelectors", problems);
  const nodeSelectors = parseSelectors(s.nodeSelectors, source, "spec.nodeSelectors", problems);
  if (problems.length > 0) return { problems };
  const value: Advertisement = Object.freeze({
    name: `${o.namespace}/${o.name}`,
    ...(nodeSelectors === undefined ? {} : { nodeSelectors }),
    ...(s.interfaces === undefined || s.interfaces.length === 0 ? {} : { interfaces: s.interfaces }),
  });
  return {
    advertisement: {
      ...(s.ipAddressPools === undefined || s.ipAddressPools.length === 0 ? {} : { poolNames: s.ipAddressPools }),
      ...(poolSelectors === undefined ? {} : { poolSelectors }),
      value,
    },
    problems,
  };
}

/**
 * The CRD pools with the advertisements that select them (MetalLB: by name in ipAddressPools, by the pool's
 * labels in ipAddressPoolSelectors, every pool when it names neither). `poolLabels` gives an IPAddressPool's
 * labels by pool name.
 */
export function withAdvertisements(
  pools: readonly Pool[],
  advertisements: readonly NonNullable<ParsedAdvertisement["advertisement"]>[],
  poolLabels: (pool: string) => Readonly<Record<string, string>>,
): Pool[] {
  return pools.map((pool) => {
    const selected = advertisements
      .filter((a) => {
        if (a.poolNames === undefined && a.poolSelectors === undefined) return true;
        if (a.poolNames?.includes(pool.name) ?? false) return true;
        return a.poolSelectors?.some((s) => matchesSelector(s, poolLabels(pool.name))) ?? false;
      })
      .map((a) => a.value);
    return Object.freeze({ ...pool, announce: Object.freeze({ ...pool.announce, advertisements: selected }) });
  });
}

/**
 * Pure: a set of IPAddressPools and L2Advertisements read at once (a file, one listing) as pools with their
 * advertisements, and every problem, the pools' first. No last-good memory: the controller keeps that itself.
 */
export function parseMetalLBObjects(
  ipPools: readonly MetalLBObject[],
  l2Advertisements: readonly MetalLBObject[],
): ParsedPools {
  const problems: ConfigProblem[] = [];
  const pools: Pool[] = [];
  for (const o of ipPools) {
    const r = parseIPAddressPool(o);
    problems.push(...r.problems);
    pools.push(...r.pools);
  }
  const ads: NonNullable<ParsedAdvertisement["advertisement"]>[] = [];
  for (const o of l2Advertisements) {
    const r = parseL2Advertisement(o);
    problems.push(...r.problems);
    if (r.advertisement !== undefined) ads.push(r.advertisement);
  }
  const labels = new Map(ipPools.map((o) => [o.name, o.labels ?? {}]));
  return { pools: withAdvertisements(pools, ads, (n) => labels.get(n) ?? {}), problems };
}

/**
 * Pure: whether a node may announce a pool's IPs, and on which interfaces, from its advertisements: any
 * advertisement whose node selectors match (none: every node); the union of their interfaces, or no
 * restriction when one of them names none. Undefined `advertisements`: the pool's own `announce` rules apply.
 */
export function advertisedOn(
  advertisements: readonly Advertisement[],
  nodeLabels: Readonly<Record<string, string>>,
): { announces: boolean; interfaces?: readonly string[] } {
  const matching = advertisements.filter(
    (a) => a.nodeSelectors === undefined || a.nodeSelectors.some((s) => matchesSelector(s, nodeLabels)),
  );
  if (matching.length === 0) return { announces: false };
  if (matching.some((a) => a.interfaces === undefined)) return { announces: true };
  return { announces: true, interfaces: [...new Set(matching.flatMap((a) => a.interfaces ?? []))] };
}
