import type { Pool } from "../../../src/core/config.ts";
import { parsePoolConfigMap } from "../../../src/core/config.ts";
import type { ServiceRequest } from "../../../src/core/service-request.ts";
import type { IpAddress } from "../../../src/core/ip.ts";
import { formatIp, parseIp } from "../../../src/core/ip.ts";

/** Pools from Lodestone YAML; fails the test on any problem. */
export function pools(yaml: string): Pool[] {
  const r = parsePoolConfigMap({ namespace: "lodestone-system", name: "pools", data: { "pools.yaml": yaml } });
  if (r.problems.length > 0) throw new Error(`fixture pools have problems: ${JSON.stringify(r.problems)}`);
  return [...r.pools];
}

export function svc(name: string, over: Partial<ServiceRequest> = {}): ServiceRequest {
  const [namespace, n] = name.includes("/") ? (name.split("/") as [string, string]) : ["default", name];
  return {
    namespace,
    name: n,
    ipFamilies: [4],
    ipFamilyPolicy: "SingleStack",
    requestedIps: [],
    ports: [{ port: 80, protocol: "TCP" }],
    externalTrafficPolicy: "Cluster",
    selector: { app: n },
    labels: {},
    namespaceLabels: {},
    ...over,
  };
}

export const ips = (...texts: string[]): IpAddress[] =>
  texts.map((t) => {
    const a = parseIp(t);
    if (a === undefined) throw new Error(`bad fixture IP ${t}`);
    return a;
  });

export const texts = (addrs: readonly IpAddress[] | undefined): string[] => (addrs ?? []).map(formatIp);
