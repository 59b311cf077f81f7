import ipaddr from "ipaddr.js";
import { Netmask } from "netmask";
import type { Family, IpAddress } from "./ip.ts";
import { familyBits, formatIp, ip, parseIp } from "./ip.ts";
import type { Result } from "./errors.ts";
import { ConfigCodes, configMessages, err, ok } from "./errors.ts";

/**
 * A contiguous, inclusive span of addresses of one family. Pool entries (CIDR, `start-end`, single IP) all
 * become this; nothing ever enumerates one, so a /0 or a /64 costs the same as a /32.
 */
export interface AddressRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export interface RangeProblem {
  readonly code: typeof ConfigCodes.badAddress | typeof ConfigCodes.rangeReversed | typeof ConfigCodes.rangeMixedFamily;
  readonly message: string;
}

export const addressRange = (family: Family, first: bigint, last: bigint): AddressRange =>
  Object.freeze({ family, first, last });

/** Parses `192.0.2.0/24`, `2001:db8::/64`, `192.0.2.10-192.0.2.20` (spaces allowed around `-`) or one address. */
export function parseRange(text: string): Result<AddressRange, RangeProblem> {
  const t = text.trim();
  const bad = err<RangeProblem>({ code: ConfigCodes.badAddress, message: configMessages.badAddress(text) });
  if (t.includes("/")) return parseCidr(t) ?? bad;
  const dash = t.indexOf("-");
  if (dash >= 0) {
    const a = parseIp(t.slice(0, dash));
    const b = parseIp(t.slice(dash + 1));
    if (a === undefined || b === undefined) return bad;
    if (a.family !== b.family)
      return err({ code: ConfigCodes.rangeMixedFamily, message: configMessages.rangeMixedFamily(t) });
    if (b.value < a.value) return err({ code: ConfigCodes.rangeReversed, message: configMessages.rangeReversed(t) });
    return ok(addressRange(a.family, a.value, b.value));
  }
  const single = parseIp(t);
  return single === undefined ? bad : ok(addressRange(single.family, single.value, single.value));
}

/**
 * Host bits below the prefix are ignored (`192.0.2.7/24` is `192.0.2.0/24`), as MetalLB's Go `net.ParseCIDR`
 * does, so existing MetalLB configs keep their meaning.
 */
function parseCidr(t: string): Result<AddressRange, RangeProblem> | undefined {
  const slash = t.indexOf("/");
  const base = parseIp(t.slice(0, slash));
  const prefixText = t.slice(slash + 1);
  if (base === undefined || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > familyBits(base.family)) return undefined;
  if (base.family === 4) {
    // netmask owns IPv4 block arithmetic; the base was already checked as a strict dotted quad above.
    const block = new Netmask(`${formatIp(base)}/${prefix}`);
    const first = BigInt(block.netLong >>> 0);
    return ok(addressRange(4, first, first + BigInt(block.size) - 1n));
  }
  // ipaddr.js validates the IPv6 prefix form; the span itself is bigint arithmetic (2^64 does not fit a number).
  if (!ipaddr.IPv6.isValidCIDR(t)) return undefined;
  const hostBits = BigInt(128 - prefix);
  const first = (base.value >> hostBits) << hostBits;
  return ok(addressRange(6, first, first + (1n << hostBits) - 1n));
}

/** Exact number of addresses (2^128 for ::/0). */
export const rangeSize = (r: AddressRange): bigint => r.last - r.first + 1n;

export const rangeContains = (r: AddressRange, addr: IpAddress): boolean =>
  r.family === addr.family && r.first <= addr.value && addr.value <= r.last;

/** The overlapping span of two ranges, or undefined when they are disjoint (or of different families). */
export function rangeOverlap(a: AddressRange, b: AddressRange): AddressRange | undefined {
  if (a.family !== b.family) return undefined;
  const first = a.first > b.first ? a.first : b.first;
  const last = a.last < b.last ? a.last : b.last;
  return first <= last ? addressRange(a.family, first, last) : undefined;
}

/** Shortest readable form: one address, a CIDR when the span is exactly a block, else `first-last`. */
export function formatRange(r: AddressRange): string {
  const first = formatIp(ip(r.family, r.first));
  if (r.first === r.last) return first;
  const size = rangeSize(r);
  const isPowerOfTwo = (size & (size - 1n)) === 0n;
  if (isPowerOfTwo && r.first % size === 0n) {
    const hostBits = size.toString(2).length - 1;
    return `${first}/${familyBits(r.family) - hostBits}`;
  }
  return `${first}-${formatIp(ip(r.family, r.last))}`;
}

/**
 * Number of IPv4 addresses ending in .0 or .255 inside a range: pools with `avoidBuggyIPs` never hand these out
 * (some old clients and routers treat them as network or broadcast addresses even inside larger blocks).
 */
export function buggyCount(r: AddressRange): bigint {
  if (r.family !== 4) return 0n;
  // .0 addresses in [0, v]: one per started /24; .255 addresses: one per completed /24.
  const upTo = (v: bigint): bigint => (v < 0n ? 0n : v / 256n + 1n + (v + 1n) / 256n);
  return upTo(r.last) - upTo(r.first - 1n);
}

export const isBuggyIp = (addr: IpAddress): boolean =>
  addr.family === 4 && (addr.value % 256n === 0n || addr.value % 256n === 255n);
