import { ip, type Family, type IpAddress } from "../ip.ts";

/** Reads that bounds-check by contract: callers check lengths first, so an out-of-range read yields 0. */
export const u8 = (b: Uint8Array, at: number): number => b[at] ?? 0;
export const u16 = (b: Uint8Array, at: number): number => (u8(b, at) << 8) | u8(b, at + 1);

/** The IPv4 (4 bytes) or IPv6 (16 bytes) address at `at`, network byte order. */
export function ipAt(b: Uint8Array, at: number, family: Family): IpAddress {
  let v = 0n;
  for (let i = 0; i < (family === 4 ? 4 : 16); i++) v = (v << 8n) | BigInt(u8(b, at + i));
  return ip(family, v);
}
