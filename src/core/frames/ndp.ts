import { ip, ipToBytes, type IpAddress } from "../ip.ts";
import { ipAt, u16, u8 } from "./bytes.ts";
import { decodeEthernet, encodeEthernet, ETHERTYPE_IPV6, type Mac } from "./ethernet.ts";

/**
 * Neighbor Discovery (RFC 4861) Neighbor Solicitation and Advertisement, inside their IPv6 header: the only
 * ICMPv6 messages Lodestone sends or reads. Both travel with hop limit 255 so a receiver knows they were not
 * routed (§7.1).
 */
export const ICMPV6 = 58;
export const NDP_HOP_LIMIT = 255;
export const NdpType = { NeighborSolicitation: 135, NeighborAdvertisement: 136 } as const;
const OPTION_SOURCE_LL = 1;
const OPTION_TARGET_LL = 2;
const IPV6_HEADER_LENGTH = 40;
/** Type, code, checksum, 4 bytes reserved/flags, 16 bytes target. */
const NDP_FIXED_LENGTH = 24;

export interface NeighborSolicitation {
  readonly type: typeof NdpType.NeighborSolicitation;
  readonly src: IpAddress;
  readonly dst: IpAddress;
  readonly target: IpAddress;
  /** Source link-layer address option; absent in DAD probes (source ::). */
  readonly sourceMac: Mac | undefined;
}

export interface NeighborAdvertisement {
  readonly type: typeof NdpType.NeighborAdvertisement;
  readonly src: IpAddress;
  readonly dst: IpAddress;
  readonly target: IpAddress;
  readonly router: boolean;
  readonly solicited: boolean;
  readonly override: boolean;
  readonly targetMac: Mac | undefined;
}

export type NdpMessage = NeighborSolicitation | NeighborAdvertisement;

export const UNSPECIFIED_IPV6: IpAddress = ip(6, 0n);
export const ALL_NODES: IpAddress = ip(6, (0xff02n << 112n) | 1n);

/** ff02::1:ffXX:XXXX, the group a node joins for each of its addresses (RFC 4291 §2.7.1). */
export function solicitedNodeAddress(addr: IpAddress): IpAddress {
  return ip(6, (0xff02n << 112n) | (0x1ffn << 24n) | (addr.value & 0xffffffn));
}

/** 33:33 followed by the low 32 bits of an IPv6 multicast address (RFC 2464 §7). */
export function ipv6MulticastMac(group: IpAddress): Mac {
  const b = ipToBytes(group);
  return Uint8Array.of(0x33, 0x33, u8(b, 12), u8(b, 13), u8(b, 14), u8(b, 15));
}

/** The Internet checksum of the IPv6 pseudo-header (RFC 8200 §8.1) followed by the ICMPv6 message. */
export function icmpv6Checksum(src: IpAddress, dst: IpAddress, icmp: Uint8Array): number {
  let sum = 0;
  const add = (bytes: Uint8Array): void => {
    for (let i = 0; i < bytes.length; i += 2) sum += u16(bytes, i);
  };
  add(ipToBytes(src));
  add(ipToBytes(dst));
  sum += (icmp.length >>> 16) + (icmp.length & 0xffff) + ICMPV6;
  add(icmp);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The IPv6 packet (header + ICMPv6) for a message, checksum filled in. */
export function encodeNdp(msg: NdpMessage, hopLimit: number = NDP_HOP_LIMIT): Uint8Array {
  const mac = msg.type === NdpType.NeighborSolicitation ? msg.sourceMac : msg.targetMac;
  const icmp = new Uint8Array(NDP_FIXED_LENGTH + (mac === undefined ? 0 : 8));
  icmp[0] = msg.type;
  if (msg.type === NdpType.NeighborAdvertisement) {
    icmp[4] = (msg.router ? 0x80 : 0) | (msg.solicited ? 0x40 : 0) | (msg.override ? 0x20 : 0);
  }
  icmp.set(ipToBytes(msg.target), 8);
  if (mac !== undefined) {
    icmp[24] = msg.type === NdpType.NeighborSolicitation ? OPTION_SOURCE_LL : OPTION_TARGET_LL;
    icmp[25] = 1; // in units of 8 bytes
    icmp.set(mac, 26);
  }
  const checksum = icmpv6Checksum(msg.src, msg.dst, icmp);
  icmp[2] = checksum >> 8;
  icmp[3] = checksum & 0xff;

  const out = new Uint8Array(IPV6_HEADER_LENGTH + icmp.length);
  out[0] = 0x60;
  out[4] = icmp.length >> 8;
  out[5] = icmp.length & 0xff;
  out[6] = ICMPV6;
  out[7] = hopLimit;
  out.set(ipToBytes(msg.src), 8);
  out.set(ipToBytes(msg.dst), 24);
  out.set(icmp, IPV6_HEADER_LENGTH);
  return out;
}

/** Why bytes are not a valid NS/NA (RFC 4861 §7.1.1, §7.1.2), or not one at all ("unsupported"). */
export type NdpDefect = "truncated" | "unsupported" | "bad-checksum" | "bad-hop-limit" | "malformed";

export type NdpDecoded =
  { readonly ok: true; readonly value: NdpMessage } | { readonly ok: false; readonly defect: NdpDefect };

/** Decodes an IPv6 packet carrying NS or NA, with the validity checks of RFC 4861 §7.1; padding is ignored. */
export function decodeNdp(packet: Uint8Array): NdpDecoded {
  if (packet.length < IPV6_HEADER_LENGTH) return { ok: false, defect: "truncated" };
  if (u8(packet, 0) >> 4 !== 6 || packet[6] !== ICMPV6) return { ok: false, defect: "unsupported" };
  const length = u16(packet, 4);
  if (packet.length < IPV6_HEADER_LENGTH + length) return { ok: false, defect: "truncated" };
  const icmp = packet.subarray(IPV6_HEADER_LENGTH, IPV6_HEADER_LENGTH + length);
  const type = icmp[0];
  if (type !== NdpType.NeighborSolicitation && type !== NdpType.NeighborAdvertisement) {
    return { ok: false, defect: "unsupported" };
  }
  if (icmp.length < NDP_FIXED_LENGTH) return { ok: false, defect: "truncated" };
  const src = ipAt(packet, 8, 6);
  const dst = ipAt(packet, 24, 6);
  if (packet[7] !== NDP_HOP_LIMIT) return { ok: false, defect: "bad-hop-limit" };
  if (icmpv6Checksum(src, dst, icmp) !== 0) return { ok: false, defect: "bad-checksum" };
  const target = ipAt(icmp, 8, 6);
  if (icmp[1] !== 0 || target.value >> 120n === 0xffn) return { ok: false, defect: "malformed" };

  const wanted = type === NdpType.NeighborSolicitation ? OPTION_SOURCE_LL : OPTION_TARGET_LL;
  let mac: Mac | undefined;
  for (let at = NDP_FIXED_LENGTH; at < icmp.length;) {
    const optLength = (icmp[at + 1] ?? 0) * 8;
    // A zero-length option would loop forever; §7.1 says drop the whole message.
    if (optLength === 0 || at + optLength > icmp.length) return { ok: false, defect: "malformed" };
    if (icmp[at] === wanted && optLength >= 8) mac = icmp.slice(at + 2, at + 8);
    at += optLength;
  }
  if (type === NdpType.NeighborSolicitation) {
    return { ok: true, value: { type, src, dst, target, sourceMac: mac } };
  }
  const flags = u8(icmp, 4);
  return {
    ok: true,
    value: {
      type,
      src,
      dst,
      target,
      router: (flags & 0x80) !== 0,
      solicited: (flags & 0x40) !== 0,
      override: (flags & 0x20) !== 0,
      targetMac: mac,
    },
  };
}

export function ndpFrame(msg: NdpMessage, srcMac: Mac, dstMac: Mac): Uint8Array {
  return encodeEthernet({ dst: dstMac, src: srcMac, etherType: ETHERTYPE_IPV6, payload: encodeNdp(msg) });
}

export function decodeNdpFrame(frame: Uint8Array): NdpDecoded {
  const eth = decodeEthernet(frame);
  if (eth === undefined) return { ok: false, defect: "truncated" };
  if (eth.etherType !== ETHERTYPE_IPV6) return { ok: false, defect: "unsupported" };
  return decodeNdp(eth.payload);
}

/**
 * The solicited NA answering `ns` for its target at `mac` (RFC 4861 §7.2.4): Solicited and Override set, target
 * link-layer option, sent from the target address to the soliciting node, at the MAC it gave (or its frame's).
 */
export function neighborAdvertisementFor(ns: NeighborSolicitation, mac: Mac, requesterMac: Mac): Uint8Array {
  return ndpFrame(
    {
      type: NdpType.NeighborAdvertisement,
      src: ns.target,
      dst: ns.src,
      target: ns.target,
      router: false,
      solicited: true,
      override: true,
      targetMac: mac,
    },
    mac,
    ns.sourceMac ?? requesterMac,
  );
}

/** Unsolicited NA to all nodes (RFC 4861 §7.2.6): Override set so neighbours replace a cached MAC at once. */
export function unsolicitedAdvertisement(addr: IpAddress, mac: Mac): Uint8Array {
  return ndpFrame(
    {
      type: NdpType.NeighborAdvertisement,
      src: addr,
      dst: ALL_NODES,
      target: addr,
      router: false,
      solicited: false,
      override: true,
      targetMac: mac,
    },
    mac,
    ipv6MulticastMac(ALL_NODES),
  );
}
