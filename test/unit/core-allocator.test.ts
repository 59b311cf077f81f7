import { describe, expect, it } from "vitest";
import { Allocator } from "../../src/core/allocator.ts";
import type { ServiceRequest } from "../../src/core/service-request.ts";
import { ips, pools, svc, texts } from "./support/core-fixtures.ts";

const basic = pools(`
- {name: small, addresses: [192.0.2.10-192.0.2.11], priority: 1}
- {name: dual, addresses: [198.51.100.0/24, "2001:db8::/120"], priority: 2}
- {name: v6only, addresses: ["2001:db8:1::/120"], autoAssign: false}
- name: team-a
  addresses: [203.0.113.0/28]
  autoAssign: false
  serviceAllocation: {namespaces: [team-a], namespaceSelector: {matchLabels: {tenant: a}}}
- name: front
  addresses: [203.0.113.16/28]
  autoAssign: false
  serviceAllocation: {serviceSelector: {matchLabels: {tier: front}}}
- {name: buggy, addresses: [203.0.113.255-203.0.114.1], avoidBuggyIPs: true, autoAssign: false}
- {name: shared-x, addresses: [203.0.113.64/28], autoAssign: false, serviceAllocation: {allowCrossNamespaceSharing: true}}
`);

describe("Allocator: refusals", () => {
  it.each<{
    desc: string;
    setup?: ServiceRequest[];
    req: ServiceRequest;
    code: string;
    message: RegExp;
    poolYaml?: string;
  }>([
    {
      desc: "no auto-assign pool",
      poolYaml: "- {name: p, addresses: [192.0.2.0/24], autoAssign: false}",
      req: svc("a"),
      code: "LODESTONE_E_NO_POOLS",
      message: /no address pool offers automatic assignment/,
    },
    {
      desc: "unknown requested pool",
      req: svc("a", { requestedPool: "nope" }),
      code: "LODESTONE_E_POOL_NOT_FOUND",
      message: /"nope" does not exist/,
    },
    {
      desc: "exhausted pool",
      poolYaml: "- {name: p, addresses: [192.0.2.1-192.0.2.2]}",
      setup: [svc("a"), svc("b")],
      req: svc("c"),
      code: "LODESTONE_E_POOL_EXHAUSTED",
      message: /no free IPv4 address left in pool "p"/,
    },
    {
      desc: "IP in no pool",
      req: svc("a", { requestedIps: ips("10.0.0.1") }),
      code: "LODESTONE_E_IP_NOT_IN_POOL",
      message: /10.0.0.1 is not in any address pool/,
    },
    {
      desc: "IP outside the requested pool",
      req: svc("a", { requestedIps: ips("192.0.2.10"), requestedPool: "dual" }),
      code: "LODESTONE_E_IP_NOT_IN_POOL",
      message: /not in the requested pool "dual"/,
    },
    {
      desc: "buggy IP",
      req: svc("a", { requestedIps: ips("203.0.114.0") }),
      code: "LODESTONE_E_IP_RESERVED",
      message: /avoidBuggyIPs/,
    },
    {
      desc: "IP in use",
      setup: [svc("ns1/a", { requestedIps: ips("192.0.2.10") })],
      req: svc("b", { requestedIps: ips("192.0.2.10") }),
      code: "LODESTONE_E_IP_IN_USE",
      message: /192.0.2.10 is in use by Service ns1\/a/,
    },
    {
      desc: "namespace not allowed (pool by name)",
      req: svc("team-b/a", { requestedPool: "team-a" }),
      code: "LODESTONE_E_NAMESPACE_NOT_ALLOWED",
      message: /pool "team-a" is not available to namespace "team-b"/,
    },
    {
      desc: "namespace not allowed (explicit IP: one tenant cannot take another's address)",
      req: svc("team-b/a", { requestedIps: ips("203.0.113.1") }),
      code: "LODESTONE_E_NAMESPACE_NOT_ALLOWED",
      message: /team-b/,
    },
    {
      desc: "service selector does not match",
      req: svc("a", { requestedPool: "front", labels: { tier: "back" } }),
      code: "LODESTONE_E_SERVICE_NOT_ALLOWED",
      message: /serviceSelector/,
    },
    {
      desc: "family not in the pool",
      req: svc("a", { requestedPool: "small", ipFamilyPolicy: "RequireDualStack", ipFamilies: [4, 6] }),
      code: "LODESTONE_E_FAMILY_UNAVAILABLE",
      message: /pool "small" has no IPv6 addresses/,
    },
    {
      desc: "sharing: same port",
      setup: [svc("a", { sharingKey: "k", requestedIps: ips("192.0.2.10") })],
      req: svc("b", { sharingKey: "k", requestedIps: ips("192.0.2.10") }),
      code: "LODESTONE_E_SHARING_CONFLICT",
      message: /cannot be shared with Service default\/a: both use TCP\/80/,
    },
    {
      desc: "sharing: other namespace",
      setup: [svc("x/a", { sharingKey: "k", requestedIps: ips("192.0.2.10") })],
      req: svc("y/b", { sharingKey: "k", requestedIps: ips("192.0.2.10"), ports: [{ port: 81, protocol: "TCP" }] }),
      code: "LODESTONE_E_SHARING_CONFLICT",
      message: /another namespace/,
    },
    {
      desc: "sharing: Local with another selector",
      setup: [svc("a", { sharingKey: "k", requestedIps: ips("192.0.2.10"), externalTrafficPolicy: "Local" })],
      req: svc("b", {
        sharingKey: "k",
        requestedIps: ips("192.0.2.10"),
        externalTrafficPolicy: "Local",
        ports: [{ port: 81, protocol: "TCP" }],
      }),
      code: "LODESTONE_E_SHARING_CONFLICT",
      message: /identical pod selector/,
    },
    {
      desc: "requested IPs from two pools",
      req: svc("a", {
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: [4, 6],
        requestedIps: ips("192.0.2.10", "2001:db8:1::1"),
      }),
      code: "LODESTONE_E_REQUEST_INVALID",
      message: /one pool/,
    },
    {
      desc: "requested IP of a family the Service does not have",
      req: svc("a", { requestedIps: ips("2001:db8::1") }),
      code: "LODESTONE_E_REQUEST_INVALID",
      message: /no IPv4 address given/,
    },
  ])("$desc", ({ setup, req, code, message, poolYaml }) => {
    const a = new Allocator(poolYaml === undefined ? basic : pools(poolYaml));
    for (const s of setup ?? []) expect(a.ensure(s).ok).toBe(true);
    const r = a.ensure(req);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(code);
    expect(r.error.message).toMatch(message);
  });
});

describe("Allocator: choices", () => {
  it.each<{ desc: string; req: ServiceRequest; pool: string; ips: string[] }>([
    { desc: "priority first", req: svc("a"), pool: "small", ips: ["192.0.2.10"] },
    {
      desc: "dual-stack from one pool",
      req: svc("a", { ipFamilyPolicy: "RequireDualStack", ipFamilies: [6, 4] }),
      pool: "dual",
      ips: ["2001:db8::1", "198.51.100.0"],
    },
    {
      desc: "PreferDualStack gets both when the pool has both",
      req: svc("a", { ipFamilyPolicy: "PreferDualStack", ipFamilies: [4, 6], requestedPool: "dual" }),
      pool: "dual",
      ips: ["198.51.100.0", "2001:db8::1"],
    },
    {
      desc: "PreferDualStack takes one from a single-family pool",
      req: svc("a", { ipFamilyPolicy: "PreferDualStack", ipFamilies: [4, 6], requestedPool: "small" }),
      pool: "small",
      ips: ["192.0.2.10"],
    },
    {
      desc: "PreferDualStack takes the first pool by priority that gives both families, over a single-family one",
      req: svc("a", { ipFamilyPolicy: "PreferDualStack", ipFamilies: [4, 6] }),
      pool: "dual",
      ips: ["198.51.100.0", "2001:db8::1"],
    },
    { desc: "IPv6 single-stack", req: svc("a", { ipFamilies: [6] }), pool: "dual", ips: ["2001:db8::1"] },
    {
      desc: "non-auto pool by name",
      req: svc("a", { requestedPool: "v6only", ipFamilies: [6] }),
      pool: "v6only",
      ips: ["2001:db8:1::1"],
    },
    {
      desc: "restricted pool, namespace by name",
      req: svc("team-a/a", { requestedPool: "team-a" }),
      pool: "team-a",
      ips: ["203.0.113.0"],
    },
    {
      desc: "restricted pool, namespace by labels",
      req: svc("other/a", { requestedPool: "team-a", namespaceLabels: { tenant: "a" } }),
      pool: "team-a",
      ips: ["203.0.113.0"],
    },
    {
      desc: "avoidBuggyIPs skips .255 and .0",
      req: svc("a", { requestedPool: "buggy" }),
      pool: "buggy",
      ips: ["203.0.114.1"],
    },
    {
      desc: "explicit IP in a non-auto pool",
      req: svc("a", { requestedIps: ips("2001:db8:1::9"), ipFamilies: [6] }),
      pool: "v6only",
      ips: ["2001:db8:1::9"],
    },
  ])("$desc", ({ req, pool, ips: want }) => {
    const r = new Allocator(basic).ensure(req);
    expect(r.ok && { pool: r.value.pool, ips: texts(r.value.ips) }).toEqual({ pool, ips: want });
  });

  it("falls through to the next pool when the first is full", () => {
    const a = new Allocator(basic);
    const got = ["a", "b", "c"].map((n) => {
      const r = a.ensure(svc(n));
      return r.ok ? `${r.value.pool}:${texts(r.value.ips).join()}` : r.error.code;
    });
    expect(got).toEqual(["small:192.0.2.10", "small:192.0.2.11", "dual:198.51.100.0"]);
  });

  it("shares an address by sharing key (different ports), also across namespaces when the pool allows", () => {
    const a = new Allocator(basic);
    const first = a.ensure(svc("x/a", { sharingKey: "k", requestedPool: "shared-x" }));
    const second = a.ensure(
      svc("y/b", { sharingKey: "k", requestedPool: "shared-x", ports: [{ port: 53, protocol: "UDP" }] }),
    );
    expect(first.ok && second.ok && texts(second.value.ips)).toEqual(first.ok ? texts(first.value.ips) : []);
    expect(a.usage().find((u) => u.pool === "shared-x")?.inUse).toBe(1);
    a.release("x/a");
    expect(a.usage().find((u) => u.pool === "shared-x")?.inUse).toBe(1);
    a.release("y/b");
    expect(a.usage().find((u) => u.pool === "shared-x")?.inUse).toBe(0);
  });

  it("does not share without a common key: the next free address instead", () => {
    const a = new Allocator(basic);
    a.ensure(svc("a", { sharingKey: "k" }));
    const b = a.ensure(svc("b", { sharingKey: "other", ports: [{ port: 81, protocol: "TCP" }] }));
    expect(b.ok && texts(b.value.ips)).toEqual(["192.0.2.11"]);
  });
});

describe("Allocator: the IPv6 Subnet-Router anycast address (RFC 4291 §2.6.1)", () => {
  it.each([
    {
      desc: "a /120 at the start of a /64 skips ::",
      addresses: '"2001:db8::/120"',
      first: ["2001:db8::1", "2001:db8::2"],
    },
    {
      desc: "a range across two /64s skips the second's ::",
      addresses: '"2001:db8:0:0:ffff:ffff:ffff:fffe-2001:db8:0:1::1"',
      first: ["2001:db8::ffff:ffff:ffff:fffe", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::1"],
    },
    { desc: "IPv4 .0 is still given without avoidBuggyIPs", addresses: "198.51.100.0/30", first: ["198.51.100.0"] },
  ])("$desc", ({ addresses, first }) => {
    const a = new Allocator(pools(`- {name: p, addresses: [${addresses}]}`));
    const got = first.map((_, i) => {
      const r = a.ensure(svc(`s${i}`, { ipFamilies: [first[0]!.includes(":") ? 6 : 4] }));
      return r.ok ? texts(r.value.ips)[0] : r.error.message;
    });
    expect(got).toEqual(first);
  });

  it("a pool of only that address is exhausted, not handed out", () => {
    const a = new Allocator(pools(`- {name: p, addresses: ["2001:db8::/128"]}`));
    const r = a.ensure(svc("s", { ipFamilies: [6] }));
    expect(r.ok).toBe(false);
  });
});

describe("Allocator: stability", () => {
  it("keeps an address across unrelated edits and gives it back when the request changes families", () => {
    const a = new Allocator(basic);
    const first = a.ensure(svc("a", { requestedPool: "dual" }));
    const edited = a.ensure(svc("a", { requestedPool: "dual", ports: [{ port: 443, protocol: "TCP" }] }));
    expect(edited).toEqual(first);
    const dual = a.ensure(svc("a", { requestedPool: "dual", ipFamilyPolicy: "RequireDualStack", ipFamilies: [4, 6] }));
    expect(dual.ok && texts(dual.value.ips)).toEqual(["198.51.100.0", "2001:db8::1"]);
  });

  it("moves a Service when it asks for another IP, and frees the old one", () => {
    const a = new Allocator(basic);
    a.ensure(svc("a", { requestedIps: ips("192.0.2.10") }));
    const moved = a.ensure(svc("a", { requestedIps: ips("192.0.2.11") }));
    expect(moved.ok && texts(moved.value.ips)).toEqual(["192.0.2.11"]);
    expect(a.ensure(svc("b", { requestedIps: ips("192.0.2.10") })).ok).toBe(true);
  });

  it("setPools: survivors keep their address, the others get a new one with a reason", () => {
    const a = new Allocator(pools("- {name: p, addresses: [192.0.2.0/30]}\n- {name: q, addresses: [198.51.100.0/30]}"));
    for (const n of ["a", "b", "c"]) a.ensure(svc(n, { requestedPool: "p" }));
    a.ensure(svc("d", { requestedPool: "q" }));
    const lost = a.setPools(
      pools("- {name: p, addresses: [192.0.2.0/31, 192.0.2.3]}\n- {name: renamed, addresses: [198.51.100.0/30]}"),
    );
    expect(
      lost.map((l) => ({
        service: l.service,
        lost: texts(l.lost),
        reason: l.reason.code,
        now: l.now.ok ? texts(l.now.value.ips) : l.now.error.code,
      })),
    ).toEqual([
      { service: "default/c", lost: ["192.0.2.2"], reason: "LODESTONE_E_IP_NOT_IN_POOL", now: ["192.0.2.3"] },
      {
        service: "default/d",
        lost: ["198.51.100.0"],
        reason: "LODESTONE_E_POOL_NOT_FOUND",
        now: "LODESTONE_E_POOL_NOT_FOUND",
      },
    ]);
    expect(texts(a.get("default/a")?.ips)).toEqual(["192.0.2.0"]);
  });

  it("setPools: a Service without a pool request follows its address into a renamed pool", () => {
    const a = new Allocator(pools("- {name: p, addresses: [192.0.2.0/30]}"));
    a.ensure(svc("a"));
    expect(a.setPools(pools("- {name: p2, addresses: [192.0.2.0/30]}"))).toEqual([]);
    expect(a.get("default/a")).toMatchObject({ pool: "p2" });
  });

  it("rebuild reproduces the state and refuses records that clash", () => {
    const a = new Allocator(basic);
    const reqs = [svc("a"), svc("b", { ipFamilies: [6] }), svc("c", { requestedPool: "team-a", namespace: "team-a" })];
    for (const r of reqs) a.ensure(r);
    const records = reqs.map((request) => ({ request, ips: a.get(`${request.namespace}/${request.name}`)?.ips ?? [] }));
    const b = new Allocator(basic);
    expect(b.rebuild([...records].reverse())).toEqual([]);
    expect(b.allocations()).toEqual(a.allocations());
    expect(b.usage()).toEqual(a.usage());
    const clash = b.rebuild([...records, { request: svc("z"), ips: records[0]!.ips }]);
    expect(clash).toEqual([
      { service: "default/z", error: expect.objectContaining({ code: "LODESTONE_E_IP_IN_USE" }) },
    ]);
  });

  it("adopt takes recorded addresses back once a pool covers them, leaving current allocations alone", () => {
    const a = new Allocator([]);
    const recorded = [
      { request: svc("kept"), ips: ips("192.0.2.11") },
      { request: svc("held"), ips: ips("198.51.100.7") },
      { request: svc("outside"), ips: ips("203.0.113.200") },
    ];
    // No pool yet: nothing can be adopted, every record says why.
    expect(a.adopt(recorded).map((r) => r.error.code)).toEqual(Array(3).fill("LODESTONE_E_IP_NOT_IN_POOL"));
    expect(a.size).toBe(0);
    a.setPools(basic);
    a.ensure(svc("held"));
    expect(texts(a.get("default/held")?.ips)).toEqual(["192.0.2.10"]);
    const refused = a.adopt(recorded);
    // "held" already has an allocation of its own: skipped, not refused and not replaced.
    expect(refused).toEqual([
      { service: "default/outside", error: expect.objectContaining({ code: "LODESTONE_E_IP_NOT_IN_POOL" }) },
    ]);
    expect(texts(a.get("default/kept")?.ips)).toEqual(["192.0.2.11"]);
    expect(texts(a.get("default/held")?.ips)).toEqual(["192.0.2.10"]);
    // A record clashing with a current allocation is refused, never taken from its holder.
    expect(a.adopt([{ request: svc("thief"), ips: ips("192.0.2.10") }])).toEqual([
      { service: "default/thief", error: expect.objectContaining({ code: "LODESTONE_E_IP_IN_USE" }) },
    ]);
  });

  it("usage reports exact sizes per pool and family", () => {
    const a = new Allocator(basic);
    a.ensure(svc("a", { requestedPool: "dual", ipFamilyPolicy: "RequireDualStack", ipFamilies: [4, 6] }));
    expect(a.usage().filter((u) => u.pool === "dual")).toEqual([
      { pool: "dual", family: 4, total: 256n, inUse: 1 },
      { pool: "dual", family: 6, total: 256n, inUse: 1 },
    ]);
    expect(a.usage().find((u) => u.pool === "buggy")).toEqual({ pool: "buggy", family: 4, total: 1n, inUse: 0 });
  });
});
