// The objects the chart renders are accepted by an API server: `kubectl create --dry-run=server` against the
// sandbox, for the committed plain manifests and for a render with every optional feature on.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";
import { findHelmTemplate, manifestPath, renderChart, repoRoot, splitRender } from "../../scripts/lib/chart.ts";

const KUBECTL = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].find((p) => existsSync(p));
if (KUBECTL === undefined) console.log("packaging: kubectl missing (bash scripts/ensure-tools.sh): skipped");
const tool = findHelmTemplate();
const namespace = "lodestone-system";

describe.skipIf(KUBECTL === undefined)("the chart's objects on an API server", () => {
  let sandbox: Sandbox;
  let dir = "";

  function kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(KUBECTL!, ["--kubeconfig", sandbox.kubeconfigPath, ...args], { timeout: 30_000 }, (err, out, errOut) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout: out, stderr: errOut }),
      );
    });
  }

  /** The documents of a render or manifest except the kinds given, as one file. */
  function without(yaml: string, kinds: readonly string[], name: string): string {
    const path = join(dir, name);
    const docs = splitRender(yaml.replace(/^# (?!Source:).*\n/gm, "")).filter((d) => !kinds.includes(d.kind));
    writeFileSync(path, docs.map((d) => d.body).join("\n---\n") + "\n");
    return path;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `lodestone-packaging-sbx-${process.pid}-`));
    sandbox = await startSandbox();
    const nsFile = join(dir, "namespace.yaml");
    writeFileSync(nsFile, `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${namespace}}\n`);
    const r = await kubectl("create", "-f", nsFile);
    if (r.code !== 0) throw new Error(r.stderr);
  });

  afterAll(async () => {
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts deploy/manifests/lodestone.yaml (dry run), then creates it", async () => {
    const file = without(readFileSync(manifestPath, "utf8"), ["Namespace"], "manifests.yaml");
    const dry = await kubectl("create", "--dry-run=server", "-f", file, "-o", "name");
    expect(dry.stderr).toBe("");
    expect(dry.stdout.split("\n").filter(Boolean).sort()).toEqual([
      "clusterrole.rbac.authorization.k8s.io/lodestone-controller",
      "clusterrole.rbac.authorization.k8s.io/lodestone-speaker",
      "clusterrolebinding.rbac.authorization.k8s.io/lodestone-controller",
      "clusterrolebinding.rbac.authorization.k8s.io/lodestone-speaker",
      "daemonset.apps/lodestone",
      "deployment.apps/lodestone-controller",
      "poddisruptionbudget.policy/lodestone-controller",
      "role.rbac.authorization.k8s.io/lodestone-controller",
      "role.rbac.authorization.k8s.io/lodestone-speaker",
      "rolebinding.rbac.authorization.k8s.io/lodestone-controller",
      "rolebinding.rbac.authorization.k8s.io/lodestone-speaker",
      "serviceaccount/lodestone",
      "serviceaccount/lodestone-controller",
    ]);
    expect((await kubectl("get", "daemonsets", "-n", namespace, "-o", "name")).stdout).toBe("");
    const real = await kubectl("create", "-f", file);
    expect(real.stderr).toBe("");
    expect((await kubectl("get", "daemonset/lodestone", "-n", namespace, "-o", "name")).stdout.trim()).toBe(
      "daemonset.apps/lodestone",
    );
  });

  it.skipIf(tool === undefined)("accepts a render with every optional feature (dry run)", async () => {
    const render = await renderChart(tool!, {
      namespace,
      valuesFiles: [join(repoRoot, "deploy/helm/examples/all-features.yaml")],
    });
    if (!render.ok) throw new Error(render.error);
    // ServiceMonitor is a CRD of the Prometheus Operator, which the sandbox does not serve.
    const dry = await kubectl("create", "--dry-run=server", "-f", without(render.yaml, ["ServiceMonitor"], "all.yaml"));
    expect(dry.stderr).toBe("");
    expect(dry.stdout).toContain("daemonset.apps/lb created (server dry run)");
    expect(dry.stdout).toContain("deployment.apps/lb-controller created (server dry run)");
    expect(dry.stdout).toContain("poddisruptionbudget.policy/lb-controller created (server dry run)");
    expect(dry.stdout).toContain("configmap/lb-pools created (server dry run)");
    expect(dry.stdout).toContain("service/lb-metrics created (server dry run)");
    expect(dry.stdout).toContain(
      "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io created (server dry run)",
    );
  });
});
