import { execFile, spawn } from "node:child_process";
import type { Logger } from "pino";
import { parseMac } from "../core/frames/ethernet.ts";
import { parseIp, type IpAddress } from "../core/ip.ts";
import type { InterfaceSnapshot, NetInterface } from "../core/interfaces.ts";

/** The interfaces of this network namespace, from `ip -j addr` and the default routes (iproute2's JSON). */
export async function scanInterfaces(): Promise<InterfaceSnapshot> {
  const [addr, route4, route6] = await Promise.all([
    ipJson(["-j", "addr", "show"]),
    ipJson(["-j", "-4", "route", "show", "default"]),
    ipJson(["-j", "-6", "route", "show", "default"]),
  ]);
  return {
    interfaces: Array.isArray(addr) ? addr.map(toInterface).filter((i) => i !== undefined) : [],
    defaultRoute: { 4: defaultDev(route4), 6: defaultDev(route6) },
  };
}

function ipJson(argv: readonly string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile("ip", argv, { timeout: 5000, maxBuffer: 32 << 20 }, (error, stdout) => {
      if (error !== null) return reject(new Error(`ip ${argv.join(" ")}: ${error.message}`));
      try {
        resolve(stdout.trim() === "" ? [] : JSON.parse(stdout));
      } catch (e: unknown) {
        reject(new Error(`ip ${argv.join(" ")}: unreadable JSON: ${String(e)}`));
      }
    });
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

function toInterface(raw: unknown): NetInterface | undefined {
  if (!isRecord(raw) || typeof raw.ifname !== "string" || typeof raw.ifindex !== "number") return undefined;
  const flags = Array.isArray(raw.flags) ? raw.flags.filter((f) => typeof f === "string") : [];
  const addresses: { ip: IpAddress; prefixLength: number }[] = [];
  for (const a of Array.isArray(raw.addr_info) ? raw.addr_info : []) {
    if (!isRecord(a) || typeof a.local !== "string" || typeof a.prefixlen !== "number") continue;
    const ip = parseIp(a.local);
    if (ip !== undefined) addresses.push({ ip, prefixLength: a.prefixlen });
  }
  return {
    name: raw.ifname,
    index: raw.ifindex,
    mac: raw.link_type === "ether" && typeof raw.address === "string" ? parseMac(raw.address) : undefined,
    up: flags.includes("UP") && flags.includes("LOWER_UP"),
    noarp: flags.includes("NOARP"),
    loopback: flags.includes("LOOPBACK"),
    master: typeof raw.master === "string" ? raw.master : undefined,
    addresses,
  };
}

function defaultDev(routes: unknown): string | undefined {
  if (!Array.isArray(routes)) return undefined;
  for (const r of routes) if (isRecord(r) && typeof r.dev === "string") return r.dev;
  return undefined;
}

export interface InterfaceWatch {
  close(): void;
}

/**
 * Calls `onChange` after links, addresses or routes change (`ip monitor`, debounced), and every `periodMs`
 * regardless, in case the monitor dies or misses something. The monitor is restarted when it exits.
 */
export function watchInterfaces(onChange: () => void, logger: Logger, periodMs = 10_000): InterfaceWatch {
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  const poke = (): void => {
    if (closed || debounce !== undefined) return;
    debounce = setTimeout(() => {
      debounce = undefined;
      if (!closed) onChange();
    }, 200);
    debounce.unref();
  };
  const periodic = setInterval(poke, periodMs);
  periodic.unref();
  let monitor: ReturnType<typeof spawn> | undefined;
  const startMonitor = (): void => {
    if (closed) return;
    monitor = spawn("ip", ["monitor", "link", "address", "route"], { stdio: ["ignore", "pipe", "ignore"] });
    monitor.stdout?.on("data", poke);
    monitor.on("error", (e) =>
      logger.warn({ err: e.message }, "ip monitor failed; interface changes seen by periodic rescan only"),
    );
    monitor.once("exit", () => {
      if (closed) return;
      logger.warn("ip monitor exited; restarting in 5 s");
      setTimeout(startMonitor, 5000).unref();
    });
    monitor.unref();
    (monitor.stdout as { unref?: () => void } | null)?.unref?.();
  };
  startMonitor();
  return {
    close() {
      closed = true;
      clearInterval(periodic);
      if (debounce !== undefined) clearTimeout(debounce);
      monitor?.kill();
    },
  };
}
