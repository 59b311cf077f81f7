import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { poolRefusal, sharingRefusal } from "../../src/core/allocation-rules.ts";
import { Allocator } from "../../src/core/allocator.ts";
import type { Pool } from "../../src/core/config.ts";
import { formatIp, ipKey } from "../../src/core/ip.ts";
import { isBuggyIp, rangeContains } from "../../src/core/range.ts";
import type { ServiceRequest } from "../../src/core/service-request.ts";
import { serviceKey } from "../../src/core/service-request.ts";
import { ips, pools, svc } from "./support/core-fixtures.ts";

// Small pools so that random requests collide, run out and share often.
const poolSets: Pool[][] = [
  pools(`
- {name: p1, addresses: [192.0.2.0/29, "2001:db8::/126"]}
- {name: edge, addresses: [192.0.2.254-192.0.3.2], avoidBuggyIPs: true, priority: 5}
- {name: tenant, addresses: [198.51.100.0/30], autoAssign: false, serviceAllocation: {namespaces: [ns-a]}}
- {name: cross, addresses: [203.0.113.0/30], priority: 1, serviceAllocation: {allowCrossNamespaceSharing: true, serviceSelector: {matchLabels: {share: "yes"}}}}
`),
  pools(`
- {name: p1, addresses: [192.0.2.0/30]}
- {name: tenant, addresses: [198.51.100.0/29, "2001:db8:1::/127"], serviceAllocation: {namespaceSelector: {matchLabels: {tenant: a}}}}
`),
  pools(`
- {name: moved, addresses: [192.0.2.0/29, "2001:db8::/126"], priority: 2}
- {name: cross, addresses: [203.0.113.0/31], serviceAllocation: {allowCrossNamespaceSharing: true}}
`),
];
const candidateIps = ips(
  "192.0.2.1",
  "192.0.2.5",
  "192.0.3.0",
  "198.51.100.1",
  "203.0.113.1",
  "2001:db8::1",
  "10.0.0.1",
);

const request: fc.Arbitrary<ServiceRequest> = fc
  .record({
    name: fc.constantFrom("a", "b", "c", "d", "e", "f"),
    namespace: fc.constantFrom("ns-a", "ns-b"),
    policy: fc.constantFrom("SingleStack", "PreferDualStack", "RequireDualStack"),
    primary: fc.constantFrom(4, 6),
    sharingKey: fc.option(fc.constantFrom("k1", "k2"), { nil: undefined }),
    port: fc.constantFrom(80, 443, 53),
    protocol: fc.constantFrom("TCP", "UDP"),
    local: fc.boolean(),
    app: fc.constantFrom("x", "y"),
    share: fc.boolean(),
    pool: fc.option(fc.constantFrom("p1", "tenant", "cross", "nope"), { nil: undefined, freq: 3 }),
    ip: fc.option(fc.constantFrom(...candidateIps), { nil: undefined, freq: 3 }),
  })
  .map((r) =>
    svc(`${r.namespace}/${r.name}`, {
      ipFamilyPolicy: r.policy,
      ipFamilies: r.policy === "SingleStack" ? [r.ip?.family ?? r.primary] : [r.primary, r.primary === 4 ? 6 : 4],
      ...(r.sharingKey !== undefined && { sharingKey: r.sharingKey }),
      ports: [{ port: r.port, protocol: r.protocol }],
      externalTrafficPolicy: r.local ? "Local" : "Cluster",
      selector: { app: r.app },
      labels: r.share ? { share: "yes" } : {},
      namespaceLabels: r.namespace === "ns-a" ? { tenant: "a" } : {},
      ...(r.pool !== undefined && { requestedPool: r.pool }),
      requestedIps: r.ip === undefined || r.policy === "RequireDualStack" ? [] : [r.ip],
    }),
  );

type Op = { kind: "ensure"; req: ServiceRequest } | { kind: "release"; name: string } | { kind: "pools"; set: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: request.map((req): Op => ({ kind: "ensure", req })) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("ns-a/a", "ns-b/b", "ns-a/c", "ns-b/d").map((name): Op => ({ kind: "release", name })),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: poolSets.length - 1 }).map((set): Op => ({ kind: "pools", set })) },
);

function checkInvariants(a: Allocator, current: readonly Pool[], requests: ReadonlyMap<string, ServiceRequest>): void {
  const holders = new Map<string, string[]>();
  for (const alloc of a.allocations()) {
    const req = requests.get(alloc.service)!;
    const pool = current.find((p) => p.name === alloc.pool);
    expect(pool, `${alloc.service} holds addresses of a pool that does not exist`).toBeDefined();
    if (pool === undefined) continue;
    expect(poolRefusal(pool, req), `${alloc.service} in pool ${pool.name} against its restrictions`).toBeUndefined();
    expect(new Set(alloc.ips.map((x) => x.family)).size).toBe(alloc.ips.length);
    for (const addr of alloc.ips) {
      expect(
        pool.addresses.some((r) => rangeContains(r, addr)),
        `${formatIp(addr)} outside pool ${pool.name}`,
      ).toBe(true);
      expect(pool.avoidBuggyIPs && isBuggyIp(addr)).toBe(false);
      holders.set(ipKey(addr), [...(holders.get(ipKey(addr)) ?? []), alloc.service]);
    }
  }
  for (const [key, services] of holders) {
    for (let i = 0; i < services.length; i++) {
      for (let j = i + 1; j < services.length; j++) {
        const x = requests.get(services[i]!)!;
        const y = requests.get(services[j]!)!;
        const pool = current.find((p) => p.name === a.get(services[i]!)?.pool)!;
        expect(sharingRefusal(key, x, y, pool), `${services[i]} and ${services[j]} share ${key}`).toBeUndefined();
      }
    }
  }
  const inUse = new Map<string, number>();
  for (const alloc of a.allocations()) {
    for (const addr of alloc.ips) inUse.set(`${alloc.pool}/${addr.family}`, 0);
  }
  for (const [key] of holders) {
    const owner = a.allocations().find((x) => x.ips.some((i) => ipKey(i) === key))!;
    const fam = key.startsWith("4/") ? 4 : 6;
    inUse.set(`${owner.pool}/${fam}`, (inUse.get(`${owner.pool}/${fam}`) ?? 0) + 1);
  }
  for (const u of a.usage()) expect(u.inUse).toBe(inUse.get(`${u.pool}/${u.family}`) ?? 0);
}

describe("Allocator invariants over random operation sequences", () => {
  it("no unshareable double use, every address inside its pool and its restrictions, rebuild reproduces state, release restores capacity", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
        let current = poolSets[0]!;
        const a = new Allocator(current);
        const requests = new Map<string, ServiceRequest>();
        for (const o of ops) {
          if (o.kind === "ensure") {
            requests.set(serviceKey(o.req), o.req);
            const r = a.ensure(o.req);
            if (!r.ok) expect(a.get(serviceKey(o.req))).toBeUndefined();
          } else if (o.kind === "release") {
            a.release(o.name);
            expect(a.get(o.name)).toBeUndefined();
          } else {
            current = poolSets[o.set]!;
            a.setPools(current);
          }
          checkInvariants(a, current, requests);
        }
        const records = a.allocations().map((x) => ({ request: requests.get(x.service)!, ips: x.ips }));
        const b = new Allocator(current);
        expect(b.rebuild(records)).toEqual([]);
        expect(b.allocations()).toEqual(a.allocations());
        expect(b.usage()).toEqual(a.usage());
        for (const x of a.allocations()) a.release(x.service);
        for (const u of a.usage()) expect(u.inUse).toBe(0);
        expect(a.size).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe("allocationOrder lowest", () => {
  // Two ranges, buggy addresses inside, so the low-water mark has ranges to cross and addresses to skip.
  const lowest = pools(
    "- {name: low, addresses: [192.0.2.254-192.0.3.1, 198.51.100.0/30], avoidBuggyIPs: true, allocationOrder: lowest}",
  );
  const usable = ["192.0.2.254", "192.0.3.1", "198.51.100.1", "198.51.100.2", "198.51.100.3"];
  const step = fc.record({ release: fc.boolean(), name: fc.constantFrom("a", "b", "c", "d", "e") });

  it("always hands out the lowest free usable address, as MetalLB does, whatever was released before", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const a = new Allocator(lowest);
        for (const { release, name } of steps) {
          if (release) {
            a.release(`default/${name}`);
            continue;
          }
          if (a.get(`default/${name}`) !== undefined) continue;
          const held = new Set(a.allocations().flatMap((x) => x.ips.map(formatIp)));
          const expected = usable.find((t) => !held.has(t));
          const r = a.allocate(svc(name));
          expect(r.ok ? r.value.ips.map(formatIp) : []).toEqual(expected === undefined ? [] : [expected]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
