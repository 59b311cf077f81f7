// Allocator benchmark (not a test): µs per allocation from a /8 IPv4 and a /64 IPv6 pool at 1k, 10k and 100k
// addresses already allocated, and the heap it takes. The machine is shared by several jobs: wall-clock figures
// are noisy, so CPU time per allocation is reported too, next to a calibration loop (one object + one Map insert)
// that shows how fast this machine is right now. Last line: one JSON object with the figures.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Allocator } from "../src/core/allocator.ts";
import { parsePoolConfigMap } from "../src/core/config.ts";
import type { Family } from "../src/core/ip.ts";
import type { ServiceRequest } from "../src/core/service-request.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const TARGET = 100_000;
const CHECKPOINTS = [1_000, 10_000, 100_000];
const WINDOW = 5_000;

function allocator(family: Family): Allocator {
  const addresses = family === 4 ? "[10.0.0.0/8]" : '["2001:db8::/64"]';
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
}

/** µs per call of `body(i)` for i in [0, n): wall clock and CPU time of this process. */
function time(n: number, body: (i: number) => void): Timing {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) body(i);
  const wall = Number(process.hrtime.bigint() - t0) / 1000 / n;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / n };
}

/** Allocates up to each checkpoint; times the WINDOW allocations that follow it (then releases them again). */
function run(family: Family): { at: Record<number, Timing>; heapMb: number; fragmented: Timing } {
  const requests = Array.from({ length: TARGET + WINDOW }, (_, i) => request(i, family));
  const before = heapMb();
  const a = allocator(family);
  const at: Record<number, Timing> = {};
  let n = 0;
  let heap = 0;
  for (const checkpoint of CHECKPOINTS) {
    for (; n < checkpoint; n++) if (!a.allocate(requests[n]!).ok) throw new Error(`allocation ${n} failed`);
    if (checkpoint === TARGET) heap = heapMb() - before;
    gc();
    at[checkpoint] = time(WINDOW, (i) => a.allocate(requests[n + i]!));
    for (let i = 0; i < WINDOW; i++) a.release(key(requests[n + i]!));
  }
  // Fragmentation: free every third address, then allocations must find the holes behind the cursor.
  for (let i = 0; i < TARGET; i += 3) a.release(key(requests[i]!));
  gc();
  const fragmented = time(WINDOW, (i) => a.allocate(requests[TARGET + i]!));
  return { at, heapMb: heap, fragmented };
}

function calibrate(): Timing {
  const m = new Map<string, object>();
  return time(TARGET, (i) => m.set(`k${i}`, { i }));
}

const round = (x: number): number => Math.round(x * 100) / 100;
const show = (t: Timing): string => `${round(t.wall)} (cpu ${round(t.cpu)})`;
calibrate();
run(4); // warm-up: JIT-compile the allocator before measuring
const v4 = run(4);
const v6 = run(6);
const cal = calibrate();
console.log("µs per allocation, wall clock (CPU time); machine shared with other jobs, so expect noise");
for (const [label, r] of [
  ["IPv4 /8", v4],
  ["IPv6 /64", v6],
] as const) {
  console.log(
    `  ${label.padEnd(9)} at ${CHECKPOINTS.map((c) => `${c / 1000}k: ${show(r.at[c]!)}`).join(", ")}; ` +
      `every 3rd freed: ${show(r.fragmented)}; heap at 100k: ${round(r.heapMb)} MB (incl. the 100k requests)`,
  );
}
console.log(`  calibration (one object + one Map insert): ${show(cal)}`);
console.log(
  JSON.stringify({
    us_per_alloc_at_1k_v4: round(v4.at[1_000]!.wall),
    us_per_alloc_at_10k_v4: round(v4.at[10_000]!.wall),
    us_per_alloc_at_100k_v4: round(v4.at[100_000]!.wall),
    us_per_alloc_at_1k_v6: round(v6.at[1_000]!.wall),
    us_per_alloc_at_10k_v6: round(v6.at[10_000]!.wall),
    us_per_alloc_at_100k_v6: round(v6.at[100_000]!.wall),
    cpu_us_per_alloc_at_100k_v4: round(v4.at[100_000]!.cpu),
    cpu_us_per_alloc_at_100k_v6: round(v6.at[100_000]!.cpu),
    us_per_alloc_fragmented_v4: round(v4.fragmented.wall),
    us_per_alloc_fragmented_v6: round(v6.fragmented.wall),
    heap_mb_at_100k: round(Math.max(v4.heapMb, v6.heapMb)),
    calibration_us: round(cal.wall),
  }),
);
