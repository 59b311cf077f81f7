import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nextBookmarkAt } from "../../src/sandbox/server.ts";
import { causeFields, meta, sandboxHttp, type Http } from "./support.ts";

let http: Http;
const ns = "watch-contract";
const cms = `/api/v1/namespaces/${ns}/configmaps`;

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
  for (const name of ["a", "b"]) await http.call("POST", cms, { metadata: { name } });
});
afterAll(() => http.stop());

// staging/src/k8s.io/apiserver/pkg/storage/cacher, cacheWatcher.nextBookmarkTime: a bookmark a minute after the
// last, or 2 s before the watch's deadline when that is sooner; none once that moment has passed.
describe("watch bookmarks follow the cacher's schedule (cacher: cacheWatcher.nextBookmarkTime)", () => {
  it.each([
    { desc: "no deadline: a minute on", from: 0, deadline: undefined, want: 60_000 },
    { desc: "a 240 s watch: a minute on", from: 0, deadline: 240_000, want: 60_000 },
    { desc: "near its end: 2 s before the deadline", from: 180_000, deadline: 200_000, want: 198_000 },
    { desc: "the pre-deadline bookmark was the last", from: 198_000, deadline: 200_000, want: undefined },
    { desc: "a 1 s watch gets none", from: 0, deadline: 1_000, want: undefined },
  ])("$desc", ({ from, deadline, want }) => {
    expect(nextBookmarkAt(from, 60_000, deadline)).toBe(want);
  });

  it("by default sends none in the first minute, then one 2 s before a short watch ends", async () => {
    const t0 = performance.now();
    const events = await http.watch(`${cms}?watch=1&allowWatchBookmarks=true&timeoutSeconds=4&resourceVersion=1`);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThan(3_800);
    // The history since version 1: the namespace's two ConfigMaps, then the one bookmark at ~2 s.
    expect(events.map((e) => e.type)).toEqual(["ADDED", "ADDED", "BOOKMARK"]);
    const bookmark = events[2]!.object;
    // A bookmark is an empty object of the kind: no name, only the version.
    expect(bookmark["kind"]).toBe("ConfigMap");
    expect(meta(bookmark)["name"]).toBeUndefined();
    expect(Number(meta(bookmark)["resourceVersion"])).toBeGreaterThan(1);
  });

  it("sends none to a watch that does not allow them", async () => {
    const events = await http.watch(`${cms}?watch=1&timeoutSeconds=3&resourceVersion=1`);
    expect(events.map((e) => e.type)).toEqual(["ADDED", "ADDED"]);
  });
});

// staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/validation, validateWatchOptions (WatchList on,
// as in 1.32); staging/src/k8s.io/apiserver/pkg/storage/cacher, Cacher.Watch and
// storage.AnnotateInitialEventsEndBookmark for what a watch-list stream holds.
describe("sendInitialEvents as kube-apiserver 1.32 answers it (validation: validateWatchOptions)", () => {
  it("true: the current state as ADDED events, then a bookmark that marks their end", async () => {
    const events = await http.watch(
      `${cms}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5`,
      3,
    );
    expect(events.map((e) => [e.type, meta(e.object)["name"]])).toEqual([
      ["ADDED", "a"],
      ["ADDED", "b"],
      ["BOOKMARK", undefined],
    ]);
    expect(meta(events[2]!.object)["annotations"]).toEqual({ "k8s.io/initial-events-end": "true" });
  });

  it("false: changes only, from now", async () => {
    const watching = http.watch(
      `${cms}?watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&timeoutSeconds=5`,
      1,
    );
    await new Promise((r) => setTimeout(r, 200));
    await http.call("POST", cms, { metadata: { name: "c" } });
    const events = await watching;
    expect(events.map((e) => [e.type, meta(e.object)["name"]])).toEqual([["ADDED", "c"]]);
  });

  it.each([
    { desc: "sendInitialEvents without resourceVersionMatch", q: "sendInitialEvents=true" },
    { desc: "resourceVersionMatch without sendInitialEvents", q: "resourceVersionMatch=NotOlderThan" },
    { desc: "resourceVersionMatch=Exact", q: "sendInitialEvents=true&resourceVersionMatch=Exact" },
  ])("422 for $desc", async ({ q }) => {
    const r = await http.call("GET", `${cms}?watch=1&${q}`);
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toContain("resourceVersionMatch");
  });
});
