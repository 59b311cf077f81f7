import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NS, lb, pools, startEnv, until, type Env } from "./controller-env.ts";

/**
 * Reliability under the sandbox's fault injection. After every scenario the same three invariants are checked
 * over all Services: each has exactly the IPs it should, no IP is held twice, and nothing assigned earlier moved.
 */
const BIG = "- name: big\n  addresses: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24]\n";
const bin = fileURLToPath(new URL("../../bin/lodestone.js", import.meta.url));

let env: Env;
const children: ChildProcess[] = [];

beforeAll(async () => {
  env = await startEnv(["burst", "drops", "errors", "outage"]);
  await pools(env.core, "pools", BIG);
});
afterEach(async () => {
  await Promise.all(env.daemons.map((d) => d.stop("scenario over")));
  env.daemons.length = 0;
  for (const c of children.splice(0)) c.kill("SIGKILL");
});
afterAll(async () => {
  await env?.stop();
});

/** Every LoadBalancer Service in `namespace` with its ingress IPs. */
async function snapshot(namespace: string): Promise<Map<string, string[]>> {
  const list = await env.core.listNamespacedService({ namespace });
  return new Map(list.items.map((s) => [s.metadata!.name!, (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip!)]));
}

async function allAllocated(namespace: string, n: number, ms = 30_000): Promise<Map<string, string[]>> {
  return until(
    `${n} Services in ${namespace} with one IP each`,
    async () => {
      const s = await snapshot(namespace);
      return s.size === n && [...s.values()].every((ips) => ips.length === 1) ? s : undefined;
    },
    ms,
    // Listing hundreds of Services through client-node is heavy; polling hard would starve the sandbox.
    400,
  );
}

/** No IP twice across every namespace, and every earlier assignment unchanged. */
async function checkInvariants(earlier: Map<string, string[]>, namespace: string): Promise<void> {
  const holders = new Map<string, string>();
  for (const ns of ["burst", "drops", "errors", "outage"]) {
    for (const [name, ips] of await snapshot(ns)) {
      for (const ip of ips) {
        expect(holders.get(ip), `${ip} held by ${holders.get(ip)} and ${ns}/${name}`).toBeUndefined();
        holders.set(ip, `${ns}/${name}`);
        expect(ip).toMatch(/^(192\.0\.2|198\.51\.100|203\.0\.113)\./);
      }
    }
  }
  const now = await snapshot(namespace);
  for (const [name, ips] of earlier) if (ips.length > 0) expect(now.get(name), `${name} moved`).toEqual(ips);
}

async function createMany(namespace: string, names: readonly string[], parallel = 16): Promise<void> {
  const queue = [...names];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) await lb(env.core, namespace, n);
    }),
  );
}

function runDaemon(node: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      "--disable-warning=ExperimentalWarning",
      bin,
      "run",
      `--kubeconfig=${env.sandbox.kubeconfigPath}`,
      `--namespace=${NS}`,
      "--speaker=false",
      "--metrics-port=-1",
      "--log-level=warn",
      "--lease-duration=1500ms",
      "--renew-deadline=1000ms",
      "--retry-period=200ms",
    ],
    { env: { ...process.env, NODE_NAME: node }, stdio: ["ignore", "ignore", "inherit"] },
  );
  children.push(child);
  return child;
}

describe("controller chaos", () => {
  it("two controllers: the leader is killed mid-burst of 500 creations; the standby finishes without moving anything", async () => {
    const coord = env.kc.makeApiClient(CoordinationV1Api);
    const daemons = { a: runDaemon("a"), b: runDaemon("b") };
    const holder = await until(
      "a leader",
      async () => {
        const l = await coord.readNamespacedLease({ namespace: NS, name: "lodestone-controller" });
        return l.spec?.holderIdentity?.split("_")[0] || undefined;
      },
      20_000,
    );
    const leader = holder === "a" ? daemons.a : daemons.b;
    const names = Array.from({ length: 500 }, (_, i) => `svc-${i}`);
    await createMany("burst", names.slice(0, 200));
    await until(
      "some allocations",
      async () =>
        [...(await snapshot("burst")).values()].filter((ips) => ips.length > 0).length >= 50 ? true : undefined,
      10_000,
      200,
    );
    leader.kill("SIGKILL");
    const beforeKill = await snapshot("burst");
    await createMany("burst", names.slice(200));
    await allAllocated("burst", 500, 60_000);
    await checkInvariants(beforeKill, "burst");
    const l = await coord.readNamespacedLease({ namespace: NS, name: "lodestone-controller" });
    expect(l.spec?.holderIdentity?.split("_")[0]).toBe(holder === "a" ? "b" : "a");
  });

  it("watches dropped and expired (410) while Services arrive: nothing is missed", async () => {
    const d = await env.daemon();
    await until("leader", () => (d.isLeader() ? true : undefined));
    const names = Array.from({ length: 60 }, (_, i) => `drop-${i}`);
    for (let round = 0; round < 3; round++) {
      env.sandbox.faults.expireNextWatches(2);
      env.sandbox.faults.closeWatches();
      await createMany("drops", names.slice(round * 20, round * 20 + 20), 4);
    }
    await allAllocated("drops", 60);
    await checkInvariants(new Map(), "drops");
  });

  it("409, 429 and 500 bursts on status writes and lists: retried, re-read, and restarts are counted", async () => {
    const d = await env.daemon();
    await until("leader", () => (d.isLeader() ? true : undefined));
    const f = env.sandbox.faults;
    f.failNext({ verb: "patch", resource: "services", code: 409, count: 15 });
    f.failNext({ verb: "patch", resource: "services", code: 429, count: 10, retryAfterSeconds: 1 });
    f.failNext({ verb: "patch", resource: "services", code: 500, count: 15 });
    f.failNext({ verb: "list", resource: "services", code: 500, count: 2 });
    f.failNext({ verb: "watch", resource: "services", code: 500, count: 2 });
    f.closeWatches();
    await createMany(
      "errors",
      Array.from({ length: 40 }, (_, i) => `err-${i}`),
      8,
    );
    const first = await allAllocated("errors", 40);
    expect(f.state().failures.every((r) => r.remaining === 0)).toBe(true);
    expect(d.telemetry().informerRestarts.services).toBeGreaterThan(0);
    await checkInvariants(first, "errors");
  });

  it("the API server stops for 10 s and comes back: the leader steps down, resumes, and nothing moves", async () => {
    const d = await env.daemon();
    await until("leader", () => (d.isLeader() ? true : undefined));
    await createMany(
      "outage",
      Array.from({ length: 20 }, (_, i) => `out-${i}`),
      4,
    );
    const before = await allAllocated("outage", 20);
    await env.sandbox.faults.stopServing();
    await until("stepped down", () => (d.isLeader() ? undefined : true), 5000);
    await new Promise((r) => setTimeout(r, 10_000));
    await env.sandbox.faults.resume();
    await until("leading again", () => (d.isLeader() ? true : undefined), 15_000);
    await createMany(
      "outage",
      Array.from({ length: 20 }, (_, i) => `after-${i}`),
      4,
    );
    await allAllocated("outage", 40);
    await checkInvariants(before, "outage");
  });
});
