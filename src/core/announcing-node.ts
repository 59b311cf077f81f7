import { type IpAddress, compareIp, formatIp, ipKey, parseIp } from "./ip.ts";

/**
 * The value of annotation `lodestone.dev/announcing-node`. Each IP of a Service is elected on its own, so a
 * dual-stack Service can be announced from two nodes. The value is the node's name when every announced IP has
 * the same owner (what a single-IP Service always shows, and what tools that predate dual-stack expect), else
 * `ip=node` pairs by IP order, comma-separated: `192.0.2.5=node2,2001:db8::5=node3`. Node names never contain
 * `=` or `,` (DNS subdomains), so both forms parse without ambiguity. No announced IP: no annotation.
 */

export interface IpOwner {
  readonly ip: IpAddress;
  readonly node: string;
}

export function formatAnnouncingNodes(owners: readonly IpOwner[]): string | undefined {
  const sorted = [...owners].sort((a, b) => compareIp(a.ip, b.ip));
  const nodes = new Set(sorted.map((o) => o.node));
  if (nodes.size <= 1) return sorted[0]?.node;
  return sorted.map((o) => `${formatIp(o.ip)}=${o.node}`).join(",");
}

/** The node an annotation value names for `ip`: the single node of the short form, or the IP's pair. */
export function announcingNodeFor(value: string | undefined, ip: IpAddress): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (!value.includes("=")) return value;
  for (const pair of value.split(",")) {
    const [text, node] = pair.split("=");
    const addr = parseIp(text ?? "");
    if (addr !== undefined && ipKey(addr) === ipKey(ip) && node !== undefined && node !== "") return node;
  }
  return undefined;
}
