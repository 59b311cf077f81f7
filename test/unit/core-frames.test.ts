import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { formatIp, parseIp, type IpAddress } from "../../src/core/ip.ts";
import { arpFrame, arpReplyTo, ArpOp, decodeArpFrame, type ArpPacket } from "../../src/core/frames/arp.ts";
import { decodeEthernet, formatMac, padFrame, parseMac } from "../../src/core/frames/ethernet.ts";
import {
  decodeNdpFrame,
  icmpv6Checksum,
  ipv6MulticastMac,
  neighborAdvertisementFor,
  solicitedNodeAddress,
  type NeighborSolicitation,
} from "../../src/core/frames/ndp.ts";
import { gratuitousFrames } from "../../src/core/gratuitous.ts";

/** Golden frames: hex bytes, `#` comment lines (most were captured with tcpdump from arping, ndisc6 and Linux). */
function fixture(name: string): Uint8Array {
  const text = readFileSync(new URL(`../fixtures/frames/${name}.hex`, import.meta.url), "utf8");
  const hex = text
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("")
    .replace(/\s+/g, "");
  return Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
}

const ipOf = (t: string): IpAddress => parseIp(t)!;
const macA = parseMac("02:00:00:00:00:0a")!;
const macB = parseMac("02:00:00:00:00:0b")!;
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function arpOf(name: string): ArpPacket {
  const decoded = decodeArpFrame(fixture(name));
  if (!decoded.ok) throw new Error(`${name}: ${decoded.defect}`);
  return decoded.value;
}

function nsOf(name: string): NeighborSolicitation {
  const decoded = decodeNdpFrame(fixture(name));
  if (!decoded.ok || decoded.value.type !== 135) throw new Error(`${name} is not an NS`);
  return decoded.value;
}

describe("ARP codec (RFC 826) against captured frames", () => {
  it.each([
    {
      desc: "arping request",
      name: "arp-request",
      op: ArpOp.Request,
      sender: ["02:00:00:00:00:0a", "192.0.2.10"],
      target: ["00:00:00:00:00:00", "192.0.2.11"],
    },
    {
      desc: "kernel reply",
      name: "arp-reply",
      op: ArpOp.Reply,
      sender: ["02:00:00:00:00:0b", "192.0.2.11"],
      target: ["02:00:00:00:00:0a", "192.0.2.10"],
    },
    {
      desc: "arping -U gratuitous",
      name: "arp-gratuitous-request",
      op: ArpOp.Request,
      sender: ["02:00:00:00:00:0a", "192.0.2.10"],
      target: ["ff:ff:ff:ff:ff:ff", "192.0.2.10"],
    },
    {
      desc: "our gratuitous request",
      name: "garp-request",
      op: ArpOp.Request,
      sender: ["02:00:00:00:00:0b", "192.0.2.11"],
      target: ["00:00:00:00:00:00", "192.0.2.11"],
    },
    {
      desc: "our gratuitous reply",
      name: "garp-reply",
      op: ArpOp.Reply,
      sender: ["02:00:00:00:00:0b", "192.0.2.11"],
      target: ["ff:ff:ff:ff:ff:ff", "192.0.2.11"],
    },
  ])("decodes $desc", ({ name, op, sender, target }) => {
    const p = arpOf(name);
    expect(p.op).toBe(op);
    expect([formatMac(p.senderMac), formatIp(p.senderIp)]).toEqual(sender);
    expect([formatMac(p.targetMac), formatIp(p.targetIp)]).toEqual(target);
  });

  it("re-encodes the arping request byte for byte (arping pads with zeros to 58 bytes, we to 60)", () => {
    const golden = fixture("arp-request");
    const ours = padFrame(arpFrame(arpOf("arp-request"), parseMac("ff:ff:ff:ff:ff:ff")!));
    expect(ours.length).toBe(60);
    expect(hex(ours.subarray(0, 42))).toBe(hex(golden.subarray(0, 42)));
    expect([...golden.subarray(42), ...ours.subarray(42)].every((b) => b === 0)).toBe(true);
  });

  it("answers the arping request with exactly the kernel's reply", () => {
    expect(hex(arpReplyTo(arpOf("arp-request"), macB))).toBe(hex(fixture("arp-reply")));
  });

  it("encodes a gratuitous round as request + reply (golden, checked with tshark)", () => {
    const frames = gratuitousFrames(ipOf("192.0.2.11"), macB).map(hex);
    expect(frames).toEqual([hex(fixture("garp-request")), hex(fixture("garp-reply"))]);
  });

  it.each([
    { desc: "truncated", bytes: fixture("arp-request").subarray(0, 30), defect: "truncated" },
    { desc: "not ARP", bytes: fixture("ns"), defect: "unsupported" },
    {
      desc: "hardware type 6",
      bytes: Uint8Array.from(fixture("arp-request"), (b, i) => (i === 15 ? 6 : b)),
      defect: "unsupported",
    },
    {
      desc: "opcode 3 (RARP)",
      bytes: Uint8Array.from(fixture("arp-request"), (b, i) => (i === 21 ? 3 : b)),
      defect: "unsupported",
    },
  ])("refuses $desc", ({ bytes, defect }) => {
    expect(decodeArpFrame(bytes)).toEqual({ ok: false, defect });
  });
});

describe("NDP codec (RFC 4861) against captured frames", () => {
  it("decodes ndisc6's Neighbor Solicitation", () => {
    const ns = nsOf("ns");
    expect(formatIp(ns.src)).toBe("fe80::e83c:9bff:fef0:bf7d");
    expect(formatIp(ns.dst)).toBe("ff02::1:ff00:b");
    expect(formatIp(ns.target)).toBe("2001:db8::b");
    expect(formatMac(ns.sourceMac!)).toBe("02:00:00:00:00:0a");
  });

  it("sends ndisc6's NS to the solicited-node group of the target, at its 33:33 MAC", () => {
    const ns = nsOf("ns");
    expect(formatIp(solicitedNodeAddress(ns.target))).toBe("ff02::1:ff00:b");
    expect(hex(ipv6MulticastMac(ns.dst))).toBe(hex(decodeEthernet(fixture("ns"))!.dst));
  });

  it("answers ndisc6's NS with exactly the kernel's NA (S=1 O=1, target link-layer option, hop limit 255)", () => {
    expect(hex(neighborAdvertisementFor(nsOf("ns"), macB, macA))).toBe(hex(fixture("na-solicited")));
  });

  it("decodes the kernel's NA flags and target link-layer address", () => {
    const na = decodeNdpFrame(fixture("na-solicited"));
    expect(na.ok && na.value.type === 136 && na.value).toMatchObject({
      router: false,
      solicited: true,
      override: true,
    });
    expect(na.ok && na.value.type === 136 && formatMac(na.value.targetMac!)).toBe("02:00:00:00:00:0b");
  });

  it("encodes an unsolicited NA to ff02::1 with O=1 (golden, checksum checked with tshark)", () => {
    expect(gratuitousFrames(ipOf("2001:db8::b"), macB).map(hex)).toEqual([hex(fixture("na-unsolicited"))]);
    const na = decodeNdpFrame(fixture("na-unsolicited"));
    expect(na.ok && na.value.type === 136 && [formatIp(na.value.dst), na.value.solicited, na.value.override]).toEqual([
      "ff02::1",
      false,
      true,
    ]);
  });

  it.each(["ns", "na-solicited", "na-unsolicited"])(
    "checksum of %s over the pseudo-header verifies to zero",
    (name) => {
      const ipv6 = decodeEthernet(fixture(name))!.payload;
      const src = parseIp(formatIp({ family: 6, value: BigInt("0x" + hex(ipv6.subarray(8, 24))) }))!;
      const dst = parseIp(formatIp({ family: 6, value: BigInt("0x" + hex(ipv6.subarray(24, 40))) }))!;
      expect(icmpv6Checksum(src, dst, ipv6.subarray(40))).toBe(0);
    },
  );

  const mutate = (name: string, at: number, value: number): Uint8Array =>
    Uint8Array.from(fixture(name), (b, i) => (i === at ? value : b));
  it.each([
    { desc: "a flipped payload byte", bytes: mutate("ns", 70, 0x0c), defect: "bad-checksum" },
    { desc: "hop limit 64 (routed)", bytes: mutate("ns", 21, 64), defect: "bad-hop-limit" },
    { desc: "truncated ICMPv6", bytes: fixture("ns").subarray(0, 70), defect: "truncated" },
    { desc: "an ARP frame", bytes: fixture("arp-request"), defect: "unsupported" },
    { desc: "an ICMPv6 Router Solicitation", bytes: mutate("ns", 54, 133), defect: "unsupported" },
  ])("refuses $desc", ({ bytes, defect }) => {
    expect(decodeNdpFrame(bytes)).toEqual({ ok: false, defect });
  });
});
