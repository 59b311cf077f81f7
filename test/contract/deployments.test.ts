import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { causeFields, meta, sandboxHttp, type Http } from "./support.ts";

let http: Http;
const ns = "deployments-contract";
const deploys = `/apis/apps/v1/namespaces/${ns}/deployments`;

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
});
afterAll(() => http.stop());

const deployment = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "c", image: "nginx" }] } },
    ...spec,
  },
});

describe("discovery serves apps/v1 deployments", () => {
  it("with the deploy short name and a status subresource", async () => {
    const r = await http.call("GET", "/apis/apps/v1");
    const names = (r.body["resources"] as { name: string; shortNames?: string[] }[]).map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(["deployments", "deployments/status"]));
  });
});

// pkg/apis/apps/v1, SetDefaults_Deployment; pkg/apis/core/v1, SetDefaults_PodSpec and SetDefaults_Container.
describe("Deployment defaults (apps/v1 defaults: SetDefaults_Deployment)", () => {
  it("replicas, strategy, history, deadline and the pod template's", async () => {
    const r = await http.call("POST", deploys, deployment("defaults"));
    expect(r.status).toBe(201);
    const spec = r.body["spec"] as Record<string, unknown>;
    expect(spec).toMatchObject({
      replicas: 1,
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
      template: {
        spec: {
          restartPolicy: "Always",
          dnsPolicy: "ClusterFirst",
          terminationGracePeriodSeconds: 30,
          schedulerName: "default-scheduler",
          containers: [{ imagePullPolicy: "Always", terminationMessagePolicy: "File" }],
        },
      },
    });
    expect(meta(r.body)["generation"]).toBe(1);
  });

  it("keeps replicas: 0 and pulls a pinned tag only if not present", async () => {
    const r = await http.call(
      "POST",
      deploys,
      deployment("zero", {
        replicas: 0,
        template: { metadata: { labels: { app: "zero" } }, spec: { containers: [{ name: "c", image: "nginx:1.27" }] } },
      }),
    );
    expect(r.status).toBe(201);
    const spec = r.body["spec"] as {
      replicas: number;
      template: { spec: { containers: { imagePullPolicy: string }[] } };
    };
    expect(spec.replicas).toBe(0);
    expect(spec.template.spec.containers[0]?.imagePullPolicy).toBe("IfNotPresent");
  });
});

// pkg/apis/apps/validation, ValidateDeploymentSpec and ValidateDeploymentUpdate.
describe("Deployment validation (apps validation: ValidateDeploymentSpec)", () => {
  it.each([
    { desc: "no selector", spec: { selector: undefined }, field: "spec.selector" },
    { desc: "an empty selector", spec: { selector: {} }, field: "spec.selector" },
    {
      desc: "a selector the template's labels do not match",
      spec: { selector: { matchLabels: { app: "other" } } },
      field: "spec.template.metadata.labels",
    },
    {
      desc: "no containers",
      spec: { template: { metadata: { labels: { app: "bad" } }, spec: { containers: [] } } },
      field: "spec.template.spec.containers",
    },
    { desc: "negative replicas", spec: { replicas: -1 }, field: "spec.replicas" },
  ])("422 for $desc", async ({ spec, field }) => {
    const r = await http.call("POST", deploys, deployment("bad", spec));
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual([field]);
  });

  it("the selector is immutable", async () => {
    await http.call("POST", deploys, deployment("immutable"));
    const r = await http.call(
      "PATCH",
      `${deploys}/immutable`,
      {
        spec: {
          selector: { matchLabels: { app: "immutable", tier: "web" } },
          template: { metadata: { labels: { tier: "web" } } },
        },
      },
      "application/merge-patch+json",
    );
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual(["spec.selector"]);
  });
});
