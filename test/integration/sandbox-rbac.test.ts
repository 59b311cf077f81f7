import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";

let sandbox: Sandbox;
let admin: CoreV1Api;
let controller: CoreV1Api;
const ns = `sbx-rbac-${process.pid}`;
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err: unknown) {
    return (err as { code?: number }).code ?? -1;
  }
}

async function post(path: string, body: unknown, token: string): Promise<Response> {
  return fetch(`${sandbox.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  sandbox = await startSandbox({ rbac: true, tls: false }); // plain HTTP: client-node and fetch send tokens over it
  const kc = new KubeConfig();
  kc.loadFromString(sandbox.kubeconfigYaml);
  admin = kc.makeApiClient(CoreV1Api);
  await admin.createNamespace({ body: { metadata: { name: ns } } });
  await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "controller" } } });
  const adminToken = /token: (\S+)/.exec(sandbox.kubeconfigYaml)?.[1] ?? "";
  const rbac = "/apis/rbac.authorization.k8s.io/v1";
  const created = await Promise.all([
    post(
      `${rbac}/clusterroles`,
      {
        metadata: { name: `lodestone-controller-${process.pid}` },
        rules: [
          { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch"] },
          { apiGroups: [""], resources: ["services/status"], verbs: ["patch"] },
        ],
      },
      adminToken,
    ),
    post(
      `${rbac}/clusterrolebindings`,
      {
        metadata: { name: `lodestone-controller-${process.pid}` },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: `lodestone-controller-${process.pid}`,
        },
        subjects: [{ kind: "ServiceAccount", name: "controller", namespace: ns }],
      },
      adminToken,
    ),
    post(
      `${rbac}/namespaces/${ns}/roles`,
      {
        metadata: { name: "config" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"], resourceNames: ["pools"] }],
      },
      adminToken,
    ),
    post(
      `${rbac}/namespaces/${ns}/rolebindings`,
      {
        metadata: { name: "config" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "config" },
        subjects: [{ kind: "ServiceAccount", name: "controller", namespace: ns }],
      },
      adminToken,
    ),
  ]);
  expect(created.map((r) => r.status)).toEqual([201, 201, 201, 201]);
  await admin.createNamespacedService({
    namespace: ns,
    body: { metadata: { name: "web" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } },
  });
  await admin.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "pools" } } });
  await admin.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "other" } } });
  const sa = new KubeConfig();
  sa.loadFromString(sandbox.kubeconfigFor(ns, "controller").kubeconfigYaml);
  controller = sa.makeApiClient(CoreV1Api);
});

afterAll(async () => {
  await sandbox.stop();
});

describe("sandbox RBAC mode", () => {
  it.each([
    { desc: "list services (granted)", call: () => controller.listServiceForAllNamespaces(), want: 200 },
    {
      desc: "get a service (granted)",
      call: () => controller.readNamespacedService({ namespace: ns, name: "web" }),
      want: 200,
    },
    {
      desc: "patch services/status (granted)",
      call: () =>
        controller.patchNamespacedServiceStatus(
          { namespace: ns, name: "web", body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } } } },
          merge,
        ),
      want: 200,
    },
    {
      desc: "patch the service itself (not granted)",
      call: () =>
        controller.patchNamespacedService(
          { namespace: ns, name: "web", body: { metadata: { labels: { a: "b" } } } },
          merge,
        ),
      want: 403,
    },
    {
      desc: "delete a service (not granted)",
      call: () => controller.deleteNamespacedService({ namespace: ns, name: "web" }),
      want: 403,
    },
    {
      desc: "get the named configmap (resourceNames)",
      call: () => controller.readNamespacedConfigMap({ namespace: ns, name: "pools" }),
      want: 200,
    },
    {
      desc: "get another configmap",
      call: () => controller.readNamespacedConfigMap({ namespace: ns, name: "other" }),
      want: 403,
    },
    {
      desc: "list configmaps (resourceNames never grants list)",
      call: () => controller.listNamespacedConfigMap({ namespace: ns }),
      want: 403,
    },
    { desc: "list nodes", call: () => controller.listNode(), want: 403 },
  ])("$desc -> $want", async ({ call, want }) => {
    expect(await status(call())).toBe(want);
  });

  it("answers 403 with the real server's Status wording", async () => {
    const token = sandbox.tokenFor(ns, "controller");
    const res = await fetch(`${sandbox.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { reason: string; message: string };
    expect(body.reason).toBe("Forbidden");
    expect(body.message).toBe(
      `nodes is forbidden: User "system:serviceaccount:${ns}:controller" cannot list resource "nodes" in API group "" at the cluster scope`,
    );
  });

  it("records each 403 with who asked and what was refused, in process and at /_sandbox/denials", async () => {
    const token = sandbox.tokenFor(ns, "controller");
    const before = sandbox.denials().length;
    await fetch(`${sandbox.url}/api/v1/namespaces/${ns}/configmaps/other`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await fetch(`${sandbox.url}/api/v1/namespaces/${ns}/configmaps/pools`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const refused = {
      user: `system:serviceaccount:${ns}:controller`,
      verb: "get",
      group: "",
      resource: "configmaps",
      subresource: "",
      namespace: ns,
      name: "other",
    };
    expect(sandbox.denials().slice(before)).toEqual([refused]); // the allowed read of "pools" is not recorded
    const res = await fetch(`${sandbox.url}/_sandbox/denials`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: unknown[] };
    expect(body.items.at(-1)).toEqual(refused);
  });

  it("answers 401 without a token, with an unknown one, or for a deleted ServiceAccount", async () => {
    expect((await fetch(`${sandbox.url}/api/v1/services`)).status).toBe(401);
    expect((await fetch(`${sandbox.url}/api/v1/services`, { headers: { authorization: "Bearer nope" } })).status).toBe(
      401,
    );
    const token = sandbox.tokenFor(ns, "ghost");
    expect(
      (await fetch(`${sandbox.url}/api/v1/services`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(401);
  });

  it("refuses to change a binding's roleRef (422)", async () => {
    const adminToken = /token: (\S+)/.exec(sandbox.kubeconfigYaml)?.[1] ?? "";
    const res = await fetch(`${sandbox.url}/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/config`, {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json", authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "other" } }),
    });
    expect(res.status).toBe(422);
  });
});
