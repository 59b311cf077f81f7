import { objectMeta, type Slim } from "./informer.ts";

/**
 * Slim projections of the objects Lodestone watches: only the fields it reads, frozen. A full V1Service is
 * ~10 kB on the heap once managedFields and the client's model classes are counted; these are a few hundred
 * bytes, which is what keeps the daemon near 100 MB with 10k Services and 10k EndpointSlices.
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
  /** Only the pool keys (`pools.yaml`, MetalLB's `config`). */
  readonly data: Strings;
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

const ANNOTATION_PREFIXES = ["lodestone.dev/", "metallb.io/", "metallb.universe.tf/"];
const CONFIG_KEYS = ["pools.yaml", "config"];

const rec = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const arr = (v: unknown): readonly unknown[] => (Array.isArray(v) ? v : []);

function strings(v: unknown, keep: (k: string) => boolean = () => true): Strings {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(rec(v))) if (typeof val === "string" && keep(k)) out[k] = val;
  return Object.freeze(out);
}

/** The identity every namespaced projection starts from, plus the raw metadata to read the rest. */
function identity(raw: unknown) {
  const m = objectMeta(raw);
  if (m === undefined) return undefined;
  const meta = rec(rec(raw).metadata);
  const id = { key: m.key, resourceVersion: m.rv, namespace: m.namespace, name: m.name, uid: str(meta.uid) ?? "" };
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
    type: str(spec.type) ?? "ClusterIP",
    loadBalancerClass: str(spec.loadBalancerClass),
    loadBalancerIP: str(spec.loadBalancerIP),
    ipFamilies: Object.freeze(arr(spec.ipFamilies).filter((f): f is string => typeof f === "string")),
    ipFamilyPolicy: str(spec.ipFamilyPolicy),
    ports: Object.freeze(
      arr(spec.ports).map((p) => {
        const r = rec(p);
        return Object.freeze({ port: typeof r.port === "number" ? r.port : 0, protocol: str(r.protocol) ?? "TCP" });
      }),
    ),
    externalTrafficPolicy: str(spec.externalTrafficPolicy),
    selector: strings(spec.selector),
    labels: strings(meta.labels),
    annotations: strings(meta.annotations, (k) => ANNOTATION_PREFIXES.some((p) => k.startsWith(p))),
    externalIPs: Object.freeze(arr(spec.externalIPs).filter((f): f is string => typeof f === "string")),
    ingress: Object.freeze(arr(lb.ingress).flatMap((i) => str(rec(i).ip) ?? [])),
  });
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
    namespace: m.namespace,
    service: typeof service === "string" ? service : "",
    readyNodes: Object.freeze([...nodes].sort()),
  });
}
