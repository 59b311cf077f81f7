import { u16 } from "./bytes.ts";

/**
 * Ethernet II framing and MAC addresses. Frames are plain bytes (Uint8Array) without the FCS, as an AF_PACKET
 * SOCK_RAW socket sends and receives them.
 */

/** A MAC address: exactly 6 bytes. */
export type Mac = Uint8Array;

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERNET_HEADER_LENGTH = 14;
/** IEEE 802.3 minimum frame size without the FCS; shorter frames are padded with zeros (real NICs insist). */
export const ETHERNET_MIN_FRAME = 60;

// Shared constants: typed arrays cannot be frozen, so callers copy before they mutate (nothing here does).
export const BROADCAST_MAC: Mac = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const ZERO_MAC: Mac = new Uint8Array(6);

export interface EthernetFrame {
  readonly dst: Mac;
  readonly src: Mac;
  readonly etherType: number;
  readonly payload: Uint8Array;
}

export function encodeEthernet(frame: EthernetFrame): Uint8Array {
  const out = new Uint8Array(ETHERNET_HEADER_LENGTH + frame.payload.length);
  out.set(frame.dst, 0);
  out.set(frame.src, 6);
  out[12] = frame.etherType >> 8;
  out[13] = frame.etherType & 0xff;
  out.set(frame.payload, ETHERNET_HEADER_LENGTH);
  return out;
}

/** Undefined when shorter than a header. The payload keeps any padding: the upper layer knows its own length. */
export function decodeEthernet(bytes: Uint8Array): EthernetFrame | undefined {
  if (bytes.length < ETHERNET_HEADER_LENGTH) return undefined;
  return {
    dst: bytes.subarray(0, 6),
    src: bytes.subarray(6, 12),
    etherType: u16(bytes, 12),
    payload: bytes.subarray(ETHERNET_HEADER_LENGTH),
  };
}

/** Pads with zeros to the 60-byte minimum; longer frames are returned as they are. */
export function padFrame(frame: Uint8Array): Uint8Array {
  if (frame.length >= ETHERNET_MIN_FRAME) return frame;
  const out = new Uint8Array(ETHERNET_MIN_FRAME);
  out.set(frame);
  return out;
}

/** "02:00:5e:10:00:01" (also accepts "-" separators and upper case); undefined when not a MAC. */
export function parseMac(text: string): Mac | undefined {
  const parts = text.trim().split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) return undefined;
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

export function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === 6 && b.length === 6 && a.every((v, i) => v === b[i]);
}

/** Group bit of the first octet: multicast and broadcast destinations (never a valid sender). */
export const isMulticastMac = (mac: Uint8Array): boolean => ((mac[0] ?? 0) & 1) === 1;
