import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";
import { createKubeClient, loadKubeConfig } from "../../src/kube/client.ts";
import { listNodeAddresses } from "../../src/kube/node-addresses.ts";
import { command } from "../../src/cli/check-config.ts";

// check-config against the sandbox over HTTP: Nodes are listed as kube-apiserver lists them (chunked with
// limit/continue, as in k8s.io/apiserver pkg/storage/cacher list pagination), and a 403 from RBAC skips the check.
let sandbox: Sandbox;
let rbacSandbox: Sandbox;
let dir: string;
let poolsFile: string;

const pools = `apiVersion: v1
kind: ConfigMap
metadata: {name: pools, namespace: ls, labels: {lodestone.dev/pools: "true"}}
data:
  pools.yaml: |
    - {name: lan, addresses: [192.0.2.10-192.0.2.19]}
    - {name: v6, addresses: ["2001:db8::/120"]}
`;

async function addNode(s: Sandbox, name: string, addresses: { type: string; address: string }[]): Promise<void> {
  const client = createKubeClient(await loadKubeConfig(s.kubeconfigPath));
  try {
    const created = await client.request({ method: "POST", path: "/api/v1/nodes", body: { metadata: { name } } });
    expect(created.status).toBe(201);
    const patched = await client.request({
      method: "PATCH",
      path: `/api/v1/nodes/${name}/status`,
      body: { status: { addresses } },
    });
    expect(patched.status).toBe(200);
  } finally {
    await client.close();
  }
}

async function run(args: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const errs: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  const error = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errs.push(a.join(" ")));
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  try {
    return { code: await command.run(args), stdout: out.join("\n"), stderr: errs.join("\n") };
  } finally {
    vi.unstubAllEnvs();
    log.mockRestore();
    error.mockRestore();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ls-check-config-"));
  poolsFile = join(dir, "pools.yaml");
  writeFileSync(poolsFile, pools);
  sandbox = await startSandbox({ kubeconfigPath: join(dir, "admin.kubeconfig") });
  await addNode(sandbox, "worker-1", [
    { type: "InternalIP", address: "192.0.2.10" },
    { type: "Hostname", address: "worker-1" },
  ]);
  await addNode(sandbox, "worker-2", [
    { type: "InternalIP", address: "192.0.2.20" },
    { type: "ExternalIP", address: "2001:db8::ff" },
  ]);
  await addNode(sandbox, "worker-3", [{ type: "InternalIP", address: "198.51.100.3" }]);
  rbacSandbox = await startSandbox({ rbac: true, tls: false, kubeconfigPath: join(dir, "rbac.kubeconfig") });
});

afterAll(async () => {
  await sandbox.stop();
  await rbacSandbox.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("lodestone check-config with a cluster", () => {
  it("warns about each node address inside a pool, names pool, node and address, and still exits 0", async () => {
    const r = await run(["--kubeconfig", sandbox.kubeconfigPath, poolsFile]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines.filter((l) => l.includes("LODESTONE_W_NODE_ADDRESS_IN_POOL"))).toEqual([
      `${poolsFile}: ConfigMap ls/pools: warning: pools.yaml[0] (lan).addresses: 192.0.2.10 (in 192.0.2.10-192.0.2.19) is node worker-1's InternalIP; a Service given it would be answered by two hosts: take it out of the pool [LODESTONE_W_NODE_ADDRESS_IN_POOL]`,
      `${poolsFile}: ConfigMap ls/pools: warning: pools.yaml[1] (v6).addresses: 2001:db8::ff (in 2001:db8::/120) is node worker-2's ExternalIP; a Service given it would be answered by two hosts: take it out of the pool [LODESTONE_W_NODE_ADDRESS_IN_POOL]`,
    ]);
    expect(lines).toContain("Node addresses: 3 node(s) checked against the pools.");
    expect(lines.at(-1)).toBe("Configuration is valid (2 warnings).");
  });

  it("lists Nodes in pages (limit/continue) and gets every one", async () => {
    const client = createKubeClient(await loadKubeConfig(sandbox.kubeconfigPath));
    try {
      const r = await listNodeAddresses(client, 10_000, 1);
      expect(r.ok && r.value.map((n) => n.name)).toEqual(["worker-1", "worker-2", "worker-3"]);
    } finally {
      await client.close();
    }
  });

  it("a ServiceAccount that may not list Nodes (403): one line says why, the files are still checked", async () => {
    const admin = createKubeClient(await loadKubeConfig(rbacSandbox.kubeconfigPath));
    try {
      const created = await admin.request({
        method: "POST",
        path: "/api/v1/namespaces/default/serviceaccounts",
        body: { metadata: { name: "nobody" } },
      });
      expect(created.status).toBe(201);
    } finally {
      await admin.close();
    }
    const sa = rbacSandbox.kubeconfigFor("default", "nobody");
    const r = await run(["--kubeconfig", sa.kubeconfigPath, poolsFile]);
    expect(r.code).toBe(0);
    const skipped = r.stdout.split("\n").filter((l) => l.startsWith("node addresses not checked: "));
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatch(/^node addresses not checked: cannot list Nodes \(HTTP 403\): .*nodes/);
    expect(r.stdout).toMatch(/Configuration is valid\.$/);
  });

  it("no answer from the API server: skipped, saying so", async () => {
    const gone = await startSandbox({ kubeconfigPath: join(dir, "gone.kubeconfig") });
    await gone.stop();
    const r = await run(["--kubeconfig", gone.kubeconfigPath, poolsFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^node addresses not checked: cannot reach the API server: /m);
  });

  it("no cluster at all, or --offline: skipped in one line", async () => {
    const none = await run([poolsFile], { KUBECONFIG: undefined, HOME: dir, KUBERNETES_SERVICE_HOST: undefined });
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(
      /^node addresses not checked: no cluster \(pass --kubeconfig PATH or set KUBECONFIG\)$/m,
    );
    const offline = await run(["--offline", poolsFile], { KUBECONFIG: sandbox.kubeconfigPath });
    expect(offline.stdout).toMatch(/^node addresses not checked: --offline$/m);
    expect(offline.stdout).not.toMatch(/LODESTONE_W_NODE_ADDRESS_IN_POOL/);
  });

  it("a problem still exits 1 with node warnings beside it; --offline with --kubeconfig is a usage error", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, pools.replace("192.0.2.10-192.0.2.19", "192.0.2.19-192.0.2.10"));
    const r = await run(["--kubeconfig", sandbox.kubeconfigPath, bad]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/2001:db8::ff .* \[LODESTONE_W_NODE_ADDRESS_IN_POOL\]/);
    const both = await run(["--offline", "--kubeconfig", sandbox.kubeconfigPath, poolsFile]);
    expect(both.code).toBe(2);
  });
});
