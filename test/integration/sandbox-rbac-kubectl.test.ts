import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";

const KUBECTL = existsSync("/usr/bin/kubectl") ? "/usr/bin/kubectl" : "kubectl";
let sandbox: Sandbox;
const ns = `sbx-rbac-kubectl-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "sbx-rbac-kubectl-"));

function kubectl(kubeconfig: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(KUBECTL, ["--kubeconfig", kubeconfig, ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr }),
    );
  });
}

const admin = (...args: string[]) => kubectl(sandbox.kubeconfigPath, ...args);

const rbac = (name: string): string => `apiVersion: v1
kind: ServiceAccount
metadata: {name: controller, namespace: ${ns}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ${name}}
rules:
- {apiGroups: [""], resources: [services], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [services/status], verbs: [patch]}
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update], resourceNames: []}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ${name}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ${name}}
subjects: [{kind: ServiceAccount, name: controller, namespace: ${ns}}]
`;

beforeAll(async () => {
  sandbox = await startSandbox({ rbac: true });
  expect(sandbox.url).toMatch(/^https:/);
  writeFileSync(join(dir, "rbac.yaml"), rbac(`lodestone-${process.pid}`));
  expect((await admin("create", "namespace", ns)).code).toBe(0); // a protobuf body from kubectl's typed client
  const applied = await admin("apply", "-f", join(dir, "rbac.yaml"));
  expect(applied.stderr).toBe("");
});

afterAll(async () => {
  await sandbox.stop();
});

describe("sandbox RBAC mode with kubectl (HTTPS)", () => {
  const as = () => `--as=system:serviceaccount:${ns}:controller`;

  it.each([
    { desc: "list services", args: ["auth", "can-i", "list", "services", "-A"], want: "yes" },
    {
      desc: "patch services/status",
      args: ["auth", "can-i", "patch", "services", "--subresource=status"],
      want: "yes",
    },
    { desc: "patch services", args: ["auth", "can-i", "patch", "services"], want: "no" },
    { desc: "create leases", args: ["auth", "can-i", "create", "leases", "-n", "kube-system"], want: "yes" },
    { desc: "list nodes", args: ["auth", "can-i", "list", "nodes"], want: "no" },
  ])("auth can-i as the ServiceAccount: $desc -> $want", async ({ args, want }) => {
    const r = await admin(...args, as());
    expect(r.stdout.trim()).toBe(want);
  });

  it("enforces with kubectl --as and with the ServiceAccount's own kubeconfig", async () => {
    expect((await admin("get", "svc", "-A", as())).code).toBe(0);
    const denied = await admin("delete", "svc", "kubernetes", as());
    expect(denied.stderr).toContain(
      `services "kubernetes" is forbidden: User "system:serviceaccount:${ns}:controller" cannot delete resource "services" in API group "" in the namespace "default"`,
    );
    const own = sandbox.kubeconfigFor(ns, "controller");
    expect((await kubectl(own.kubeconfigPath, "get", "svc", "-A")).code).toBe(0);
    expect((await kubectl(own.kubeconfigPath, "get", "configmaps", "-A")).stderr).toContain("Forbidden");
  });

  it("rejects a kubeconfig without a valid token (401)", async () => {
    const bad = join(dir, "bad.kubeconfig");
    writeFileSync(bad, sandbox.kubeconfigYaml.replace(/token: \S+/, "token: nope"));
    const r = await kubectl(bad, "get", "svc");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unauthorized|credentials/);
  });
});
