import { describe, expect, it } from "vitest";
import pino from "pino";
import type { KubeClient, KubeRequest, KubeResponse } from "../../src/kube/client.ts";
import { createLeaderElector, leaseTimingProblems, type Clock, type LeaseTimings } from "../../src/kube/lease.ts";

const logger = pino({ level: "silent" });
const timings: LeaseTimings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

/** A manual clock: timers fire only inside `advance`, with microtasks flushed in between. */
class FakeClock implements Clock {
  t = 0;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;
  now = (): number => this.t;
  wall = (): Date => new Date(Date.UTC(2026, 0, 1) + this.t);
  setTimer = (ms: number, fn: () => void): (() => void) => {
    const id = ++this.#id;
    this.#timers.push({ at: this.t + ms, fn, id });
    return () => (this.#timers = this.#timers.filter((x) => x.id !== id));
  };
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await flush();
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (next === undefined || next.at > end) break;
      this.#timers.shift();
      this.t = next.at;
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

/** One Lease store with optimistic concurrency; each client can be cut off (answers 0) or made to hang. */
class LeaseStore {
  obj: { metadata: { resourceVersion: string; name: string }; spec?: Record<string, unknown> } | undefined;
  rv = 1;
  client(state: { mode: "ok" | "down" | "hang" }): KubeClient {
    return {
      request: (req: KubeRequest): Promise<KubeResponse> => {
        if (state.mode === "hang") return new Promise(() => undefined);
        if (state.mode === "down") return Promise.resolve({ status: 0, body: { message: "refused" } });
        return Promise.resolve(this.handle(req));
      },
      watch: () => Promise.reject(new Error("no watch here")),
      close: () => Promise.resolve(),
    };
  }
  handle(req: KubeRequest): KubeResponse {
    const copy = (): unknown => structuredClone(this.obj);
    if (req.method === "GET") return this.obj === undefined ? { status: 404, body: {} } : { status: 200, body: copy() };
    const body = structuredClone(req.body) as NonNullable<LeaseStore["obj"]>;
    if (req.method === "POST") {
      if (this.obj !== undefined) return { status: 409, body: {} };
      this.obj = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
      return { status: 201, body: copy() };
    }
    if (this.obj === undefined) return { status: 404, body: {} };
    if (body.metadata.resourceVersion !== this.obj.metadata.resourceVersion) return { status: 409, body: {} };
    this.obj = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
    return { status: 200, body: copy() };
  }
}

function elector(store: LeaseStore, clock: FakeClock, identity: string, log: string[]) {
  const net = { mode: "ok" as "ok" | "down" | "hang" };
  const e = createLeaderElector({
    client: store.client(net),
    namespace: "lodestone",
    name: "lodestone-controller",
    identity,
    timings,
    clock,
    logger,
    random: () => 0,
    onStartedLeading: () => log.push(`${clock.t} ${identity} start`),
    onStoppedLeading: () => log.push(`${clock.t} ${identity} stop`),
  });
  return { e, net };
}

/** a starts first and wins; b is the standby. */
async function twoCandidates() {
  const store = new LeaseStore();
  const clock = new FakeClock();
  const log: string[] = [];
  const a = elector(store, clock, "a", log);
  const b = elector(store, clock, "b", log);
  a.e.start();
  await clock.advance(10);
  b.e.start();
  return { store, clock, log, a, b };
}

describe("lease timings", () => {
  it.each([
    {
      desc: "defaults-like timings are fine",
      t: { leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 2000 },
      n: 0,
    },
    {
      desc: "deadline equal to duration is unsafe",
      t: { leaseDurationMs: 1000, renewDeadlineMs: 1000, retryPeriodMs: 100 },
      n: 1,
    },
    {
      desc: "retry not below deadline",
      t: { leaseDurationMs: 3000, renewDeadlineMs: 1000, retryPeriodMs: 1000 },
      n: 1,
    },
    { desc: "zero everywhere", t: { leaseDurationMs: 0, renewDeadlineMs: 0, retryPeriodMs: 0 }, n: 5 },
  ])("$desc", ({ t, n }) => {
    expect(leaseTimingProblems(t)).toHaveLength(n);
  });
});

describe("leader election", () => {
  it("exactly one of two candidates leads, and the Lease names it", async () => {
    const { store, clock, log, a, b } = await twoCandidates();
    await clock.advance(10_000);
    expect(log).toEqual(["0 a start"]);
    expect(a.e.isLeader()).toBe(true);
    expect(b.e.isLeader()).toBe(false);
    expect(store.obj?.spec?.holderIdentity).toBe("a");
    await a.e.stop();
    await b.e.stop();
  });

  it("a leader cut off from the API stops acting before the standby can take over", async () => {
    const { clock, log, a, b } = await twoCandidates();
    await clock.advance(1000);
    a.net.mode = "down";
    await clock.advance(8000);
    const stopA = log.find((l) => l.endsWith("a stop"));
    const startB = log.find((l) => l.endsWith("b start"));
    expect(stopA).toBeDefined();
    expect(startB).toBeDefined();
    const tStop = Number(stopA!.split(" ")[0]);
    const tStart = Number(startB!.split(" ")[0]);
    // a renewed last at t=1000 at the latest, so it must stop by 1000 + renewDeadline ...
    expect(tStop).toBeLessThanOrEqual(1000 + timings.renewDeadlineMs);
    // ... and b may only start after a's lease expired by its own observation.
    expect(tStart).toBeGreaterThan(tStop);
    expect(tStart - tStop).toBeGreaterThanOrEqual(timings.leaseDurationMs - timings.renewDeadlineMs - 1);
    expect(b.e.isLeader()).toBe(true);
    await a.e.stop();
    await b.e.stop();
  });

  it("a renew that hangs forever still ends leadership at the renew deadline (watchdog)", async () => {
    const store = new LeaseStore();
    const clock = new FakeClock();
    const log: string[] = [];
    const a = elector(store, clock, "a", log);
    a.e.start();
    await clock.advance(600);
    a.net.mode = "hang";
    await clock.advance(timings.renewDeadlineMs + 100);
    // The last renew was sent at t=500, before the hang began at 600.
    expect(log).toEqual(["0 a start", "2500 a stop"]);
    expect(a.e.isLeader()).toBe(false);
    a.net.mode = "ok";
    void a.e.stop();
  });

  it("a graceful stop releases the Lease so the standby takes over within one retry period", async () => {
    const { store, clock, log, a, b } = await twoCandidates();
    await clock.advance(1000);
    await a.e.stop();
    expect(store.obj?.spec?.holderIdentity).toBe("");
    const stoppedAt = clock.t;
    await clock.advance(timings.retryPeriodMs * 1.3);
    expect(b.e.isLeader()).toBe(true);
    const startB = Number(log.find((l) => l.endsWith("b start"))!.split(" ")[0]);
    expect(startB - stoppedAt).toBeLessThanOrEqual(timings.retryPeriodMs * 1.2);
    expect(store.obj?.spec?.leaseTransitions).toBe(1);
    await b.e.stop();
  });
});
