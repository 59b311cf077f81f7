import { describe, expect, it } from "vitest";
import pino from "pino";
import type { KubeClient, KubeRequest, KubeResponse } from "../../src/kube/client.ts";
import { createServiceStatusWriter } from "../../src/kube/service-status-writer.ts";
import {
  EVENT_LIMITS,
  createEventRecorder,
  eventMessage,
  eventNameBase,
  reportingInstanceOf,
} from "../../src/kube/events.ts";
import { utf8Length } from "../../src/core/utf8.ts";
import {
  projectConfigMap,
  projectEndpointSlice,
  projectService,
  projectWatchedService,
} from "../../src/kube/objects.ts";
import { parseIp } from "../../src/core/ip.ts";

const logger = pino({ level: "silent" });

/** Answers each request with the next scripted response (200 {} when the script is empty) and records it. */
function scripted(answers: KubeResponse[]): { client: KubeClient; seen: KubeRequest[] } {
  const seen: KubeRequest[] = [];
  const client: KubeClient = {
    request: (req) => {
      seen.push(req);
      return Promise.resolve(answers.shift() ?? { status: 200, body: { metadata: { resourceVersion: "9" } } });
    },
    watch: () => Promise.reject(new Error("unused")),
    close: () => Promise.resolve(),
  };
  return { client, seen };
}

const ref = { namespace: "team-a", name: "web", resourceVersion: "41" };
const ips = [parseIp("2001:db8::5")!, parseIp("192.0.2.10")!];

describe("status writer", () => {
  it("patches /status with the IPs (IPv4 first) conditional on the resourceVersion it saw", async () => {
    const { client, seen } = scripted([]);
    const out = await createServiceStatusWriter(client).writeIngress(ref, ips);
    expect(out).toEqual({ kind: "written" });
    expect(seen[0]).toMatchObject({
      discardSuccessBody: true,
      method: "PATCH",
      path: "/api/v1/namespaces/team-a/services/web/status",
      body: {
        metadata: { resourceVersion: "41" },
        status: { loadBalancer: { ingress: [{ ip: "192.0.2.10" }, { ip: "2001:db8::5" }] } },
      },
    });
  });

  it("removes the pool annotation with a cleared address when asked (null)", async () => {
    const { client, seen } = scripted([]);
    await createServiceStatusWriter(client).writeIngress(ref, [], null);
    expect(seen[0]?.body).toEqual({
      metadata: { resourceVersion: "41", annotations: { "lodestone.dev/pool": null } },
      status: { loadBalancer: { ingress: null } },
    });
  });

  it("writes the pool annotation in the same /status write when asked", async () => {
    const { client, seen } = scripted([]);
    await createServiceStatusWriter(client).writeIngress(ref, ips, "lan");
    expect(seen[0]).toMatchObject({
      path: "/api/v1/namespaces/team-a/services/web/status",
      body: { metadata: { resourceVersion: "41", annotations: { "lodestone.dev/pool": "lan" } } },
    });
  });

  it("clears the ingress list with a null (a merge patch of {} would keep it)", async () => {
    const { client, seen } = scripted([]);
    await createServiceStatusWriter(client).writeIngress(ref, []);
    expect(seen[0]?.body).toMatchObject({ status: { loadBalancer: { ingress: null } } });
  });

  it.each([
    {
      desc: "409 re-reads the Service",
      answers: [
        { status: 409, body: {} },
        { status: 200, body: { metadata: { name: "web" } } },
      ],
      want: { kind: "conflict", current: { metadata: { name: "web" } } },
      requests: 2,
    },
    {
      desc: "409 then gone",
      answers: [
        { status: 409, body: {} },
        { status: 404, body: {} },
      ],
      want: { kind: "gone" },
      requests: 2,
    },
    { desc: "404 is gone", answers: [{ status: 404, body: {} }], want: { kind: "gone" }, requests: 1 },
    {
      desc: "429 retries after Retry-After",
      answers: [{ status: 429, body: { message: "slow down" }, retryAfterMs: 2000 }],
      want: { kind: "retry", afterMs: 2000, reason: "429 slow down" },
      requests: 1,
    },
    {
      desc: "500 retries",
      answers: [{ status: 500, body: { message: "etcd" } }],
      want: { kind: "retry", afterMs: undefined, reason: "500 etcd" },
      requests: 1,
    },
    {
      desc: "no connection retries",
      answers: [{ status: 0, body: { message: "ECONNREFUSED" } }],
      want: { kind: "retry", afterMs: undefined, reason: "0 ECONNREFUSED" },
      requests: 1,
    },
    {
      desc: "422 is a failure, not retried",
      answers: [{ status: 422, body: { message: "invalid ip" } }],
      want: { kind: "failed", reason: "422 invalid ip" },
      requests: 1,
    },
  ])("$desc", async ({ answers, want, requests }) => {
    const { client, seen } = scripted(answers as KubeResponse[]);
    expect(await createServiceStatusWriter(client).writeIngress(ref, ips)).toEqual(want);
    expect(seen).toHaveLength(requests);
  });

  it("sets and removes the pool annotation on the object itself", async () => {
    const { client, seen } = scripted([]);
    const w = createServiceStatusWriter(client);
    await w.writePool(ref, "lan");
    await w.writePool(ref, undefined);
    expect(seen.map((r) => [r.path, r.body])).toEqual([
      ["/api/v1/namespaces/team-a/services/web", { metadata: { annotations: { "lodestone.dev/pool": "lan" } } }],
      ["/api/v1/namespaces/team-a/services/web", { metadata: { annotations: { "lodestone.dev/pool": null } } }],
    ]);
  });
});

describe("event recorder", () => {
  const svc = { kind: "Service" as const, namespace: "team-a", name: "web", uid: "u-1" };
  it("creates an Event on the object and aggregates an identical repeat into count 2", async () => {
    const { client, seen } = scripted([{ status: 201, body: {} }]);
    const rec = createEventRecorder({
      client,
      logger,
      component: "lodestone-controller",
      instance: "node-1",
      now: () => new Date("2026-01-01T00:00:00Z"),
    });
    rec.record(svc, "Normal", "IPAllocated", "Assigned IP 192.0.2.10 from pool lan");
    await rec.flush();
    rec.record(svc, "Normal", "IPAllocated", "Assigned IP 192.0.2.10 from pool lan");
    rec.record(svc, "Warning", "AllocationFailed", "pool exhausted");
    await rec.flush();
    expect(seen.map((r) => r.method)).toEqual(["POST", "PATCH", "POST"]);
    expect(seen[0]?.body).toMatchObject({
      involvedObject: { kind: "Service", namespace: "team-a", name: "web", uid: "u-1" },
      type: "Normal",
      reason: "IPAllocated",
      count: 1,
      source: { component: "lodestone-controller" },
    });
    expect(seen[1]?.body).toMatchObject({ count: 2 });
    expect(seen[1]?.path).toMatch(/^\/api\/v1\/namespaces\/team-a\/events\/web\./);
  });

  // kube-apiserver refuses, with 422, an Event with eventTime whose message exceeds 1024 bytes or whose
  // reportingInstance exceeds 128 (pkg/apis/core/validation, legacyValidateEvent); a node name may have 253.
  it("keeps message and reportingInstance within the API's limits, whatever it is given", async () => {
    const { client, seen } = scripted([{ status: 201, body: {} }]);
    const node = `${"n".repeat(62)}.${"o".repeat(62)}.${"d".repeat(62)}.${"e".repeat(61)}`;
    expect(node).toHaveLength(250);
    const rec = createEventRecorder({ client, logger, component: "lodestone-speaker", instance: `${node}_4242` });
    rec.record(svc, "Warning", "NotAnnounced", "é".repeat(2000));
    await rec.flush();
    const body = seen[0]?.body as { message: string; reportingInstance: string };
    expect(utf8Length(body.message)).toBeLessThanOrEqual(EVENT_LIMITS.message);
    expect(body.message.endsWith("é…")).toBe(true);
    expect(utf8Length(body.reportingInstance)).toBeLessThanOrEqual(EVENT_LIMITS.reportingInstance);
  });

  it.each([
    { desc: "a short name is kept", name: "worker-1", kept: true },
    { desc: "128 bytes are kept", name: "w".repeat(128), kept: true },
    { desc: "129 are shortened", name: "w".repeat(129), kept: false },
  ])("reportingInstance: $desc", ({ name, kept }) => {
    const r = reportingInstanceOf(name);
    expect(r === name).toBe(kept);
    expect(utf8Length(r)).toBeLessThanOrEqual(128);
  });

  it.each([
    { desc: "a short name is kept", name: "pools", want: "pools" },
    { desc: "237 characters are kept", name: "a".repeat(237), want: "a".repeat(237) },
    { desc: "a 253-character name is cut to 237", name: "b".repeat(253), want: "b".repeat(237) },
    {
      desc: "a cut never ends in a dot or dash",
      name: `${"c".repeat(235)}.-d${"e".repeat(20)}`,
      want: "c".repeat(235),
    },
  ])("an Event's name: $desc, so with its suffix it stays within 253 characters", ({ name, want }) => {
    const base = eventNameBase(name);
    expect(base).toBe(want);
    expect(`${base}.${(Date.now() * 1000 + 999).toString(16)}`.length).toBeLessThanOrEqual(253);
  });

  it("shortens two long names with the same start to two different instances", () => {
    const a = `${"x".repeat(200)}-a`;
    const b = `${"x".repeat(200)}-b`;
    expect(reportingInstanceOf(a)).not.toBe(reportingInstanceOf(b));
    expect(eventMessage("short")).toBe("short");
  });

  it("logs a refused Event as a warning, with what was lost", async () => {
    const { client } = scripted([{ status: 422, body: { kind: "Status", message: "Event is invalid" } }]);
    const lines: { level: number; msg: string; message?: string }[] = [];
    const capture = pino({ level: "debug" }, { write: (l: string) => lines.push(JSON.parse(l) as never) });
    const rec = createEventRecorder({ client, logger: capture, component: "c", instance: "i" });
    rec.record(svc, "Warning", "AllocationFailed", "pool exhausted");
    await rec.flush();
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 40, msg: "Event refused by the API server", message: "pool exhausted" }),
    );
  });

  it("drops beyond its queue bound instead of growing without limit", async () => {
    const { client } = scripted([]);
    const rec = createEventRecorder({
      client,
      logger,
      component: "c",
      instance: "i",
      concurrency: 1,
      maxQueued: 3,
      backlog: 3,
    });
    for (let i = 0; i < 10; i++) rec.record(svc, "Normal", "IPReleased", `m${i}`);
    await rec.flush();
    expect(rec.dropped()).toBe(6);
  });

  it("reports progress while its writes finish, and none once they have hung for a second", async () => {
    let release: (() => void) | undefined;
    const slow: KubeClient = {
      request: () => new Promise<KubeResponse>((r) => (release = () => r({ status: 201, body: {} }))),
      watch: () => Promise.reject(new Error("unused")),
      close: () => Promise.resolve(),
    };
    let t = 0;
    const rec = createEventRecorder({ client: slow, logger, component: "c", instance: "i", clock: () => t });
    expect(rec.progressing()).toBe(true);
    rec.record(svc, "Normal", "IPAllocated", "Assigned IP 192.0.2.10 from pool lan");
    t = 999;
    expect(rec.progressing()).toBe(true);
    t = 1_000;
    expect(rec.progressing()).toBe(false);
    release?.();
    await rec.flush();
    expect(rec.progressing()).toBe(true);
  });

  it("holds new writes while its holdWhile says so and sends them on resume (status writes go first)", async () => {
    const { client, seen } = scripted([]);
    let busy = true;
    const rec = createEventRecorder({ client, logger, component: "c", instance: "i", holdWhile: () => busy });
    rec.record(svc, "Normal", "IPAllocated", "Assigned IP 192.0.2.10 from pool lan");
    rec.record(svc, "Normal", "IPReleased", "Released 192.0.2.10");
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toHaveLength(0);
    rec.resume();
    expect(seen).toHaveLength(0);
    busy = false;
    rec.resume();
    await rec.flush();
    expect(seen.map((r) => (r.body as { reason: string }).reason)).toEqual(["IPAllocated", "IPReleased"]);
  });

  it("runs up to four times its concurrency while more Events wait than its backlog mark", () => {
    const seen: KubeRequest[] = [];
    const stuck: KubeClient = {
      request: (req) => {
        seen.push(req);
        return new Promise<KubeResponse>(() => undefined);
      },
      watch: () => Promise.reject(new Error("unused")),
      close: () => Promise.resolve(),
    };
    const rec = createEventRecorder({
      client: stuck,
      logger,
      component: "c",
      instance: "i",
      concurrency: 1,
      backlog: 3,
    });
    for (let i = 0; i < 3; i++) rec.record(svc, "Normal", "IPReleased", `m${i}`);
    expect(seen).toHaveLength(1);
    for (let i = 3; i < 10; i++) rec.record(svc, "Normal", "IPReleased", `m${i}`);
    expect(seen).toHaveLength(4);
    expect(rec.dropped()).toBe(0);
  });

  it("never drops an Event for holding it: past its backlog mark it sends whatever holdWhile says", async () => {
    const { client, seen } = scripted([]);
    const rec = createEventRecorder({
      client,
      logger,
      component: "c",
      instance: "i",
      maxQueued: 4,
      holdWhile: () => true,
    });
    for (let i = 0; i < 4; i++) rec.record(svc, "Normal", "IPReleased", `m${i}`);
    await new Promise((r) => setTimeout(r, 10));
    // The backlog mark is half of maxQueued here (2): at 3 waiting one goes out each time; two stay held.
    expect(seen.map((r) => (r.body as { message: string }).message)).toEqual(["m0", "m1"]);
    expect(rec.dropped()).toBe(0);
  });

  it("asks the client not to parse the Event it created (nobody reads it)", async () => {
    const { client, seen } = scripted([{ status: 201, body: {} }]);
    const rec = createEventRecorder({ client, logger, component: "c", instance: "i" });
    rec.record(svc, "Normal", "IPAllocated", "x");
    await rec.flush();
    rec.record(svc, "Normal", "IPAllocated", "x");
    await rec.flush();
    expect(seen.map((r) => [r.method, r.discardSuccessBody])).toEqual([
      ["POST", true],
      ["PATCH", true],
    ]);
  });
});

describe("slim projections", () => {
  it.each([
    { desc: "a LoadBalancer", spec: { type: "LoadBalancer" }, status: {}, kept: true },
    { desc: "a ClusterIP Service", spec: { type: "ClusterIP" }, status: {}, kept: false },
    {
      desc: "a NodePort with opt-in externalIPs",
      spec: { type: "NodePort", externalIPs: ["192.0.2.5"] },
      status: {},
      kept: true,
    },
    {
      desc: "a ClusterIP Service whose ingress is left to clear",
      spec: { type: "ClusterIP" },
      status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } },
      kept: true,
    },
    {
      // kube-apiserver has emptied its status (dropTypeDependentFields): the annotation is what is left to remove.
      desc: "a former LoadBalancer with our pool annotation",
      spec: { type: "ClusterIP" },
      status: { loadBalancer: {} },
      annotations: { "lodestone.dev/pool": "lan" },
      kept: true,
    },
  ])("the shared Service cache keeps $desc: $kept", ({ spec, status, kept, ...rest }) => {
    const annotations = "annotations" in rest ? rest.annotations : undefined;
    const raw = { metadata: { namespace: "a", name: "s", resourceVersion: "1", annotations }, spec, status };
    expect(projectWatchedService(raw) !== undefined).toBe(kept);
  });

  it("keep only what Lodestone reads", () => {
    const s = projectService({
      metadata: {
        namespace: "a",
        name: "web",
        uid: "u",
        resourceVersion: "3",
        labels: { app: "web" },
        annotations: { "lodestone.dev/address-pool": "lan", "kubectl.kubernetes.io/last-applied-configuration": "{…}" },
        managedFields: [{ manager: "kubectl" }],
      },
      spec: {
        type: "LoadBalancer",
        ipFamilies: ["IPv4"],
        ports: [{ port: 80, protocol: "TCP", targetPort: 8080 }],
        selector: { app: "web" },
      },
      status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }, { hostname: "x" }] } },
    });
    expect(s).toMatchObject({
      key: "a/web",
      type: "LoadBalancer",
      annotations: { "lodestone.dev/address-pool": "lan" },
      ingress: ["192.0.2.1"],
      ports: [{ port: 80, protocol: "TCP" }],
    });
    expect(Object.keys(s!.annotations)).toHaveLength(1);
    expect(
      projectConfigMap({ metadata: { namespace: "l", name: "p" }, data: { "pools.yaml": "- x", other: "y" } })?.data,
    ).toEqual({ "pools.yaml": "- x" });
    expect(
      projectEndpointSlice({
        metadata: { namespace: "a", name: "web-1", labels: { "kubernetes.io/service-name": "web" } },
        endpoints: [
          { nodeName: "n2" },
          { nodeName: "n1", conditions: { ready: true } },
          { nodeName: "n3", conditions: { ready: false } },
        ],
      }),
    ).toMatchObject({ service: "web", readyNodes: ["n1", "n2"] });
  });
});
