/**
 * Failover benchmark (root): a three-node lab cluster (src/lab/cluster.ts), one LoadBalancer Service, and
 * TRIALS trials of each fault against whichever node announces it. A client namespace opens a TCP connection to
 * the Service IP every 20 ms; failover is the time from the fault to the first connection answered by another
 * node. An arping every 20 ms from the client counts requests answered by two MACs (double answer).
 *
 *   npm run bench:failover            # TRIALS=20 of every fault by default; TRIALS=5 for a quick look;
 *                                     # FAULTS=sigterm for one fault only
 *
 * A trial that cannot be measured (the cluster never settles, a fault cannot be applied) is recorded as failed
 * (counted in `failed_trials`, left out of the figures) and the run goes on; the JSON line is always printed.
 *
 * The machine's cores are shared with other work: figures are noisy, the max most of all.
 */
import { loadavg } from "node:os";
import { type Fault, type FailoverResult, startLabCluster } from "../src/lab/cluster.ts";
import { labUnavailable } from "../src/lab/netns.ts";

const why = labUnavailable(["arping"]);
if (why !== undefined) {
  console.error(`bench:failover: ${why}`);
  process.exit(1);
}
const TRIALS = Number(process.env["TRIALS"] ?? 20);
const APICUT_TRIALS = Number(process.env["APICUT_TRIALS"] ?? TRIALS);
/** FAULTS=sigterm,sigkill runs only those (default: all four). */
const FAULTS = (process.env["FAULTS"] ?? "sigkill,linkdown,sigterm,apicut").split(",").map((f) => f.trim());

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
};
const max = (xs: readonly number[]): number => (xs.length === 0 ? NaN : Math.max(...xs));

const cluster = await startLabCluster({ area: "bench", nodes: 3, logLevel: "warn" });
const results = new Map<Fault, FailoverResult[]>();
let failedTrials = 0;
try {
  await cluster.waitReady(30_000);
  const ip = await cluster.createService("bench");
  // Before each trial the cluster must be at rest: a healed node rejoins and may take its IPs back after a settle
  // time, so one agreement between the annotation and the client is not enough; it must hold for 1.5 s.
  const settled = async (): Promise<string> => {
    const end = Date.now() + 20_000;
    let owner: string | undefined;
    let since = Date.now();
    let last = "";
    while (Date.now() < end) {
      const a = await cluster.announcingNode("bench");
      const b = await cluster.whoAnswers(ip, 500);
      last = `annotation ${a ?? "none"}, client reaches ${b ?? "nobody"}`;
      const agreed = a !== undefined && a === b ? a : undefined;
      if (agreed !== owner) {
        owner = agreed;
        since = Date.now();
      }
      if (owner !== undefined && Date.now() - since >= 1_500) return owner;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the Service never settled on one node (last: ${last})`);
  };
  for (const [fault, trials] of (
    [
      ["sigkill", TRIALS],
      ["linkdown", TRIALS],
      ["sigterm", TRIALS],
      ["apicut", APICUT_TRIALS],
    ] as const
  ).filter(([f]) => FAULTS.includes(f))) {
    const list: FailoverResult[] = [];
    results.set(fault, list);
    for (let i = 0; i < trials; i++) {
      try {
        await settled();
        const r = await cluster.measureFailover("bench", ip, fault, {
          timeoutMs: fault === "apicut" ? 12_000 : 6_000,
        });
        list.push(r);
        console.log(
          `${fault.padEnd(8)} #${String(i + 1).padStart(2)} ${r.from} -> ${r.to ?? "nobody"}: ` +
            `${r.failoverMs ?? "timeout"} ms, ${r.failedConnections} failed connections, ` +
            `double answer ${r.doubleAnswerMs} ms` +
            (r.failures.length > 0 && r.failures.length <= 3
              ? ` (failed: ${r.failures.map((f) => `opened ${f.startMs} ms, gave up ${f.endMs} ms after the fault`).join("; ")})`
              : ""),
        );
        await cluster.heal(cluster.nodes.find((n) => n.name === r.from)!);
      } catch (e: unknown) {
        failedTrials++;
        console.log(`${fault.padEnd(8)} #${String(i + 1).padStart(2)} failed: ${e instanceof Error ? e.message : e}`);
        for (const n of cluster.nodes) await cluster.heal(n);
      }
      await cluster.waitReady(30_000);
    }
  }
} finally {
  await cluster.destroy();
}

const times = (f: Fault) => (results.get(f) ?? []).map((r) => r.failoverMs ?? Infinity);
const summary = {
  trials: TRIALS,
  sigkill_median_ms: median(times("sigkill")),
  sigkill_max_ms: max(times("sigkill")),
  linkdown_median_ms: median(times("linkdown")),
  linkdown_max_ms: max(times("linkdown")),
  sigterm_failed_connections: (results.get("sigterm") ?? []).reduce((n, r) => n + r.failedConnections, 0),
  sigterm_median_ms: median(times("sigterm")),
  apicut_trials: APICUT_TRIALS,
  apicut_median_ms: median(times("apicut")),
  // Faults only: during a SIGTERM hand-off both nodes answer on purpose until the leaver sees its successor.
  double_answer_ms_max: max(
    (["sigkill", "linkdown", "apicut"] as const).flatMap((f) => (results.get(f) ?? []).map((r) => r.doubleAnswerMs)),
  ),
  sigterm_overlap_ms_max: max((results.get("sigterm") ?? []).map((r) => r.doubleAnswerMs)),
  failed_trials: failedTrials,
  load_average_1m: Number(loadavg()[0]?.toFixed(1)),
};
console.log("");
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(28)} ${v}`);
console.log(JSON.stringify(summary));
