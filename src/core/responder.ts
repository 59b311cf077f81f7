import { type IpAddress } from "./ip.ts";
import { arpReplyTo, ArpOp, decodeArp } from "./frames/arp.ts";
import {
  decodeEthernet,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV6,
  isMulticastMac,
  padFrame,
  sameMac,
  type Mac,
} from "./frames/ethernet.ts";
import { decodeNdp, neighborAdvertisementFor, NdpType } from "./frames/ndp.ts";

/**
 * Why a received frame got no answer. Stable strings: they are metric label values
 * (`lodestone_l2_drops_total{interface,reason}`, see metricCatalogue in src/http/metrics.ts) and log fields.
 */
export const DropReason = {
  /** Truncated, bad checksum, hop limit not 255, zero-length option: RFC 4861 §7.1 says silently discard. */
  Malformed: "malformed",
  /** Neither ARP nor ICMPv6 NS/NA (the kernel filter lets little else through). */
  Unsupported: "unsupported",
  /** ARP replies and Neighbor Advertisements: someone else's answer, never ours to answer. */
  NotRequest: "not-request",
  /** Gratuitous ARP from another host (sender IP = target IP): an announcement, not a question. */
  Gratuitous: "gratuitous",
  /** Frames we sent ourselves, seen again. */
  OwnFrame: "own-frame",
  /** A question about an IP nobody here owns: the common case on a busy LAN. */
  NotOwned: "not-owned",
  /** A question about an owned IP that arrived on an interface the IP is not announced on. */
  OtherInterface: "other-interface",
  /** A Duplicate Address Detection probe (NS from ::); answering would make the prober give up its address. */
  DadProbe: "dad-probe",
  /** The reply could not be sent (the transport reported an error). */
  SendFailed: "send-failed",
  /** The kernel dropped frames before we read them (socket receive queue full). */
  QueueOverflow: "queue-overflow",
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Where an IP is owned, as seen from the interface that received a frame. */
export type Ownership = "here" | "elsewhere" | "none";

export interface ResponderInterface {
  readonly name: string;
  readonly mac: Mac;
  readonly ownership: (ip: IpAddress) => Ownership;
}

export type Decision =
  | { readonly kind: "reply"; readonly protocol: "arp" | "ndp"; readonly ip: IpAddress; readonly frame: Uint8Array }
  | { readonly kind: "drop"; readonly reason: DropReason };

const drop = (reason: DropReason): Decision => ({ kind: "drop", reason });

function owned(ip: IpAddress, iface: ResponderInterface): DropReason | undefined {
  const where = iface.ownership(ip);
  return where === "here" ? undefined : where === "elsewhere" ? DropReason.OtherInterface : DropReason.NotOwned;
}

/**
 * What to do with one frame received on `iface`: the reply frame to send (ARP reply unicast to the requester,
 * or a solicited NA), or why nothing. Pure, so every rule of RFC 826 / RFC 4861 we follow is a table row in a test.
 */
export function respond(frame: Uint8Array, iface: ResponderInterface): Decision {
  const eth = decodeEthernet(frame);
  if (eth === undefined) return drop(DropReason.Malformed);
  if (sameMac(eth.src, iface.mac)) return drop(DropReason.OwnFrame);

  if (eth.etherType === ETHERTYPE_ARP) {
    const arp = decodeArp(eth.payload);
    if (!arp.ok) return drop(arp.defect === "truncated" ? DropReason.Malformed : DropReason.Unsupported);
    const req = arp.value;
    if (req.op !== ArpOp.Request) return drop(DropReason.NotRequest);
    if (req.senderIp.value === req.targetIp.value) return drop(DropReason.Gratuitous);
    if (isMulticastMac(req.senderMac)) return drop(DropReason.Malformed);
    const refused = owned(req.targetIp, iface);
    if (refused !== undefined) return drop(refused);
    // A probe (sender IP 0.0.0.0, RFC 5227) is answered too: that is how the prober learns the IP is taken.
    return { kind: "reply", protocol: "arp", ip: req.targetIp, frame: padFrame(arpReplyTo(req, iface.mac)) };
  }

  if (eth.etherType === ETHERTYPE_IPV6) {
    const ndp = decodeNdp(eth.payload);
    if (!ndp.ok) return drop(ndp.defect === "unsupported" ? DropReason.Unsupported : DropReason.Malformed);
    const ns = ndp.value;
    if (ns.type !== NdpType.NeighborSolicitation) return drop(DropReason.NotRequest);
    if (ns.src.value === 0n) {
      // RFC 4861 §7.1.1: a DAD probe carries no source link-layer option.
      return drop(ns.sourceMac === undefined ? DropReason.DadProbe : DropReason.Malformed);
    }
    const refused = owned(ns.target, iface);
    if (refused !== undefined) return drop(refused);
    return { kind: "reply", protocol: "ndp", ip: ns.target, frame: neighborAdvertisementFor(ns, iface.mac, eth.src) };
  }
  return drop(DropReason.Unsupported);
}

/** Another host claiming an IP on the wire: its gratuitous ARP, or its unsolicited NA with Override set. */
export interface ForeignAnnouncement {
  readonly ip: IpAddress;
  readonly mac: Mac;
}

/**
 * Whether `frame` announces an IP (RFC 5227 §3 ARP announcement — request or reply with sender IP = target IP —
 * or an unsolicited Neighbor Advertisement with Override, RFC 4861 §7.2.6) and from which link-layer address.
 * A speaker handing its IPs over uses it to see its successor take them before it stops answering.
 */
export function announcementIn(frame: Uint8Array): ForeignAnnouncement | undefined {
  const eth = decodeEthernet(frame);
  if (eth === undefined) return undefined;
  if (eth.etherType === ETHERTYPE_ARP) {
    const arp = decodeArp(eth.payload);
    if (!arp.ok || arp.value.senderIp.value !== arp.value.targetIp.value) return undefined;
    if (arp.value.senderIp.value === 0n || isMulticastMac(arp.value.senderMac)) return undefined;
    return { ip: arp.value.senderIp, mac: arp.value.senderMac };
  }
  if (eth.etherType === ETHERTYPE_IPV6) {
    const ndp = decodeNdp(eth.payload);
    if (!ndp.ok || ndp.value.type !== NdpType.NeighborAdvertisement) return undefined;
    const na = ndp.value;
    if (na.solicited || !na.override) return undefined;
    const mac = na.targetMac ?? eth.src;
    return isMulticastMac(mac) ? undefined : { ip: na.target, mac };
  }
  return undefined;
}
