// The speaker's report of what it announces (the compact codec in its Lease) and the controller's reading of all
// reports (who is named for each IP).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeAnnounced, encodeAnnounced } from "../../src/core/announced-codec.ts";
import { AnnouncerReports } from "../../src/core/announcer-reports.ts";
import { type IpAddress, compareIp, formatIp, ip, ipKey, parseIp } from "../../src/core/ip.ts";

const v4 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }).map((v) => ip(4, v));
const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((v) => ip(6, v));
/** Addresses near each other, as a pool's are, and anywhere at all. */
const near6 = fc.integer({ min: 0, max: 65535 }).map((n) => ip(6, 0x20010db8000000000000000000000000n + BigInt(n)));
const address = fc.oneof(v4, v6, near6);
const unique = (list: readonly IpAddress[]): IpAddress[] => {
  const seen = new Map(list.map((a) => [ipKey(a), a]));
  return [...seen.values()].sort(compareIp);
};
/** The Lease annotation limit (apimachinery TotalAnnotationSizeLimitB). */
const LIMIT = 256 * 1024;

describe("encodeAnnounced / decodeAnnounced", () => {
  it("round-trips any set of addresses, sorted and without duplicates", () => {
    fc.assert(
      fc.property(fc.array(address, { maxLength: 300 }), (list) => {
        const decoded = decodeAnnounced(encodeAnnounced(list));
        expect(decoded.ok).toBe(true);
        if (decoded.ok) expect(decoded.value.map(formatIp)).toEqual(unique(list).map(formatIp));
      }),
    );
  });

  it("does not depend on the order or repetition of its input", () => {
    fc.assert(
      fc.property(fc.array(address, { maxLength: 100 }), (list) => {
        expect(encodeAnnounced([...list].reverse().concat(list))).toBe(encodeAnnounced(list));
      }),
    );
  });

  it.each([
    { desc: "nothing", ips: [], text: "" },
    { desc: "one IPv4 address", ips: ["192.0.2.1"], text: "4:gYSAgAw=" },
    {
      desc: "two adjacent IPv4 addresses: a gap of zero is one byte",
      ips: ["192.0.2.1", "192.0.2.2"],
      text: "4:gYSAgAwA",
    },
    { desc: "IPv6 after IPv4", ips: ["2001:db8::1", "192.0.2.1"], text: expect.stringMatching(/^4:[^;]+;6:[^;]+$/) },
  ])("writes $desc as expected", ({ ips, text }) => {
    expect(encodeAnnounced(ips.map((t) => parseIp(t)!))).toEqual(text);
  });

  it.each([
    { desc: "a family that is not 4 or 6", text: "5:AA==", error: /not <4\|6>:<base64>/ },
    { desc: "no base64", text: "4:", error: /not <4\|6>/ },
    { desc: "base64 with a stray character", text: "4:AA*A", error: /not <4\|6>/ },
    { desc: "a family twice", text: "4:AA==;4:AQ==", error: /IPv4 appears twice/ },
    { desc: "a number cut off", text: "4:gA==", error: /cut off/ },
    { desc: "an IPv4 address beyond 32 bits", text: "4:gICAgBA=", error: /beyond the family's range/ },
    {
      desc: "an endless number",
      text: `6:${Buffer.alloc(24, 0xff).toString("base64")}`,
      error: /longer than an address/,
    },
  ])("refuses $desc", ({ text, error }) => {
    const r = decodeAnnounced(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(error);
  });

  it("fits one node announcing 10,000 IPv6 addresses of a /112 pool (the others dead) in a few KB", () => {
    // 2001:db8:85a3:8d3:1319:8a2e:370:0/112, every sixth address.
    const base = 0x20010db885a308d313198a2e03700000n;
    const all = Array.from({ length: 10_000 }, (_, i) => ip(6, base + BigInt(i * 6)));
    const text = encodeAnnounced(all);
    // A plain JSON list would be ~390 KB, over the limit.
    expect(JSON.stringify(all.map(formatIp)).length).toBeGreaterThan(LIMIT);
    expect(text.length).toBeLessThan(20_000);
    const third = encodeAnnounced(all.filter((_, i) => i % 3 === 0));
    expect(third.length).toBeLessThan(8_000);
    const back = decodeAnnounced(text);
    expect(back.ok && back.value.length).toBe(10_000);
  });

  it("stays under the Lease limit for 10,000 addresses spread over a whole /64", () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 10_000, maxLength: 10_000 }),
        (offsets) => {
          const text = encodeAnnounced(offsets.map((o) => ip(6, 0x20010db8000000000000000000000000n + o)));
          expect(text.length).toBeLessThan(LIMIT / 2);
        },
      ),
      { numRuns: 5 },
    );
  });
});

const k = (text: string): string => ipKey(parseIp(text)!);

describe("AnnouncerReports", () => {
  it("names the only live node reporting an IP, and nobody once its Lease expires", () => {
    const r = new AnnouncerReports();
    expect(r.report("n1", [k("192.0.2.1")], 10_000, 0)).toEqual([k("192.0.2.1")]);
    expect(r.owner(k("192.0.2.1"), 5_000)).toBe("n1");
    expect(r.expired(5_000, 10_000)).toEqual([k("192.0.2.1")]);
    expect(r.owner(k("192.0.2.1"), 10_000)).toBeUndefined();
    // Renewed again with the same report: named again, and that is a change of owner.
    expect(r.renew("n1", 25_000, 15_000)).toEqual([k("192.0.2.1")]);
    expect(r.owner(k("192.0.2.1"), 15_000)).toBe("n1");
  });

  it("names the node that began reporting an IP last: the successor of a node that died, before its Lease expires", () => {
    const r = new AnnouncerReports();
    r.report("n1", [k("192.0.2.1"), k("192.0.2.2")], 10_000, 0);
    r.report("n2", [k("192.0.2.3")], 10_000, 0);
    // n1 is killed at 1 s; n2 takes 192.0.2.1 over and reports it at 1.6 s while n1's Lease is still valid.
    expect(r.report("n2", [k("192.0.2.3"), k("192.0.2.1")], 11_600, 1_600)).toEqual([k("192.0.2.1")]);
    expect(r.owner(k("192.0.2.1"), 2_000)).toBe("n2");
    expect(r.owner(k("192.0.2.2"), 2_000)).toBe("n1");
    // n1 comes back and takes 192.0.2.1 back: named at once; n2 then drops it.
    r.report("n1", [k("192.0.2.1"), k("192.0.2.2")], 14_000, 4_000);
    expect(r.owner(k("192.0.2.1"), 4_000)).toBe("n2");
    r.report("n1", [k("192.0.2.2")], 14_500, 4_500);
    r.report("n1", [k("192.0.2.1"), k("192.0.2.2")], 15_000, 5_000);
    expect(r.owner(k("192.0.2.1"), 5_000)).toBe("n1");
    expect(r.report("n2", [k("192.0.2.3")], 16_000, 6_000)).toEqual([k("192.0.2.1")]);
    expect(r.owner(k("192.0.2.1"), 6_000)).toBe("n1");
  });

  it("breaks a tie by name and forgets a removed Lease", () => {
    const r = new AnnouncerReports();
    r.report("n2", [k("2001:db8::1")], 10_000, 0);
    r.report("n1", [k("2001:db8::1")], 10_000, 0);
    expect(r.owner(k("2001:db8::1"), 0)).toBe("n1");
    expect(r.remove("n1")).toEqual([k("2001:db8::1")]);
    expect(r.owner(k("2001:db8::1"), 0)).toBe("n2");
    expect(r.nextExpiry(0)).toBe(10_000);
  });

  it("returns every IP whose owner changed (a superset is allowed, a missing one is not)", () => {
    const nodes = ["a", "b", "c"];
    const keys = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"].map(k);
    const step = fc.record({
      node: fc.constantFrom(...nodes),
      ips: fc.subarray(keys),
      kind: fc.constantFrom("report", "renew", "remove", "expire"),
      ttl: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const r = new AnnouncerReports();
        let now = 0;
        for (const s of steps) {
          const before = new Map(keys.map((x) => [x, r.owner(x, now)]));
          const since = now;
          now += 1;
          let changed: string[];
          if (s.kind === "report") changed = r.report(s.node, s.ips, now + s.ttl, now);
          else if (s.kind === "renew") changed = r.renew(s.node, now + s.ttl, now);
          else if (s.kind === "remove") changed = r.remove(s.node);
          else changed = [];
          changed.push(...r.expired(since, now));
          for (const x of keys) if (r.owner(x, now) !== before.get(x)) expect(changed).toContain(x);
        }
      }),
    );
  });
});
