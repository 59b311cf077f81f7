// Issue 16: where a user switching from MetalLB would feel a difference. Each row says the MetalLB behaviour it
// matches and where MetalLB does it (MetalLB v0.12.1 for the legacy `config`, main for the allocator).
import { describe, expect, it } from "vitest";
import { parsePoolConfigMap } from "../../src/core/config.ts";
import { formatRange } from "../../src/core/range.ts";
import { ingressShapeProblem } from "../../src/core/service-request.ts";

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
