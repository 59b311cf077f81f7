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

  it("prints server-side tables: EXTERNAL-IP of a LoadBalancer Service, lease holders", async () => {
    expect(await ok("get", "svc", "-n", ns, "web")).toMatch(
      /web\s+LoadBalancer\s+10\.\S+\s+192\.0\.2\.10\s+80:3\d{4}\/TCP/,
    );
    const lease = manifest(
      "lease.yaml",
      `apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: lodestone}\nspec: {holderIdentity: node-a, leaseDurationSeconds: 5}\n`,
    );
    await ok("create", "-n", ns, "-f", lease);
    expect(await ok("get", "leases", "-A")).toMatch(new RegExp(`${ns}\\s+lodestone\\s+node-a`));
  });

  it("shows events written through events.k8s.io in describe and get events", async () => {
    const uid = await ok("get", "svc", "web", "-n", ns, "-o", "jsonpath={.metadata.uid}");
    const ev = manifest(
      "event.yaml",
      [
        "apiVersion: events.k8s.io/v1",
        "kind: Event",
        "metadata: {name: web.1}",
        'eventTime: "2026-01-01T00:00:00.000000Z"',
        "reportingController: lodestone.dev/controller",
        "reportingInstance: ctl-1",
        "action: Allocate",
        "reason: IPAllocated",
        "type: Normal",
        "note: Assigned IP 192.0.2.10",
        `regarding: {kind: Service, apiVersion: v1, namespace: ${ns}, name: web, uid: ${uid}}`,
      ].join("\n"),
    );
    await ok("create", "-n", ns, "-f", ev);
    expect(await ok("describe", "svc", "-n", ns, "web")).toMatch(
      /Events:[\s\S]*IPAllocated\s+\S+\s+lodestone\.dev\/controller\s+Assigned IP 192\.0\.2\.10/,
    );
    expect(await ok("get", "events", "-n", ns)).toMatch(/IPAllocated\s+service\/web\s+Assigned IP/);
  });

  it("streams changes to kubectl get -w", async () => {
    const watching = kubectl("get", "svc", "-n", ns, "-w", "--request-timeout=3s");
    await new Promise((r) => setTimeout(r, 1200));
    await ok("label", "svc", "web", "-n", ns, "changed=yes");
    const r = await watching;
    expect(r.stdout.split("\n").filter((l) => l.startsWith("web ")).length).toBeGreaterThanOrEqual(2);
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

describe("what a user of the demo types", () => {
  const configMap = (data: string, extra = "") =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {${data}}\n${extra}`;

  it("kubectl apply --server-side creates, then updates", async () => {
    const file = manifest("applied.yaml", configMap("a: '1'"));
    expect(await ok("apply", "--server-side", "-n", ns, "-f", file)).toContain("configmap/applied serverside-applied");
    manifest("applied.yaml", configMap("a: '2'"));
    expect(await ok("apply", "--server-side", "-n", ns, "-f", file)).toContain("serverside-applied");
    expect(await ok("get", "cm", "-n", ns, "applied", "-o", "jsonpath={.data.a}")).toBe("2");
  });

  it("kubectl apply --server-side refuses a field the kind does not have", async () => {
    const r = await kubectl(
      "apply",
      "--server-side",
      "-n",
      ns,
      "-f",
      manifest("typo.yaml", configMap("a: '1'", "dta: {}\n")),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(".dta: field not declared in schema");
  });

  it("kubectl create refuses an unknown field (--validate=strict, the default) and warns with --validate=warn", async () => {
    const file = manifest("unknown.yaml", configMap("a: '1'", "spec: {foo: 1}\n").replace("applied", "unknown"));
    const strict = await kubectl("create", "-n", ns, "-f", file);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toContain('strict decoding error: unknown field "spec"');
    const warn = await kubectl("create", "-n", ns, "-f", file, "--validate=warn");
    expect(warn.code).toBe(0);
    expect(warn.stderr).toContain('Warning: unknown field "spec"');
  });

  it("kubectl create deployment, then kubectl expose deployment --type=LoadBalancer", async () => {
    expect(await ok("create", "deployment", "web", "-n", ns, "--image=nginx:1.27")).toContain(
      "deployment.apps/web created",
    );
    expect(await ok("get", "deploy", "-n", ns, "web")).toMatch(/web\s+0\/1/);
    expect(
      await ok("expose", "deployment", "web", "-n", ns, "--type=LoadBalancer", "--port=80", "--name=web-lb"),
    ).toContain("service/web-lb exposed");
    const svc = JSON.parse(await ok("get", "svc", "-n", ns, "web-lb", "-o", "json")) as {
      spec: { type: string; selector: Record<string, string>; ports: { port: number }[] };
    };
    expect(svc.spec.type).toBe("LoadBalancer");
    expect(svc.spec.selector).toEqual({ app: "web" });
    expect(svc.spec.ports[0]?.port).toBe(80);
  });
});

describe("kubectl create -f of a kind: List, validated by kubectl against /openapi/v2", () => {
  const list = (extra: string) => `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed-a}
  data: {a: "1"}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed-b}
  spec:
    selector: {matchLabels: {app: b}}
    template:
      metadata: {labels: {app: b}}
      spec:
        containers: [{name: c, image: nginx${extra}}]
`;

  it("refuses a List with an unknown field before creating anything", async () => {
    const r = await kubectl("create", "-n", ns, "-f", manifest("bad-list.yaml", list(", imagee: x")));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'ValidationError(Deployment.spec.template.spec.containers[0]): unknown field "imagee" in io.k8s.api.apps.v1.Deployment',
    );
    expect((await kubectl("get", "cm", "-n", ns, "listed-a")).stderr).toContain("NotFound");
  });

  it("creates every item of a valid List", async () => {
    const out = await ok("create", "-n", ns, "-f", manifest("list.yaml", list("")));
    expect(out).toContain("configmap/listed-a created");
    expect(out).toContain("deployment.apps/listed-b created");
  });
});

describe("kubectl with a CustomResourceDefinition", () => {
  const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: lanterns.lab.example}
spec:
  group: lab.example
  scope: Namespaced
  names: {plural: lanterns, kind: Lantern, shortNames: [ltn]}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Colour, type: string, jsonPath: .spec.colour}
    - {name: Watts, type: integer, jsonPath: .spec.watts}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              colour: {type: string}
              watts: {type: integer, default: 40}
`;

  it("applies the CRD and an object, and get shows the printer columns by plural and short name", async () => {
    expect(await ok("apply", "-f", manifest("crd.yaml", crd))).toContain(
      "customresourcedefinition.apiextensions.k8s.io/lanterns.lab.example created",
    );
    const obj = `apiVersion: lab.example/v1\nkind: Lantern\nmetadata: {name: amber}\nspec: {colour: amber}\n`;
    expect(await ok("apply", "-n", ns, "-f", manifest("lantern.yaml", obj))).toContain(
      "lantern.lab.example/amber created",
    );
    for (const name of ["lanterns", "ltn"]) {
      const out = await ok("get", name, "-n", ns);
      expect(out).toMatch(/^NAME\s+COLOUR\s+WATTS\n/);
      expect(out).toMatch(/amber\s+amber\s+40/);
    }
    await ok("delete", "crd", "lanterns.lab.example");
    expect((await kubectl("get", "lanterns", "-n", ns)).code).not.toBe(0);
  });
});
