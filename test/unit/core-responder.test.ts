import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ipKey, parseIp, type IpAddress } from "../../src/core/ip.ts";
import { arpFrame, ArpOp, decodeArpFrame } from "../../src/core/frames/arp.ts";
import { BROADCAST_MAC, parseMac } from "../../src/core/frames/ethernet.ts";
import { decodeNdpFrame, ndpFrame, NdpType, UNSPECIFIED_IPV6 } from "../../src/core/frames/ndp.ts";
import {
  announcementIn,
  DropReason,
  respond,
  type Ownership,
  type ResponderInterface,
} from "../../src/core/responder.ts";
import { gratuitousFrames, gratuitousRoundAt } from "../../src/core/gratuitous.ts";
import { formatMac } from "../../src/core/frames/ethernet.ts";
import { formatIp } from "../../src/core/ip.ts";

function fixture(name: string): Uint8Array {
  const text = readFileSync(new URL(`../fixtures/frames/${name}.hex`, import.meta.url), "utf8");
  const hex = text.replace(/^#.*$/gm, "").replace(/\s+/g, "");
  return Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
}

const ipOf = (t: string): IpAddress => parseIp(t)!;
const ours = parseMac("02:00:00:00:00:0b")!;
const client = parseMac("02:00:00:00:00:0a")!;

/** eth0 announces 192.0.2.11 and 2001:db8::b; 192.0.2.12 is announced on another interface. */
const table: Record<string, Ownership> = {
  [ipKey(ipOf("192.0.2.11"))]: "here",
  [ipKey(ipOf("2001:db8::b"))]: "here",
  [ipKey(ipOf("192.0.2.12"))]: "elsewhere",
};
const eth0: ResponderInterface = { name: "eth0", mac: ours, ownership: (ip) => table[ipKey(ip)] ?? "none" };

/** The same ownership on an interface with another MAC, for frames captured from our MAC (02:..:0b). */
const eth1: ResponderInterface = { ...eth0, name: "eth1", mac: parseMac("02:00:00:00:00:0c")! };

const arpRequest = (target: string, sender = "192.0.2.10", senderMac = client): Uint8Array =>
  arpFrame(
    { op: ArpOp.Request, senderMac, senderIp: ipOf(sender), targetMac: new Uint8Array(6), targetIp: ipOf(target) },
    BROADCAST_MAC,
  );
const ns = (target: string, src: IpAddress, withOption = true): Uint8Array =>
  ndpFrame(
    {
      type: NdpType.NeighborSolicitation,
      src,
      dst: ipOf("ff02::1:ff00:b"),
      target: ipOf(target),
      sourceMac: withOption ? client : undefined,
    },
    client,
    parseMac("33:33:ff:00:00:0b")!,
  );

describe("respond: which frames get an answer", () => {
  it.each([
    { desc: "ARP reply (someone else's answer)", frame: fixture("arp-reply"), reason: DropReason.NotRequest, on: eth1 },
    { desc: "ARP request for an IP nobody here owns", frame: arpRequest("192.0.2.99"), reason: DropReason.NotOwned },
    {
      desc: "ARP request for an IP owned on another interface",
      frame: arpRequest("192.0.2.12"),
      reason: DropReason.OtherInterface,
    },
    {
      desc: "gratuitous ARP from another host",
      frame: arpRequest("192.0.2.11", "192.0.2.11"),
      reason: DropReason.Gratuitous,
    },
    {
      desc: "our own frame looped back",
      frame: arpRequest("192.0.2.11", "192.0.2.10", ours),
      reason: DropReason.OwnFrame,
    },
    {
      desc: "ARP from a multicast sender MAC",
      frame: arpRequest("192.0.2.11", "192.0.2.10", parseMac("01:00:5e:00:00:01")!),
      reason: DropReason.Malformed,
    },
    { desc: "runt frame", frame: new Uint8Array(10), reason: DropReason.Malformed },
    { desc: "truncated ARP", frame: fixture("arp-request").subarray(0, 30), reason: DropReason.Malformed },
    {
      desc: "IPv4 packet",
      frame: Uint8Array.from(fixture("arp-request"), (b, i) => (i === 13 ? 0 : b)),
      reason: DropReason.Unsupported,
    },
    {
      desc: "NS with bad checksum",
      frame: Uint8Array.from(fixture("ns"), (b, i) => (i === 70 ? 0x0c : b)),
      reason: DropReason.Malformed,
    },
    { desc: "Neighbor Advertisement", frame: fixture("na-solicited"), reason: DropReason.NotRequest, on: eth1 },
    {
      desc: "DAD probe (source ::, no option)",
      frame: ns("2001:db8::b", UNSPECIFIED_IPV6, false),
      reason: DropReason.DadProbe,
    },
    {
      desc: "NS from :: carrying an option",
      frame: ns("2001:db8::b", UNSPECIFIED_IPV6, true),
      reason: DropReason.Malformed,
    },
    {
      desc: "NS for an IPv6 nobody here owns",
      frame: ns("2001:db8::99", ipOf("2001:db8::a")),
      reason: DropReason.NotOwned,
    },
  ])("drops $desc", ({ frame, reason, on }) => {
    expect(respond(frame, on ?? eth0)).toEqual({ kind: "drop", reason });
  });

  it("answers an ARP request for an owned IP with a padded reply unicast to the requester", () => {
    const d = respond(fixture("arp-request"), eth0);
    expect(d.kind === "reply" && [d.protocol, d.frame.length]).toEqual(["arp", 60]);
    const reply = d.kind === "reply" ? decodeArpFrame(d.frame) : undefined;
    expect(d.kind === "reply" && Buffer.from(d.frame.subarray(0, 6)).toString("hex")).toBe("02000000000a");
    expect(reply?.ok && reply.value).toMatchObject({ op: ArpOp.Reply, senderMac: ours, senderIp: ipOf("192.0.2.11") });
  });

  it("answers an ARP probe (sender 0.0.0.0) so the prober learns the IP is taken (RFC 5227)", () => {
    const d = respond(arpRequest("192.0.2.11", "0.0.0.0"), eth0);
    expect(d.kind).toBe("reply");
  });

  it("answers ndisc6's NS with the solicited NA, byte for byte what Linux sends", () => {
    const d = respond(fixture("ns"), eth0);
    expect(d.kind === "reply" && Buffer.from(d.frame).toString("hex")).toBe(
      Buffer.from(fixture("na-solicited")).toString("hex"),
    );
    const na = d.kind === "reply" ? decodeNdpFrame(d.frame) : undefined;
    expect(na?.ok && na.value.type === NdpType.NeighborAdvertisement && na.value.solicited).toBe(true);
  });

  it("answers an NS without a source link-layer option at the frame's source MAC", () => {
    const d = respond(ns("2001:db8::b", ipOf("2001:db8::a"), false), eth0);
    expect(d.kind === "reply" && Buffer.from(d.frame.subarray(0, 6)).toString("hex")).toBe("02000000000a");
  });
});

describe("gratuitousRoundAt: the takeover schedule as data", () => {
  it.each([
    { desc: "default burst", schedule: { intervalMs: 1100, count: 5 }, rounds: [0, 1100, 2200, 3300, 4400, undefined] },
    { desc: "single round", schedule: { intervalMs: 1100, count: 1 }, rounds: [0, undefined] },
    { desc: "no burst", schedule: { intervalMs: 1100, count: 0 }, rounds: [undefined] },
    {
      desc: "burst then refresh every 60 s",
      schedule: { intervalMs: 500, count: 3, refreshSeconds: 60 },
      rounds: [0, 500, 1000, 61_000, 121_000],
    },
    { desc: "refresh only", schedule: { intervalMs: 1000, count: 0, refreshSeconds: 30 }, rounds: [30_000, 60_000] },
  ])("$desc", ({ schedule, rounds }) => {
    const start = 1_000_000;
    expect(rounds.map((_, i) => gratuitousRoundAt(schedule, start, i))).toEqual(
      rounds.map((r) => (r === undefined ? r : start + r)),
    );
  });
});

describe("announcementIn: another host taking an IP (what a leaving speaker waits for)", () => {
  const successor = parseMac("02:00:00:00:00:13")!;
  const seen = (frame: Uint8Array) => {
    const a = announcementIn(frame);
    return a === undefined ? undefined : `${formatIp(a.ip)} at ${formatMac(a.mac)}`;
  };

  it("recognises every frame of a takeover burst, IPv4 (request and reply) and IPv6 (unsolicited NA)", () => {
    for (const frame of gratuitousFrames(ipOf("192.0.2.100"), successor)) {
      expect(seen(frame)).toBe("192.0.2.100 at 02:00:00:00:00:13");
    }
    const [na] = gratuitousFrames(ipOf("2001:db8::100"), successor);
    expect(seen(na!)).toBe("2001:db8::100 at 02:00:00:00:00:13");
  });

  it.each([
    { desc: "an ordinary ARP request", frame: arpRequest("192.0.2.11") },
    { desc: "an ARP probe (sender 0.0.0.0)", frame: arpRequest("0.0.0.0", "0.0.0.0") },
    { desc: "an ARP reply to a question", frame: fixture("arp-reply") },
    { desc: "a solicited NA (an answer, not an announcement)", frame: fixture("na-solicited") },
    { desc: "a Neighbor Solicitation", frame: ns("2001:db8::b", ipOf("2001:db8::a")) },
    { desc: "a truncated frame", frame: new Uint8Array(10) },
  ])("ignores $desc", ({ frame }) => {
    expect(announcementIn(frame)).toBeUndefined();
  });
});
