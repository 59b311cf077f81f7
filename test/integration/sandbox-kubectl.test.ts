import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";

const KUBECTL = existsSync("/usr/bin/kubectl") ? "/usr/bin/kubectl" : "kubectl";
let sandbox: Sandbox;
const ns = `sbx-kubectl-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "sbx-kubectl-"));

function kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(KUBECTL, ["--kubeconfig", sandbox.kubeconfigPath, ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr }),
    );
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await kubectl(...args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

function manifest(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  sandbox = await startSandbox();
  await ok("create", "-f", manifest("ns.yaml", `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${ns}}\n`));
});

afterAll(async () => {
  await sandbox.stop();
});

const service = `apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports:
  - {name: http, port: 80}
`;

describe("sandbox with kubectl", () => {
  it("creates from a manifest, shows it with get -A and describe", async () => {
    const file = manifest("svc.yaml", service);
    expect(await ok("create", "-n", ns, "-f", file)).toContain("service/web created");
    expect(await ok("get", "svc", "-A")).toMatch(new RegExp(`${ns}\\s+web`));
    const desc = await ok("describe", "svc", "-n", ns, "web");
    expect(desc).toMatch(/Type:\s+LoadBalancer/);
    expect(desc).toMatch(/IP Families:\s+IPv4,IPv6/);
  });

  it("patches status through the subresource and describe shows the ingress", async () => {
    const patchIngress = (ip: string) =>
      kubectl(
        "patch",
        "svc",
        "web",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        `{"status":{"loadBalancer":{"ingress":[{"ip":"${ip}"}]}}}`,
      );
    expect((await patchIngress("192.0.2.10")).code).toBe(0);
    expect(await ok("describe", "svc", "-n", ns, "web")).toMatch(/LoadBalancer Ingress:\s+192\.0\.2\.10/);
    const bad = await patchIngress("not-an-ip");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("is invalid");
  });

  it("does a server-side dry run without storing", async () => {
    const file = manifest("dry.yaml", service.replace("name: web", "name: dry"));
    expect(await ok("create", "-n", ns, "-f", file, "--dry-run=server")).toContain(
      "service/dry created (server dry run)",
    );
    const r = await kubectl("get", "svc", "-n", ns, "dry");
    expect(r.stderr).toContain("NotFound");
  });

  it("lists leases and events, and deletes", async () => {
    expect((await kubectl("get", "leases", "-A")).code).toBe(0);
    expect((await kubectl("get", "events", "-n", ns)).code).toBe(0);
    expect(await ok("delete", "svc", "-n", ns, "web")).toContain("deleted");
    expect((await kubectl("get", "svc", "-n", ns, "web")).stderr).toContain("NotFound");
  });
});
