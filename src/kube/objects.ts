import { objectMeta, type Slim } from "./informer.ts";
import { ANNOTATION_PREFIXES, ANNOUNCING_ANNOTATION, POOL_ANNOTATION } from "../core/well-known.ts";

/**
 * Slim projections of the objects Lodestone watches: only the fields it reads, frozen. A full V1Service carries
 * managedFields and every field of the API; the daemon caches every Service and EndpointSlice, so its memory
 * follows what it reads, not what the API returns.
 */

type Strings = Readonly<Record<string, string>>;

export interface SlimService extends Slim {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly type: string;
  readonly loadBalancerClass: string | undefined;
  readonly loadBalancerIP: string | undefined;
  readonly ipFamilies: readonly string[];
  readonly ipFamilyPolicy: string | undefined;
  readonly ports: readonly { readonly port: number; readonly protocol: string }[];
  readonly externalTrafficPolicy: string | undefined;
  readonly selector: Strings;
  readonly labels: Strings;
  /** Only the annotations Lodestone reads (lodestone.dev/, metallb.io/, metallb.universe.tf/). */
  readonly annotations: Strings;
  readonly externalIPs: readonly string[];
  /** `status.loadBalancer.ingress[].ip` as written. */
  readonly ingress: readonly string[];
}

export interface SlimConfigMap extends Slim {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly labels: Strings;
  /** Only the pool keys (`pools.yaml`, MetalLB's `config`) and `bgp.yaml`. */
  readonly data: Strings;
}

/** A MetalLB IPAddressPool or L2Advertisement: its identity, labels and spec (translated in core/metallb-crds.ts). */
export interface SlimMetalLB extends Slim {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly labels: Strings;
  readonly spec: unknown;
}

export interface SlimNamespace extends Slim {
  readonly name: string;
  readonly labels: Strings;
}

export interface SlimEndpointSlice extends Slim {
  readonly namespace: string;
  /** From label `kubernetes.io/service-name`. */
  readonly service: string;
  /** Nodes with at least one ready endpoint. */
  readonly readyNodes: readonly string[];
}

const CONFIG_KEYS = ["pools.yaml", "config", "bgp.yaml"];

const rec = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const arr = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);

const EMPTY_STRINGS: Strings = Object.freeze({});
const EMPTY_LIST: readonly never[] = Object.freeze([]);

function strings(v: unknown, keep: (k: string) => boolean = () => true): Strings {
  let out: Record<string, string> | undefined;
  const from = rec(v);
  // for-in over own keys, not Object.entries: no [key, value] pair per label on every watch event.
  for (const k in from) {
    const val = from[k];
    if (Object.hasOwn(from, k) && typeof val === "string" && keep(k)) (out ??= {})[k] = val;
  }
  return out === undefined ? EMPTY_STRINGS : Object.freeze(out);
}

/**
 * One shared copy of the values nearly every Service repeats ("LoadBalancer", ["IPv4"], one TCP port 80…):
 * JSON.parse makes a fresh string or array each time, and every cached Service would keep its own.
 */
const shared = new Map<string, unknown>();
function share<T>(key: string, make: () => T): T {
  const hit = shared.get(key);
  if (hit !== undefined) return hit as T;
  const v = make();
  // Bounded: odd values (a port list of its own) are simply not shared once the table is full.
  if (shared.size < 1024) shared.set(key, v);
  return v;
}
const sharedText = (v: string | undefined): string | undefined =>
  v === undefined ? undefined : share(`s:${v}`, () => v);

function textList(v: unknown): readonly string[] {
  const list = arr(v).filter((f): f is string => typeof f === "string");
  return list.length === 0 ? EMPTY_LIST : share(`l:${list.join("\u0000")}`, () => Object.freeze(list));
}

/** The identity every namespaced projection starts from, plus the raw metadata to read the rest. */
function identity(raw: unknown) {
  const m = objectMeta(raw);
  if (m === undefined) return undefined;
  const meta = rec(rec(raw).metadata);
  const namespace = sharedText(m.namespace) ?? m.namespace;
  const id = { key: m.key, resourceVersion: m.rv, namespace, name: m.name, uid: str(meta.uid) ?? "" };
  return { id, meta };
}

export function projectService(raw: unknown): SlimService | undefined {
  const base = identity(raw);
  if (base === undefined) return undefined;
  const { id, meta } = base;
  const o = rec(raw);
  const spec = rec(o.spec);
  const lb = rec(rec(o.status).loadBalancer);
  return Object.freeze({
    ...id,
    type: sharedText(str(spec.type)) ?? "ClusterIP",
    loadBalancerClass: sharedText(str(spec.loadBalancerClass)),
    loadBalancerIP: str(spec.loadBalancerIP),
    ipFamilies: textList(spec.ipFamilies),
    ipFamilyPolicy: sharedText(str(spec.ipFamilyPolicy)),
    ports: servicePorts(spec.ports),
    externalTrafficPolicy: sharedText(str(spec.externalTrafficPolicy)),
    selector: strings(spec.selector),
    labels: strings(meta.labels),
    annotations: strings(meta.annotations, (k) => ANNOTATION_PREFIXES.some((p) => k.startsWith(p))),
    externalIPs: textList(spec.externalIPs),
    ingress: ingressIps(lb.ingress),
  });
}

/**
 * The Services either half of the daemon reads: LoadBalancers (allocated and announced), any Service with a
 * recorded ingress or our pool annotation (after a type change the controller releases the address and removes
 * them; kube-apiserver has usually emptied the ingress already) and any with `spec.externalIPs` (the speaker
 * announces those too), and any still carrying the speaker's announcing-node annotation (the speaker removes it
 * once nothing is announced). A plain ClusterIP Service is dropped, which keeps the one shared cache small.
 */
export function projectWatchedService(raw: unknown): SlimService | undefined {
  const s = projectService(raw);
  return s !== undefined &&
    (s.type === "LoadBalancer" ||
      s.ingress.length > 0 ||
      s.annotations[POOL_ANNOTATION] !== undefined ||
      s.externalIPs.length > 0 ||
      s.annotations[ANNOUNCING_ANNOTATION] !== undefined)
    ? s
    : undefined;
}

function servicePorts(v: unknown): SlimService["ports"] {
  const ports = arr(v).map((p) => {
    const r = rec(p);
    return { port: typeof r.port === "number" ? r.port : 0, protocol: str(r.protocol) ?? "TCP" };
  });
  if (ports.length === 0) return EMPTY_LIST;
  return share(`p:${ports.map((p) => `${p.port}/${p.protocol}`).join(",")}`, () =>
    Object.freeze(ports.map((p) => Object.freeze(p))),
  );
}

function ingressIps(v: unknown): readonly string[] {
  const ips = arr(v).flatMap((i) => str(rec(i).ip) ?? []);
  return ips.length === 0 ? EMPTY_LIST : Object.freeze(ips);
}

export function projectConfigMap(raw: unknown): SlimConfigMap | undefined {
  const base = identity(raw);
  if (base === undefined) return undefined;
  const { id, meta } = base;
  return Object.freeze({
    ...id,
    labels: strings(meta.labels),
    data: strings(rec(raw).data, (k) => CONFIG_KEYS.includes(k)),
  });
}

export function projectMetalLB(raw: unknown): SlimMetalLB | undefined {
  const base = identity(raw);
  if (base === undefined) return undefined;
  return Object.freeze({ ...base.id, labels: strings(base.meta.labels), spec: rec(raw).spec ?? {} });
}

export function projectNamespace(raw: unknown): SlimNamespace | undefined {
  const m = objectMeta(raw);
  if (m === undefined) return undefined;
  return Object.freeze({
    key: m.key,
    resourceVersion: m.rv,
    name: m.name,
    labels: strings(rec(rec(raw).metadata).labels),
  });
}

export function projectEndpointSlice(raw: unknown): SlimEndpointSlice | undefined {
  const m = objectMeta(raw);
  if (m === undefined) return undefined;
  const service = rec(rec(rec(raw).metadata).labels)["kubernetes.io/service-name"];
  const nodes = new Set<string>();
  for (const e of arr(rec(raw).endpoints)) {
    const ep = rec(e);
    const ready = rec(ep.conditions).ready;
    const node = str(ep.nodeName);
    // An absent `ready` means ready (EndpointConditions docs).
    if (node !== undefined && ready !== false) nodes.add(node);
  }
  return Object.freeze({
    key: m.key,
    resourceVersion: m.rv,
    namespace: sharedText(m.namespace) ?? m.namespace,
    service: typeof service === "string" ? service : "",
    // Most slices name the same few nodes: one frozen list per distinct set.
    readyNodes: textList([...nodes].sort()),
  });
}
