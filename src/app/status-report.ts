import type { ConfigMapInput } from "../core/config.ts";
import { mergePools, parsePoolConfigMap } from "../core/config.ts";
import type { ConfigProblem } from "../core/errors.ts";
import { parseMetalLBObjects, type MetalLBObject } from "../core/metallb-crds.ts";
import type { IpAddress } from "../core/ip.ts";
import { parseIp } from "../core/ip.ts";
import type { StatusReport, StatusServiceInput } from "../core/status-report.ts";
import { buildStatus } from "../core/status-report.ts";
import type { KubeClient } from "../kube/client.ts";
import { responseMessage } from "../kube/client.ts";
import { ANNOUNCING_ANNOTATION, POOL_ANNOTATION, POOLS_SELECTOR } from "../core/well-known.ts";

/** Where `lodestone status` looks: the daemon's namespace holds the pool ConfigMaps. */
export interface StatusOptions {
  readonly namespace: string;
  /** Where MetalLB's IPAddressPools and L2Advertisements are read (unset: not read). */
  readonly metallbNamespace?: string;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === "object" && v !== null ? (v as Json) : {});
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const items = (v: unknown): Json[] => {
  const list = obj(v)["items"];
  return Array.isArray(list) ? list.map(obj) : [];
};
const stringMap = (v: unknown): Record<string, string> =>
  Object.fromEntries(Object.entries(obj(v)).filter((e): e is [string, string] => typeof e[1] === "string"));

/** The API could not be read: a message for the user, not a stack trace. */
export class StatusReadError extends Error {
  override readonly name = "StatusReadError";
}

async function list(
  client: KubeClient,
  path: string,
  query: Record<string, string> = {},
  optional = false,
): Promise<Json[]> {
  const res = await client.request({ method: "GET", path, query });
  // A CRD that is not installed: nothing of it exists.
  if (optional && res.status === 404) return [];
  if (res.status !== 200) throw new StatusReadError(`GET ${path}: ${responseMessage(res)}`);
  return items(res.body);
}

function metallbInput(o: Json): MetalLBObject {
  const meta = obj(o["metadata"]);
  return {
    namespace: str(meta["namespace"]) ?? "",
    name: str(meta["name"]) ?? "",
    labels: stringMap(meta["labels"]),
    spec: o["spec"] ?? {},
  };
}

function configMapInput(cm: Json, namespace: string): ConfigMapInput {
  const meta = obj(cm["metadata"]);
  return {
    namespace: str(meta["namespace"]) ?? namespace,
    name: str(meta["name"]) ?? "",
    labels: stringMap(meta["labels"]),
    data: stringMap(cm["data"]),
  };
}

/** Newest message of an Event reason (AllocationFailed, NotAnnounced) per "namespace/name". */
function newestOf(events: readonly Json[], reason: string): Map<string, string> {
  const newest = new Map<string, { at: string; message: string }>();
  for (const e of events) {
    if (str(e["reason"]) !== reason) continue;
    const involved = obj(e["involvedObject"]);
    const key = `${str(involved["namespace"]) ?? ""}/${str(involved["name"]) ?? ""}`;
    const at = str(e["lastTimestamp"]) ?? str(e["eventTime"]) ?? str(obj(e["metadata"])["creationTimestamp"]) ?? "";
    const previous = newest.get(key);
    if (previous === undefined || previous.at <= at) newest.set(key, { at, message: str(e["message"]) ?? "" });
  }
  return new Map([...newest].map(([k, v]) => [k, v.message]));
}

function serviceInput(
  svc: Json,
  failures: ReadonlyMap<string, string>,
  unannounced: ReadonlyMap<string, string>,
): StatusServiceInput {
  const meta = obj(svc["metadata"]);
  const namespace = str(meta["namespace"]) ?? "";
  const name = str(meta["name"]) ?? "";
  const annotations = stringMap(meta["annotations"]);
  const ingress = obj(obj(svc["status"])["loadBalancer"])["ingress"];
  const ips: IpAddress[] = [];
  for (const entry of Array.isArray(ingress) ? ingress : []) {
    const addr = parseIp(str(obj(entry)["ip"]) ?? "");
    if (addr !== undefined) ips.push(addr);
  }
  const pool = annotations[POOL_ANNOTATION];
  const node = annotations[ANNOUNCING_ANNOTATION];
  const failure = ips.length === 0 ? failures.get(`${namespace}/${name}`) : undefined;
  const notAnnounced = ips.length > 0 && node === undefined ? unannounced.get(`${namespace}/${name}`) : undefined;
  return {
    namespace,
    name,
    ips,
    ...(pool === undefined ? {} : { pool }),
    ...(node === undefined ? {} : { announcingNode: node }),
    ...(failure === undefined ? {} : { failure }),
    ...(notAnnounced === undefined ? {} : { notAnnounced }),
  };
}

/**
 * Reads pools, LoadBalancer Services and their newest AllocationFailed and NotAnnounced Events, and builds the report. Pool
 * ConfigMaps are parsed by the same core code as the daemon, so a broken one shows its problems here too.
 */
export async function readStatus(client: KubeClient, opts: StatusOptions): Promise<StatusReport> {
  const mlb =
    opts.metallbNamespace === undefined
      ? undefined
      : `/apis/metallb.io/v1beta1/namespaces/${encodeURIComponent(opts.metallbNamespace)}`;
  const [configMaps, services, events, ipPools, l2Ads] = await Promise.all([
    list(client, `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/configmaps`, {
      labelSelector: POOLS_SELECTOR,
    }),
    list(client, "/api/v1/services"),
    list(client, "/api/v1/events", { fieldSelector: "involvedObject.kind=Service" }),
    mlb === undefined ? [] : list(client, `${mlb}/ipaddresspools`, {}, true),
    mlb === undefined ? [] : list(client, `${mlb}/l2advertisements`, {}, true),
  ]);
  const problems: ConfigProblem[] = [];
  const parsed = configMaps.map((cm) => {
    const result = parsePoolConfigMap(configMapInput(cm, opts.namespace));
    problems.push(...result.problems);
    return result;
  });
  const crd = parseMetalLBObjects(ipPools.map(metallbInput), l2Ads.map(metallbInput));
  problems.push(...crd.problems);
  const merged = mergePools([...parsed, crd]);
  problems.push(...merged.problems);
  const failures = newestOf(events, "AllocationFailed");
  const unannounced = newestOf(events, "NotAnnounced");
  const rows = services
    .filter((svc) => str(obj(svc["spec"])["type"]) === "LoadBalancer")
    .map((svc) => serviceInput(svc, failures, unannounced));
  return buildStatus(merged.pools, rows, problems);
}
