import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionState } from "../../src/core/bgp-state.ts";
import { type BgpError, type Result, ok } from "../../src/core/errors.ts";
import { createMetricsRegistry } from "../../src/http/metrics.ts";
import type { Frr } from "../../src/net/frr.ts";
import type { Daemon } from "../../src/app/daemon.ts";
import { type Env, NS, startEnv, until } from "./controller-env.ts";

/**
 * The BGP component inside the real daemon against the embedded API server, with FRR replaced by a recorder: the
 * configuration it would reload, following ConfigMaps, Services, EndpointSlices and the Node; session problems
 * as Warning Events; the drain on stop. The lab (test/lab/bgp-routing.test.ts) runs the same against real FRR.
 */
let env: Env;
let daemon: Daemon;
const NODE = "node-bgp";

/** What FRR would run: every text applied; sessions answer as `peerState` says. */
const frr = {
  applied: [] as string[],
  peerState: new Map<string, Partial<SessionState>>(),
};
const fake: Frr = {
  apply(config: string): Promise<Result<void, BgpError>> {
    frr.applied.push(config);
    return Promise.resolve(ok(undefined));
  },
  sessions(): Promise<Result<SessionState[], BgpError>> {
    const text = frr.applied.at(-1) ?? "";
    const neighbors = [...text.matchAll(/^ neighbor (\S+) remote-as/gm)].map((m) => m[1] ?? "");
    const networks = [...text.matchAll(/^ {2}network /gm)].length;
    return Promise.resolve(
      ok(
        neighbors.map((address) => ({
          address,
          state: "Established",
          established: true,
          prefixesSent: networks,
          bfd: "up" as const,
          ...frr.peerState.get(address),
        })),
      ),
    );
  },
};
const last = (): string => frr.applied.at(-1) ?? "";

const BGP_YAML = `
bgpPeers:
  - {name: tor, peerAddress: 192.0.2.1, peerASN: 64512, myASN: 64513, bfdProfile: fast}
bgpAdvertisements:
  - {name: all, pools: [web], communities: ["64512:7"]}
bfdProfiles:
  - {name: fast, receiveInterval: 100, transmitInterval: 100}
`;

async function request(method: "POST" | "PATCH" | "PUT" | "DELETE", path: string, body?: unknown) {
  const { createKubeClient } = await import("../../src/kube/client.ts");
  const c = createKubeClient(env.kc);
  try {
    const r = await c.request({ method, path, ...(body === undefined ? {} : { body }) });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as Record<string, unknown>;
  } finally {
    await c.close();
  }
}

async function ipOf(name: string): Promise<string> {
  return until(`an IP for ${name}`, async () => {
    const s = await env.core.readNamespacedService({ name, namespace: "default" });
    return s.status?.loadBalancer?.ingress?.[0]?.ip;
  });
}

describe("BGP component (fake FRR, real API server)", () => {
  beforeAll(async () => {
    env = await startEnv();
    await env.core.createNode({ body: { metadata: { name: NODE, labels: { rack: "a" } } } });
    daemon = await env.daemon({
      nodeName: NODE,
      bgp: { createFrr: () => fake, drainMs: 300, pollMs: 50, settleMs: 20, reportAfterMs: 200 },
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it("stays idle (no FRR call) while no bgp.yaml configures a peer", async () => {
    await env.core.createNamespacedConfigMap({
      namespace: NS,
      body: {
        metadata: { name: "pools", labels: { "lodestone.dev/pools": "true" } },
        data: { "pools.yaml": "- {name: web, addresses: [203.0.113.0/28], announce: {layer2: false}}" },
      },
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(frr.applied).toEqual([]);
  });

  it("a peer configured: its session, and every Cluster Service's /32 with the advertisement's community", async () => {
    await env.core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: "bgp", labels: { "lodestone.dev/pools": "true" } }, data: { "bgp.yaml": BGP_YAML } },
    });
    await env.core.createNamespacedService({
      namespace: "default",
      body: { metadata: { name: "web" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }] } },
    });
    const ip = await ipOf("web");
    await until("the /32 in FRR's configuration", () => (last().includes(`  network ${ip}/32`) ? true : undefined));
    expect(last()).toContain(" neighbor 192.0.2.1 bfd profile fast");
    expect(last()).toContain(" set community 64512:7");
    await until("metrics", () => (daemon.telemetry().bgpSessions[0]?.prefixesAdvertised === 1 ? true : undefined));
    const text = await createMetricsRegistry(() => daemon.telemetry()).metrics();
    expect(text).toContain('lodestone_bgp_session_up{peer="tor"} 1');
    expect(text).toContain('lodestone_bgp_prefixes_advertised{peer="tor"} 1');
    expect(text).toContain('lodestone_bfd_session_up{peer="tor"} 1');
  });

  it("a Local Service follows its endpoints: advertised only while this node has a ready one", async () => {
    await env.core.createNamespacedService({
      namespace: "default",
      body: {
        metadata: { name: "local" },
        spec: { type: "LoadBalancer", externalTrafficPolicy: "Local", ports: [{ port: 80 }] },
      },
    });
    const ip = await ipOf("local");
    const slice = (node: string) => ({
      metadata: { name: "local-1", namespace: "default", labels: { "kubernetes.io/service-name": "local" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["198.51.100.7"], conditions: { ready: true }, nodeName: node }],
    });
    await request("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", slice("elsewhere"));
    await new Promise((r) => setTimeout(r, 300));
    expect(last()).not.toContain(`network ${ip}/32`);
    await request("PUT", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/local-1", slice(NODE));
    await until("the Local /32", () => (last().includes(`  network ${ip}/32`) ? true : undefined));
  });

  it("a broken new bgp.yaml keeps the last good one in force", async () => {
    const before = last();
    await env.core.patchNamespacedConfigMap({
      name: "bgp",
      namespace: NS,
      body: [{ op: "replace", path: "/data/bgp.yaml", value: "bgpPeers: [{name: x}]" }],
    });
    const cm = await env.core.readNamespacedConfigMap({ name: "bgp", namespace: NS });
    expect(cm.data?.["bgp.yaml"]).toBe("bgpPeers: [{name: x}]");
    await new Promise((r) => setTimeout(r, 300));
    expect(last()).toBe(before);
    await env.core.patchNamespacedConfigMap({
      name: "bgp",
      namespace: NS,
      body: [{ op: "replace", path: "/data/bgp.yaml", value: BGP_YAML }],
    });
  });

  it("a wrong ASN is a Warning Event on the ConfigMap and a session down in the metrics", async () => {
    frr.peerState.set("192.0.2.1", { established: false, state: "Active", problem: "wrong-asn", prefixesSent: 0 });
    const event = await until("a BGPPeerProblem Event", async () => {
      const list = await env.core.listNamespacedEvent({ namespace: NS });
      return list.items.find((e) => e.reason === "BGPPeerProblem");
    });
    expect(event.type).toBe("Warning");
    expect(event.involvedObject).toMatchObject({ kind: "ConfigMap", name: "bgp" });
    expect(event.message).toMatch(
      /node node-bgp: BGP peer tor \(192\.0\.2\.1\) refused the session at OPEN.*LODESTONE_E_BGP_PEER_ASN/,
    );
    const text = await createMetricsRegistry(() => daemon.telemetry()).metrics();
    expect(text).toContain('lodestone_bgp_session_up{peer="tor"} 0');
    frr.peerState.clear();
  });

  it("the exclusion label withdraws everything; the sessions stay", async () => {
    await env.core.patchNode({
      name: NODE,
      body: [
        { op: "add", path: "/metadata/labels/node.kubernetes.io~1exclude-from-external-load-balancers", value: "" },
      ],
    });
    await until("no networks", () => (!/^ {2}network /m.test(last()) ? true : undefined));
    expect(last()).toContain(" neighbor 192.0.2.1 remote-as 64512");
    await env.core.patchNode({
      name: NODE,
      body: [{ op: "remove", path: "/metadata/labels/node.kubernetes.io~1exclude-from-external-load-balancers" }],
    });
    await until("networks again", () => (/^ {2}network /m.test(last()) ? true : undefined));
  });

  it("stop drains: every prefix withdrawn, sessions kept, then the drain wait, then exit", async () => {
    const t0 = Date.now();
    await daemon.stop("test drain");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(last()).not.toMatch(/^ {2}network /m);
    expect(last()).toContain(" neighbor 192.0.2.1 remote-as 64512");
  });
});
