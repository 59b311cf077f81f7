// The chart's MetalLB-compatible CRDs (crds.metallb.enabled) for a cluster that never ran MetalLB: rendered, they
// load into an API server with `kubectl apply`, the daemon reads an IPAddressPool written against them, and
// `kubectl get ipaddresspools` shows the usage the controller writes into the pool's status.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findHelmTemplate, renderChart, splitRender } from "../../scripts/lib/chart.ts";
import { ingress, lb, startEnv, until, type Env } from "./controller-env.ts";

const KUBECTL = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].find((p) => existsSync(p));
const tool = findHelmTemplate();
const MLB = "metallb-system";
const apps = "apps";

if (KUBECTL === undefined || tool === undefined) {
  console.log(
    "packaging-crds: needs kubectl and helm-template (bash scripts/ensure-tools.sh, ../shared/tools): skipped",
  );
}
describe.skipIf(KUBECTL === undefined || tool === undefined)("the chart's MetalLB-compatible CRDs", () => {
  let env: Env;
  let dir = "";

  function kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(KUBECTL!, ["--kubeconfig", env.sandbox.kubeconfigPath, ...args], { timeout: 30_000 }, (err, o, e) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout: o, stderr: e }),
      );
    });
  }
  function file(name: string, body: string): string {
    const path = join(dir, name);
    writeFileSync(path, body);
    return path;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `lodestone-packaging-crds-${process.pid}-`));
    env = await startEnv([apps, MLB]);
  });
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("apply, serve a pool the daemon allocates from, and show its usage in kubectl get", async () => {
    const render = await renderChart(tool!, { set: ["crds.metallb.enabled=true"] });
    if (!render.ok) throw new Error(render.error);
    const crds = splitRender(render.yaml).filter((d) => d.kind === "CustomResourceDefinition");
    expect(crds.map((d) => d.source)).toEqual([
      "lodestone/templates/crds-metallb.yaml",
      "lodestone/templates/crds-metallb.yaml",
    ]);
    const applied = await kubectl("apply", "-f", file("crds.yaml", crds.map((d) => d.body).join("\n---\n")));
    expect(applied.stderr).toBe("");
    expect(applied.stdout).toContain("customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io created");
    expect(applied.stdout).toContain(
      "customresourcedefinition.apiextensions.k8s.io/l2advertisements.metallb.io created",
    );

    const pools = file(
      "pools.yaml",
      [
        "apiVersion: metallb.io/v1beta1",
        "kind: IPAddressPool",
        `metadata: {name: lan, namespace: ${MLB}}`,
        "spec:",
        "  addresses: [192.0.2.0/29, 2001:db8::/125]",
        "---",
        "apiVersion: metallb.io/v1beta1",
        "kind: L2Advertisement",
        `metadata: {name: all, namespace: ${MLB}}`,
        "spec: {}",
        "",
      ].join("\n"),
    );
    const created = await kubectl("apply", "-f", pools);
    expect(created.stderr).toBe("");

    const d = await env.daemon({ metallbNamespace: MLB, absentRetryMs: 100 });
    await until("CRD pools in force", () => (d.isLeader() && d.readiness().ok ? true : undefined));
    await lb(env.core, apps, "v4");
    await lb(env.core, apps, "dual", { spec: { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] } });
    expect(await until("ingress of v4", () => ingress(env.core, apps, "v4"))).toEqual(["192.0.2.0"]);
    expect(
      await until("ingress of dual", async () =>
        (await ingress(env.core, apps, "dual"))?.length === 2 ? true : undefined,
      ),
    ).toBe(true);

    // The printer columns: name, addresses, auto assign, assigned and available per family, age.
    const row = await until("usage columns", async () => {
      const r = await kubectl("get", "ipaddresspools", "-n", MLB, "--no-headers");
      const cols = r.stdout.trim().split(/\s{2,}/);
      return cols[3] === "2" ? cols : undefined;
    });
    expect(row.slice(0, 7)).toEqual(["lan", '["192.0.2.0/29","2001:db8::/125"]', "true", "2", "1", "6", "7"]);
    const header = (await kubectl("get", "ipaddresspools", "-n", MLB)).stdout.split("\n")[0]!;
    expect(header.split(/\s{2,}/)).toEqual([
      "NAME",
      "ADDRESSES",
      "AUTO ASSIGN",
      "ASSIGNED IPV4",
      "ASSIGNED IPV6",
      "AVAILABLE IPV4",
      "AVAILABLE IPV6",
      "AGE",
    ]);
  }, 30_000);
});
