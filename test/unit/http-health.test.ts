import { afterEach, describe, expect, it } from "vitest";
import pino from "pino";
import { createMetricsRegistry } from "../../src/http/metrics.ts";
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
