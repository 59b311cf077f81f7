// The one long test: the daemon idle for three minutes against a sandbox on kube-apiserver's real cadence (the
// first bookmark a minute into a watch, the daemon's own 180–300 s watches) with a short watch history, while
// ConfigMaps it does not select keep changing. In a real cluster the client used to cut every watch after 30 s of
// silence and reopen it at a stale version; the filtered ConfigMap watch then fell out of the history and relisted.
// The same properties, scaled 30 times faster: daemon-fidelity.test.ts.
import { afterAll, beforeAll, expect, it } from "vitest";
import { lodestoneVersion, type Daemon } from "../../src/app/daemon.ts";
import { merge, pools, startEnv, until, type Env } from "./controller-env.ts";

let env: Env;
let daemon: Daemon;
const noise = "noise";
const UA = `lodestone/${lodestoneVersion()} (controller; node node-0)`;
const IDLE_MS = 180_000;

beforeAll(async () => {
  env = await startEnv([noise], { historySize: 50 });
  await pools(env.core, "pools-main", "- name: lan\n  addresses: [192.0.2.0/28]\n");
  daemon = await env.daemon();
  await until("leader", () => (daemon.isLeader() && daemon.telemetry().pools.length === 1 ? true : undefined));
  await env.core.createNamespacedConfigMap({ namespace: noise, body: { metadata: { name: "n" } } });
}, 60_000);
afterAll(async () => {
  await env?.stop();
});

const mine = (resource: string) => env.sandbox.audit.records({ resource, userAgent: UA });

it(
  "idle for three minutes on the real cadence: each watch re-opened at most once, none relisted, all still open",
  async () => {
    const count = (resource: string, verb: string) => mine(resource).filter((r) => r.verb === verb).length;
    const resources = ["services", "configmaps", "namespaces"];
    const before = Object.fromEntries(resources.map((r) => [r, { watch: count(r, "watch"), list: count(r, "list") }]));
    const end = Date.now() + IDLE_MS;
    let changes = 0;
    while (Date.now() < end) {
      await env.core.patchNamespacedConfigMap(
        { namespace: noise, name: "n", body: { data: { n: String(changes++) } } },
        merge,
      );
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(changes).toBeGreaterThan(300); // six times the history the sandbox keeps
    for (const resource of resources) {
      expect(count(resource, "watch") - before[resource]!.watch, resource).toBeLessThanOrEqual(1);
      expect(count(resource, "list") - before[resource]!.list, resource).toBe(0);
      // The latest watch is still being served: no 30 s idle cut.
      const watches = mine(resource).filter((r) => r.verb === "watch");
      expect(watches.at(-1)?.code, resource).toBe(0);
    }
    expect(daemon.telemetry().pools.map((p) => p.pool)).toEqual(["lan"]);
  },
  IDLE_MS + 60_000,
);
