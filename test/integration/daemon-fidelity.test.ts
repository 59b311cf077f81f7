// The daemon against a sandbox that behaves like kube-apiserver on a scaled clock: bookmarks every 2 s instead of
// every minute, watches of 6–10 s instead of 3–5 minutes (watchTimeoutSeconds 8 instead of 240: the same ratio
// of watch to bookmark), and a watch history of 20 events per resource. The same properties on the real clock:
// daemon-idle.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lodestoneVersion, type Daemon } from "../../src/app/daemon.ts";
import { findResource } from "../../src/sandbox/resources.ts";
import { NS, eventWith, ingress, lb, merge, pools, startEnv, until, type Env } from "./controller-env.ts";

let env: Env;
let daemon: Daemon;
const apps = "apps";
const noise = "noise";
const UA = `lodestone/${lodestoneVersion()} (controller; node node-0)`;
const configmaps = findResource("", "v1", "configmaps")!;

beforeAll(async () => {
  env = await startEnv([apps, noise], { bookmarkIntervalMs: 2_000, historySize: 20 });
  await pools(env.core, "pools-main", "- name: lan\n  addresses: [192.0.2.0/28]\n");
  daemon = await env.daemon({ watchTimeoutSeconds: 8 });
  await until("leader", () => (daemon.isLeader() && daemon.telemetry().pools.length === 1 ? true : undefined));
  for (let i = 0; i < 5; i++)
    await env.core.createNamespacedConfigMap({ namespace: noise, body: { metadata: { name: `n${i}` } } });
}, 60_000);
afterAll(async () => {
  await env?.stop();
});

/** The daemon's watch and list requests per resource so far, from the sandbox's audit. */
function served(): Record<string, { watch: number; list: number; watchVersions: number[] }> {
  const out: Record<string, { watch: number; list: number; watchVersions: number[] }> = {};
  for (const resource of ["services", "configmaps", "namespaces"]) {
    const mine = env.sandbox.audit.records({ resource, userAgent: UA });
    const watches = mine.filter((r) => r.verb === "watch");
    out[resource] = {
      watch: watches.length,
      list: mine.filter((r) => r.verb === "list").length,
      watchVersions: watches.map((r) => Number(new URLSearchParams(r.query).get("resourceVersion"))),
    };
  }
  return out;
}

/** Changes to ConfigMaps the daemon does not select, `perSecond` for `ms`: they move the history on. */
async function churn(ms: number, perSecond: number): Promise<number> {
  const end = Date.now() + ms;
  let n = 0;
  while (Date.now() < end) {
    await env.core.patchNamespacedConfigMap(
      { namespace: noise, name: `n${n % 5}`, body: { data: { n: String(n) } } },
      merge,
    );
    n++;
    await new Promise((r) => setTimeout(r, 1000 / perSecond));
  }
  return n;
}

describe("the daemon on kube-apiserver's cadence, scaled 30 times faster", () => {
  it("idle while others change: each watch re-opens once per watch timeout, from its bookmark, and never relists", async () => {
    const before = served();
    const changes = await churn(24_000, 8);
    expect(changes).toBeGreaterThan(100); // far beyond the 20 events of history the sandbox keeps
    const after = served();
    for (const resource of ["services", "configmaps", "namespaces"]) {
      const b = before[resource]!;
      const a = after[resource]!;
      // 24 s of 6–10 s watches: 2 to 4 re-opens (5 with a late one), never one per 30 s silence nor one per bookmark.
      expect(a.watch - b.watch, resource).toBeGreaterThanOrEqual(2);
      expect(a.watch - b.watch, resource).toBeLessThanOrEqual(5);
      expect(a.list - b.list, resource).toBe(0);
    }
    // The filtered ConfigMap watch re-opened each time at the version of a recent bookmark, past the churn, not at
    // the version of the last pool ConfigMap (long out of the history: a 410 and a relist each time).
    const versions = after["configmaps"]!.watchVersions.slice(before["configmaps"]!.watch);
    expect(versions.length).toBeGreaterThanOrEqual(2);
    const first = before["configmaps"]!.watchVersions.at(-1)!;
    for (const v of versions) expect(v).toBeGreaterThan(first);
    expect(new Set(versions).size).toBe(versions.length);
  }, 60_000);

  it("after a real 410 (the history moved on while it was away) it relists once and ends with every object", async () => {
    const before = served();
    await env.sandbox.faults.stopServing();
    // While nobody can reach it: many changes elsewhere, and a pool ConfigMap the daemon has not seen.
    for (let i = 0; i < 60; i++)
      env.sandbox.api.patch(
        configmaps,
        noise,
        `n${i % 5}`,
        "",
        "application/merge-patch+json",
        `{"data":{"m":"${i}"}}`,
        false,
      );
    const late = env.sandbox.api.create(
      configmaps,
      NS,
      {
        metadata: { name: "pools-late", labels: { "lodestone.dev/pools": "true" } },
        data: { "pools.yaml": "- name: late\n  addresses: [198.51.100.64/29]\n" },
      },
      false,
    );
    expect(late.ok).toBe(true);
    await env.sandbox.faults.resume();
    await until(
      "the late pool in force",
      () => (daemon.isLeader() && daemon.telemetry().pools.some((p) => p.pool === "late") ? true : undefined),
      20_000,
    );
    const after = served();
    // ConfigMaps: one 410, one relist. Services and Namespaces did not change: they resume without one.
    expect(after["configmaps"]!.list - before["configmaps"]!.list).toBe(1);
    expect(after["services"]!.list - before["services"]!.list).toBe(0);
    expect(after["namespaces"]!.list - before["namespaces"]!.list).toBe(0);
    expect(
      daemon
        .telemetry()
        .pools.map((p) => p.pool)
        .sort(),
    ).toEqual(["lan", "late"]);
  }, 60_000);

  it("a ConfigMap with 60 bad pools yields one ConfigInvalid Warning the API accepts: at most 1024 bytes", async () => {
    const bad = Array.from({ length: 60 }, (_, i) => `- name: bad-${i}\n  addresses: [203.0.113.${i}/99]\n`).join("");
    await pools(env.core, "pools-bad", bad);
    const ev = await eventWith(env.core, NS, "pools-bad", "ConfigInvalid");
    expect(ev.type).toBe("Warning");
    expect(Buffer.byteLength(ev.message)).toBeLessThanOrEqual(1024);
    expect(ev.message).toMatch(/^60 problem\(s\), only its valid pools are used: /);
    expect(ev.message).toMatch(/; … and \d+ more problems; see `lodestone check-config`$/);
    // Nothing the daemon sent was refused.
    const refused = env.sandbox.audit.records({ resource: "events", userAgent: UA }).filter((r) => r.code >= 400);
    expect(refused).toEqual([]);
  });

  it("LoadBalancer → ClusterIP: IPReleased, the annotation gone, the address handed to the next Service", async () => {
    await lb(env.core, apps, "first", { spec: { loadBalancerIP: "192.0.2.9" } });
    await until("first's address", async () =>
      (await ingress(env.core, apps, "first"))?.[0] === "192.0.2.9" ? true : undefined,
    );
    await lb(env.core, apps, "second", { spec: { loadBalancerIP: "192.0.2.9" } });
    await eventWith(env.core, apps, "second", "AllocationFailed");
    await env.core.patchNamespacedService(
      { namespace: apps, name: "first", body: { spec: { type: "ClusterIP" } } },
      merge,
    );
    await eventWith(env.core, apps, "first", "IPReleased", "192.0.2.9");
    await until("annotation gone", async () => {
      const s = await env.core.readNamespacedService({ namespace: apps, name: "first" });
      return s.metadata?.annotations?.["lodestone.dev/pool"] === undefined ? true : undefined;
    });
    await until("second's address", async () =>
      (await ingress(env.core, apps, "second"))?.[0] === "192.0.2.9" ? true : undefined,
    );
    // The release was decided from the spec: the controller wrote no status to the ClusterIP Service.
    const statusWrites = env.sandbox.audit
      .records({ resource: "services/status", name: "first", userAgent: UA })
      .filter((r) => r.verb === "patch");
    expect(statusWrites).toHaveLength(1); // the allocation
  });
});
