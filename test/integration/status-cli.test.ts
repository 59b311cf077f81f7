// `lodestone status` against the embedded API server over HTTP: pools with usage, Services with IPs, pool,
// announcing node and failure, in a table and as JSON; a broken pool ConfigMap shows its problems.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import { createKubeClient } from "../../src/kube/client.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { startSandbox } from "../../src/sandbox/index.ts";
import type { Sandbox } from "../../src/sandbox/index.ts";
import { ipAddressPoolCrd, l2AdvertisementCrd } from "./metallb-crds.ts";

const run = promisify(execFile);
const cli = new URL("../../bin/lodestone.js", import.meta.url).pathname;
const ns = "lodestone-system";

let sandbox: Sandbox;
let client: KubeClient;

async function post(path: string, body: unknown): Promise<void> {
  const res = await client.request({ method: "POST", path, body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

async function status(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [
      cli,
      "status",
      "--kubeconfig",
      sandbox.kubeconfigPath,
      ...args,
    ]);
    return { code: 0, stdout, stderr };
  } catch (e: unknown) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

beforeAll(async () => {
  sandbox = await startSandbox();
  const kc = new KubeConfig();
  kc.loadFromString(sandbox.kubeconfigYaml);
  client = createKubeClient(kc);
  for (const name of [ns, "shop"]) await post("/api/v1/namespaces", { metadata: { name } });
  const poolsCm = (name: string, yaml: string): unknown => ({
    metadata: { name, namespace: ns, labels: { "lodestone.dev/pools": "true" } },
    data: { "pools.yaml": yaml },
  });
  await post(
    `/api/v1/namespaces/${ns}/configmaps`,
    poolsCm("good", "- name: lan\n  addresses: [192.0.2.0/29, 2001:db8::/64]\n"),
  );
  await post(`/api/v1/namespaces/${ns}/configmaps`, poolsCm("broken", "- name: typo\n  adresses: [192.0.2.64/28]\n"));
  const svc = (name: string, annotations: Record<string, string>): unknown => ({
    metadata: { name, namespace: "shop", annotations },
    spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
  });
  await post(
    "/api/v1/namespaces/shop/services",
    svc("web", { "lodestone.dev/pool": "lan", "lodestone.dev/announcing-node": "node-a" }),
  );
  await post("/api/v1/namespaces/shop/services", svc("stuck", {}));
  await post("/api/v1/namespaces/shop/services", svc("dark", { "lodestone.dev/pool": "lan" }));
  const dark = await client.request({
    method: "PATCH",
    path: "/api/v1/namespaces/shop/services/dark/status",
    body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.4", ipMode: "VIP" }] } } },
  });
  expect(dark.status, JSON.stringify(dark.body)).toBe(200);
  await post("/api/v1/namespaces/shop/events", {
    metadata: { name: "dark.1", namespace: "shop" },
    involvedObject: { kind: "Service", namespace: "shop", name: "dark", apiVersion: "v1" },
    reason: "NotAnnounced",
    message: "no node may announce 192.0.2.4: 3 without an interface for the IP (n1, n2, n3)",
    type: "Warning",
    lastTimestamp: new Date().toISOString(),
  });
  const patched = await client.request({
    method: "PATCH",
    path: "/api/v1/namespaces/shop/services/web/status",
    body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.3", ipMode: "VIP" }] } } },
  });
  expect(patched.status, JSON.stringify(patched.body)).toBe(200);
  await post("/api/v1/namespaces/shop/events", {
    metadata: { name: "stuck.1", namespace: "shop" },
    involvedObject: { kind: "Service", namespace: "shop", name: "stuck", apiVersion: "v1" },
    reason: "AllocationFailed",
    message: "pool lan has no free IPv4 address",
    type: "Warning",
    lastTimestamp: new Date().toISOString(),
  });
});

afterAll(async () => {
  await client.close();
  await sandbox.stop();
});

describe("lodestone status", () => {
  it("prints pools with usage, Services with IP, pool, node, failures, and config problems", async () => {
    const r = await status();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^lan\s+IPv4\s+8\s+2\s+6$/m);
    expect(r.stdout).toMatch(/^lan\s+IPv6\s+18446744073709551616\s+0\s+18446744073709551616$/m);
    expect(r.stdout).toMatch(/^shop\/web\s+192\.0\.2\.3\s+lan\s+node-a\s+allocated$/m);
    expect(r.stdout).toMatch(
      /^shop\/dark\s+192\.0\.2\.4\s+lan\s+-\s+allocated: not announced: no node may announce 192\.0\.2\.4: 3 without/m,
    );
    expect(r.stdout).toMatch(/^shop\/stuck\s+<pending>\s+-\s+-\s+failed: pool lan has no free IPv4 address$/m);
    expect(r.stdout).toContain(`ConfigMap ${ns}/broken`);
    expect(r.stdout).toContain("adresses");
  });

  it("prints JSON with -o json", async () => {
    const r = await status("-o", "json");
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as {
      pools: { pool: string; total: string }[];
      services: { service: string; ips: string[] }[];
    };
    expect(json.pools.map((p) => p.pool)).toEqual(["lan", "lan"]);
    expect(json.services.find((s) => s.service === "shop/web")?.ips).toEqual(["192.0.2.3"]);
  });

  it.each([
    { desc: "an unknown output format is a usage error", args: ["-o", "yaml"], code: 2, text: "table or json" },
    { desc: "an unknown flag is a usage error", args: ["--bogus"], code: 2, text: "bogus" },
  ])("$desc", async ({ args, code, text }) => {
    const r = await status(...args);
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(text);
  });

  it("says so in one line when the API server is unreachable", async () => {
    await sandbox.faults.stopServing();
    try {
      const r = await status();
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^lodestone status: cannot read the cluster: /m);
      expect(r.stderr).not.toContain("    at ");
    } finally {
      await sandbox.faults.resume();
    }
  });
});

describe("lodestone status with MetalLB's CRDs", () => {
  it("shows IPAddressPool pools beside the ConfigMap pools, and an invalid one's problems", async () => {
    for (const c of [ipAddressPoolCrd, l2AdvertisementCrd])
      await post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c);
    await post("/api/v1/namespaces", { metadata: { name: "metallb-system" } });
    const pools = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
    await post(pools, { metadata: { name: "crd-edge" }, spec: { addresses: ["198.51.100.0/30"] } });
    await post(pools, { metadata: { name: "crd-bad" }, spec: { addresses: ["198.51.100.300/30"] } });
    const r = await status();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^crd-edge\s+IPv4\s+4\s+0\s+4$/m);
    // The ConfigMap pool beside it; its usage depends on the Services the other cases of this file created.
    expect(r.stdout).toMatch(/^lan\s+IPv4\s+8\s+\d+\s+\d+$/m);
    expect(r.stdout).toMatch(/^ {2}IPAddressPool metallb-system\/crd-bad: spec\.addresses\[0\]: /m);
    expect((await status("--metallb-namespace=")).stdout).not.toContain("crd-edge");
  });
});
