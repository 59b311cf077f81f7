import type { AllocationError, Result } from "./errors.ts";
import { err, ok, refusal } from "./errors.ts";
import type { Family, IpAddress } from "./ip.ts";
import { familyName, parseIp } from "./ip.ts";
import type { Labels } from "./selector.ts";
import { REQUEST_ANNOTATIONS } from "./well-known.ts";

export type IpFamilyPolicy = "SingleStack" | "PreferDualStack" | "RequireDualStack";
export type Protocol = "TCP" | "UDP" | "SCTP";
export type ExternalTrafficPolicy = "Cluster" | "Local";

export interface ServicePort {
  readonly port: number;
  readonly protocol: Protocol;
}

/** Core's view of a LoadBalancer Service: everything allocation depends on, nothing else. */
export interface ServiceRequest {
  readonly namespace: string;
  readonly name: string;
  /** spec.ipFamilies in order (primary first); empty when the API server has not filled it in. */
  readonly ipFamilies: readonly Family[];
  readonly ipFamilyPolicy: IpFamilyPolicy;
  /** Explicitly requested addresses, at most one per family. */
  readonly requestedIps: readonly IpAddress[];
  readonly requestedPool?: string;
  readonly sharingKey?: string;
  readonly ports: readonly ServicePort[];
  readonly externalTrafficPolicy: ExternalTrafficPolicy;
  /** spec.selector (pod selector): Local Services share an IP only with identical ones. */
  readonly selector: Labels;
  readonly labels: Labels;
  readonly namespaceLabels: Labels;
}

/** "namespace/name" (plain `+`: a template literal costs a ToString call per part on the allocation path). */
export const serviceKey = (s: { readonly namespace: string; readonly name: string }): string =>
  s.namespace + "/" + s.name;

/** The plain Service fields an adapter copies out of a V1Service (no client-library types in the core). */
export interface ServiceFields {
  readonly namespace: string;
  readonly name: string;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly ipFamilies?: readonly string[] | undefined;
  readonly ipFamilyPolicy?: string | undefined;
  readonly loadBalancerIP?: string | undefined;
  readonly ports?: readonly { readonly port: number; readonly protocol?: string | undefined }[] | undefined;
  readonly externalTrafficPolicy?: string | undefined;
  readonly selector?: Readonly<Record<string, string>> | undefined;
}

export interface ParsedServiceRequest {
  readonly request: ServiceRequest;
  /** MetalLB annotations the Service uses; they work, but the lodestone.dev forms are preferred. */
  readonly deprecatedAnnotations: readonly string[];
}

/** The MetalLB forms of every annotation, in the order of `REQUEST_ANNOTATIONS`. */
const METALLB_FORMS: readonly string[] = Object.values(REQUEST_ANNOTATIONS)
  .flat()
  .filter((a) => a.startsWith("metallb."));
const NONE: readonly never[] = Object.freeze([]);
const NOTHING_PICKED = ok(undefined);

type Picked = Result<{ field: string; value: string } | undefined, AllocationError>;

/** The one value of an annotation given in several forms (and a field), or why they disagree. */
function pick(
  annotations: Readonly<Record<string, string>>,
  names: readonly string[],
  extra?: { field: string; value: string | undefined },
): Picked {
  // The field's name is spelt out only for a value that is set: most Services carry none of these annotations.
  let first: { field: string; value: string } | undefined;
  for (let i = 0; i <= names.length; i++) {
    const name = names[i];
    const value = (name === undefined ? extra?.value : annotations[name])?.trim();
    if (value === undefined || value === "" || value === first?.value) continue;
    const field = name === undefined ? (extra?.field ?? "") : `annotation ${name}`;
    if (first !== undefined) {
      return err(refusal.requestInvalid(field, `"${value}" disagrees with ${first.field} ("${first.value}")`));
    }
    first = { field, value };
  }
  return first === undefined ? NOTHING_PICKED : ok(first);
}

/** A frozen map is shared as it is (the informers' projections are frozen); anything else is copied. */
const own = (labels: Labels | undefined): Labels =>
  labels === undefined ? {} : Object.isFrozen(labels) ? labels : { ...labels };

/**
 * Reads a Service's allocation request from its fields and annotations. When several forms of one annotation are
 * set they must agree, so a half-migrated Service never silently gets the "wrong" one. It runs on every reconcile,
 * so a Service without annotations (most of them) costs no closures or intermediate lists.
 */
export function serviceRequestFrom(
  fields: ServiceFields,
  namespaceLabels: Labels,
): Result<ParsedServiceRequest, AllocationError> {
  const annotations = fields.annotations ?? {};
  let annotated = false;
  for (const _ in annotations) {
    annotated = true;
    break;
  }
  const deprecated = annotated ? METALLB_FORMS.filter((a) => annotations[a] !== undefined) : NONE;

  const ipsText =
    annotated || fields.loadBalancerIP !== undefined
      ? pick(annotations, REQUEST_ANNOTATIONS.loadBalancerIps, {
          field: "spec.loadBalancerIP",
          value: fields.loadBalancerIP,
        })
      : NOTHING_PICKED;
  if (!ipsText.ok) return ipsText;
  const pool = annotated ? pick(annotations, REQUEST_ANNOTATIONS.addressPool) : NOTHING_PICKED;
  if (!pool.ok) return pool;
  const sharing = annotated ? pick(annotations, REQUEST_ANNOTATIONS.sharingKey) : NOTHING_PICKED;
  if (!sharing.ok) return sharing;

  const requestedIps: IpAddress[] = [];
  if (ipsText.value !== undefined) {
    const { field, value } = ipsText.value;
    for (const part of value.split(",").map((p) => p.trim())) {
      const addr = parseIp(part);
      if (addr === undefined) return err(refusal.requestInvalid(field, `"${part}" is not an IP address`));
      if (requestedIps.some((r) => r.family === addr.family)) {
        return err(refusal.requestInvalid(field, `more than one ${familyName(addr.family)} address (one per family)`));
      }
      requestedIps.push(addr);
    }
  }

  const ipFamilies: Family[] = [];
  for (const f of fields.ipFamilies ?? []) {
    if (f !== "IPv4" && f !== "IPv6") return err(refusal.requestInvalid("spec.ipFamilies", `unknown family "${f}"`));
    ipFamilies.push(f === "IPv4" ? 4 : 6);
  }
  const policy = fields.ipFamilyPolicy ?? "SingleStack";
  if (policy !== "SingleStack" && policy !== "PreferDualStack" && policy !== "RequireDualStack") {
    return err(refusal.requestInvalid("spec.ipFamilyPolicy", `unknown policy "${policy}"`));
  }
  const ports: ServicePort[] = [];
  for (const p of fields.ports ?? []) {
    const protocol = p.protocol ?? "TCP";
    if (protocol !== "TCP" && protocol !== "UDP" && protocol !== "SCTP") {
      return err(refusal.requestInvalid("spec.ports", `unknown protocol "${protocol}"`));
    }
    ports.push({ port: p.port, protocol });
  }
  const request: ServiceRequest = {
    namespace: fields.namespace,
    name: fields.name,
    ipFamilies,
    ipFamilyPolicy: policy,
    requestedIps,
    ...(pool.value !== undefined && { requestedPool: pool.value.value }),
    ...(sharing.value !== undefined && { sharingKey: sharing.value.value }),
    ports,
    externalTrafficPolicy: fields.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
    selector: own(fields.selector),
    labels: own(fields.labels),
    namespaceLabels: own(namespaceLabels),
  };
  return ok({ request, deprecatedAnnotations: deprecated });
}

/**
 * Why a recorded `status.loadBalancer.ingress` cannot be a LoadBalancer's addresses, or undefined when it can: at
 * most one address per family (two in all), as MetalLB's ipfamily.ForAddresses (internal/ipfamily) requires —
 * its controller (convergeBalancer, controller/service.go) records a Warning and starts over on such a status.
 * Entries that are no IP (hostnames) are not counted.
 */
export function ingressShapeProblem(ingress: readonly string[]): string | undefined {
  const byFamily = { 4: [] as string[], 6: [] as string[] };
  for (const text of ingress) {
    const addr = parseIp(text);
    if (addr !== undefined) byFamily[addr.family].push(text);
  }
  const doubled = ([4, 6] as const).filter((f) => byFamily[f].length > 1);
  if (doubled.length === 0) return undefined;
  const held = doubled.map((f) => `${byFamily[f].length} ${familyName(f)} addresses (${byFamily[f].join(", ")})`);
  return `status.loadBalancer.ingress held ${held.join(" and ")}; a Service has at most one address per family`;
}
