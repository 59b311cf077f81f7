// docs/migrating-from-metallb.md, step by step, against the sandbox in RBAC mode (no helm binary, no pods): a
// MetalLB 0.14/0.15 release (its CRDs, the two to keep annotated helm.sh/resource-policy: keep, its workloads),
// pools and an advertisement in metallb-system and 50 LoadBalancer Services with the addresses MetalLB wrote;
// then what `helm uninstall metallb` leaves; then the Lodestone chart's ServiceAccount and RBAC, and the
// controller of `lodestone run` on that ServiceAccount's token. No Service may lose or change its address.
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "../../src/app/daemon.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import { POOL_ANNOTATION } from "../../src/core/well-known.ts";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { collectionPath } from "../../src/sandbox/resources.ts";
import { findHelmTemplate, manifestRelease, renderChart } from "../../scripts/lib/chart.ts";
import { fastLease, until } from "./controller-env.ts";
import { ipAddressPoolCrd, l2AdvertisementCrd } from "./metallb-crds.ts";

const MLB = "metallb-system";
const ns = manifestRelease.namespace;
const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });
const tool = findHelmTemplate();

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

/** What Helm puts on every object of the release `metallb`. */
const released = (o: Obj): Obj => ({
  ...o,
  metadata: {
    ...o.metadata,
    labels: { ...o.metadata.labels, "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "metallb" },
    annotations: {
      ...o.metadata.annotations,
      "meta.helm.sh/release-name": "metallb",
      "meta.helm.sh/release-namespace": MLB,
    },
  },
});
const keep = (o: Obj): Obj => ({
  ...o,
  metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, "helm.sh/resource-policy": "keep" } },
});

// MetalLB's BGPPeer CRD converts between v1beta1 and v1beta2 through the webhook of MetalLB's controller: kept, it
// would point at a Service `helm uninstall` deletes. The guide keeps only the two CRDs Lodestone reads.
const bgpPeerCrd: Obj = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "bgppeers.metallb.io" },
  spec: {
    group: "metallb.io",
    scope: "Namespaced",
    names: { plural: "bgppeers", kind: "BGPPeer", singular: "bgppeer" },
    conversion: {
      strategy: "Webhook",
      webhook: {
        conversionReviewVersions: ["v1"],
        clientConfig: { service: { name: "metallb-webhook-service", namespace: MLB, path: "/convert" } },
      },
    },
    versions: ["v1beta1", "v1beta2"].map((name) => ({
      name,
      served: true,
      storage: name === "v1beta2",
      schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
    })),
  },
};

const crdPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const poolsPath = `/apis/metallb.io/v1beta1/namespaces/${MLB}/ipaddresspools`;

/** The release as `helm install metallb` left it (the parts the migration touches), with where each is created. */
const metallbRelease: { path: string; obj: Obj }[] = [
  { path: crdPath, obj: keep(released(ipAddressPoolCrd as unknown as Obj)) },
  { path: crdPath, obj: keep(released(l2AdvertisementCrd as unknown as Obj)) },
  { path: crdPath, obj: released(bgpPeerCrd) },
  {
    path: `/api/v1/namespaces/${MLB}/serviceaccounts`,
    obj: released({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "metallb-controller" } }),
  },
  {
    path: `/api/v1/namespaces/${MLB}/services`,
    obj: released({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "metallb-webhook-service" },
      spec: { ports: [{ port: 443, targetPort: 9443 }], selector: { "app.kubernetes.io/component": "controller" } },
    }),
  },
  {
    path: `/apis/apps/v1/namespaces/${MLB}/daemonsets`,
    obj: released({
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "metallb-speaker" },
      spec: {
        selector: { matchLabels: { app: "speaker" } },
        template: {
          metadata: { labels: { app: "speaker" } },
          spec: { containers: [{ name: "speaker", image: "quay.io/metallb/speaker:v0.14.9" }] },
        },
      },
    }),
  },
];

// The user's configuration: not part of the release, so `helm uninstall` never deletes it (only the CRDs would).
const pools = [
  { name: "production", spec: { addresses: ["192.0.2.0/26"] } },
  { name: "reserved", spec: { addresses: ["198.51.100.0/28"], autoAssign: false } },
];

interface Svc {
  namespace: string;
  name: string;
  ip: string;
  pool: string;
  annotations?: Record<string, string>;
  protocol?: "TCP" | "UDP";
}
/**
 * 50 Services as MetalLB 0.14 left them. Addresses in the order of a cluster that has lived a while (not the
 * lowest free ones Lodestone would pick for a new Service), so a re-allocation would show.
 */
const services: Svc[] = [
  ...Array.from({ length: 40 }, (_, i) => ({
    namespace: i % 2 === 0 ? "apps" : "web",
    name: `svc-${i}`,
    ip: `192.0.2.${63 - i}`,
    pool: "production",
  })),
  ...Array.from({ length: 5 }, (_, i) => ({
    namespace: "apps",
    name: `fixed-${i}`,
    ip: `198.51.100.${2 + i}`,
    pool: "reserved",
    annotations: { "metallb.io/loadBalancerIPs": `198.51.100.${2 + i}` },
  })),
  ...Array.from({ length: 3 }, (_, i) => ({
    namespace: "web",
    name: `asked-${i}`,
    ip: `198.51.100.${12 - i}`,
    pool: "reserved",
    annotations: { "metallb.io/address-pool": "reserved" },
  })),
  ...(["TCP", "UDP"] as const).map((protocol) => ({
    namespace: "apps",
    name: `dns-${protocol.toLowerCase()}`,
    ip: "192.0.2.10",
    pool: "production",
    protocol,
    annotations: { "metallb.io/allow-shared-ip": "dns" },
  })),
];

if (tool === undefined) {
  console.log("migration-metallb-helm: helm-template not found (../shared/tools or $LODESTONE_HELM_TEMPLATE): skipped");
}
describe.skipIf(tool === undefined)("migrating a MetalLB 0.14/0.15 Helm release to Lodestone", () => {
  let sandbox: Sandbox;
  let admin: KubeClient;
  let daemon: Daemon | undefined;

  async function call(method: "POST" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<void> {
    const r = await admin.request({ method, path, ...(body === undefined ? {} : { body }) });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  async function get(path: string): Promise<Record<string, unknown> | undefined> {
    const r = await admin.request({ method: "GET", path });
    return r.status === 200 ? (r.body as Record<string, unknown>) : undefined;
  }
  const objectPath = (r: { path: string; obj: Obj }) => `${r.path}/${r.obj.metadata.name}`;
  const svcPath = (s: Svc) => `/api/v1/namespaces/${s.namespace}/services/${s.name}`;

  beforeAll(async () => {
    sandbox = await startSandbox({ rbac: true });
    const kc = new KubeConfig();
    kc.loadFromString(sandbox.kubeconfigYaml);
    admin = createKubeClient(kc);
    for (const name of [MLB, "apps", "web"]) await call("POST", "/api/v1/namespaces", { metadata: { name } });
    // `helm install metallb` (0.14/0.15), the user's pools, and MetalLB's allocations.
    for (const r of metallbRelease) await call("POST", r.path, r.obj);
    for (const p of pools) await call("POST", poolsPath, { metadata: { name: p.name }, spec: p.spec });
    await call("POST", `/apis/metallb.io/v1beta1/namespaces/${MLB}/l2advertisements`, { metadata: { name: "l2" } });
    for (const s of services) {
      await call("POST", `/api/v1/namespaces/${s.namespace}/services`, {
        metadata: {
          name: s.name,
          annotations: { ...s.annotations, "metallb.io/ip-allocated-from-pool": s.pool },
        },
        spec: {
          type: "LoadBalancer",
          ports: [{ port: s.protocol === undefined ? 80 : 53, protocol: s.protocol ?? "TCP" }],
        },
      });
      await call("PATCH", `${svcPath(s)}/status`, {
        status: { loadBalancer: { ingress: [{ ip: s.ip, ipMode: "VIP" }] } },
      });
    }
  }, 30_000);

  afterAll(async () => {
    await daemon?.stop("test over");
    await admin?.close();
    await sandbox?.stop();
  });

  it("`helm uninstall metallb` keeps the annotated CRDs and every pool; the BGPPeer CRD and workloads go", async () => {
    // Helm deletes the release's objects except those annotated keep; the pools are no part of the release.
    for (const r of metallbRelease)
      if (r.obj.metadata.annotations?.["helm.sh/resource-policy"] !== "keep") await call("DELETE", objectPath(r));
    for (const r of metallbRelease) {
      const kept = r.obj.metadata.annotations?.["helm.sh/resource-policy"] === "keep";
      expect(await get(objectPath(r)), `${r.obj.kind} ${r.obj.metadata.name}`).toSatisfy(
        (o) => (o !== undefined) === kept,
      );
    }
    await until("the BGPPeer CRD gone", async () =>
      (await admin.request({ method: "GET", path: "/apis/metallb.io/v1beta2" })).status === 404 ? true : undefined,
    );
    const left = (await get(poolsPath)) as { items: { metadata: { name: string } }[] };
    expect(left.items.map((p) => p.metadata.name).sort()).toEqual(["production", "reserved"]);
  });

  it("Lodestone's chart, on its ServiceAccount's token, keeps all 50 addresses and reports the pools' usage", async () => {
    const render = await renderChart(tool!);
    if (!render.ok) throw new Error(render.error);
    const rendered = parseAllDocuments(render.yaml)
      .map((d) => d.toJS() as Obj | null)
      .filter((o): o is Obj => o !== null);
    // The chart's defaults read metallb-system: the controller's Deployment passes it on.
    const ds = rendered.find((o) => o.kind === "Deployment") as unknown as {
      spec: { template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } };
    };
    expect(ds.spec.template.spec.containers[0]!.args).toContain(`--metallb-namespace=${MLB}`);
    await call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
    const rbacKinds = new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
    for (const o of rendered) if (rbacKinds.has(o.kind)) await call("POST", collectionPath(o.kind, ns)!, o);
    const sa = ds.spec.template.spec.serviceAccountName;
    const kc = new KubeConfig();
    kc.loadFromString(sandbox.kubeconfigFor(ns, sa).kubeconfigYaml);
    const before = sandbox.denials().length;

    daemon = await startDaemon(
      {
        kubeConfig: kc,
        namespace: ns,
        nodeName: "node1",
        metallbNamespace: MLB,
        component: "controller",
        metricsPort: -1,
        lease: fastLease,
        informerBackoff: { initialMs: 100, maxMs: 400 },
      },
      logger,
    );
    const d = daemon;
    await until("leadership with the CRD pools", () => (d.isLeader() && d.readiness().ok ? true : undefined));

    // Every Service taken over (Lodestone records its pool), each at the address MetalLB gave it.
    const seen = await until(
      "all 50 Services taken over",
      async () => {
        const all = await Promise.all(services.map((s) => get(svcPath(s))));
        const done = all.every(
          (o) =>
            (o as { metadata?: { annotations?: Record<string, string> } })?.metadata?.annotations?.[POOL_ANNOTATION] !==
            undefined,
        );
        return done ? all : undefined;
      },
      15_000,
    );
    const state = (o: Record<string, unknown> | undefined) => {
      const svc = o as {
        metadata: { annotations: Record<string, string> };
        status?: { loadBalancer?: { ingress?: { ip: string }[] } };
      };
      return {
        ips: svc.status?.loadBalancer?.ingress?.map((i) => i.ip),
        pool: svc.metadata.annotations[POOL_ANNOTATION],
      };
    };
    expect(seen.map(state)).toEqual(services.map((s) => ({ ips: [s.ip], pool: s.pool })));

    // The pools' status: production has 40 Services' addresses and the shared one, reserved eight.
    const statusOf = async (name: string) => (await get(`${poolsPath}/${name}`))?.["status"];
    const usage = {
      production: { assignedIPv4: 41, assignedIPv6: 0, availableIPv4: 64 - 41, availableIPv6: 0 },
      reserved: { assignedIPv4: 8, assignedIPv6: 0, availableIPv4: 8, availableIPv6: 0 },
    };
    await until("the pools' status", async () =>
      JSON.stringify({ production: await statusOf("production"), reserved: await statusOf("reserved") }) ===
      JSON.stringify(usage)
        ? true
        : undefined,
    );

    // Nothing was ever moved: no status write changed an address (the audit of the daemon's writes), and the chart's
    // roles allowed everything the controller did.
    const writes = sandbox.audit
      .records()
      .filter(
        (r) => r.resource === "services/status" && r.verb === "patch" && r.fieldManager === "lodestone-controller",
      );
    expect(writes).toEqual([]);
    // The filter sees the controller's writes: its pool status patches carry the same field manager.
    expect(
      sandbox.audit
        .records()
        .some((r) => r.resource === "ipaddresspools/status" && r.fieldManager === "lodestone-controller"),
    ).toBe(true);
    expect(sandbox.denials().slice(before)).toEqual([]);
    // A new Service still gets a new address: the lowest free one of production (a pool MetalLB's never held).
    await call("POST", "/api/v1/namespaces/apps/services", {
      metadata: { name: "after" },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    const after = await until(
      "ingress of the new Service",
      async () => state(await get("/api/v1/namespaces/apps/services/after")).ips,
    );
    expect(after).toEqual(["192.0.2.0"]);
  }, 30_000);
});
