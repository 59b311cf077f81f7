import { describe, expect, it } from "vitest";
import { jsonPatch, mergePatch, strategicMerge } from "../../src/sandbox/patch.ts";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from "../../src/sandbox/selectors.ts";
import { ServiceRules, validateServiceStatus } from "../../src/sandbox/service.ts";
import { Store } from "../../src/sandbox/store.ts";
import { humanDuration } from "../../src/sandbox/table.ts";
import { duplicateFields, jsonEqual, type JsonObject } from "../../src/sandbox/json.ts";
import { schemas, unknownFields } from "../../src/sandbox/schemas.ts";

describe("label selectors", () => {
  it.each([
    { desc: "equality", sel: "app=web", labels: { app: "web" }, match: true },
    { desc: "double equals", sel: "app==web", labels: { app: "db" }, match: false },
    { desc: "inequality matches a missing key", sel: "app!=web", labels: {}, match: true },
    { desc: "in", sel: "tier in (a, b)", labels: { tier: "b" }, match: true },
    { desc: "notin", sel: "tier notin (a,b)", labels: { tier: "b" }, match: false },
    { desc: "exists", sel: "app", labels: { app: "" }, match: true },
    { desc: "does not exist", sel: "!app", labels: { app: "x" }, match: false },
    { desc: "several requirements", sel: "a=1,b in (2,3),!c", labels: { a: "1", b: "3" }, match: true },
    { desc: "prefixed key", sel: "lodestone.dev/pool=x", labels: { "lodestone.dev/pool": "x" }, match: true },
  ])("$desc", ({ sel, labels, match }) => {
    const r = parseLabelSelector(sel);
    expect(r.ok).toBe(true);
    if (r.ok) expect(matchesLabels(r.value, labels)).toBe(match);
  });

  it.each([{ sel: "a in (" }, { sel: "a=b c" }, { sel: "=x" }, { sel: "a,,b" }, { sel: "a=-bad-" }])(
    "refuses $sel",
    ({ sel }) => {
      expect(parseLabelSelector(sel).ok).toBe(false);
    },
  );
});

describe("field selectors", () => {
  const ev: JsonObject = {
    metadata: { name: "e1", namespace: "ns" },
    involvedObject: { kind: "Service", name: "web" },
  };
  it.each([
    { desc: "involvedObject.name", sel: "involvedObject.name=web", match: true },
    { desc: "several fields", sel: "involvedObject.kind=Service,metadata.namespace=ns", match: true },
    { desc: "inequality", sel: "metadata.name!=e1", match: false },
  ])("$desc", ({ sel, match }) => {
    const r = parseFieldSelector(sel, ["involvedObject.name", "involvedObject.kind"]);
    expect(r.ok).toBe(true);
    if (r.ok) expect(matchesFields(r.value, ev)).toBe(match);
  });
  it("refuses fields the resource does not support", () => {
    expect(parseFieldSelector("spec.nope=1", [])).toEqual({ ok: false, error: "field label not supported: spec.nope" });
  });
});

describe("patches", () => {
  it.each([
    { desc: "merge replaces lists", fn: () => mergePatch({ a: [1, 2], b: 1 }, { a: [3] }), want: { a: [3], b: 1 } },
    {
      desc: "merge deletes with null",
      fn: () => mergePatch({ a: 1, b: { c: 1, d: 2 } }, { b: { c: null } }),
      want: { a: 1, b: { d: 2 } },
    },
    {
      desc: "strategic merges ports by port",
      fn: () => strategicMerge({ ports: [{ port: 80, name: "a" }] }, { ports: [{ port: 443, name: "b" }] }),
      want: {
        ok: true,
        value: {
          ports: [
            { port: 80, name: "a" },
            { port: 443, name: "b" },
          ],
        },
      },
    },
    {
      desc: "strategic $patch: delete removes a list element",
      fn: () =>
        strategicMerge(
          { conditions: [{ type: "A" }, { type: "B" }] },
          { conditions: [{ type: "A", $patch: "delete" }] },
        ),
      want: { ok: true, value: { conditions: [{ type: "B" }] } },
    },
    {
      desc: "strategic finalizers merge as a set, $deleteFromPrimitiveList removes",
      fn: () =>
        strategicMerge({ finalizers: ["a", "b"] }, { finalizers: ["c"], "$deleteFromPrimitiveList/finalizers": ["a"] }),
      want: { ok: true, value: { finalizers: ["b", "c"] } },
    },
    {
      desc: "json patch add/replace/remove",
      fn: () =>
        jsonPatch({ a: { b: 1 }, l: [1] }, [
          { op: "add", path: "/l/-", value: 2 },
          { op: "replace", path: "/a/b", value: 3 },
          { op: "remove", path: "/l/0" },
        ]),
      want: { ok: true, value: { a: { b: 3 }, l: [2] } },
    },
    {
      desc: "json patch test failure",
      fn: () => jsonPatch({ a: 1 }, [{ op: "test", path: "/a", value: 2 }]),
      want: { ok: false, error: "testing value /a failed" },
    },
    {
      // RFC 6902 section 4.6: objects are equal when their members are, whatever their order.
      desc: "json patch test of an object whose keys come in another order",
      fn: () =>
        jsonPatch({ m: { a: 1, b: [1, { c: 2, d: 3 }] } }, [
          { op: "test", path: "/m", value: { b: [1, { d: 3, c: 2 }], a: 1 } },
          { op: "replace", path: "/m/a", value: 2 },
        ]),
      want: { ok: true, value: { m: { a: 2, b: [1, { c: 2, d: 3 }] } } },
    },
  ])("$desc", ({ fn, want }) => {
    expect(fn()).toEqual(want);
  });
});

describe("Service rules", () => {
  const lb = (extra: JsonObject = {}): JsonObject => ({
    metadata: { name: "s" },
    spec: { type: "LoadBalancer", ports: [{ port: 80 }], ...extra },
  });
  it("allocates a cluster IP and a node port, and releases them", () => {
    const rules = new ServiceRules();
    const a = lb();
    expect(rules.prepare(a, undefined)).toEqual([]);
    const spec = a["spec"] as JsonObject;
    expect(spec["clusterIPs"]).toEqual([spec["clusterIP"]]);
    const b = lb({ clusterIP: spec["clusterIP"] ?? "" });
    expect(rules.prepare(b, undefined)[0]?.message).toContain("already allocated");
    rules.release(a);
    expect(rules.prepare(lb({ clusterIP: spec["clusterIP"] ?? "" }), undefined)).toEqual([]);
  });
  it.each([
    { desc: "SingleStack by default", extra: {}, families: ["IPv4"] },
    { desc: "PreferDualStack", extra: { ipFamilyPolicy: "PreferDualStack" }, families: ["IPv4", "IPv6"] },
    {
      desc: "IPv6 first",
      extra: { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv6"] },
      families: ["IPv6", "IPv4"],
    },
  ])("ipFamilies: $desc", ({ extra, families }) => {
    const s = lb(extra);
    expect(new ServiceRules().prepare(s, undefined)).toEqual([]);
    expect((s["spec"] as JsonObject)["ipFamilies"]).toEqual(families);
  });
  it.each([
    { desc: "a valid IP gets ipMode VIP", ingress: [{ ip: "192.0.2.1" }], errors: 0 },
    { desc: "an invalid IP", ingress: [{ ip: "192.0.2.300" }], errors: 1 },
    { desc: "hostname that is an IP", ingress: [{ hostname: "2001:db8::1" }], errors: 1 },
  ])("status: $desc", ({ ingress, errors }) => {
    const s: JsonObject = { spec: { type: "LoadBalancer" }, status: { loadBalancer: { ingress } } };
    expect(validateServiceStatus(s)).toHaveLength(errors);
  });
});

describe("store history", () => {
  it("expires watches older than the retained window", () => {
    const store = new Store(2);
    for (let i = 0; i < 6; i++) {
      const rv = store.nextVersion();
      store.put("x", "", `o${i}`, { metadata: { name: `o${i}`, resourceVersion: String(rv) } }, rv);
    }
    expect(store.since("x", 1)).toBe("expired");
    const recent = store.since("x", 5);
    expect(recent !== "expired" && recent.map((e) => e.entry.rv)).toEqual([6]);
  });
});

describe("humanDuration", () => {
  it.each([
    { s: 5, want: "5s" },
    { s: 125, want: "2m5s" },
    { s: 600, want: "10m" },
    { s: 3 * 3600 + 60, want: "3h1m" },
    { s: 50 * 3600, want: "2d2h" },
  ])("$s s -> $want", ({ s, want }) => {
    expect(humanDuration(s)).toBe(want);
  });
});

describe("jsonEqual", () => {
  it("ignores the order of object keys, not of array elements", () => {
    expect(jsonEqual({ a: 1, b: { c: [1, 2], d: "x" } }, { b: { d: "x", c: [1, 2] }, a: 1 })).toBe(true);
    expect(jsonEqual({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: null })).toBe(false);
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(jsonEqual({ a: "1" }, { a: 1 })).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
    expect(jsonEqual(undefined, undefined)).toBe(true);
  });
  it("takes a key whose value is undefined for an absent one, as JSON text does", () => {
    const withUndefined = JSON.parse("{}") as Record<string, unknown>;
    withUndefined["a"] = undefined;
    expect(jsonEqual(withUndefined as JsonObject, {})).toBe(true);
    expect(jsonEqual({}, withUndefined as JsonObject)).toBe(true);
  });
});

describe("duplicateFields", () => {
  it.each([
    { desc: "none", text: '{"a":1,"b":{"a":2}}', dups: [] },
    { desc: "top level", text: '{"a":1,"a":2}', dups: ["a"] },
    {
      desc: "nested, after an escaped quote",
      text: '{"metadata":{"name":"x\\"y","name":"b"}}',
      dups: ["metadata.name"],
    },
    {
      desc: "in a list item",
      text: '{"spec":{"ports":[{"port":1},{"port":2,"port":3}]}}',
      dups: ["spec.ports[1].port"],
    },
    { desc: "not an object", text: "[1, 2]", dups: [] },
  ])("$desc", ({ text, dups }) => {
    expect(duplicateFields(text)).toEqual(dups);
  });
});

describe("unknownFields", () => {
  const service = schemas["services"];
  if (service === undefined) throw new Error("no Service schema");

  it.each([
    {
      desc: "a known object",
      obj: { metadata: { name: "a", labels: { x: "y" } }, spec: { ports: [{ port: 80 }] } },
      unknown: [],
    },
    { desc: "a top-level field", obj: { spc: {} }, unknown: ["spc"] },
    { desc: "in a list item", obj: { spec: { ports: [{ port: 80 }, { prot: 1 }] } }, unknown: ["spec.ports[1].prot"] },
    { desc: "any key of a map", obj: { spec: { selector: { anything: "x" } } }, unknown: [] },
    { desc: "in metadata", obj: { metadata: { nmae: "a" } }, unknown: ["metadata.nmae"] },
  ])("$desc", ({ obj, unknown }) => {
    expect(unknownFields(service, obj).unknown).toEqual(unknown);
  });

  it("returns the value without the unknown fields, leaving the input alone", () => {
    const obj = { spec: { type: "LoadBalancer", typo: 1, ports: [{ port: 80, x: 1 }] } };
    const r = unknownFields(service, obj);
    expect(r.known).toEqual({ spec: { type: "LoadBalancer", ports: [{ port: 80 }] } });
    expect(obj.spec.typo).toBe(1);
  });

  it("returns the same value when nothing is unknown", () => {
    const obj = { spec: { type: "LoadBalancer" } };
    expect(unknownFields(service, obj).known).toBe(obj);
  });
});
