import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, eventWith, events, ingress, lb, merge, pools, startEnv, until, type Env } from "./controller-env.ts";
import { lodestoneVersion, type Daemon } from "../../src/app/daemon.ts";

const run = promisify(execFile);
const MAIN = `
- name: lan
  addresses: [192.0.2.0/28]
  priority: 1
- name: lan6
  addresses: ["2001:db8::/120"]
  priority: 2
- name: dual
  addresses: [198.51.100.0/29, "2001:db8:1::/125"]
  autoAssign: false
- name: tenant-a
  addresses: [203.0.113.0/30]
  autoAssign: false
  serviceAllocation: { namespaces: [tenant-a] }
- name: tiny
  addresses: [203.0.113.8/31]
  autoAssign: false
`;

let env: Env;
let daemon: Daemon;
const apps = "apps";

beforeAll(async () => {
  env = await startEnv([apps, "tenant-a", "tenant-b"]);
  await pools(env.core, "pools-main", MAIN);
  daemon = await env.daemon({ metricsPort: 0, metricsHost: "127.0.0.1" });
  await until("leader", () => (daemon.isLeader() ? true : undefined));
});
afterAll(async () => {
  await env?.stop();
});

const ip = (namespace: string, name: string) =>
  until(`IP of ${namespace}/${name}`, () => ingress(env.core, namespace, name));

describe("allocation scenarios", () => {
  it("IPv4: next free address of the highest-priority pool, pool annotation, IPAllocated event", async () => {
    await lb(env.core, apps, "v4");
    expect(await ip(apps, "v4")).toEqual(["192.0.2.0"]);
    const svc = await until("pool annotation", async () => {
      const s = await env.core.readNamespacedService({ namespace: apps, name: "v4" });
      return s.metadata?.annotations?.["lodestone.dev/pool"] ? s : undefined;
    });
    expect(svc.metadata?.annotations?.["lodestone.dev/pool"]).toBe("lan");
    const ev = await eventWith(env.core, apps, "v4", "IPAllocated");
    expect(ev).toMatchObject({ type: "Normal", message: "Assigned IP 192.0.2.0 from pool lan" });
    // Someone removes the annotation: the controller puts it back, and the address stays.
    await env.core.patchNamespacedService(
      { namespace: apps, name: "v4", body: { metadata: { annotations: { "lodestone.dev/pool": null } } } },
      merge,
    );
    await until("pool annotation repaired", async () => {
      const s = await env.core.readNamespacedService({ namespace: apps, name: "v4" });
      return s.metadata?.annotations?.["lodestone.dev/pool"] === "lan" ? true : undefined;
    });
    expect(await ingress(env.core, apps, "v4")).toEqual(["192.0.2.0"]);
  });

  it("IPv6 single stack skips the IPv4-only pool (and the Subnet-Router anycast address)", async () => {
    await lb(env.core, apps, "v6", { spec: { ipFamilies: ["IPv6"] } });
    expect(await ip(apps, "v6")).toEqual(["2001:db8::1"]);
  });

  it("dual stack from a pool asked for by annotation (autoAssign=false pools only on request)", async () => {
    await lb(env.core, apps, "dual", {
      annotations: { "lodestone.dev/address-pool": "dual" },
      spec: { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] },
    });
    expect(await ip(apps, "dual")).toEqual(["198.51.100.0", "2001:db8:1::1"]);
  });

  it.each([
    {
      desc: "spec.loadBalancerIP",
      name: "req-spec",
      s: { spec: { loadBalancerIP: "192.0.2.9" } },
      want: ["192.0.2.9"],
    },
    {
      desc: "lodestone.dev/load-balancer-ips",
      name: "req-ann",
      s: { annotations: { "lodestone.dev/load-balancer-ips": "198.51.100.5" } },
      want: ["198.51.100.5"],
    },
  ])("a requested IP by $desc is assigned exactly, even from an autoAssign=false pool", async ({ name, s, want }) => {
    await lb(env.core, apps, name, s);
    expect(await ip(apps, name)).toEqual(want);
  });

  it("MetalLB annotations work and earn a DeprecatedAnnotation warning", async () => {
    await lb(env.core, apps, "legacy", { annotations: { "metallb.universe.tf/address-pool": "dual" } });
    expect((await ip(apps, "legacy"))[0]).toMatch(/^198\.51\.100\./);
    const ev = await eventWith(env.core, apps, "legacy", "DeprecatedAnnotation");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("metallb.universe.tf/address-pool");
  });

  it("sharing: same key and disjoint ports share; a port clash is refused with SharingConflict", async () => {
    const share = { "lodestone.dev/sharing-key": "web", "lodestone.dev/load-balancer-ips": "192.0.2.12" };
    await lb(env.core, apps, "share-a", { annotations: share, spec: { ports: [{ port: 80, protocol: "TCP" }] } });
    await lb(env.core, apps, "share-b", { annotations: share, spec: { ports: [{ port: 443, protocol: "TCP" }] } });
    await lb(env.core, apps, "share-c", { annotations: share, spec: { ports: [{ port: 80, protocol: "TCP" }] } });
    expect(await ip(apps, "share-a")).toEqual(["192.0.2.12"]);
    expect(await ip(apps, "share-b")).toEqual(["192.0.2.12"]);
    const ev = await eventWith(env.core, apps, "share-c", "SharingConflict");
    expect(ev.message).toContain("TCP/80");
    expect(await ingress(env.core, apps, "share-c")).toBeUndefined();
  });

  it("a namespace-restricted pool refuses a foreign tenant, even for an explicit IP, and serves its own", async () => {
    await lb(env.core, "tenant-b", "thief", { annotations: { "lodestone.dev/load-balancer-ips": "203.0.113.1" } });
    const ev = await eventWith(env.core, "tenant-b", "thief", "AllocationFailed");
    expect(ev.message).toContain("LODESTONE_E_NAMESPACE_NOT_ALLOWED");
    await lb(env.core, "tenant-a", "owner", { annotations: { "lodestone.dev/address-pool": "tenant-a" } });
    expect(await ip("tenant-a", "owner")).toEqual(["203.0.113.0"]);
    expect(await ingress(env.core, "tenant-b", "thief")).toBeUndefined();
  });

  it("exhaustion fails with a reason, and freed capacity is handed to the waiting Service", async () => {
    const tiny = { annotations: { "lodestone.dev/address-pool": "tiny" } };
    await lb(env.core, apps, "tiny-1", tiny);
    await lb(env.core, apps, "tiny-2", tiny);
    expect(await ip(apps, "tiny-1")).toEqual(["203.0.113.8"]);
    expect(await ip(apps, "tiny-2")).toEqual(["203.0.113.9"]);
    await lb(env.core, apps, "tiny-3", tiny);
    const ev = await eventWith(env.core, apps, "tiny-3", "AllocationFailed");
    expect(ev.message).toContain("LODESTONE_E_POOL_EXHAUSTED");
    await env.core.deleteNamespacedService({ namespace: apps, name: "tiny-1" });
    expect(await ip(apps, "tiny-3")).toEqual(["203.0.113.8"]);
    expect(await ip(apps, "tiny-2")).toEqual(["203.0.113.9"]);
  });

  // kube-apiserver empties status.loadBalancer itself when the type changes (pkg/registry/core/service,
  // dropTypeDependentFields): the controller sees no ingress to clear and must act on the spec alone.
  it("a change away from type LoadBalancer: the API server clears the ingress, the controller releases the IP", async () => {
    await lb(env.core, apps, "retype", { spec: { loadBalancerIP: "192.0.2.14" } });
    expect(await ip(apps, "retype")).toEqual(["192.0.2.14"]);
    const retyped = await env.core.patchNamespacedService(
      { namespace: apps, name: "retype", body: { spec: { type: "ClusterIP" } } },
      merge,
    );
    expect(retyped.status?.loadBalancer).toEqual({});
    await eventWith(env.core, apps, "retype", "IPReleased", "192.0.2.14");
    await until("pool annotation removed", async () => {
      const s = await env.core.readNamespacedService({ namespace: apps, name: "retype" });
      return s.metadata?.annotations?.["lodestone.dev/pool"] === undefined ? true : undefined;
    });
    await lb(env.core, apps, "retaker", { spec: { loadBalancerIP: "192.0.2.14" } });
    expect(await ip(apps, "retaker")).toEqual(["192.0.2.14"]);
  });

  it("a status of three IPv4 addresses is replaced with a Warning, as MetalLB's convergeBalancer warns", async () => {
    await lb(env.core, apps, "triple", { spec: { loadBalancerIP: "192.0.2.11" } });
    expect(await ip(apps, "triple")).toEqual(["192.0.2.11"]);
    await env.core.patchNamespacedServiceStatus(
      {
        namespace: apps,
        name: "triple",
        body: {
          status: { loadBalancer: { ingress: [{ ip: "192.0.2.13" }, { ip: "192.0.2.15" }, { ip: "192.0.2.11" }] } },
        },
      },
      merge,
    );
    const ev = await eventWith(env.core, apps, "triple", "IPAllocated", "at most one address per family");
    expect(ev).toMatchObject({
      type: "Warning",
      message:
        "Assigned IP 192.0.2.11 from pool lan (was 192.0.2.13, 192.0.2.15): status.loadBalancer.ingress held 3 IPv4 " +
        "addresses (192.0.2.13, 192.0.2.15, 192.0.2.11); a Service has at most one address per family",
    });
    expect(await ingress(env.core, apps, "triple")).toEqual(["192.0.2.11"]);
  });

  it("loadBalancerClass: another class is never touched; ours (lodestone.dev/lb) is served", async () => {
    await lb(env.core, apps, "foreign", { spec: { loadBalancerClass: "other.example/lb" } });
    await lb(env.core, apps, "ours", { spec: { loadBalancerClass: "lodestone.dev/lb" } });
    expect((await ip(apps, "ours"))[0]).toMatch(/^192\.0\.2\./);
    expect(await ingress(env.core, apps, "foreign")).toBeUndefined();
    expect(await events(env.core, apps, "foreign")).toEqual([]);
  });

  it("pool shrink: the Service that lost its address gets a new one, with an Event saying so", async () => {
    await pools(env.core, "pools-shrink", "- name: shrink\n  addresses: [203.0.113.16/30]\n  autoAssign: false\n");
    await until("shrink pool in force", () =>
      daemon.telemetry().pools.some((p) => p.pool === "shrink") ? true : undefined,
    );
    await lb(env.core, apps, "shrinking", { annotations: { "lodestone.dev/address-pool": "shrink" } });
    expect(await ip(apps, "shrinking")).toEqual(["203.0.113.16"]);
    await pools(env.core, "pools-shrink", "- name: shrink\n  addresses: [203.0.113.18/31]\n  autoAssign: false\n");
    await until("new IP", async () =>
      (await ingress(env.core, apps, "shrinking"))?.[0] === "203.0.113.18" ? true : undefined,
    );
    await eventWith(env.core, apps, "shrinking", "IPAllocated", "was 203.0.113.16");
  });

  it("a broken ConfigMap keeps its last good version, says why in a Warning, and shows as stale", async () => {
    await pools(env.core, "pools-broken", "- name: brk\n  addresses: [203.0.113.32/30]\n  autoAssign: false\n");
    const ask = { annotations: { "lodestone.dev/address-pool": "brk" } };
    await until("brk pool in force", () => (daemon.telemetry().pools.some((p) => p.pool === "brk") ? true : undefined));
    await lb(env.core, apps, "brk-1", ask);
    expect(await ip(apps, "brk-1")).toEqual(["203.0.113.32"]);
    await pools(env.core, "pools-broken", "- name: brk\n  adresses: [203.0.113.32/30]\n  autoAssign: maybe\n");
    const ev = await eventWith(env.core, NS, "pools-broken", "ConfigInvalid");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("adresses");
    expect(ev.message).toContain("autoAssign");
    expect(daemon.telemetry().configMaps).toContainEqual({ configMap: `${NS}/pools-broken`, stale: true });
    await lb(env.core, apps, "brk-2", ask);
    expect(await ip(apps, "brk-2")).toEqual(["203.0.113.33"]);
    expect(await ip(apps, "brk-1")).toEqual(["203.0.113.32"]);
  });

  it("a fixed ConfigMap says so in a Normal ConfigApplied; one unchanged since the start records none", async () => {
    await pools(env.core, "pools-fixed", "- name: fix\n  adresses: [203.0.113.40/30]\n");
    await eventWith(env.core, NS, "pools-fixed", "ConfigInvalid");
    await pools(env.core, "pools-fixed", "- name: fix\n  addresses: [203.0.113.40/30]\n  autoAssign: false\n");
    const ev = await eventWith(env.core, NS, "pools-fixed", "ConfigApplied", "problems fixed");
    expect(ev).toMatchObject({ type: "Normal", message: "problems fixed; pools in force: fix" });
    expect(daemon.telemetry().configMaps).toContainEqual({ configMap: `${NS}/pools-fixed`, stale: false });
    const main = await events(env.core, NS, "pools-main");
    expect(main.filter((e) => e.reason === "ConfigApplied")).toEqual([]);
  });

  it("/metrics shows pool use and allocated Services moving", async () => {
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${daemon.metricsPort}/metrics`)).text();
    const sample = (text: string, prefix: string): number =>
      Number(
        text
          .split("\n")
          .find((l) => l.startsWith(prefix))
          ?.split(" ")
          .pop() ?? NaN,
      );
    const before = await scrape();
    const lanBefore = sample(before, 'lodestone_pool_addresses_in_use{pool="lan",family="IPv4"}');
    const allocatedBefore = sample(before, "lodestone_services_allocated ");
    await lb(env.core, apps, "counted");
    await ip(apps, "counted");
    const after = await until("metrics moved", async () => {
      const t = await scrape();
      return sample(t, "lodestone_services_allocated ") > allocatedBefore ? t : undefined;
    });
    expect(sample(after, 'lodestone_pool_addresses_in_use{pool="lan",family="IPv4"}')).toBe(lanBefore + 1);
    expect(sample(after, "lodestone_leader ")).toBe(1);
    expect(await (await fetch(`http://127.0.0.1:${daemon.metricsPort}/readyz`)).text()).toBe("ok\n");
  });

  it("every request says which component on which node sent it, every write with its field manager", async () => {
    const ours = env.sandbox.audit.records().filter((r) => r.userAgent.startsWith("lodestone"));
    expect(ours.length).toBeGreaterThan(0);
    const agents = new Set(ours.map((r) => r.userAgent));
    expect([...agents]).toEqual([`lodestone/${lodestoneVersion()} (controller; node node-0)`]);
    expect(lodestoneVersion()).toMatch(/^\d+\.\d+\.\d+/);
    const writes = ours.filter((r) => ["create", "update", "patch"].includes(r.verb));
    // Status and annotation writes, Events, the Lease, the heartbeat key Secret (created by the leader): each names
    // the controller as its field manager.
    expect(new Set(writes.map((r) => r.resource))).toEqual(
      new Set(["services", "services/status", "events", "leases", "secrets"]),
    );
    expect(new Set(writes.map((r) => r.fieldManager))).toEqual(new Set(["lodestone-controller"]));
    // Reads and watches carry no field manager; the test's own client-node calls are not the daemon's.
    expect(ours.filter((r) => r.verb === "watch").every((r) => r.fieldManager === "")).toBe(true);
  });

  it("kubectl describe svc shows LoadBalancer Ingress and the Events", async () => {
    const { stdout } = await run("kubectl", [
      "--kubeconfig",
      env.sandbox.kubeconfigPath,
      "describe",
      "svc",
      "-n",
      apps,
      "v4",
    ]);
    expect(stdout).toMatch(/LoadBalancer Ingress:\s+192\.0\.2\.0/);
    expect(stdout).toMatch(/Normal\s+IPAllocated\s+.*Assigned IP 192\.0\.2\.0 from pool lan/);
  });
});
