import { describe, expect, it } from "vitest";
import pino from "pino";
import { watchIdleLimitMs } from "../../src/kube/client.ts";
import { backoffDelay, createInformer, eventVersion, objectMeta, type Slim } from "../../src/kube/informer.ts";
import { FakeApi, until } from "./support/fake-api.ts";

const logger = pino({ level: "silent" });

interface Obj {
  metadata: { namespace: string; name: string; resourceVersion: string };
  spec: { type: string };
}
interface SlimSvc extends Slim {
  readonly type: string;
}
const obj = (name: string, rv: number, type = "LoadBalancer"): Obj => ({
  metadata: { namespace: "ns", name, resourceVersion: String(rv) },
  spec: { type },
});
const project = (raw: unknown): SlimSvc | undefined => {
  const m = objectMeta(raw);
  const o = raw as Obj;
  return m === undefined || o.spec.type !== "LoadBalancer"
    ? undefined
    : { key: m.key, resourceVersion: m.rv, type: o.spec.type };
};

function make(api: FakeApi, random = () => 0.5) {
  const events: string[] = [];
  const inf = createInformer<SlimSvc>({
    client: api.client,
    resource: "services",
    path: "/api/v1/services",
    project,
    logger,
    pageSize: 2,
    backoff: { initialMs: 5, maxMs: 20 },
    random,
  });
  inf.subscribe({
    upsert: (o, old) => events.push(`${old === undefined ? "add" : "update"} ${o.key}@${o.resourceVersion}`),
    delete: (o) => events.push(`delete ${o.key}`),
    synced: () => events.push("synced"),
  });
  return { inf, events };
}

describe("backoffDelay", () => {
  it.each([
    { desc: "first retry is around the initial delay", attempt: 0, r: 0, want: 100 },
    { desc: "doubles per attempt", attempt: 3, r: 0.999, want: 1599 },
    { desc: "capped at the maximum", attempt: 40, r: 0, want: 15_000 },
  ])("$desc", ({ attempt, r, want }) => {
    expect(backoffDelay(attempt, 200, 30_000, () => r)).toBe(want);
  });
});

describe("watch idle limit", () => {
  // kube-apiserver ends a watch after its timeoutSeconds and in between sends only a BOOKMARK about once a minute
  // (staging/src/k8s.io/apiserver/pkg/storage/cacher, cacheWatcher.nextBookmarkTime): silence shorter than the
  // timeout is normal, so the client may not cut it at 30 s.
  it.each([
    {
      desc: "the informer's shortest watch (180 s) may be silent 225 s",
      query: { timeoutSeconds: 180 },
      want: 225_000,
    },
    { desc: "its longest (300 s) 375 s", query: { timeoutSeconds: 300 }, want: 375_000 },
    { desc: "a short test watch gets at least 5 s beyond", query: { timeoutSeconds: 2 }, want: 7_000 },
    { desc: "no timeoutSeconds: the client's idle limit", query: {}, want: 30_000 },
    { desc: "an unusable timeoutSeconds: likewise", query: { timeoutSeconds: "soon" }, want: 30_000 },
  ])("$desc", ({ query, want }) => {
    expect(watchIdleLimitMs(query, 30_000)).toBe(want);
  });
});

describe("eventVersion", () => {
  // A BOOKMARK's object is an empty object of the type with only metadata.resourceVersion set (cacher,
  // watchCache bookmark events), so no name: objectMeta() would skip it.
  it.each([
    { desc: "a bookmark without a name", raw: { kind: "Service", metadata: { resourceVersion: "42" } }, want: "42" },
    { desc: "an object", raw: obj("a", 7), want: "7" },
    { desc: "no metadata", raw: { kind: "Service" }, want: "" },
    { desc: "not an object", raw: "BOOKMARK", want: "" },
    { desc: "a version that is not text", raw: { metadata: { resourceVersion: 42 } }, want: "" },
  ])("$desc", ({ raw, want }) => {
    expect(eventVersion(raw)).toBe(want);
  });
});

describe("informer", () => {
  it("resumes after a BOOKMARK from the bookmark's version, not the last object's", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1)];
    const { inf } = make(api);
    inf.start();
    await until(() => api.watches.length === 1);
    // As kube-apiserver sends it: no name, the initial-events annotation aside.
    api.last().line("BOOKMARK", { kind: "Service", apiVersion: "v1", metadata: { resourceVersion: "5000" } });
    api.last().done(null);
    await until(() => api.watches.length === 2);
    expect(api.last().query.resourceVersion).toBe("5000");
    expect(inf.restarts()).toBe(0);
    await inf.stop();
  });

  it.each([
    { desc: "shortest", random: 0, want: 180 },
    { desc: "longest", random: 0.9999, want: 300 },
  ])(
    "asks for a watch of 180–300 s, so an idle informer re-opens at most once in three minutes: $desc",
    async ({ random, want }) => {
      const api = new FakeApi();
      const { inf } = make(api, () => random);
      inf.start();
      await until(() => api.watches.length === 1);
      expect(api.last().query.timeoutSeconds).toBe(want);
      expect(api.last().query.allowWatchBookmarks).toBe(true);
      await inf.stop();
    },
  );

  it("lists every page, keeps only projected objects, then reports synced once", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1), obj("b", 2), obj("c", 3, "ClusterIP"), obj("d", 4), obj("e", 5)];
    const { inf, events } = make(api);
    inf.start();
    await inf.whenSynced();
    expect(events).toEqual(["add ns/a@1", "add ns/b@2", "add ns/d@4", "add ns/e@5", "synced"]);
    expect(inf.size).toBe(4);
    expect(api.listCalls.map((q) => q.continue)).toEqual([undefined, "2", "4"]);
    await until(() => api.watches.length === 1);
    expect(api.last().query.resourceVersion).toBe("100");
    await inf.stop();
  });

  it("applies watch events, treating an update that projects away as a delete", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1)];
    const { inf, events } = make(api);
    inf.start();
    await until(() => api.watches.length === 1);
    const w = api.last();
    w.line("ADDED", obj("b", 101));
    w.line("MODIFIED", obj("b", 102));
    w.line("MODIFIED", obj("a", 103, "NodePort"));
    w.line("BOOKMARK", { metadata: { resourceVersion: "150" } });
    w.line("DELETED", obj("b", 151));
    expect(events.slice(2)).toEqual(["add ns/b@101", "update ns/b@102", "delete ns/a", "delete ns/b"]);
    expect(inf.size).toBe(0);
    expect(inf.restarts()).toBe(0);
    await inf.stop();
  });

  it("relists after 410 Gone without counting a restart, and delivers the difference", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1), obj("b", 2)];
    const { inf, events } = make(api);
    inf.start();
    await until(() => api.watches.length === 1);
    api.items = [obj("b", 2), obj("c", 7)];
    api.rv = 200;
    api.last().line("ERROR", { kind: "Status", code: 410, reason: "Expired" });
    await until(() => api.watches.length === 2);
    expect(events.slice(3)).toEqual(["delete ns/a", "add ns/c@7", "synced"]);
    expect(api.last().query.resourceVersion).toBe("200");
    expect(inf.restarts()).toBe(0);
    await inf.stop();
  });

  it("relist() drops the watch, lists again without counting a restart, and resolves after that list", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1), obj("b", 2)];
    const { inf, events } = make(api);
    inf.start();
    await until(() => api.watches.length === 1);
    const first = api.last();
    api.items = [obj("b", 3), obj("c", 4)];
    api.rv = 300;
    const relisted = inf.relist();
    expect(first.ctl.signal.aborted).toBe(true);
    await relisted;
    expect(events.slice(3)).toEqual(["delete ns/a", "update ns/b@3", "add ns/c@4", "synced"]);
    expect(inf.restarts()).toBe(0);
    await until(() => api.watches.length === 2);
    expect(api.last().query.resourceVersion).toBe("300");
    await inf.stop();
  });

  it("relist() called while a list is being delivered waits for the next list", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1)];
    const { inf } = make(api);
    const order: string[] = [];
    let second: Promise<void> | undefined;
    inf.subscribe({
      upsert: () => {
        // During the first list's delivery: that list began before the call, so it must not count.
        if (second === undefined) second = inf.relist().then(() => void order.push("second resolved"));
      },
      synced: () => order.push(`synced after ${api.listCalls.length} list call(s)`),
    });
    inf.start();
    await until(() => second !== undefined);
    await second;
    expect(order).toEqual(["synced after 1 list call(s)", "synced after 2 list call(s)", "second resolved"]);
    expect(inf.restarts()).toBe(0);
    await inf.stop();
  });

  it("restarts with backoff after list and watch errors, counts them, and resumes from the last version", async () => {
    const api = new FakeApi();
    api.items = [obj("a", 1)];
    api.lists = [
      { status: 500, body: { message: "boom" } },
      { status: 0, body: { message: "refused" } },
    ];
    const { inf } = make(api);
    inf.start();
    await inf.whenSynced();
    expect(inf.restarts()).toBe(2);
    await until(() => api.watches.length === 1);
    api.last().line("ADDED", obj("z", 120));
    api.last().done(new Error("connection reset"));
    await until(() => api.watches.length === 2);
    expect(inf.restarts()).toBe(3);
    expect(api.last().query.resourceVersion).toBe("120");
    expect(inf.get("ns/z")?.resourceVersion).toBe("120");
    // A watch that is closed normally by the server after doing work is re-opened without a restart.
    api.last().line("ADDED", obj("y", 121));
    api.last().done(null);
    await until(() => api.watches.length === 3);
    expect(inf.restarts()).toBe(3);
    expect(inf.crashed()).toBe(false);
    await inf.stop();
  });

  it("reports a crash of its own loop (a bug, not an API error), which liveness turns into a restart", async () => {
    const api = new FakeApi();
    // No spec: the test's projection throws on it, as a projection bug would on an object it did not expect.
    api.items = [obj("a", 1), { metadata: obj("b", 2).metadata } as Obj];
    const { inf } = make(api);
    inf.start();
    await until(() => inf.crashed());
    expect(inf.synced()).toBe(false);
    expect(inf.restarts()).toBe(0);
    await inf.stop();
    expect(inf.crashed()).toBe(true);
  });
});
