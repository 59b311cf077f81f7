import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AnnouncerCandidate,
  type RankingRequest,
  rankAnnouncers,
  hasInterfaceFor,
  rankKey,
} from "../../src/core/announcer-ranking.ts";
import { type IpAddress, ip, parseIp } from "../../src/core/ip.ts";
import { EXCLUDE_LABEL } from "../../src/core/well-known.ts";

const addr = (text: string): IpAddress => parseIp(text)!;
const lan = [
  {
    name: "eth0",
    prefixes: [
      { ip: addr("192.0.2.11"), bits: 24 },
      { ip: addr("2001:db8::11"), bits: 64 },
    ],
    defaultRoute4: false,
    defaultRoute6: false,
  },
];
const node = (name: string, over: Partial<AnnouncerCandidate> = {}): AnnouncerCandidate => ({
  name,
  alive: true,
  ready: true,
  labels: {},
  interfaces: lan,
  ...over,
});
const vip = addr("192.0.2.100");

describe("rankKey", () => {
  it("is sha256 of node#ip, as MetalLB ranks", () => {
    // printf 'node1#192.0.2.100' | sha256sum
    expect(rankKey("node1", vip)).toBe("576210ee6e1a27ca89dcc85ef3d3ed22c53a98c3840e1345fa2b0070edbc5447");
    expect(rankKey("node1", addr("2001:DB8:0::1"))).toBe(rankKey("node1", addr("2001:db8::1")));
  });
});

describe("rankAnnouncers: eligibility", () => {
  const three = [node("node1"), node("node2"), node("node3")];
  const full = rankAnnouncers(three, { ip: vip });
  const owner = full.ok ? full.owner : "";

  it.each<{ desc: string; change: Partial<AnnouncerCandidate>; reason: string }>([
    { desc: "dead owner", change: { alive: false }, reason: "not-alive" },
    { desc: "owner not Ready", change: { ready: false }, reason: "not-ready" },
    { desc: "owner labelled for exclusion", change: { labels: { [EXCLUDE_LABEL]: "" } }, reason: "excluded-by-label" },
    {
      desc: "owner without an interface for the IP",
      change: { interfaces: [{ name: "eth9", prefixes: [], defaultRoute4: false, defaultRoute6: false }] },
      reason: "no-interface",
    },
  ])("$desc moves the IP to the successor", ({ change, reason }) => {
    expect(full.ok).toBe(true);
    const nodes = three.map((n) => (n.name === owner ? node(n.name, change) : n));
    const r = rankAnnouncers(nodes, { ip: vip });
    expect(r.ok && r.owner).toBe(full.ok && full.ranking[1]);
    expect(r.excluded).toEqual([{ node: owner, reason }]);
  });

  it.each<{ desc: string; req: Partial<RankingRequest>; nodes: AnnouncerCandidate[]; owners: string[] }>([
    {
      desc: "node selector keeps only matching nodes",
      req: { nodeSelector: (l) => l["zone"] === "a" },
      nodes: [node("n1", { labels: { zone: "b" } }), node("n2", { labels: { zone: "a" } }), node("n3")],
      owners: ["n2"],
    },
    {
      desc: "announce.interfaces requires the named interface",
      req: { interfaces: ["bond0"] },
      nodes: [
        node("n1"),
        node("n2", { interfaces: [{ name: "bond0", prefixes: [], defaultRoute4: false, defaultRoute6: false }] }),
      ],
      owners: ["n2"],
    },
    {
      desc: "default route interface counts for IPs outside every subnet",
      req: { ip: addr("203.0.113.5") },
      nodes: [
        node("n1"),
        node("n2", { interfaces: [{ name: "eth1", prefixes: [], defaultRoute4: true, defaultRoute6: false }] }),
      ],
      owners: ["n2"],
    },
    {
      desc: "unpublished interfaces get the benefit of the doubt",
      req: { ip: addr("203.0.113.5") },
      nodes: [node("n1"), node("n2", { interfaces: undefined })],
      owners: ["n2"],
    },
    {
      desc: "eTP Local: only nodes with a ready local endpoint",
      req: { localEndpointNodes: [new Set(["n3"])] },
      nodes: [node("n1"), node("n2"), node("n3")],
      owners: ["n3"],
    },
    {
      desc: "eTP Local shared IP: nodes serving every Local Service",
      req: { localEndpointNodes: [new Set(["n1", "n3"]), new Set(["n3", "n2"])] },
      nodes: [node("n1"), node("n2"), node("n3")],
      owners: ["n3"],
    },
    {
      desc: "eTP Local shared IP with disjoint endpoints: nodes serving at least one",
      req: { localEndpointNodes: [new Set(["n1"]), new Set(["n2"])] },
      nodes: [node("n1"), node("n2"), node("n3")],
      owners: ["n1", "n2"],
    },
  ])("$desc", ({ req, nodes, owners }) => {
    const r = rankAnnouncers(nodes, { ip: vip, ...req });
    expect(r.ok).toBe(true);
    if (r.ok) expect(owners).toContain(r.owner);
    if (r.ok) expect([...r.ranking].sort()).toEqual(owners);
  });

  it.each<{ desc: string; nodes: AnnouncerCandidate[]; req: Partial<RankingRequest>; reason: string; says: string }>([
    { desc: "no nodes at all", nodes: [], req: {}, reason: "no-nodes", says: "no speaker nodes" },
    {
      desc: "eTP Local without any endpoint",
      nodes: [node("n1"), node("n2")],
      req: { localEndpointNodes: [new Set()] },
      reason: "no-local-endpoint",
      says: "2 without a ready local endpoint (externalTrafficPolicy: Local) (n1, n2)",
    },
    {
      desc: "everything dead or excluded",
      nodes: [node("n1", { alive: false }), node("n2", { labels: { [EXCLUDE_LABEL]: "true" } })],
      req: {},
      reason: "excluded-by-label",
      says: "1 not alive in the speaker membership (n1); 1 labelled",
    },
  ])("nobody eligible: $desc", ({ nodes, req, reason, says }) => {
    const r = rankAnnouncers(nodes, { ip: vip, ...req });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(reason);
      expect(r.message).toContain(says);
    }
  });
});

describe("hasInterfaceFor", () => {
  it.each<{ desc: string; ip: string; want: boolean }>([
    { desc: "inside the v4 subnet", ip: "192.0.2.200", want: true },
    { desc: "outside the v4 subnet", ip: "198.51.100.1", want: false },
    { desc: "inside the v6 subnet", ip: "2001:db8::ffff", want: true },
    { desc: "outside the v6 subnet", ip: "2001:db8:1::1", want: false },
  ])("$desc", ({ ip: text, want }) => {
    expect(hasInterfaceFor(lan, addr(text))).toBe(want);
  });
});

// Property tests: the guarantees the failover design leans on.
const names = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), { minLength: 1, maxLength: 12 });
const ips = fc.uniqueArray(
  fc.bigInt({ min: 0n, max: 0xffffffffn }).map((v) => ip(4, v)),
  { minLength: 1, maxLength: 20, selector: (a) => a.value },
);
const ownerOf = (nodes: readonly string[], a: IpAddress): string | undefined => {
  const r = rankAnnouncers(
    nodes.map((n) => node(n, { interfaces: undefined })),
    { ip: a },
  );
  return r.ok ? r.owner : undefined;
};

describe("rankAnnouncers: properties", () => {
  it("every speaker computes the same owner whatever order it lists the nodes in", () => {
    fc.assert(
      fc.property(names, ips, fc.nat(), (ns, as, seed) => {
        const shuffled = [...ns].sort((a, b) => ((a.charCodeAt(0) * seed) % 7) - ((b.charCodeAt(0) * seed) % 7));
        for (const a of as) expect(ownerOf(shuffled, a)).toBe(ownerOf(ns, a));
      }),
    );
  });

  it("removing a node that owns nothing moves no IP", () => {
    fc.assert(
      fc.property(names, ips, fc.nat(), (ns, as, pick) => {
        const victim = ns[pick % ns.length]!;
        const rest = ns.filter((n) => n !== victim);
        for (const a of as) {
          const before = ownerOf(ns, a);
          if (before !== victim) expect(ownerOf(rest, a)).toBe(before);
        }
      }),
    );
  });

  it("removing an owner moves its IPs to the successor, and only its IPs", () => {
    fc.assert(
      fc.property(names, ips, fc.nat(), (ns, as, pick) => {
        fc.pre(ns.length >= 2);
        const victim = ns[pick % ns.length]!;
        const rest = ns.filter((n) => n !== victim);
        for (const a of as) {
          const r = rankAnnouncers(
            ns.map((n) => node(n, { interfaces: undefined })),
            { ip: a },
          );
          if (!r.ok) throw new Error("all nodes eligible");
          const after = ownerOf(rest, a);
          expect(after).toBe(r.owner === victim ? r.ranking[1] : r.owner);
        }
      }),
    );
  });

  it("adding a node moves an IP only to that node", () => {
    fc.assert(
      fc.property(names, ips, fc.stringMatching(/^[a-z]{1,8}-new$/), (ns, as, extra) => {
        for (const a of as) {
          const before = ownerOf(ns, a);
          const after = ownerOf([...ns, extra], a);
          expect([before, extra]).toContain(after);
        }
      }),
    );
  });

  it("spreads many IPs over the nodes", () => {
    const nodes = ["node1", "node2", "node3"];
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const o = ownerOf(nodes, ip(4, 0xc0000200n + BigInt(i)))!;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const n of nodes) expect(counts.get(n) ?? 0).toBeGreaterThan(60);
  });
});
