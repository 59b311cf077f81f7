import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import type { Pool } from "../../src/core/config.ts";
import { mergePools, parsePoolConfigMap, poolCapacity, poolsJsonSchema } from "../../src/core/config.ts";
import { formatRange } from "../../src/core/range.ts";

const cm = (poolsYaml: string, extra: Record<string, string> = {}) =>
  parsePoolConfigMap({
    namespace: "lodestone-system",
    name: "pools",
    labels: { "lodestone.dev/pools": "true" },
    data: { "pools.yaml": poolsYaml, ...extra },
  });

const legacy = (config: string) =>
  parsePoolConfigMap({ namespace: "metallb-system", name: "config", data: { config } });

describe("parsePoolConfigMap: Lodestone format", () => {
  it("reads every field and applies defaults", () => {
    const r = cm(`
- name: default
  addresses: [192.0.2.0/24, "2001:db8::/64"]
- name: tenant-a
  addresses: [198.51.100.10-198.51.100.19, 198.51.100.20]
  autoAssign: false
  avoidBuggyIPs: true
  priority: 10
  serviceAllocation:
    namespaces: [team-a]
    namespaceSelector: {matchLabels: {tenant: a}}
    serviceSelector: {matchExpressions: [{key: tier, operator: In, values: [front]}]}
    allowCrossNamespaceSharing: true
  announce:
    interfaces: [eth0]
    nodeSelector: {matchLabels: {edge: "true"}}
    externalIPs: true
    gratuitous: {intervalMs: 500, count: 3, refreshSeconds: 60}
`);
    expect(r.problems).toEqual([]);
    expect(r.format).toBe("lodestone");
    const [def, tenant] = r.pools as [Pool, Pool];
    expect(def).toMatchObject({
      name: "default",
      autoAssign: true,
      avoidBuggyIPs: false,
      serviceAllocation: { allowCrossNamespaceSharing: false },
      announce: { externalIPs: false, gratuitous: { intervalMs: 1100, count: 5 } },
      configMap: "lodestone-system/pools",
    });
    expect(def.priority).toBeUndefined();
    expect(def.addresses.map(formatRange)).toEqual(["192.0.2.0/24", "2001:db8::/64"]);
    expect(poolCapacity(def, 4)).toBe(256n);
    expect(poolCapacity(def, 6)).toBe(1n << 64n);
    expect(tenant).toMatchObject({
      autoAssign: false,
      avoidBuggyIPs: true,
      priority: 10,
      serviceAllocation: {
        namespaces: ["team-a"],
        namespaceSelector: { matchLabels: { tenant: "a" } },
        serviceSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["front"] }] },
        allowCrossNamespaceSharing: true,
      },
      announce: {
        interfaces: ["eth0"],
        nodeSelector: { matchLabels: { edge: "true" } },
        externalIPs: true,
        gratuitous: { intervalMs: 500, count: 3, refreshSeconds: 60 },
      },
    });
    // adjacent entries merge into one span
    expect(tenant.addresses.map(formatRange)).toEqual(["198.51.100.10-198.51.100.20"]);
    expect(Object.isFrozen(tenant.addresses)).toBe(true);
  });

  it.each([
    {
      desc: "malformed YAML, with its line",
      yaml: "- name: a\n  addresses: [192.0.2.1\n- x",
      code: "LODESTONE_E_YAML_SYNTAX",
      path: "pools.yaml",
      message: /line 3/,
    },
    {
      desc: "not a list",
      yaml: "name: a",
      code: "LODESTONE_E_CONFIG_TYPE",
      path: "pools.yaml",
      message: /expected a list of pools, got a mapping/,
    },
    {
      desc: "wrong type",
      yaml: "- {name: a, addresses: [192.0.2.1], autoAssign: yes}",
      code: "LODESTONE_E_CONFIG_TYPE",
      path: "pools.yaml[0] (a).autoAssign",
      message: /expected boolean, got string "yes"/,
    },
    {
      desc: "missing name",
      yaml: "- {addresses: [192.0.2.1]}",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "pools.yaml[0].name",
      message: /required/,
    },
    {
      desc: "bad pool name",
      yaml: "- {name: 'a b', addresses: [192.0.2.1]}",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "pools.yaml[0] (a b).name",
      message: /1-63/,
    },
    {
      desc: "bad CIDR",
      yaml: "- {name: a, addresses: [192.0.2.0/33]}",
      code: "LODESTONE_E_BAD_ADDRESS",
      path: "pools.yaml[0] (a).addresses[0]",
      message: /192.0.2.0\/33/,
    },
    {
      desc: "reversed range",
      yaml: "- {name: a, addresses: [192.0.2.9-192.0.2.1]}",
      code: "LODESTONE_E_RANGE_REVERSED",
      path: "pools.yaml[0] (a).addresses[0]",
      message: /ends before it starts/,
    },
    {
      desc: "mixed-family range",
      yaml: "- {name: a, addresses: ['192.0.2.1-2001:db8::1']}",
      code: "LODESTONE_E_RANGE_MIXED_FAMILY",
      path: "pools.yaml[0] (a).addresses[0]",
      message: /mixes IPv4 and IPv6/,
    },
    {
      desc: "empty pool",
      yaml: "- {name: a, addresses: []}",
      code: "LODESTONE_E_POOL_EMPTY",
      path: "pools.yaml[0] (a).addresses",
      message: /at least one/,
    },
    {
      desc: "pool empty after avoidBuggyIPs",
      yaml: "- {name: a, addresses: [192.0.2.255-192.0.3.0], avoidBuggyIPs: true}",
      code: "LODESTONE_E_POOL_EMPTY",
      path: "pools.yaml[0] (a).addresses",
      message: /no usable addresses/,
    },
    {
      desc: "unknown field, near miss",
      yaml: "- {name: a, addresses: [192.0.2.1], autoassign: false}",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      path: "pools.yaml[0] (a).autoassign",
      message: /did you mean "autoAssign"/,
    },
    {
      desc: "unknown field, kebab case",
      yaml: "- {name: a, addresses: [192.0.2.1], avoid-buggy-ips: true}",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      path: "pools.yaml[0] (a).avoid-buggy-ips",
      message: /did you mean "avoidBuggyIPs"/,
    },
    {
      desc: "unknown nested field",
      yaml: "- {name: a, addresses: [192.0.2.1], announce: {gratuitous: {intervalMS: 5}}}",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      path: "pools.yaml[0] (a).announce.gratuitous.intervalMS",
      message: /did you mean "intervalMs"/,
    },
    {
      desc: "unknown field, far off",
      yaml: "- {name: a, addresses: [192.0.2.1], colour: red}",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      path: "pools.yaml[0] (a).colour",
      message: /^unknown field "colour"$/,
    },
    {
      desc: "bad selector",
      yaml: "- {name: a, addresses: [192.0.2.1], serviceAllocation: {serviceSelector: {matchExpressions: [{key: a, operator: In}]}}}",
      code: "LODESTONE_E_BAD_SELECTOR",
      path: "pools.yaml[0] (a).serviceAllocation.serviceSelector.matchExpressions[0].values",
      message: /at least one value/,
    },
    {
      desc: "bad operator",
      yaml: "- {name: a, addresses: [192.0.2.1], announce: {nodeSelector: {matchExpressions: [{key: a, operator: Has}]}}}",
      code: "LODESTONE_E_CONFIG_VALUE",
      path: "pools.yaml[0] (a).announce.nodeSelector.matchExpressions[0].operator",
      message: /In/,
    },
    {
      desc: "overlap inside one pool",
      yaml: "- {name: a, addresses: [192.0.2.0/24, 192.0.2.128/25]}",
      code: "LODESTONE_E_POOL_OVERLAP",
      path: "pools.yaml[0] (a).addresses",
      message: /192.0.2.128\/25/,
    },
    {
      desc: "duplicate name in one ConfigMap",
      yaml: "- {name: a, addresses: [192.0.2.1]}\n- {name: a, addresses: [192.0.2.2]}",
      code: "LODESTONE_E_DUPLICATE_POOL",
      path: "pools.yaml[1] (a).name",
      message: /already defined in ConfigMap lodestone-system\/pools/,
    },
    {
      desc: "overlap between pools",
      yaml: "- {name: a, addresses: [192.0.2.0/24]}\n- {name: b, addresses: [192.0.2.200-192.0.3.5]}",
      code: "LODESTONE_E_POOL_OVERLAP",
      path: "pools.yaml[1] (b).addresses",
      message: /pool "b" overlap pool "a" .* in 192.0.2.200-192.0.2.255/,
    },
  ])("reports $desc", ({ yaml, code, path, message }) => {
    const r = cm(yaml);
    expect(r.problems).toContainEqual(
      expect.objectContaining({
        code,
        path,
        configMap: "lodestone-system/pools",
        message: expect.stringMatching(message),
      }),
    );
  });

  it.each([
    {
      desc: "the first has other problems",
      yaml: "- {name: a, addresses: [nonsense]}\n- {name: a, addresses: [192.0.2.2]}",
      codes: ["LODESTONE_E_BAD_ADDRESS", "LODESTONE_E_DUPLICATE_POOL"],
    },
    {
      desc: "the second has other problems",
      yaml: "- {name: a, addresses: [192.0.2.1]}\n- {name: a, addresses: [192.0.2.9-192.0.2.1]}",
      codes: ["LODESTONE_E_RANGE_REVERSED", "LODESTONE_E_DUPLICATE_POOL"],
    },
    {
      desc: "both have other problems",
      yaml: "- {name: a, addresses: [nonsense]}\n- {name: a, addresses: [], colour: red}",
      codes: [
        "LODESTONE_E_BAD_ADDRESS",
        "LODESTONE_E_POOL_EMPTY",
        "LODESTONE_E_UNKNOWN_FIELD",
        "LODESTONE_E_DUPLICATE_POOL",
      ],
    },
  ])("reports a duplicate name when $desc, and never applies the later pool", ({ yaml, codes }) => {
    const r = cm(yaml);
    expect(r.problems.map((p) => p.code)).toEqual(codes);
    expect(r.problems.at(-1)?.path).toBe("pools.yaml[1] (a).name");
    // The later declaration loses whatever the first one's state: fixing a typo in the first never swaps pools.
    expect(r.pools.some((p) => p.addresses.some((a) => a.first === 0xc0000202n))).toBe(false);
  });

  it("reports a duplicate name in the MetalLB format when the first pool has problems", () => {
    const r = legacy(
      "address-pools:\n- {name: a, protocol: layer2, addresses: [nonsense]}\n- {name: a, protocol: layer2, addresses: [192.0.2.2]}",
    );
    expect(r.problems.map((p) => [p.code, p.path])).toEqual([
      ["LODESTONE_E_BAD_ADDRESS", "config.address-pools[0] (a).addresses[0]"],
      ["LODESTONE_E_DUPLICATE_POOL", "config.address-pools[1] (a).name"],
    ]);
    expect(r.pools).toEqual([]);
  });

  it("reports every problem at once and keeps the good pools", () => {
    const r = cm(`
- {name: good, addresses: [192.0.2.0/28]}
- {name: bad1, addresses: [nonsense, 192.0.2.9-192.0.2.1], autoAssign: 3}
- {name: bad2, addresses: [], prio: 1}
`);
    expect(r.problems.map((p) => p.code).sort()).toEqual([
      "LODESTONE_E_BAD_ADDRESS",
      "LODESTONE_E_CONFIG_TYPE",
      "LODESTONE_E_POOL_EMPTY",
      "LODESTONE_E_RANGE_REVERSED",
      "LODESTONE_E_UNKNOWN_FIELD",
    ]);
    expect(r.pools.map((p) => p.name)).toEqual(["good"]);
  });

  it.each([
    {
      desc: "no pool data",
      input: { namespace: "n", name: "c", data: { other: "x" } },
      code: "LODESTONE_E_NO_POOL_DATA",
    },
    {
      desc: "label missing",
      input: { namespace: "n", name: "c", labels: {}, data: { "pools.yaml": "[]" } },
      code: "LODESTONE_E_CONFIG_VALUE",
    },
  ])("reports $desc", ({ input, code }) => {
    expect(parsePoolConfigMap(input).problems.map((p) => p.code)).toEqual([code]);
  });
});

describe("parsePoolConfigMap: MetalLB <= 0.12 format", () => {
  it("turns layer2 pools into Lodestone pools and reports the rest by name", () => {
    const r = legacy(`
peers:
- peer-address: 10.0.0.1
  peer-asn: 64501
  my-asn: 64500
bfd-profiles:
- name: fast
address-pools:
- name: l2
  protocol: layer2
  addresses: [192.0.2.0/24]
  auto-assign: false
  avoid-buggy-ips: true
- name: routed
  protocol: bgp
  addresses: [198.51.100.0/24]
`);
    expect(r.format).toBe("metallb");
    expect(r.pools).toHaveLength(1);
    expect(r.pools[0]).toMatchObject({
      name: "l2",
      autoAssign: false,
      avoidBuggyIPs: true,
      // As in MetalLB, whose allocator has no namespace rule for sharing keys.
      serviceAllocation: { allowCrossNamespaceSharing: true },
      configMap: "metallb-system/config",
    });
    expect(r.problems.map((p) => [p.code, p.path])).toEqual([
      ["LODESTONE_E_UNSUPPORTED", "config.peers"],
      ["LODESTONE_E_UNSUPPORTED", "config.bfd-profiles"],
      ["LODESTONE_E_UNSUPPORTED", "config.address-pools[1] (routed)"],
    ]);
    expect(r.problems[2]?.message).toContain('"routed" with protocol bgp');
  });

  it.each([
    {
      desc: "unknown pool field",
      config: "address-pools: [{name: a, protocol: layer2, addresses: [192.0.2.1], autoAssign: true}]",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      message: /did you mean "auto-assign"/,
    },
    {
      desc: "unknown top-level key",
      config: "adress-pools: []",
      code: "LODESTONE_E_UNKNOWN_FIELD",
      message: /did you mean "address-pools"/,
    },
    {
      desc: "bad protocol",
      config: "address-pools: [{name: a, protocol: arp, addresses: [192.0.2.1]}]",
      code: "LODESTONE_E_CONFIG_VALUE",
      message: /layer2/,
    },
    {
      desc: "bad address",
      config: "address-pools: [{name: a, protocol: layer2, addresses: [192.0.2.1/99]}]",
      code: "LODESTONE_E_BAD_ADDRESS",
      message: /192.0.2.1\/99/,
    },
    {
      desc: "bgp-advertisements on a layer2 pool",
      config: "address-pools: [{name: a, protocol: layer2, addresses: [192.0.2.1], bgp-advertisements: [{}]}]",
      code: "LODESTONE_E_UNSUPPORTED",
      message: /bgp-advertisements/,
    },
    { desc: "not a mapping", config: "- a", code: "LODESTONE_E_CONFIG_TYPE", message: /mapping/ },
    { desc: "malformed YAML", config: "address-pools: [", code: "LODESTONE_E_YAML_SYNTAX", message: /line/ },
  ])("reports $desc", ({ config, code, message }) => {
    const r = legacy(config);
    expect(r.problems).toContainEqual(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });
});

describe("mergePools", () => {
  const parse = (name: string, yaml: string) =>
    parsePoolConfigMap({ namespace: "ns", name, data: { "pools.yaml": yaml } });

  it("reports duplicates and overlaps across ConfigMaps in name order, naming both pools and the span", () => {
    const b = parse("b", "- {name: shared, addresses: [192.0.2.0/25]}\n- {name: wide, addresses: ['2001:db8::/64']}");
    const a = parse(
      "a",
      "- {name: shared, addresses: [198.51.100.0/24]}\n- {name: v6, addresses: ['2001:db8::ff00-2001:db8::ffff']}",
    );
    const r = mergePools([b, a]);
    expect(r.pools.map((p) => `${p.configMap}:${p.name}`)).toEqual(["ns/a:shared", "ns/a:v6"]);
    expect(r.problems).toEqual([
      expect.objectContaining({
        code: "LODESTONE_E_DUPLICATE_POOL",
        configMap: "ns/b",
        message: expect.stringContaining("ns/a"),
      }),
      expect.objectContaining({
        code: "LODESTONE_E_POOL_OVERLAP",
        configMap: "ns/b",
        message:
          'addresses of pool "wide" overlap pool "v6" (ConfigMap ns/a) in 2001:db8::ff00/120; pool "wide" is ignored',
      }),
    ]);
  });

  it("accepts disjoint pools", () => {
    const r = mergePools([
      parse("a", "- {name: x, addresses: [192.0.2.0/25]}"),
      parse("b", "- {name: y, addresses: [192.0.2.128/25]}"),
    ]);
    expect(r.problems).toEqual([]);
    expect(r.pools).toHaveLength(2);
  });
});

describe("config/schema.json", () => {
  it("matches the zod schema (run `npm run gen:schema` after changing it)", () => {
    const onDisk: unknown = JSON.parse(readFileSync(new URL("../../config/schema.json", import.meta.url), "utf8"));
    expect(onDisk).toEqual(poolsJsonSchema());
  });
});
