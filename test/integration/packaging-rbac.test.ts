// The chart's RBAC is exactly what the daemon needs. Sufficient: the daemon (controller + speaker with a fake
// announcer and loopback heartbeats) runs on the chart's ServiceAccount token against the sandbox in RBAC mode,
// loaded with the ClusterRole/Role/bindings rendered from the chart, does everything it does and is refused
// nothing. Minimal: with any single permission (apiGroup x resource x verb of any rule) taken away, the sandbox
// refuses the daemon exactly that permission.
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "../../src/app/daemon.ts";
import { speakerComponent } from "../../src/app/speaker-component.ts";
import type { SpeakerAnnouncer } from "../../src/app/speaker.ts";
import { parseIp } from "../../src/core/ip.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import {
  ANNOUNCING_ANNOTATION,
  MEMBERLIST_SECRET,
  POOL_ANNOTATION,
  speakerLeaseName,
} from "../../src/core/well-known.ts";
import { type Denial, type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { findHelmTemplate, manifestRelease, renderChart } from "../../scripts/lib/chart.ts";
import { fastLease } from "./controller-env.ts";
import { fastMembership, lanIfaces } from "./speaker-env.ts";
import { ipAddressPoolCrd, l2AdvertisementCrd } from "./metallb-crds.ts";

const ns = manifestRelease.namespace;
const node = "node1";
const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
}
/** One permission: a single apiGroup, resource and verb of one rule of the ClusterRole or the Role. */
interface Permission {
  readonly role: "ClusterRole" | "Role";
  readonly group: string;
  readonly resource: string;
  readonly verb: string;
  readonly resourceNames?: readonly string[];
}

const describePermission = (p: Permission): string =>
  `${p.role}: ${p.verb} ${p.group === "" ? "" : `${p.group}/`}${p.resource}` +
  (p.resourceNames === undefined ? "" : ` [${p.resourceNames.join(",")}]`);

function permissionsOf(role: Obj): Permission[] {
  const kind = role.kind as Permission["role"];
  return (role.rules ?? []).flatMap((r) =>
    r.apiGroups.flatMap((group) =>
      r.resources.flatMap((resource) =>
        r.verbs.map((verb) => ({
          role: kind,
          group,
          resource,
          verb,
          ...(r.resourceNames === undefined ? {} : { resourceNames: r.resourceNames }),
        })),
      ),
    ),
  );
}

/** The rules granting exactly `perms`, one permission a rule (the same grant as the chart's grouping). */
const rulesOf = (perms: readonly Permission[]): Rule[] =>
  perms.map((p) => ({
    apiGroups: [p.group],
    resources: [p.resource],
    verbs: [p.verb],
    ...(p.resourceNames === undefined ? {} : { resourceNames: [...p.resourceNames] }),
  }));

/** Whether a refused request is one the permission would have allowed. */
function grants(p: Permission, d: Denial): boolean {
  const resource = d.subresource === "" ? d.resource : `${d.resource}/${d.subresource}`;
  return (
    d.group === p.group &&
    resource === p.resource &&
    d.verb === p.verb &&
    (p.role === "ClusterRole" || d.namespace === ns) &&
    (p.resourceNames === undefined || p.resourceNames.includes(d.name))
  );
}

const tool = findHelmTemplate();
if (tool === undefined) {
  console.log("packaging: helm-template not found (../shared/tools or $LODESTONE_HELM_TEMPLATE): RBAC proof skipped");
}
const render = tool === undefined ? undefined : await renderChart(tool);
if (render !== undefined && !render.ok) throw new Error(`rendering the chart failed: ${render.error}`);
const rendered: Obj[] =
  render?.ok === true
    ? parseAllDocuments(render.yaml)
        .map((d) => d.toJS() as Obj | null)
        .filter((o): o is Obj => o !== null)
    : [];
const only = (kind: string): Obj => {
  const found = rendered.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`the render has ${found.length} ${kind}s, expected 1`);
  return found[0]!;
};
const clusterRole = tool === undefined ? undefined : only("ClusterRole");
const role = tool === undefined ? undefined : only("Role");
const permissions =
  clusterRole === undefined || role === undefined ? [] : [...permissionsOf(clusterRole), ...permissionsOf(role)];

const fakeAnnouncer: SpeakerAnnouncer = {
  reconcile: () => undefined,
  telemetry: () => ({ layer2: [], layer2Drops: [] }),
  close: () => undefined,
};

describe.skipIf(tool === undefined)("the chart's RBAC, proven against the sandbox in RBAC mode", () => {
  let sandbox: Sandbox;
  let admin: KubeClient;
  let daemonConfig: KubeConfig;
  let run = 0;

  async function call(method: "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<void> {
    const r = await admin.request({ method, path, ...(body === undefined ? {} : { body }) });
    if (r.status >= 300 && !(method === "DELETE" && r.status === 404)) {
      throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
  async function get(path: string): Promise<Record<string, unknown> | undefined> {
    const r = await admin.request({ method: "GET", path });
    return r.status === 200 ? (r.body as Record<string, unknown>) : undefined;
  }
  const rbacPath = "/apis/rbac.authorization.k8s.io/v1";
  const collection: Record<string, string> = {
    ServiceAccount: `/api/v1/namespaces/${ns}/serviceaccounts`,
    ClusterRole: `${rbacPath}/clusterroles`,
    ClusterRoleBinding: `${rbacPath}/clusterrolebindings`,
    Role: `${rbacPath}/namespaces/${ns}/roles`,
    RoleBinding: `${rbacPath}/namespaces/${ns}/rolebindings`,
  };

  /** Grants exactly `perms` through the chart's ClusterRole and Role (their names, their bindings). */
  async function grant(perms: readonly Permission[]): Promise<void> {
    for (const r of [clusterRole!, role!]) {
      const rules = rulesOf(perms.filter((p) => p.role === r.kind));
      await call("PATCH", `${collection[r.kind]}/${r.metadata.name}`, { rules });
    }
  }

  beforeAll(async () => {
    sandbox = await startSandbox({ rbac: true });
    const kc = new KubeConfig();
    kc.loadFromString(sandbox.kubeconfigYaml);
    admin = createKubeClient(kc);
    await call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
    // What a `helm install` of the defaults creates that the API server authorizes with.
    const kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
    expect(
      rendered
        .map((o) => o.kind)
        .filter((k) => kinds.includes(k))
        .sort(),
    ).toEqual([...kinds].sort());
    for (const o of rendered.filter((x) => kinds.includes(x.kind))) await call("POST", collection[o.kind]!, o);
    await call("POST", `/api/v1/namespaces/${ns}/configmaps`, {
      metadata: { name: "pools", namespace: ns, labels: { "lodestone.dev/pools": "true" } },
      data: { "pools.yaml": "- name: lan\n  addresses: [192.0.2.100-192.0.2.199]\n" },
    });
    // MetalLB's CRDs, a pool (kept for explicit requests, so the ConfigMap's pool still serves "web") and an
    // advertisement: the daemon reads them, so the metallb.io rules are proven like the others.
    await call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", ipAddressPoolCrd);
    await call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", l2AdvertisementCrd);
    await call("POST", "/api/v1/namespaces", { metadata: { name: "metallb-system" } });
    await call("POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools", {
      metadata: { name: "crd-lan" },
      spec: { addresses: ["192.0.2.210-192.0.2.219"], autoAssign: false },
    });
    await call("POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements", {
      metadata: { name: "all" },
      spec: {},
    });
    await call("POST", "/api/v1/nodes", {
      metadata: { name: node, labels: { "kubernetes.io/hostname": node } },
      status: {
        conditions: [{ type: "Ready", status: "True" }],
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
      },
    });
    const sa = only("ServiceAccount").metadata.name;
    expect(only("DaemonSet")).toMatchObject({ spec: { template: { spec: { serviceAccountName: sa } } } });
    daemonConfig = new KubeConfig();
    daemonConfig.loadFromString(sandbox.kubeconfigFor(ns, sa).kubeconfigYaml);
  });

  afterAll(async () => {
    await admin?.close();
    await sandbox?.stop();
  });

  function startLodestone(): Promise<Daemon> {
    return startDaemon(
      {
        kubeConfig: daemonConfig,
        namespace: ns,
        nodeName: node,
        metallbNamespace: "metallb-system",
        metricsPort: -1,
        lease: fastLease, // with fastMembership below: a whole run takes about half a second
        informerBackoff: { initialMs: 100, maxMs: 400 },
        speakerFactory: speakerComponent({
          createAnnouncer: async () => ({ ok: true, value: fakeAnnouncer }),
          heartbeatPort: 0,
          heartbeatAddress: parseIp("127.0.0.1")!,
          scanInterfaces: lanIfaces,
          timing: fastMembership,
          handoffMs: 50,
        }),
      },
      logger.child({ run }),
    );
  }

  /**
   * One run of everything the daemon does, in a fresh namespace: from a missing Secret and missing Leases, a
   * Service to allocate and announce (its first status write answered 409, so the controller re-reads it), and a
   * Service that cannot be allocated, touched until its Warning repeats (a repeated Event is a patch).
   * Runs until `done` says so or `ms` pass; returns the requests the sandbox refused meanwhile.
   */
  async function scenario(done: (app: string, denied: readonly Denial[]) => Promise<boolean>, ms: number) {
    const app = `app-${++run}`;
    const before = sandbox.denials().length;
    await call("DELETE", `/api/v1/namespaces/${ns}/secrets/${MEMBERLIST_SECRET}`);
    for (const lease of ["lodestone-controller", speakerLeaseName(node)]) {
      await call("DELETE", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${lease}`);
    }
    await call("POST", "/api/v1/namespaces", { metadata: { name: app } });
    sandbox.faults.failNext({ verb: "patch", resource: "services/status", code: 409 });
    await call("POST", `/api/v1/namespaces/${app}/services`, {
      metadata: { name: "web" },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    await call("POST", `/api/v1/namespaces/${app}/services`, {
      metadata: { name: "bad", annotations: { "lodestone.dev/address-pool": "nowhere" } },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    const daemon = await startLodestone();
    const denied = (): readonly Denial[] => sandbox.denials().slice(before);
    const end = Date.now() + ms;
    let finished = false;
    let stopMs: number;
    try {
      for (let touch = 0; Date.now() < end; touch++) {
        if (await done(app, denied())) {
          finished = true;
          break;
        }
        if (touch % 10 === 9) {
          await call("PATCH", `/api/v1/namespaces/${app}/services/bad`, {
            metadata: { labels: { touch: `${touch}` } },
          });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      const stopAt = performance.now();
      await daemon.stop("run over");
      stopMs = performance.now() - stopAt;
      sandbox.faults.clear();
      for (const svc of ["web", "bad"]) await call("DELETE", `/api/v1/namespaces/${app}/services/${svc}`);
    }
    return { app, finished, stopMs, denied: denied() };
  }

  /** The state a working daemon leaves behind, as far as it is there yet. */
  async function observe(app: string) {
    const svc = (await get(`/api/v1/namespaces/${app}/services/web`)) as
      | {
          metadata: { annotations?: Record<string, string> };
          status?: { loadBalancer?: { ingress?: { ip: string }[] } };
        }
      | undefined;
    const events = ((await get(`/api/v1/namespaces/${app}/events`))?.["items"] ?? []) as {
      involvedObject: { name: string };
      reason: string;
      count?: number;
    }[];
    const lease = async (name: string) =>
      (
        (await get(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`)) as
          { spec?: { holderIdentity?: string } } | undefined
      )?.spec?.holderIdentity;
    return {
      ingress: svc?.status?.loadBalancer?.ingress?.map((i) => i.ip) ?? [],
      pool: svc?.metadata.annotations?.[POOL_ANNOTATION],
      announcing: svc?.metadata.annotations?.[ANNOUNCING_ANNOTATION],
      allocated: events.some((e) => e.involvedObject.name === "web" && e.reason === "IPAllocated"),
      repeatedWarning: events.some(
        (e) => e.involvedObject.name === "bad" && e.reason === "AllocationFailed" && (e.count ?? 1) >= 2,
      ),
      controllerLease: await lease("lodestone-controller"),
      speakerLease: await lease(speakerLeaseName(node)),
      memberlistSecret: (await get(`/api/v1/namespaces/${ns}/secrets/${MEMBERLIST_SECRET}`)) !== undefined,
      conflictServed: sandbox.faults.state().failures.every((f) => f.remaining === 0),
    };
  }
  const working = {
    ingress: [expect.stringMatching(/^192\.0\.2\.1\d\d$/)],
    pool: "lan",
    announcing: node,
    allocated: true,
    repeatedWarning: true,
    controllerLease: expect.stringMatching(new RegExp(`^${node}_`)),
    speakerLease: node,
    memberlistSecret: true,
    conflictServed: true,
  };

  it("sufficient: with the chart's roles the daemon does all its work and is refused nothing", async () => {
    await grant(permissions);
    let last: Awaited<ReturnType<typeof observe>> | undefined;
    const r = await scenario(async (app, denied) => {
      if (denied.length > 0) return true;
      last = await observe(app);
      try {
        expect(last).toEqual(working);
        return true;
      } catch {
        return false;
      }
    }, 15_000);
    expect(r.denied).toEqual([]);
    expect(last).toEqual(working);
  });

  // Each case takes one permission away and expects the daemon to be refused precisely it (the rest of the roles
  // still allows everything else, so any other refusal would be a bug of the test).
  it.each(permissions.map((p) => ({ desc: describePermission(p), p })))(
    "minimal: without $desc the daemon is refused it",
    async ({ p }) => {
      await grant(permissions.filter((q) => q !== p));
      const r = await scenario(async (_app, denied) => denied.some((d) => grants(p, d)), 8_000);
      expect(r.finished, `no request needed ${describePermission(p)}`).toBe(true);
      expect(r.denied.filter((d) => !grants(p, d))).toEqual([]);
      // Refused something it needs, the daemon still shuts down at once (a pod must not hang in Terminating).
      expect(r.stopMs).toBeLessThan(2_000);
    },
  );
});
