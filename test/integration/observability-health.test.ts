// What an operator's probes and Prometheus see from a running daemon: /readyz stays 503 with its reasons until
// the first full sync and while no pool is usable, /healthz answers throughout, and /metrics moves with the
// cluster (pool usage, Services allocated, failures by reason, stale ConfigMaps).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lb, NS, pools, startEnv, until, type Env } from "./controller-env.ts";

let env: Env;
const APP = "obs";

beforeAll(async () => {
  env = await startEnv([APP]);
});
afterAll(async () => {
  await env.stop();
});

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, text: await res.text() };
}

/** One sample of a metric with the given labels, or undefined when absent. */
function sample(metrics: string, name: string, labels = ""): number | undefined {
  const escaped = labels.replace(/[{}"]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${name}${escaped} (\\S+)$`, "m").exec(metrics);
  return m === null ? undefined : Number(m[1]);
}

describe("health and metrics of a running daemon", () => {
  it("is not ready before the first list, nor without a usable pool; ready once both hold", async () => {
    // The first LIST of Services is slow: the daemon must not claim readiness before it has seen them all.
    env.sandbox.faults.setLatency(1500, { verb: "list", resource: "services" });
    const d = await env.daemon({ metricsPort: 0 });
    const port = d.metricsPort!;
    const early = await get(port, "/readyz");
    expect(early.status).toBe(503);
    expect(early.text).toContain("Services not listed yet");
    expect((await get(port, "/healthz")).status).toBe(200);
    env.sandbox.faults.setLatency(0);

    const noPools = await until("the no-pool reason", async () => {
      const r = await get(port, "/readyz");
      return r.text.includes("no usable address pool") ? r : undefined;
    });
    expect(noPools.status).toBe(503);

    await pools(env.core, "obs-pools", "- name: obs\n  addresses: [192.0.2.16/30]\n");
    await until("ready", async () => ((await get(port, "/readyz")).status === 200 ? true : undefined));
  });

  it("moves pool usage, allocations, failures by reason and config staleness in /metrics", async () => {
    const d = env.daemons[0]!;
    const port = d.metricsPort!;
    const scrape = async (): Promise<string> => (await get(port, "/metrics")).text;
    // /readyz turns ready on the parsed config; the pool gauges follow once the leader has built its allocator.
    const before = await until("the pool gauges", async () => {
      const text = await scrape();
      return sample(text, "lodestone_pool_addresses_total", '{pool="obs",family="IPv4"}') === undefined
        ? undefined
        : text;
    });
    expect(sample(before, "lodestone_pool_addresses_total", '{pool="obs",family="IPv4"}')).toBe(4);
    expect(sample(before, "lodestone_pool_addresses_in_use", '{pool="obs",family="IPv4"}')).toBe(0);

    for (let i = 0; i < 5; i++) await lb(env.core, APP, `svc-${i}`);
    const after = await until("four allocations and one failure", async () => {
      const m = await scrape();
      return sample(m, "lodestone_pool_addresses_in_use", '{pool="obs",family="IPv4"}') === 4 &&
        (sample(m, "lodestone_allocation_failures_total", '{reason="LODESTONE_E_POOL_EXHAUSTED"}') ?? 0) >= 1
        ? m
        : undefined;
    });
    expect(sample(after, "lodestone_pool_addresses_available", '{pool="obs",family="IPv4"}')).toBe(0);
    expect(sample(after, "lodestone_services_allocated")).toBe(4);
    expect(sample(after, "lodestone_leader")).toBe(1);
    expect(sample(after, "lodestone_events_dropped_total", '{component="controller"}')).toBe(0);

    // A broken edit keeps the last good pool (nothing is taken away) and shows as stale.
    await pools(env.core, "obs-pools", "- name: obs\n  addresses: [not-an-address]\n");
    const stale = await until("stale config", async () => {
      const m = await scrape();
      return sample(m, "lodestone_config_stale", `{configmap="${NS}/obs-pools"}`) === 1 ? m : undefined;
    });
    expect(sample(stale, "lodestone_pool_addresses_in_use", '{pool="obs",family="IPv4"}')).toBe(4);
    expect(sample(stale, "lodestone_services_allocated")).toBe(4);
  });
});
