import { formatIp, type IpAddress } from "../core/ip.ts";
import { isRetryable, responseMessage, type KubeClient, type KubeResponse } from "./client.ts";
import { ANNOUNCING_ANNOTATION, POOL_ANNOTATION } from "../core/well-known.ts";

/** Which Service version a write is based on; the write fails with "conflict" when the Service moved on. */
export interface ServiceRef {
  readonly namespace: string;
  readonly name: string;
  readonly resourceVersion: string;
}

/**
 * What became of one write, as data. `conflict` carries the Service as the server has it now (the "re-read"
 * of a 409), or undefined when it could not be read; `retry` says when, honouring Retry-After.
 */
export type WriteOutcome =
  | { readonly kind: "written" }
  | { readonly kind: "gone" }
  | { readonly kind: "conflict"; readonly current: unknown }
  | { readonly kind: "retry"; readonly afterMs: number | undefined; readonly reason: string }
  | { readonly kind: "failed"; readonly reason: string };

export interface ServiceStatusWriter {
  /**
   * Sets `status.loadBalancer.ingress` to exactly `ips` (empty clears it) through the /status subresource, and with
   * `pool` the `lodestone.dev/pool` annotation in the same write: kube-apiserver's status strategy for Services
   * resets only spec, so metadata written through /status persists, and the address and its pool land together.
   * `null` removes the annotation (with a cleared address).
   */
  writeIngress(ref: ServiceRef, ips: readonly IpAddress[], pool?: string | null): Promise<WriteOutcome>;
  /** Sets (or with undefined, removes) the `lodestone.dev/pool` annotation on the Service object. */
  writePool(ref: Omit<ServiceRef, "resourceVersion">, pool: string | undefined): Promise<WriteOutcome>;
  /** Sets (or with undefined, removes) the `lodestone.dev/announcing-node` annotation on the Service object. */
  writeAnnouncing(ref: Omit<ServiceRef, "resourceVersion">, nodes: string | undefined): Promise<WriteOutcome>;
}

const servicePath = (ns: string, name: string): string =>
  `/api/v1/namespaces/${encodeURIComponent(ns)}/services/${encodeURIComponent(name)}`;

/** The ingress list as the API carries it: one entry per IP, IPv4 first (the order kubectl shows). */
export function ingressOf(ips: readonly IpAddress[]): { ip: string }[] {
  return [...ips].sort((a, b) => a.family - b.family).map((a) => ({ ip: formatIp(a) }));
}

export function createServiceStatusWriter(client: KubeClient): ServiceStatusWriter {
  async function outcome(res: KubeResponse, ns: string, name: string): Promise<WriteOutcome> {
    if (res.status === 200) return { kind: "written" };
    if (res.status === 404) return { kind: "gone" };
    if (res.status === 409) {
      // Our view was stale: read the Service as it is now, so the caller decides again on fresh data.
      const now = await client.request({ method: "GET", path: servicePath(ns, name) });
      if (now.status === 404) return { kind: "gone" };
      return { kind: "conflict", current: now.status === 200 ? now.body : undefined };
    }
    if (isRetryable(res.status)) {
      return { kind: "retry", afterMs: res.retryAfterMs, reason: `${res.status} ${responseMessage(res)}` };
    }
    return { kind: "failed", reason: `${res.status} ${responseMessage(res)}` };
  }

  /** One annotation of the Service object, set or (undefined) removed; a merge patch touches nothing else. */
  async function annotate(
    ref: Omit<ServiceRef, "resourceVersion">,
    key: string,
    value: string | undefined,
  ): Promise<WriteOutcome> {
    const res = await client.request({
      method: "PATCH",
      path: servicePath(ref.namespace, ref.name),
      body: { metadata: { annotations: { [key]: value ?? null } } },
      timeoutMs: 10_000,
      // The returned Service is not read: the watch brings it.
      discardSuccessBody: true,
    });
    return outcome(res, ref.namespace, ref.name);
  }

  return {
    async writeIngress(ref, ips, pool) {
      const res = await client.request({
        method: "PATCH",
        path: `${servicePath(ref.namespace, ref.name)}/status`,
        // A merge patch replaces the whole list; the resourceVersion makes it conditional on what we saw.
        body: {
          metadata: {
            resourceVersion: ref.resourceVersion,
            ...(pool === undefined ? {} : { annotations: { [POOL_ANNOTATION]: pool } }),
          },
          status: { loadBalancer: { ingress: ips.length === 0 ? null : ingressOf(ips) } },
        },
        timeoutMs: 10_000,
        // The returned Service is not read: the watch brings it.
        discardSuccessBody: true,
      });
      return outcome(res, ref.namespace, ref.name);
    },
    writePool: (ref, pool) => annotate(ref, POOL_ANNOTATION, pool),
    writeAnnouncing: (ref, nodes) => annotate(ref, ANNOUNCING_ANNOTATION, nodes),
  };
}
