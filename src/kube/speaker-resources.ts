import { randomBytes } from "node:crypto";
import type { InterfaceSummary } from "../core/announcer-ranking.ts";
import { type IpAddress, formatIp, parseIp } from "../core/ip.ts";
import { type KubeClient, responseMessage } from "./client.ts";
import { type Slim, objectMeta } from "./informer.ts";
import { microTime } from "./lease.ts";
import type { SlimService } from "./objects.ts";
import {
  ANNOUNCING_ANNOTATION,
  COMPONENT_LABEL,
  HEARTBEAT_ANNOTATION,
  INTERFACES_ANNOTATION,
  MEMBERLIST_SECRET,
  SPEAKER_COMPONENT,
  speakerLeaseName,
} from "../core/well-known.ts";

/**
 * What only the speaker watches (Nodes, membership Leases) and writes (its Lease, the heartbeat key Secret, the
 * announcing-node annotation). Services, EndpointSlices, ConfigMaps and Namespaces use kube/objects.ts.
 */

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const strings = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === "string") out[k] = x;
  return out;
};
const ips = (texts: readonly (string | undefined)[]): IpAddress[] =>
  texts.flatMap((t) => {
    const a = t === undefined ? undefined : parseIp(t);
    return a === undefined ? [] : [a];
  });

export interface SpeakerNode extends Slim {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ready: boolean;
  readonly internalIps: readonly IpAddress[];
}

export function projectNode(raw: unknown): SpeakerNode | undefined {
  const meta = objectMeta(raw);
  if (meta === undefined) return undefined;
  const o = obj(raw);
  const status = obj(o["status"]);
  const ready = arr(status["conditions"]).some((c) => obj(c)["type"] === "Ready" && obj(c)["status"] === "True");
  const internalIps = ips(
    arr(status["addresses"])
      .filter((a) => obj(a)["type"] === "InternalIP")
      .map((a) => str(obj(a)["address"])),
  );
  return {
    key: meta.key,
    resourceVersion: meta.rv,
    name: meta.name,
    labels: strings(obj(o["metadata"])["labels"]),
    ready,
    internalIps,
  };
}

export interface SpeakerLease extends Slim {
  readonly node: string;
  readonly renewTime: string | undefined;
  readonly interfaces: readonly InterfaceSummary[] | undefined;
  readonly heartbeat: { readonly address: IpAddress; readonly port: number } | undefined;
}

export function projectLease(raw: unknown): SpeakerLease | undefined {
  const meta = objectMeta(raw);
  if (meta === undefined) return undefined;
  const o = obj(raw);
  const spec = obj(o["spec"]);
  const node = str(spec["holderIdentity"]);
  if (node === undefined) return undefined;
  const annotations = strings(obj(o["metadata"])["annotations"]);
  return {
    key: meta.key,
    resourceVersion: meta.rv,
    node,
    renewTime: str(spec["renewTime"]),
    interfaces: decodeInterfaces(annotations[INTERFACES_ANNOTATION]),
    heartbeat: decodeHeartbeatAddress(annotations[HEARTBEAT_ANNOTATION]),
  };
}

/**
 * Pure: whether a Node update can change an announcer ranking (readiness, labels). Status updates that change neither —
 * most of them — need no new plan.
 */
export function nodeChangesRanking(old: SpeakerNode | undefined, n: SpeakerNode): boolean {
  if (old === undefined || old.ready !== n.ready) return true;
  const [a, b] = [Object.keys(old.labels), Object.keys(n.labels)];
  return a.length !== b.length || a.some((k) => old.labels[k] !== n.labels[k]);
}

/**
 * Pure: whether a membership Lease update can change an announcer ranking (its holder, or the interfaces it publishes).
 * A plain renewal, every two seconds per node, does not: what it says about liveness reaches the plan through the
 * membership view, which the speaker compares on every tick.
 */
export function leaseChangesRanking(old: SpeakerLease | undefined, l: SpeakerLease): boolean {
  const text = (i: readonly InterfaceSummary[] | undefined) => (i === undefined ? undefined : encodeInterfaces(i));
  return old === undefined || old.node !== l.node || text(old.interfaces) !== text(l.interfaces);
}

/**
 * Pure: whether a Service update can change what the speaker announces or records: its addresses, type, class and
 * traffic policy, the announcing-node annotation (the speaker's own record), the uid its Events name. The
 * controller's pool annotation, labels, ports and selector do not — a plan's cost grows with the Services, and a
 * controller that takes over writes an annotation on every Service.
 */
/** Whether a Service update changes how its IPs are grouped and ranked (its addresses, type, class, policy). */
export function serviceChangesRanking(old: SlimService | undefined, s: SlimService): boolean {
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  return (
    old === undefined ||
    old.uid !== s.uid ||
    old.type !== s.type ||
    old.loadBalancerClass !== s.loadBalancerClass ||
    old.externalTrafficPolicy !== s.externalTrafficPolicy ||
    !same(old.ingress, s.ingress) ||
    !same(old.externalIPs, s.externalIPs)
  );
}

/** Whether a Service update changes what the speaker announces or records (the ranking inputs, the annotation). */
export function serviceChangesAnnouncement(old: SlimService | undefined, s: SlimService): boolean {
  return (
    serviceChangesRanking(old, s) || old?.annotations[ANNOUNCING_ANNOTATION] !== s.annotations[ANNOUNCING_ANNOTATION]
  );
}

// ---- Lease annotations: what peers need to know about a speaker ----

/** "192.0.2.11/24,2001:db8::11/64" per interface; compact because every Lease renewal carries it. */
export function encodeInterfaces(list: readonly InterfaceSummary[]): string {
  return JSON.stringify(
    list.map((i) => ({
      n: i.name,
      p: i.prefixes.map((p) => `${formatIp(p.ip)}/${p.bits}`),
      ...(i.defaultRoute4 ? { d4: true } : {}),
      ...(i.defaultRoute6 ? { d6: true } : {}),
    })),
  );
}

export function decodeInterfaces(text: string | undefined): InterfaceSummary[] | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  return parsed.flatMap((raw) => {
    const i = obj(raw);
    const name = str(i["n"]);
    if (name === undefined) return [];
    const prefixes = arr(i["p"]).flatMap((p) => {
      const [a, b] = (str(p) ?? "").split("/");
      const ip = a === undefined ? undefined : parseIp(a);
      const bits = Number(b);
      return ip === undefined || !Number.isInteger(bits) ? [] : [{ ip, bits }];
    });
    return [{ name, prefixes, defaultRoute4: i["d4"] === true, defaultRoute6: i["d6"] === true }];
  });
}

export const encodeHeartbeatAddress = (address: IpAddress, port: number): string =>
  address.family === 6 ? `[${formatIp(address)}]:${port}` : `${formatIp(address)}:${port}`;

export function decodeHeartbeatAddress(text: string | undefined): { address: IpAddress; port: number } | undefined {
  const m = text === undefined ? null : /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (m === null) return undefined;
  const address = parseIp(m[1] ?? "");
  const port = Number(m[2]);
  return address === undefined || port < 1 || port > 65535 ? undefined : { address, port };
}

// ---- writes ----

/**
 * This node's membership Lease: created when missing, then replaced (PUT: the RBAC allows update, not patch)
 * with a new renewTime. Returns an error message, or undefined on success.
 */
export function createLeaseRenewer(client: KubeClient, namespace: string, node: string, durationSeconds: number) {
  const path = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
  const name = speakerLeaseName(node);
  let last: { metadata?: unknown; spec?: { acquireTime?: string } } | undefined;
  return async function renew(annotations: Record<string, string>, timeoutMs: number): Promise<string | undefined> {
    const now = microTime(new Date());
    const body = (rv: string | undefined, acquire: string | undefined) => ({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name,
        namespace,
        labels: { [COMPONENT_LABEL]: SPEAKER_COMPONENT },
        annotations,
        ...(rv === undefined ? {} : { resourceVersion: rv }),
      },
      spec: {
        holderIdentity: node,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        acquireTime: acquire ?? now,
      },
    });
    for (let attempt = 0; attempt < 2; attempt++) {
      if (last === undefined) {
        const got = await client.request({ method: "GET", path: `${path}/${name}`, timeoutMs });
        if (got.status === 404) {
          const created = await client.request({ method: "POST", path, body: body(undefined, undefined), timeoutMs });
          if (created.status === 201 || created.status === 200) {
            last = created.body as typeof last;
            return undefined;
          }
          if (created.status !== 409) return `create Lease ${name}: ${responseMessage(created)}`;
          continue;
        }
        if (got.status !== 200) return `read Lease ${name}: ${responseMessage(got)}`;
        last = got.body as typeof last;
      }
      const rv = obj(last?.metadata)["resourceVersion"];
      const res = await client.request({
        method: "PUT",
        path: `${path}/${name}`,
        body: body(str(rv), last?.spec?.acquireTime),
        timeoutMs,
      });
      // 201: deleted meanwhile, and the PUT created it again (Leases allow create on update).
      if (res.status === 200 || res.status === 201) {
        last = res.body as typeof last;
        return undefined;
      }
      last = undefined;
      if (res.status !== 409 && res.status !== 404) return `renew Lease ${name}: ${responseMessage(res)}`;
    }
    return `renew Lease ${name}: conflicting writers`;
  };
}

/**
 * The heartbeat key: read the Secret, creating it with 32 random bytes when missing (two speakers racing get a
 * 409 and read the winner's). `data.key` signs; `data.previous`, when present, is still accepted, so a key is
 * rotated by moving key to previous and writing a new key.
 */
export async function loadMemberlistKeys(
  client: KubeClient,
  namespace: string,
): Promise<{ ok: true; value: Uint8Array[] } | { ok: false; message: string }> {
  const path = `/api/v1/namespaces/${namespace}/secrets`;
  for (let attempt = 0; attempt < 2; attempt++) {
    const got = await client.request({ method: "GET", path: `${path}/${MEMBERLIST_SECRET}` });
    if (got.status === 200) {
      const data = strings(obj(got.body)["data"]);
      const keys = [data["key"], data["previous"]]
        .filter((k): k is string => k !== undefined && k !== "")
        .map((k) => new Uint8Array(Buffer.from(k, "base64")));
      if (keys.length === 0 || (keys[0]?.length ?? 0) < 16) {
        return { ok: false, message: `Secret ${namespace}/${MEMBERLIST_SECRET} has no data.key of ≥ 16 bytes` };
      }
      return { ok: true, value: keys };
    }
    if (got.status !== 404) return { ok: false, message: `read Secret ${MEMBERLIST_SECRET}: ${responseMessage(got)}` };
    const created = await client.request({
      method: "POST",
      path,
      body: {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: MEMBERLIST_SECRET, namespace, labels: { [COMPONENT_LABEL]: SPEAKER_COMPONENT } },
        type: "Opaque",
        data: { key: randomBytes(32).toString("base64") },
      },
    });
    if (created.status !== 201 && created.status !== 200 && created.status !== 409) {
      return { ok: false, message: `create Secret ${MEMBERLIST_SECRET}: ${responseMessage(created)}` };
    }
  }
  return { ok: false, message: `Secret ${MEMBERLIST_SECRET} vanished while being created` };
}

/** Sets (or, with undefined, removes) the announcing-node annotation; a merge patch touches nothing else. */
export async function writeAnnouncingNode(
  client: KubeClient,
  namespace: string,
  name: string,
  node: string | undefined,
): Promise<string | undefined> {
  const res = await client.request({
    method: "PATCH",
    path: `/api/v1/namespaces/${namespace}/services/${name}`,
    body: { metadata: { annotations: { [ANNOUNCING_ANNOTATION]: node ?? null } } },
    timeoutMs: 5_000,
  });
  return res.status === 200 ? undefined : responseMessage(res);
}
