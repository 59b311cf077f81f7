import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lb, pools, startEnv, until, type Env } from "./controller-env.ts";

// A burst of Services is served address first: no IPAllocated Event and no pool annotation is written while a
// status write is waiting. Seen from the API server's store, in the order its writes land.
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
  it("gets its addresses before the Events and annotations about them", async () => {
    for (let i = 0; i < N; i++) await lb(env.core, NSB, `s${i}`);
    const withIp = new Set<string>();
    let ipsAtFirstEvent: number | undefined;
    let ipsAtFirstAnnotation: number | undefined;
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
        if ((obj.status?.loadBalancer?.ingress?.length ?? 0) > 0) withIp.add(name);
        if (obj.metadata?.annotations?.["lodestone.dev/pool"] !== undefined) ipsAtFirstAnnotation ??= withIp.size;
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
    // At most the status writes already running when the queue emptied can land after the first Event.
    expect(ipsAtFirstEvent).toBeGreaterThanOrEqual(N - WORKERS);
    expect(ipsAtFirstAnnotation).toBeGreaterThanOrEqual(N - WORKERS);
  });
});
