// The Helm chart: the committed plain manifests match it, the security context and RBAC say what docs/install.md
// promises, every optional feature renders, and values.schema.json refuses wrong types.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import {
  chartDigest,
  findHelmTemplate,
  manifestFromRender,
  manifestPath,
  recordedDigest,
  renderChart,
  repoRoot,
  valuesSchemaPath,
  valuesSchemaWithPools,
} from "../../scripts/lib/chart.ts";
import { parseRunFlags } from "../../src/cli/run.ts";

type Obj = Record<string, unknown> & { kind?: string; metadata?: { name?: string; namespace?: string } };

function objects(yaml: string): Obj[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

function find(objs: readonly Obj[], kind: string, name?: string): Obj {
  const found = objs.find((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (found === undefined) throw new Error(`no ${kind} ${name ?? ""} in the render`);
  return found;
}

// The few paths into a workload the assertions need, typed loosely on purpose: the render is the input.
interface Container {
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext: Record<string, unknown> & { capabilities: { drop: string[]; add?: string[] } };
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  ports: { name: string; containerPort: number }[];
}
interface PodSpec {
  hostNetwork?: boolean;
  securityContext: Record<string, unknown>;
  containers: Container[];
  tolerations?: unknown[];
  priorityClassName?: string;
  serviceAccountName: string;
}
/** The speaker's pod (the DaemonSet) or the controller's (the Deployment). */
function podSpec(objs: readonly Obj[], kind: "DaemonSet" | "Deployment" = "DaemonSet"): PodSpec {
  return (find(objs, kind) as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
function rules(objs: readonly Obj[], kind: "ClusterRole" | "Role", name?: string): Rule[] {
  if (name !== undefined) return (find(objs, kind, name) as unknown as { rules: Rule[] }).rules;
  return objs.filter((o) => o.kind === kind).flatMap((o) => (o as unknown as { rules: Rule[] }).rules);
}
/** Whether any rule grants `verb` on `resource` (core group unless `group`). */
const allows = (all: readonly Rule[], verb: string, resource: string, group = ""): boolean =>
  all.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));

const run = promisify(execFile);
async function lodestone(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(repoRoot, "bin/lodestone.js"), ...args]);
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const committed = readFileSync(manifestPath, "utf8");
const tool = findHelmTemplate();
if (tool === undefined) {
  console.log("packaging: helm-template not found (../shared/tools or $LODESTONE_HELM_TEMPLATE): render tests skip");
}

describe("deploy/manifests/lodestone.yaml", () => {
  it("was generated from the chart as it is now (digest in its header; run `npm run gen:manifests`)", () => {
    expect(recordedDigest(committed)).toBe(chartDigest());
  });

  it.skipIf(tool === undefined)("is exactly the chart rendered with defaults", async () => {
    const render = await renderChart(tool!);
    if (!render.ok) throw new Error(render.error);
    expect(manifestFromRender(render.yaml, chartDigest())).toBe(committed);
  });

  const objs = objects(committed);

  it("creates its namespace first, labelled for the privileged Pod Security Standard", () => {
    expect(objs[0]?.kind).toBe("Namespace");
    expect(objs[0]).toMatchObject({ metadata: { labels: { "pod-security.kubernetes.io/enforce": "privileged" } } });
  });

  it("runs the speaker with NET_RAW as its only capability, read-only, no privilege escalation", () => {
    const pod = podSpec(objs);
    const c = pod.containers[0]!;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.securityContext).toEqual({ seccompProfile: { type: "RuntimeDefault" }, runAsUser: 0, runAsGroup: 0 });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"], add: ["NET_RAW"] },
    });
    expect(c.args).toEqual([
      "run",
      "--component=speaker",
      "--metrics-port=7472",
      "--log-level=info",
      "--metallb-namespace=metallb-system",
    ]);
    expect(pod.serviceAccountName).toBe("lodestone");
  });

  it("runs the controller as a Deployment of two: no host network, no capability, non-root, read-only", () => {
    const deployment = find(objs, "Deployment") as unknown as { spec: { replicas: number } };
    expect(deployment.spec.replicas).toBe(2);
    const pod = podSpec(objs, "Deployment");
    const c = pod.containers[0]!;
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.securityContext).toEqual({
      seccompProfile: { type: "RuntimeDefault" },
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
    });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(c.args).toEqual([
      "run",
      "--component=controller",
      "--metrics-port=7472",
      "--log-level=info",
      "--metallb-namespace=metallb-system",
    ]);
    expect(pod.serviceAccountName).toBe("lodestone-controller");
    // Its selector does not overlap the DaemonSet's, which keeps the single DaemonSet's selector for upgrades.
    const selector = (kind: string) =>
      (find(objs, kind) as unknown as { spec: { selector: { matchLabels: Record<string, string> } } }).spec.selector
        .matchLabels;
    expect(selector("DaemonSet")).toEqual({
      "app.kubernetes.io/name": "lodestone",
      "app.kubernetes.io/instance": "lodestone",
    });
    expect(selector("Deployment")["app.kubernetes.io/name"]).toBe("lodestone-controller");
    expect(find(objs, "PodDisruptionBudget")).toMatchObject({
      spec: { minAvailable: 1, selector: { matchLabels: selector("Deployment") } },
    });
  });

  it("has two ServiceAccounts, each bound to its own ClusterRole and Role only", () => {
    expect(
      objs
        .filter((o) => o.kind === "ServiceAccount")
        .map((o) => o.metadata?.name)
        .sort(),
    ).toEqual(["lodestone", "lodestone-controller"]);
    const bindings = objs
      .filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding")
      .map((o) => {
        const b = o as unknown as { roleRef: { kind: string; name: string }; subjects: { name: string }[] };
        return `${b.subjects.map((x) => x.name).join(",")} -> ${b.roleRef.kind}/${b.roleRef.name}`;
      })
      .sort();
    expect(bindings).toEqual([
      "lodestone -> ClusterRole/lodestone-speaker",
      "lodestone -> Role/lodestone-speaker",
      "lodestone-controller -> ClusterRole/lodestone-controller",
      "lodestone-controller -> Role/lodestone-controller",
    ]);
  });

  it("lets the speaker read but not change Services, their status or Secrets", () => {
    const speaker = [...rules(objs, "ClusterRole", "lodestone-speaker"), ...rules(objs, "Role", "lodestone-speaker")];
    for (const verb of ["patch", "update", "create", "delete"]) {
      expect(allows(speaker, verb, "services"), `${verb} services`).toBe(false);
      expect(allows(speaker, verb, "services/status"), `${verb} services/status`).toBe(false);
      expect(allows(speaker, verb, "secrets"), `${verb} secrets`).toBe(false);
    }
    expect(allows(speaker, "list", "services") && allows(speaker, "watch", "services")).toBe(true);
    expect(speaker.filter((r) => r.resources.includes("secrets"))).toEqual([
      { apiGroups: [""], resources: ["secrets"], resourceNames: ["lodestone-memberlist"], verbs: ["get"] },
    ]);
    const controller = [
      ...rules(objs, "ClusterRole", "lodestone-controller"),
      ...rules(objs, "Role", "lodestone-controller"),
    ];
    expect(allows(controller, "patch", "services/status") && allows(controller, "patch", "services")).toBe(true);
    // No node, no EndpointSlice, no Secret read: the controller's part of the work needs none.
    expect(
      allows(controller, "list", "nodes") || allows(controller, "list", "endpointslices", "discovery.k8s.io"),
    ).toBe(false);
    expect(allows(controller, "get", "secrets")).toBe(false);
  });

  it.each(["DaemonSet", "Deployment"] as const)(
    "%s: NODE_NAME, POD_NAMESPACE and POD_NAME (the Lease holder identity) from the downward API",
    (kind) => {
      const env = podSpec(objs, kind).containers[0]!.env;
      expect(env).toContainEqual({ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
      expect(env).toContainEqual({ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } });
      expect(env).toContainEqual({
        name: "POD_NAMESPACE",
        valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } },
      });
    },
  );

  it.each(["DaemonSet", "Deployment"] as const)(
    "%s: probes /healthz and /readyz on the metrics port and has no CPU limit",
    (kind) => {
      const c = podSpec(objs, kind).containers[0]!;
      expect(c.ports).toEqual([{ name: "metrics", containerPort: 7472, protocol: "TCP" }]);
      expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "metrics" });
      expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "metrics" });
      expect(c.resources.requests).toHaveProperty("cpu");
      expect(c.resources.limits ?? {}).not.toHaveProperty("cpu");
    },
  );

  it("grants no wildcard and reads no Secret but the membership key", () => {
    const all = [...rules(objs, "ClusterRole"), ...rules(objs, "Role")];
    for (const r of all) {
      for (const field of [r.apiGroups, r.resources, r.verbs, r.resourceNames ?? []]) expect(field).not.toContain("*");
    }
    const secretRules = all.filter((r) => r.resources.includes("secrets"));
    expect(secretRules).toEqual([
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      { apiGroups: [""], resources: ["secrets"], resourceNames: ["lodestone-memberlist"], verbs: ["get"] },
    ]);
    expect(rules(objs, "ClusterRole").flatMap((r) => r.resources)).not.toContain("configmaps");
  });
});

describe("values.schema.json", () => {
  it("checks pools with config/schema.json, the schema the daemon parses with (`npm run gen:manifests`)", () => {
    expect(JSON.parse(readFileSync(valuesSchemaPath, "utf8"))).toEqual(valuesSchemaWithPools());
  });
});

describe.skipIf(tool === undefined)("chart rendering", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `lodestone-packaging-${process.pid}-`));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function render(options: Parameters<typeof renderChart>[1]): Promise<Obj[]> {
    const r = await renderChart(tool!, options);
    if (!r.ok) throw new Error(r.error);
    return objects(r.yaml);
  }

  it("puts dual-stack pools into a labelled ConfigMap the daemon reads", async () => {
    const values = join(repoRoot, "deploy/helm/examples/dual-stack-pools.yaml");
    const objs = await render({ release: "lb", namespace: "lb-system", valuesFiles: [values] });
    const cm = find(objs, "ConfigMap", "lb-lodestone-pools") as Obj & { data: Record<string, string> };
    expect(cm).toMatchObject({ metadata: { namespace: "lb-system", labels: { "lodestone.dev/pools": "true" } } });
    const pools = objects(cm.data["pools.yaml"]!)[0] as unknown;
    const expected = (objects(readFileSync(values, "utf8"))[0] as { pools: unknown }).pools;
    expect(pools).toEqual(expected);
    // The daemon's own parser accepts what the chart rendered.
    const file = join(dir, "pools-configmap.yaml");
    writeFileSync(file, JSON.stringify(cm));
    const check = await lodestone("check-config", file);
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
  });

  it("renders no pool ConfigMap without pools", async () => {
    expect((await render({})).map((o) => o.kind)).not.toContain("ConfigMap");
  });

  it("renders every optional feature", async () => {
    const objs = await render({ valuesFiles: [join(repoRoot, "deploy/helm/examples/all-features.yaml")] });
    expect(objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort()).toEqual([
      "ClusterRole/lb-controller",
      "ClusterRole/lb-speaker",
      "ClusterRoleBinding/lb-controller",
      "ClusterRoleBinding/lb-speaker",
      "ConfigMap/lb-pools",
      "CustomResourceDefinition/ipaddresspools.metallb.io",
      "CustomResourceDefinition/l2advertisements.metallb.io",
      "DaemonSet/lb",
      "Deployment/lb-controller",
      "PodDisruptionBudget/lb-controller",
      "Role/lb-controller",
      "Role/lb-speaker",
      "RoleBinding/lb-controller",
      "RoleBinding/lb-speaker",
      "Service/lb-controller-metrics",
      "Service/lb-metrics",
      "ServiceAccount/lodestone-controller-sa",
      "ServiceAccount/lodestone-sa",
      "ServiceMonitor/lb",
    ]);
    const pod = podSpec(objs);
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(pod.serviceAccountName).toBe("lodestone-sa");
    expect(pod.containers[0]!.args).toEqual([
      "run",
      "--component=speaker",
      "--metrics-port=9472",
      "--log-level=debug",
      "--load-balancer-class=example.com/lb",
      "--metallb-namespace=mlb",
      "--kubeconfig=/etc/lodestone/kubeconfig",
      "--example-flag=1",
    ]);
    // Each workload's own scheduling values.
    const controller = podSpec(objs, "Deployment") as PodSpec & {
      nodeSelector?: Record<string, string>;
      affinity?: unknown;
    };
    expect(controller.priorityClassName).toBe("system-cluster-critical");
    expect(controller.serviceAccountName).toBe("lodestone-controller-sa");
    // Helm merges maps with the defaults: the OS label stays.
    expect(controller.nodeSelector).toEqual({ "kubernetes.io/os": "linux", "example.com/control": "true" });
    expect(controller.tolerations).toEqual([
      { key: "example.com/dedicated", operator: "Equal", value: "control", effect: "NoSchedule" },
    ]);
    expect(JSON.stringify(controller.affinity)).toContain("example.com/no-controller");
    expect(controller.containers[0]!.resources).toEqual({
      requests: { cpu: "20m", memory: "64Mi" },
      limits: { memory: "256Mi" },
    });
    expect(find(objs, "Deployment")).toMatchObject({ spec: { replicas: 3 } });
    expect(find(objs, "PodDisruptionBudget")).toMatchObject({ spec: { maxUnavailable: 1 } });
    expect(controller.containers[0]!.args).toEqual([
      "run",
      "--component=controller",
      "--metrics-port=9472",
      "--log-level=debug",
      "--load-balancer-class=example.com/lb",
      "--metallb-namespace=mlb",
      "--kubeconfig=/etc/lodestone/kubeconfig",
      "--lease-name=lb-controller",
      "--lease-duration=20s",
      "--renew-deadline=15s",
      "--retry-period=1500ms",
      "--example-flag=1",
    ]);
    expect(find(objs, "ServiceMonitor")).toMatchObject({
      metadata: { labels: { release: "prometheus" } },
      spec: { endpoints: [{ port: "metrics", path: "/metrics", interval: "15s" }] },
    });
    for (const name of ["lb-metrics", "lb-controller-metrics"])
      expect(find(objs, "Service", name)).toMatchObject({ spec: { clusterIP: "None", ports: [{ port: 9472 }] } });
    // Kept by `helm uninstall`: deleting a CRD deletes every pool written in it.
    for (const name of ["ipaddresspools.metallb.io", "l2advertisements.metallb.io"])
      expect(find(objs, "CustomResourceDefinition", name)).toMatchObject({
        metadata: { annotations: { "helm.sh/resource-policy": "keep" } },
      });
  });

  it("renders no CustomResourceDefinition by default (MetalLB's own may be installed)", async () => {
    expect((await render({})).map((o) => o.kind)).not.toContain("CustomResourceDefinition");
  });

  it.each([
    {
      desc: "all four",
      set: [
        "daemon.lease.name=lb-lease",
        "daemon.lease.duration=2m",
        "daemon.lease.renewDeadline=90s",
        "daemon.lease.retryPeriod=500ms",
      ],
      args: ["--lease-name=lb-lease", "--lease-duration=2m", "--renew-deadline=90s", "--retry-period=500ms"],
      timings: { name: "lb-lease", leaseDurationMs: 120_000, renewDeadlineMs: 90_000, retryPeriodMs: 500 },
    },
    {
      desc: "only the retry period",
      set: ["daemon.lease.retryPeriod=1s"],
      args: ["--retry-period=1s"],
      timings: { name: "lodestone-controller", leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 1000 },
    },
  ])("passes lease values set ($desc) as flags that `lodestone run` parses", async ({ set, args, timings }) => {
    const rendered = podSpec(await render({ set }), "Deployment").containers[0]!.args;
    expect(rendered.filter((a) => /^--(lease|renew|retry)-/.test(a))).toEqual(args);
    const parsed = parseRunFlags(rendered.slice(1), { NODE_NAME: "n1" });
    if (parsed.ok !== true) throw new Error(`lodestone run refuses the rendered args: ${JSON.stringify(parsed)}`);
    expect(parsed.value.daemon.lease).toEqual(timings);
  });

  it("renders the controller alone, without the speaker's DaemonSet, ServiceAccount or roles", async () => {
    const objs = await render({ set: ["speaker.enabled=false"] });
    expect(objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort()).toEqual([
      "ClusterRole/lodestone-controller",
      "ClusterRoleBinding/lodestone-controller",
      "Deployment/lodestone-controller",
      "PodDisruptionBudget/lodestone-controller",
      "Role/lodestone-controller",
      "RoleBinding/lodestone-controller",
      "ServiceAccount/lodestone-controller",
    ]);
  });

  it("renders no PodDisruptionBudget when it is turned off", async () => {
    const objs = await render({ set: ["controller.podDisruptionBudget.enabled=false"] });
    expect(objs.map((o) => o.kind)).not.toContain("PodDisruptionBudget");
  });

  it.each([
    { desc: "port as a string", set: ["daemon.metricsPort=abc"], values: "", error: /metricsPort/ },
    { desc: "port 0 (probes need it)", set: ["daemon.metricsPort=0"], values: "", error: /metricsPort/ },
    { desc: "speaker as a string", set: ["speaker.enabled=yes"], values: "", error: /enabled/ },
    { desc: "the old daemon.speaker", set: ["daemon.speaker=false"], values: "", error: /speaker/ },
    { desc: "no controller replica", set: ["controller.replicas=0"], values: "", error: /replicas/ },
    {
      desc: "disruption budget as a boolean",
      set: [],
      values: "controller: {podDisruptionBudget: {minAvailable: true}}",
      error: /minAvailable/,
    },
    {
      desc: "top-level resources (now per workload)",
      set: [],
      values: "resources: {requests: {cpu: 1}}",
      error: /resources/,
    },
    { desc: "unknown log level", set: ["daemon.logLevel=verbose"], values: "", error: /logLevel/ },
    {
      desc: "MetalLB namespace not a name",
      set: ["daemon.metallbNamespace=Metal_LB"],
      values: "",
      error: /metallbNamespace/,
    },
    { desc: "misspelt top-level key", set: ["pool[0].name=a"], values: "", error: /pool/ },
    {
      desc: "addresses as a string",
      set: [],
      values: "pools: [{name: a, addresses: 192.0.2.0/24}]",
      error: /addresses/,
    },
    {
      desc: "pool name with a space",
      set: [],
      values: "pools: [{name: my pool, addresses: [192.0.2.1]}]",
      error: /name/,
    },
    { desc: "pool without a name", set: [], values: "pools: [{addresses: [192.0.2.0/24]}]", error: /name/ },
    {
      desc: "unknown pool field",
      set: [],
      values: "pools: [{name: a, addresses: [192.0.2.1], autoassign: true}]",
      error: /autoassign/,
    },
    {
      desc: "bad selector operator",
      set: [],
      values:
        "pools: [{name: a, addresses: [192.0.2.1], serviceAllocation: {namespaceSelector: {matchExpressions: [{key: k, operator: Equals}]}}}]",
      error: /operator/,
    },
    {
      desc: "lease duration without a unit",
      set: [],
      values: "daemon: {lease: {duration: '15'}}",
      error: /daemon\.lease\.duration:/,
    },
    {
      desc: "lease duration as a number",
      set: [],
      values: "daemon: {lease: {duration: 15}}",
      error: /daemon\.lease\.duration:/,
    },
    {
      desc: "zero renew deadline",
      set: ["daemon.lease.renewDeadline=0s"],
      values: "",
      error: /daemon\.lease\.renewDeadline:/,
    },
    {
      desc: "retry period in hours",
      set: ["daemon.lease.retryPeriod=1h"],
      values: "",
      error: /daemon\.lease\.retryPeriod:/,
    },
    { desc: "lease name in capitals", set: ["daemon.lease.name=Lodestone"], values: "", error: /daemon\.lease\.name:/ },
    { desc: "misspelt lease field", set: ["daemon.lease.durationSeconds=15"], values: "", error: /durationSeconds/ },
    {
      desc: "CPU request as a boolean",
      set: [],
      values: "speaker: {resources: {requests: {cpu: true}}}",
      error: /cpu/,
    },
    { desc: "scrape interval in words", set: [], values: "serviceMonitor: {interval: 30 seconds}", error: /interval/ },
    { desc: "CRDs enabled as a string", set: [], values: "crds: {metallb: {enabled: 'yes'}}", error: /enabled/ },
    { desc: "misspelt CRD set", set: ["crds.metalLB.enabled=true"], values: "", error: /metalLB/ },
  ])("rejects wrong values: $desc", async ({ set, values, error }) => {
    const valuesFiles: string[] = [];
    if (values !== "") {
      const file = join(dir, `values-${valuesFiles.length}-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(file, values);
      valuesFiles.push(file);
    }
    const r = await renderChart(tool!, { set, valuesFiles });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain("values don't meet the specifications of the schema");
      expect(r.error).toMatch(error);
    }
  });
});
