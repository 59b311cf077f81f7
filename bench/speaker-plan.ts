// The speaker's planning pass alone, without I/O: N IPv6 Services over three nodes, as the speaker runs it
// (planSteps driven SLICE_MS per turn, then decideClaims). Prints CPU per pass and the longest single step run;
// the last line is JSON. Profile with `node --cpu-prof bench/speaker-plan.ts --services 10000`.
import { parseArgs } from "node:util";
import {
  type AnnouncePlan,
  type AnnouncePool,
  type AnnouncedService,
  followDeaths,
  planSteps,
} from "../src/core/announce-plan.ts";
import { type AnnouncerCandidate, type InterfaceSummary, candidatesSignature } from "../src/core/announcer-ranking.ts";
import { ip, parseIp } from "../src/core/ip.ts";
import { type ClaimState, decideClaims, initialClaimState } from "../src/core/speaker-state.ts";

const { values } = parseArgs({ options: { services: { type: "string", default: "10000" } } });
const n = Number(values.services);
const base = parseIp("2001:db8:1::")!.value;
const service = (i: number): AnnouncedService => ({
  key: `default/s${i}`,
  namespace: "default",
  ingressIps: [ip(6, base + BigInt(i + 1))],
  externalIps: [],
  localTraffic: false,
  endpointNodes: new Set(),
});
const services = Array.from({ length: n }, (_, i) => service(i));
const pool: AnnouncePool = {
  name: "bench",
  contains: (a) => a.family === 6 && a.value >> 16n === base >> 16n,
  allowsNamespace: () => true,
  externalIPs: false,
  gratuitous: { intervalMs: 1100, count: 5 },
};
const summary = (k: number): InterfaceSummary[] => [
  {
    name: "eth0",
    prefixes: [{ ip: parseIp(`2001:db8:1:0:ffff::${k}`)!, bits: 64 }],
    defaultRoute4: false,
    defaultRoute6: false,
  },
];
const candidates = (alive: readonly string[]): AnnouncerCandidate[] =>
  ["node1", "node2", "node3"].map((name, k) => ({
    name,
    alive: alive.includes(name),
    ready: true,
    labels: {},
    interfaces: summary(k + 1),
  }));
const SLICE_MS = 5;
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

let state: ClaimState = initialClaimState;
let previous: AnnouncePlan | undefined;
let longestStepMs = 0;
function pass(alive: readonly string[], now: number, list = services) {
  const nodes = candidates(alive);
  const context = candidatesSignature(nodes);
  const t0 = cpuMs();
  const steps = planSteps("node1", list, [pool], nodes, previous === undefined ? { context } : { context, previous });
  let slice = performance.now();
  let plan: AnnouncePlan;
  for (;;) {
    const r = steps.next();
    const took = performance.now() - slice;
    if (r.done === true) {
      plan = r.value;
      longestStepMs = Math.max(longestStepMs, took);
      break;
    }
    if (took >= SLICE_MS) {
      longestStepMs = Math.max(longestStepMs, took);
      slice = performance.now();
    }
  }
  const d = decideClaims(state, { self: "node1", now, plan, members: new Set(alive), settleMs: 350 });
  state = d.state;
  previous = plan;
  return { cpu_ms: +(cpuMs() - t0).toFixed(1), claims: d.claims.length, added: d.added.length };
}

const all = ["node1", "node2", "node3"];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
// Cold: the process's first plan (compiling, first hashes), as a daemon's first pass after start.
const cold = pass(all, 0);
const rounds = {
  full: [] as number[],
  same: [] as number[],
  oneMore: [] as number[],
  failover: [] as number[],
  follow: [] as number[],
};
longestStepMs = 0;
for (let r = 0; r < 5; r++) {
  // Warm, as a running daemon: a full plan (new context), an unchanged one, one Service more, a node lost.
  state = initialClaimState;
  previous = undefined;
  rounds.full.push(pass(all, 0).cpu_ms);
  rounds.same.push(pass(all, 100).cpu_ms);
  rounds.oneMore.push(pass(all, 200, [...services, service(n)]).cpu_ms);
  const beforeFailover = previous!;
  rounds.failover.push(pass(["node1", "node3"], 1000).cpu_ms);
  // The speaker's failover path: the previous plan's rankings without the dead node, no grouping.
  const survivors = candidates(["node1", "node3"]);
  const followFrom = cpuMs();
  const followed = followDeaths("node1", beforeFailover, survivors, candidatesSignature(survivors));
  rounds.follow.push(+(cpuMs() - followFrom).toFixed(1));
  if (followed === undefined) throw new Error("followDeaths gave no plan");
  pass(all, 2000);
}
console.log({ cold, rounds });
console.log(
  JSON.stringify({
    services: n,
    cold_full_plan_cpu_ms: cold.cpu_ms,
    full_plan_cpu_ms: median(rounds.full),
    unchanged_cpu_ms: median(rounds.same),
    one_service_more_cpu_ms: median(rounds.oneMore),
    failover_cpu_ms: median(rounds.failover),
    failover_followed_cpu_ms: median(rounds.follow),
    longest_step_ms: +longestStepMs.toFixed(2),
  }),
);
