import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Fault, type LabCluster, startLabCluster } from "../../src/lab/cluster.ts";
import { labUnavailable } from "../../src/lab/netns.ts";

/**
 * Three nodes running `lodestone run` in network namespaces against one API server, a client namespace, and the
 * faults of the failover design: the client's TCP connections must follow the announcing node.
 */
const why =
  labUnavailable(["arping"]) ??
  (existsSync(new URL("../../src/net/announcer.ts", import.meta.url))
    ? undefined
    : "the layer-2 announcer (src/net/announcer.ts) is not in this build yet");
if (why !== undefined) console.log(`speaker lab skipped: ${why}`);

let cluster: LabCluster;
let ip = "";

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The node that both the annotation and the client's TCP connections name, once they agree (and, with `expected`,
 * once they agree on that node: a change takes a moment to reach the speakers).
 */
async function settledOwner(service: string, address: string, ms = 10_000, expected?: string): Promise<string> {
  let last = "";
  try {
    return await until(
      `${service} settled${expected === undefined ? "" : ` on ${expected}`}`,
      async () => {
        const a = await cluster.announcingNode(service);
        const b = await cluster.whoAnswers(address, 500);
        last = `annotation ${a ?? "none"}, client reaches ${b ?? "nobody"}`;
        return a !== undefined && a === b && (expected === undefined || a === expected) ? a : undefined;
      },
      ms,
    );
  } catch (e) {
    const neighbours = await cluster.lab.neighbours(cluster.clientHost.ns).catch(() => []);
    const entry = neighbours.find((n) => n.ip === address);
    throw new Error(
      `${e instanceof Error ? e.message : String(e)} (${address}: ${last}; client neighbour entry ${JSON.stringify(entry)})`,
      { cause: e },
    );
  }
}

/**
 * The settled owner once it has stayed the same for `stableMs`: a node that came back after the previous fault
 * takes its IPs back after a settle time, so an owner seen right after healing may be about to lose them.
 */
async function stableOwner(service: string, address: string, stableMs = 2_500): Promise<string> {
  const end = Date.now() + 20_000;
  for (;;) {
    const owner = await settledOwner(service, address);
    const since = Date.now();
    let same = true;
    while (same && Date.now() - since < stableMs) {
      await new Promise((r) => setTimeout(r, 100));
      same = (await cluster.announcingNode(service)) === owner;
    }
    if (same) return owner;
    if (Date.now() > end) throw new Error(`${service}: the owner kept changing for 20 s`);
  }
}

describe.skipIf(why !== undefined)("speaker lab: failover between three nodes", () => {
  beforeAll(async () => {
    cluster = await startLabCluster({ area: "speaker", nodes: 3 });
    await cluster.waitReady(30_000);
  }, 60_000);

  let failed = false;
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail") failed = true;
  });

  afterAll(async () => {
    // A failure in CI leaves nothing to look at once the lab is gone: print the daemons' last log lines first.
    if (failed && cluster !== undefined) {
      for (const n of cluster.nodes) {
        const lines = existsSync(n.logPath) ? readFileSync(n.logPath, "utf8").trimEnd().split("\n") : [];
        console.log(`--- ${n.name} daemon log (last 40 lines)\n${lines.slice(-40).join("\n")}`);
      }
    }
    await cluster?.destroy();
  }, 30_000);

  it("a LoadBalancer Service gets an IP and the client's connections reach the announcing node", async () => {
    ip = await cluster.createService("web");
    const owner = await settledOwner("web", ip);
    expect(cluster.nodes.map((n) => n.name)).toContain(owner);
  }, 20_000);

  it.each<{ fault: Fault; maxMs: number }>([
    { fault: "sigkill", maxMs: 2_000 },
    { fault: "linkdown", maxMs: 2_000 },
    { fault: "sigterm", maxMs: 2_000 },
    // Fencing: the cut-off node withdraws after fenceAfter (6 s) without a Lease renewal.
    { fault: "apicut", maxMs: 8_000 },
  ])(
    "$fault of the owner: the client reaches another node within $maxMs ms, never two at once",
    async ({ fault, maxMs }) => {
      await stableOwner("web", ip);
      try {
        const r = await cluster.measureFailover("web", ip, fault, { timeoutMs: maxMs + 2_000 });
        console.log(`speaker lab ${fault}: ${JSON.stringify(r)}`);
        expect(r.to).toBeDefined();
        expect(r.to).not.toBe(r.from);
        expect(r.failoverMs).toBeLessThanOrEqual(maxMs);
        if (fault === "sigterm") {
          // The hand-off: no connection opened after the move fails. One opened just before it can be caught in
          // the move itself (its SYN reached the old node, its next segment the new one, which resets it): nodes
          // share no TCP state, so no layer-2 failover carries it (docs/performance.md, "Failover"; 1–2 in 20 trials).
          const moved = r.movedAtMs ?? Number.POSITIVE_INFINITY;
          expect(r.failures.filter((f) => f.startMs >= moved)).toEqual([]);
          expect(r.failures.length).toBeLessThanOrEqual(1);
          // A hand-off, not a death: the client reached the successor before the old daemon exited (it waits to
          // see the successor's announcement, then 250 ms more). A speaker that just vanished would be replaced
          // only once its heartbeats were missed (~0.5 s), after its exit.
          expect(moved).toBeLessThanOrEqual(r.faultDoneMs);
        } else expect(r.doubleAnswerMs).toBeLessThanOrEqual(100);
      } finally {
        // Heal even after a failed expectation, so the next fault starts from three ready nodes.
        for (const n of cluster.nodes) await cluster.heal(n);
        await cluster.waitReady(20_000);
      }
    },
    40_000,
  );

  it("externalTrafficPolicy Local is announced from the node with the ready endpoint, and follows it", async () => {
    const local = await cluster.createService("local", { externalTrafficPolicy: "Local" });
    const slice = (node: string) => ({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: "local-1", namespace: "default", labels: { "kubernetes.io/service-name": "local" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.0.0.1"], nodeName: node, conditions: { ready: true } }],
    });
    await cluster.client.request({
      method: "POST",
      path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
      body: slice("node2"),
    });
    expect(await settledOwner("local", local, 10_000, "node2")).toBe("node2");
    const put = await cluster.client.request({
      method: "GET",
      path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/local-1",
    });
    const body = { ...slice("node3"), metadata: { ...(put.body as { metadata: object }).metadata } };
    await cluster.client.request({
      method: "PUT",
      path: "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/local-1",
      body: { ...body, endpoints: slice("node3").endpoints },
    });
    expect(await settledOwner("local", local, 10_000, "node3")).toBe("node3");
  }, 30_000);

  it("50 Services spread over the nodes, each reached at its announcing node; an excluded node takes none", async () => {
    await cluster.client.request({
      method: "PATCH",
      path: "/api/v1/nodes/node1",
      body: { metadata: { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "true" } } },
    });
    const ips = new Map<string, string>();
    for (let i = 0; i < 50; i++) ips.set(`many-${i}`, await cluster.createService(`many-${i}`, {}, 20_000));
    // The label reaches the speakers through their watches while the Services are being created, so a Service
    // created in that moment may be announced by node1 first; what is promised is that node1 then lets it go.
    const owners = new Map<string, number>();
    for (const [name] of ips) {
      const owner = await until(
        `${name} announced by a node that is not excluded`,
        async () => {
          const n = await cluster.announcingNode(name);
          return n === "node1" ? undefined : n;
        },
        15_000,
      ).catch(async (e: unknown) => (await cluster.announcingNode(name)) ?? String(e));
      owners.set(owner, (owners.get(owner) ?? 0) + 1);
    }
    expect(owners.get("node1") ?? 0).toBe(0);
    expect(owners.get("node2") ?? 0).toBeGreaterThan(10);
    expect(owners.get("node3") ?? 0).toBeGreaterThan(10);
    const sample = [...ips].slice(0, 8);
    for (const [name, address] of sample) expect(await settledOwner(name, address)).not.toBe("node1");
  }, 90_000);
  it("busy is not dead: both cores saturated by a CPU hog for 8 s, no node leaves the membership", async () => {
    const changes = (): number =>
      cluster.nodes.reduce((sum, n) => {
        const text = existsSync(n.logPath) ? readFileSync(n.logPath, "utf8") : "";
        return sum + text.split('"msg":"membership changed"').length - 1;
      }, 0);
    const before = changes();
    // One busy loop per core, each ending by itself after 8 s (also if this process dies) and killed by PID
    // below in any case; no children of its own.
    const children = Array.from({ length: availableParallelism() }, () =>
      spawn(process.execPath, ["-e", "const end = Date.now() + 8000; while (Date.now() < end);"], { stdio: "ignore" }),
    );
    try {
      await new Promise((r) => setTimeout(r, 8_500));
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    }
    expect(changes() - before).toBe(0);
  }, 30_000);
});
