import { describe, expect, it } from "vitest";
import {
  type AnnouncePlan,
  type AnnouncePool,
  type AnnouncedService,
  followDeaths,
  gainsToSettle,
  ownersOf,
  planAnnouncements,
  planSteps,
} from "../../src/core/announce-plan.ts";
import { announcingNodeFor, formatAnnouncingNodes } from "../../src/core/announcing-node.ts";
import type { AnnouncerCandidate } from "../../src/core/announcer-ranking.ts";
import { type IpAddress, formatIp, ipKey, parseIp } from "../../src/core/ip.ts";

const addr = (t: string): IpAddress => parseIp(t)!;
const nodes: AnnouncerCandidate[] = ["node1", "node2", "node3"].map((name) => ({
  name,
  alive: true,
  ready: true,
  labels: { zone: name === "node3" ? "b" : "a" },
  interfaces: undefined,
}));
const inRange = (lo: string, hi: string) => (ip: IpAddress) =>
  ip.family === addr(lo).family && ip.value >= addr(lo).value && ip.value <= addr(hi).value;
const pool = (over: Partial<AnnouncePool> = {}): AnnouncePool => ({
  name: "lan",
  contains: inRange("192.0.2.100", "192.0.2.199"),
  allowsNamespace: (ns) => ns !== "evil",
  externalIPs: false,
  gratuitous: { intervalMs: 1100, count: 5 },
  ...over,
});
const svc = (key: string, over: Partial<AnnouncedService> = {}): AnnouncedService => ({
  key,
  namespace: key.split("/")[0]!,
  ingressIps: [],
  externalIps: [],
  localTraffic: false,
  endpointNodes: new Set(),
  ...over,
});
const ownerOf = (ip: string, services: AnnouncedService[], pools = [pool()]) => {
  const p = planAnnouncements("node1", services, pools, nodes).ips.find((x) => formatIp(x.ip) === ip);
  if (p === undefined) return undefined;
  return p.announcer.ok ? p.announcer.owner : p.announcer.reason;
};

describe("planAnnouncements", () => {
  it("claims exactly the IPs this node wins, with the pool's announce settings", () => {
    const services = Array.from({ length: 30 }, (_, i) =>
      svc(`default/s${i}`, { ingressIps: [addr(`192.0.2.${100 + i}`)] }),
    );
    const plan = planAnnouncements("node1", services, [pool({ interfaces: ["eth0"] })], nodes);
    const mine = plan.ips.filter((p) => p.announcer.ok && p.announcer.owner === "node1");
    expect(plan.claims.map((c) => formatIp(c.ip))).toEqual(mine.map((p) => formatIp(p.ip)));
    expect(plan.claims.length).toBeGreaterThan(0);
    expect(plan.claims[0]).toMatchObject({ interfaces: ["eth0"], gratuitous: { intervalMs: 1100, count: 5 } });
  });

  it("Services sharing an IP are announced once, from one node", () => {
    const ip = addr("192.0.2.150");
    const plan = planAnnouncements(
      "node1",
      [svc("default/a", { ingressIps: [ip] }), svc("default/b", { ingressIps: [ip] })],
      [pool()],
      nodes,
    );
    expect(plan.ips).toHaveLength(1);
    expect(plan.ips[0]!.services).toEqual(["default/a", "default/b"]);
  });

  it.each<{ desc: string; s: AnnouncedService; pools: AnnouncePool[]; want: string | undefined; reason?: string }>([
    {
      desc: "eTP Local goes to the endpoint's node",
      s: svc("default/a", { ingressIps: [addr("192.0.2.150")], localTraffic: true, endpointNodes: new Set(["node2"]) }),
      pools: [pool()],
      want: "node2",
    },
    {
      desc: "eTP Local without endpoints: nobody",
      s: svc("default/a", { ingressIps: [addr("192.0.2.150")], localTraffic: true }),
      pools: [pool()],
      want: "no-local-endpoint",
    },
    {
      desc: "the pool's nodeSelector",
      s: svc("default/a", { ingressIps: [addr("192.0.2.150")] }),
      pools: [pool({ nodeSelector: (l) => l["zone"] === "b" })],
      want: "node3",
    },
    {
      desc: "externalIPs in an opted-in pool from an allowed namespace",
      s: svc("default/a", { externalIps: [addr("192.0.2.150")] }),
      pools: [pool({ externalIPs: true, nodeSelector: (l) => l["zone"] === "b" })],
      want: "node3",
    },
    {
      desc: "externalIPs when the pool does not opt in (the default)",
      s: svc("default/a", { externalIps: [addr("192.0.2.150")] }),
      pools: [pool()],
      want: undefined,
      reason: "external-ips-disabled",
    },
    {
      desc: "externalIPs from a namespace the pool does not serve (CVE-2020-8554)",
      s: svc("evil/a", { externalIps: [addr("192.0.2.150")] }),
      pools: [pool({ externalIPs: true })],
      want: undefined,
      reason: "namespace-not-allowed",
    },
    {
      desc: "externalIPs outside every pool",
      s: svc("default/a", { externalIps: [addr("203.0.113.9")] }),
      pools: [pool({ externalIPs: true })],
      want: undefined,
      reason: "outside-pools",
    },
  ])("$desc", ({ s, pools, want, reason }) => {
    const ip = formatIp(s.ingressIps[0] ?? s.externalIps[0]!);
    expect(ownerOf(ip, [s], pools)).toBe(want);
    const plan = planAnnouncements("node1", [s], pools, nodes);
    expect(plan.unannounced.map((u) => u.reason)).toEqual(reason === undefined ? [] : [reason]);
  });
});

describe("planAnnouncements: an externalIP never takes another Service's load-balancer IP (CVE-2020-8554)", () => {
  const ip = addr("192.0.2.150");
  const opted = [pool({ externalIPs: true })];
  const victim = svc("shop/web", { ingressIps: [ip] });

  it.each<{ desc: string; first: boolean }>([
    { desc: "the intruder listed before the holder", first: true },
    { desc: "the intruder listed after the holder", first: false },
  ])("refused, with the holder named: $desc", ({ first }) => {
    // With eTP Local and an endpoint on node3 the intruder would also steer the election if it joined the group.
    const intruder = svc("default/grab", { externalIps: [ip], localTraffic: true, endpointNodes: new Set(["node3"]) });
    const plan = planAnnouncements("node1", first ? [intruder, victim] : [victim, intruder], opted, nodes);
    expect(plan.ips.map((p) => [formatIp(p.ip), p.services])).toEqual([["192.0.2.150", ["shop/web"]]]);
    expect(ownerOf("192.0.2.150", [victim], opted)).toBe(plan.ips[0]!.announcer.ok && plan.ips[0]!.announcer.owner);
    expect(plan.unannounced).toEqual([
      {
        service: "default/grab",
        ip,
        reason: "ingress-of-another-service",
        message: "externalIP 192.0.2.150 refused: it is the load-balancer IP of Service shop/web, which always wins",
      },
    ]);
  });

  it.each<{ desc: string; services: AnnouncedService[]; group: string[] }>([
    {
      desc: "the same Service lists its own load-balancer IP as an externalIP",
      services: [svc("shop/web", { ingressIps: [ip], externalIps: [ip] })],
      group: ["shop/web"],
    },
    {
      desc: "Services sharing the IP through the allocator, one also listing it",
      services: [victim, svc("shop/api", { ingressIps: [ip], externalIps: [ip] })],
      group: ["shop/api", "shop/web"],
    },
  ])("accepted: $desc", ({ services, group }) => {
    const plan = planAnnouncements("node1", services, opted, nodes);
    expect(plan.unannounced).toEqual([]);
    expect(plan.ips.map((p) => p.services)).toEqual([group]);
  });
});

describe("gainsToSettle", () => {
  const ip = addr("192.0.2.150");
  const plan = planAnnouncements("node1", [svc("default/a", { ingressIps: [ip] })], [pool()], nodes);
  const owner = plan.ips[0]!.announcer.ok ? plan.ips[0]!.announcer.owner : "";

  it.each<{ desc: string; previous: string; members: string[]; settle: boolean }>([
    { desc: "the previous owner died: take at once", previous: "nodeX", members: [owner], settle: false },
    { desc: "the previous owner is alive: wait for it", previous: "nodeX", members: [owner, "nodeX"], settle: true },
    { desc: "already ours", previous: owner, members: [owner], settle: false },
  ])("$desc", ({ previous, members, settle }) => {
    const s = gainsToSettle(owner, new Map([[ipKey(ip), previous]]), plan, new Set(members));
    expect(s.has(ipKey(ip))).toBe(settle);
    expect(ownersOf(plan).get(ipKey(ip))).toBe(owner);
  });
});

describe("annotation lodestone.dev/announcing-node", () => {
  const [v4, v6] = [addr("192.0.2.5"), addr("2001:db8::5")];
  it.each<{ desc: string; owners: { ip: IpAddress; node: string }[]; value: string | undefined }>([
    { desc: "one IP: the node (unchanged from single-stack)", owners: [{ ip: v4, node: "node2" }], value: "node2" },
    {
      desc: "every IP on one node: the node",
      owners: [
        { ip: v6, node: "node2" },
        { ip: v4, node: "node2" },
      ],
      value: "node2",
    },
    {
      desc: "IPs on different nodes: ip=node pairs in IP order",
      owners: [
        { ip: v6, node: "node3" },
        { ip: v4, node: "node2" },
      ],
      value: "192.0.2.5=node2,2001:db8::5=node3",
    },
    { desc: "no announced IP: no annotation", owners: [], value: undefined },
  ])("$desc", ({ owners, value }) => {
    expect(formatAnnouncingNodes(owners)).toBe(value);
    for (const o of owners) expect(announcingNodeFor(value, o.ip)).toBe(o.node);
  });

  it("names nobody for an IP the value does not list", () => {
    expect(announcingNodeFor("192.0.2.5=node2,2001:db8::5=node3", addr("192.0.2.6"))).toBeUndefined();
    expect(announcingNodeFor(undefined, v4)).toBeUndefined();
  });
});

describe("planSteps: a plan in steps, reusing the previous plan's rankings", () => {
  const services = Array.from({ length: 90 }, (_, i) =>
    svc(`default/s${i}`, { ingressIps: [addr(`192.0.2.${100 + i}`)] }),
  );
  const drive = (g: Generator<void, AnnouncePlan, void>) => {
    let yields = 0;
    for (;;) {
      const r = g.next();
      if (r.done === true) return { plan: r.value, yields };
      yields++;
    }
  };

  it("gives the same plan as planAnnouncements, yielding between steps", () => {
    const many = Array.from({ length: 3000 }, (_, i) =>
      svc(`default/m${i}`, { ingressIps: [parseIp(`2001:db8::${(i + 1).toString(16)}`)!] }),
    );
    const v6 = pool({ contains: (ip) => ip.family === 6 });
    const { plan, yields } = drive(planSteps("node1", many, [v6], nodes));
    expect(yields).toBeGreaterThan(5);
    expect(plan.ips).toEqual(planAnnouncements("node1", many, [v6], nodes).ips);
  });

  it.each<{ desc: string; context2: string; change?: (s: AnnouncedService[]) => AnnouncedService[]; reused: boolean }>([
    { desc: "same context, same Services: every ranking reused", context2: "a", reused: true },
    { desc: "another context (nodes or pools changed): ranked again", context2: "b", reused: false },
  ])("$desc", ({ context2, reused }) => {
    const first = planAnnouncements("node1", services, [pool()], nodes, { context: "a" });
    const second = planAnnouncements("node1", services, [pool()], nodes, { context: context2, previous: first });
    second.ips.forEach((p, i) => (reused ? expect(p).toBe(first.ips[i]) : expect(p).not.toBe(first.ips[i])));
    expect(second.ips).toEqual(first.ips.map((p) => ({ ...p })));
  });

  it("an IP whose Services changed is ranked again; the others are reused", () => {
    const first = planAnnouncements("node1", services, [pool()], nodes, { context: "a" });
    const more = [...services, svc("default/extra", { ingressIps: [addr("192.0.2.100")] })];
    const second = planAnnouncements("node1", more, [pool()], nodes, { context: "a", previous: first });
    const changed = second.ips.filter((p, i) => p !== first.ips[i]).map((p) => formatIp(p.ip));
    expect(changed).toEqual(["192.0.2.100"]);
    expect(second.byKey.get(ipKey(addr("192.0.2.100")))?.services).toEqual(["default/extra", "default/s0"]);
  });

  it("an IP of a Local Service is ranked again every time, and not reused once it is Cluster again", () => {
    const local = [
      svc("default/l", { ingressIps: [addr("192.0.2.150")], localTraffic: true, endpointNodes: new Set(["node2"]) }),
    ];
    const first = planAnnouncements("node1", local, [pool()], nodes, { context: "a" });
    const again = planAnnouncements("node1", local, [pool()], nodes, { context: "a", previous: first });
    expect(again.ips[0]).not.toBe(first.ips[0]);
    const cluster = [{ ...local[0]!, localTraffic: false }];
    const back = planAnnouncements("node1", cluster, [pool()], nodes, { context: "a", previous: again });
    expect(back.ips[0]).not.toBe(again.ips[0]);
    expect(back.ips[0]!.localTraffic).toBe(false);
  });
  it("after nodes die (none came alive) a plan keeps each ranking without them: the same plan as ranking again", () => {
    const many = Array.from({ length: 300 }, (_, i) =>
      svc(`default/d${i}`, { ingressIps: [parseIp(`2001:db8::${(i + 1).toString(16)}`)!] }),
    );
    const v6 = pool({ contains: (ip) => ip.family === 6 });
    const five = ["node1", "node2", "node3", "node4", "node5"].map((name) => ({ ...nodes[0]!, name }));
    const first = planAnnouncements("node1", many, [v6], five, { context: "a" });
    for (const died of [["node2"], ["node3", "node5"], ["node1", "node2", "node3", "node4", "node5"]]) {
      const after = five.map((n) => ({ ...n, alive: !died.includes(n.name) }));
      const followed = planAnnouncements("node1", many, [v6], after, { context: "a", previous: first });
      const ranked = planAnnouncements("node1", many, [v6], after, { context: "a" });
      expect(followed.ips).toEqual(ranked.ips);
      expect(followed.claims).toEqual(ranked.claims);
      // And without grouping the Services again (the speaker's failover path), when every IP keeps a node.
      const fast = followDeaths("node1", first, after, "a");
      if (died.length === 5) expect(fast).toBeUndefined();
      else {
        expect(fast?.ips).toEqual(ranked.ips);
        expect(fast?.claims).toEqual(ranked.claims);
      }
    }
    // A node that comes alive may outrank an owner: every IP is ranked again.
    const fewer = five.map((n) => ({ ...n, alive: n.name !== "node4" }));
    const without4 = planAnnouncements("node1", many, [v6], fewer, { context: "a" });
    const back = planAnnouncements("node1", many, [v6], five, { context: "a", previous: without4 });
    expect(back.ips.every((p, i) => p !== without4.ips[i])).toBe(true);
    expect(back.ips).toEqual(first.ips);
    expect(followDeaths("node1", without4, five, "a")).toBeUndefined();
    expect(followDeaths("node1", first, fewer, "b")).toBeUndefined(); // another context: nodes or pools changed
  });
});
