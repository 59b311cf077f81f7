import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ip } from "../../src/core/ip.ts";
import {
  addressRange,
  buggyCount,
  formatRange,
  isBuggyIp,
  parseRange,
  rangeContains,
  rangeOverlap,
  rangeSize,
} from "../../src/core/range.ts";

describe("parseRange", () => {
  it.each([
    { desc: "IPv4 CIDR", text: "192.0.2.0/24", family: 4, first: 0xc0000200n, size: 256n },
    {
      desc: "IPv4 CIDR with host bits (MetalLB meaning)",
      text: "192.0.2.7/24",
      family: 4,
      first: 0xc0000200n,
      size: 256n,
    },
    { desc: "IPv4 /32", text: "192.0.2.7/32", family: 4, first: 0xc0000207n, size: 1n },
    { desc: "IPv4 /0", text: "0.0.0.0/0", family: 4, first: 0n, size: 1n << 32n },
    { desc: "IPv4 range", text: "192.0.2.10-192.0.2.20", family: 4, first: 0xc000020an, size: 11n },
    { desc: "IPv4 range with spaces", text: "192.0.2.10 - 192.0.2.20", family: 4, first: 0xc000020an, size: 11n },
    { desc: "IPv4 single", text: "192.0.2.9", family: 4, first: 0xc0000209n, size: 1n },
    { desc: "IPv6 /64", text: "2001:db8::/64", family: 6, first: 0x20010db8n << 96n, size: 1n << 64n },
    { desc: "IPv6 /0", text: "::/0", family: 6, first: 0n, size: 1n << 128n },
    { desc: "IPv6 /128", text: "2001:db8::1/128", family: 6, first: (0x20010db8n << 96n) + 1n, size: 1n },
    { desc: "IPv6 range", text: "2001:db8::1-2001:db8::ff", family: 6, first: (0x20010db8n << 96n) + 1n, size: 255n },
    { desc: "IPv6 single", text: "2001:db8::5", family: 6, first: (0x20010db8n << 96n) + 5n, size: 1n },
  ])("parses $desc", ({ text, family, first, size }) => {
    const r = parseRange(text);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.family).toBe(family);
    expect(r.value.first).toBe(first);
    expect(rangeSize(r.value)).toBe(size);
  });

  it.each([
    { desc: "garbage", text: "pool", code: "LODESTONE_E_BAD_ADDRESS" },
    { desc: "IPv4 prefix too long", text: "192.0.2.0/33", code: "LODESTONE_E_BAD_ADDRESS" },
    { desc: "IPv6 prefix too long", text: "2001:db8::/129", code: "LODESTONE_E_BAD_ADDRESS" },
    { desc: "short IPv4 CIDR", text: "10/8", code: "LODESTONE_E_BAD_ADDRESS" },
    { desc: "non-numeric prefix", text: "192.0.2.0/x", code: "LODESTONE_E_BAD_ADDRESS" },
    { desc: "half a range", text: "192.0.2.1-", code: "LODESTONE_E_BAD_ADDRESS" },
    { desc: "reversed range", text: "192.0.2.20-192.0.2.10", code: "LODESTONE_E_RANGE_REVERSED" },
    { desc: "mixed-family range", text: "192.0.2.1-2001:db8::1", code: "LODESTONE_E_RANGE_MIXED_FAMILY" },
  ])("rejects $desc", ({ text, code }) => {
    const r = parseRange(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(code);
    expect(r.error.message).toContain(text.trim());
  });
});

describe("contains / overlap / format", () => {
  const r24 = addressRange(4, 0xc0000200n, 0xc00002ffn);
  it.each([
    { desc: "first", value: 0xc0000200n, family: 4 as const, inside: true },
    { desc: "last", value: 0xc00002ffn, family: 4 as const, inside: true },
    { desc: "one below", value: 0xc00001ffn, family: 4 as const, inside: false },
    { desc: "one above", value: 0xc0000300n, family: 4 as const, inside: false },
    { desc: "same value, other family", value: 0xc0000200n, family: 6 as const, inside: false },
  ])("contains: $desc", ({ value, family, inside }) => {
    expect(rangeContains(r24, ip(family, value))).toBe(inside);
  });

  it.each([
    { desc: "nested", a: [0n, 100n], b: [10n, 20n], span: [10n, 20n] },
    { desc: "partial", a: [0n, 100n], b: [50n, 200n], span: [50n, 100n] },
    { desc: "touching at one address", a: [0n, 100n], b: [100n, 200n], span: [100n, 100n] },
    { desc: "adjacent", a: [0n, 100n], b: [101n, 200n], span: undefined },
  ])("overlap: $desc", ({ a, b, span }) => {
    const o = rangeOverlap(addressRange(4, a[0]!, a[1]!), addressRange(4, b[0]!, b[1]!));
    expect(o && [o.first, o.last]).toEqual(span);
  });

  it("never reports overlap across families", () => {
    expect(rangeOverlap(addressRange(4, 0n, 10n), addressRange(6, 0n, 10n))).toBeUndefined();
  });

  it.each([
    { desc: "block", text: "192.0.2.0/24", out: "192.0.2.0/24" },
    { desc: "single", text: "192.0.2.1", out: "192.0.2.1" },
    { desc: "unaligned range", text: "192.0.2.1-192.0.2.4", out: "192.0.2.1-192.0.2.4" },
    { desc: "IPv6 block", text: "2001:db8::/64", out: "2001:db8::/64" },
    { desc: "everything", text: "::/0", out: "::/0" },
  ])("formats $desc", ({ text, out }) => {
    const r = parseRange(text);
    expect(r.ok && formatRange(r.value)).toBe(out);
  });
});

describe("buggy IPs", () => {
  it("counts .0 and .255 exactly, matching a brute-force count on small ranges", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 1500 }), (start, len) => {
        const r = addressRange(4, BigInt(start), BigInt(start + len));
        let n = 0n;
        for (let v = start; v <= start + len; v++) if (isBuggyIp(ip(4, BigInt(v)))) n++;
        expect(buggyCount(r)).toBe(n);
      }),
      { numRuns: 200 },
    );
  });

  it("a /8 has 2 * 65536 of them; IPv6 none", () => {
    const r = parseRange("10.0.0.0/8");
    expect(r.ok && buggyCount(r.value)).toBe(2n * 65536n);
    expect(buggyCount(addressRange(6, 0n, 1000n))).toBe(0n);
  });
});
