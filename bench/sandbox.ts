// Benchmark of the embedded API server: 10,000 Services + 10,000 EndpointSlices, 10 concurrent watchers.
// Services skip node ports (allocateLoadBalancerNodePorts: false): 30000-32767 holds only 2768 of them.
// Reports list latency, watch fan-out delay and raw status-PATCH throughput. The sandbox runs in its own
// process (`lodestone sandbox`), as it does for the controller benchmark. Last line: one JSON object.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { httpRequest } from "./http.ts";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { percentile } from "./stats.ts";

const SERVICES = Number(process.env["BENCH_SERVICES"] ?? 10_000);
const WATCHERS = 10;
const CONCURRENCY = 16;
const PATCHES = Number(process.env["BENCH_PATCHES"] ?? 10_000);
const FANOUT_ROUNDS = 200;
const NS = "bench";

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });
let base = "";

/** One request; a GET that meets a reset keep-alive socket is retried once (the client's race, not the server's). */
async function http(
  method: string,
  path: string,
  body?: unknown,
  type = "application/json",
): Promise<{ status: number; text: string }> {
  try {
    return await http1(method, path, body, type);
  } catch (err: unknown) {
    if (method !== "GET" || (err as { code?: string }).code !== "ECONNRESET") throw err;
    console.log(`retrying ${method} ${path} after ECONNRESET`);
    return http1(method, path, body, type);
  }
}

function http1(
  method: string,
  path: string,
  body?: unknown,
  type = "application/json",
): Promise<{ status: number; text: string }> {
  return httpRequest(agent, method, `${base}${path}`, body, type);
}

async function pool(n: number, worker: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await worker(next++);
    }),
  );
}

const pct = (xs: number[], p: number): number => (xs.length === 0 ? 0 : Number(percentile(xs, p).toFixed(2)));

let serverPid = 0;

/** CPU seconds the sandbox process has used (user + system), from /proc: robust where wall-clock rates are not. */
function serverCpuSeconds(): number {
  try {
    const fields = readFileSync(`/proc/${serverPid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

async function startServer(): Promise<() => void> {
  const child = spawn(
    process.execPath,
    [
      new URL("../bin/lodestone.js", import.meta.url).pathname,
      "sandbox",
      "--port",
      "0",
      "--kubeconfig",
      `/tmp/lodestone-bench-${process.pid}.kubeconfig`,
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  serverPid = child.pid ?? 0;
  base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sandbox did not start in 20 s")), 20_000);
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /sandbox API server: (\S+)/.exec(out);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`sandbox exited with ${String(code)}`)));
  });
  return () => child.kill("SIGTERM");
}

/**
 * The watchers run in a worker thread so their JSON handling does not slow the load generator. They report the
 * arrival time of each marker (performance.timeOrigin + now, comparable across threads).
 */
interface Watchers {
  readonly seen: Map<string, number>;
  close(): Promise<void>;
}

function watchers(rv: string): Promise<Watchers> {
  const seen = new Map<string, number>();
  const counts = new Map<string, number>();
  const worker = new Worker(new URL(import.meta.url), { workerData: { base, rv, n: WATCHERS } });
  return new Promise((resolve, reject) => {
    worker.on("error", reject);
    worker.on("message", (m: { ready?: boolean; mark?: string; at?: number }) => {
      if (m.ready === true) resolve({ seen, close: () => worker.terminate().then(() => undefined) });
      if (m.mark !== undefined && m.at !== undefined) {
        const c = (counts.get(m.mark) ?? 0) + 1;
        counts.set(m.mark, c);
        if (c === WATCHERS) seen.set(m.mark, m.at);
      }
    });
  });
}

function watcherThread(): void {
  const { base: url, rv, n } = workerData as { base: string; rv: string; n: number };
  let ready = 0;
  for (let w = 0; w < n; w++) {
    const req = request(`${url}/api/v1/services?watch=true&resourceVersion=${rv}`, { agent: false }, (res) => {
      if (++ready === n) parentPort?.postMessage({ ready: true });
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const m = /"mark":"([^"]+)"/.exec(line);
          if (m?.[1] !== undefined)
            parentPort?.postMessage({ mark: m[1], at: performance.timeOrigin + performance.now() });
        }
      });
    });
    req.on("error", () => undefined);
    req.end();
  }
}

async function main(): Promise<void> {
  const stop = await startServer();
  try {
    await http("POST", "/api/v1/namespaces", { metadata: { name: NS } });
    let t0 = performance.now();
    await pool(SERVICES, async (i) => {
      const r = await http("POST", `/api/v1/namespaces/${NS}/services`, {
        metadata: { name: `svc-${i}`, labels: { app: `a${i % 50}` } },
        spec: {
          type: "LoadBalancer",
          allocateLoadBalancerNodePorts: false,
          selector: { app: `a${i}` },
          ports: [{ name: "http", port: 80 }],
        },
      });
      if (r.status !== 201) throw new Error(`create service ${i}: ${r.status} ${r.text}`);
    });
    const createSvcPerSec = SERVICES / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    await pool(SERVICES, async (i) => {
      const r = await http("POST", `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
        metadata: { name: `svc-${i}-abcde`, labels: { "kubernetes.io/service-name": `svc-${i}` } },
        addressType: "IPv4",
        endpoints: [
          {
            addresses: [`10.244.${(i >> 8) & 255}.${i & 255}`],
            conditions: { ready: true },
            nodeName: `node-${i % 3}`,
          },
        ],
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      });
      if (r.status !== 201) throw new Error(`create slice ${i}: ${r.status} ${r.text}`);
    });
    const createSlicePerSec = SERVICES / ((performance.now() - t0) / 1000);
    console.log(
      `created ${SERVICES} Services (${createSvcPerSec.toFixed(0)}/s) and ${SERVICES} EndpointSlices (${createSlicePerSec.toFixed(0)}/s)`,
    );

    const listMs: number[] = [];
    const sliceListMs: number[] = [];
    let listBytes = 0;
    for (let i = 0; i < 5; i++) {
      let t = performance.now();
      const r = await http("GET", "/api/v1/services");
      listMs.push(performance.now() - t);
      listBytes = r.text.length;
      t = performance.now();
      await http("GET", "/apis/discovery.k8s.io/v1/endpointslices");
      sliceListMs.push(performance.now() - t);
    }
    console.log(
      `list services (${(listBytes / 1e6).toFixed(1)} MB): p50 ${pct(listMs, 50)} ms, max ${pct(listMs, 100)} ms; list endpointslices p50 ${pct(sliceListMs, 50)} ms`,
    );

    const rv = (
      JSON.parse((await http("GET", "/api/v1/namespaces/default/services?limit=1")).text) as {
        metadata: { resourceVersion: string };
      }
    ).metadata.resourceVersion;
    const watch = await watchers(rv);
    const fanout: number[] = [];
    for (let i = 0; i < FANOUT_ROUNDS; i++) {
      const mark = `m${i}`;
      const t = performance.timeOrigin + performance.now();
      await http(
        "PATCH",
        `/api/v1/namespaces/${NS}/services/svc-${i}`,
        { metadata: { labels: { mark } } },
        "application/merge-patch+json",
      );
      const deadline = performance.now() + 5000;
      while (!watch.seen.has(mark) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 0));
      fanout.push((watch.seen.get(mark) ?? t + 5000) - t);
    }
    console.log(
      `watch fan-out to ${WATCHERS} watchers (write + last delivery): p50 ${pct(fanout, 50)} ms, p99 ${pct(fanout, 99)} ms`,
    );

    const patchMs: number[] = [];
    let failures = 0;
    const cpu0 = serverCpuSeconds();
    t0 = performance.now();
    await pool(PATCHES, async (i) => {
      const t = performance.now();
      const r = await http(
        "PATCH",
        `/api/v1/namespaces/${NS}/services/svc-${i % SERVICES}/status`,
        { status: { loadBalancer: { ingress: [{ ip: `198.51.100.${i % 250}` }] } } },
        "application/merge-patch+json",
      );
      patchMs.push(performance.now() - t);
      if (r.status !== 200) failures++;
    });
    const patchPerSec = PATCHES / ((performance.now() - t0) / 1000);
    const cpuPerPatchUs = ((serverCpuSeconds() - cpu0) / PATCHES) * 1e6;
    console.log(
      `status PATCH, concurrency ${CONCURRENCY}, ${WATCHERS} watchers open: ${patchPerSec.toFixed(0)} req/s, p50 ${pct(patchMs, 50)} ms, p99 ${pct(patchMs, 99)} ms, failures ${failures}`,
    );
    console.log(
      `server CPU per status PATCH (incl. fan-out to ${WATCHERS} watchers): ${cpuPerPatchUs.toFixed(0)} µs = ${(1e6 / cpuPerPatchUs).toFixed(0)} req/s per core`,
    );
    await watch.close();
    console.log(
      JSON.stringify({
        bench: "sandbox",
        services: SERVICES,
        endpointSlices: SERVICES,
        watchers: WATCHERS,
        createServicesPerSec: Math.round(createSvcPerSec),
        listServicesP50Ms: pct(listMs, 50),
        listServicesMaxMs: pct(listMs, 100),
        listEndpointSlicesP50Ms: pct(sliceListMs, 50),
        watchFanoutP50Ms: pct(fanout, 50),
        watchFanoutP99Ms: pct(fanout, 99),
        statusPatchPerSec: Math.round(patchPerSec),
        statusPatchP50Ms: pct(patchMs, 50),
        statusPatchP99Ms: pct(patchMs, 99),
        statusPatchConcurrency: CONCURRENCY,
        serverCpuPerPatchUs: Math.round(cpuPerPatchUs),
        failures,
      }),
    );
  } finally {
    stop();
    agent.destroy();
  }
}

if (isMainThread) await main();
else watcherThread();
