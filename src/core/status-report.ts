import type { Pool } from "./config.ts";
import { poolCapacity } from "./config.ts";
import type { ConfigProblem } from "./errors.ts";
import type { Family, IpAddress } from "./ip.ts";
import { compareIp, familyName, formatIp, ipKey } from "./ip.ts";
import { rangeContains } from "./range.ts";
import { POOLS_SELECTOR } from "./well-known.ts";

/** What `lodestone status` knows about one LoadBalancer Service, read from the API by the caller. */
export interface StatusServiceInput {
  readonly namespace: string;
  readonly name: string;
  readonly ips: readonly IpAddress[];
  /** `lodestone.dev/pool` annotation, when the controller wrote one. */
  readonly pool?: string;
  /** `lodestone.dev/announcing-node` annotation. */
  readonly announcingNode?: string;
  /** The newest AllocationFailed message, when the Service has no IP. */
  readonly failure?: string;
  /** The newest NotAnnounced message (the speakers' Warning), when no node is named as announcing. */
  readonly notAnnounced?: string;
}

export interface StatusPoolRow {
  readonly pool: string;
  readonly family: Family;
  readonly total: bigint;
  readonly inUse: number;
  readonly available: bigint;
}

export interface StatusServiceRow {
  readonly service: string;
  readonly ips: readonly IpAddress[];
  readonly pool: string;
  readonly announcingNode: string;
  readonly state: "allocated" | "pending" | "failed";
  readonly detail: string;
}

export interface StatusReport {
  readonly pools: readonly StatusPoolRow[];
  readonly services: readonly StatusServiceRow[];
  readonly problems: readonly ConfigProblem[];
}

/** The pool an address belongs to: the annotated one when it really holds the IP, else the first that does. */
function poolOf(pools: readonly Pool[], addr: IpAddress, hint: string | undefined): Pool | undefined {
  const holds = (p: Pool): boolean => p.addresses.some((r) => rangeContains(r, addr));
  const hinted = pools.find((p) => p.name === hint);
  return hinted !== undefined && holds(hinted) ? hinted : pools.find(holds);
}

/**
 * Pool usage and one row per Service. An IP shared by several Services counts once; an IP outside every pool
 * (assigned before a pool shrank, or by hand) shows on its Service with pool "-" and counts nowhere.
 */
export function buildStatus(
  pools: readonly Pool[],
  services: readonly StatusServiceInput[],
  problems: readonly ConfigProblem[] = [],
): StatusReport {
  const used = new Map<string, Set<string>>(); // "pool/family" -> ip keys
  const serviceRows: StatusServiceRow[] = [];
  for (const s of [...services].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))) {
    const owning = new Set<string>();
    for (const addr of s.ips) {
      const p = poolOf(pools, addr, s.pool);
      if (p === undefined) continue;
      owning.add(p.name);
      const k = `${p.name}/${addr.family}`;
      const set = used.get(k) ?? new Set<string>();
      set.add(ipKey(addr));
      used.set(k, set);
    }
    const state = s.ips.length > 0 ? "allocated" : s.failure === undefined ? "pending" : "failed";
    serviceRows.push({
      service: `${s.namespace}/${s.name}`,
      ips: [...s.ips].sort(compareIp),
      pool: s.pool ?? ([...owning].join(",") || "-"),
      announcingNode: s.announcingNode ?? "-",
      state,
      detail:
        state === "failed"
          ? (s.failure ?? "")
          : state === "allocated" && s.announcingNode === undefined && s.notAnnounced !== undefined
            ? `not announced: ${s.notAnnounced}`
            : "",
    });
  }
  const poolRows: StatusPoolRow[] = [];
  for (const p of [...pools].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const family of [4, 6] as const) {
      const total = poolCapacity(p, family);
      if (total === 0n) continue;
      const inUse = used.get(`${p.name}/${family}`)?.size ?? 0;
      poolRows.push({ pool: p.name, family, total, inUse, available: total - BigInt(inUse) });
    }
  }
  return { pools: poolRows, services: serviceRows, problems };
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** The at-a-glance view: pools with usage, Services with IPs, pool, announcing node and any failure. */
export function renderStatusTable(report: StatusReport): string {
  const out: string[] = [];
  out.push(
    report.pools.length === 0
      ? `POOLS: none configured (label a ConfigMap ${POOLS_SELECTOR} in the daemon's namespace)`
      : table(
          ["POOL", "FAMILY", "TOTAL", "IN USE", "AVAILABLE"],
          report.pools.map((p) => [
            p.pool,
            familyName(p.family),
            p.total.toString(),
            String(p.inUse),
            p.available.toString(),
          ]),
        ),
  );
  out.push("");
  out.push(
    report.services.length === 0
      ? "SERVICES: no LoadBalancer Services"
      : table(
          ["SERVICE", "EXTERNAL-IP", "POOL", "ANNOUNCED BY", "STATE"],
          report.services.map((s) => [
            s.service,
            s.ips.length === 0 ? "<pending>" : s.ips.map(formatIp).join(","),
            s.pool,
            s.announcingNode,
            s.detail === "" ? s.state : `${s.state}: ${s.detail}`,
          ]),
        ),
  );
  if (report.problems.length > 0) {
    out.push("", "CONFIG PROBLEMS (the last good version of each ConfigMap stays in use):");
    for (const p of report.problems)
      out.push(
        `  ${/^(IPAddressPool|L2Advertisement) /.test(p.configMap) ? "" : "ConfigMap "}${p.configMap}: ${p.path}: ${p.message}`,
      );
  }
  return out.join("\n");
}

/** JSON for `-o json`: sizes as decimal strings, since a /64 pool does not fit in a JSON number. */
export function statusJson(report: StatusReport): unknown {
  return {
    pools: report.pools.map((p) => ({
      pool: p.pool,
      family: familyName(p.family),
      total: p.total.toString(),
      inUse: p.inUse,
      available: p.available.toString(),
    })),
    services: report.services.map((s) => ({
      service: s.service,
      ips: s.ips.map(formatIp),
      pool: s.pool,
      announcingNode: s.announcingNode,
      state: s.state,
      ...(s.detail === "" ? {} : { detail: s.detail }),
    })),
    problems: report.problems,
  };
}
