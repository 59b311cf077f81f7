import { ipToBytes, type IpAddress } from "../ip.ts";
import { ipAt } from "./bytes.ts";
import { BROADCAST_MAC, decodeEthernet, encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, type Mac } from "./ethernet.ts";

/** ARP operation codes (RFC 826). */
export const ArpOp = { Request: 1, Reply: 2 } as const;
export type ArpOp = (typeof ArpOp)[keyof typeof ArpOp];

/** An ARP packet for IPv4 over Ethernet, the only kind Lodestone speaks. */
export interface ArpPacket {
  readonly op: ArpOp;
  readonly senderMac: Mac;
  readonly senderIp: IpAddress;
  readonly targetMac: Mac;
  readonly targetIp: IpAddress;
}

export const ARP_LENGTH = 28;
const HTYPE_ETHERNET = 1;

export function encodeArp(p: ArpPacket): Uint8Array {
  const out = new Uint8Array(ARP_LENGTH);
  const view = new DataView(out.buffer);
  view.setUint16(0, HTYPE_ETHERNET);
  view.setUint16(2, ETHERTYPE_IPV4);
  out[4] = 6;
  out[5] = 4;
  view.setUint16(6, p.op);
  out.set(p.senderMac, 8);
  out.set(ipToBytes(p.senderIp), 14);
  out.set(p.targetMac, 18);
  out.set(ipToBytes(p.targetIp), 24);
  return out;
}

/** Why bytes are not an ARP packet we understand. */
export type ArpDefect = "truncated" | "unsupported";

export type ArpDecoded =
  { readonly ok: true; readonly value: ArpPacket } | { readonly ok: false; readonly defect: ArpDefect };

/** Decodes the ARP payload of a frame; trailing Ethernet padding is ignored. */
export function decodeArp(bytes: Uint8Array): ArpDecoded {
  if (bytes.length < ARP_LENGTH) return { ok: false, defect: "truncated" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = view.getUint16(6);
  if (
    view.getUint16(0) !== HTYPE_ETHERNET ||
    view.getUint16(2) !== ETHERTYPE_IPV4 ||
    bytes[4] !== 6 ||
    bytes[5] !== 4 ||
    (op !== ArpOp.Request && op !== ArpOp.Reply)
  ) {
    return { ok: false, defect: "unsupported" };
  }
  return {
    ok: true,
    value: {
      op,
      senderMac: bytes.slice(8, 14),
      senderIp: ipAt(bytes, 14, 4),
      targetMac: bytes.slice(18, 24),
      targetIp: ipAt(bytes, 24, 4),
    },
  };
}

/** An ARP packet inside an Ethernet frame (unpadded: 42 bytes). */
export function arpFrame(p: ArpPacket, dst: Mac): Uint8Array {
  return encodeEthernet({ dst, src: p.senderMac, etherType: ETHERTYPE_ARP, payload: encodeArp(p) });
}

/** The reply to `request` saying `mac` holds its target IP, unicast back to the requester (RFC 826). */
export function arpReplyTo(request: ArpPacket, mac: Mac): Uint8Array {
  return arpFrame(
    {
      op: ArpOp.Reply,
      senderMac: mac,
      senderIp: request.targetIp,
      targetMac: request.senderMac,
      targetIp: request.senderIp,
    },
    request.senderMac,
  );
}

/**
 * The two gratuitous ARP frames for `ip` at `mac`: a request (an RFC 5227 §2.3 announcement, target MAC zero) and
 * a reply (target MAC broadcast), both broadcast with sender IP = target IP. Hosts and switches differ in which
 * of the two they honour, so both are sent, as keepalived and MetalLB do.
 */
export function gratuitousArpFrames(ip: IpAddress, mac: Mac): readonly [Uint8Array, Uint8Array] {
  const base = { senderMac: mac, senderIp: ip, targetIp: ip };
  return [
    arpFrame({ ...base, op: ArpOp.Request, targetMac: new Uint8Array(6) }, BROADCAST_MAC),
    arpFrame({ ...base, op: ArpOp.Reply, targetMac: BROADCAST_MAC }, BROADCAST_MAC),
  ];
}

/** Decodes a whole Ethernet frame carrying ARP; "unsupported" for any other EtherType. */
export function decodeArpFrame(frame: Uint8Array): ArpDecoded {
  const eth = decodeEthernet(frame);
  if (eth === undefined) return { ok: false, defect: "truncated" };
  if (eth.etherType !== ETHERTYPE_ARP) return { ok: false, defect: "unsupported" };
  return decodeArp(eth.payload);
}
