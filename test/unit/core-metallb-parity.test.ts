// Issue 16: where a user switching from MetalLB would feel a difference. Each row says the MetalLB behaviour it
// matches and where MetalLB does it (MetalLB v0.12.1 for the legacy `config`, main for the allocator).
import { describe, expect, it } from "vitest";
import { Allocator } from "../../src/core/allocator.ts";
import type { Pool } from "../../src/core/config.ts";
import { parsePoolConfigMap } from "../../src/core/config.ts";
import { formatRange } from "../../src/core/range.ts";
import type { ServiceRequest } from "../../src/core/service-request.ts";
import { ingressShapeProblem } from "../../src/core/service-request.ts";
import { ips, pools, svc, texts } from "./support/core-fixtures.ts";

const legacy = (config: string) =>
  parsePoolConfigMap({ namespace: "metallb-system", name: "config", data: { config } });

const pool = (fields: string) =>
  `address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n${fields}`;

describe("item 1: YAML 1.1 booleans in the legacy config", () => {
  const words = [
    ...["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"].map((w) => ({ w, b: true })),
    ...["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"].map((w) => ({ w, b: false })),
  ];
  it.each(
    words.flatMap(({ w, b }) => [
      {
        desc: `auto-assign: ${w} is ${b} (go-yaml v2 resolve table, as config.go Parse decodes addressPool.AutoAssign)`,
        fields: `  auto-assign: ${w}`,
        want: { autoAssign: b },
      },
      {
        desc: `avoid-buggy-ips: ${w} is ${b} (go-yaml v2 resolve table, addressPool.AvoidBuggyIPs)`,
        fields: `  avoid-buggy-ips: ${w}`,
        want: { avoidBuggyIPs: b },
      },
    ]),
  )("$desc", ({ fields, want }) => {
    const r = legacy(pool(fields));
    expect(r.problems).toEqual([]);
    expect(r.pools[0]).toMatchObject(want);
  });

  it.each([
    {
      desc: "a quoted word is a string: go-yaml v2 refuses a string for a bool field (config.go Parse fails)",
      config: pool('  auto-assign: "no"'),
      problem: "LODESTONE_E_CONFIG_TYPE",
    },
    {
      desc: "a word outside the table is no boolean (go-yaml v2: `nope` does not resolve to bool)",
      config: pool("  auto-assign: nope"),
      problem: "LODESTONE_E_CONFIG_TYPE",
    },
  ])("$desc", ({ config, problem }) => {
    expect(legacy(config).problems.map((p) => p.code)).toContain(problem);
  });

  it.each([
    {
      desc: "name: on stays the text on (go-yaml v2 decodes a plain scalar into a string field as its text)",
      config: "address-pools:\n- name: on\n  protocol: layer2\n  addresses: [192.0.2.0/24]",
      name: "on",
      addresses: ["192.0.2.0/24"],
    },
    {
      desc: "name: 010 and name: 1:20 stay text, no octal or base-60 number (string field: the scalar's text)",
      config:
        "address-pools:\n- name: 010\n  protocol: layer2\n  addresses: [192.0.2.0/24]\n- name: 1:20\n  protocol: layer2\n  addresses: [198.51.100.0/24]",
      name: "010",
      addresses: ["192.0.2.0/24"],
    },
    {
      desc: "an IPv6 address of decimal groups stays an address, not a YAML 1.1 base-60 int (Addresses []string)",
      config: "address-pools:\n- name: v6\n  protocol: layer2\n  addresses:\n  - 2001:10:20:30:40:50:1:2",
      name: "v6",
      addresses: ["2001:10:20:30:40:50:1:2"],
    },
  ])("$desc", ({ config, name, addresses }) => {
    const r = legacy(config);
    expect(r.problems).toEqual([]);
    expect(r.pools.map((p) => p.name)).toContain(name);
    const found = r.pools.find((p) => p.name === name);
    expect(found?.addresses.map(formatRange)).toEqual(addresses);
  });

  it("leaves the Lodestone format on YAML 1.2 (pools.yaml is Lodestone's own: autoAssign: no is an error)", () => {
    const r = parsePoolConfigMap({
      namespace: "lodestone-system",
      name: "pools",
      data: { "pools.yaml": "- name: a\n  addresses: [192.0.2.0/24]\n  autoAssign: no" },
    });
    expect(r.problems.map((p) => p.code)).toEqual(["LODESTONE_E_CONFIG_TYPE"]);
  });
});

describe("item 2: empty legacy config and empty BGP sections", () => {
  it.each([
    { desc: "an empty config is valid, no pools (config.go Parse: go-yaml v2 decodes nothing)", config: "" },
    { desc: "a config of only a comment is valid, no pools (same)", config: "# nothing yet\n" },
    { desc: "address-pools: [] is valid, no pools (configFile.Pools empty)", config: "address-pools: []" },
    { desc: "address-pools with no value is valid (go-yaml v2: null is an empty slice)", config: "address-pools:" },
    { desc: "peers: [] configures no BGP peer (configFile.Peers empty: no session)", config: "peers: []" },
    { desc: "peers with no value configures no BGP peer (null decodes to an empty slice)", config: "peers:" },
    { desc: "bgp-communities: {} configures nothing (configFile.BGPCommunities empty)", config: "bgp-communities: {}" },
    { desc: "bfd-profiles: [] configures nothing (configFile.BFDProfiles empty)", config: "bfd-profiles: []" },
  ])("$desc", ({ config }) => {
    const r = legacy(config);
    expect(r.problems).toEqual([]);
    expect(r.pools).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it.each([
    {
      desc: "bgp-advertisements: [] on a layer2 pool configures nothing (addressPool.BGPAdvertisements empty)",
      config: pool("  bgp-advertisements: []"),
      problems: [],
      pools: ["a"],
    },
    {
      desc: "peers with an entry is still BGP, reported (Lodestone has no BGP; configFile.Peers non-empty)",
      config: `peers:\n- peer-address: 10.0.0.1\n${pool("")}`,
      problems: ["LODESTONE_E_UNSUPPORTED"],
      pools: ["a"],
    },
  ])("$desc", ({ config, problems, pools }) => {
    const r = legacy(config);
    expect(r.problems.map((p) => p.code)).toEqual(problems);
    expect(r.pools.map((p) => p.name)).toEqual(pools);
  });
});

describe("item 3: legacy pool names are any non-empty string", () => {
  const named = (name: string) => `address-pools:\n- name: ${name}\n  protocol: layer2\n  addresses: [192.0.2.0/24]`;
  it.each([
    {
      desc: "a space: kept, with a warning (parseAddressPool checks only for a missing name)",
      yaml: '"my pool"',
      name: "my pool",
      warned: true,
    },
    { desc: "a slash: kept, with a warning (same)", yaml: "team/a", name: "team/a", warned: true },
    { desc: "an underscore first: kept, warned (same)", yaml: "_x", name: "_x", warned: true },
    {
      desc: "64 characters: kept, warned (no length limit in MetalLB)",
      yaml: "a".repeat(64),
      name: "a".repeat(64),
      warned: true,
    },
    { desc: "an ordinary name: kept, no warning (same)", yaml: "default", name: "default", warned: false },
  ])("$desc", ({ yaml, name, warned }) => {
    const r = legacy(named(yaml));
    expect(r.problems).toEqual([]);
    expect(r.pools.map((p) => p.name)).toEqual([name]);
    expect(r.warnings.map((w) => [w.code, w.path])).toEqual(
      warned ? [["LODESTONE_W_POOL_NAME", `config.address-pools[0] (${name}).name`]] : [],
    );
  });

  it.each([
    { desc: "an empty name is refused (parseAddressPool: missing pool name)", yaml: '""' },
    { desc: "no name is refused (same)", yaml: "~" },
  ])("$desc", ({ yaml }) => {
    const r = legacy(named(yaml));
    expect(r.pools).toEqual([]);
    expect(r.problems).not.toEqual([]);
  });
});

describe("item 7: a status no LoadBalancer can have", () => {
  it.each([
    {
      desc: "three IPv4 addresses: refused, as ipfamily.ForAddresses fails (invalid ips length) and convergeBalancer warns",
      ingress: ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
      problem:
        "status.loadBalancer.ingress held 3 IPv4 addresses (192.0.2.1, 192.0.2.2, 192.0.2.3); a Service has at most one address per family",
    },
    {
      desc: "two IPv6 addresses: refused, as ipfamily.ForAddresses fails (same address family)",
      ingress: ["2001:db8::1", "2001:db8::2"],
      problem:
        "status.loadBalancer.ingress held 2 IPv6 addresses (2001:db8::1, 2001:db8::2); a Service has at most one address per family",
    },
    {
      desc: "one IPv4 and one IPv6: fine, ipfamily.ForAddresses says dual",
      ingress: ["192.0.2.1", "2001:db8::1"],
      problem: undefined,
    },
    { desc: "one address: fine (ForAddresses, one IP)", ingress: ["192.0.2.1"], problem: undefined },
    { desc: "no status: fine (convergeBalancer allocates)", ingress: [], problem: undefined },
  ])("$desc", ({ ingress, problem }) => {
    expect(ingressShapeProblem(ingress)).toBe(problem);
  });
});

type Step = { readonly take: string; readonly req?: Partial<ServiceRequest> } | { readonly release: string };

/** Runs steps against an allocator; the addresses of the last Service taken, and its pool. */
function run(poolList: readonly Pool[], steps: readonly Step[]): { pool: string | undefined; ips: string[] } {
  const a = new Allocator(poolList);
  let last: { pool: string | undefined; ips: string[] } = { pool: undefined, ips: [] };
  for (const step of steps) {
    if ("release" in step) {
      a.release(`default/${step.release}`);
      continue;
    }
    const r = a.allocate(svc(step.take, step.req));
    last = r.ok ? { pool: r.value.pool, ips: texts(r.value.ips) } : { pool: r.error.code, ips: [] };
  }
  return last;
}

const prefer = (families: (4 | 6)[], over: Partial<ServiceRequest> = {}): Partial<ServiceRequest> => ({
  ipFamilyPolicy: "PreferDualStack",
  ipFamilies: families,
  ...over,
});

describe("item 4: PreferDualStack prefers a pool that gives every family", () => {
  it.each<{ desc: string; yaml: string; steps: Step[]; pool: string; ips: string[] }>([
    {
      desc: "a dual-stack pool of lower priority wins over an IPv4-only one (findBestPoolForService: both IPs first)",
      yaml: "- {name: v4, addresses: [192.0.2.0/28], priority: 1}\n- {name: dual, addresses: [198.51.100.0/28, '2001:db8::/120'], priority: 2}",
      steps: [{ take: "a", req: prefer([4, 6]) }],
      pool: "dual",
      ips: ["198.51.100.0", "2001:db8::1"],
    },
    {
      desc: "no dual-stack pool: the first pool of the primary family (findBestPoolForService: primaryAllocationCandidate)",
      yaml: "- {name: v6, addresses: ['2001:db8::/120'], priority: 1}\n- {name: v4, addresses: [192.0.2.0/28], priority: 2}",
      steps: [{ take: "a", req: prefer([4, 6]) }],
      pool: "v4",
      ips: ["192.0.2.0"],
    },
    {
      desc: "IPv6 primary: the IPv6 pool before the IPv4 one (primary family from spec.ipFamilies[0])",
      yaml: "- {name: v4, addresses: [192.0.2.0/28], priority: 1}\n- {name: v6, addresses: ['2001:db8::/120'], priority: 2}",
      steps: [{ take: "a", req: prefer([6, 4]) }],
      pool: "v6",
      ips: ["2001:db8::1"],
    },
    {
      desc: "only the other family exists: it is taken (findBestPoolForService: secondaryAllocationCandidate)",
      yaml: "- {name: v6, addresses: ['2001:db8::/120']}",
      steps: [{ take: "a", req: prefer([4, 6]) }],
      pool: "v6",
      ips: ["2001:db8::1"],
    },
    {
      desc: "a dual pool out of IPv6 counts as IPv4-only: a later pool with both wins (getFreeIPsFromPool counts free IPs)",
      yaml: "- {name: dual, addresses: [192.0.2.0/28, '2001:db8::1'], priority: 1}\n- {name: v4, addresses: [198.51.100.0/28], priority: 2}\n- {name: dual2, addresses: [203.0.113.0/28, '2001:db8:1::/120'], priority: 3}",
      steps: [
        { take: "first", req: { ipFamilies: [6] } },
        { take: "a", req: prefer([4, 6]) },
      ],
      pool: "dual2",
      ips: ["203.0.113.0", "2001:db8:1::1"],
    },
    {
      desc: "a sharing key alone does not make a full family available: the pool with both wins (getFreeIPsFromPool)",
      yaml: "- {name: dual, addresses: [192.0.2.0/28, '2001:db8::1'], priority: 1}\n- {name: dual2, addresses: [203.0.113.0/28, '2001:db8:1::/120'], priority: 2}",
      steps: [
        { take: "first", req: { ipFamilies: [6] } },
        { take: "a", req: prefer([4, 6], { sharingKey: "k" }) },
      ],
      pool: "dual2",
      ips: ["203.0.113.0", "2001:db8:1::1"],
    },
    {
      desc: "a full family whose address a holder of the same key may share counts as available (MetalLB shares by key)",
      yaml: "- {name: dual, addresses: [192.0.2.0/28, '2001:db8::1'], priority: 1}\n- {name: dual2, addresses: [203.0.113.0/28, '2001:db8:1::/120'], priority: 2}",
      steps: [
        { take: "first", req: { ipFamilies: [6], sharingKey: "k", ports: [{ port: 53, protocol: "UDP" }] } },
        { take: "a", req: prefer([4, 6], { sharingKey: "k" }) },
      ],
      pool: "dual",
      ips: ["192.0.2.0", "2001:db8::1"],
    },
    {
      desc: "SingleStack is unchanged: the first pool by priority (findBestPoolForService: the service's family)",
      yaml: "- {name: v4, addresses: [192.0.2.0/28], priority: 1}\n- {name: dual, addresses: [198.51.100.0/28, '2001:db8::/120'], priority: 2}",
      steps: [{ take: "a" }],
      pool: "v4",
      ips: ["192.0.2.0"],
    },
    {
      desc: "differs, documented: one requested IPv4 is given as asked (MetalLB allocateIPs refuses it for a dual-stack Service)",
      yaml: "- {name: dual, addresses: [192.0.2.0/28, '2001:db8::/120']}",
      steps: [{ take: "a", req: prefer([4, 6], { requestedIps: ips("192.0.2.5") }) }],
      pool: "dual",
      ips: ["192.0.2.5"],
    },
  ])("$desc", ({ yaml, steps, pool, ips: want }) => {
    expect(run(pools(yaml), steps)).toEqual({ pool, ips: want });
  });
});

describe("item 5: pools pinned to the Service come before pools open to all", () => {
  const yaml = `
- {name: open, addresses: [192.0.2.0/28], priority: 1}
- name: team
  addresses: [198.51.100.0/30]
  serviceAllocation: {namespaces: [team-a]}
- name: team-first
  addresses: [198.51.100.8/30]
  priority: 5
  serviceAllocation: {namespaceSelector: {matchLabels: {tenant: b}}}
- name: front
  addresses: [203.0.113.0/30]
  serviceAllocation: {serviceSelector: {matchLabels: {tier: front}}}
- name: manual
  addresses: [203.0.113.8/30]
  autoAssign: false
  serviceAllocation: {namespaces: [team-m]}
`;
  it.each<{ desc: string; name: string; req?: Partial<ServiceRequest>; pool: string }>([
    {
      desc: "a namespace-pinned pool without priority beats an open pool of priority 1 (Allocate: pinnedPoolsForService first)",
      name: "team-a/a",
      pool: "team",
    },
    {
      desc: "a Service the pinned pool does not select gets the open pool (isPoolCompatibleWithService)",
      name: "x/a",
      pool: "open",
    },
    {
      desc: "among pinned pools, priority decides (pinnedPoolsForService sorts with sortPools)",
      name: "team-a/a",
      req: { namespaceLabels: { tenant: "b" } },
      pool: "team-first",
    },
    {
      desc: "a namespace selector pins as well (namespaceSelectors fill Pools.ByNamespace)",
      name: "other/a",
      req: { namespaceLabels: { tenant: "b" } },
      pool: "team-first",
    },
    {
      desc: "a Service selector pins (Pools.ByServiceSelector)",
      name: "x/a",
      req: { labels: { tier: "front" } },
      pool: "front",
    },
    {
      desc: "a pinned pool with autoAssign false is not used unasked (pinnedPoolsForService skips !AutoAssign)",
      name: "team-m/a",
      pool: "open",
    },
  ])("$desc", ({ name, req, pool }) => {
    const r = new Allocator(pools(yaml)).allocate(svc(name, req));
    expect(r.ok && r.value.pool).toBe(pool);
  });

  it("a pinned pool run dry falls back to the open pools (Allocate: then all pools without serviceAllocation)", () => {
    const a = new Allocator(pools(yaml));
    const got = ["a", "b", "c", "d", "e"].map((n) => {
      const r = a.allocate(svc(`team-a/${n}`));
      return r.ok ? r.value.pool : r.error.code;
    });
    expect(got).toEqual(["team", "team", "team", "team", "open"]);
  });
});

describe("item 6: which free address a pool hands out", () => {
  const legacyPools = (extra = "") =>
    parsePoolConfigMap({
      namespace: "metallb-system",
      name: "config",
      data: {
        config: `address-pools:\n- name: l2\n  protocol: layer2\n  addresses: [192.0.2.0-192.0.2.1, 198.51.100.0/30]${extra}`,
      },
    }).pools;
  const reuse: Step[] = [{ take: "a" }, { take: "b" }, { take: "c" }, { release: "a" }, { take: "a2" }];
  it.each<{ desc: string; list: () => readonly Pool[]; steps: Step[]; ips: string[] }>([
    {
      desc: "a legacy pool gives the lowest free address: a re-created Service gets its address back (getIPFromCIDR from First)",
      list: () => legacyPools(),
      steps: reuse,
      ips: ["192.0.2.0"],
    },
    {
      desc: "a legacy pool with avoid-buggy-ips skips .0 and takes the lowest other (ipConfusesBuggyFirmwares)",
      list: () => legacyPools("\n  avoid-buggy-ips: yes"),
      steps: [{ take: "a" }, { take: "b" }, { release: "a" }, { take: "a2" }],
      ips: ["192.0.2.1"],
    },
    {
      desc: "allocationOrder lowest in pools.yaml does the same (as MetalLB)",
      list: () => pools("- {name: p, addresses: [192.0.2.0-192.0.2.1, 198.51.100.0/30], allocationOrder: lowest}"),
      steps: reuse,
      ips: ["192.0.2.0"],
    },
    {
      desc: "differs, documented: pools.yaml's default (next) walks on, the released address rests",
      list: () => pools("- {name: p, addresses: [192.0.2.0-192.0.2.1, 198.51.100.0/30]}"),
      steps: reuse,
      ips: ["198.51.100.1"],
    },
  ])("$desc", ({ list, steps, ips: want }) => {
    expect(run(list(), steps).ips).toEqual(want);
  });
});
