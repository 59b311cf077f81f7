import type { Pool } from "./config.ts";
import type { ConfigWarning } from "./errors.ts";
import { ConfigWarningCodes, configMessages, warning } from "./errors.ts";
import type { AddressRange } from "./range.ts";
import { formatRange, rangeContains } from "./range.ts";
import type { IpAddress } from "./ip.ts";
import { formatIp, parseIp } from "./ip.ts";

/** The address types of a Node's `status.addresses` that hosts on the network answer for. */
export const NODE_ADDRESS_TYPES: ReadonlySet<string> = new Set(["InternalIP", "ExternalIP"]);

/** What this check needs of a Node: its name and `status.addresses`, as the API returns them. */
export interface NodeAddresses {
  readonly name: string;
  readonly addresses: readonly { readonly type: string; readonly address: string }[];
}

interface Entry {
  readonly range: AddressRange;
  readonly pool: Pool;
}

/**
 * Warnings for every node address (InternalIP, ExternalIP) inside a pool: a Service given it would be answered by
 * the node and by the announcing node. Pools are indexed once (valid pools never overlap, so their ranges sort into
 * disjoint spans) and each address is a binary search: O((ranges + addresses) × log ranges), whatever the pool
 * sizes. Addresses that do not parse (and other types, e.g. Hostname) are not addresses of a pool and are skipped.
 */
export function nodeAddressConflicts(
  pools: readonly Pool[],
  nodes: readonly NodeAddresses[],
): readonly ConfigWarning[] {
  const byFamily = new Map<number, Entry[]>();
  for (const pool of pools) {
    for (const range of pool.addresses) {
      const list = byFamily.get(range.family) ?? [];
      list.push({ range, pool });
      byFamily.set(range.family, list);
    }
  }
  for (const list of byFamily.values())
    list.sort((a, b) => (a.range.first < b.range.first ? -1 : a.range.first > b.range.first ? 1 : 0));
  const out: ConfigWarning[] = [];
  for (const node of nodes) {
    for (const a of node.addresses) {
      if (!NODE_ADDRESS_TYPES.has(a.type)) continue;
      const addr = parseIp(a.address);
      if (addr === undefined) continue;
      const hit = find(byFamily.get(addr.family) ?? [], addr);
      if (hit === undefined) continue;
      out.push(
        warning(
          ConfigWarningCodes.nodeAddressInPool,
          hit.pool.configMap,
          `${hit.pool.path ?? `pool ${hit.pool.name}`}.addresses`,
          configMessages.nodeAddressInPool(formatIp(addr), formatRange(hit.range), node.name, a.type),
        ),
      );
    }
  }
  return out;
}

/** The last entry starting at or before addr, if it contains addr. */
function find(sorted: readonly Entry[], addr: IpAddress): Entry | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const e = sorted[mid];
    if (e !== undefined && e.range.first <= addr.value) lo = mid + 1;
    else hi = mid;
  }
  const e = sorted[lo - 1];
  return e !== undefined && rangeContains(e.range, addr) ? e : undefined;
}
