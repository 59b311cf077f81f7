import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { parseIp, type IpAddress } from "../core/ip.ts";

/**
 * A network lab made of namespaces that this process creates and always removes: a "switch" namespace holding a
 * bridge, and hosts attached to it by veth pairs. Nothing is created in (or sends into) the machine's own
 * namespace: veths are created from inside a lab namespace with their peer placed straight into another one.
 * Names are `ls-<area>-<pid>-<n>-<label>` so leftovers are attributable (see removeLeftoverLabs).
 * Only documentation addresses are accepted (RFC 5737, RFC 3849).
 */

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface LabHost {
  /** The namespace name, for `ip netns exec`. */
  readonly ns: string;
  readonly ifname: string;
  readonly mac: string;
  readonly ifindex: number;
}

export interface HostOptions {
  /** CIDRs inside the documentation ranges, e.g. "192.0.2.10/24", "2001:db8::10/64". */
  readonly addresses?: readonly string[];
  /** Fixed MAC (e.g. "02:00:00:00:00:0a"); the kernel picks a random one otherwise. */
  readonly mac?: string;
  /** Interface name inside the host namespace; "eth0" by default. */
  readonly ifname?: string;
}

export interface Neighbour {
  readonly ip: string;
  readonly mac: string | undefined;
  readonly state: readonly string[];
}

export interface Lab {
  /** `ls-<area>-<pid>-<n>`: every namespace of this lab starts with it. */
  readonly id: string;
  /** A bare namespace (loopback up, IPv6 DAD off so addresses work at once). */
  namespace(label: string): Promise<string>;
  /** A namespace attached to the lab's bridge (created on first use) through a veth pair. */
  host(label: string, options?: HostOptions): Promise<LabHost>;
  /** Runs a command inside a namespace; never rejects on a non-zero exit. Bounded by `timeoutMs` (10 s). */
  exec(ns: string, argv: readonly string[], options?: { readonly timeoutMs?: number }): Promise<ExecResult>;
  /** Like exec, but rejects with the command's stderr unless it exits 0. */
  run(ns: string, argv: readonly string[]): Promise<string>;
  /** A long-running process inside a namespace; killed by destroy() if still running. */
  spawn(ns: string, argv: readonly string[], options?: SpawnOptions): ChildProcess;
  /** The kernel's neighbour table (`ip neigh`) of a namespace, optionally one interface. */
  neighbours(ns: string, ifname?: string): Promise<readonly Neighbour[]>;
  /** Kills the lab's processes and deletes its namespaces (and so its veths and bridge). Idempotent. */
  destroy(): Promise<void>;
}

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Why lab tests cannot run here (not root, or a tool missing), or undefined when they can. */
export function labUnavailable(tools: readonly string[] = []): string | undefined {
  if (!isRoot) return "lab tests need root (network namespaces); run as root to include them";
  for (const tool of ["ip", ...tools]) {
    const found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((dir) => existsSync(`${dir}/${tool}`));
    if (!found) return `lab tests need \`${tool}\` (bash scripts/ensure-tools.sh installs it)`;
  }
  return undefined;
}

const DOCUMENTATION_RANGES: readonly [string, number][] = [
  ["192.0.2.0", 24],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["2001:db8::", 32],
];

/** True when an address lies in RFC 5737 / RFC 3849 documentation space: the only addresses a lab may use. */
export function isDocumentationAddress(addr: IpAddress): boolean {
  return DOCUMENTATION_RANGES.some(([base, bits]) => {
    const net = parseIp(base);
    if (net === undefined || net.family !== addr.family) return false;
    const shift = BigInt((addr.family === 4 ? 32 : 128) - bits);
    return addr.value >> shift === net.value >> shift;
  });
}

function checkCidr(cidr: string): void {
  const addr = parseIp(cidr.split("/")[0] ?? "");
  if (addr === undefined || !isDocumentationAddress(addr)) {
    throw new Error(
      `lab: ${cidr} is not in a documentation range (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32)`,
    );
  }
}

const live = new Set<LabImpl>();
let labCounter = 0;
let exitHooked = false;
let callerHandlesSignals = false;

/**
 * By default a SIGINT/SIGTERM removes every live lab at once and then ends the process with that signal. A
 * program with its own orderly shutdown (the demo: temp files, the API server) calls this: labs are still
 * removed at once, and the signal is left to the program.
 */
export function leaveSignalsToCaller(): void {
  callerHandlesSignals = true;
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once("exit", () => {
    for (const lab of live) lab.destroySync();
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = (): void => {
      for (const lab of live) lab.destroySync();
      if (callerHandlesSignals) return;
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function ipCmd(argv: readonly string[], timeoutMs = 10_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile("ip", argv, { timeout: timeoutMs, encoding: "utf8", maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr: stderr || (err !== null && code !== 0 ? err.message : "") });
    });
  });
}

class LabImpl implements Lab {
  readonly id: string;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private switchNs: Promise<string> | undefined;
  private ports = 0;
  private destroyed = false;

  constructor(area: string) {
    if (!/^[a-z0-9]{1,12}$/.test(area)) throw new Error(`lab: area must be 1-12 lower-case letters/digits: ${area}`);
    this.id = `ls-${area}-${process.pid}-${++labCounter}`;
    live.add(this);
    hookExit();
  }

  async namespace(label: string): Promise<string> {
    if (this.destroyed) throw new Error("lab: destroyed");
    const name = `${this.id}-${label}`;
    this.namespaces.push(name);
    await this.must(["netns", "add", name]);
    await this.run(name, ["ip", "link", "set", "lo", "up"]);
    for (const key of ["all", "default"]) {
      await this.run(name, ["sysctl", "-qw", `net.ipv6.conf.${key}.accept_dad=0`]);
    }
    return name;
  }

  private bridgeNs(): Promise<string> {
    this.switchNs ??= (async () => {
      const ns = await this.namespace("sw");
      await this.must(["-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
      await this.must(["-n", ns, "link", "set", "br0", "up"]);
      return ns;
    })();
    return this.switchNs;
  }

  async host(label: string, options: HostOptions = {}): Promise<LabHost> {
    for (const cidr of options.addresses ?? []) checkCidr(cidr);
    const sw = await this.bridgeNs();
    const ns = await this.namespace(label);
    const ifname = options.ifname ?? "eth0";
    const port = `p${++this.ports}`;
    await this.must(["-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", sw]);
    await this.must(["-n", sw, "link", "set", port, "master", "br0", "up"]);
    if (options.mac !== undefined) await this.must(["-n", ns, "link", "set", ifname, "address", options.mac]);
    for (const cidr of options.addresses ?? []) {
      await this.must(["-n", ns, "addr", "add", cidr, "dev", ifname, ...(cidr.includes(":") ? ["nodad"] : [])]);
    }
    await this.must(["-n", ns, "link", "set", ifname, "up"]);
    const [link] = JSON.parse(await this.must(["-j", "-n", ns, "link", "show", "dev", ifname])) as {
      ifindex: number;
      address: string;
    }[];
    if (link === undefined) throw new Error(`lab: ${ifname} missing in ${ns}`);
    return { ns, ifname, mac: link.address, ifindex: link.ifindex };
  }

  exec(ns: string, argv: readonly string[], options: { readonly timeoutMs?: number } = {}): Promise<ExecResult> {
    return ipCmd(["netns", "exec", ns, ...argv], options.timeoutMs);
  }

  async run(ns: string, argv: readonly string[]): Promise<string> {
    const r = await this.exec(ns, argv);
    if (r.code !== 0) throw new Error(`lab: ${argv.join(" ")} in ${ns} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  spawn(ns: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error("lab: destroyed");
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], ...options });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  async neighbours(ns: string, ifname?: string): Promise<readonly Neighbour[]> {
    const out = await this.must(["-j", "-n", ns, "neigh", "show", ...(ifname === undefined ? [] : ["dev", ifname])]);
    const rows = JSON.parse(out || "[]") as { dst: string; lladdr?: string; state?: string[] }[];
    return rows.map((r) => ({ ip: r.dst, mac: r.lladdr, state: r.state ?? [] }));
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const exits = [...this.children].map(
      (child) =>
        new Promise<void>((resolve) =>
          child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
        ),
    );
    for (const child of this.children) child.kill("SIGTERM");
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([Promise.all(exits), timeout]);
    this.destroySync();
  }

  /** Synchronous teardown for exit handlers: kills what still runs inside our namespaces, deletes them. */
  destroySync(): void {
    this.destroyed = true;
    for (const child of this.children) child.kill("SIGKILL");
    for (const ns of this.namespaces.reverse()) {
      try {
        const pids = execFileSync("ip", ["netns", "pids", ns], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        });
        for (const pid of pids.split(/\s+/).filter(Boolean)) process.kill(Number(pid), "SIGKILL");
      } catch {
        // already gone
      }
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    this.namespaces.length = 0;
    live.delete(this);
  }

  private async must(argv: readonly string[]): Promise<string> {
    const r = await ipCmd(argv);
    if (r.code !== 0) throw new Error(`lab: ip ${argv.join(" ")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }
}

/** A new, empty lab for one test file (or the demo); `area` names its namespaces: ls-<area>-<pid>-<n>-…. */
export function createLab(area: string): Lab {
  return new LabImpl(area);
}

/** Deletes lab namespaces (`ls-<area>-<pid>-…`) left behind by processes that no longer exist. */
export function removeLeftoverLabs(): readonly string[] {
  let names: string[];
  try {
    names = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "");
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /^ls-[a-z0-9]+-(\d+)-\d+-/.exec(name);
    if (m === null || pidAlive(Number(m[1]))) continue;
    try {
      execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
      removed.push(name);
    } catch {
      // raced with another cleaner
    }
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
