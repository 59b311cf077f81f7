import { describe, expect, it } from "vitest";
import { poolRefusal } from "../../src/core/allocation-rules.ts";
import {
  advertisedOn,
  parseIPAddressPool,
  parseL2Advertisement,
  withAdvertisements,
  type MetalLBObject,
} from "../../src/core/metallb-crds.ts";
import { toAnnouncePool } from "../../src/app/speaker-pools.ts";
import { parseIp } from "../../src/core/ip.ts";
import { svc } from "./support/core-fixtures.ts";

const obj = (name: string, spec: unknown, labels: Record<string, string> = {}): MetalLBObject => ({
  namespace: "metallb-system",
  name,
  labels,
  spec,
});

describe("IPAddressPool → pool (MetalLB internal/config, addressPoolFromCR)", () => {
  it("carries addresses, autoAssign, avoidBuggyIPs and serviceAllocation, allocating lowest first", () => {
    const r = parseIPAddressPool(
      obj("edge", {
        addresses: ["192.0.2.0/29", "192.0.2.16-192.0.2.17"],
        autoAssign: false,
        avoidBuggyIPs: true,
        serviceAllocation: {
          priority: 3,
          namespaces: ["a"],
          namespaceSelectors: [{ matchLabels: { team: "x" } }],
          serviceSelectors: [{ matchExpressions: [{ key: "tier", operator: "In", values: ["web"] }] }],
        },
      }),
    );
    expect(r.problems).toEqual([]);
    const p = r.pools[0]!;
    expect(p).toMatchObject({
      name: "edge",
      autoAssign: false,
      avoidBuggyIPs: true,
      allocationOrder: "lowest",
      priority: 3,
      configMap: "IPAddressPool metallb-system/edge",
      serviceAllocation: {
        namespaces: ["a"],
        namespaceSelectors: [{ matchLabels: { team: "x" } }],
        allowCrossNamespaceSharing: true,
      },
      announce: { advertisements: [] },
    });
    expect(p.addresses).toHaveLength(2);
  });

  it.each([
    { desc: "a bad address", spec: { addresses: ["192.0.2.300/24"] }, path: "spec.addresses[0]" },
    { desc: "no addresses", spec: {}, path: "spec.addresses" },
    {
      desc: "a bad selector operator",
      spec: {
        addresses: ["192.0.2.0/30"],
        serviceAllocation: { serviceSelectors: [{ matchExpressions: [{ key: "k", operator: "Near" }] }] },
      },
      path: "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator",
    },
    {
      desc: "a priority that is not an integer",
      spec: { addresses: ["192.0.2.0/30"], serviceAllocation: { priority: "high" } },
      path: "spec.serviceAllocation.priority",
    },
  ])("$desc is a problem at $path, and no pool", ({ spec, path }) => {
    const r = parseIPAddressPool(obj("bad", spec));
    expect(r.pools).toEqual([]);
    expect(r.problems.map((p) => p.path)).toContain(path);
    expect(r.problems.every((p) => p.configMap === "IPAddressPool metallb-system/bad")).toBe(true);
  });

  it.each([
    { desc: "namespace listed", ns: "a", nsLabels: {}, labels: { tier: "web" }, ok: true },
    { desc: "namespace selected by label", ns: "b", nsLabels: { team: "x" }, labels: { tier: "web" }, ok: true },
    { desc: "namespace neither listed nor selected", ns: "c", nsLabels: {}, labels: { tier: "web" }, ok: false },
    { desc: "Service not selected", ns: "a", nsLabels: {}, labels: { tier: "db" }, ok: false },
  ])("admits Services as MetalLB does: $desc → $ok", ({ ns, nsLabels, labels, ok }) => {
    const pool = parseIPAddressPool(
      obj("p", {
        addresses: ["192.0.2.0/30"],
        serviceAllocation: {
          namespaces: ["a"],
          namespaceSelectors: [{ matchLabels: { team: "x" } }],
          serviceSelectors: [{ matchLabels: { tier: "web" } }, { matchLabels: { tier: "api" } }],
        },
      }),
    ).pools[0]!;
    expect(poolRefusal(pool, svc(`${ns}/s`, { labels, namespaceLabels: nsLabels })) === undefined).toBe(ok);
  });
});

describe("L2Advertisement → which pools are announced where (MetalLB l2AdvertisementFromCR)", () => {
  const pools = [
    parseIPAddressPool(obj("a", { addresses: ["192.0.2.0/30"] })).pools[0]!,
    parseIPAddressPool(obj("b", { addresses: ["192.0.2.8/30"] })).pools[0]!,
  ];
  const labels: Record<string, Record<string, string>> = { a: { tier: "front" }, b: {} };
  const ad = (name: string, spec: unknown) => parseL2Advertisement(obj(name, spec)).advertisement!;

  it.each([
    { desc: "no pools named: every pool", spec: {}, want: { a: 1, b: 1 } },
    { desc: "by name", spec: { ipAddressPools: ["b"] }, want: { a: 0, b: 1 } },
    {
      desc: "by pool label",
      spec: { ipAddressPoolSelectors: [{ matchLabels: { tier: "front" } }] },
      want: { a: 1, b: 0 },
    },
  ])("$desc", ({ spec, want }) => {
    const out = withAdvertisements(pools, [ad("x", spec)], (n) => labels[n] ?? {});
    expect({ a: out[0]!.announce.advertisements?.length, b: out[1]!.announce.advertisements?.length }).toEqual(want);
  });

  it.each([
    { desc: "no advertisement: nobody", ads: [], node: {}, want: { announces: false } },
    { desc: "no node selector: every node", ads: [{}], node: { zone: "x" }, want: { announces: true } },
    {
      desc: "selector not matching",
      ads: [{ nodeSelectors: [{ matchLabels: { zone: "a" } }] }],
      node: { zone: "b" },
      want: { announces: false },
    },
    {
      desc: "two advertisements with interfaces: their union",
      ads: [{ interfaces: ["eth0"] }, { interfaces: ["eth1"], nodeSelectors: [{ matchLabels: { zone: "b" } }] }],
      node: { zone: "b" },
      want: { announces: true, interfaces: ["eth0", "eth1"] },
    },
    {
      desc: "one of them without interfaces: no restriction",
      ads: [{ interfaces: ["eth0"] }, {}],
      node: {},
      want: { announces: true },
    },
  ])("advertisedOn: $desc", ({ ads, node, want }) => {
    const parsed = ads.map((spec, i) => ad(`ad${i}`, spec).value);
    expect(advertisedOn(parsed, node)).toEqual(want);
  });

  it("a pool without an advertisement allocates but the speaker lets no node announce it", () => {
    const pool = pools[0]!;
    const announce = toAnnouncePool(pool, () => ({}));
    expect(announce.contains(parseIp("192.0.2.1")!)).toBe(true);
    expect(announce.nodeSelector?.({})).toBe(false);
    expect(poolRefusal(pool, svc("any/s"))).toBeUndefined();
  });

  it("a bad node selector is a problem on the L2Advertisement", () => {
    const r = parseL2Advertisement(
      obj("bad", { nodeSelectors: [{ matchExpressions: [{ key: "k", operator: "In" }] }] }),
    );
    expect(r.advertisement).toBeUndefined();
    expect(r.problems[0]?.configMap).toBe("L2Advertisement metallb-system/bad");
  });
});
