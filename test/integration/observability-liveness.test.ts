// /healthz against the real embedded API server: it fails when a unit of work hangs past its limit (a restart
// would free it) and recovers when the work completes, but stays 200 while the API server is unreachable (a
// restart would not help: the new process would be just as cut off).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingress, lb, pools, startEnv, until, type Env } from "./controller-env.ts";
import type { Daemon } from "../../src/app/daemon.ts";

let env: Env;
let daemon: Daemon;
const APP = "live";
const STALL_MS = 800;

beforeAll(async () => {
  env = await startEnv([APP]);
  await pools(env.core, "live-pools", "- name: live\n  addresses: [192.0.2.40/30]\n");
  daemon = await env.daemon({ metricsPort: 0, stallMs: STALL_MS });
  await until("ready", () => (daemon.readiness().ok && daemon.isLeader() ? true : undefined));
});
afterAll(async () => {
  env.sandbox.faults.clear();
  if (!env.sandbox.faults.state().serving) await env.sandbox.faults.resume();
  await env.stop();
});

async function healthz(): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${daemon.metricsPort!}/healthz`);
  return { status: res.status, text: await res.text() };
}

describe("liveness of a running daemon", () => {
  it("fails while a status write hangs past the stall limit, and recovers once it completes", async () => {
    expect(await healthz()).toEqual({ status: 200, text: "ok\n" });
    // The write takes 3x the limit but finishes well inside the client's 10 s timeout.
    env.sandbox.faults.setLatency(3 * STALL_MS, { verb: "patch", resource: "services/status" });
    await lb(env.core, APP, "slow");
    const hung = await until("/healthz 503", async () => {
      const r = await healthz();
      return r.status === 503 ? r : undefined;
    });
    expect(hung.text).toMatch(/^not live: controller workqueue: one unit of work has run for [\d.]+ s \(limit 0.8 s\)/);
    env.sandbox.faults.setLatency(0);
    await until("/healthz 200 again", async () => ((await healthz()).status === 200 ? true : undefined));
    expect(await until("the IP", () => ingress(env.core, APP, "slow"))).toEqual(["192.0.2.40"]);
  });

  it("stays live while the API server refuses every connection, its informers restarting", async () => {
    const restarts = (): number => Object.values(daemon.telemetry().informerRestarts).reduce((a, b) => a + b, 0);
    const before = restarts();
    await env.sandbox.faults.stopServing();
    const statuses = new Set<number>();
    // Longer than the stall limit several times over, and long enough for every informer to restart.
    const end = Date.now() + 6 * STALL_MS;
    while (Date.now() < end) {
      statuses.add((await healthz()).status);
      await new Promise((r) => setTimeout(r, 50));
    }
    const during = restarts();
    await env.sandbox.faults.resume();
    expect([...statuses]).toEqual([200]);
    expect(during).toBeGreaterThan(before);
    expect(daemon.liveness()).toEqual({ ok: true, reasons: [] });
  });
});
