import ipaddr from "ipaddr.js";

/** Address family, as Kubernetes `ipFamilies` names it ("IPv4" / "IPv6") but as a number inside the core. */
export type Family = 4 | 6;

/**
 * An IP address: family plus its value as an unsigned integer. Strings exist only at the edges (parse, format);
 * everything inside the core works on this type, so arithmetic over /0../128 never overflows.
 */
export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

export const familyBits = (family: Family): 32 | 128 => (family === 4 ? 32 : 128);
export const familyName = (family: Family): "IPv4" | "IPv6" => (family === 4 ? "IPv4" : "IPv6");

export function ip(family: Family, value: bigint): IpAddress {
  return Object.freeze({ family, value });
}

/**
 * Parses one address. IPv4 must be dotted quad (no "10.1" or octal shorthands that ipaddr.js would accept);
 * IPv6 may not carry a zone. Returns undefined when the text is not an address.
 */
export function parseIp(text: string): IpAddress | undefined {
  const t = text.trim();
  // Decide the family by the colon first: ipaddr.js validates by parsing and catching, and an IPv6 text thrown
  // at its IPv4 parser costs an exception each time (the sandbox validates every ingress of every status write).
  if (t.includes(":")) {
    return !t.includes("%") && ipaddr.IPv6.isValid(t)
      ? ip(6, bytesToBigint(ipaddr.IPv6.parse(t).toByteArray()))
      : undefined;
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(t)) {
    const bytes = ipaddr.IPv4.parse(t).toByteArray();
    return ip(4, bytesToBigint(bytes));
  }
  return undefined;
}

/** Canonical text: dotted quad, or RFC 5952 for IPv6 (lower case, longest zero run compressed). */
export function formatIp(addr: IpAddress): string {
  let text = formatted.get(addr);
  if (text === undefined) {
    text = addr.family === 4 ? formatV4(addr.value) : formatV6(addr.value);
    formatted.set(addr, text);
  }
  return text;
}

// Straight from the integer: every new allocation formats its address once, and going through ipaddr.js makes a
// byte array, an object and a regular-expression match over its text for each address.
const formatV4 = (v: bigint): string => {
  const n = Number(v);
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
};

/** RFC 5952: hextets in lower-case hex without leading zeros; the longest run of two or more zero hextets (the leftmost of equal runs) becomes "::". */
function formatV6(v: bigint): string {
  const hextets: number[] = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 7; i >= 0; i--) {
    hextets[i] = Number(v & 0xffffn);
    v >>= 16n;
  }
  let runStart = -1;
  let runLength = 1;
  for (let i = 0; i < 8;) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > runLength) {
      runStart = i;
      runLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => {
    let out = "";
    for (let i = from; i < to; i++) out += (i === from ? "" : ":") + (hextets[i] ?? 0).toString(16);
    return out;
  };
  return runStart < 0 ? hex(0, 8) : `${hex(0, runStart)}::${hex(runStart + runLength, 8)}`;
}

/** Addresses are frozen values formatted again and again (every reconcile compares them): remember the text. */
const formatted = new WeakMap<IpAddress, string>();

/** Network byte order, 4 or 16 bytes. */
export function ipToBytes(addr: IpAddress): Uint8Array {
  const n = addr.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = addr.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** From 4 or 16 bytes in network order; undefined for any other length. */
export function ipFromBytes(bytes: Uint8Array | readonly number[]): IpAddress | undefined {
  if (bytes.length !== 4 && bytes.length !== 16) return undefined;
  return ip(bytes.length === 4 ? 4 : 6, bytesToBigint(bytes));
}

function bytesToBigint(bytes: Uint8Array | readonly number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** Total order: all IPv4 before all IPv6, then by value. */
export function compareIp(a: IpAddress, b: IpAddress): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export const sameIp = (a: IpAddress, b: IpAddress): boolean => a.family === b.family && a.value === b.value;

/**
 * A string usable as a Map key, stable and cheap (not for display: use formatIp). Remembered per address object
 * like the text: a speaker's pass looks up every announced address several times.
 */
export function ipKey(addr: IpAddress): string {
  let key = keys.get(addr);
  if (key === undefined) {
    key = `${addr.family}/${addr.value.toString(16)}`;
    keys.set(addr, key);
  }
  return key;
}
const keys = new WeakMap<IpAddress, string>();
