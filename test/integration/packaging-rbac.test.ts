// The chart's RBAC is exactly what each workload needs. Sufficient: the controller (`--component controller`) and
// the speaker (`--component speaker`, a fake announcer and loopback heartbeats) run as two daemons, each on its own
// ServiceAccount's token, against the sandbox in RBAC mode loaded with the ClusterRoles, Roles and bindings rendered
// from the chart; they do everything they do and are refused nothing. Minimal: with any single permission
// (apiGroup x resource x verb of any rule of either workload) taken away, the sandbox refuses exactly that
// workload exactly that permission. Least privilege: the speaker's token may not change a Service, its status or
// create a Secret; the controller's may not read the heartbeat key.
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "../../src/app/daemon.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import {
  ANNOUNCING_ANNOTATION,
  EXCLUDE_LABEL,
  MEMBERLIST_SECRET,
  POOL_ANNOTATION,
  speakerLeaseName,
} from "../../src/core/well-known.ts";
import { type Denial, type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { collectionPath } from "../../src/sandbox/resources.ts";
import { findHelmTemplate, manifestRelease, renderChart } from "../../scripts/lib/chart.ts";
import { fastLease } from "./controller-env.ts";
import { quietSpeaker } from "./speaker-env.ts";
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
type Workload = "controller" | "speaker";
/** One permission: a single apiGroup, resource and verb of one rule of a workload's ClusterRole or Role. */
interface Permission {
  readonly workload: Workload;
  readonly role: "ClusterRole" | "Role";
  readonly group: string;
  readonly resource: string;
  readonly verb: string;
  readonly resourceNames?: readonly string[];
}

const describePermission = (p: Permission): string =>
  `${p.workload} ${p.role}: ${p.verb} ${p.group === "" ? "" : `${p.group}/`}${p.resource}` +
  (p.resourceNames === undefined ? "" : ` [${p.resourceNames.join(",")}]`);

function permissionsOf(workload: Workload, role: Obj): Permission[] {
  const kind = role.kind as Permission["role"];
  return (role.rules ?? []).flatMap((r) =>
    r.apiGroups.flatMap((group) =>
      r.resources.flatMap((resource) =>
        r.verbs.map((verb) => ({
          workload,
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

/** Whether a refused request is one the permission would have allowed its workload. */
function grants(p: Permission, d: Denial): boolean {
  const resource = d.subresource === "" ? d.resource : `${d.resource}/${d.subresource}`;
  return (
    d.user === `system:serviceaccount:${ns}:${serviceAccount[p.workload]}` &&
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
const only = (kind: string, name?: string): Obj => {
  const found = rendered.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`the render has ${found.length} ${kind}s ${name ?? ""}, expected 1`);
  return found[0]!;
};
const workloads: readonly Workload[] = ["controller", "speaker"];
/** Each workload's ClusterRole and Role, as the chart names them (<release>-controller, <release>-speaker). */
const roles =
  tool === undefined
    ? []
    : workloads.flatMap((w) =>
        (["ClusterRole", "Role"] as const).map((k) => ({ workload: w, obj: only(k, `lodestone-${w}`) })),
      );
const permissions = roles.flatMap((r) => permissionsOf(r.workload, r.obj));
/** Each workload's ServiceAccount, as its pod template names it. */
const serviceAccount: Record<Workload, string> =
  tool === undefined
    ? { controller: "", speaker: "" }
    : {
        controller: (only("Deployment") as unknown as { spec: { template: { spec: { serviceAccountName: string } } } })
          .spec.template.spec.serviceAccountName,
        speaker: (only("DaemonSet") as unknown as { spec: { template: { spec: { serviceAccountName: string } } } }).spec
          .template.spec.serviceAccountName,
      };

describe.skipIf(tool === undefined)("the chart's RBAC, proven against the sandbox in RBAC mode", () => {
  let sandbox: Sandbox;
  let admin: KubeClient;
  const configs = {} as Record<Workload, KubeConfig>;
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

  /** Grants exactly `perms` through the chart's ClusterRoles and Roles (their names, their bindings). */
  async function grant(perms: readonly Permission[]): Promise<void> {
    for (const { workload, obj } of roles) {
      const rules = rulesOf(perms.filter((p) => p.workload === workload && p.role === obj.kind));
      await call("PATCH", `${collectionPath(obj.kind, ns)}/${obj.metadata.name}`, { rules });
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
    ).toEqual([...kinds, ...kinds].sort());
    for (const o of rendered.filter((x) => kinds.includes(x.kind))) await call("POST", collectionPath(o.kind, ns)!, o);
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
    for (const w of workloads) {
      expect(rendered.filter((o) => o.kind === "ServiceAccount").map((o) => o.metadata.name)).toContain(
        serviceAccount[w],
      );
      configs[w] = new KubeConfig();
      configs[w].loadFromString(sandbox.kubeconfigFor(ns, serviceAccount[w]).kubeconfigYaml);
    }
    expect(serviceAccount.controller).not.toBe(serviceAccount.speaker);
  });

  afterAll(async () => {
    await admin?.close();
    await sandbox?.stop();
  });

  /** One workload, as its pod runs it: `lodestone run --component <workload>` on its own token. */
  function startLodestone(workload: Workload): Promise<Daemon> {
    return startDaemon(
      {
        kubeConfig: configs[workload],
        component: workload,
        namespace: ns,
        nodeName: node,
        metallbNamespace: "metallb-system",
        metricsPort: -1,
        lease: fastLease, // with the speaker's fast membership: a whole run takes about a second
        informerBackoff: { initialMs: 100, maxMs: 400 },
        speakerFactory: quietSpeaker(),
      },
      logger.child({ run, workload }),
    );
  }

  /**
   * One run of everything the daemon does, in a fresh namespace: from a missing Secret and missing Leases, a
   * Service to allocate and announce (its first status write answered 409, so the controller re-reads it), and a
   * Service that cannot be allocated, touched until its Warning repeats (a repeated Event is a patch), and the
   * node excluded from load balancers for a moment once the Service is announced, so that the speaker's
   * Announcing Event repeats too when it comes back.
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
    const daemons = [await startLodestone("controller"), await startLodestone("speaker")];
    const denied = (): readonly Denial[] => sandbox.denials().slice(before);
    const end = Date.now() + ms;
    let finished = false;
    let stopMs: number;
    let excludedAt: number | undefined;
    let included = false;
    const exclude = (on: boolean) =>
      call("PATCH", `/api/v1/nodes/${node}`, { metadata: { labels: { [EXCLUDE_LABEL]: on ? "true" : null } } });
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
        if (excludedAt === undefined && (await eventCount(app, "web", "Announcing")) > 0) {
          await exclude(true);
          excludedAt = Date.now();
        } else if (excludedAt !== undefined && !included && Date.now() - excludedAt > 600) {
          await exclude(false);
          included = true;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      const stopAt = performance.now();
      await Promise.all(daemons.map((d) => d.stop("run over")));
      stopMs = performance.now() - stopAt;
      if (excludedAt !== undefined && !included) await exclude(false);
      sandbox.faults.clear();
      for (const svc of ["web", "bad"]) await call("DELETE", `/api/v1/namespaces/${app}/services/${svc}`);
    }
    return { app, finished, stopMs, denied: denied() };
  }

  async function eventCount(app: string, name: string, reason: string): Promise<number> {
    const items = ((await get(`/api/v1/namespaces/${app}/events`))?.["items"] ?? []) as {
      involvedObject: { name: string };
      reason: string;
      count?: number;
    }[];
    return items
      .filter((e) => e.involvedObject.name === name && e.reason === reason)
      .reduce((n, e) => n + (e.count ?? 1), 0);
  }

  /** The state a working pair of workloads leaves behind, as far as it is there yet. */
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
      // The speaker's Event, recorded again after the node's exclusion ended: a patch of the first one.
      repeatedAnnouncing: events.some(
        (e) => e.involvedObject.name === "web" && e.reason === "Announcing" && (e.count ?? 1) >= 2,
      ),
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
    repeatedAnnouncing: true,
    repeatedWarning: true,
    controllerLease: expect.stringMatching(new RegExp(`^${node}_`)),
    speakerLease: node,
    memberlistSecret: true,
    conflictServed: true,
  };

  it("sufficient: with the chart's roles the two workloads do all their work and are refused nothing", async () => {
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
    "minimal: without $desc that workload is refused it",
    async ({ p }) => {
      await grant(permissions.filter((q) => q !== p));
      const r = await scenario(async (_app, denied) => denied.some((d) => grants(p, d)), 8_000);
      expect(r.finished, `no request needed ${describePermission(p)}`).toBe(true);
      expect(r.denied.filter((d) => !grants(p, d))).toEqual([]);
      // Refused something it needs, each workload still shuts down at once (a pod must not hang in Terminating).
      expect(r.stopMs).toBeLessThan(2_000);
    },
  );

  it.each([
    {
      desc: "patch a Service (its annotations)",
      method: "PATCH" as const,
      path: "/api/v1/namespaces/default/services/lp-target",
      body: { metadata: { annotations: { [ANNOUNCING_ANNOTATION]: "evil" } } },
      speaker: 403,
      controller: 200,
    },
    {
      desc: "patch a Service's status",
      method: "PATCH" as const,
      path: "/api/v1/namespaces/default/services/lp-target/status",
      body: { status: { loadBalancer: { ingress: [{ ip: "203.0.113.66" }] } } },
      speaker: 403,
      controller: 200,
    },
    {
      desc: "create a Secret",
      method: "POST" as const,
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "planted" }, data: { key: "AAAA" } },
      speaker: 403,
      controller: 201,
    },
    {
      desc: "read the heartbeat key",
      method: "GET" as const,
      path: `/api/v1/namespaces/${ns}/secrets/${MEMBERLIST_SECRET}`,
      body: undefined,
      speaker: 200,
      controller: 403,
    },
  ])("least privilege: $desc — the speaker's token $speaker, the controller's $controller", async (c) => {
    await grant(permissions);
    const secret = { metadata: { name: MEMBERLIST_SECRET }, data: { key: Buffer.alloc(32, 7).toString("base64") } };
    await call("DELETE", `/api/v1/namespaces/${ns}/secrets/${MEMBERLIST_SECRET}`);
    await call("POST", `/api/v1/namespaces/${ns}/secrets`, secret);
    await call("DELETE", `/api/v1/namespaces/${ns}/secrets/planted`);
    await call("DELETE", "/api/v1/namespaces/default/services/lp-target");
    await call("POST", "/api/v1/namespaces/default/services", {
      metadata: { name: "lp-target" },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    for (const w of workloads) {
      const client = createKubeClient(configs[w]);
      try {
        const r = await client.request({
          method: c.method,
          path: c.path,
          ...(c.body === undefined ? {} : { body: c.body }),
        });
        expect(r.status, `${w}: ${c.method} ${c.path}`).toBe(c[w]);
      } finally {
        await client.close();
      }
    }
    await call("DELETE", `/api/v1/namespaces/${ns}/secrets/planted`);
  });
});
