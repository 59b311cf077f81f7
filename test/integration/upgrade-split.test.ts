// The upgrade from the single DaemonSet (controller and speaker in one process, one ServiceAccount) to the split
// form moves no address: the old daemon allocates, stops, and the new controller (`--component controller`, on its
// own token) and speaker (`--component speaker`, on its own) take over from the recorded status alone. RBAC mode,
// with the chart's rendered roles for the new workloads.
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, type DaemonOptions, startDaemon } from "../../src/app/daemon.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import { ANNOUNCING_ANNOTATION, POOL_ANNOTATION } from "../../src/core/well-known.ts";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { collectionPath } from "../../src/sandbox/resources.ts";
import { findHelmTemplate, manifestRelease, renderChart } from "../../scripts/lib/chart.ts";
import { fastLease, until } from "./controller-env.ts";
import { quietSpeaker } from "./speaker-env.ts";

const ns = manifestRelease.namespace;
const app = "shop";
const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });
const tool = findHelmTemplate();
if (tool === undefined) console.log("upgrade: helm-template not found (../shared/tools): the split upgrade test skips");

type Obj = { kind: string; metadata: { name: string }; spec?: unknown };

interface Seen {
  readonly ips: readonly string[];
  readonly pool: string | undefined;
  readonly announcing: string | undefined;
}

describe.skipIf(tool === undefined)("helm upgrade from the single DaemonSet to the split workloads", () => {
  let sandbox: Sandbox;
  let admin: KubeClient;
  const daemons: Daemon[] = [];

  async function call(method: "POST" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<void> {
    const r = await admin.request({ method, path, ...(body === undefined ? {} : { body }) });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  async function services(): Promise<Map<string, Seen>> {
    const r = await admin.request({ method: "GET", path: `/api/v1/namespaces/${app}/services` });
    const items = (r.body as { items: Record<string, unknown>[] }).items as {
      metadata: { name: string; annotations?: Record<string, string> };
      status?: { loadBalancer?: { ingress?: { ip: string }[] } };
    }[];
    return new Map(
      items.map((s) => [
        s.metadata.name,
        {
          ips: s.status?.loadBalancer?.ingress?.map((i) => i.ip) ?? [],
          pool: s.metadata.annotations?.[POOL_ANNOTATION],
          announcing: s.metadata.annotations?.[ANNOUNCING_ANNOTATION],
        },
      ]),
    );
  }
  const everyone = (want: number, done: (s: Seen) => boolean) => async () => {
    const all = await services();
    return all.size === want && [...all.values()].every(done) ? all : undefined;
  };
  const start = async (options: Partial<DaemonOptions> & { kubeConfig: KubeConfig }, name: string) => {
    const d = await startDaemon(
      {
        namespace: ns,
        nodeName: "node1",
        identity: name,
        metricsPort: -1,
        lease: fastLease,
        informerBackoff: { initialMs: 100, maxMs: 400 },
        speakerFactory: quietSpeaker(),
        ...options,
      },
      logger.child({ name }),
    );
    daemons.push(d);
    return d;
  };

  beforeAll(async () => {
    sandbox = await startSandbox({ rbac: true });
    const kc = new KubeConfig();
    kc.loadFromString(sandbox.kubeconfigYaml);
    admin = createKubeClient(kc);
    for (const name of [ns, app]) await call("POST", "/api/v1/namespaces", { metadata: { name } });
    await call("POST", `/api/v1/namespaces/${ns}/configmaps`, {
      metadata: { name: "pools", namespace: ns, labels: { "lodestone.dev/pools": "true" } },
      data: {
        "pools.yaml":
          "- name: lan\n  addresses: [192.0.2.100-192.0.2.199, 2001:db8::100-2001:db8::1ff]\n" +
          "- name: dmz\n  addresses: [192.0.2.200-192.0.2.215]\n  autoAssign: false\n",
      },
    });
    await call("POST", "/api/v1/nodes", {
      metadata: { name: "node1", labels: { "kubernetes.io/hostname": "node1" } },
      status: {
        conditions: [{ type: "Ready", status: "True" }],
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
      },
    });
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop("test over")));
    await admin?.close();
    await sandbox?.stop();
  });

  it("keeps every assigned address, then the new workloads allocate and annotate as the old one did", async () => {
    // The old form: one process, controller and speaker, one identity with every right (admin here).
    const adminConfig = new KubeConfig();
    adminConfig.loadFromString(sandbox.kubeconfigYaml);
    const old = await start({ kubeConfig: adminConfig }, "old-daemonset-pod");
    // A few share one address (same key, other ports), some are dual-stack, some ask for the second pool.
    const shares = (i: number) => i % 7 === 0 && i % 5 !== 0 && i % 4 !== 1;
    const body = (i: number) => ({
      metadata: {
        name: `svc-${i}`,
        annotations: {
          ...(i % 5 === 0 ? { "lodestone.dev/address-pool": "dmz" } : {}),
          ...(shares(i) ? { "lodestone.dev/sharing-key": "pair" } : {}),
        },
      },
      spec: {
        type: "LoadBalancer",
        ports: [{ port: 80 + (shares(i) ? i : 0) }],
        ...(i % 4 === 1 ? { ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"] } : {}),
      },
    });
    for (let i = 0; i < 40; i++) await call("POST", `/api/v1/namespaces/${app}/services`, body(i));
    // Deleting some makes the old allocator's next addresses differ from a fresh one's.
    for (const i of [2, 3, 11]) await call("DELETE", `/api/v1/namespaces/${app}/services/svc-${i}`);
    const before = await until(
      "the old daemon allocated and annotated every Service",
      everyone(37, (s) => s.ips.length > 0 && s.pool !== undefined && s.announcing === "node1"),
      20_000,
    );
    await old.stop("helm upgrade replaces the pod");

    // While nothing runs: one more Service, waiting for an address.
    await call("POST", `/api/v1/namespaces/${app}/services`, body(40));

    // `helm upgrade`: the chart's ServiceAccounts and roles, one daemon per workload on its own token.
    const render = await renderChart(tool!);
    if (!render.ok) throw new Error(render.error);
    const rendered = parseAllDocuments(render.yaml)
      .map((d) => d.toJS() as Obj | null)
      .filter((o): o is Obj => o !== null);
    const rbacKinds = new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
    for (const o of rendered) if (rbacKinds.has(o.kind)) await call("POST", collectionPath(o.kind, ns)!, o);
    const tokenOf = (kind: string): KubeConfig => {
      const w = rendered.find((o) => o.kind === kind) as unknown as {
        spec: { template: { spec: { serviceAccountName: string } } };
      };
      const k = new KubeConfig();
      k.loadFromString(sandbox.kubeconfigFor(ns, w.spec.template.spec.serviceAccountName).kubeconfigYaml);
      return k;
    };
    const deniedBefore = sandbox.denials().length;
    const speakerPod = await start({ kubeConfig: tokenOf("DaemonSet"), component: "speaker" }, "speaker-pod");
    const controllerPod = await start({ kubeConfig: tokenOf("Deployment"), component: "controller" }, "controller-pod");
    await until("the new controller leads", () => (controllerPod.isLeader() ? true : undefined), 10_000);
    const after = await until(
      "every Service addressed and announced again",
      everyone(38, (s) => s.ips.length > 0 && s.pool !== undefined && s.announcing === "node1"),
      20_000,
    );
    for (const [name, was] of before) expect({ name, ...after.get(name) }).toEqual({ name, ...was });
    // The new Service got a free address, shared with nobody it may not share with.
    const taken = new Set([...before.values()].flatMap((s) => s.ips));
    expect(after.get("svc-40")!.ips.some((ip) => taken.has(ip))).toBe(false);
    expect(sandbox.denials().slice(deniedBefore)).toEqual([]);
    expect(speakerPod.isLeader()).toBe(false);
  }, 60_000);
});
