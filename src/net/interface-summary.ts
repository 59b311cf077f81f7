import { readFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import type { InterfaceSummary } from "../core/announcer-ranking.ts";
import { parseIp } from "../core/ip.ts";

/**
 * What this node publishes about its interfaces (in its membership Lease) so that every speaker can apply the
 * ranking's "has an interface for the IP" rule to every node. libuv lists only interfaces that are up and
 * running, so an interface whose link went down drops out of the summary. Loopback is never an announcing
 * interface.
 */
export async function scanInterfaces(): Promise<InterfaceSummary[]> {
  const defaults4 = await defaultRouteInterfaces("/proc/net/route", (cols) => cols[1] === "00000000", 0);
  const defaults6 = await defaultRouteInterfaces(
    "/proc/net/ipv6_route",
    (cols) => cols[0] === "00000000000000000000000000000000" && cols[1] === "00",
    9,
  );
  const out: InterfaceSummary[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs === undefined || addrs.some((a) => a.internal)) continue;
    const prefixes = addrs.flatMap((a) => {
      const ip = parseIp(a.address);
      const bits = Number((a.cidr ?? "").split("/")[1]);
      // Link-local IPv6 is on every interface and never a Service IP.
      if (ip === undefined || !Number.isInteger(bits) || a.address.toLowerCase().startsWith("fe80")) return [];
      return [{ ip, bits }];
    });
    out.push({ name, prefixes, defaultRoute4: defaults4.has(name), defaultRoute6: defaults6.has(name) });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function defaultRouteInterfaces(
  file: string,
  isDefault: (cols: string[]) => boolean,
  ifCol: number,
): Promise<Set<string>> {
  const names = new Set<string>();
  try {
    for (const line of (await readFile(file, "utf8")).split("\n").slice(file.endsWith("ipv6_route") ? 0 : 1)) {
      const cols = line.trim().split(/\s+/);
      const name = cols[ifCol];
      if (name !== undefined && name !== "lo" && isDefault(cols)) names.add(name);
    }
  } catch {
    // No procfs (not Linux): no default route known; subnets still decide.
  }
  return names;
}
