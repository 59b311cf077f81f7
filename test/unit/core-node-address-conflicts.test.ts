import { describe, expect, it } from "vitest";
import { parsePoolConfigMap, type Pool } from "../../src/core/config.ts";
import { nodeAddressConflicts, type NodeAddresses } from "../../src/core/node-address-conflicts.ts";

const pools = (yaml: string): readonly Pool[] => {
  const r = parsePoolConfigMap({
    namespace: "ls",
    name: "pools",
    labels: { "lodestone.dev/pools": "true" },
    data: { "pools.yaml": yaml },
  });
  expect(r.problems).toEqual([]);
  return r.pools;
};

const node = (name: string, ...addresses: [string, string][]): NodeAddresses => ({
  name,
  addresses: addresses.map(([type, address]) => ({ type, address })),
});

const config = pools(`
- {name: lan, addresses: [192.0.2.10-192.0.2.19, 198.51.100.0/28]}
- {name: v6, addresses: ["2001:db8::/120", "2001:db8:1::5-2001:db8:1::9"]}
`);

describe("nodeAddressConflicts", () => {
  it.each([
    {
      desc: "an IPv4 range's first address",
      addr: "192.0.2.10",
      path: "pools.yaml[0] (lan).addresses",
      span: "192.0.2.10-192.0.2.19",
    },
    {
      desc: "an IPv4 range's last address",
      addr: "192.0.2.19",
      path: "pools.yaml[0] (lan).addresses",
      span: "192.0.2.10-192.0.2.19",
    },
    {
      desc: "inside an IPv4 CIDR",
      addr: "198.51.100.7",
      path: "pools.yaml[0] (lan).addresses",
      span: "198.51.100.0/28",
    },
    {
      desc: "an IPv6 CIDR's last address",
      addr: "2001:db8::ff",
      path: "pools.yaml[1] (v6).addresses",
      span: "2001:db8::/120",
    },
    {
      desc: "an IPv6 range's first address",
      addr: "2001:db8:1::5",
      path: "pools.yaml[1] (v6).addresses",
      span: "2001:db8:1::5-2001:db8:1::9",
    },
  ])("$desc ($addr) is warned about, naming pool, node and address", ({ addr, path, span }) => {
    const w = nodeAddressConflicts(config, [node("worker-1", ["InternalIP", addr])]);
    expect(w).toEqual([
      {
        code: "LODESTONE_W_NODE_ADDRESS_IN_POOL",
        configMap: "ls/pools",
        path,
        message: `${addr} (in ${span}) is node worker-1's InternalIP; a Service given it would be answered by two hosts: take it out of the pool`,
      },
    ]);
  });

  it.each([
    { desc: "just below an IPv4 range", addr: "192.0.2.9" },
    { desc: "just above an IPv4 range", addr: "192.0.2.20" },
    { desc: "just above an IPv4 CIDR", addr: "198.51.100.16" },
    { desc: "between two IPv6 entries", addr: "2001:db8::100" },
    { desc: "just above an IPv6 range", addr: "2001:db8:1::a" },
    { desc: "the IPv4 value of an IPv6 pool address (families never mix)", addr: "0.0.0.5" },
  ])("no warning $desc ($addr)", ({ addr }) => {
    expect(nodeAddressConflicts(config, [node("worker-1", ["InternalIP", addr])])).toEqual([]);
  });

  it("ExternalIP counts; Hostname, other types and unparsable addresses do not", () => {
    const w = nodeAddressConflicts(config, [
      node("a", ["Hostname", "192.0.2.11"], ["InternalDNS", "192.0.2.12"], ["InternalIP", "not-an-ip"]),
      node("b", ["InternalIP", "10.0.0.1"], ["ExternalIP", "2001:db8::1"]),
    ]);
    expect(w.map((x) => x.message)).toEqual([
      "2001:db8::1 (in 2001:db8::/120) is node b's ExternalIP; a Service given it would be answered by two hosts: take it out of the pool",
    ]);
  });

  it("every node address inside a pool is named, in node order", () => {
    const w = nodeAddressConflicts(config, [
      node("n1", ["InternalIP", "192.0.2.15"], ["ExternalIP", "198.51.100.1"]),
      node("n2", ["InternalIP", "192.0.2.15"]),
    ]);
    expect(w.map((x) => x.message.split(";")[0])).toEqual([
      "192.0.2.15 (in 192.0.2.10-192.0.2.19) is node n1's InternalIP",
      "198.51.100.1 (in 198.51.100.0/28) is node n1's ExternalIP",
      "192.0.2.15 (in 192.0.2.10-192.0.2.19) is node n2's InternalIP",
    ]);
  });

  it("no pools or no nodes: no warnings", () => {
    expect(nodeAddressConflicts([], [node("n", ["InternalIP", "192.0.2.10"])])).toEqual([]);
    expect(nodeAddressConflicts(config, [])).toEqual([]);
  });

  it("a /8 and a /64 cost a lookup, not their size: 5,000 nodes against 1,000 pools", () => {
    const many = pools(
      Array.from({ length: 1000 }, (_, i) => `- {name: p${i}, addresses: ["2001:db8:${i.toString(16)}::/64"]}`).join(
        "\n",
      ) + "\n- {name: big, addresses: [10.0.0.0/8]}",
    );
    const nodes = Array.from({ length: 5000 }, (_, i) =>
      node(
        `n${i}`,
        ["InternalIP", `10.${i >> 8}.${i & 255}.1`],
        ["InternalIP", `2001:db8:${(i % 1000).toString(16)}::1`],
      ),
    );
    expect(nodeAddressConflicts(many, nodes)).toHaveLength(10_000);
  });
});
