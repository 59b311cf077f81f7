/**
 * Speaker at scale (root): the three-node lab of src/lab/cluster.ts, a pool 2001:db8:1::/112, node addresses
 * 2001:db8:1:0:ffff::N/64, and N IPv6 LoadBalancer Services (default 10,000) created through the API. Reports:
 *
 *   - converge: from the last address written until the speakers together announce every IP (the sum of
 *     lodestone_announced_ips is N, membership 3 everywhere) and every Service is annotated with one node, the
 *     counts per node agreeing with what each announces;
 *   - 200 sampled addresses, each asked by NDP (ndisc6 -m from the client namespace): answered by exactly one MAC;
 *   - 5 SIGKILLs of the node owning a probed address: time until a TCP client is served by another node, how many
 *     Services owned by the survivors moved meanwhile, how many still name the dead node 20 s later;
 *   - event-loop lag p99 / max (bucket bounds), during convergence and the failovers: `loop_lag_*` of the wire
 *     thread (lodestone_wire_event_loop_lag_seconds: ARP/NDP answers and heartbeats), `main_loop_lag_*` of the
 *     main thread (lodestone_event_loop_lag_seconds: planning, API, Events); RSS of each daemon; the duelling announcements seen; the nodes' API writes in an idle minute
 *     other than Lease renewals (counted at the lab's API bridge).
 *
 *   flock /tmp/lodestone-bench.lock npm run bench:speaker -- --services 1000
 *
 * The last line is one JSON object. The machine's two cores are shared: wall-clock tails are noisy.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { type LagHistogram, emptyLag, lagQuantile } from "../src/core/loop-lag.ts";
import { type LabCluster, startLabCluster } from "../src/lab/cluster.ts";
import { compiledDaemon } from "../src/lab/daemon-command.ts";
import { labUnavailable } from "../src/lab/netns.ts";

const why = labUnavailable(["ndisc6", "curl"]);
if (why !== undefined) {
  console.error(`bench:speaker: ${why}`);
  process.exit(1);
}
const { values } = parseArgs({
  allowNegative: true,
  options: {
    services: { type: "string", default: "10000" },
    trials: { type: "string", default: "5" },
    samples: { type: "string", default: "200" },
    "idle-seconds": { type: "string", default: "60" },
    /** More Node flags for the daemons, e.g. --node-flags="--trace-gc" (with LODESTONE_KEEP_LAB_LOGS=1). */
    "node-flags": { type: "string", default: "" },
    /** The daemons' --log-level; info shows each membership change and claim batch (with LODESTONE_KEEP_LAB_LOGS=1). */
    "log-level": { type: "string", default: "warn" },
    /** Run the daemons compiled to dist/ as the image holds them (default), or from the sources (--no-compiled). */
    compiled: { type: "boolean", default: true },
  },
});
const N = Number(values.services);
const TRIALS = Number(values.trials);
const SAMPLES = Number(values.samples);
const IDLE_S = Number(values["idle-seconds"]);
const POOL = "2001:db8:1::/112";
const SCRAPE_EVERY_MS = N > 2_000 ? 3_000 : 500;

const log = (...a: unknown[]) => console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] ?? NaN);
};

/** API requests seen at the lab's bridge, by kind. */
const writes: { method: string; path: string; at: number }[] = [];
let counting = false;

// The daemon as the image holds it (`npm run build`: no TypeScript stripper in either thread), unless --no-compiled.
const compiled = values.compiled ? compiledDaemon() : undefined;
process.once("exit", () => compiled?.remove());
const cluster = await startLabCluster({
  ...(compiled === undefined ? {} : { daemonBin: compiled.bin }),
  area: "spk",
  nodes: 3,
  logLevel: values["log-level"],
  pools: `- name: bench\n  addresses: ["${POOL}"]\n`,
  nodeAddresses: (i) => [`2001:db8:1:0:ffff::${i + 1}/64`],
  clientAddresses: ["2001:db8:1:0:ffff::50/64"],
  serviceRanges: [POOL],
  daemonFlags: values["node-flags"].split(/\s+/).filter((f) => f !== ""),
  onApiRequest: (method, path) => {
    if (counting && method !== "GET") writes.push({ method, path, at: Date.now() });
  },
});

interface Scrape {
  announced: number;
  members: number;
  duelling: number;
  /** The wire thread's: the loop that answers ARP/NDP and sends heartbeats. */
  lag: LagHistogram;
  /** The main thread's: planning, API traffic, Events. */
  mainLag: LagHistogram;
}
async function scrape(c: LabCluster, node: number): Promise<Scrape | undefined> {
  const n = c.nodes[node];
  if (n === undefined) return undefined;
  // At 10,000 owned IPs a scrape is some 30,000 series (the per-IP layer-2 counters) and takes seconds under load.
  const r = await c.lab.exec(n.host.ns, ["curl", "-s", "-m", "15", "http://127.0.0.1:7472/metrics"], {
    timeoutMs: 20_000,
  });
  if (r.code !== 0) return undefined;
  const value = (name: string): number => {
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(r.stdout);
    return m === null ? 0 : Number(m[1]);
  };
  const base = emptyLag();
  const histogram = (name: string): LagHistogram => ({
    bounds: base.bounds,
    counts: base.bounds.map((le) => value(`${name}_bucket\\{le="${le}"\\}`)),
    count: value(`${name}_count`),
    sum: value(`${name}_sum`),
  });
  return {
    announced: value("lodestone_announced_ips"),
    members: value("lodestone_membership_size"),
    duelling: value("lodestone_duelling_announcements_total"),
    lag: histogram("lodestone_wire_event_loop_lag_seconds"),
    mainLag: histogram("lodestone_event_loop_lag_seconds"),
  };
}
const scrapeAll = async (c: LabCluster) => Promise.all(c.nodes.map((_, i) => scrape(c, i)));

/** Worst p99 and max (bucket upper bounds, ms) over the nodes, between two scrapes of each. */
function lagBetween(
  before: readonly (Scrape | undefined)[],
  after: readonly (Scrape | undefined)[],
  which: "lag" | "mainLag" = "lag",
) {
  let p99 = 0;
  let max = 0;
  after.forEach((a, i) => {
    const b = before[i];
    if (a === undefined) return;
    const from = b === undefined || b[which].count > a[which].count ? emptyLag() : b[which];
    p99 = Math.max(p99, lagQuantile(a[which], from, 0.99) * 1000);
    max = Math.max(max, lagQuantile(a[which], from, 1) * 1000);
  });
  return { p99, max };
}

/** The Services as a watch sees them: IP and annotation, with when the last IP was written. */
const services = new Map<string, { ip: string | undefined; node: string | undefined }>();
let lastIpAt = 0;
let watchAbort: AbortController | undefined;
async function follow(): Promise<void> {
  watchAbort = await cluster.client.watch(
    "/api/v1/namespaces/default/services",
    { timeoutSeconds: 3_600 },
    (type, object) => {
      const o = object as {
        metadata?: { name?: string; annotations?: Record<string, string> };
        status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
      };
      const name = o.metadata?.name;
      if (name === undefined) return;
      if (type === "DELETED") {
        services.delete(name);
        return;
      }
      const ip = o.status?.loadBalancer?.ingress?.[0]?.ip;
      const before = services.get(name);
      if (ip !== undefined && before?.ip === undefined) lastIpAt = Date.now();
      services.set(name, { ip, node: o.metadata?.annotations?.["lodestone.dev/announcing-node"] });
    },
    () => {
      if (!stopping) void follow();
    },
  );
}
let stopping = false;

function annotationCounts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of services.values()) if (s.node !== undefined) m.set(s.node, (m.get(s.node) ?? 0) + 1);
  return m;
}

/** Waits until the speakers announce every IP once and the annotations agree; returns when each held. */
async function converged(c: LabCluster, timeoutMs: number, alive = [0, 1, 2]) {
  const start = Date.now();
  let claimedAt: number | undefined;
  let annotatedAt: number | undefined;
  let last = "";
  while (Date.now() - start < timeoutMs) {
    const s = await scrapeAll(c);
    const live = alive.map((i) => s[i]);
    const sum = live.reduce((a, x) => a + (x?.announced ?? 0), 0);
    const ok = live.every((x) => x !== undefined && x.members === alive.length) && sum === N;
    claimedAt = ok ? (claimedAt ?? Date.now()) : undefined;
    const counts = annotationCounts();
    const annotated = [...services.values()].filter((x) => x.node !== undefined).length;
    const agree =
      ok && annotated === N && alive.every((i) => (counts.get(c.nodes[i]?.name ?? "") ?? 0) === live[i]?.announced);
    annotatedAt = agree ? (annotatedAt ?? Date.now()) : undefined;
    last = `announced ${live.map((x) => x?.announced ?? "?").join("+")}=${sum}, members ${live.map((x) => x?.members ?? "?").join(",")}, annotated ${annotated} ${JSON.stringify(Object.fromEntries(counts))}`;
    if (claimedAt !== undefined && annotatedAt !== undefined) return { claimedAt, annotatedAt, last };
    // Not faster: each scrape renders every per-IP series in one event-loop turn of the daemon it asks.
    await sleep(SCRAPE_EVERY_MS);
  }
  throw new Error(`not converged after ${timeoutMs} ms: ${last}`);
}

const rssMb = (c: LabCluster): number[] =>
  c.nodes.map((n) => {
    try {
      const status = readFileSync(`/proc/${n.daemon?.pid}/status`, "utf8");
      const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
      return Math.round(kb / 102.4) / 10;
    } catch {
      return NaN;
    }
  });

/** Asks one address by NDP from the client: the distinct MACs that answered. */
async function macsFor(c: LabCluster, ip: string): Promise<string[]> {
  const r = await c.lab.exec(c.clientHost.ns, ["ndisc6", "-m", "-n", "-r", "1", "-w", "400", ip, c.clientHost.ifname], {
    timeoutMs: 3_000,
  });
  return [...new Set([...r.stdout.matchAll(/Target link-layer address: ([0-9A-Fa-f:]+)/g)].map((m) => m[1]!))];
}

const result: Record<string, unknown> = { services: N };
try {
  await cluster.waitReady(60_000);
  await follow();
  const before = await scrapeAll(cluster);
  log(`creating ${N} Services`);
  const createdAt = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < N; i = next++) {
        const r = await cluster.client.request({
          method: "POST",
          path: "/api/v1/namespaces/default/services",
          body: {
            metadata: { name: `s${i}`, namespace: "default" },
            spec: {
              type: "LoadBalancer",
              ipFamilies: ["IPv6"],
              // The NodePort range holds 2,768 ports; as bench:controller, none are needed here.
              allocateLoadBalancerNodePorts: false,
              ports: [{ port: 8080, protocol: "TCP" }],
            },
          },
        });
        if (r.status !== 201) throw new Error(`create s${i}: HTTP ${r.status}`);
      }
    }),
  );
  log(`created in ${((Date.now() - createdAt) / 1000).toFixed(1)} s; waiting for every address`);
  const allIps = Date.now() + 600_000;
  while ([...services.values()].filter((s) => s.ip !== undefined).length < N) {
    if (Date.now() > allIps) throw new Error("not every Service got an address");
    await sleep(200);
  }
  log(`last address written ${((lastIpAt - createdAt) / 1000).toFixed(1)} s after the first create`);
  const conv = await converged(cluster, 300_000);
  const afterConverge = await scrapeAll(cluster);
  const lagConverge = lagBetween(before, afterConverge);
  const mainLagConverge = lagBetween(before, afterConverge, "mainLag");
  Object.assign(result, {
    converge_s: +((Math.max(conv.claimedAt, conv.annotatedAt) - lastIpAt) / 1000).toFixed(1),
    claimed_s: +((conv.claimedAt - lastIpAt) / 1000).toFixed(1),
    annotated_s: +((conv.annotatedAt - lastIpAt) / 1000).toFixed(1),
    allocate_s: +((lastIpAt - createdAt) / 1000).toFixed(1),
    loop_lag_converge_p99_ms: lagConverge.p99,
    loop_lag_converge_max_ms: lagConverge.max,
    main_loop_lag_converge_p99_ms: mainLagConverge.p99,
    main_loop_lag_converge_max_ms: mainLagConverge.max,
  });
  log("converged", result, conv.last);
  const rss = rssMb(cluster);
  log("RSS MB", rss);

  // NDP: a random sample, each answered by exactly one MAC.
  const ips = [...services.values()].flatMap((s) => (s.ip === undefined ? [] : [s.ip]));
  const sample = Array.from(
    { length: Math.min(SAMPLES, ips.length) },
    () => ips[Math.floor(Math.random() * ips.length)]!,
  );
  const answers: number[] = [];
  for (let i = 0; i < sample.length; i += 4) {
    answers.push(...(await Promise.all(sample.slice(i, i + 4).map(async (ip) => (await macsFor(cluster, ip)).length))));
  }
  Object.assign(result, {
    ndp_sampled: sample.length,
    ndp_one_mac: answers.filter((a) => a === 1).length,
    ndp_no_answer: answers.filter((a) => a === 0).length,
    ndp_two_macs: answers.filter((a) => a > 1).length,
  });
  log("NDP", result);

  // Failover trials.
  const failover: number[] = [];
  let moved = 0;
  let stale = 0;
  let lagFail = { p99: 0, max: 0 };
  let mainLagFail = { p99: 0, max: 0 };
  for (let t = 0; t < TRIALS; t++) {
    const names = [...services.keys()];
    const probe = names[Math.floor(Math.random() * names.length)]!;
    const ip = services.get(probe)?.ip;
    const owner = services.get(probe)?.node;
    const victim = cluster.nodes.findIndex((n) => n.name === owner);
    if (ip === undefined || victim < 0) throw new Error(`trial ${t}: ${probe} has no owner`);
    const survivors = [0, 1, 2].filter((i) => i !== victim);
    const owners = new Map([...services].map(([k, v]) => [k, v.node]));
    const lagBefore = await scrapeAll(cluster);
    const r = await cluster.measureFailover(probe, ip, "sigkill", { timeoutMs: 8_000 });
    // measureFailover returns about 1.1 s after the move (it watches 500 ms more, then lets probes finish).
    const killedAt = Date.now() - (r.failoverMs ?? 0) - 1_100;
    await sleep(Math.max(0, killedAt + 20_000 - Date.now()));
    const lagAfter = await scrapeAll(cluster);
    const l = lagBetween(
      survivors.map((i) => lagBefore[i]),
      survivors.map((i) => lagAfter[i]),
    );
    lagFail = { p99: Math.max(lagFail.p99, l.p99), max: Math.max(lagFail.max, l.max) };
    const ml = lagBetween(
      survivors.map((i) => lagBefore[i]),
      survivors.map((i) => lagAfter[i]),
      "mainLag",
    );
    mainLagFail = { p99: Math.max(mainLagFail.p99, ml.p99), max: Math.max(mainLagFail.max, ml.max) };
    const dead = cluster.nodes[victim]!.name;
    let m = 0;
    let s = 0;
    for (const [k, v] of services) {
      const was = owners.get(k);
      if (was !== undefined && was !== dead && v.node !== was) m++;
      if (v.node === dead) s++;
    }
    moved += m;
    stale += s;
    if (r.failoverMs !== undefined) failover.push(r.failoverMs);
    log(
      `trial ${t + 1}: ${dead} killed, ${r.to ?? "nobody"} after ${r.failoverMs ?? "-"} ms; moved ${m}, stale ${s}`,
      l,
    );
    await cluster.heal(cluster.nodes[victim]!);
    await cluster.waitReady(60_000);
    await converged(cluster, 180_000);
  }
  Object.assign(result, {
    failover_trials: failover.length,
    failover_ms_median: median(failover),
    failover_ms_max: failover.length === 0 ? NaN : Math.max(...failover),
    moved_between_live: moved,
    stale_after_20s: stale,
    loop_lag_failover_p99_ms: lagFail.p99,
    loop_lag_failover_max_ms: lagFail.max,
    main_loop_lag_failover_p99_ms: mainLagFail.p99,
    main_loop_lag_failover_max_ms: mainLagFail.max,
  });

  // An idle minute: every write that is not a Lease renewal.
  await sleep(5_000);
  writes.length = 0;
  counting = true;
  const idleFrom = Date.now();
  await sleep(IDLE_S * 1000);
  counting = false;
  const minutes = (Date.now() - idleFrom) / 60_000;
  const other = writes.filter((w) => !w.path.includes("/leases/"));
  const final = await scrapeAll(cluster);
  Object.assign(result, {
    api_writes_idle_total: other.length,
    api_writes_idle_sample: other.slice(0, 5).map((w) => `${w.method} ${w.path}`),
    lease_writes_idle: writes.length - other.length,
    rss_mb_each: rss,
    duelling_total: final.reduce((a, x) => a + (x?.duelling ?? 0), 0),
    load_average_1m: +(loadavg()[0] ?? 0).toFixed(2),
    api_writes_per_node_min: +(other.length / 3 / minutes).toFixed(2),
  });
  result["duelling"] = result["duelling_total"];
  result["loop_lag_p99_ms"] = Math.max(lagConverge.p99, lagFail.p99);
  result["loop_lag_max_ms"] = Math.max(lagConverge.max, lagFail.max);
  result["rss_mb"] = Math.max(...rss);
} catch (err: unknown) {
  result["error"] = err instanceof Error ? err.message : String(err);
  process.exitCode = 1;
} finally {
  stopping = true;
  watchAbort?.abort();
  await cluster.destroy();
}
console.log(result);
const keys = [
  "services",
  "converge_s",
  "failover_ms_median",
  "failover_ms_max",
  "moved_between_live",
  "stale_after_20s",
  "duelling",
  "loop_lag_p99_ms",
  "loop_lag_max_ms",
  "rss_mb",
  "api_writes_per_node_min",
];
console.log(JSON.stringify({ ...Object.fromEntries(keys.map((k) => [k, result[k] ?? null])), ...result }));
