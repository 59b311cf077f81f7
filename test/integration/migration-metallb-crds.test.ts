import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, eventWith, ingress, lb, merge, pools, startEnv, until, type Env, type SvcSpec } from "./controller-env.ts";
import { ipAddressPoolCrd, l2AdvertisementCrd } from "./metallb-crds.ts";

// A MetalLB 0.13+ cluster configured with CRDs, and the same pools written as a Lodestone ConfigMap: the
// controller must hand out the same addresses either way. Pools in the style of MetalLB's documentation
// (a general pool, one kept for explicit requests, one for a team's namespaces, one for labelled Services),
// written for this test.
const MLB = "metallb-system";
const apps = "apps";
const web = "web";

const ipPools: { name: string; spec: Record<string, unknown>; labels?: Record<string, string> }[] = [
  { name: "production", spec: { addresses: ["192.0.2.0/28", "192.0.2.64-192.0.2.66"], avoidBuggyIPs: true } },
  { name: "reserved", spec: { addresses: ["198.51.100.8/30"], autoAssign: false } },
  {
    name: "team-web",
    spec: {
      addresses: ["203.0.113.0/29"],
      serviceAllocation: { priority: 10, namespaceSelectors: [{ matchLabels: { team: "web" } }] },
    },
  },
  {
    name: "canary",
    spec: {
      addresses: ["203.0.113.16/30"],
      serviceAllocation: { priority: 5, serviceSelectors: [{ matchLabels: { track: "canary" } }] },
    },
  },
];

const equivalentConfigMap = `
- name: production
  addresses: [192.0.2.0/28, 192.0.2.64-192.0.2.66]
  avoidBuggyIPs: true
  allocationOrder: lowest
  serviceAllocation: {allowCrossNamespaceSharing: true}
- name: reserved
  addresses: [198.51.100.8/30]
  autoAssign: false
  allocationOrder: lowest
  serviceAllocation: {allowCrossNamespaceSharing: true}
- name: team-web
  addresses: [203.0.113.0/29]
  priority: 10
  allocationOrder: lowest
  serviceAllocation: {namespaceSelector: {matchLabels: {team: web}}, allowCrossNamespaceSharing: true}
- name: canary
  addresses: [203.0.113.16/30]
  priority: 5
  allocationOrder: lowest
  serviceAllocation: {serviceSelector: {matchLabels: {track: canary}}, allowCrossNamespaceSharing: true}
`;

const services: { namespace: string; name: string; s?: SvcSpec }[] = [
  { namespace: apps, name: "a1" },
  { namespace: apps, name: "a2" },
  { namespace: web, name: "w1" },
  { namespace: web, name: "w2", s: { labels: { track: "canary" } } },
  { namespace: apps, name: "r1", s: { annotations: { "metallb.universe.tf/address-pool": "reserved" } } },
  { namespace: apps, name: "c1", s: { labels: { track: "canary" } } },
  { namespace: apps, name: "a3" },
];

async function call(env: Env, method: string, path: string, body?: unknown, type = "application/json") {
  const res = await fetch(env.sandbox.url + path, {
    method,
    headers: { "content-type": type },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> };
}

const poolPath = `/apis/metallb.io/v1beta1/namespaces/${MLB}/ipaddresspools`;
const adPath = `/apis/metallb.io/v1beta1/namespaces/${MLB}/l2advertisements`;
const ipAddressPool = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: "metallb.io/v1beta1",
  kind: "IPAddressPool",
  metadata: { name, namespace: MLB },
  spec,
});

/** Creates the Services one at a time, each once the previous one has its address: the order fixes the result. */
async function allocateAll(env: Env): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const { namespace, name, s } of services) {
    await lb(env.core, namespace, name, s);
    out[`${namespace}/${name}`] = await until(`ingress of ${namespace}/${name}`, () =>
      ingress(env.core, namespace, name),
    );
  }
  return out;
}

let withConfigMap: Env;
let withCrds: Env;

async function labelWeb(env: Env): Promise<void> {
  await env.core.patchNamespace({ name: web, body: { metadata: { labels: { team: "web" } } } }, merge);
}

beforeAll(async () => {
  withConfigMap = await startEnv([apps, web]);
  withCrds = await startEnv([apps, web, MLB]);
  await labelWeb(withConfigMap);
  await labelWeb(withCrds);
}, 30_000);
afterAll(async () => {
  await withConfigMap?.stop();
  await withCrds?.stop();
});

describe("MetalLB's CRDs give the allocations of the equivalent ConfigMap", () => {
  it("allocates the same addresses, with the CRDs installed after the daemon started", async () => {
    await pools(withConfigMap.core, "pools", equivalentConfigMap);
    await withConfigMap.daemon();
    const expected = await allocateAll(withConfigMap);

    // The daemon starts before MetalLB's CRDs exist: its informers see 404s and keep looking.
    const d = await withCrds.daemon({ metallbNamespace: MLB, absentRetryMs: 100 });
    await until("leadership without the CRDs", () => (d.isLeader() ? true : undefined));
    for (const c of [ipAddressPoolCrd, l2AdvertisementCrd])
      expect((await call(withCrds, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c)).status).toBe(
        201,
      );
    for (const p of ipPools)
      expect((await call(withCrds, "POST", poolPath, ipAddressPool(p.name, p.spec))).status).toBe(201);
    const ad = { apiVersion: "metallb.io/v1beta1", kind: "L2Advertisement", metadata: { name: "all" }, spec: {} };
    expect((await call(withCrds, "POST", adPath, ad)).status).toBe(201);
    await until("CRD pools in force", () => (d.readiness().ok ? true : undefined));
    const got = await allocateAll(withCrds);
    expect(got).toEqual(expected);
    // The test data means something: the selectors and priorities chose these pools.
    expect(got["web/w1"]?.[0]).toMatch(/^203\.0\.113\./);
    expect(got["apps/c1"]?.[0]).toMatch(/^203\.0\.113\.1[6-9]$/);
    expect(got["apps/r1"]).toEqual(["198.51.100.8"]);

    // IPAddressPool.status counts what is handed out, within 1 s (MetalLB's status fields).
    const statusOf = async (name: string) => (await call(withCrds, "GET", `${poolPath}/${name}`)).body["status"];
    const started = Date.now();
    // production: 19 addresses, 192.0.2.0 avoided (avoidBuggyIPs: addresses ending in .0 or .255); a1-a3 from it.
    await until("production's status", async () =>
      JSON.stringify(await statusOf("production")) ===
      JSON.stringify({ assignedIPv4: 3, assignedIPv6: 0, availableIPv4: 15, availableIPv6: 0 })
        ? true
        : undefined,
    );
    expect(await statusOf("reserved")).toEqual({
      assignedIPv4: 1,
      assignedIPv6: 0,
      availableIPv4: 3,
      availableIPv6: 0,
    });
    await lb(withCrds.core, apps, "a4");
    await until("ingress of a4", () => ingress(withCrds.core, apps, "a4"));
    const changed = Date.now();
    await until(
      "production's status after a4",
      async () => ((await statusOf("production")) as { assignedIPv4?: number }).assignedIPv4 === 4 || undefined,
      1000,
    );
    expect(Date.now() - changed).toBeLessThan(1000);
    expect(Date.now() - started).toBeGreaterThan(0);
  }, 40_000);

  it("reports an invalid IPAddressPool on the object within 1 s, and a broken pool keeps its last good version", async () => {
    const started = Date.now();
    expect(
      (await call(withCrds, "POST", poolPath, ipAddressPool("broken", { addresses: ["192.0.2.300/24"] }))).status,
    ).toBe(201);
    const ev = await eventWith(withCrds.core, MLB, "broken", "ConfigInvalid", "spec.addresses[0]");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(ev.type).toBe("Warning");

    // Overlaps are settled as between ConfigMaps: by source name, the later one is left out ("spare" > "production").
    const overlapping = await call(withCrds, "POST", poolPath, ipAddressPool("spare", { addresses: ["192.0.2.8/29"] }));
    expect(overlapping.status).toBe(201);
    await eventWith(withCrds.core, MLB, "spare", "ConfigInvalid", "production");

    const patched = await call(
      withCrds,
      "PATCH",
      `${poolPath}/production`,
      { spec: { addresses: ["not-an-address"] } },
      "application/merge-patch+json",
    );
    expect(patched.status).toBe(200);
    await eventWith(withCrds.core, MLB, "production", "ConfigInvalid", "last good version");
    await lb(withCrds.core, apps, "after-break");
    const ips = await until("ingress of after-break", () => ingress(withCrds.core, apps, "after-break"));
    expect(ips[0]).toMatch(/^192\.0\.2\./);
  }, 20_000);
});

describe("an IPAddressPool CRD without the status fields (MetalLB before them)", () => {
  it.each([
    { desc: "no status subresource", subresource: false, looks: 1 },
    { desc: "a status subresource whose fields are pruned", subresource: true, looks: 0 },
  ])(
    "$desc: allocates from its pools and stops trying to write the status",
    async ({ subresource, looks }) => {
      const env = await startEnv([apps, MLB]);
      try {
        const old = structuredClone(ipAddressPoolCrd);
        const version = old.spec.versions[0]!;
        version.schema.openAPIV3Schema.properties = { spec: version.schema.openAPIV3Schema.properties.spec };
        if (!subresource) delete (version as { subresources?: unknown }).subresources;
        for (const c of [old, l2AdvertisementCrd])
          expect((await call(env, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c)).status).toBe(
            201,
          );
        expect((await call(env, "POST", poolPath, ipAddressPool("lan", { addresses: ["192.0.2.0/30"] }))).status).toBe(
          201,
        );
        const d = await env.daemon({ metallbNamespace: MLB, absentRetryMs: 100 });
        await until("leadership", () => (d.isLeader() ? true : undefined));
        await lb(env.core, apps, "s1");
        expect(await until("ingress of s1", () => ingress(env.core, apps, "s1"))).toEqual(["192.0.2.0"]);
        await new Promise((r) => setTimeout(r, 1200));
        // One try (404 without the subresource: then one look that the pool exists), then no more.
        const records = env.sandbox.audit.records();
        expect(records.filter((r) => r.resource === "ipaddresspools" && r.verb === "get").length).toBe(looks);
        expect(records.filter((r) => r.resource === "ipaddresspools/status").length).toBe(subresource ? 1 : 0);
        expect((await call(env, "GET", `${poolPath}/lan`)).body["status"]).toBeUndefined();
      } finally {
        await env.stop();
      }
    },
    20_000,
  );
});

void NS;
