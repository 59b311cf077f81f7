import { afterEach, describe, expect, it } from "vitest";
import pino from "pino";
import { createMetricsRegistry } from "../../src/http/metrics.ts";
import { emptyLag, lagQuantile, observeLag } from "../../src/core/loop-lag.ts";
import { startHealthServer, type HealthServer } from "../../src/http/server.ts";
import { emptyTelemetry, type ProbeResult, type TelemetrySnapshot } from "../../src/core/telemetry.ts";

const logger = pino({ level: "silent" });
let server: HealthServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(snapshot: () => TelemetrySnapshot, ready: ProbeResult = { ok: true, reasons: [] }) {
  server = await startHealthServer({
    port: 0,
    host: "127.0.0.1",
    logger,
    snapshot,
    live: () => ({ ok: true, reasons: [] }),
    ready: () => ready,
  });
  const base = `http://127.0.0.1:${server.port}`;
  return (path: string) => fetch(base + path);
}

/** The value of one sample in Prometheus text, by metric name and exact label set. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(labels === "" ? `${name} ` : `${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("health server", () => {
  it("reports pool sizes exactly, IPv6 /64 included, and availability", async () => {
    const get = await serve(() => ({
      ...emptyTelemetry,
      pools: [
        { pool: "lan", family: 4, total: 256n, inUse: 3 },
        { pool: "lan6", family: 6, total: 1n << 64n, inUse: 1 },
      ],
      servicesAllocated: 3,
      leader: true,
    }));
    const text = await (await get("/metrics")).text();
    expect(sample(text, "lodestone_pool_addresses_total", 'pool="lan",family="IPv4"')).toBe(256);
    expect(sample(text, "lodestone_pool_addresses_available", 'pool="lan",family="IPv4"')).toBe(253);
    expect(sample(text, "lodestone_pool_addresses_total", 'pool="lan6",family="IPv6"')).toBe(2 ** 64);
    expect(sample(text, "lodestone_pool_addresses_in_use", 'pool="lan6",family="IPv6"')).toBe(1);
    expect(sample(text, "lodestone_services_allocated")).toBe(3);
    expect(sample(text, "lodestone_leader")).toBe(1);
  });

  it("takes a fresh snapshot on every scrape, counters included", async () => {
    let failures = 0;
    const get = await serve(() => ({
      ...emptyTelemetry,
      allocationFailures: { LODESTONE_E_POOL_EXHAUSTED: failures },
    }));
    failures = 2;
    const first = await (await get("/metrics")).text();
    failures = 5;
    const second = await (await get("/metrics")).text();
    const name = "lodestone_allocation_failures_total";
    expect(sample(first, name, 'reason="LODESTONE_E_POOL_EXHAUSTED"')).toBe(2);
    expect(sample(second, name, 'reason="LODESTONE_E_POOL_EXHAUSTED"')).toBe(5);
    expect(second).toContain(`# TYPE ${name} counter`);
  });

  it.each([
    { desc: "ready", readiness: { ok: true, reasons: [] }, code: 200, body: /^ok/ },
    {
      desc: "not synced",
      readiness: { ok: false, reasons: ["waiting for first sync"] },
      code: 503,
      body: /waiting for first sync/,
    },
  ])("answers /readyz when $desc", async ({ readiness, code, body }) => {
    const get = await serve(() => emptyTelemetry, readiness);
    const res = await get("/readyz");
    expect(res.status).toBe(code);
    expect(await res.text()).toMatch(body);
    expect((await get("/healthz")).status).toBe(200);
  });

  it("answers unknown paths with 404 and keeps serving", async () => {
    const get = await serve(() => emptyTelemetry);
    expect((await get("/nope")).status).toBe(404);
    expect((await get("/healthz")).status).toBe(200);
  });
});

describe("Events dropped in /metrics", () => {
  it("are counted per component as the recorders report them", async () => {
    const text = await createMetricsRegistry(() => ({
      ...emptyTelemetry,
      eventsDropped: { controller: 3, speaker: 2 },
    })).metrics();
    expect(text).toMatch(/^lodestone_events_dropped_total\{component="controller"\} 3$/m);
    expect(text).toMatch(/^lodestone_events_dropped_total\{component="speaker"\} 2$/m);
  });
});

describe("event-loop lag and duelling announcements in /metrics", () => {
  it("exports the sampler's histogram as Prometheus buckets, cumulative, with sum and count", async () => {
    let lag = emptyLag([0.01, 0.1]);
    for (const s of [0.001, 0.004, 0.05, 0.3]) lag = observeLag(lag, s);
    const text = await createMetricsRegistry(() => ({
      ...emptyTelemetry,
      loopLag: lag,
      duellingAnnouncements: 7,
    })).metrics();
    expect(text).toMatch(/^# TYPE lodestone_event_loop_lag_seconds histogram$/m);
    expect(text).toMatch(/^lodestone_event_loop_lag_seconds_bucket\{le="0.01"\} 2$/m);
    expect(text).toMatch(/^lodestone_event_loop_lag_seconds_bucket\{le="0.1"\} 3$/m);
    expect(text).toMatch(/^lodestone_event_loop_lag_seconds_bucket\{le="\+Inf"\} 4$/m);
    expect(text).toMatch(/^lodestone_event_loop_lag_seconds_count 4$/m);
    expect(text).toMatch(/^lodestone_event_loop_lag_seconds_sum 0.355$/m);
    expect(text).toMatch(/^lodestone_duelling_announcements_total 7$/m);
  });
});

describe("lagQuantile", () => {
  it.each([
    { desc: "no samples", samples: [], q: 0.99, want: 0 },
    { desc: "all small", samples: [0.001, 0.001, 0.003], q: 0.99, want: 0.005 },
    { desc: "p50 of a mix", samples: [0.001, 0.001, 0.3, 0.3], q: 0.5, want: 0.002 },
    { desc: "beyond the last bound", samples: [9], q: 0.99, want: Infinity },
  ])("$desc", ({ samples, q, want }) => {
    let h = emptyLag();
    for (const s of samples) h = observeLag(h, s);
    expect(lagQuantile(h, emptyLag(), q)).toBe(want);
  });

  it("counts only the samples between two snapshots", () => {
    let before = emptyLag();
    for (let i = 0; i < 100; i++) before = observeLag(before, 0.4);
    let after = before;
    for (let i = 0; i < 10; i++) after = observeLag(after, 0.001);
    expect(lagQuantile(after, before, 1)).toBe(0.002);
  });
});
