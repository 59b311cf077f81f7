import { describe, expect, it } from "vitest";
import { type BgpConfig, mergeBgp, parseBgpText } from "../../src/core/bgp-config.ts";
import { networkCommands, networkLines, renderFrrConfig, withNetworks } from "../../src/core/bgp-frr.ts";
import { type BgpService, planBgp, prefixOf } from "../../src/core/bgp-plan.ts";
import { type Pool, parsePoolConfigMap } from "../../src/core/config.ts";
import { type IpAddress, parseIp } from "../../src/core/ip.ts";

const pools: readonly Pool[] = parsePoolConfigMap({
  namespace: "lodestone-system",
  name: "pools",
  labels: { "lodestone.dev/pools": "true" },
  data: {
    "pools.yaml": `
- {name: web, addresses: [203.0.113.0/26, "2001:db8:1::/120"], announce: {layer2: false}}
- {name: lan, addresses: [192.0.2.100-192.0.2.199]}
`,
  },
}).pools;

function bgp(text: string): BgpConfig {
  const parsed = parseBgpText(text, "lodestone-system/bgp");
  expect(parsed.problems).toEqual([]);
  const merged = mergeBgp([parsed.config], new Set(pools.map((p) => p.name)));
  expect(merged.problems).toEqual([]);
  return merged.config;
}

const PEERS = `
bgpPeers:
  - {name: tor, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, holdTime: 9, bfdProfile: fast}
  - {name: tor6, peerAddress: "2001:db8::1", peerASN: 64512, myASN: 64513}
  - {name: edge, peerAddress: 192.0.2.2, peerASN: 64600, myASN: 64514, nodeSelector: {matchLabels: {edge: "true"}}}
bfdProfiles:
  - {name: fast, receiveInterval: 100, transmitInterval: 100}
`;

const ip = (t: string): IpAddress => parseIp(t) as IpAddress;
const svc = (key: string, ips: string[], local = false): BgpService => ({ key, ingress: ips.map(ip), local });

const prefixesTo = (plan: ReturnType<typeof planBgp>, peer: string) =>
  plan.peers.find((p) => p.peer.name === peer)?.prefixes.map((p) => p.prefix);

describe("planBgp", () => {
  const config = bgp(`${PEERS}
bgpAdvertisements:
  - {name: all, pools: [web]}
`);
  const services = [
    svc("default/a", ["203.0.113.5", "2001:db8:1::5"]),
    svc("default/b", ["203.0.113.6"], true),
    svc("default/l2", ["192.0.2.100"]),
    svc("default/outside", ["198.51.100.9"]),
  ];
  const base = { config, pools, services, readyHere: (k: string) => k === "default/b" };

  it.each([
    {
      desc: "Cluster Services from every node; Local only with a ready endpoint here; v4 to v4 peers, v6 to v6",
      labels: {},
      ready: (k: string) => k === "default/b",
      tor: ["203.0.113.5/32", "203.0.113.6/32"],
      tor6: ["2001:db8:1::5/128"],
      edge: undefined,
    },
    {
      desc: "a Local Service without an endpoint here is not advertised from here",
      labels: {},
      ready: () => false,
      tor: ["203.0.113.5/32"],
      tor6: ["2001:db8:1::5/128"],
      edge: undefined,
    },
    {
      desc: "a peer's nodeSelector adds its session on matching nodes only",
      labels: { edge: "true" },
      ready: () => false,
      tor: ["203.0.113.5/32"],
      tor6: ["2001:db8:1::5/128"],
      edge: ["203.0.113.5/32"],
    },
    {
      desc: "an excluded node keeps its sessions and advertises nothing",
      labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" },
      ready: () => true,
      tor: [],
      tor6: [],
      edge: undefined,
    },
  ])("$desc", ({ labels, ready, tor, tor6, edge }) => {
    const plan = planBgp({ ...base, nodeLabels: labels, readyHere: ready });
    expect(prefixesTo(plan, "tor")).toEqual(tor);
    expect(prefixesTo(plan, "tor6")).toEqual(tor6);
    expect(prefixesTo(plan, "edge")).toEqual(edge);
  });

  it("draining withdraws every prefix but keeps the sessions", () => {
    const plan = planBgp({ ...base, nodeLabels: {}, withdrawAll: true });
    expect(plan.peers.map((p) => [p.peer.name, p.prefixes.length])).toEqual([
      ["tor", 0],
      ["tor6", 0],
    ]);
    expect(plan.silentBecause).toBe("draining");
  });

  it("an unknown Node has its sessions, no prefixes, and says why", () => {
    const plan = planBgp({ ...base, nodeLabels: undefined });
    expect(plan.peers).toEqual([]);
  });

  it("advertisements: node selector, peers, aggregation, attributes merged (communities unite, highest localPref)", () => {
    const c = bgp(`${PEERS}
bgpAdvertisements:
  - {name: agg, pools: [web], aggregationLength: 26, aggregationLengthV6: 120, peers: [tor, tor6], communities: ["64512:1"]}
  - {name: pref, pools: [web], localPref: 50, peers: [tor], communities: ["large:64512:2:3"]}
  - {name: pref2, pools: [web], localPref: 300, peers: [tor], communities: ["64512:1"], nodeSelector: {matchLabels: {rack: a}}}
`);
    const plan = planBgp({ ...base, config: c, nodeLabels: { rack: "a" } });
    expect(plan.peers.find((p) => p.peer.name === "tor")?.prefixes).toEqual([
      { prefix: "203.0.113.0/26", family: 4, communities: ["64512:1"] },
      { prefix: "203.0.113.5/32", family: 4, localPref: 300, communities: ["64512:1", "large:64512:2:3"] },
      { prefix: "203.0.113.6/32", family: 4, localPref: 300, communities: ["64512:1", "large:64512:2:3"] },
    ]);
    expect(prefixesTo(plan, "tor6")).toEqual(["2001:db8:1::/120"]);
    const elsewhere = planBgp({ ...base, config: c, nodeLabels: {} });
    expect(elsewhere.peers.find((p) => p.peer.name === "tor")?.prefixes[1]).toMatchObject({ localPref: 50 });
  });

  it("no advertisement: sessions, nothing sent; an advertisement without pools takes every pool", () => {
    expect(prefixesTo(planBgp({ ...base, config: bgp(PEERS), nodeLabels: {} }), "tor")).toEqual([]);
    const all = bgp(`${PEERS}
bgpAdvertisements: [{name: any}]
`);
    expect(prefixesTo(planBgp({ ...base, config: all, nodeLabels: {} }), "tor")).toEqual([
      "192.0.2.100/32",
      "203.0.113.5/32",
      "203.0.113.6/32",
    ]);
  });

  it.each([
    ["203.0.113.77", 24, "203.0.113.0/24"],
    ["203.0.113.77", 32, "203.0.113.77/32"],
    ["203.0.113.77", 0, "0.0.0.0/0"],
    ["2001:db8:1::5", 64, "2001:db8:1::/64"],
  ])("prefixOf(%s, %d) = %s", (addr, len, want) => {
    expect(prefixOf(ip(addr), len).text).toBe(want);
  });
});

describe("renderFrrConfig", () => {
  const config = bgp(`${PEERS}
bgpAdvertisements:
  - {name: all, pools: [web], localPref: 120, communities: ["64512:7", "large:64512:1:1"], peers: [tor]}
  - {name: v6, pools: [web], peers: [tor6]}
`);
  const services = [svc("default/a", ["203.0.113.5", "2001:db8:1::5"]), svc("default/c", ["203.0.113.9"])];
  const plan = planBgp({ config, pools, services, nodeLabels: {}, readyHere: () => false });

  it("one set of prefixes per family: attributes at origination, no prefix-lists (golden text)", () => {
    expect(renderFrrConfig(plan, { bfdProfiles: config.bfdProfiles, passwords: new Map([["tor", "s3cret"]]) }))
      .toBe(`frr defaults traditional
!
bgp as-path access-list lodestone-originated seq 5 permit ^$
!
route-map lodestone-in deny 10
exit
!
route-map lodestone-set-da960ce4 permit 10
 set local-preference 120
 set community 64512:7
 set large-community 64512:1:1
exit
!
route-map lodestone-tor-out-v4 permit 10
 match as-path lodestone-originated
exit
route-map lodestone-tor-out-v4 deny 65535
exit
!
route-map lodestone-tor6-out-v6 permit 10
 match as-path lodestone-originated
exit
route-map lodestone-tor6-out-v6 deny 65535
exit
!
router bgp 64513
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 bgp graceful-restart-disable
 neighbor 192.0.2.1 remote-as 64512
 neighbor 192.0.2.1 description lodestone-tor
 neighbor 192.0.2.1 timers 3 9
 neighbor 192.0.2.1 password s3cret
 neighbor 192.0.2.1 bfd
 neighbor 192.0.2.1 bfd profile fast
 neighbor 2001:db8::1 remote-as 64512
 neighbor 2001:db8::1 description lodestone-tor6
 neighbor 2001:db8::1 timers 30 90
 !
 address-family ipv4 unicast
  network 203.0.113.5/32 route-map lodestone-set-da960ce4
  network 203.0.113.9/32 route-map lodestone-set-da960ce4
  neighbor 192.0.2.1 activate
  neighbor 192.0.2.1 route-map lodestone-in in
  neighbor 192.0.2.1 route-map lodestone-tor-out-v4 out
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:1::5/128
  neighbor 2001:db8::1 activate
  neighbor 2001:db8::1 route-map lodestone-in in
  neighbor 2001:db8::1 route-map lodestone-tor6-out-v6 out
 exit-address-family
exit
!
bfd
 profile fast
  detect-multiplier 3
  receive-interval 100
  transmit-interval 100
 exit
exit
!
`);
  });

  it("is deterministic: Service order does not change the text", () => {
    const reversed = planBgp({
      config,
      pools,
      services: [...services].reverse(),
      nodeLabels: {},
      readyHere: () => false,
    });
    expect(renderFrrConfig(reversed, { bfdProfiles: config.bfdProfiles })).toBe(
      renderFrrConfig(plan, { bfdProfiles: config.bfdProfiles }),
    );
  });

  it("a peer with another myASN gets local-as; draining keeps neighbors with deny-all route-maps", () => {
    const c = bgp(`
bgpPeers:
  - {name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}
  - {name: b, peerAddress: 192.0.2.2, peerASN: 64512, myASN: 64520, peerPort: 1179, ebgpMultiHop: true, sourceAddress: 192.0.2.11}
bgpAdvertisements: [{name: all}]
`);
    const text = renderFrrConfig(
      planBgp({ config: c, pools, services, nodeLabels: {}, readyHere: () => false, withdrawAll: true }),
      {
        bfdProfiles: [],
      },
    );
    expect(text).toContain(" neighbor 192.0.2.2 local-as 64520 no-prepend replace-as");
    expect(text).toContain(" neighbor 192.0.2.2 port 1179");
    expect(text).toContain(" neighbor 192.0.2.2 ebgp-multihop");
    expect(text).toContain(" neighbor 192.0.2.2 update-source 192.0.2.11");
    expect(text).not.toMatch(/^ {2}network /m);
    expect(text).not.toContain("prefix-list");
    expect(text).toContain("route-map lodestone-a-out-v4 deny 65535");
  });

  it("peers of one family given different prefixes: one prefix-list per peer and attribute set", () => {
    const c = bgp(`
bgpPeers:
  - {name: a, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513}
  - {name: b, peerAddress: 192.0.2.2, peerASN: 64512, myASN: 64513}
bgpAdvertisements:
  - {name: to-a, pools: [web], peers: [a], communities: ["64512:1"]}
  - {name: to-b, pools: [lan], peers: [b]}
`);
    const text = renderFrrConfig(
      planBgp({
        config: c,
        pools,
        services: [svc("d/x", ["203.0.113.5"]), svc("d/y", ["192.0.2.100"])],
        nodeLabels: {},
        readyHere: () => false,
      }),
      { bfdProfiles: [] },
    );
    expect(text).toContain("ip prefix-list lodestone-a-v4-1 seq 5 permit 203.0.113.5/32\n");
    expect(text).toContain("ip prefix-list lodestone-b-v4-1 seq 5 permit 192.0.2.100/32\n");
    expect(text).toContain(
      "route-map lodestone-a-out-v4 permit 10\n match ip address prefix-list lodestone-a-v4-1\n set community 64512:1\nexit\n",
    );
    expect(text).toContain("  network 192.0.2.100/32\n  network 203.0.113.5/32\n");
  });

  it("no peers on this node: an empty configuration (FRR drops any earlier router bgp)", () => {
    expect(renderFrrConfig({ peers: [] }, { bfdProfiles: [] })).toBe("frr defaults traditional\n!\n");
  });
});

describe("applying network changes without frr-reload.py", () => {
  const running = `frr version 8.4.4
router bgp 64513
 neighbor 192.0.2.1 remote-as 64512
 !
 address-family ipv4 unicast
  network 203.0.113.5/32
  network 203.0.113.6/32 route-map lodestone-set-1
  neighbor 192.0.2.1 activate
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:1::5/128
 exit-address-family
exit
`;
  const mine = running
    .replace("  network 203.0.113.5/32\n", "")
    .replace("route-map lodestone-set-1", "route-map lodestone-set-2")
    .replace("  network 2001:db8:1::5/128\n", "  network 2001:db8:1::5/128\n  network 2001:db8:1::7/128\n");

  it("networkLines reads them per family and prefix, as FRR prints them", () => {
    const n = networkLines(running);
    expect([...n.keys()]).toEqual(["ipv4 unicast", "ipv6 unicast"]);
    expect(n.get("ipv4 unicast")?.get("203.0.113.6/32")).toBe("  network 203.0.113.6/32 route-map lodestone-set-1");
  });

  it("networkCommands sends only what changed: added, changed route-map, removed", () => {
    expect(networkCommands("64513", networkLines(running), networkLines(mine))).toBe(`router bgp 64513
 address-family ipv4 unicast
  network 203.0.113.6/32 route-map lodestone-set-2
  no network 203.0.113.5/32
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:1::7/128
 exit-address-family
exit
`);
    expect(networkCommands("64513", networkLines(mine), networkLines(mine))).toBe("");
  });

  it("withNetworks puts FRR's own networks into a configuration, leaving the rest as it is", () => {
    const merged = withNetworks(mine, networkLines(running));
    expect(networkLines(merged)).toEqual(networkLines(running));
    expect(withNetworks(merged, new Map())).toBe(withNetworks(mine, new Map()));
    expect(merged).toContain("  neighbor 192.0.2.1 activate");
  });
});
