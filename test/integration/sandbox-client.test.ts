import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1Service,
} from "@kubernetes/client-node";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";

let sandbox: Sandbox;
let core: CoreV1Api;
let coord: CoordinationV1Api;
let kc: KubeConfig;
const ns = `sbx-client-${process.pid}`;

async function until<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const code = (err: unknown): number | undefined => (err as { code?: number }).code;

beforeAll(async () => {
  sandbox = await startSandbox();
  kc = new KubeConfig();
  kc.loadFromString(sandbox.kubeconfigYaml);
  core = kc.makeApiClient(CoreV1Api);
  coord = kc.makeApiClient(CoordinationV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
});

afterAll(async () => {
  await sandbox.stop();
});

describe("sandbox with @kubernetes/client-node", () => {
  it("creates a LoadBalancer Service with defaults and writes its status", async () => {
    const svc = await core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: "web" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } },
    });
    expect(svc.metadata?.uid).toBeTruthy();
    expect(svc.metadata?.generation).toBe(1);
    expect(svc.spec?.clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./);
    expect(svc.spec?.ipFamilies).toEqual(["IPv4"]);
    expect(svc.spec?.ports?.[0]?.nodePort).toBeGreaterThanOrEqual(30000);
    const patched = await core.patchNamespacedServiceStatus(
      {
        namespace: ns,
        name: "web",
        body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }] } } },
      },
      merge,
    );
    expect(patched.status?.loadBalancer?.ingress).toEqual([{ ip: "192.0.2.10", ipMode: "VIP" }]);
    expect(Number(patched.metadata?.resourceVersion)).toBeGreaterThan(Number(svc.metadata?.resourceVersion));
    // A write to the object itself leaves status alone.
    const again = await core.replaceNamespacedService({ namespace: ns, name: "web", body: { ...patched, status: {} } });
    expect(again.status?.loadBalancer?.ingress?.[0]?.ip).toBe("192.0.2.10");
  });

  it("rejects an update with a stale resourceVersion (409) and a duplicate create (409)", async () => {
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "cfg" }, data: { a: "1" } },
    });
    await core.replaceNamespacedConfigMap({ namespace: ns, name: "cfg", body: { ...cm, data: { a: "2" } } });
    const stale = await core
      .replaceNamespacedConfigMap({ namespace: ns, name: "cfg", body: { ...cm, data: { a: "3" } } })
      .catch((e: unknown) => e);
    expect(code(stale)).toBe(409);
    const dup = await core
      .createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "cfg" } } })
      .catch((e: unknown) => e);
    expect(code(dup)).toBe(409);
    const missing = await core.readNamespacedConfigMap({ namespace: ns, name: "nope" }).catch((e: unknown) => e);
    expect(code(missing)).toBe(404);
  });

  it("serves leases with optimistic concurrency for leader election", async () => {
    const body = { metadata: { name: "lodestone-controller" }, spec: { holderIdentity: "a", leaseDurationSeconds: 5 } };
    const lease = await coord.createNamespacedLease({ namespace: ns, body });
    const lost = await coord.createNamespacedLease({ namespace: ns, body }).catch((e: unknown) => e);
    expect(code(lost)).toBe(409);
    await coord.replaceNamespacedLease({
      namespace: ns,
      name: "lodestone-controller",
      body: { ...lease, spec: { holderIdentity: "b" } },
    });
    const late = await coord
      .replaceNamespacedLease({
        namespace: ns,
        name: "lodestone-controller",
        body: { ...lease, spec: { holderIdentity: "c" } },
      })
      .catch((e: unknown) => e);
    expect(code(late)).toBe(409);
    const now = await coord.readNamespacedLease({ namespace: ns, name: "lodestone-controller" });
    expect(now.spec?.holderIdentity).toBe("b");
  });

  it("feeds an informer: add, update, delete", async () => {
    const informer = makeInformer<V1Service>(
      kc,
      `/api/v1/namespaces/${ns}/services`,
      () => core.listNamespacedService({ namespace: ns, labelSelector: "watch=me" }),
      "watch=me",
    );
    const seen: string[] = [];
    informer.on("add", (s) => seen.push(`add ${s.metadata?.name}`));
    informer.on("update", (s) => seen.push(`update ${s.metadata?.name} ${s.metadata?.labels?.["v"]}`));
    informer.on("delete", (s) => seen.push(`delete ${s.metadata?.name}`));
    await informer.start();
    try {
      await core.createNamespacedService({
        namespace: ns,
        body: { metadata: { name: "w1", labels: { watch: "me" } }, spec: { ports: [{ port: 1 }] } },
      });
      await core.createNamespacedService({
        namespace: ns,
        body: { metadata: { name: "other" }, spec: { ports: [{ port: 1 }] } },
      });
      await core.patchNamespacedService(
        { namespace: ns, name: "w1", body: { metadata: { labels: { v: "2" } } } },
        merge,
      );
      await core.deleteNamespacedService({ namespace: ns, name: "w1" });
      await until("delete event", () => (seen.includes("delete w1") ? true : undefined));
      expect(seen).toEqual(["add w1", "update w1 2", "delete w1"]);
    } finally {
      await informer.stop();
    }
  });

  it("filters lists by label selector and refuses a bad one with 400", async () => {
    const list = await core.listNamespacedService({ namespace: ns, labelSelector: "watch notin (me)" });
    expect(list.items.map((s) => s.metadata?.name).sort()).toEqual(["other", "web"]);
    const bad = await core.listNamespacedService({ namespace: ns, labelSelector: "a in (" }).catch((e: unknown) => e);
    expect(code(bad)).toBe(400);
  });
});
