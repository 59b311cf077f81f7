import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSandbox, type Sandbox } from "../../src/sandbox/index.ts";

let sandbox: Sandbox;
const ns = `sbx-api-${process.pid}`;

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<Reply> {
  const res = await fetch(`${sandbox.url}${path}`, {
    method,
    headers: { "content-type": contentType },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const svc = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, labels: { app: name } },
  spec: { type: "LoadBalancer", ports: [{ port: 80 }], ...extra },
});
const services = `/api/v1/namespaces/${ns}/services`;

/** Reads watch events until `n` arrived or the stream ended; bounded by `ms`. */
async function watch(path: string, n: number, ms = 3000): Promise<{ type: string; object: Record<string, unknown> }[]> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  const events: { type: string; object: Record<string, unknown> }[] = [];
  try {
    const res = await fetch(`${sandbox.url}${path}`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    let buf = "";
    while (events.length < n) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)) as { type: string; object: Record<string, unknown> });
        buf = buf.slice(i + 1);
      }
    }
    ctl.abort();
  } catch (err: unknown) {
    if (!(err instanceof Error && err.name === "AbortError")) throw err;
  } finally {
    clearTimeout(timer);
  }
  return events;
}

const rvOf = (o: Record<string, unknown>): string =>
  String((o["metadata"] as Record<string, unknown>)["resourceVersion"]);

beforeAll(async () => {
  sandbox = await startSandbox({ historySize: 20 });
  expect((await call("POST", "/api/v1/namespaces", { metadata: { name: ns } })).status).toBe(201);
});

afterAll(async () => {
  await sandbox.stop();
});

describe("sandbox API: bad requests get the real server's codes and reasons", () => {
  it.each([
    { desc: "malformed JSON", method: "POST", path: services, body: "{nope", status: 400, reason: "BadRequest" },
    {
      desc: "wrong kind",
      method: "POST",
      path: services,
      body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } },
      status: 400,
      reason: "BadRequest",
    },
    {
      desc: "missing name",
      method: "POST",
      path: services,
      body: { spec: { ports: [{ port: 1 }] } },
      status: 422,
      reason: "Invalid",
    },
    {
      desc: "Service without ports",
      method: "POST",
      path: services,
      body: { metadata: { name: "noports" }, spec: {} },
      status: 422,
      reason: "Invalid",
    },
    {
      desc: "bad label selector",
      method: "GET",
      path: `${services}?labelSelector=a%20in%20(`,
      status: 400,
      reason: "BadRequest",
    },
    {
      desc: "unsupported field selector",
      method: "GET",
      path: `${services}?fieldSelector=spec.nope%3Dx`,
      status: 400,
      reason: "BadRequest",
    },
    { desc: "unknown resource", method: "GET", path: "/api/v1/frobnicators", status: 404, reason: "NotFound" },
    { desc: "unknown group", method: "GET", path: "/apis/nope.example.com/v1/things", status: 404, reason: "NotFound" },
    { desc: "missing object", method: "GET", path: `${services}/nope`, status: 404, reason: "NotFound" },
    {
      desc: "missing namespace",
      method: "POST",
      path: "/api/v1/namespaces/nope-nope/configmaps",
      body: { metadata: { name: "x" } },
      status: 404,
      reason: "NotFound",
    },
    {
      desc: "name mismatch on PUT",
      method: "PUT",
      path: `${services}/a`,
      body: { metadata: { name: "b" } },
      status: 400,
      reason: "BadRequest",
    },
    {
      desc: "patch with unknown type",
      method: "PATCH",
      path: "/api/v1/namespaces/default/services/kubernetes",
      body: {},
      status: 415,
      reason: "UnsupportedMediaType",
    },
    {
      desc: "POST on a named object",
      method: "POST",
      path: `${services}/x`,
      body: {},
      status: 405,
      reason: "MethodNotAllowed",
    },
  ])("$desc -> $status $reason", async ({ method, path, body, status, reason }) => {
    const r = await call(method, path, body);
    expect(r.status).toBe(status);
    expect(r.body["kind"]).toBe("Status");
    expect(r.body["reason"]).toBe(reason);
    expect(r.body["code"]).toBe(status);
  });

  it("reports 422 causes field by field", async () => {
    const r = await call("POST", services, { metadata: { name: "Bad_Name" }, spec: { type: "Nope", ports: [] } });
    expect(r.status).toBe(422);
    const causes = (r.body["details"] as { causes: { field: string }[] }).causes.map((c) => c.field);
    expect(causes).toEqual(["metadata.name", "spec.type"]);
  });

  it("survives garbage: huge bodies, binary, odd paths", async () => {
    expect((await call("POST", services, "\u0000\u0001\u0002")).status).toBe(400);
    expect((await call("POST", services, "x".repeat(4 * 1024 * 1024))).status).toBe(413);
    expect((await call("GET", "/api/v1/namespaces/%E0%A4%A/services/x")).status).toBeGreaterThanOrEqual(400);
    expect((await call("GET", "/version")).status).toBe(200);
  });
});

describe("sandbox API: Services", () => {
  it("defaults dual-stack on request and refuses changes to loadBalancerClass", async () => {
    const r = await call(
      "POST",
      services,
      svc("dual", { ipFamilyPolicy: "RequireDualStack", loadBalancerClass: "lodestone.dev/lb" }),
    );
    expect(r.status).toBe(201);
    const spec = r.body["spec"] as Record<string, unknown>;
    expect(spec["ipFamilies"]).toEqual(["IPv4", "IPv6"]);
    expect((spec["clusterIPs"] as string[])[1]).toMatch(/^fd00:10:96::/);
    const p = await call(
      "PATCH",
      `${services}/dual`,
      { spec: { loadBalancerClass: "other/lb" } },
      "application/merge-patch+json",
    );
    expect(p.status).toBe(422);
    expect(String(p.body["message"])).toContain("spec.loadBalancerClass");
  });

  it.each([
    { desc: "not an IP", ingress: [{ ip: "300.1.1.1" }], status: 422 },
    { desc: "hostname that is an IP", ingress: [{ hostname: "192.0.2.1" }], status: 422 },
    { desc: "ipMode without ip", ingress: [{ hostname: "a.example", ipMode: "VIP" }], status: 422 },
    { desc: "valid IPv6", ingress: [{ ip: "2001:db8::1" }], status: 200 },
  ])("validates status.loadBalancer.ingress: $desc -> $status", async ({ ingress, status }) => {
    const r = await call(
      "PATCH",
      `${services}/dual/status`,
      { status: { loadBalancer: { ingress } } },
      "application/merge-patch+json",
    );
    expect(r.status).toBe(status);
  });

  it("a /status write changes status and metadata but never spec, as kube-apiserver's Service status strategy", async () => {
    const before = await call("GET", `${services}/dual`);
    const r = await call(
      "PATCH",
      `${services}/dual/status`,
      {
        metadata: { annotations: { "example.com/note": "from status" } },
        spec: { type: "NodePort" },
        status: { loadBalancer: { ingress: [{ ip: "192.0.2.77" }] } },
      },
      "application/merge-patch+json",
    );
    expect(r.status).toBe(200);
    const after = await call("GET", `${services}/dual`);
    const m = after.body["metadata"] as { annotations?: Record<string, string>; labels?: Record<string, string> };
    expect(m.annotations?.["example.com/note"]).toBe("from status");
    expect(m.labels).toEqual((before.body["metadata"] as { labels?: unknown }).labels);
    expect((after.body["spec"] as { type: string }).type).toBe((before.body["spec"] as { type: string }).type);
    expect(after.body["status"]).toEqual({ loadBalancer: { ingress: [{ ip: "192.0.2.77", ipMode: "VIP" }] } });
    // A null removes the annotation, as a merge patch of the object would.
    const removed = await call(
      "PATCH",
      `${services}/dual/status`,
      { metadata: { annotations: { "example.com/note": null } }, status: { loadBalancer: { ingress: null } } },
      "application/merge-patch+json",
    );
    expect(removed.status).toBe(200);
    const m2 = removed.body["metadata"] as { annotations?: Record<string, string> };
    expect(m2.annotations?.["example.com/note"]).toBeUndefined();
    const invalid = await call(
      "PATCH",
      `${services}/dual/status`,
      { metadata: { annotations: { "example.com/count": 5 } } },
      "application/merge-patch+json",
    );
    expect(invalid.status).toBe(422);
    // Metadata alone is a change too (the status as it was): kept, under a new resourceVersion.
    const rv = (removed.body["metadata"] as { resourceVersion: string }).resourceVersion;
    const metaOnly = await call(
      "PATCH",
      `${services}/dual/status`,
      { metadata: { annotations: { "example.com/note": "metadata only" } } },
      "application/merge-patch+json",
    );
    expect(metaOnly.status).toBe(200);
    const m3 = (await call("GET", `${services}/dual`)).body["metadata"] as {
      annotations?: Record<string, string>;
      resourceVersion: string;
    };
    expect(m3.annotations?.["example.com/note"]).toBe("metadata only");
    expect(m3.resourceVersion).not.toBe(rv);
    // Annotations that are not a map are refused, as on the object, not taken for the removal of every one of them.
    const notMap = await call(
      "PATCH",
      `${services}/dual/status`,
      { metadata: { annotations: "x" }, status: { loadBalancer: { ingress: [{ ip: "192.0.2.78" }] } } },
      "application/merge-patch+json",
    );
    expect(notMap.status).toBe(422);
    const m4 = (await call("GET", `${services}/dual`)).body["metadata"] as { annotations?: Record<string, string> };
    expect(m4.annotations?.["example.com/note"]).toBe("metadata only");
  });

  it("takes an update that reorders keys for no change, as kube-apiserver does (its encoding sorts map keys)", async () => {
    const created = await call("POST", services, {
      ...svc("order"),
      metadata: { name: "order", labels: { app: "order", tier: "web" }, annotations: { a: "1", b: "2" } },
    });
    expect(created.status).toBe(201);
    const m = created.body["metadata"] as Record<string, unknown> & { resourceVersion: string };
    const reversed = (o: Record<string, unknown>): Record<string, unknown> =>
      Object.fromEntries(Object.entries(o).reverse());
    const put = await call("PUT", `${services}/order`, {
      ...reversed(created.body),
      metadata: {
        ...reversed(m),
        labels: { tier: "web", app: "order" },
        annotations: { b: "2", a: "1" },
      },
      spec: reversed(created.body["spec"] as Record<string, unknown>),
    });
    expect(put.status).toBe(200);
    expect((put.body["metadata"] as { resourceVersion: string }).resourceVersion).toBe(m.resourceVersion);
    // A real change still is one.
    const changed = await call("PUT", `${services}/order`, {
      ...created.body,
      metadata: { ...m, annotations: { a: "1", b: "3" } },
    });
    expect(changed.status).toBe(200);
    expect((changed.body["metadata"] as { resourceVersion: string }).resourceVersion).not.toBe(m.resourceVersion);
  });

  it("applies strategic-merge and JSON patches", async () => {
    const s = await call(
      "PATCH",
      `${services}/dual`,
      { spec: { ports: [{ port: 443, name: "https" }], $setElementOrder: undefined } },
      "application/strategic-merge-patch+json",
    );
    expect(s.status).toBe(422); // two ports need names: the merged list keeps port 80 (unnamed)
    const s2 = await call(
      "PATCH",
      `${services}/dual`,
      { metadata: { labels: { tier: "web" } } },
      "application/strategic-merge-patch+json",
    );
    expect((s2.body["metadata"] as { labels: Record<string, string> }).labels).toEqual({ app: "dual", tier: "web" });
    const j = await call(
      "PATCH",
      `${services}/dual`,
      [{ op: "replace", path: "/metadata/labels/tier", value: "db" }],
      "application/json-patch+json",
    );
    expect((j.body["metadata"] as { labels: Record<string, string> }).labels["tier"]).toBe("db");
    const stale = await call(
      "PATCH",
      `${services}/dual`,
      { metadata: { resourceVersion: "1", labels: { x: "y" } } },
      "application/merge-patch+json",
    );
    expect(stale.status).toBe(409);
    expect(stale.body["reason"]).toBe("Conflict");
  });
});

describe("sandbox API: lists and events", () => {
  it("pages with limit/continue in name order", async () => {
    for (const n of ["p1", "p2", "p3"])
      await call("POST", `/api/v1/namespaces/${ns}/configmaps`, { metadata: { name: n, labels: { page: "yes" } } });
    const names: string[] = [];
    let cont = "";
    for (let i = 0; i < 5; i++) {
      const r = await call(
        "GET",
        `/api/v1/namespaces/${ns}/configmaps?labelSelector=page%3Dyes&limit=2${cont === "" ? "" : `&continue=${cont}`}`,
      );
      names.push(...(r.body["items"] as { metadata: { name: string } }[]).map((x) => x.metadata.name));
      cont = String((r.body["metadata"] as { continue?: string }).continue ?? "");
      if (cont === "") break;
    }
    expect(names).toEqual(["p1", "p2", "p3"]);
  });

  it("serves events.k8s.io/v1 and core/v1 views of one event, selected by involvedObject", async () => {
    const created = await call("POST", `/apis/events.k8s.io/v1/namespaces/${ns}/events`, {
      metadata: { name: "ev1" },
      eventTime: "2026-01-01T00:00:00.000000Z",
      reportingController: "lodestone.dev/controller",
      reportingInstance: "c-1",
      action: "Allocate",
      reason: "IPAllocated",
      type: "Normal",
      note: "Assigned IP 192.0.2.10",
      regarding: { kind: "Service", namespace: ns, name: "dual" },
    });
    expect(created.status).toBe(201);
    const core = await call(
      "GET",
      `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.kind%3DService,involvedObject.name%3Ddual`,
    );
    const items = core.body["items"] as { message: string; involvedObject: { name: string } }[];
    expect(items.map((e) => e.message)).toEqual(["Assigned IP 192.0.2.10"]);
    const none = await call("GET", `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.name%3Dother`);
    expect(none.body["items"]).toEqual([]);
    const missing = await call("POST", `/apis/events.k8s.io/v1/namespaces/${ns}/events`, {
      metadata: { name: "ev2" },
      regarding: { kind: "Service" },
    });
    expect(missing.status).toBe(422);
  });
});

describe("sandbox API: watches", () => {
  it("resumes from a resourceVersion with ADDED, MODIFIED, DELETED", async () => {
    const a = await call("POST", services, svc("w1"));
    const from = rvOf(a.body);
    await call("PATCH", `${services}/w1`, { metadata: { labels: { v: "2" } } }, "application/merge-patch+json");
    await call("DELETE", `${services}/w1`);
    const events = await watch(`${services}?watch=true&resourceVersion=${from}&labelSelector=app%3Dw1`, 2);
    expect(events.map((e) => e.type)).toEqual(["MODIFIED", "DELETED"]);
  });

  it("sends BOOKMARKs (at the interval it is given) and honours timeoutSeconds", async () => {
    const quick = await startSandbox({ bookmarkIntervalMs: 50 });
    try {
      const res = await fetch(
        `${quick.url}/api/v1/services?watch=1&allowWatchBookmarks=true&timeoutSeconds=3&resourceVersion=${1}`,
      );
      const text = await res.text(); // ends by itself after 3 s
      const events = text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string; object: { metadata: Record<string, unknown> } });
      const bookmarks = events.filter((e) => e.type === "BOOKMARK");
      // Every 50 ms until 2 s before the end (the cacher's last one), then none: about 20.
      expect(bookmarks.length).toBeGreaterThanOrEqual(10);
      expect(bookmarks.length).toBeLessThanOrEqual(21);
      expect(bookmarks.every((b) => b.object.metadata["name"] === undefined)).toBe(true);
    } finally {
      await quick.stop();
    }
  });

  it("answers a watch from before the retained history with a 410 ERROR event", async () => {
    const first = await call("POST", `/api/v1/namespaces/${ns}/configmaps`, { metadata: { name: "old" } });
    for (let i = 0; i < 45; i++)
      await call(
        "PATCH",
        `/api/v1/namespaces/${ns}/configmaps/old`,
        { data: { i: String(i) } },
        "application/merge-patch+json",
      );
    const events = await watch(`/api/v1/namespaces/${ns}/configmaps?watch=true&resourceVersion=${rvOf(first.body)}`, 1);
    expect(events[0]?.type).toBe("ERROR");
    expect(events[0]?.object["code"]).toBe(410);
    expect(events[0]?.object["reason"]).toBe("Expired");
  });
});

describe("sandbox fault injection", () => {
  it("fails the next N matching requests with 429 + Retry-After, 500 and 409", async () => {
    sandbox.faults.failNext({ code: 429, verb: "list", resource: "services", count: 2, retryAfterSeconds: 3 });
    sandbox.faults.failNext({ code: 500, verb: "patch", resource: "services/status" });
    const r1 = await call("GET", services);
    expect(r1.status).toBe(429);
    expect(r1.headers.get("retry-after")).toBe("3");
    expect((await call("GET", "/api/v1/namespaces")).status).toBe(200); // other resources are untouched
    expect((await call("GET", services)).status).toBe(429);
    expect((await call("GET", services)).status).toBe(200);
    expect(
      (await call("PATCH", `${services}/dual`, { metadata: { labels: { z: "1" } } }, "application/merge-patch+json"))
        .status,
    ).toBe(200);
    expect(
      (await call("PATCH", `${services}/dual/status`, { status: {} }, "application/merge-patch+json")).status,
    ).toBe(500);
    sandbox.faults.failNext({ code: 409, verb: "update" });
    const c = await call("PUT", `${services}/dual`, { metadata: { name: "dual" }, spec: { ports: [{ port: 80 }] } });
    expect(c.status).toBe(409);
    expect(c.body["reason"]).toBe("Conflict");
  });

  it("adds latency", async () => {
    sandbox.faults.setLatency(150, { verb: "get" });
    const t0 = performance.now();
    await call("GET", `${services}/dual`);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    sandbox.faults.setLatency(0);
  });

  it("closes open watches and expires the next one", async () => {
    const pending = watch(`${services}?watch=true&resourceVersion=${sandbox.api.store.resourceVersion}`, 100, 3000);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    expect(sandbox.faults.closeWatches()).toBeGreaterThanOrEqual(1);
    await pending;
    expect(performance.now() - t0).toBeLessThan(1000);
    sandbox.faults.expireNextWatches(1);
    const ev = await watch(`${services}?watch=true`, 1);
    expect(ev[0]?.object["code"]).toBe(410);
  });

  it("stops serving (connection refused) and resumes with the same data", async () => {
    await sandbox.faults.stopServing();
    await expect(fetch(`${sandbox.url}/version`)).rejects.toThrow();
    await sandbox.faults.resume();
    expect((await call("GET", `${services}/dual`)).status).toBe(200);
  });

  it("is driven over HTTP by /_sandbox/faults", async () => {
    const set = await call("POST", "/_sandbox/faults", {
      action: "failNext",
      code: 500,
      verb: "get",
      resource: "configmaps",
    });
    expect(set.status).toBe(200);
    expect((await call("GET", `/api/v1/namespaces/${ns}/configmaps/p1`)).status).toBe(500);
    const stop = await call("POST", "/_sandbox/faults", { action: "stopServing", forMs: 300 });
    expect(stop.status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    await expect(fetch(`${sandbox.url}/version`)).rejects.toThrow();
    const deadline = Date.now() + 3000;
    let back = false;
    while (!back && Date.now() < deadline) {
      back = await fetch(`${sandbox.url}/version`).then(
        () => true,
        () => false,
      );
      if (!back) await new Promise((r) => setTimeout(r, 50));
    }
    expect(back).toBe(true);
    expect((await call("POST", "/_sandbox/faults", { action: "bogus" })).status).toBe(400);
  });
});
