import { createInterface } from "node:readline";
import type { ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type Server, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { type KubeClient, createKubeClient } from "../kube/client.ts";
import { type Sandbox, startSandbox } from "../sandbox/index.ts";
import { collectionPath } from "../sandbox/resources.ts";
import { DAEMON_BIN, daemonNodeFlags } from "./daemon-command.ts";
import { type Lab, type LabHost, createLab } from "./netns.ts";
import { ANNOUNCING_ANNOTATION, DEFAULT_NAMESPACE, POOLS_LABEL } from "../core/well-known.ts";

/**
 * A three-node (or N-node) Lodestone cluster in network namespaces, for the speaker lab tests, the failover
 * benchmark and the demo. Needs root. Everything lives in namespaces this process creates and removes:
 *
 *   LAN  (bridge of netns.ts): node1..N 192.0.2.11.. / 2001:db8::11.., client 192.0.2.50 / 2001:db8::50
 *   API  (a second bridge, inside the "api" namespace): the api namespace 198.51.100.1, nodes 198.51.100.11..
 *
 * The API server is the embedded sandbox in this process; a forwarder inside the api namespace passes
 * 198.51.100.1:6443 through a Unix socket to it, so no packet ever leaves loopback or the lab. Cutting a node
 * from the API is its API link going down; its LAN link stays up. Each node runs `lodestone run` (controller
 * + speaker), and stands in for kube-proxy with the Service range routed to `lo` (arp_ignore=1, so only
 * Lodestone answers ARP for it) and a TCP server on port 8080 that answers with the node's name.
 *
 * With `split`, as the chart deploys it: each node runs `lodestone run --component speaker`, and the controller
 * replicas (`--component controller`) run in the api namespace, standing in for a Deployment on the pod network:
 * on no node's LAN, untouched by a node's faults. With `rbac`, the API server enforces RBAC and each workload runs
 * on its own ServiceAccount's token.
 */

export type Fault = "sigkill" | "sigterm" | "linkdown" | "apicut";

export interface LabClusterOptions {
  readonly nodes?: number;
  /** netns.ts area: namespaces are ls-<area>-<pid>-… */
  readonly area?: string;
  /** pools.yaml of the pool ConfigMap. */
  readonly pools?: string;
  readonly logLevel?: string;
  /** Labels per node (index from 0). */
  readonly nodeLabels?: (index: number) => Record<string, string>;
  /**
   * Directory for the daemons' logs. Default: a fresh temp directory removed by destroy(), unless the environment
   * sets LODESTONE_KEEP_LAB_LOGS=1 (then its path is printed on destroy).
   */
  readonly logDir?: string;
  /** More LAN addresses per node (index from 0), e.g. a second subnet the pool lives in. */
  readonly nodeAddresses?: (index: number) => readonly string[];
  /** More LAN addresses of the client namespace. */
  readonly clientAddresses?: readonly string[];
  /** More prefixes the nodes treat as local (the kube-proxy stand-in), e.g. the pool's. */
  readonly serviceRanges?: readonly string[];
  /** Node flags for the daemons besides the image's (e.g. --trace-gc). */
  readonly daemonFlags?: readonly string[];
  /** More `lodestone run` flags per node (the BGP lab: where its FRR is). */
  readonly daemonArgs?: (node: LabNode) => readonly string[];
  /** Runs once the node namespaces exist, before any daemon starts (the BGP lab starts routers and FRR here). */
  readonly beforeDaemons?: (lab: Lab, nodes: readonly LabNode[]) => Promise<void>;
  /** The daemon's bin/lodestone.js: this checkout's (the sources) by default, or compiledDaemon()'s (the image's). */
  readonly daemonBin?: string;
  /** Sees the request line of every HTTP request the nodes send the API server (benchmarks count writes). */
  readonly onApiRequest?: (method: string, path: string) => void;
  /** Speakers on the nodes and `controllers` controller replicas in the api namespace, as separate processes. */
  readonly split?: boolean;
  /** Controller replicas with `split` (default 2). */
  readonly controllers?: number;
  /**
   * RBAC mode: these objects (ServiceAccounts, roles and bindings, e.g. the chart's rendered ones) are created in
   * the daemons' namespace, and each workload runs on the token of its ServiceAccount. Without `split` each
   * node's whole daemon runs on the speaker's token, which may not allocate: use it with `split`.
   */
  readonly rbac?: {
    readonly objects: readonly Record<string, unknown>[];
    readonly serviceAccounts: { readonly controller: string; readonly speaker: string };
  };
}

/** A controller replica of a split cluster (in the api namespace). */
export interface LabController {
  readonly name: string;
  readonly metricsPort: number;
  daemon: ChildProcess | undefined;
  readonly logPath: string;
}

export interface LabNode {
  readonly name: string;
  readonly index: number;
  readonly host: LabHost;
  readonly lanIp: string;
  /** The running daemon, if any. */
  daemon: ChildProcess | undefined;
  readonly logPath: string;
}

export interface ProbeSample {
  /** Start of the attempt, ms since epoch. */
  readonly start: number;
  /** When it ended (answer, refusal or timeout). */
  readonly end: number;
  /** The node that answered, or undefined when the connection failed. */
  readonly node: string | undefined;
}

export interface Probe {
  samples(): readonly ProbeSample[];
  stop(): Promise<readonly ProbeSample[]>;
}

export interface FailoverResult {
  readonly fault: Fault;
  readonly from: string;
  readonly to: string | undefined;
  /** Fault → first connection answered by another node (or, for sigterm, any failed connection counts). */
  readonly failoverMs: number | undefined;
  readonly failedConnections: number;
  /** Each failed connection: when it was opened and when it gave up, in ms after the fault. */
  readonly failures: readonly { readonly startMs: number; readonly endMs: number }[];
  /** When the first connection that reached another node was opened, in ms after the fault (the move). */
  readonly movedAtMs: number | undefined;
  /** When the fault was done, in ms after it began: for sigterm, when the old daemon had exited. */
  readonly faultDoneMs: number;
  /** Longest run of ARP probes answered by two MACs, in ms. */
  readonly doubleAnswerMs: number;
}

export interface LabCluster {
  readonly lab: Lab;
  readonly sandbox: Sandbox;
  readonly client: KubeClient;
  readonly namespace: string;
  readonly nodes: readonly LabNode[];
  /** With `split`: the controller replicas; empty otherwise (each node's daemon includes a controller). */
  readonly controllers: readonly LabController[];
  readonly clientHost: LabHost;
  /** Kubeconfig the node namespaces use (server 198.51.100.1). */
  readonly nodeKubeconfigPath: string;
  /** Creates a LoadBalancer Service and waits for its IP. */
  createService(name: string, spec?: Record<string, unknown>, timeoutMs?: number): Promise<string>;
  /** Which node answers a TCP connection to ip:8080 from the client namespace (or `fromNs`), if any. */
  whoAnswers(ip: string, timeoutMs?: number, fromNs?: string): Promise<string | undefined>;
  /** The node whose speaker claims the IP, as the Service annotation says. */
  announcingNode(service: string): Promise<string | undefined>;
  /** New connections to ip:8080 every `intervalMs` from the client namespace (or `fromNs`). */
  probe(ip: string, intervalMs?: number, timeoutMs?: number, fromNs?: string): Probe;
  fault(node: LabNode, fault: Fault): Promise<void>;
  /** Undoes a fault: restarts the daemon, brings links up. */
  heal(node: LabNode): Promise<void>;
  /** Starts a stopped controller replica again (split clusters). */
  restartController(c: LabController): void;
  /** Waits until every node's daemon (and every controller replica) reports ready on its metrics port. */
  waitReady(timeoutMs?: number): Promise<void>;
  measureFailover(service: string, ip: string, fault: Fault, options?: { timeoutMs?: number }): Promise<FailoverResult>;
  destroy(): Promise<void>;
}

const NS = DEFAULT_NAMESPACE;
const API_PORT = 6443;
const ECHO_PORT = 8080;
const METRICS_PORT = 7472;
/** The controller replicas of a split cluster share the api namespace: one port each from here. */
const CONTROLLER_METRICS_PORT = 7480;
const REQUEST_LINE = /(?:^|\r\n\r\n|\r\n)(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP\/1\.1\r\n/g;
const DEFAULT_POOLS = "- name: lab\n  addresses: [192.0.2.100-192.0.2.199, 2001:db8::100-2001:db8::1ff]\n";

// Inline programs run inside namespaces with this same Node binary.
const FORWARDER = `
const net = require("node:net");
const [addr, port, sock] = process.argv.slice(1);
net.createServer((c) => { const u = net.connect(sock); c.pipe(u).pipe(c); u.on("error", () => c.destroy()); c.on("error", () => u.destroy()); })
  .listen(Number(port), addr);`;
const ECHO = `
const net = require("node:net");
net.createServer((c) => { c.on("error", () => {}); c.end(process.argv[1] + "\\n"); }).listen(${ECHO_PORT});`;
const PROBE = `
const net = require("node:net");
const [ip, interval, timeout] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
let inflight = 0;
function attempt() {
  if (inflight > 50) return;
  inflight++;
  const start = Date.now();
  let data = "";
  let done = false;
  const s = net.connect({ host: ip, port: ${ECHO_PORT} });
  const finish = (node) => { if (done) return; done = true; inflight--; s.destroy(); clearTimeout(t);
    process.stdout.write(JSON.stringify({ start, end: Date.now(), node }) + "\\n"); };
  const t = setTimeout(() => finish(null), timeout);
  s.on("data", (d) => (data += d));
  s.on("end", () => finish(data.trim() || null));
  s.on("error", () => finish(null));
}
setInterval(attempt, interval);
process.stdin.on("end", () => process.exit(0)); process.stdin.resume();`;

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs: number) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`lab cluster: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startLabCluster(options: LabClusterOptions = {}): Promise<LabCluster> {
  const count = options.nodes ?? 3;
  if (count < 1 || count > 9) throw new Error("lab cluster: 1 to 9 nodes");
  const lab = createLab(options.area ?? "cluster");
  const ownLogDir = options.logDir === undefined ? mkdtempSync(join(tmpdir(), `${lab.id}-logs-`)) : undefined;
  const logDir = options.logDir ?? ownLogDir ?? tmpdir();
  const removeLogs = (): void => {
    if (ownLogDir === undefined) return;
    if (process.env["LODESTONE_KEEP_LAB_LOGS"] === "1") console.error(`lab cluster: daemon logs kept in ${ownLogDir}`);
    else rmSync(ownLogDir, { recursive: true, force: true });
  };
  const sockPath = join(tmpdir(), `${lab.id}-api.sock`);
  const nodeKubeconfigPath = join(tmpdir(), `${lab.id}-kubeconfig.yaml`);
  const controllerKubeconfigPath = join(tmpdir(), `${lab.id}-controller-kubeconfig.yaml`);
  const removeKubeconfigs = (): void => {
    rmSync(nodeKubeconfigPath, { force: true });
    rmSync(controllerKubeconfigPath, { force: true });
  };
  let sandbox: Sandbox | undefined;
  let bridge: Server | undefined;
  let client: KubeClient | undefined;
  const nodes: LabNode[] = [];
  try {
    // Plain HTTP even in RBAC mode: the nodes reach the API server through the lab's forwarder at another address
    // than its certificate names.
    sandbox = await startSandbox(options.rbac === undefined ? {} : { rbac: true, tls: false });
    const sandboxPort = sandbox.port;
    const seen = options.onApiRequest;
    const unixBridge = createServer((c) => {
      const u = connect(sandboxPort, "127.0.0.1");
      // HTTP/1.1 over plain TCP: a request line starts a chunk or follows a blank line (bodies are JSON).
      if (seen !== undefined) {
        c.on("data", (d: Buffer) => {
          for (const m of d.toString("latin1").matchAll(REQUEST_LINE)) seen(m[1] ?? "", m[2] ?? "");
        });
      }
      c.pipe(u).pipe(c);
      u.on("error", () => c.destroy());
      c.on("error", () => u.destroy());
    });
    bridge = unixBridge;
    rmSync(sockPath, { force: true });
    await new Promise<void>((r) => unixBridge.listen(sockPath, () => r()));
    const kc = new KubeConfig();
    kc.loadFromString(sandbox.kubeconfigYaml);
    client = createKubeClient(kc);
    const sb0 = sandbox;
    const apiServer = (yaml: string): string => yaml.replace(/server: .*/, `server: http://198.51.100.1:${API_PORT}`);
    const tokenFor = (sa: string | undefined): string =>
      apiServer(sa === undefined ? sb0.kubeconfigYaml : sb0.kubeconfigFor(NS, sa).kubeconfigYaml);

    // API network: the api namespace is the switch and the server.
    const apiNs = await lab.namespace("api");
    await lab.run(apiNs, ["ip", "link", "add", "brapi", "type", "bridge"]);
    await lab.run(apiNs, ["ip", "addr", "add", "198.51.100.1/24", "dev", "brapi"]);
    await lab.run(apiNs, ["ip", "link", "set", "brapi", "up"]);
    lab.spawn(apiNs, [process.execPath, "-e", FORWARDER, "198.51.100.1", String(API_PORT), sockPath]);

    const clientHost = await lab.host("client", {
      addresses: ["192.0.2.50/24", "2001:db8::50/64", ...(options.clientAddresses ?? [])],
    });
    await must(client, "POST", "/api/v1/namespaces", { metadata: { name: NS } });
    if (options.rbac !== undefined) {
      for (const o of options.rbac.objects) {
        const path = collectionPath(String(o["kind"]), NS);
        if (path === undefined) throw new Error(`lab cluster: cannot create a ${String(o["kind"])}`);
        await must(client, "POST", path, o);
      }
    }
    writeFileSync(nodeKubeconfigPath, tokenFor(options.rbac?.serviceAccounts.speaker));
    writeFileSync(controllerKubeconfigPath, tokenFor(options.rbac?.serviceAccounts.controller));
    await must(client, "POST", `/api/v1/namespaces/${NS}/configmaps`, {
      metadata: { name: "lab-pools", namespace: NS, labels: { [POOLS_LABEL]: "true" } },
      data: { "pools.yaml": options.pools ?? DEFAULT_POOLS },
    });

    for (let i = 0; i < count; i++) {
      const name = `node${i + 1}`;
      const lanIp = `192.0.2.${11 + i}`;
      const host = await lab.host(name, {
        addresses: [`${lanIp}/24`, `2001:db8::${11 + i}/64`, ...(options.nodeAddresses?.(i) ?? [])],
        mac: `02:00:00:00:00:${(0x11 + i).toString(16)}`,
      });
      const ns = host.ns;
      // API link: a veth from this namespace into the api namespace's bridge.
      await lab.run(ns, ["ip", "link", "add", "api0", "type", "veth", "peer", "name", `api${i + 1}`, "netns", apiNs]);
      await lab.run(apiNs, ["ip", "link", "set", `api${i + 1}`, "master", "brapi", "up"]);
      await lab.run(ns, ["ip", "addr", "add", `198.51.100.${11 + i}/24`, "dev", "api0"]);
      await lab.run(ns, ["ip", "link", "set", "api0", "up"]);
      // kube-proxy stand-in: the Service range is local, but only Lodestone answers ARP/NDP for it.
      for (const [k, v] of [
        ["net.ipv4.conf.all.arp_ignore", "1"],
        ["net.ipv4.conf.all.arp_announce", "2"],
      ]) {
        await lab.run(ns, ["sysctl", "-qw", `${k}=${v}`]);
      }
      await lab.run(ns, ["ip", "route", "add", "local", "192.0.2.96/27", "dev", "lo"]);
      await lab.run(ns, ["ip", "route", "add", "local", "192.0.2.128/25", "dev", "lo"]);
      await lab.run(ns, ["ip", "-6", "route", "add", "local", "2001:db8::100/120", "dev", "lo"]);
      for (const range of options.serviceRanges ?? []) {
        await lab.run(ns, ["ip", ...(range.includes(":") ? ["-6"] : []), "route", "add", "local", range, "dev", "lo"]);
      }
      lab.spawn(ns, [process.execPath, "-e", ECHO, name]);
      await must(client, "POST", "/api/v1/nodes", {
        metadata: { name, labels: { "kubernetes.io/hostname": name, ...(options.nodeLabels?.(i) ?? {}) } },
      });
      await must(client, "PATCH", `/api/v1/nodes/${name}/status`, {
        status: {
          conditions: [{ type: "Ready", status: "True" }],
          addresses: [
            { type: "InternalIP", address: lanIp },
            { type: "Hostname", address: name },
          ],
        },
      });
      nodes.push({ name, index: i, host, lanIp, daemon: undefined, logPath: join(logDir, `${lab.id}-${name}.log`) });
    }

    const split = options.split === true;
    const daemonArgv = (
      name: string,
      kubeconfig: string,
      port: number,
      component: string[],
      extra: readonly string[] = [],
    ) => [
      process.execPath,
      ...daemonNodeFlags(),
      ...(options.daemonFlags ?? []),
      options.daemonBin ?? DAEMON_BIN,
      "run",
      ...component,
      "--node-name",
      name,
      "--kubeconfig",
      kubeconfig,
      "--namespace",
      NS,
      "--metrics-port",
      String(port),
      "--log-level",
      options.logLevel ?? "info",
      // The controller's Lease: short, so a killed leader is replaced within the lab's time budget.
      "--lease-duration",
      "4s",
      "--renew-deadline",
      "3s",
      "--retry-period",
      "1s",
      ...extra,
    ];
    const spawnLogged = (ns: string, argv: readonly string[], logPath: string): ChildProcess => {
      const child = lab.spawn(ns, argv);
      const log = createWriteStream(logPath, { flags: "a" });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      return child;
    };
    const startDaemon = (n: LabNode) => {
      const component = split ? ["--component", "speaker"] : [];
      const argv = daemonArgv(n.name, nodeKubeconfigPath, METRICS_PORT, component, options.daemonArgs?.(n) ?? []);
      n.daemon = spawnLogged(n.host.ns, argv, n.logPath);
    };
    const controllers: LabController[] = split
      ? Array.from({ length: options.controllers ?? 2 }, (_, i) => ({
          name: `controller${i + 1}`,
          metricsPort: CONTROLLER_METRICS_PORT + i,
          daemon: undefined,
          logPath: join(logDir, `${lab.id}-controller${i + 1}.log`),
        }))
      : [];
    const startController = (c: LabController) => {
      const argv = daemonArgv(c.name, controllerKubeconfigPath, c.metricsPort, ["--component", "controller"]);
      c.daemon = spawnLogged(apiNs, argv, c.logPath);
    };
    await options.beforeDaemons?.(lab, nodes);
    for (const c of controllers) startController(c);
    for (const n of nodes) startDaemon(n);

    const c = client;
    const sb = sandbox;
    const br = bridge;
    const cluster: LabCluster = {
      lab,
      sandbox: sb,
      client: c,
      namespace: NS,
      nodes,
      controllers,
      clientHost,
      nodeKubeconfigPath,
      async createService(name, spec = {}, timeoutMs = 10_000) {
        await must(c, "POST", "/api/v1/namespaces/default/services", {
          metadata: { name, namespace: "default" },
          spec: { type: "LoadBalancer", ports: [{ port: ECHO_PORT, protocol: "TCP" }], ...spec },
        });
        return until(
          `an IP for ${name}`,
          async () => {
            const r = await c.request({ method: "GET", path: `/api/v1/namespaces/default/services/${name}` });
            const ingress = (r.body as { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }).status
              ?.loadBalancer?.ingress;
            return ingress?.[0]?.ip;
          },
          timeoutMs,
        );
      },
      async whoAnswers(ip, timeoutMs = 1_000, fromNs = clientHost.ns) {
        const r = await lab.exec(
          fromNs,
          [
            process.execPath,
            "-e",
            `const s=require("node:net").connect({host:process.argv[1],port:${ECHO_PORT}});let d="";` +
              `s.on("data",x=>d+=x);s.on("end",()=>{console.log(d.trim());process.exit(0)});` +
              `s.on("error",()=>process.exit(1));setTimeout(()=>process.exit(1),${timeoutMs});`,
            ip,
          ],
          { timeoutMs: timeoutMs + 2_000 },
        );
        return r.code === 0 && r.stdout.trim() !== "" ? r.stdout.trim() : undefined;
      },
      async announcingNode(service) {
        const r = await c.request({ method: "GET", path: `/api/v1/namespaces/default/services/${service}` });
        return (r.body as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations?.[
          ANNOUNCING_ANNOTATION
        ];
      },
      probe(ip, intervalMs = 20, timeoutMs = 500, fromNs = clientHost.ns) {
        const child = lab.spawn(fromNs, [process.execPath, "-e", PROBE, ip, String(intervalMs), String(timeoutMs)], {
          stdio: ["pipe", "pipe", "pipe"],
        });
        const samples: ProbeSample[] = [];
        if (child.stdout !== null) {
          createInterface({ input: child.stdout }).on("line", (line) => {
            try {
              const s = JSON.parse(line) as { start: number; end: number; node: string | null };
              samples.push({ start: s.start, end: s.end, node: s.node ?? undefined });
            } catch {
              // a foreign line
            }
          });
        }
        return {
          samples: () => samples,
          async stop() {
            // Let attempts in flight finish (they time out after timeoutMs), then end the prober.
            await new Promise((r) => setTimeout(r, timeoutMs + 50));
            child.stdin?.end();
            await new Promise<void>((r) => {
              if (child.exitCode !== null) r();
              else child.once("exit", () => r());
              setTimeout(() => {
                child.kill("SIGKILL");
                r();
              }, 2_000).unref();
            });
            return samples.sort((a, b) => a.start - b.start);
          },
        };
      },
      async fault(n, fault) {
        if (fault === "sigkill" || fault === "sigterm") {
          const d = n.daemon;
          if (d === undefined || d.exitCode !== null) throw new Error(`${n.name}: daemon not running`);
          d.kill(fault === "sigkill" ? "SIGKILL" : "SIGTERM");
          if (fault === "sigterm") {
            await new Promise<void>((r) => (d.exitCode !== null ? r() : d.once("exit", () => r())));
          }
        } else if (fault === "linkdown") {
          await lab.run(n.host.ns, ["ip", "link", "set", n.host.ifname, "down"]);
        } else {
          await lab.run(n.host.ns, ["ip", "link", "set", "api0", "down"]);
        }
      },
      async heal(n) {
        await lab.run(n.host.ns, ["ip", "link", "set", n.host.ifname, "up"]);
        await lab.run(n.host.ns, ["ip", "link", "set", "api0", "up"]);
        if (n.daemon === undefined || n.daemon.exitCode !== null || n.daemon.signalCode !== null) {
          startDaemon(n);
        }
      },
      restartController(ctl) {
        if (ctl.daemon === undefined || ctl.daemon.exitCode !== null || ctl.daemon.signalCode !== null) {
          startController(ctl);
        }
      },
      async waitReady(timeoutMs = 20_000) {
        // Each daemon's /readyz, from inside the namespace it runs in.
        const ready = (what: string, ns: string, port: number) =>
          until(
            `${what} ready`,
            async () => {
              const probe = `fetch("http://127.0.0.1:${port}/readyz").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;
              const r = await lab.exec(ns, [process.execPath, "-e", probe], { timeoutMs: 3_000 });
              return r.code === 0 ? true : undefined;
            },
            timeoutMs,
          );
        for (const ctl of controllers) await ready(ctl.name, apiNs, ctl.metricsPort);
        for (const n of nodes) await ready(n.name, n.host.ns, METRICS_PORT);
      },
      measureFailover: (service, ip, fault, o) => measure(cluster, service, ip, fault, o?.timeoutMs ?? 8_000),
      async destroy() {
        await c.close().catch(() => undefined);
        await lab.destroy();
        br.close();
        rmSync(sockPath, { force: true });
        removeKubeconfigs();
        await sb.stop();
        removeLogs();
      },
    };
    return cluster;
  } catch (err: unknown) {
    await client?.close().catch(() => undefined);
    await lab.destroy();
    bridge?.close();
    rmSync(sockPath, { force: true });
    removeKubeconfigs();
    await sandbox?.stop();
    removeLogs();
    throw err;
  }
}

async function must(client: KubeClient, method: "POST" | "PATCH", path: string, body: unknown): Promise<unknown> {
  const r = await client.request({ method, path, body });
  if (r.status !== 200 && r.status !== 201) {
    throw new Error(`lab cluster: ${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  }
  return r.body;
}

/** ARP requests to `ip` from the client every `intervalMs`; returns, per request index, the MACs that answered. */
function arpWatch(cluster: LabCluster, ip: string, intervalMs: number, count: number) {
  const child = cluster.lab.spawn(cluster.clientHost.ns, [
    "arping",
    "-i",
    cluster.clientHost.ifname,
    "-W",
    String(intervalMs / 1000),
    "-c",
    String(count),
    ip,
  ]);
  const answers = new Map<number, Set<string>>();
  if (child.stdout !== null) {
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /from ([0-9a-f:]{17}) .*index=(\d+)/i.exec(line);
      if (m === null) return;
      const idx = Number(m[2]);
      const set = answers.get(idx) ?? new Set<string>();
      set.add((m[1] ?? "").toLowerCase());
      answers.set(idx, set);
    });
  }
  return {
    stop(): number {
      child.kill("SIGINT");
      // Longest run of consecutive requests answered by two or more MACs, in ms.
      let longest = 0;
      let run = 0;
      const last = Math.max(0, ...answers.keys());
      for (let k = 0; k <= last; k++) {
        run = (answers.get(k)?.size ?? 0) > 1 ? run + 1 : 0;
        longest = Math.max(longest, run);
      }
      return longest * intervalMs;
    },
  };
}

async function measure(
  cluster: LabCluster,
  service: string,
  ip: string,
  fault: Fault,
  timeoutMs: number,
): Promise<FailoverResult> {
  const from = await cluster.whoAnswers(ip, 2_000);
  const victim = cluster.nodes.find((n) => n.name === from);
  if (victim === undefined) throw new Error(`lab cluster: nobody answers ${ip} before the fault`);
  void service;
  const probe = cluster.probe(ip, 20, 500);
  const arp = arpWatch(cluster, ip, 20, Math.ceil((timeoutMs + 2_000) / 20));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  await cluster.fault(victim, fault);
  const faultDoneMs = Date.now() - t0;
  let to: string | undefined;
  const end = t0 + timeoutMs;
  while (Date.now() < end) {
    const moved = probe.samples().find((s) => s.start >= t0 && s.node !== undefined && s.node !== from);
    if (moved !== undefined) {
      to = moved.node;
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // Keep watching a little after the move, so a double answer right after the takeover is seen too.
  await new Promise((r) => setTimeout(r, 500));
  const doubleAnswerMs = arp.stop();
  const samples = await probe.stop();
  const after = samples.filter((s) => s.end >= t0);
  const firstMoved = after.find((s) => s.node !== undefined && s.node !== from);
  return {
    fault,
    from: victim.name,
    to,
    failoverMs: firstMoved === undefined ? undefined : firstMoved.end - t0,
    movedAtMs: firstMoved === undefined ? undefined : firstMoved.start - t0,
    faultDoneMs,
    failedConnections: after.filter((s) => s.node === undefined).length,
    failures: after.filter((s) => s.node === undefined).map((s) => ({ startMs: s.start - t0, endMs: s.end - t0 })),
    doubleAnswerMs,
  };
}
