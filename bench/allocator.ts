// Allocator benchmark (not a test): µs per allocation from a /8 IPv4 and a /64 IPv6 pool at 1k, 10k and 100k
// addresses already allocated, and the heap it takes. The machine is shared by several jobs: wall-clock figures
// are noisy, so CPU time per allocation is reported too, next to a calibration loop (one object + one Map insert)
// that shows how fast this machine is right now. Last line: one JSON object with the figures.
//
// What "per allocation" includes: every allocation keeps its objects alive, and copying them out of the young
// generation is part of what it costs. So a timed window is long (WINDOW allocations: several young-generation
// collections), starts right after a forced young-generation collection (no earlier debt) and ends with one
// (its own debt paid inside the window); a full collection is never forced right before it (the sweeping it
// leaves to helper threads would be charged to the window). CPU time is the whole process's (GC helper threads and page faults
// included); the part the collector paused the program is reported beside it. Each figure is the median of
// ROUNDS runs (`--rounds N`).
//
// The target (docs/performance.md) is set under Node's default heap settings, so that is what runs by default;
// `--node-flags="FLAGS"` times in a child process under other flags (e.g. the daemon's `#!` line), because the
// collector's settings change what keeping an allocation costs more than the allocator's code does.
//
// `--count FAMILY:FILL:THEN` only allocates (no timing, no output, in this process with the flags it was given):
// FILL addresses, then THEN more, with the requests for FILL + max(THEN, 60k) made first. Two runs under
// `valgrind --tool=callgrind` that differ only in THEN give instructions per allocation, a figure that does not
// depend on the machine's load (see docs/performance.md, "Allocator").
import { spawnSync } from "node:child_process";
import { PerformanceObserver } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Allocator } from "../src/core/allocator.ts";
import { parsePoolConfigMap } from "../src/core/config.ts";
import type { Family } from "../src/core/ip.ts";
import type { ServiceRequest } from "../src/core/service-request.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as (options?: { type: "minor" | "major" }) => void;

const TARGET = 100_000;
const CHECKPOINTS = [1_000, 10_000, 100_000];
/** Allocations timed after each checkpoint: some 35 MB allocated, several young-generation collections. */
const WINDOW = 50_000;
/** The pool of the fragmentation run: 2^17 addresses, filled, then every third freed (43,691 holes). */
const SMALL_POOL_BITS = 17;
const HOLES_TIMED = 40_000;
const args = parseArgs({
  options: { rounds: { type: "string", default: "3" }, count: { type: "string" }, "node-flags": { type: "string" } },
}).values;
const ROUNDS = Number(args.rounds);

/** The targets: CPU µs per allocation at 100k allocated, and 100k / 1k (flat: cost does not grow with the count). */
const TARGET_US = 5;
const TARGET_FLATNESS = 1.5;

/** Set in the child that times: it runs under the chosen flags. */
const CHILD = "LODESTONE_BENCH_ALLOCATOR_CHILD";
const otherFlags = (args["node-flags"] ?? "").split(/\s+/).filter((w) => w !== "");
if (args.count === undefined && process.env[CHILD] === undefined && otherFlags.length > 0) {
  const flags = otherFlags;
  const child = spawnSync(process.execPath, [...flags, process.argv[1] ?? "", ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, [CHILD]: "1" },
  });
  process.exit(child.status ?? 1);
}

function allocator(family: Family, hostBits = family === 4 ? 24 : 64): Allocator {
  const addresses = family === 4 ? `[10.0.0.0/${32 - hostBits}]` : `["2001:db8::/${128 - hostBits}"]`;
  const r = parsePoolConfigMap({
    namespace: "bench",
    name: "pools",
    data: { "pools.yaml": `- {name: big, addresses: ${addresses}}` },
  });
  return new Allocator(r.pools);
}

const request = (i: number, family: Family): ServiceRequest => ({
  namespace: `ns-${i % 100}`,
  name: `svc-${i}`,
  ipFamilies: [family],
  ipFamilyPolicy: "SingleStack",
  requestedIps: [],
  ports: [{ port: 80, protocol: "TCP" }],
  externalTrafficPolicy: "Cluster",
  selector: {},
  labels: {},
  namespaceLabels: {},
});
const key = (r: ServiceRequest): string => `${r.namespace}/${r.name}`;

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

interface Timing {
  wall: number;
  cpu: number;
  /** µs per call the garbage collector paused the program (part of wall and cpu). */
  gc: number;
}

/** Every collection's pause so far; the observer hears of them a little later, so `time` waits and filters. */
const pauses: { start: number; ms: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) pauses.push({ start: e.startTime, ms: e.duration });
}).observe({ entryTypes: ["gc"] });
const later = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

/** µs per call of `body(i)` for i in [0, n): wall clock, CPU time of this process, GC pauses. */
async function time(n: number, body: (i: number) => void): Promise<Timing> {
  gc({ type: "minor" });
  const start = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) body(i);
  gc({ type: "minor" });
  const c = process.cpuUsage(c0);
  const end = performance.now();
  await later();
  const gcMs = pauses.filter((p) => p.start >= start && p.start < end).reduce((sum, p) => sum + p.ms, 0);
  return { wall: ((end - start) * 1000) / n, cpu: (c.user + c.system) / n, gc: (gcMs * 1000) / n };
}

interface Run {
  at: Record<number, Timing>;
  heapMb: number;
  fragmented: Timing;
}

/**
 * Allocates up to each checkpoint; times the WINDOW allocations that follow it (then releases them again). The
 * heap figure is the allocator's alone: the request objects exist before `before` is taken.
 */
async function run(family: Family): Promise<Run> {
  const requests = Array.from({ length: Math.max(TARGET + WINDOW, 2 ** SMALL_POOL_BITS + HOLES_TIMED) }, (_, i) =>
    request(i, family),
  );
  const before = heapMb();
  const a = allocator(family);
  const at: Record<number, Timing> = {};
  let n = 0;
  let heap = 0;
  for (const checkpoint of CHECKPOINTS) {
    for (; n < checkpoint; n++) if (!a.allocate(requests[n]!).ok) throw new Error(`allocation ${n} failed`);
    if (checkpoint === TARGET) heap = heapMb() - before;
    at[checkpoint] = await time(WINDOW, (i) => a.allocate(requests[n + i]!));
    for (let i = 0; i < WINDOW; i++) a.release(key(requests[n + i]!));
  }
  return { at, heapMb: heap, fragmented: await fragmentation(family, requests) };
}

/**
 * A pool filled up, then every third address freed: the cursor wraps to the start of the pool and every
 * allocation has to find the next hole (a jump over a span of used addresses).
 */
async function fragmentation(family: Family, requests: readonly ServiceRequest[]): Promise<Timing> {
  const size = 2 ** SMALL_POOL_BITS;
  const a = allocator(family, SMALL_POOL_BITS);
  for (let n = 0; n < size; n++) if (!a.allocate(requests[n]!).ok) throw new Error(`allocation ${n} failed`);
  for (let n = 0; n < size; n += 3) a.release(key(requests[n]!));
  const fresh = requests.slice(size, size + HOLES_TIMED);
  return time(HOLES_TIMED, (i) => {
    if (!a.allocate(fresh[i]!).ok) throw new Error(`allocation into hole ${i} failed`);
  });
}

async function calibrate(): Promise<Timing> {
  const m = new Map<string, object>();
  return time(TARGET, (i) => m.set(`k${i}`, { i }));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;
const medianTiming = (ts: Timing[]): Timing => ({
  wall: median(ts.map((t) => t.wall)),
  cpu: median(ts.map((t) => t.cpu)),
  gc: median(ts.map((t) => t.gc)),
});
/** Figure by figure, the median over rounds (a fresh allocator each round). */
async function runs(family: Family): Promise<Run> {
  const all: Run[] = [];
  for (let r = 0; r < ROUNDS; r++) all.push(await run(family));
  return {
    at: Object.fromEntries(CHECKPOINTS.map((c) => [c, medianTiming(all.map((x) => x.at[c]!))])),
    heapMb: median(all.map((x) => x.heapMb)),
    fragmented: medianTiming(all.map((x) => x.fragmented)),
  };
}

/** The `--count` mode: allocations only, for counting instructions under callgrind. */
function count(spec: string): void {
  const [family, fill, then] = spec.split(":").map(Number);
  if ((family !== 4 && family !== 6) || fill === undefined || then === undefined) {
    throw new Error(`--count wants FAMILY:FILL:THEN, e.g. 4:20000:60000, not "${spec}"`);
  }
  const requests = Array.from({ length: fill + Math.max(then, 60_000) }, (_, i) => request(i, family));
  const a = allocator(family);
  for (let n = 0; n < fill + then; n++) if (!a.allocate(requests[n]!).ok) throw new Error(`allocation ${n} failed`);
}
if (args.count !== undefined) {
  count(args.count);
  process.exit(0);
}

const round = (x: number): number => Math.round(x * 100) / 100;
const show = (t: Timing): string => `${round(t.wall)} (cpu ${round(t.cpu)}, gc ${round(t.gc)})`;
await calibrate();
await run(4); // warm-up: JIT-compile the allocator before measuring
const v4 = await runs(4);
const v6 = await runs(6);
const cal = await calibrate();
const nodeFlags = process.execArgv.join(" ");
console.log(
  `µs per allocation, wall clock (CPU time of the process, GC pauses); median of ${ROUNDS} rounds of ` +
    `${WINDOW / 1000}k allocations; machine shared with other jobs, so expect noise; ` +
    `node flags: ${nodeFlags === "" ? "none (Node's defaults)" : nodeFlags}`,
);
for (const [label, small, r] of [
  ["IPv4 /8", `/${32 - SMALL_POOL_BITS}`, v4],
  ["IPv6 /64", `/${128 - SMALL_POOL_BITS}`, v6],
] as const) {
  console.log(
    `  ${label.padEnd(9)} at ${CHECKPOINTS.map((c) => `${c / 1000}k: ${show(r.at[c]!)}`).join(", ")}; ` +
      `into holes (${small} full, every 3rd freed): ` +
      `${show(r.fragmented)}; heap at 100k: ${round(r.heapMb)} MB (the requests not counted)`,
  );
}
console.log(`  calibration (one object + one Map insert): ${show(cal)}`);
/** 100k / 1k of CPU time per allocation: 1 is flat. */
const flatness = (r: Run): number => r.at[100_000]!.cpu / r.at[1_000]!.cpu;
const met = [v4, v6].every((r) => r.at[100_000]!.cpu <= TARGET_US && flatness(r) <= TARGET_FLATNESS);
console.log(
  `  target: CPU at 100k <= ${TARGET_US} µs and 100k/1k <= ${TARGET_FLATNESS} (IPv4 ${round(flatness(v4))}, ` +
    `IPv6 ${round(flatness(v6))}): ${met ? "met" : "NOT met"}`,
);
console.log(
  JSON.stringify({
    target_met: met,
    flatness_100k_over_1k_v4: round(flatness(v4)),
    flatness_100k_over_1k_v6: round(flatness(v6)),
    us_per_alloc_at_1k_v4: round(v4.at[1_000]!.wall),
    us_per_alloc_at_10k_v4: round(v4.at[10_000]!.wall),
    us_per_alloc_at_100k_v4: round(v4.at[100_000]!.wall),
    us_per_alloc_at_1k_v6: round(v6.at[1_000]!.wall),
    us_per_alloc_at_10k_v6: round(v6.at[10_000]!.wall),
    us_per_alloc_at_100k_v6: round(v6.at[100_000]!.wall),
    cpu_us_per_alloc_at_1k_v4: round(v4.at[1_000]!.cpu),
    cpu_us_per_alloc_at_10k_v4: round(v4.at[10_000]!.cpu),
    cpu_us_per_alloc_at_100k_v4: round(v4.at[100_000]!.cpu),
    cpu_us_per_alloc_at_1k_v6: round(v6.at[1_000]!.cpu),
    cpu_us_per_alloc_at_10k_v6: round(v6.at[10_000]!.cpu),
    cpu_us_per_alloc_at_100k_v6: round(v6.at[100_000]!.cpu),
    gc_us_per_alloc_at_100k_v4: round(v4.at[100_000]!.gc),
    gc_us_per_alloc_at_100k_v6: round(v6.at[100_000]!.gc),
    us_per_alloc_fragmented_v4: round(v4.fragmented.wall),
    us_per_alloc_fragmented_v6: round(v6.fragmented.wall),
    cpu_us_per_alloc_fragmented_v4: round(v4.fragmented.cpu),
    cpu_us_per_alloc_fragmented_v6: round(v6.fragmented.cpu),
    heap_mb_at_100k: round(Math.max(v4.heapMb, v6.heapMb)),
    calibration_us: round(cal.wall),
    calibration_cpu_us: round(cal.cpu),
    node_flags: nodeFlags,
  }),
);
