import { type Family, type IpAddress, compareIp, ip } from "./ip.ts";

/**
 * The set of IPs a speaker reports it announces, as the value of its membership Lease's annotation
 * `lodestone.dev/announced`. A Lease's annotations may total 256 KiB (apimachinery ValidateAnnotations,
 * TotalAnnotationSizeLimitB), and a plain list of 10,000 IPv6 addresses is ~400 KB, so the set is written compactly:
 * per family, `<family>:<base64>` of the sorted addresses as LEB128 varints — the first address, then each gap
 * minus one. Addresses of a pool sit close together, so most gaps take one or two bytes: 10,000 addresses of a
 * /112 are about 14 KB of text. Families are joined by `;`; the empty set is the empty string.
 */

/** Pure: the report of a set of addresses (duplicates and order do not matter). */
export function encodeAnnounced(ips: readonly IpAddress[]): string {
  const sorted = [...ips].sort(compareIp);
  const parts: string[] = [];
  for (const family of [4, 6] as const) {
    const bytes: number[] = [];
    let prev: bigint | undefined;
    for (const a of sorted) {
      if (a.family !== family || a.value === prev) continue;
      writeVarint(bytes, prev === undefined ? a.value : a.value - prev - 1n);
      prev = a.value;
    }
    if (bytes.length > 0) parts.push(`${family}:${Buffer.from(bytes).toString("base64")}`);
  }
  return parts.join(";");
}

export type DecodedAnnounced =
  { readonly ok: true; readonly value: IpAddress[] } | { readonly ok: false; readonly error: string };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Pure: the addresses of a report, in order; a value that is not one is an error naming what is wrong. */
export function decodeAnnounced(text: string): DecodedAnnounced {
  const out: IpAddress[] = [];
  if (text === "") return { ok: true, value: out };
  const seen = new Set<string>();
  for (const part of text.split(";")) {
    const m = /^([46]):(.+)$/.exec(part);
    if (m === null || m[2] === undefined || !BASE64.test(m[2]) || m[2].length % 4 !== 0) {
      return { ok: false, error: `"${part.slice(0, 40)}" is not <4|6>:<base64>` };
    }
    const family = Number(m[1]) as Family;
    if (seen.has(m[1] ?? "")) return { ok: false, error: `IPv${family} appears twice` };
    seen.add(m[1] ?? "");
    const bytes = Buffer.from(m[2], "base64");
    const max = (1n << (family === 4 ? 32n : 128n)) - 1n;
    let prev: bigint | undefined;
    for (let i = 0; i < bytes.length;) {
      let v = 0n;
      let shift = 0n;
      for (;;) {
        const b = bytes[i++];
        if (b === undefined) return { ok: false, error: `IPv${family}: the last number is cut off` };
        v |= BigInt(b & 0x7f) << shift;
        shift += 7n;
        if ((b & 0x80) === 0) break;
        if (shift > 140n) return { ok: false, error: `IPv${family}: a number longer than an address` };
      }
      const value = prev === undefined ? v : prev + v + 1n;
      if (value > max) return { ok: false, error: `IPv${family}: an address beyond the family's range` };
      out.push(ip(family, value));
      prev = value;
    }
  }
  return { ok: true, value: out };
}

function writeVarint(out: number[], n: bigint): void {
  let v = n;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}
