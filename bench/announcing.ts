// The controller's announcing-node annotation at scale: the embedded API server in this process, N Services
// (default 10,000) with IPv6 addresses of one /112 already recorded, three fake speakers renewing their membership
// Leases every 2 s with reports of what they announce (each a third of the IPs), and the controller
// (`lodestone run --component controller`) as a child process so its event loop is its own.
//
//   annotate  from the controller's start to every Service annotated with its speaker.
//   death     node3 stops renewing; 600 ms later (heartbeat loss) node1 and node2 report its IPs too, as they would
//             after taking them over. Time until no Service names node3 any more, and the PATCHes it took.
//   expiry    node2 stops renewing and nobody takes its IPs over: time until no Service names node2 (its Lease
//             must expire first: 10 s).
//   idle      10 s with nothing changing: annotation writes in that time (target 0).
//
//   npm run bench:announcing [-- --services N]
//
// Targets (issue 17): none still annotated with the dead node 20 s after the death; writes proportional to the
// change (the Services of the dead node, not all); the controller's event-loop lag p99 under 100 ms from the death on.
// Last line: one JSON object.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { encodeAnnounced } from "../src/core/announced-codec.ts";
import { type IpAddress, formatIp, ip } from "../src/core/ip.ts";
import { createKubeClient } from "../src/kube/client.ts";
import { createLeaseRenewer } from "../src/kube/speaker-resources.ts";
import { ANNOUNCED_ANNOTATION, ANNOUNCING_ANNOTATION, POOL_ANNOTATION } from "../src/core/well-known.ts";
import { startSandbox } from "../src/sandbox/index.ts";
import { DAEMON_BIN, daemonNodeFlags } from "../src/lab/daemon-command.ts";

const { values } = parseArgs({ options: { services: { type: "string", default: "10000" } } });
const N = Number(values.services);
const NS = "bench";
const SYSTEM_NS = "lodestone-system";
const BASE = 0x20010db885a308d313198a2e03700000n;
const address = (i: number): IpAddress => ip(6, BASE + BigInt(i * 6 + 1));
const nodes = ["node1", "node2", "node3"];

const sandbox = await startSandbox({ historySize: 50_000 });
const kc = new KubeConfig();
kc.loadFromString(sandbox.kubeconfigYaml);
const client = createKubeClient(kc);
const dir = mkdtempSync(join(tmpdir(), "lodestone-bench-announcing-"));
const call = async (method: string, path: string, body: unknown, type = "application/json"): Promise<void> => {
  const res = await fetch(sandbox.url + path, {
    method,
    headers: { "content-type": type },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
};
async function pooled(n: number, f: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < n; i = next++) await f(i);
    }),
  );
}

// Who names each Service, from the store's events (no list of 10,000 every poll).
const named = new Map<string, string | undefined>();
let patches = 0;
sandbox.api.store.subscribe("services", {
  namespace: NS,
  deliver: (ev) => {
    const meta = ev.entry.obj["metadata"] as { name: string; annotations?: Record<string, string> };
    const now = meta.annotations?.[ANNOUNCING_ANNOTATION];
    if (ev.type !== "ADDED" && ev.prev !== undefined) {
      const was = (ev.prev.obj["metadata"] as { annotations?: Record<string, string> }).annotations?.[
        ANNOUNCING_ANNOTATION
      ];
      if (was !== now) patches++;
    }
    named.set(meta.name, now);
  },
});
const count = (node: string): number => [...named.values()].filter((v) => v === node).length;
async function until(what: string, done: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!done()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`bench: ${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Math.round(performance.now() - t0);
}

await call("POST", "/api/v1/namespaces", { metadata: { name: NS } });
await call("POST", "/api/v1/namespaces", { metadata: { name: SYSTEM_NS } });
await call("POST", `/api/v1/namespaces/${SYSTEM_NS}/configmaps`, {
  metadata: { name: "pools", labels: { "lodestone.dev/pools": "true" } },
  data: { "pools.yaml": `- name: v6\n  addresses: ["2001:db8:85a3:8d3:1319:8a2e:370:0/112"]\n` },
});
const setup0 = performance.now();
await pooled(N, async (i) => {
  await call("POST", `/api/v1/namespaces/${NS}/services`, {
    metadata: { name: `svc-${i}`, annotations: { [POOL_ANNOTATION]: "v6" } },
    // No node ports: 10,000 would exhaust the default range.
    spec: { type: "LoadBalancer", ipFamilies: ["IPv6"], allocateLoadBalancerNodePorts: false, ports: [{ port: 80 }] },
  });
  await call(
    "PATCH",
    `/api/v1/namespaces/${NS}/services/svc-${i}/status`,
    { status: { loadBalancer: { ingress: [{ ip: formatIp(address(i)) }] } } },
    "application/merge-patch+json",
  );
});
const setupMs = Math.round(performance.now() - setup0);

// The speakers: node k reports the IPs i with i % 3 === k, plus whatever it took over.
const reports = new Map<string, IpAddress[]>(
  nodes.map((n, k) => [
    n,
    Array.from({ length: N }, (_, i) => i)
      .filter((i) => i % 3 === k)
      .map(address),
  ]),
);
const renewers = new Map(nodes.map((n) => [n, createLeaseRenewer(client, SYSTEM_NS, n, 10)]));
const alive = new Set(nodes);
let maxReportChars = 0;
async function renewAll(): Promise<void> {
  for (const n of alive) {
    const text = encodeAnnounced(reports.get(n) ?? []);
    maxReportChars = Math.max(maxReportChars, text.length);
    const err = await renewers.get(n)!({ [ANNOUNCED_ANNOTATION]: text }, 2_000);
    if (err !== undefined) throw new Error(err);
  }
}
await renewAll();
const renewal = setInterval(() => void renewAll(), 2_000);

const kubeconfig = join(dir, "kubeconfig.yaml");
writeFileSync(kubeconfig, sandbox.kubeconfigYaml);
const metricsPort = 17_000 + (process.pid % 1000);
const child = spawn(
  process.execPath,
  [
    ...daemonNodeFlags(),
    DAEMON_BIN,
    "run",
    "--component=controller",
    `--kubeconfig=${kubeconfig}`,
    `--namespace=${SYSTEM_NS}`,
    "--node-name=bench-controller",
    "--metallb-namespace=",
    `--metrics-port=${metricsPort}`,
    "--log-level=warn",
  ],
  { stdio: ["ignore", "inherit", "inherit"] },
);
/** The controller's event-loop lag histogram (cumulative buckets, seconds → count) from its /metrics. */
async function lagBuckets(): Promise<Map<number, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return new Map(
    [...text.matchAll(/^lodestone_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)].map((m) => [
      m[1] === "+Inf" ? Infinity : Number(m[1]),
      Number(m[2]),
    ]),
  );
}
/** p99 and the highest bucket reached between two snapshots, in ms. */
function lagBetween(a: Map<number, number>, b: Map<number, number>): { p99Ms: number; maxMs: number } {
  const les = [...b.keys()].sort((x, y) => x - y);
  const delta = les.map((le) => ({ le, n: (b.get(le) ?? 0) - (a.get(le) ?? 0) }));
  const total = delta.at(-1)?.n ?? 0;
  const p99 = delta.find((d) => d.n >= total * 0.99)?.le ?? 0;
  const max = delta.find((d) => d.n === total)?.le ?? 0;
  return { p99Ms: p99 * 1000, maxMs: max * 1000 };
}

try {
  const annotateMs = await until(
    "every Service annotated",
    () => named.size === N && nodes.every((n) => count(n) === N / 3 || Math.abs(count(n) - N / 3) < 1),
    120_000,
  );
  const afterAnnotate = patches;
  const lagAtStart = await lagBuckets();

  // node3 dies; after 600 ms the survivors report its IPs, split between them.
  alive.delete("node3");
  const dead = reports.get("node3")!;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 600));
  reports.set("node1", [...reports.get("node1")!, ...dead.filter((_, i) => i % 2 === 0)]);
  reports.set("node2", [...reports.get("node2")!, ...dead.filter((_, i) => i % 2 === 1)]);
  await renewAll();
  await until("no Service names node3", () => count("node3") === 0, 60_000);
  const deathMs = Math.round(performance.now() - t0);
  const deathPatches = patches - afterAnnotate;

  // node2 stops too, and nobody reports its IPs: they go once its Lease expires (10 s).
  alive.delete("node2");
  const t1 = performance.now();
  await until("no Service names node2", () => count("node2") === 0, 60_000);
  const expiryMs = Math.round(performance.now() - t1);

  const before = patches;
  await new Promise((r) => setTimeout(r, 10_000));
  const idleWrites = patches - before;
  const loop = lagBetween(lagAtStart, await lagBuckets());
  const result = {
    bench: "announcing",
    services: N,
    setupMs,
    annotateMs,
    annotatePatches: afterAnnotate,
    deathMs,
    deathPatches,
    deadNodeServices: dead.length,
    expiryMs,
    idleWrites,
    maxReportChars,
    // From the death on (the start-up's list and allocator rebuild are bench:controller's).
    loopLagP99Ms: loop.p99Ms,
    loopLagMaxMs: loop.maxMs,
    target_met: deathMs <= 20_000 && deathPatches <= dead.length * 1.1 && idleWrites === 0 && loop.p99Ms <= 100,
  };
  console.log(JSON.stringify(result));
} finally {
  clearInterval(renewal);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  await client.close();
  await sandbox.stop();
  rmSync(dir, { recursive: true, force: true });
}
