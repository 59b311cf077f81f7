import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubeClient, loadKubeConfig, type KubeConnection } from "../../src/kube/client.ts";
import { createLeaderElector, microTime } from "../../src/kube/lease.ts";
import { createLeaseRenewer } from "../../src/kube/speaker-resources.ts";
import { speakerLeaseName } from "../../src/core/well-known.ts";
import { causeFields, meta, sandboxHttp, type Http } from "./support.ts";

let http: Http;
let client: KubeConnection;
const ns = "leases-contract";
const leases = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
const MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
  client = createKubeClient(await loadKubeConfig(http.sandbox.kubeconfigPath, {}));
});
afterAll(async () => {
  await client.close();
  await http.stop();
});

const lease = (name: string, spec: Record<string, unknown>, rv?: string) => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name, ...(rv === undefined ? {} : { resourceVersion: rv }) },
  spec: { holderIdentity: "a", leaseDurationSeconds: 15, ...spec },
});

// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1, MicroTime.UnmarshalJSON (RFC3339Micro): decoding fails, 400.
describe("renewTime and acquireTime are MicroTime (meta/v1: MicroTime.UnmarshalJSON)", () => {
  it.each([
    { desc: "renewTime in seconds", spec: { renewTime: "2026-01-01T00:00:00Z" } },
    { desc: "acquireTime in milliseconds", spec: { acquireTime: "2026-01-01T00:00:00.000Z" } },
    { desc: "renewTime as a number", spec: { renewTime: 1767225600 } },
  ])("400 for $desc", async ({ spec }) => {
    const r = await http.call("POST", leases, lease("bad-time", spec));
    expect(r.status).toBe(400);
  });

  it("201 for microseconds", async () => {
    const t = "2026-01-01T00:00:00.000000Z";
    expect((await http.call("POST", leases, lease("good-time", { renewTime: t, acquireTime: t }))).status).toBe(201);
  });
});

// pkg/apis/coordination/validation, ValidateLeaseSpec.
describe("Lease spec validation (coordination validation: ValidateLeaseSpec)", () => {
  it.each([
    { desc: "leaseDurationSeconds 0", spec: { leaseDurationSeconds: 0 }, field: "spec.leaseDurationSeconds" },
    { desc: "leaseDurationSeconds -1", spec: { leaseDurationSeconds: -1 }, field: "spec.leaseDurationSeconds" },
    { desc: "leaseTransitions -1", spec: { leaseTransitions: -1 }, field: "spec.leaseTransitions" },
  ])("422 for $desc", async ({ spec }) => {
    const r = await http.call("POST", leases, lease("bad-spec", spec));
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual([
      Object.keys(spec)[0] === "leaseTransitions" ? "spec.leaseTransitions" : "spec.leaseDurationSeconds",
    ]);
  });

  it("leaseTransitions 0 is fine", async () => {
    expect((await http.call("POST", leases, lease("zero", { leaseTransitions: 0 }))).status).toBe(201);
  });
});

// pkg/registry/coordination/lease, strategy: AllowCreateOnUpdate true, AllowUnconditionalUpdate false; the
// generic registry (staging/src/k8s.io/apiserver/pkg/registry/generic/registry, Store.Update) then creates on a
// PUT of a missing Lease and refuses a PUT without resourceVersion with 422.
describe("PUT of a Lease (lease strategy; generic registry: Store.Update)", () => {
  it("creates a missing Lease: 201", async () => {
    const r = await http.call("PUT", `${leases}/put-new`, lease("put-new", {}));
    expect(r.status).toBe(201);
    expect((await http.call("GET", `${leases}/put-new`)).status).toBe(200);
  });

  it("refuses an update without metadata.resourceVersion: 422", async () => {
    await http.call("POST", leases, lease("put-rv", {}));
    const r = await http.call("PUT", `${leases}/put-rv`, lease("put-rv", { holderIdentity: "b" }));
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual(["metadata.resourceVersion"]);
    const cur = await http.call("GET", `${leases}/put-rv`);
    const ok = await http.call(
      "PUT",
      `${leases}/put-rv`,
      lease("put-rv", { holderIdentity: "b" }, String(meta(cur.body)["resourceVersion"])),
    );
    expect(ok.status).toBe(200);
  });
});

// staging/src/k8s.io/apimachinery/pkg/api/validation, ValidateAnnotations: keys and values together at most
// TotalAnnotationSizeLimitB (256 KiB), counted in bytes, for every kind (a Lease here, which carries the
// speakers' reports of what they announce).
describe("annotations total at most 256 KiB (apimachinery validation: ValidateAnnotations)", () => {
  const LIMIT = 256 * 1024;
  const withAnnotations = (name: string, annotations: Record<string, string>) => ({
    ...lease(name, {}),
    metadata: { name, annotations },
  });
  it.each([
    { desc: "one value of the limit less its key", annotations: { a: "b".repeat(LIMIT - 1) }, status: 201 },
    {
      desc: "two values of half the limit each",
      annotations: { a: "b".repeat(LIMIT / 2 - 1), c: "d".repeat(LIMIT / 2 - 1) },
      status: 201,
    },
    { desc: "one byte over", annotations: { a: "b".repeat(LIMIT) }, status: 422 },
    // Bytes, not characters: 87,382 three-byte characters are 262,146 bytes.
    { desc: "multi-byte characters over in bytes", annotations: { a: "€".repeat(87_382) }, status: 422 },
  ])("$desc: $status", async ({ annotations, status }) => {
    const name = `ann-${Math.random().toString(36).slice(2, 8)}`;
    const r = await http.call("POST", leases, withAnnotations(name, annotations));
    expect(r.status).toBe(status);
    if (status === 422) {
      expect(causeFields(r.body)).toEqual(["metadata.annotations"]);
      expect(String(r.body["message"])).toContain("Too long: must have at most 262144 bytes");
    }
  });

  it("refuses an update that grows the annotations over the limit, and keeps the object", async () => {
    const created = await http.call("POST", leases, withAnnotations("ann-grow", { a: "small" }));
    expect(created.status).toBe(201);
    const r = await http.call(
      "PATCH",
      `${leases}/ann-grow`,
      { metadata: { annotations: { a: "b".repeat(LIMIT) } } },
      "application/merge-patch+json",
    );
    expect(r.status).toBe(422);
    expect(meta((await http.call("GET", `${leases}/ann-grow`)).body)["annotations"]).toEqual({ a: "small" });
  });
});

describe("the daemon's own Lease writes pass these rules", () => {
  it("the controller's elector acquires, renews and hands back with MicroTime", async () => {
    let leading = false;
    const elector = createLeaderElector({
      client,
      namespace: ns,
      name: "lodestone-controller",
      identity: "node-1_1",
      timings: { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100 },
      logger: pino({ level: "silent" }),
      onStartedLeading: () => (leading = true),
      onStoppedLeading: () => (leading = false),
    });
    elector.start();
    const deadline = Date.now() + 5000;
    while (!leading && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(leading).toBe(true);
    await new Promise((r) => setTimeout(r, 300)); // a few renews
    await elector.stop();
    const got = await http.call("GET", `${leases}/lodestone-controller`);
    const spec = got.body["spec"] as Record<string, unknown>;
    expect(spec["renewTime"]).toMatch(MICRO);
    expect(spec["acquireTime"]).toMatch(MICRO);
    expect(spec["holderIdentity"]).toBe("");
    // The first read finds no Lease (404); every write after it is accepted.
    const writes = http.sandbox.audit
      .records({ resource: "leases", userAgent: "lodestone" })
      .filter((w) => w.verb === "create" || w.verb === "update");
    expect(writes.filter((w) => w.verb === "update").length).toBeGreaterThan(1);
    expect(writes.map((w) => w.code).filter((c) => c >= 400)).toEqual([]);
  });

  it("the speaker's membership Lease renewer, with MicroTime", async () => {
    const renew = createLeaseRenewer(client, ns, "node-1", 15);
    expect(await renew({}, 2000)).toBeUndefined();
    expect(await renew({}, 2000)).toBeUndefined();
    const got = await http.call("GET", `${leases}/${speakerLeaseName("node-1")}`);
    const spec = got.body["spec"] as Record<string, unknown>;
    expect(spec["renewTime"]).toMatch(MICRO);
    expect(spec["acquireTime"]).toMatch(MICRO);
    expect(microTime(new Date("2026-01-01T00:00:00Z"))).toBe("2026-01-01T00:00:00.000000Z");
  });
});
