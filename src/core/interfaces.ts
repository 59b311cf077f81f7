import { type IpAddress } from "./ip.ts";
import { type Mac } from "./frames/ethernet.ts";

/** One network interface as the announcer needs to know it (from `ip -j addr`, `ip -j link`). */
export interface NetInterface {
  readonly name: string;
  readonly index: number;
  readonly mac: Mac | undefined;
  /** Administratively up and with a carrier (flags UP and LOWER_UP). */
  readonly up: boolean;
  readonly noarp: boolean;
  readonly loopback: boolean;
  /** Name of the bond or bridge this interface is a port of; announce on that one instead. */
  readonly master: string | undefined;
  readonly addresses: readonly { readonly ip: IpAddress; readonly prefixLength: number }[];
}

/** What the interface scan returns: the interfaces and the default-route interface per family. */
export interface InterfaceSnapshot {
  readonly interfaces: readonly NetInterface[];
  readonly defaultRoute: { readonly 4: string | undefined; readonly 6: string | undefined };
}

export type SkipReason = "missing" | "down" | "noarp" | "enslaved" | "loopback" | "no-mac";

export interface InterfaceChoice {
  readonly interfaces: readonly string[];
  /** Interfaces considered and left out, with why (for logs and `lodestone announce`). */
  readonly skipped: readonly { readonly name: string; readonly reason: SkipReason }[];
  readonly rule: "pool" | "subnet" | "default-route" | "none";
}

export function unusable(i: NetInterface): SkipReason | undefined {
  if (i.loopback) return "loopback";
  if (!i.up) return "down";
  if (i.noarp) return "noarp";
  if (i.master !== undefined) return "enslaved";
  if (i.mac === undefined) return "no-mac";
  return undefined;
}

function inSubnet(ip: IpAddress, net: IpAddress, prefixLength: number): boolean {
  if (ip.family !== net.family) return false;
  const shift = BigInt((ip.family === 4 ? 32 : 128) - prefixLength);
  return ip.value >> shift === net.value >> shift;
}

/**
 * Where to announce `ip`: the pool's `announce.interfaces` when set; otherwise every interface with a subnet
 * containing the IP; otherwise the interface of the default route of its family. Interfaces that are down,
 * NOARP, loopback or enslaved to a bond/bridge never qualify (their master does).
 */
export function interfacesFor(
  ip: IpAddress,
  snapshot: InterfaceSnapshot,
  poolInterfaces?: readonly string[],
): InterfaceChoice {
  const skipped: { name: string; reason: SkipReason }[] = [];
  const pick = (candidates: readonly string[]): string[] =>
    candidates.filter((name) => {
      const iface = snapshot.interfaces.find((i) => i.name === name);
      const reason = iface === undefined ? "missing" : unusable(iface);
      if (reason !== undefined) skipped.push({ name, reason });
      return reason === undefined;
    });

  if (poolInterfaces !== undefined && poolInterfaces.length > 0) {
    return { interfaces: pick([...new Set(poolInterfaces)]), skipped, rule: "pool" };
  }
  const bySubnet = snapshot.interfaces
    .filter((i) => i.addresses.some((a) => inSubnet(ip, a.ip, a.prefixLength)))
    .map((i) => i.name);
  const subnet = pick(bySubnet);
  if (subnet.length > 0) return { interfaces: subnet, skipped, rule: "subnet" };
  const route = snapshot.defaultRoute[ip.family];
  if (route !== undefined) {
    const chosen = pick([route]);
    if (chosen.length > 0) return { interfaces: chosen, skipped, rule: "default-route" };
  }
  return { interfaces: [], skipped, rule: "none" };
}
