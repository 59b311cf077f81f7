/**
 * BGP benchmark (root; FRR and BIRD 2 installed): the BGP lab of src/lab/bgp-lab.ts, three nodes each with its
 * own FRR peering with BIRD 2 in a router namespace, one dual-stack Service (externalTrafficPolicy Cluster).
 *
 *   - withdraw: a node's link cut inside its namespace (silent to the router) → the router's kernel route without
 *     that node, TRIALS times with BFD 100 ms × 3, NO_BFD_TRIALS times without BFD (hold time 9 s);
 *   - drain: SIGTERM to a node's daemon during new connections from a client behind the router every 20 ms, then
 *     the node's FRR stops and the node stops answering: failed connections, DRAIN_TRIALS times.
 *
 *   npm run bench:bgp          # TRIALS=20 DRAIN_TRIALS=20 NO_BFD_TRIALS=3 by default
 *
 * The last line is one JSON object. The machine's cores are shared with other work: figures are noisy.
 */
import { loadavg } from "node:os";
import { type BgpLab, bgpLabUnavailable, startBgpLab } from "../src/lab/bgp-lab.ts";
import { labUnavailable } from "../src/lab/netns.ts";
import { percentile } from "./stats.ts";

const why = labUnavailable(["birdc", "vtysh"]) ?? bgpLabUnavailable();
if (why !== undefined) {
  console.error(`bench:bgp: ${why}`);
  process.exit(1);
}
const TRIALS = Number(process.env["TRIALS"] ?? 20);
const DRAIN_TRIALS = Number(process.env["DRAIN_TRIALS"] ?? 20);
const NO_BFD_TRIALS = Number(process.env["NO_BFD_TRIALS"] ?? 3);

async function serviceIp(lab: BgpLab): Promise<string> {
  const ip = await lab.cluster.createService("bench", {
    ipFamilyPolicy: "RequireDualStack",
    ipFamilies: ["IPv4", "IPv6"],
  });
  await lab.waitRoutes(ip, (via) => via.length === 3, 30_000);
  return ip;
}

const withdraw: number[] = [];
const cutFailedSpan: number[] = [];
const noBfd: number[] = [];
let drainFailed = 0;
let drainBeforeExit = 0;
const drainWithdraw: number[] = [];
let ecmpPaths: number | undefined;
let failedTrials = 0;

const lab = await startBgpLab({ area: "bgpbench", logLevel: "warn" });
try {
  await lab.cluster.waitReady(30_000);
  const ip = await serviceIp(lab);
  ecmpPaths = (await lab.routes(ip)).length;
  for (let i = 0; i < TRIALS; i++) {
    const node = lab.cluster.nodes[i % lab.cluster.nodes.length]!;
    try {
      const r = await lab.measureCut(ip, node);
      withdraw.push(r.withdrawMs ?? Infinity);
      cutFailedSpan.push(r.failedSpanMs);
      console.log(
        `cut   #${String(i + 1).padStart(2)} ${node.name}: withdrawn ${r.withdrawMs ?? "never"} ms, ${r.failed} failed connections over ${r.failedSpanMs} ms, back in ${r.restoreMs} ms`,
      );
    } catch (e: unknown) {
      failedTrials++;
      console.log(`cut   #${i + 1} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (let i = 0; i < DRAIN_TRIALS; i++) {
    const node = lab.cluster.nodes[i % lab.cluster.nodes.length]!;
    try {
      const r = await lab.measureDrain(ip, node);
      drainFailed += r.failed;
      if (r.withdrawMs !== undefined && r.withdrawMs < r.exitMs) drainBeforeExit++;
      if (r.withdrawMs !== undefined) drainWithdraw.push(r.withdrawMs);
      console.log(
        `drain #${String(i + 1).padStart(2)} ${node.name}: withdrawn ${r.withdrawMs ?? "never"} ms, exited ${r.exitMs} ms, ${r.failed}/${r.attempts} failed`,
      );
    } catch (e: unknown) {
      failedTrials++;
      console.log(`drain #${i + 1} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
} finally {
  await lab.destroy();
}

if (NO_BFD_TRIALS > 0) {
  const slow = await startBgpLab({ area: "bgpbench", bfd: false, holdTime: 9, logLevel: "warn" });
  try {
    await slow.cluster.waitReady(30_000);
    const ip = await serviceIp(slow);
    for (let i = 0; i < NO_BFD_TRIALS; i++) {
      const node = slow.cluster.nodes[i % slow.cluster.nodes.length]!;
      try {
        const r = await slow.measureCut(ip, node, 20_000);
        noBfd.push(r.withdrawMs ?? Infinity);
        console.log(
          `no-BFD cut #${i + 1} ${node.name}: withdrawn ${r.withdrawMs ?? "never"} ms, ${r.failed} failed connections over ${r.failedSpanMs} ms`,
        );
      } catch (e: unknown) {
        failedTrials++;
        console.log(`no-BFD cut #${i + 1} failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } finally {
    await slow.destroy();
  }
}

const summary = {
  trials: TRIALS,
  withdraw_ms_p50: percentile(withdraw, 50),
  withdraw_ms_p99: percentile(withdraw, 99),
  withdraw_ms_max: Math.max(...withdraw),
  cut_failed_span_ms_max: Math.max(0, ...cutFailedSpan),
  withdraw_ms_no_bfd: noBfd,
  drain_trials: DRAIN_TRIALS,
  drain_failed: drainFailed,
  drain_withdrawn_before_exit: drainBeforeExit,
  drain_withdraw_ms_p50: percentile(drainWithdraw, 50),
  ecmp_paths: ecmpPaths ?? 0,
  failed_trials: failedTrials,
  load_average_1m: Number(loadavg()[0]?.toFixed(1)),
};
console.log("");
for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(28)} ${JSON.stringify(v)}`);
console.log(JSON.stringify(summary));
