import { describe, expect, it } from "vitest";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { compareIp, formatIp, ipFromBytes, ipToBytes, parseIp } from "../../src/core/ip.ts";

describe("parseIp / formatIp", () => {
  it.each([
    { desc: "IPv4", text: "192.0.2.1", family: 4, value: 0xc0000201n, canonical: "192.0.2.1" },
    { desc: "IPv4 zero", text: "0.0.0.0", family: 4, value: 0n, canonical: "0.0.0.0" },
    { desc: "IPv4 max", text: "255.255.255.255", family: 4, value: 0xffffffffn, canonical: "255.255.255.255" },
    {
      desc: "IPv6 compressed",
      text: "2001:db8::1",
      family: 6,
      value: 0x20010db8000000000000000000000001n,
      canonical: "2001:db8::1",
    },
    {
      desc: "IPv6 upper case, full",
      text: "2001:0DB8:0:0:0:0:0:0001",
      family: 6,
      value: 0x20010db8000000000000000000000001n,
      canonical: "2001:db8::1",
    },
    {
      desc: "IPv6 all ones",
      text: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      family: 6,
      value: (1n << 128n) - 1n,
      canonical: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    },
    { desc: "IPv6 unspecified", text: "::", family: 6, value: 0n, canonical: "::" },
  ])("parses $desc", ({ text, family, value, canonical }) => {
    const addr = parseIp(text);
    expect(addr).toEqual({ family, value });
    expect(addr && formatIp(addr)).toBe(canonical);
  });

  it.each([
    { desc: "empty", text: "" },
    { desc: "short IPv4", text: "10.1" },
    { desc: "octet out of range", text: "192.0.2.256" },
    { desc: "hex IPv4", text: "0xc0.0.2.1" },
    { desc: "IPv6 zone", text: "fe80::1%eth0" },
    { desc: "CIDR is not an address", text: "192.0.2.0/24" },
    { desc: "word", text: "localhost" },
  ])("rejects $desc", ({ text }) => {
    expect(parseIp(text)).toBeUndefined();
  });
});

describe("bytes", () => {
  it("round-trips any IPv4 and IPv6 value", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })),
        (bytes) => {
          const addr = ipFromBytes(bytes);
          expect(addr).toBeDefined();
          if (addr === undefined) return;
          expect(ipToBytes(addr)).toEqual(bytes);
          expect(parseIp(formatIp(addr))).toEqual(addr);
        },
      ),
    );
  });

  it("formats as ipaddr.js does (RFC 5952 for IPv6), zero runs of every length and place included", () => {
    // Hextets drawn mostly from 0 so that runs of zeros of all lengths, at the start, middle and end, and ties
    // between equal runs, all occur.
    const hextet = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(hextet, { minLength: 8, maxLength: 8 }), (hextets) => {
        const bytes = hextets.flatMap((h) => [h >> 8, h & 0xff]);
        const addr = ipFromBytes(bytes);
        expect(addr && formatIp(addr)).toBe((ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String());
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (bytes) => {
        const addr = ipFromBytes(bytes);
        expect(addr && formatIp(addr)).toBe(ipaddr.fromByteArray([...bytes]).toString());
      }),
    );
  });

  it("refuses other lengths", () => {
    expect(ipFromBytes(new Uint8Array(5))).toBeUndefined();
  });

  it("orders IPv4 before IPv6, then by value", () => {
    const sorted = ["2001:db8::1", "192.0.2.10", "192.0.2.9", "::"]
      .map((t) => parseIp(t)!)
      .sort(compareIp)
      .map(formatIp);
    expect(sorted).toEqual(["192.0.2.9", "192.0.2.10", "::", "2001:db8::1"]);
  });
});
