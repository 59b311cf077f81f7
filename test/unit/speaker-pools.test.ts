import { describe, expect, it } from "vitest";
import { poolRefusal } from "../../src/core/allocation-rules.ts";
import { createPoolCache, toAnnouncePool } from "../../src/app/speaker-pools.ts";
import { parseIPAddressPool, parseL2Advertisement, withAdvertisements } from "../../src/core/metallb-crds.ts";
import { pools, svc } from "./support/core-fixtures.ts";

/**
 * The speaker accepts a Service's spec.externalIPs only from namespaces the pool serves; it must read
 * serviceAllocation exactly as the allocator does (docs/configuration.md, "Pool fields": `namespaces` and
 * `namespaceSelector` each admit), or an IP the allocator hands out could be refused on the wire, or the reverse.
 */
const [byNameOrLabel, byName, byLabel, open] = pools(`
- {name: either, addresses: [192.0.2.0/28], serviceAllocation: {namespaces: [team-a], namespaceSelector: {matchLabels: {tenant: a}}}}
- {name: by-name, addresses: [192.0.2.16/28], serviceAllocation: {namespaces: [team-a]}}
- {name: by-label, addresses: [192.0.2.32/28], serviceAllocation: {namespaceSelector: {matchLabels: {tenant: a}}}}
- {name: open, addresses: [192.0.2.48/28]}
`);
const labelsOf: Record<string, Record<string, string>> = {
  "team-a": {},
  "team-b": { tenant: "a" },
  other: { tenant: "b" },
};

describe("speaker pools: which namespaces may announce externalIPs", () => {
  it.each([
    { desc: "listed by name, labels do not match", pool: byNameOrLabel, ns: "team-a", want: true },
    { desc: "not listed, labels match", pool: byNameOrLabel, ns: "team-b", want: true },
    { desc: "neither listed nor matching", pool: byNameOrLabel, ns: "other", want: false },
    { desc: "names only: listed", pool: byName, ns: "team-a", want: true },
    { desc: "names only: not listed", pool: byName, ns: "team-b", want: false },
    { desc: "selector only: matching", pool: byLabel, ns: "team-b", want: true },
    { desc: "selector only: not matching", pool: byLabel, ns: "team-a", want: false },
    { desc: "selector only: unknown namespace (no labels)", pool: byLabel, ns: "ghost", want: false },
    { desc: "no restriction", pool: open, ns: "other", want: true },
  ])("$desc → $want, as the allocator decides", ({ pool, ns, want }) => {
    const speaker = toAnnouncePool(pool!, (name) => labelsOf[name]);
    expect(speaker.allowsNamespace(ns)).toBe(want);
    const allocator = poolRefusal(pool!, svc(`${ns}/x`, { namespaceLabels: labelsOf[ns] ?? {} })) === undefined;
    expect(allocator).toBe(want);
  });
});

describe("speaker pools: pools from MetalLB's CRDs beside the ConfigMaps'", () => {
  const cm = {
    key: "lodestone-system/pools",
    resourceVersion: "1",
    namespace: "lodestone-system",
    name: "pools",
    labels: { "lodestone.dev/pools": "true" },
    data: { "pools.yaml": "- {name: lan, addresses: [192.0.2.0/28]}\n" },
  };
  const crd = (name: string, addresses: string[], ads: Parameters<typeof withAdvertisements>[1]) =>
    withAdvertisements(
      parseIPAddressPool({ namespace: "metallb-system", name, spec: { addresses } }).pools,
      ads,
      () => ({}),
    );
  const zoneA = parseL2Advertisement({
    namespace: "metallb-system",
    name: "zone-a",
    spec: { nodeSelectors: [{ matchLabels: { zone: "a" } }], interfaces: ["eth1"] },
  }).advertisement!;

  it.each([
    {
      desc: "an advertised CRD pool is announced by the nodes its advertisement selects, on its interfaces",
      custom: crd("edge", ["198.51.100.0/30"], [zoneA]),
      want: { names: ["edge", "lan"], zoneA: true, zoneB: false, interfaces: ["eth1"] },
    },
    {
      desc: "a CRD pool without advertisement is known (its IPs are not foreign) but no node announces it",
      custom: crd("edge", ["198.51.100.0/30"], []),
      want: { names: ["edge", "lan"], zoneA: false, zoneB: false, interfaces: undefined },
    },
    {
      desc: "a ConfigMap pool overlapping a CRD pool is left out: CRD pools are taken first (sources in name order)",
      custom: crd("edge", ["192.0.2.8/29"], [zoneA]),
      want: { names: ["edge"], zoneA: true, zoneB: false, interfaces: ["eth1"] },
    },
  ])("$desc", ({ custom, want }) => {
    const announcePools = createPoolCache(() => custom);
    const got = announcePools([cm], () => ({}));
    expect(got.map((p) => p.name).sort()).toEqual(want.names);
    const edge = got.find((p) => p.name === "edge");
    expect(edge?.nodeSelector?.({ zone: "a" })).toBe(want.zoneA);
    expect(edge?.nodeSelector?.({ zone: "b" })).toBe(want.zoneB);
    expect(edge?.interfaces).toEqual(want.interfaces);
  });
});
