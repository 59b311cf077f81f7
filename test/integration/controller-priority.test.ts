import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lb, pools, startEnv, until, type Env } from "./controller-env.ts";

// A burst of Services is served address first: no IPAllocated Event is written while a status write is waiting,
// and each address lands together with its pool annotation. Seen from the API server's store, in the order its
// writes land.
const NSB = "burst";
const N = 120;
const WORKERS = 16;

let env: Env;
beforeAll(async () => {
  env = await startEnv([NSB]);
  await pools(env.core, "pools-burst", "- name: wide\n  addresses: [198.51.100.0/24]\n");
});
afterAll(async () => {
  await env?.stop();
});

describe("a backlog of Services", () => {
  it("gets its addresses, each with its pool annotation in the same write, before the Events about them", async () => {
    for (let i = 0; i < N; i++) await lb(env.core, NSB, `s${i}`);
    const withIp = new Set<string>();
    let ipsAtFirstEvent: number | undefined;
    const withoutPool: string[] = [];
    let events = 0;
    const store = env.sandbox.api.store;
    store.subscribe("services", {
      namespace: NSB,
      deliver: (ev) => {
        const obj = ev.entry.obj as {
          metadata?: { name?: string; annotations?: Record<string, string> };
          status?: { loadBalancer?: { ingress?: unknown[] } };
        };
        const name = obj.metadata?.name ?? "";
        if ((obj.status?.loadBalancer?.ingress?.length ?? 0) === 0 || withIp.has(name)) return;
        withIp.add(name);
        if (obj.metadata?.annotations?.["lodestone.dev/pool"] !== "wide") withoutPool.push(name);
      },
    });
    store.subscribe("events", {
      namespace: NSB,
      deliver: (ev) => {
        if ((ev.entry.obj as { reason?: string }).reason !== "IPAllocated") return;
        ipsAtFirstEvent ??= withIp.size;
        events++;
      },
    });
    // The daemon starts on a backlog: every Service is waiting for an address at once.
    await env.daemon();
    await until("every IPAllocated Event", () => (withIp.size === N && events === N ? true : undefined), 30_000);
    // Events start once no more status writes are ready than the workers take at once: at most those and the ones
    // already running land after the first Event.
    expect(ipsAtFirstEvent).toBeGreaterThanOrEqual(N - 2 * WORKERS);
    expect(withoutPool).toEqual([]);
  });
});

describe("a backlog larger than the Event queue", () => {
  it("loses none of its Events: status writes slow down before the queue is full", async () => {
    const flood = await startEnv(["flood"]);
    try {
      await pools(flood.core, "pools-flood", "- name: flood\n  addresses: [203.0.113.0/24]\n");
      const M = 150;
      for (let i = 0; i < M; i++) await lb(flood.core, "flood", `f${i}`);
      const allocated = new Set<string>();
      flood.sandbox.api.store.subscribe("events", {
        namespace: "flood",
        deliver: (ev) => {
          const e = ev.entry.obj as { reason?: string; involvedObject?: { name?: string } };
          if (e.reason === "IPAllocated") allocated.add(e.involvedObject?.name ?? "");
        },
      });
      // A queue of 40 against 150 Services waiting at once: without the slow-down about half would be dropped.
      const d = await flood.daemon({ maxQueuedEvents: 40 });
      await until("an IPAllocated Event for every Service", () => (allocated.size === M ? true : undefined), 30_000);
      expect(d.telemetry().eventsDropped).toEqual({ controller: 0 });
    } finally {
      await flood.stop();
    }
  });
});
