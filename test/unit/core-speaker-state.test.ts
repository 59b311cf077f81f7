import { describe, expect, it } from "vitest";
import { type AnnouncePlan, type AnnouncedService, planAnnouncements } from "../../src/core/announce-plan.ts";
import type { AnnouncerCandidate } from "../../src/core/announcer-ranking.ts";
import { type IpAddress, formatIp, ip, ipKey, parseIp } from "../../src/core/ip.ts";
import { type ClaimState, decideClaims, initialClaimState, withdrawAll } from "../../src/core/speaker-state.ts";

// Fake time throughout: `now` is a number the test chooses, nothing sleeps.
const SETTLE = 350;
const base = parseIp("2001:db8:1::")!.value;
const addr = (i: number): IpAddress => ip(6, base + BigInt(i));
const services = (n: number): AnnouncedService[] =>
  Array.from({ length: n }, (_, i) => ({
    key: `default/s${i}`,
    namespace: "default",
    ingressIps: [addr(i + 1)],
    externalIps: [],
    localTraffic: false,
    endpointNodes: new Set<string>(),
  }));
const pool = {
  name: "p",
  contains: (a: IpAddress) => a.family === 6 && a.value >> 16n === base >> 16n,
  allowsNamespace: () => true,
  externalIPs: false,
  gratuitous: { intervalMs: 1100, count: 5 },
};
const nodes = (alive: readonly string[]): AnnouncerCandidate[] =>
  ["node1", "node2", "node3"].map((name) => ({
    name,
    alive: alive.includes(name),
    ready: true,
    labels: {},
    interfaces: undefined,
  }));
const ALL = ["node1", "node2", "node3"];
const plan = (alive: readonly string[], list = services(60), self = "node1"): AnnouncePlan =>
  planAnnouncements(self, list, [pool], nodes(alive));
const owners = (p: AnnouncePlan): Map<string, string> =>
  new Map(p.ips.flatMap((x) => (x.announcer.ok ? [[x.key, x.announcer.owner] as const] : [])));
const step = (state: ClaimState, p: AnnouncePlan | undefined, alive: readonly string[], now: number) =>
  decideClaims(state, { self: "node1", now, plan: p, members: new Set(alive), settleMs: SETTLE });
const ips = (cs: readonly { ip: IpAddress }[]) => cs.map((c) => formatIp(c.ip)).sort();

describe("decideClaims", () => {
  it("claims every IP it wins at once when no previous owner is alive, and counts no failover", () => {
    const p = plan(ALL);
    const d = step(initialClaimState, p, ALL, 0);
    expect(ips(d.claims)).toEqual(ips(p.claims));
    expect(d.claims.length).toBeGreaterThan(5);
    expect(d.added).toHaveLength(d.claims.length);
    expect(d.changed).toBe(true);
    expect(d.state.failovers).toBe(0);
  });

  it("takes over the IPs of a dead owner at once and counts each as a failover", () => {
    const first = step(initialClaimState, plan(ALL), ALL, 0);
    const without2 = plan(["node1", "node3"]);
    const d = step(first.state, without2, ["node1", "node3"], 1_000);
    const gained = d.added.map((c) => ipKey(c.ip));
    expect(gained.length).toBeGreaterThan(0);
    for (const k of gained) expect(owners(plan(ALL)).get(k)).not.toBe("node1");
    expect(d.state.failovers).toBe(gained.filter((k) => owners(plan(ALL)).get(k) === "node2").length);
    expect(d.state.pending.size).toBe(0);
  });

  it("a gain from a live member waits the settle time, then is claimed (without a failover)", () => {
    // node1 was away: node2 and node3 held everything; node1 comes back and wins its IPs from live members.
    const away = plan(["node2", "node3"]);
    let d = step({ ...initialClaimState, owners: owners(away) }, plan(ALL), ALL, 10_000);
    expect(d.claims).toEqual([]);
    expect(d.state.pending.size).toBe(plan(ALL).claims.length);
    d = step(d.state, plan(ALL), ALL, 10_000 + SETTLE - 1);
    expect(d.claims).toEqual([]);
    d = step(d.state, plan(ALL), ALL, 10_000 + SETTLE);
    expect(ips(d.claims)).toEqual(ips(plan(ALL).claims));
    expect(d.state.pending.size).toBe(0);
    expect(d.state.failovers).toBe(0);
  });

  it("an IP still settling keeps its old owner in the state, so the next step does not take it as ours", () => {
    const away = plan(["node2", "node3"]);
    const d = step({ ...initialClaimState, owners: owners(away) }, plan(ALL), ALL, 0);
    for (const k of d.state.pending.keys()) expect(d.state.owners?.get(k)).toBe(owners(away).get(k));
  });

  it("the first plan of a process settles what peers hold now (inheritedOwners)", () => {
    const d = decideClaims(initialClaimState, {
      self: "node1",
      now: 0,
      plan: plan(ALL),
      members: new Set(ALL),
      settleMs: SETTLE,
      inheritedOwners: owners(plan(["node2", "node3"])),
    });
    expect(d.claims).toEqual([]);
    expect(d.state.pending.size).toBe(plan(ALL).claims.length);
  });

  it("a pending gain the plan no longer gives this node is forgotten", () => {
    const away = plan(["node2", "node3"]);
    const d = step({ ...initialClaimState, owners: owners(away) }, plan(ALL), ALL, 0);
    expect(d.state.pending.size).toBeGreaterThan(0);
    const gone = step(d.state, plan(["node2", "node3"]), ["node2", "node3"], 100);
    expect(gone.state.pending.size).toBe(0);
  });

  it("an unchanged plan changes nothing and keeps the very claim objects", () => {
    const a = step(initialClaimState, plan(ALL), ALL, 0);
    const b = step(a.state, plan(ALL), ALL, 50);
    expect(b.changed).toBe(false);
    expect(b.added).toEqual([]);
    expect(b.removed).toEqual([]);
    b.claims.forEach((c, i) => expect(c).toBe(a.claims[i]));
  });

  it.each([
    { desc: "another Service joins the IP", edit: (l: AnnouncedService[]) => [...l, { ...l[0]!, key: "default/z" }] },
    { desc: "the IP goes", edit: (l: AnnouncedService[]) => l.slice(1) },
  ])("a claim whose Services change is passed on: $desc", ({ edit }) => {
    const list = services(60);
    // The node that owns the first IP, whose Services change.
    const self = (plan(ALL, list).ips[0]!.announcer as { owner: string }).owner;
    const a = decideClaims(initialClaimState, {
      self,
      now: 0,
      plan: plan(ALL, list, self),
      members: new Set(ALL),
      settleMs: SETTLE,
    });
    const b = decideClaims(a.state, {
      self,
      now: 50,
      plan: plan(ALL, edit(list), self),
      members: new Set(ALL),
      settleMs: SETTLE,
    });
    expect(b.changed).toBe(true);
  });

  it("not ready (no plan): withdraws everything, remembers the owners", () => {
    const a = step(initialClaimState, plan(ALL), ALL, 0);
    const b = step(a.state, undefined, ALL, 50);
    expect(b.claims).toEqual([]);
    expect(ips(b.removed)).toEqual(ips(a.claims));
    expect(b.state.owners).toBe(a.state.owners);
  });

  it("withdrawAll empties the claims only", () => {
    const a = step(initialClaimState, plan(ALL), ALL, 0);
    const w = withdrawAll(a.state);
    expect(w.claimed.size).toBe(0);
    expect(w.owners).toBe(a.state.owners);
  });

  it("a step over 10,000 IPs looks each up once: linear, not quadratic", () => {
    const list = services(10_000);
    const p = planAnnouncements("node1", list, [pool], nodes(ALL));
    const a = step(initialClaimState, p, ALL, 0);
    const p2 = planAnnouncements("node1", list, [pool], nodes(["node1", "node3"]));
    const t = performance.now();
    const b = step(a.state, p2, ["node1", "node3"], 1_000);
    // Generous for a shared CI machine; the quadratic version took seconds.
    expect(performance.now() - t).toBeLessThan(250);
    expect(b.claims.length).toBeGreaterThan(a.claims.length);
  });
});
