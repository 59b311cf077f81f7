import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findResource } from "../../src/sandbox/resources.ts";
import { lb, pools, startEnv, until, type Env } from "./controller-env.ts";

// The pool annotation a status write carried is trusted only until the watch shows a newer version of the Service:
// when the watch brings the write and a removal of the annotation together (the key waited in a backlog), the
// controller sees only the removal, and must still put the annotation back.
const NSR = "repair";
const N = 30;
const TARGET = "s3";

let env: Env;
beforeAll(async () => {
  env = await startEnv([NSR]);
  await pools(env.core, "pools-repair", "- name: wide\n  addresses: [198.51.100.0/24]\n");
});
afterAll(async () => {
  await env?.stop();
});

describe("a pool annotation removed right after the write that set it", () => {
  it("is repaired even when the controller never saw it in place", async () => {
    for (let i = 0; i < N; i++) await lb(env.core, NSR, `s${i}`);
    const services = findResource("", "v1", "services");
    if (services === undefined) throw new Error("no services resource");
    const api = env.sandbox.api;
    let removed = false;
    api.store.subscribe("services", {
      namespace: NSR,
      deliver: (ev) => {
        const meta = ev.entry.obj["metadata"] as { name?: string; annotations?: Record<string, string> };
        if (removed || meta.name !== TARGET || meta.annotations?.["lodestone.dev/pool"] !== "wide") return;
        removed = true;
        // After this write's commit, so both land in the same watch chunk.
        queueMicrotask(() => {
          const body = JSON.stringify({ metadata: { annotations: { "lodestone.dev/pool": null } } });
          const r = api.patch(services, NSR, TARGET, "", "application/merge-patch+json", body, false);
          if (!r.ok) throw new Error(r.error.message);
        });
      },
    });
    // One worker: the Service's key waits behind the others while both events arrive.
    await env.daemon({ workers: 1 });
    await until("the annotation removed", () => (removed ? true : undefined));
    const pool = await until(
      "the pool annotation repaired",
      async () => {
        const s = await env.core.readNamespacedService({ namespace: NSR, name: TARGET });
        return s.metadata?.annotations?.["lodestone.dev/pool"];
      },
      10_000,
    );
    expect(pool).toBe("wide");
  });
});
