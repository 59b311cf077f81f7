import type { Pool, ServiceAllocation } from "./config.ts";
import type { AllocationError } from "./errors.ts";
import { refusal } from "./errors.ts";
import type { Family } from "./ip.ts";
import { labelsKey, matchesSelector } from "./selector.ts";
import type { ServiceRequest } from "./service-request.ts";
import { serviceKey } from "./service-request.ts";

/**
 * Whether a pool's serviceAllocation serves a namespace. `namespaces` and `namespaceSelector` are two ways of
 * naming namespaces: either admits; with neither, every namespace is served. The allocator and the speaker (which
 * accepts `spec.externalIPs` only from namespaces a pool serves) both ask this, so they cannot disagree.
 */
export function poolServesNamespace(
  allocation: Pick<ServiceAllocation, "namespaces" | "namespaceSelector" | "namespaceSelectors">,
  namespace: string,
  namespaceLabels: Readonly<Record<string, string>>,
): boolean {
  const { namespaces, namespaceSelector, namespaceSelectors } = allocation;
  if (namespaces === undefined && namespaceSelector === undefined && namespaceSelectors === undefined) return true;
  if (namespaces?.includes(namespace) ?? false) return true;
  if (namespaceSelectors?.some((s) => matchesSelector(s, namespaceLabels)) ?? false) return true;
  return namespaceSelector !== undefined && matchesSelector(namespaceSelector, namespaceLabels);
}

/** Whether a pool's serviceAllocation admits a Service: its namespace is served and `serviceSelector` holds. */
export function poolRefusal(pool: Pool, req: ServiceRequest): AllocationError | undefined {
  const { serviceSelector, serviceSelectors } = pool.serviceAllocation;
  if (!poolServesNamespace(pool.serviceAllocation, req.namespace, req.namespaceLabels)) {
    return refusal.namespaceNotAllowed(pool.name, req.namespace);
  }
  if (serviceSelector !== undefined && !matchesSelector(serviceSelector, req.labels)) {
    return refusal.serviceNotAllowed(pool.name);
  }
  // MetalLB's serviceSelectors: the Service must match one of them (allocator, poolsForService).
  if (serviceSelectors !== undefined && !serviceSelectors.some((s) => matchesSelector(s, req.labels))) {
    return refusal.serviceNotAllowed(pool.name);
  }
  return undefined;
}

/**
 * Whether a pool is pinned to some Services (namespaces, namespace selector or Service selector): such pools are
 * tried first for the Services they admit, as MetalLB prefers a pool whose serviceAllocation selects the Service.
 */
export const isRestricted = (pool: Pool): boolean =>
  pool.serviceAllocation.namespaces !== undefined ||
  pool.serviceAllocation.namespaceSelector !== undefined ||
  pool.serviceAllocation.serviceSelector !== undefined ||
  pool.serviceAllocation.namespaceSelectors !== undefined ||
  pool.serviceAllocation.serviceSelectors !== undefined;

/** Pools in the order allocation tries them: lower priority number first, pools without one last, then by name. */
export function byPriority(a: Pool, b: Pool): number {
  const pa = a.priority ?? Number.POSITIVE_INFINITY;
  const pb = b.priority ?? Number.POSITIVE_INFINITY;
  if (pa !== pb) return pa < pb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Shared answers of desiredFamilies: asked on every allocation, so no array is made for them each time. Callers
 * walk them with an index, not for-of (docs/performance.md says why).
 */
const SINGLE = { 4: Object.freeze([4] as const), 6: Object.freeze([6] as const) };
const DUAL = { 4: Object.freeze([4, 6] as const), 6: Object.freeze([6, 4] as const) };

/** The families a Service wants, primary first, from ipFamilies / ipFamilyPolicy (or its requested IPs). */
export function desiredFamilies(req: ServiceRequest): readonly Family[] {
  const primary = req.ipFamilies[0] ?? req.requestedIps[0]?.family ?? 4;
  switch (req.ipFamilyPolicy) {
    case "SingleStack":
      return SINGLE[primary];
    case "RequireDualStack":
      return DUAL[primary];
    case "PreferDualStack":
      if (req.ipFamilies.length > 0) return req.ipFamilies;
      if (req.requestedIps.length > 0) return req.requestedIps.map((r) => r.family);
      return DUAL[primary];
  }
}

/** Tells familiesFrom's refusal from its families (Array.isArray does not narrow a readonly array). */
export const isRefusal = (x: readonly Family[] | AllocationError): x is AllocationError => !Array.isArray(x);

/**
 * The families to take from a pool that has `available`: all of them for Single/RequireDualStack, those the
 * pool has for PreferDualStack. A refusal when the pool cannot serve the Service.
 */
export function familiesFrom(
  req: ServiceRequest,
  pool: string,
  available: ReadonlySet<Family>,
): readonly Family[] | AllocationError {
  const desired = desiredFamilies(req);
  if (req.ipFamilyPolicy === "PreferDualStack") {
    const some = desired.filter((f) => available.has(f));
    return some.length > 0 ? some : refusal.familyUnavailable(desired[0] ?? 4, [pool]);
  }
  for (let k = 0; k < desired.length; k++) {
    const f = desired[k];
    if (f !== undefined && !available.has(f)) return refusal.familyUnavailable(f, [pool]);
  }
  return desired;
}

/**
 * Whether `req` may use an address that `holder` already holds: same sharing key, no common port+protocol,
 * identical pod selectors when either uses externalTrafficPolicy Local (both must reach the same node's pods),
 * same namespace unless the pool allows cross-namespace sharing.
 */
export function sharingRefusal(
  ip: string,
  holder: ServiceRequest,
  req: ServiceRequest,
  pool: Pool,
): AllocationError | undefined {
  const who = serviceKey(holder);
  if (req.sharingKey === undefined || req.sharingKey !== holder.sharingKey) return refusal.ipInUse(ip, who);
  if (req.namespace !== holder.namespace && !pool.serviceAllocation.allowCrossNamespaceSharing) {
    return refusal.sharingConflict(
      ip,
      who,
      `it is in another namespace and pool "${pool.name}" does not allow cross-namespace sharing`,
    );
  }
  const clash = req.ports.find((p) => holder.ports.some((h) => h.port === p.port && h.protocol === p.protocol));
  if (clash !== undefined) return refusal.sharingConflict(ip, who, `both use ${clash.protocol}/${clash.port}`);
  const backend = (s: ServiceRequest): string =>
    s.externalTrafficPolicy === "Local" ? `local:${labelsKey(s.selector)}` : "cluster";
  if (backend(req) !== backend(holder)) {
    return refusal.sharingConflict(
      ip,
      who,
      "externalTrafficPolicy Local Services share only with Local Services of identical pod selector",
    );
  }
  return undefined;
}
