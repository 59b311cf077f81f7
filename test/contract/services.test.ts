import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { meta, sandboxHttp, type Http } from "./support.ts";

let http: Http;
const ns = "services-contract";
const svcs = `/api/v1/namespaces/${ns}/services`;
const merge = "application/merge-patch+json";

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
});
afterAll(() => http.stop());

async function loadBalancer(name: string, ip: string): Promise<string> {
  const created = await http.call("POST", svcs, {
    metadata: { name },
    spec: { type: "LoadBalancer", ports: [{ port: 80 }], loadBalancerClass: "lodestone.dev/lb" },
  });
  expect(created.status).toBe(201);
  const r = await http.call(
    "PATCH",
    `${svcs}/${name}/status`,
    { status: { loadBalancer: { ingress: [{ ip }] } } },
    merge,
  );
  expect(r.status).toBe(200);
  return String(meta(r.body)["resourceVersion"]);
}

// pkg/registry/core/service, dropTypeDependentFields: "Clear the load-balancer status if it is no longer
// appropriate" — on every update through the object whose type is not LoadBalancer — and an unchanged
// loadBalancerClass goes with the type.
describe("a type change away from LoadBalancer (service strategy: dropTypeDependentFields)", () => {
  it.each([
    { desc: "merge patch", to: "ClusterIP" },
    { desc: "merge patch to NodePort", to: "NodePort" },
  ])("empties status.loadBalancer: $desc", async ({ to }) => {
    const name = `retype-${to.toLowerCase()}`;
    await loadBalancer(name, "192.0.2.1");
    const r = await http.call("PATCH", `${svcs}/${name}`, { spec: { type: to } }, merge);
    expect(r.status).toBe(200);
    expect((r.body["status"] as Record<string, unknown>)["loadBalancer"]).toEqual({});
    expect((r.body["spec"] as Record<string, unknown>)["loadBalancerClass"]).toBeUndefined();
    const read = await http.call("GET", `${svcs}/${name}`);
    expect(read.body["status"]).toEqual({ loadBalancer: {} });
  });

  it("keeps it on an update that leaves the type LoadBalancer", async () => {
    await loadBalancer("stays", "192.0.2.2");
    const r = await http.call("PATCH", `${svcs}/stays`, { metadata: { labels: { a: "b" } } }, merge);
    expect(r.body["status"]).toEqual({ loadBalancer: { ingress: [{ ip: "192.0.2.2", ipMode: "VIP" }] } });
  });
});

// pkg/registry/core/service, serviceStatusStrategy.PrepareForUpdate resets only spec: metadata of a /status write
// persists, all of it (the generic registry, rest.BeforeUpdate, keeps uid, name, creationTimestamp and the like).
describe("a /status write keeps every metadata change (service strategy: serviceStatusStrategy.PrepareForUpdate)", () => {
  it("merge patch: labels, annotations, finalizers and owner references", async () => {
    await loadBalancer("meta", "192.0.2.3");
    const owner = { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: "u-owner" };
    const r = await http.call(
      "PATCH",
      `${svcs}/meta/status`,
      {
        metadata: {
          labels: { l: "1" },
          annotations: { "lodestone.dev/pool": "lan" },
          finalizers: ["lodestone.dev/release"],
          ownerReferences: [owner],
          uid: "not-yours",
        },
        status: { loadBalancer: { ingress: [{ ip: "192.0.2.4" }] } },
      },
      merge,
    );
    expect(r.status).toBe(200);
    const m = meta((await http.call("GET", `${svcs}/meta`)).body);
    expect(m["labels"]).toEqual({ l: "1" });
    expect(m["annotations"]).toEqual({ "lodestone.dev/pool": "lan" });
    expect(m["finalizers"]).toEqual(["lodestone.dev/release"]);
    expect(m["ownerReferences"]).toEqual([owner]);
    expect(m["uid"]).not.toBe("not-yours");
  });

  it("PUT: a finalizer removed through /status is removed, and the deleted Service goes", async () => {
    const rv = await loadBalancer("fin", "192.0.2.5");
    const withFin = await http.call(
      "PATCH",
      `${svcs}/fin`,
      { metadata: { finalizers: ["x/y"], resourceVersion: rv } },
      merge,
    );
    expect(withFin.status).toBe(200);
    expect((await http.call("DELETE", `${svcs}/fin`)).status).toBe(200);
    const cur = (await http.call("GET", `${svcs}/fin`)).body;
    expect(meta(cur)["deletionTimestamp"]).toBeDefined();
    const put = await http.call("PUT", `${svcs}/fin/status`, { ...cur, metadata: { ...meta(cur), finalizers: [] } });
    expect(put.status).toBe(200);
    expect((await http.call("GET", `${svcs}/fin`)).status).toBe(404);
  });

  it("spec in a /status write is ignored", async () => {
    await loadBalancer("spec", "192.0.2.6");
    const r = await http.call("PATCH", `${svcs}/spec/status`, { spec: { type: "ClusterIP" } }, merge);
    expect(r.status).toBe(200);
    expect((r.body["spec"] as Record<string, unknown>)["type"]).toBe("LoadBalancer");
  });
});
