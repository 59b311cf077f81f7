import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  NS,
  eventWith,
  events,
  ingress,
  lb,
  merge,
  startEnv,
  until,
  type Env,
  type SvcSpec,
} from "./controller-env.ts";
import { checkConfigTexts } from "../../src/cli/check-config.ts";

// The MetalLB <= 0.12 ConfigMap of a cluster being migrated, copied as is (data key `config`), bgp pool and
// peers included: the layer2 pools must work, the rest must be reported by name.
const METALLB_CONFIG = `peers:
- peer-address: 203.0.113.1
  peer-asn: 64501
  my-asn: 64500
address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.0/24]
  avoid-buggy-ips: true
- name: reserved
  protocol: layer2
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [198.51.100.0/30]
- name: uplink
  protocol: bgp
  addresses: [203.0.113.128/25]
`;

const indent = (text: string) =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
const oldManifest = `apiVersion: v1
kind: ConfigMap
metadata: { name: config, namespace: metallb-system }
data:
  config: |
${indent(METALLB_CONFIG)}
`;

const apps = "apps";
const web = "web";
let env: Env;

/** Services as MetalLB left them: an address in status.loadBalancer.ingress before Lodestone ever ran. */
const assignedByMetalLB: {
  namespace?: string;
  name: string;
  ip: string;
  annotations?: Record<string, string>;
  port?: number;
}[] = [
  { name: "kept", ip: "192.0.2.40", annotations: { "metallb.universe.tf/ip-allocated-from-pool": "default" } },
  {
    name: "dns-tcp",
    ip: "192.0.2.50",
    annotations: { "metallb.universe.tf/allow-shared-ip": "dns" },
    port: 53,
  },
  {
    name: "dns-udp",
    ip: "192.0.2.50",
    annotations: { "metallb.universe.tf/allow-shared-ip": "dns" },
    port: 53,
  },
  { name: "on-bgp", ip: "203.0.113.130" },
  // MetalLB shares by key across namespaces too.
  { name: "edge-http", ip: "192.0.2.60", annotations: { "metallb.universe.tf/allow-shared-ip": "edge" } },
  {
    namespace: web,
    name: "edge-https",
    ip: "192.0.2.60",
    annotations: { "metallb.universe.tf/allow-shared-ip": "edge" },
    port: 443,
  },
];

/** The old ConfigMap copied as it is into the daemon's namespace, with the pools label. */
const copyMetalLBConfig = (core: Env["core"]) =>
  core.createNamespacedConfigMap({
    namespace: NS,
    body: {
      metadata: { name: "config", namespace: NS, labels: { "lodestone.dev/pools": "true" } },
      data: { config: METALLB_CONFIG },
    },
  });

/** A LoadBalancer Service with the address MetalLB wrote into its status. */
async function assignedBefore(core: Env["core"], namespace: string, name: string, addr: string, s: SvcSpec = {}) {
  await lb(core, namespace, name, s);
  await core.patchNamespacedServiceStatus(
    { namespace, name, body: { status: { loadBalancer: { ingress: [{ ip: addr }] } } } },
    merge,
  );
}

const ip = (name: string) => until(`IP of ${apps}/${name}`, () => ingress(env.core, apps, name));
const poolOf = (core: Env["core"], namespace: string, name: string) =>
  until(`lodestone.dev/pool on ${namespace}/${name}`, async () => {
    const s = await core.readNamespacedService({ namespace, name });
    return s.metadata?.annotations?.["lodestone.dev/pool"];
  });

describe("drop-in migration from MetalLB (<= 0.12 ConfigMap, MetalLB annotations)", () => {
  beforeAll(async () => {
    env = await startEnv([apps, web]);
    await copyMetalLBConfig(env.core);
    for (const s of assignedByMetalLB) {
      const protocol = s.name.endsWith("-udp") ? "UDP" : "TCP";
      await assignedBefore(env.core, s.namespace ?? apps, s.name, s.ip, {
        ...(s.annotations ? { annotations: s.annotations } : {}),
        spec: { ports: [{ port: s.port ?? 80, protocol }] },
      });
    }
    const daemon = await env.daemon();
    await until("leader", () => (daemon.isLeader() ? true : undefined));
  });
  afterAll(async () => {
    await env?.stop();
  });

  it("check-config on the old ConfigMap names what will not carry over and lists the pools that will", () => {
    const report = checkConfigTexts([{ name: "metallb.yaml", text: oldManifest }]);
    expect(report.exitCode).toBe(1);
    const text = report.lines.join("\n");
    expect(text).toContain('config.peers: MetalLB "peers" is not supported');
    expect(text).toContain(
      'config.address-pools[2] (uplink): address pool "uplink" with protocol bgp is not supported',
    );
    expect(text).toMatch(/^ {2}default +ConfigMap metallb-system\/config +IPv4 254 +IPv6 0 +auto-assign$/m);
    expect(text).toMatch(/^ {2}reserved +ConfigMap metallb-system\/config +IPv4 3 +IPv6 0 +on request only$/m);
  });

  it("addresses MetalLB assigned are kept exactly (shared ones too): recorded, annotated, never rewritten", async () => {
    for (const s of assignedByMetalLB.filter((a) => a.name !== "on-bgp")) {
      const namespace = s.namespace ?? apps;
      expect(await poolOf(env.core, namespace, s.name)).toBe("default");
      expect(await ingress(env.core, namespace, s.name)).toEqual([s.ip]);
      expect((await events(env.core, namespace, s.name)).filter((e) => e.reason === "IPAllocated")).toEqual([]);
    }
  });

  it("the copied ConfigMap gets one ConfigInvalid Warning naming the bgp pool and peers", async () => {
    const ev = await eventWith(env.core, NS, "config", "ConfigInvalid");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain('"uplink"');
    expect(ev.message).toContain("config.peers");
    expect(ev.message).toContain("LODESTONE_E_UNSUPPORTED");
    expect(ev.message).toContain("only its valid pools are used");
  });

  it("metallb.universe.tf/address-pool picks that pool (avoid-buggy-ips skips .0) and earns DeprecatedAnnotation", async () => {
    await lb(env.core, apps, "by-pool", { annotations: { "metallb.universe.tf/address-pool": "reserved" } });
    expect(await ip("by-pool")).toEqual(["198.51.100.1"]);
    expect(await poolOf(env.core, apps, "by-pool")).toBe("reserved");
    const ev = await eventWith(env.core, apps, "by-pool", "DeprecatedAnnotation", "metallb.universe.tf/address-pool");
    expect(ev.type).toBe("Warning");
  });

  it.each([
    {
      desc: "metallb.universe.tf/loadBalancerIPs",
      name: "by-ip",
      key: "metallb.universe.tf/loadBalancerIPs",
      want: "192.0.2.77",
    },
    {
      desc: "metallb.io/loadBalancerIPs in an auto-assign: false pool",
      name: "by-ip-io",
      key: "metallb.io/loadBalancerIPs",
      want: "198.51.100.3",
    },
  ])("$desc is honoured exactly", async ({ name, key, want }) => {
    await lb(env.core, apps, name, { annotations: { [key]: want } });
    expect(await ip(name)).toEqual([want]);
    await eventWith(env.core, apps, name, "DeprecatedAnnotation", key);
  });

  it("metallb.universe.tf/allow-shared-ip: a TCP and a UDP Service with one key share one new address", async () => {
    const shared = { "metallb.universe.tf/allow-shared-ip": "quic" };
    await lb(env.core, apps, "quic-tcp", { annotations: shared, spec: { ports: [{ port: 443, protocol: "TCP" }] } });
    await lb(env.core, apps, "quic-udp", { annotations: shared, spec: { ports: [{ port: 443, protocol: "UDP" }] } });
    const [a] = await ip("quic-tcp");
    expect(a).toMatch(/^192\.0\.2\./);
    expect(await ip("quic-udp")).toEqual([a]);
    // As in MetalLB, the key only allows sharing: a member whose port is taken gets an address of its own …
    await lb(env.core, apps, "quic-more", { annotations: shared, spec: { ports: [{ port: 443, protocol: "UDP" }] } });
    const [own] = await ip("quic-more");
    expect(own).toMatch(/^192\.0\.2\./);
    expect(own).not.toBe(a);
    // … and one that names the shared address explicitly is refused with the clashing port.
    await lb(env.core, apps, "quic-clash", {
      annotations: { ...shared, "metallb.universe.tf/loadBalancerIPs": a ?? "" },
      spec: { ports: [{ port: 443, protocol: "TCP" }] },
    });
    const ev = await eventWith(env.core, apps, "quic-clash", "SharingConflict", "TCP/443");
    expect(ev.type).toBe("Warning");
    expect(await ingress(env.core, apps, "quic-clash")).toBeUndefined();
  });

  it("the bgp pool is never used: asking for it or one of its addresses fails with a reason", async () => {
    await lb(env.core, apps, "ask-uplink", { annotations: { "metallb.universe.tf/address-pool": "uplink" } });
    await lb(env.core, apps, "ask-bgp-ip", { annotations: { "metallb.universe.tf/loadBalancerIPs": "203.0.113.140" } });
    expect((await eventWith(env.core, apps, "ask-uplink", "AllocationFailed")).message).toContain(
      "LODESTONE_E_POOL_NOT_FOUND",
    );
    expect((await eventWith(env.core, apps, "ask-bgp-ip", "AllocationFailed")).message).toContain(
      "LODESTONE_E_IP_NOT_IN_POOL",
    );
  });

  it("a Service holding an address of the bgp pool moves to a layer2 pool, and the Event says from where", async () => {
    const ev = await eventWith(env.core, apps, "on-bgp", "IPAllocated", "(was 203.0.113.130)");
    expect(ev.message).toMatch(/^Assigned IP 192\.0\.2\.\d+ from pool default/);
    expect((await ip("on-bgp"))[0]).toMatch(/^192\.0\.2\./);
  });

  it("afterwards no address is held twice except by Services sharing it, and none ends in .0 or .255", async () => {
    const list = await env.core.listServiceForAllNamespaces();
    const holders = new Map<string, string[]>();
    for (const s of list.items) {
      for (const i of s.status?.loadBalancer?.ingress ?? []) {
        holders.set(i.ip ?? "", [...(holders.get(i.ip ?? "") ?? []), s.metadata?.name ?? ""]);
      }
    }
    const twice = Object.fromEntries([...holders].filter(([, names]) => names.length > 1));
    const [quic = "?"] = await ip("quic-tcp");
    expect(twice).toEqual({
      "192.0.2.50": ["dns-tcp", "dns-udp"],
      "192.0.2.60": ["edge-http", "edge-https"],
      [quic]: ["quic-tcp", "quic-udp"],
    });
    expect([...holders.keys()].filter((a) => /\.(0|255)$/.test(a))).toEqual([]);
    expect(holders.get("192.0.2.40")).toEqual(["kept"]);
  });
});

describe("Lodestone installed before the pool ConfigMap exists", () => {
  let late: Env;
  const recorded = { first: "192.0.2.3", second: "192.0.2.1" };
  beforeAll(async () => {
    late = await startEnv([apps]);
    for (const [name, addr] of Object.entries(recorded)) await assignedBefore(late.core, apps, name, addr);
    const daemon = await late.daemon();
    await until("leader", () => (daemon.isLeader() ? true : undefined));
  });
  afterAll(async () => {
    await late?.stop();
  });

  it("leaves MetalLB's addresses in place while no pool exists, then adopts them (no renumbering)", async () => {
    for (const name of Object.keys(recorded)) {
      const ev = await eventWith(late.core, apps, name, "AllocationFailed");
      expect(ev.message).toContain("LODESTONE_E_NO_POOLS");
    }
    for (const [name, addr] of Object.entries(recorded)) expect(await ingress(late.core, apps, name)).toEqual([addr]);
    await copyMetalLBConfig(late.core);
    // A Service created with the pools races the recorded ones for the first free addresses.
    await lb(late.core, apps, "newcomer");
    for (const name of Object.keys(recorded)) await poolOf(late.core, apps, name);
    for (const [name, addr] of Object.entries(recorded)) {
      expect(await ingress(late.core, apps, name)).toEqual([addr]);
      expect((await events(late.core, apps, name)).filter((e) => e.reason === "IPAllocated")).toEqual([]);
    }
    const [fresh] = await until("IP of newcomer", () => ingress(late.core, apps, "newcomer"));
    expect(Object.values(recorded)).not.toContain(fresh);
  });
});

describe("a MetalLB config written as MetalLB reads it (YAML 1.1 booleans, any pool name, empty BGP sections)", () => {
  // Valid for MetalLB 0.12 (go-yaml v2 into typed fields, internal/config/config.go Parse), so valid here.
  const config = `peers: []
bgp-communities: {}
address-pools:
- name: my pool
  protocol: layer2
  auto-assign: no
  avoid-buggy-ips: yes
  addresses: [192.0.2.0/29]
`;
  let env2: Env;
  beforeAll(async () => {
    env2 = await startEnv([apps]);
    const daemon = await env2.daemon();
    await until("leader", () => (daemon.isLeader() ? true : undefined));
    await env2.core.createNamespacedConfigMap({
      namespace: NS,
      body: {
        metadata: { name: "legacy", namespace: NS, labels: { "lodestone.dev/pools": "true" } },
        data: { config },
      },
    });
  });
  afterAll(async () => {
    await env2?.stop();
  });

  it("applies the pool under its name with a Warning naming the name, and no ConfigInvalid", async () => {
    const ev = await eventWith(env2.core, NS, "legacy", "ConfigApplied");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toMatch(/^pools in force: my pool; warnings: .*"my pool".*\[LODESTONE_W_POOL_NAME\]$/);
    expect((await events(env2.core, NS, "legacy")).filter((e) => e.reason === "ConfigInvalid")).toEqual([]);
  });

  it("the annotation names the pool; auto-assign: no keeps it off unasked; a re-created Service gets its address back", async () => {
    const byName = { annotations: { "metallb.universe.tf/address-pool": "my pool" } };
    await lb(env2.core, apps, "named", byName);
    // avoid-buggy-ips: yes skips 192.0.2.0; the lowest free address, as MetalLB hands out.
    expect(await until("IP of named", () => ingress(env2.core, apps, "named"))).toEqual(["192.0.2.1"]);
    await lb(env2.core, apps, "unasked");
    await eventWith(env2.core, apps, "unasked", "AllocationFailed", "LODESTONE_E_NO_POOLS");
    await lb(env2.core, apps, "second", byName);
    expect(await until("IP of second", () => ingress(env2.core, apps, "second"))).toEqual(["192.0.2.2"]);
    // Deleted, and created again (under another name, so the address cannot simply stay with the key): the
    // released address is the lowest free one again.
    await env2.core.deleteNamespacedService({ namespace: apps, name: "named" });
    await lb(env2.core, apps, "recreated", byName);
    expect(await until("IP of recreated", () => ingress(env2.core, apps, "recreated"))).toEqual(["192.0.2.1"]);
  });
});
