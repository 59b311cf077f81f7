import { createInterface } from "node:readline";
import { type ChildProcess, execFileSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LabCluster, type LabClusterOptions, type LabNode, startLabCluster } from "./cluster.ts";
import { DEFAULT_NAMESPACE, POOLS_LABEL } from "../core/well-known.ts";

/**
 * The BGP lab: startLabCluster's nodes, each with its own FRR (zebra, bgpd, bfdd under an FRR pathspace named
 * after its namespace) driven by its Lodestone daemon, and a router namespace on the LAN running BIRD 2 (an
 * independent BGP implementation) that peers with every node over IPv4 and IPv6, installs what it learns into its
 * kernel with ECMP, and forwards for a "far" client behind it:
 *
 *   far 203.0.113.194 / 2001:db8:2::2 ── router 203.0.113.193 / 2001:db8:2::1
 *                                         router 192.0.2.1 / 2001:db8::1 ── LAN ── node1..N 192.0.2.11.. / 2001:db8::11..
 *
 * Service addresses come from pool `bgp` (203.0.113.0/26, 2001:db8:1::/120, layer 2 off). The sessions are iBGP
 * (AS 64512 on both sides, so LOCAL_PREF reaches the router) with a TCP MD5 password from a Secret. The router
 * hashes flows by L4 ports, so new connections from the one far client spread over the ECMP next hops.
 */

export const BGP_ASN = 64512;
export const BGP_POOL = "- name: bgp\n  addresses: [203.0.113.0/26, 2001:db8:1::/120]\n  announce: {layer2: false}\n";
const PASSWORD = "lab-md5-secret";

export interface BgpLabOptions {
  readonly nodes?: number;
  readonly area?: string;
  /** BFD at 100 ms × 3 on every session (default true). */
  readonly bfd?: boolean;
  /** BGP hold time in seconds (default 9). */
  readonly holdTime?: number;
  /** `--bgp-drain` of the daemons (default 1s). */
  readonly drain?: string;
  /** Extra advertisement fields (YAML flow mapping body), e.g. `localPref: 150, communities: ["64512:100"]`. */
  readonly advertisement?: string;
  readonly logLevel?: string;
  readonly cluster?: Partial<LabClusterOptions>;
}

export interface RouteWatch {
  /** Every change seen: when (ms since epoch) and the next hops then (empty: no route). */
  changes(): readonly { readonly at: number; readonly via: readonly string[] }[];
  stop(): void;
}

export interface CutResult {
  /** Link down → the router's route lost the node's next hop, in ms (undefined: not within the timeout). */
  readonly withdrawMs: number | undefined;
  /** Link up → the node a next hop again, in ms. */
  readonly restoreMs: number;
  /** New connections from the far client (one every 20 ms) that failed, and first failure → last failure in ms. */
  readonly failed: number;
  readonly failedSpanMs: number;
}

export interface DrainResult {
  /** New connections that failed (refused or timed out) from SIGTERM until the node was gone. */
  readonly failed: number;
  readonly attempts: number;
  /** SIGTERM → the router's route without the node, in ms. */
  readonly withdrawMs: number | undefined;
  /** SIGTERM → the daemon's exit, in ms. */
  readonly exitMs: number;
  /** Each failed connection: opened and given up, in ms after SIGTERM. */
  readonly failures: readonly { readonly startMs: number; readonly endMs: number }[];
}

export interface BgpLab {
  readonly cluster: LabCluster;
  readonly routerNs: string;
  readonly farNs: string;
  /** The next hops of the router's kernel route for an address (sorted; empty: no route). */
  routes(ip: string): Promise<string[]>;
  /** Waits until `ok(nextHops)`; returns them. */
  waitRoutes(ip: string, ok: (via: readonly string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  /** BIRD's own view of the routes for an address (`birdc show route for … all`). */
  bird(command: string): Promise<string>;
  /** Polls the router's kernel route for `ip` every few ms inside the router namespace. */
  watchRoute(ip: string): RouteWatch;
  /** Replaces the EndpointSlice of a Service: one ready endpoint on each node named. */
  setEndpoints(service: string, nodes: readonly string[]): Promise<void>;
  /** Starts a node's FRR again (after a drain test killed it). */
  startFrr(node: LabNode): void;
  /**
   * Silent failure: `node`'s LAN link goes down inside its namespace (the router's side stays up, so only BFD or
   * the hold timer can tell). Measures fault → the router's kernel route for `ip` without the node, then brings
   * the link up and waits until the node is a next hop again.
   */
  measureCut(ip: string, node: LabNode, timeoutMs?: number): Promise<CutResult>;
  /**
   * Graceful stop during a loop of new connections from the far client: SIGTERM to the node's daemon; once it has
   * exited, its FRR stops and the node stops answering for Service addresses (as a node leaving does). Then
   * everything is started again and the node is waited for.
   */
  measureDrain(ip: string, node: LabNode): Promise<DrainResult>;
  /** Kills a node's FRR daemons (children first: bfdd, bgpd, then zebra). */
  stopFrr(node: LabNode): Promise<void>;
  destroy(): Promise<void>;
}

const nodeV6 = (n: LabNode): string => `2001:db8::${11 + n.index}`;

function birdConfig(nodes: readonly LabNode[], o: BgpLabOptions): string {
  const hold = o.holdTime ?? 9;
  const bfd = o.bfd ?? true;
  const lines = [
    "router id 192.0.2.1;",
    "protocol device { scan time 1; }",
    // merge paths: routes to one prefix from several nodes become one multipath kernel route (ECMP).
    "protocol kernel k4 { ipv4 { export all; import none; }; merge paths yes limit 16; }",
    "protocol kernel k6 { ipv6 { export all; import none; }; merge paths yes limit 16; }",
    ...(bfd
      ? ['protocol bfd { interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }']
      : []),
    "template bgp node {",
    `  local as ${BGP_ASN};`,
    // iBGP on one link: a direct session (BIRD takes iBGP for multihop otherwise), next hop the node itself.
    "  direct;",
    `  hold time ${hold};`,
    `  password "${PASSWORD}";`,
    "  error wait time 1, 5;",
    "  connect retry time 1;",
    ...(bfd ? ["  bfd on;"] : []),
    "}",
  ];
  for (const n of nodes) {
    lines.push(
      `protocol bgp ${n.name}v4 from node { neighbor ${n.lanIp} as ${BGP_ASN}; ipv4 { import all; export none; }; }`,
      `protocol bgp ${n.name}v6 from node { neighbor ${nodeV6(n)} as ${BGP_ASN}; ipv6 { import all; export none; }; }`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export function bgpYaml(o: BgpLabOptions): string {
  const bfd = o.bfd ?? true;
  const hold = o.holdTime ?? 9;
  const peer = (name: string, address: string) =>
    `  - {name: ${name}, peerAddress: "${address}", peerASN: ${BGP_ASN}, myASN: ${BGP_ASN}, holdTime: ${hold}, passwordSecret: {name: bgp-auth}${bfd ? ", bfdProfile: fast" : ""}}`;
  return [
    "bgpPeers:",
    peer("router", "192.0.2.1"),
    peer("router6", "2001:db8::1"),
    "bgpAdvertisements:",
    `  - {name: all, pools: [bgp]${o.advertisement === undefined ? "" : `, ${o.advertisement}`}}`,
    "bfdProfiles:",
    "  - {name: fast, receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}",
    "",
  ].join("\n");
}

const ROUTE_WATCH = `
const { execFileSync } = require("node:child_process");
const [ip] = process.argv.slice(1);
let last = "";
const tick = () => {
  let via = [];
  try {
    const r = JSON.parse(execFileSync("ip", ["-j", ...(ip.includes(":") ? ["-6"] : []), "route", "show", ip], { encoding: "utf8" }) || "[]");
    for (const x of r) { if (x.gateway) via.push(x.gateway); for (const h of x.nexthops || []) via.push(h.gateway); }
  } catch {}
  via.sort();
  const key = via.join(",");
  if (key !== last) { last = key; process.stdout.write(JSON.stringify({ at: Date.now(), via }) + "\\n"); }
};
setInterval(tick, 5);
process.stdin.on("end", () => process.exit(0)); process.stdin.resume();`;

/** The nodes' route back to the far client (via the router); the kernel drops it with the link, so again after. */
async function routeToFar(lab: LabCluster["lab"], n: LabNode): Promise<void> {
  for (const argv of [
    ["ip", "route", "replace", "203.0.113.192/28", "via", "192.0.2.1"],
    ["ip", "-6", "route", "replace", "2001:db8:2::/64", "via", "2001:db8::1"],
  ]) {
    // Right after a link comes up its connected routes may not be back yet ("No route to host").
    await until(argv.join(" "), async () => ((await lab.exec(n.host.ns, argv)).code === 0 ? true : undefined), 5_000);
  }
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`bgp lab: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Why the BGP lab cannot run (FRR or BIRD missing), or undefined. */
export function bgpLabUnavailable(): string | undefined {
  for (const [path, pkg] of [
    ["/usr/lib/frr/bgpd", "frr"],
    ["/usr/lib/frr/frr-reload.py", "frr-pythontools"],
    ["/usr/sbin/bird", "bird2"],
  ] as const) {
    try {
      execFileSync("test", ["-x", path]);
    } catch {
      return `the BGP lab needs ${path} (package ${pkg}; bash scripts/ensure-tools.sh installs it)`;
    }
  }
  return undefined;
}

export async function startBgpLab(o: BgpLabOptions = {}): Promise<BgpLab> {
  const work = mkdtempSync(join(tmpdir(), "lodestone-bgp-lab-"));
  const birdSocket = join(work, "bird.ctl");
  const frrDirs: string[] = [];
  const frrProcs = new Map<string, ChildProcess[]>();
  let routerNs = "";
  let farNs = "";
  let labRef: LabCluster["lab"] | undefined;
  const pathspace = (n: LabNode): string => `${labRef?.id ?? "lab"}-${n.name}`;
  const frr = { uid: 0, gid: 0 };
  try {
    const ids = execFileSync("id", ["-u", "frr"], { encoding: "utf8" });
    frr.uid = Number(ids.trim());
    frr.gid = Number(execFileSync("id", ["-g", "frr"], { encoding: "utf8" }).trim());
  } catch {
    // no frr user: FRR then runs as root
  }

  const startFrr = (n: LabNode): void => {
    const lab = labRef;
    if (lab === undefined) return;
    const ps = pathspace(n);
    const procs: ChildProcess[] = [];
    for (const daemon of ["zebra", "bgpd", "bfdd"]) {
      // Not daemonised (no -d): each is our child, killed by PID, and the lab reaps whatever is left.
      procs.push(lab.spawn(n.host.ns, [`/usr/lib/frr/${daemon}`, "-N", ps, "-f", "/dev/null"], { stdio: "ignore" }));
    }
    frrProcs.set(n.name, procs);
  };
  const stopFrr = async (n: LabNode): Promise<void> => {
    const procs = [...(frrProcs.get(n.name) ?? [])].reverse();
    frrProcs.delete(n.name);
    for (const p of procs) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const gone = new Promise<void>((r) => p.once("exit", () => r()));
      p.kill("SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3_000))]);
      if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    }
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    cleanup();
    // netns.ts (registered after this) removes the namespaces and re-raises; without it, re-raise here.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const cleanup = (): void => {
    process.off("exit", cleanup);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const d of frrDirs) rmSync(d, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  };
  // netns.ts removes the namespaces (and so every process in them) on exit and on SIGINT/SIGTERM; the FRR
  // directories outside them go on the same occasions.
  process.once("exit", cleanup);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let cluster: LabCluster;
  try {
    cluster = await startLabCluster({
      area: o.area ?? "bgp",
      nodes: o.nodes ?? 3,
      pools: BGP_POOL,
      serviceRanges: ["203.0.113.0/26", "2001:db8:1::/120"],
      logLevel: o.logLevel ?? "info",
      ...o.cluster,
      daemonArgs: (n) => [
        "--frr-pathspace",
        pathspace(n),
        "--frr-config",
        `/etc/frr/${pathspace(n)}/frr.conf`,
        "--bgp-drain",
        o.drain ?? "1s",
      ],
      beforeDaemons: async (lab, nodes) => {
        labRef = lab;
        // The router: on the LAN, and a second link to the far client.
        const router = await lab.host("router", { addresses: ["192.0.2.1/24", "2001:db8::1/64"] });
        routerNs = router.ns;
        farNs = await lab.namespace("far");
        await lab.run(farNs, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", "netns", routerNs]);
        await lab.run(routerNs, ["ip", "addr", "add", "203.0.113.193/28", "dev", "eth1"]);
        await lab.run(routerNs, ["ip", "addr", "add", "2001:db8:2::1/64", "dev", "eth1", "nodad"]);
        await lab.run(routerNs, ["ip", "link", "set", "eth1", "up"]);
        await lab.run(farNs, ["ip", "addr", "add", "203.0.113.194/28", "dev", "eth0"]);
        await lab.run(farNs, ["ip", "addr", "add", "2001:db8:2::2/64", "dev", "eth0", "nodad"]);
        await lab.run(farNs, ["ip", "link", "set", "eth0", "up"]);
        await lab.run(farNs, ["ip", "route", "add", "default", "via", "203.0.113.193"]);
        await lab.run(farNs, ["ip", "-6", "route", "add", "default", "via", "2001:db8:2::1"]);
        for (const [k, v] of [
          ["net.ipv4.ip_forward", "1"],
          ["net.ipv6.conf.all.forwarding", "1"],
          // Hash by ports too, so one client's new connections spread over the next hops.
          ["net.ipv4.fib_multipath_hash_policy", "1"],
          ["net.ipv6.fib_multipath_hash_policy", "1"],
        ]) {
          await lab.run(routerNs, ["sysctl", "-qw", `${k}=${v}`]);
        }
        for (const n of nodes) {
          // A cut link must come back as it was: Linux flushes IPv6 addresses on link down unless told not to.
          for (const dev of ["all", "default", n.host.ifname]) {
            await lab.run(n.host.ns, ["sysctl", "-qw", `net.ipv6.conf.${dev}.keep_addr_on_down=1`]);
          }
          await routeToFar(lab, n);
          const ps = pathspace(n);
          for (const dir of [`/etc/frr/${ps}`, `/var/run/frr/${ps}`]) {
            mkdirSync(dir, { recursive: true });
            chownSync(dir, frr.uid, frr.gid);
            frrDirs.push(dir);
          }
          writeFileSync(`/etc/frr/${ps}/vtysh.conf`, "");
          startFrr(n);
        }
        writeFileSync(join(work, "bird.conf"), birdConfig(nodes, o));
        await lab.run(routerNs, ["bird", "-p", "-c", join(work, "bird.conf")]);
        lab.spawn(
          routerNs,
          ["bird", "-f", "-c", join(work, "bird.conf"), "-s", birdSocket, "-P", join(work, "bird.pid")],
          { stdio: "ignore" },
        );
      },
    });
  } catch (e: unknown) {
    cleanup();
    throw e;
  }
  const client = cluster.client;
  const mustOk = async (method: "POST" | "PUT" | "DELETE", path: string, body?: unknown) => {
    const r = await client.request({ method, path, ...(body === undefined ? {} : { body }) });
    if (r.status >= 300)
      throw new Error(`bgp lab: ${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  };
  // Lodestone reads the password from this Secret; the BGP configuration is a ConfigMap of its own.
  try {
    await mustOk("POST", `/api/v1/namespaces/${DEFAULT_NAMESPACE}/secrets`, {
      metadata: { name: "bgp-auth", namespace: DEFAULT_NAMESPACE },
      data: { password: Buffer.from(PASSWORD).toString("base64") },
    });
    await mustOk("POST", `/api/v1/namespaces/${DEFAULT_NAMESPACE}/configmaps`, {
      metadata: { name: "lab-bgp", namespace: DEFAULT_NAMESPACE, labels: { [POOLS_LABEL]: "true" } },
      data: { "bgp.yaml": bgpYaml(o) },
    });
  } catch (e: unknown) {
    await cluster.destroy();
    cleanup();
    throw e;
  }

  const routes = async (ip: string): Promise<string[]> => {
    const r = await cluster.lab.exec(routerNs, ["ip", "-j", ...(ip.includes(":") ? ["-6"] : []), "route", "show", ip]);
    const list = JSON.parse(r.stdout || "[]") as { gateway?: string; nexthops?: { gateway: string }[] }[];
    const via: string[] = [];
    for (const x of list) {
      if (x.gateway !== undefined) via.push(x.gateway);
      for (const h of x.nexthops ?? []) via.push(h.gateway);
    }
    return via.sort();
  };

  const waitHas = (ip: string, via: string, has: boolean, timeoutMs: number) =>
    until(
      `${via} ${has ? "a" : "no"} next hop of ${ip}`,
      async () => ((await routes(ip)).includes(via) === has ? true : undefined),
      timeoutMs,
    );

  const watchRoute = (ip: string): RouteWatch => {
    const child = cluster.lab.spawn(routerNs, [process.execPath, "-e", ROUTE_WATCH, ip], {
      stdio: ["pipe", "pipe", "ignore"],
    });
    const changes: { at: number; via: string[] }[] = [];
    if (child.stdout !== null) {
      createInterface({ input: child.stdout }).on("line", (line) => {
        try {
          changes.push(JSON.parse(line) as { at: number; via: string[] });
        } catch {
          // not a change line
        }
      });
    }
    return {
      changes: () => changes,
      stop: () => {
        child.stdin?.end();
        setTimeout(() => child.kill("SIGKILL"), 1_000).unref();
      },
    };
  };

  /** Waits until the node is a next hop of `ip` with its BFD session up; returns its address of that family. */
  const atRest = async (ip: string, node: LabNode): Promise<string> => {
    const nodeIp = ip.includes(":") ? nodeV6(node) : node.lanIp;
    await waitHas(ip, nodeIp, true, 20_000);
    // A session just (re)established may not have its BFD session up yet; a cut would then wait for the hold
    // timer, which is not what a trial measures.
    if (o.bfd ?? true) {
      await until(
        `BFD up with ${nodeIp}`,
        async () => {
          const r = await cluster.lab.exec(routerNs, ["birdc", "-s", birdSocket, "show", "bfd", "sessions"]);
          return r.stdout.split("\n").some((l) => l.startsWith(`${nodeIp} `) && /\sUp\s/.test(l)) ? true : undefined;
        },
        20_000,
      );
    }
    return nodeIp;
  };

  return {
    cluster,
    routerNs,
    farNs,
    routes,
    waitRoutes: (ip, ok, timeoutMs = 20_000) =>
      until(
        `routes for ${ip}`,
        async () => {
          const via = await routes(ip);
          return ok(via) ? via : undefined;
        },
        timeoutMs,
      ),
    async bird(command) {
      const r = await cluster.lab.exec(routerNs, ["birdc", "-s", birdSocket, ...command.split(" ")]);
      return r.stdout;
    },
    watchRoute,
    async setEndpoints(service, nodes) {
      const path = `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices`;
      await client.request({ method: "DELETE", path: `${path}/${service}-lab` });
      await mustOk("POST", path, {
        metadata: { name: `${service}-lab`, namespace: "default", labels: { "kubernetes.io/service-name": service } },
        addressType: "IPv4",
        endpoints: nodes.map((n, i) => ({
          addresses: [`198.51.100.${200 + i}`],
          conditions: { ready: true },
          nodeName: n,
        })),
        ports: [{ port: 8080, protocol: "TCP" }],
      });
    },
    startFrr,
    stopFrr,
    async measureCut(ip, node, timeoutMs = 15_000) {
      const nodeIp = await atRest(ip, node);
      const watch = watchRoute(ip);
      const probe = cluster.probe(ip, 20, 500, farNs);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      await cluster.lab.run(node.host.ns, ["ip", "link", "set", node.host.ifname, "down"]);
      let withdrawMs: number | undefined;
      const end = t0 + timeoutMs;
      while (Date.now() < end) {
        const c = watch.changes().find((x) => x.at >= t0 && !x.via.includes(nodeIp));
        if (c !== undefined) {
          withdrawMs = c.at - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      watch.stop();
      await new Promise((r) => setTimeout(r, 300));
      const failures = (await probe.stop()).filter((x) => x.end >= t0 && x.node === undefined);
      const t1 = Date.now();
      await cluster.lab.run(node.host.ns, ["ip", "link", "set", node.host.ifname, "up"]);
      await routeToFar(cluster.lab, node);
      await waitHas(ip, nodeIp, true, 60_000);
      const span =
        failures.length === 0 ? 0 : Math.max(...failures.map((x) => x.end)) - Math.min(...failures.map((x) => x.start));
      return { withdrawMs, restoreMs: Date.now() - t1, failed: failures.length, failedSpanMs: span };
    },
    async measureDrain(ip, node) {
      const nodeIp = await atRest(ip, node);
      const watch = watchRoute(ip);
      const probe = cluster.probe(ip, 20, 500, farNs);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      const daemon = node.daemon;
      if (daemon === undefined || daemon.exitCode !== null) throw new Error(`bgp lab: ${node.name} has no daemon`);
      const exited = new Promise<void>((r) => daemon.once("exit", () => r()));
      daemon.kill("SIGTERM");
      await exited;
      const exitMs = Date.now() - t0;
      // The pod is gone: its FRR stops, and nothing on the node answers for Service addresses any more.
      await stopFrr(node);
      for (const range of ["203.0.113.0/26", "2001:db8:1::/120"]) {
        await cluster.lab.run(node.host.ns, [
          "ip",
          ...(range.includes(":") ? ["-6"] : []),
          "route",
          "del",
          "local",
          range,
          "dev",
          "lo",
        ]);
      }
      await new Promise((r) => setTimeout(r, 500));
      const samples = await probe.stop();
      watch.stop();
      const after = samples.filter((x) => x.end >= t0);
      const gone = watch.changes().find((x) => x.at >= t0 && !x.via.includes(nodeIp));
      // Back as it was: the node answers, FRR and the daemon run, the router has it as a next hop.
      for (const range of ["203.0.113.0/26", "2001:db8:1::/120"]) {
        await cluster.lab.run(node.host.ns, [
          "ip",
          ...(range.includes(":") ? ["-6"] : []),
          "route",
          "add",
          "local",
          range,
          "dev",
          "lo",
        ]);
      }
      startFrr(node);
      await cluster.heal(node);
      await waitHas(ip, nodeIp, true, 60_000);
      return {
        failed: after.filter((x) => x.node === undefined).length,
        failures: after.filter((x) => x.node === undefined).map((x) => ({ startMs: x.start - t0, endMs: x.end - t0 })),
        attempts: after.length,
        withdrawMs: gone === undefined ? undefined : gone.at - t0,
        exitMs,
      };
    },
    async destroy() {
      for (const n of cluster.nodes) await stopFrr(n);
      await cluster.destroy();
      cleanup();
    },
  };
}
