import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnnounceClaim } from "../../src/core/announce-plan.ts";
import { rankKey } from "../../src/core/announcer-ranking.ts";
import { type IpAddress, formatIp, parseIp } from "../../src/core/ip.ts";
import { emptyTelemetry } from "../../src/core/telemetry.ts";
import { createMetricsRegistry } from "../../src/http/metrics.ts";
import { type Speaker, type SpeakerAnnouncer, createSpeaker } from "../../src/app/speaker.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import { ANNOUNCING_ANNOTATION } from "../../src/core/well-known.ts";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { createOrFail, createPoolNamespace, fastMembership, lanIfaces, startSpeakerCompanion } from "./speaker-env.ts";

/**
 * Three in-process speakers (fake announcers, real heartbeats over loopback UDP) against the embedded API server:
 * election, failover on a dead peer, handoff, fencing when one speaker loses the API, eTP Local.
 * Timing is scaled down 3x from the defaults so the fencing scenario stays short.
 */
const timing = fastMembership;
const ns = `ls-speaker-${process.pid}`;
const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });
const loopback = parseIp("127.0.0.1")!;

let sandbox: Sandbox;
let admin: KubeClient;
let stopCompanion: (() => Promise<void>) | undefined;

/** A client whose requests can be made to fail as if the API were unreachable; it counts its EndpointSlice lists. */
function cuttable(inner: KubeClient) {
  const state = { cut: false, sliceLists: 0, ownSliceLists: 0 };
  const client: KubeClient = {
    request: (req) => {
      if (req.method === "GET" && req.path === "/apis/discovery.k8s.io/v1/endpointslices" && !req.query?.continue) {
        state.sliceLists++;
      }
      if (req.method === "GET" && req.path.endsWith("/endpointslices") && req.query?.labelSelector !== undefined) {
        state.ownSliceLists++;
      }
      return state.cut ? Promise.resolve({ status: 0, body: { message: "cut by test" } }) : inner.request(req);
    },
    watch: (path, q, line, done) => inner.watch(path, q, line, done),
    close: () => inner.close(),
  };
  return { client, state };
}

interface Member {
  name: string;
  speaker: Speaker;
  claims: () => readonly AnnounceClaim[];
  cut: { cut: boolean; sliceLists: number; ownSliceLists: number };
  /** IPs the speaker asked its announcer to announce again (its defence against another claimant). */
  reannounced: string[];
}
const members = new Map<string, Member>();

/** The LAN as the fake announcers see it: a new claim is a gratuitous announcement every other member hears. */
const wire = new Map<string, Set<(seen: { ip: IpAddress }) => void>>();

function startMember(name: string): Member {
  let current: readonly AnnounceClaim[] = [];
  const reannounced: string[] = [];
  const announcer: SpeakerAnnouncer = {
    reconcile: (c) => {
      const before = new Set(current.map((x) => formatIp(x.ip)));
      current = c;
      for (const claim of c) {
        if (before.has(formatIp(claim.ip))) continue;
        for (const [other, listeners] of wire) {
          if (other !== name) for (const hear of listeners) hear({ ip: claim.ip });
        }
      }
    },
    telemetry: () => ({ layer2: [], layer2Drops: [] }),
    onForeignAnnouncement: (listener) => {
      const listeners = wire.get(name) ?? new Set();
      wire.set(name, listeners.add(listener));
      return () => listeners.delete(listener);
    },
    announceNow: (ip) => reannounced.push(formatIp(ip)),
    close: () => undefined,
  };
  const { client, state } = cuttable(createKubeClient(kc()));
  const speaker = createSpeaker({
    client,
    namespace: ns,
    nodeName: name,
    logger: logger.child({ n: name }),
    createAnnouncer: async () => ({ ok: true, value: announcer }),
    heartbeatPort: 0,
    heartbeatAddress: loopback,
    timing,
    handoffMs: 3_000,
    scanInterfaces: lanIfaces,
  });
  const m = { name, speaker, claims: () => current, cut: state, reannounced };
  members.set(name, m);
  void speaker.start();
  return m;
}

function kc(): KubeConfig {
  const k = new KubeConfig();
  k.loadFromString(sandbox.kubeconfigYaml);
  return k;
}

const create = (path: string, body: unknown): Promise<void> => createOrFail(admin, path, body);

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 5_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const owners = (ip: IpAddress) =>
  [...members.values()].filter((m) => m.claims().some((c) => formatIp(c.ip) === formatIp(ip))).map((m) => m.name);

async function service(name: string, ip: string | string[], spec: Record<string, unknown> = {}) {
  await create(`/api/v1/namespaces/${ns}/services`, {
    metadata: { name, namespace: ns },
    spec: { type: "LoadBalancer", ports: [{ port: 80 }], ...spec },
  });
  const ingress = (typeof ip === "string" ? [ip] : ip).map((x) => ({ ip: x }));
  const r = await admin.request({
    method: "PATCH",
    path: `/api/v1/namespaces/${ns}/services/${name}/status`,
    body: { status: { loadBalancer: { ingress } } },
  });
  expect(r.status).toBe(200);
}

beforeAll(async () => {
  sandbox = await startSandbox();
  admin = createKubeClient(kc());
  await createPoolNamespace(
    admin,
    ns,
    '- name: lan\n  addresses: [192.0.2.100-192.0.2.199, "2001:db8::100-2001:db8::1ff"]\n',
  );
  // The controller's part: the heartbeat key, and the announcing-node annotation from the speakers' reports.
  stopCompanion = await startSpeakerCompanion(admin, ns, logger);
  for (const n of ["node1", "node2", "node3"]) {
    await create("/api/v1/nodes", {
      metadata: { name: n, labels: { "kubernetes.io/hostname": n } },
      status: {
        conditions: [{ type: "Ready", status: "True" }],
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
      },
    });
    startMember(n);
  }
});

afterAll(async () => {
  await Promise.all([...members.values()].map((m) => m.speaker.stop()));
  await stopCompanion?.();
  await admin?.close();
  await sandbox?.stop();
});

async function get(path: string): Promise<Record<string, unknown>> {
  const r = await admin.request({ method: "GET", path });
  return r.body as Record<string, unknown>;
}
const annotationOf = async (name: string) =>
  ((await get(`/api/v1/namespaces/${ns}/services/${name}`))["metadata"] as { annotations?: Record<string, string> })
    .annotations?.[ANNOUNCING_ANNOTATION];
const eventsOf = async (name: string) =>
  (
    (await get(`/api/v1/namespaces/${ns}/events`))["items"] as {
      involvedObject: { name: string };
      reason: string;
      message: string;
    }[]
  ).filter((e) => e.involvedObject.name === name);
const single = (ip: IpAddress) => () => (owners(ip).length === 1 ? owners(ip)[0] : undefined);

/** The single owner once it has not changed for 400 ms (a rejoining speaker takes its IPs back after a settle). */
async function stableOwner(ip: IpAddress): Promise<string> {
  let last: string | undefined;
  let since = Date.now();
  return until("a stable owner", () => {
    const o = single(ip)();
    if (o !== last) {
      last = o;
      since = Date.now();
    }
    return o !== undefined && Date.now() - since >= 400 ? o : undefined;
  });
}
/** A member's speaker metrics, rendered by the Prometheus registry the daemon's /metrics serves. */
async function scrape(m: Member): Promise<{ announced: number; members: number; failovers: number; duelling: number }> {
  const text = await createMetricsRegistry(() => ({ ...emptyTelemetry, ...m.speaker.telemetry() })).metrics();
  const value = (name: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`${name} missing from:\n${text}`);
    return Number(line.slice(name.length + 1));
  };
  return {
    announced: value("lodestone_announced_ips"),
    members: value("lodestone_membership_size"),
    failovers: value("lodestone_failover_events_total"),
    duelling: value("lodestone_duelling_announcements_total"),
  };
}
const scrapeAll = async () =>
  Object.fromEntries(await Promise.all([...members.values()].map(async (m) => [m.name, await scrape(m)] as const)));

/** Every speaker's view has all three members (a speaker back from a fault is ready before its peers see it). */
const fullMembership = () =>
  until("three members in every view", async () => {
    const all = await scrapeAll();
    return Object.values(all).every((x) => x.members === 3) ? all : undefined;
  });

/** The three nodes in their election order for an IP (all alive and eligible). */
const rank = (ip: string) =>
  ["node1", "node2", "node3"].sort((a, b) => (rankKey(a, parseIp(ip)!) < rankKey(b, parseIp(ip)!) ? -1 : 1));

const allReady = () => until("all speakers ready", () => [...members.values()].every((m) => m.speaker.readiness().ok));

describe("speaker component against the sandbox", () => {
  const vip = parseIp("192.0.2.100")!;

  it("exactly one speaker announces a Service's IP, and records it on the Service", async () => {
    await allReady();
    await service("web", "192.0.2.100");
    const owner = await stableOwner(vip);
    await new Promise((r) => setTimeout(r, 300));
    expect(owners(vip)).toEqual([owner]);
    // The first annotation may come from a transient owner while the speakers join; it must end on the owner.
    expect(await until("annotation", async () => ((await annotationOf("web")) === owner ? owner : undefined))).toBe(
      owner,
    );
    const events = await until("Announcing event", async () => {
      const e = (await eventsOf("web")).filter((x) => x.reason === "Announcing");
      return e.length > 0 ? e : undefined;
    });
    expect(events[0]!.message).toBe(`Announcing 192.0.2.100 from node ${owner} on eth0`);
  });

  it("the owner answers another host announcing its IP with its own announcement, at most once a second", async () => {
    const owner = await stableOwner(vip);
    const m = members.get(owner)!;
    // Past the one-a-second limit of any defence the start-up (peers joining) may have caused already.
    await new Promise((r) => setTimeout(r, 1_100));
    const before = m.reannounced.length;
    const duelling = (await scrape(m)).duelling;
    const intruder = (ip: IpAddress) => {
      for (const hear of wire.get(owner) ?? []) hear({ ip });
    };
    intruder(vip);
    intruder(vip);
    intruder(parseIp("192.0.2.150")!); // not an IP this node owns: nothing to defend
    expect(m.reannounced.slice(before)).toEqual(["192.0.2.100"]);
    // Every sighting counts, answered or not; another host's IP is no duel.
    expect((await scrape(m)).duelling - duelling).toBe(2);
    await new Promise((r) => setTimeout(r, 1_100));
    intruder(vip);
    expect(m.reannounced.slice(before)).toEqual(["192.0.2.100", "192.0.2.100"]);
  });

  it("the owner's name comes back when another writer overwrote the announcing-node annotation", async () => {
    const owner = await stableOwner(vip);
    const other = [...members.keys()].find((n) => n !== owner)!;
    const r = await admin.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/services/web`,
      body: { metadata: { annotations: { [ANNOUNCING_ANNOTATION]: other } } },
    });
    expect(r.status).toBe(200);
    expect(
      await until("the owner's name back", async () => ((await annotationOf("web")) === owner ? true : undefined)),
    ).toBe(true);
  });

  it("the announcing-node annotation goes when the IP leaves every pool, and when the Service stops being one", async () => {
    const status = (name: string, ip: string | null) =>
      admin.request({
        method: "PATCH",
        path: `/api/v1/namespaces/${ns}/services/${name}/status`,
        body: { status: { loadBalancer: { ingress: ip === null ? null : [{ ip }] } } },
      });
    const named = (name: string) => until(`${name} annotated`, annotationOf.bind(undefined, name));
    const cleared = (name: string) =>
      until(`${name}'s annotation removed`, async () => ((await annotationOf(name)) === undefined ? true : undefined));
    // Another implementation's Service (another class: a second Lodestone, say) carrying the annotation: not ours to
    // touch, though it is in no plan of these speakers.
    await service("other-class", "192.0.2.112", { loadBalancerClass: "example.com/other" });
    const theirs = await admin.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/services/other-class`,
      body: { metadata: { annotations: { [ANNOUNCING_ANNOTATION]: "elsewhere" } } },
    });
    expect(theirs.status).toBe(200);
    await service("leaves", "192.0.2.110");
    await named("leaves");
    expect((await status("leaves", "203.0.113.7")).status).toBe(200); // in no pool: nobody announces it
    expect(await cleared("leaves")).toBe(true);
    expect(await annotationOf("other-class")).toBe("elsewhere");

    await service("retyped", "192.0.2.111");
    await named("retyped");
    const r = await admin.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/services/retyped`,
      body: { spec: { type: "ClusterIP", allocateLoadBalancerNodePorts: null } },
    });
    expect(r.status).toBe(200);
    expect((await status("retyped", null)).status).toBe(200);
    expect(await cleared("retyped")).toBe(true);
  });

  it("a speaker that dies (no goodbye) is replaced by heartbeat loss, before its Lease could expire", async () => {
    const owner = await stableOwner(vip);
    const m = members.get(owner)!;
    // /metrics before: the one Service IP is announced by its owner only, and every speaker sees three members.
    const before = await fullMembership();
    expect(Object.fromEntries(Object.entries(before).map(([n, x]) => [n, x.announced]))).toEqual(
      Object.fromEntries([...members.keys()].map((n) => [n, n === owner ? 1 : 0])),
    );
    m.cut.cut = true; // keep it from withdrawing through the API; stop() then closes the socket like a crash
    const t0 = performance.now();
    await m.speaker.stop();
    members.delete(owner);
    const next = await until("a new owner", single(vip));
    const took = performance.now() - t0;
    expect(next).not.toBe(owner);
    // Detection is heartbeat loss (deadAfterMs); the Lease (leaseDurationMs) would be 6x slower. The bound leaves
    // room for a loaded machine; the failover figures themselves come from `npm run bench:failover`.
    expect(took).toBeLessThan(timing.leaseDurationMs);
    // /metrics after: two members left, the successor announces the IP (the other survivor none) and counted the
    // failover.
    const after = await until("two members in every surviving view, the IP on the successor only", async () => {
      const all = await scrapeAll();
      const settled = Object.entries(all).every(([n, x]) => x.members === 2 && x.announced === (n === next ? 1 : 0));
      return settled ? all : undefined;
    });
    expect(after[next]!.failovers).toBeGreaterThan(before[next]!.failovers);
    startMember(owner);
    await until("the old owner back", () => members.get(owner)!.speaker.readiness().ok);
  });

  it("handoff: the successor announces before the leaving speaker withdraws", async () => {
    const owner = await stableOwner(vip);
    const m = members.get(owner)!;
    const seen: string[][] = [];
    const probe = setInterval(() => seen.push(owners(vip)), 5);
    const t0 = performance.now();
    await m.speaker.handoff();
    const took = performance.now() - t0;
    clearInterval(probe);
    // It withdrew because it saw the successor announce, not because the 3 s hand-off limit ran out.
    expect(took).toBeLessThan(3_000);
    await m.speaker.stop();
    members.delete(owner);
    expect(seen.some((o) => o.length === 0)).toBe(false);
    expect(seen.some((o) => o.length === 2)).toBe(true);
    expect(await until("successor", single(vip))).not.toBe(owner);
    startMember(owner);
    await until("the old owner back", () => members.get(owner)!.speaker.readiness().ok);
  });

  it("fencing: a speaker cut from the API withdraws, and a peer takes over only after that", async () => {
    const owner = await stableOwner(vip);
    const m = members.get(owner)!;
    const seen: string[][] = [];
    const probe = setInterval(() => seen.push(owners(vip)), 5);
    m.cut.cut = true;
    const next = await until("a new owner", () => (owners(vip)[0] !== owner ? single(vip)() : undefined), 5_000);
    clearInterval(probe);
    expect(next).not.toBe(owner);
    expect(m.claims()).toEqual([]);
    expect(seen.some((o) => o.length === 2)).toBe(false);
    m.cut.cut = false;
    await until("the fenced speaker back", () => m.speaker.readiness().ok);
  });

  it("dual stack: each IP's owner records its own Announcing Event; the annotation names both owners", async () => {
    await fullMembership();
    const v4 = "192.0.2.110";
    // IPv6 addresses whose first choice differs from / equals the IPv4 one (all three nodes alive and eligible).
    const candidates = Array.from({ length: 40 }, (_, i) => `2001:db8::${(0x100 + i).toString(16)}`);
    const split = candidates.find((ip) => rank(ip)[0] !== rank(v4)[0])!;
    const v4b = "192.0.2.111";
    const same = candidates.find((ip) => rank(ip)[0] === rank(v4b)[0])!;
    await service("dual", [v4, split]);
    await service("dual-same", [same, v4b]);
    const [o4, o6] = [rank(v4)[0]!, rank(split)[0]!];
    await until(
      `IPv4 on ${o4}, IPv6 on ${o6}`,
      () => single(parseIp(v4)!)() === o4 && single(parseIp(split)!)() === o6,
    );
    const both = `${v4}=${o4},${split}=${o6}`;
    await until(`annotation ${both}`, async () => (await annotationOf("dual")) === both);
    // A loaded machine can make a speaker miss heartbeats and announce for a moment, with an Event of its own:
    // what matters is that every IP has the Event of its owner.
    const announcingEvents = (name: string, expected: string[]) =>
      until(`an Announcing Event per IP of ${name}`, async () => {
        const e = (await eventsOf(name)).filter((x) => x.reason === "Announcing").map((x) => x.message);
        return expected.every((m) => e.includes(m)) ? e : undefined;
      });
    await announcingEvents("dual", [
      `Announcing ${v4} from node ${o4} on eth0`,
      `Announcing ${split} from node ${o6} on eth0`,
    ]);
    // Every IP with the same owner: the plain node name, as for a single-IP Service.
    const o = rank(v4b)[0]!;
    await until(`annotation ${o} on dual-same`, async () => (await annotationOf("dual-same")) === o);
    // ...and still one Announcing Event per IP, though one node owns both.
    await announcingEvents("dual-same", [
      `Announcing ${v4b} from node ${o} on eth0`,
      `Announcing ${same} from node ${o} on eth0`,
    ]);
    // The two owners do not overwrite each other.
    await new Promise((r) => setTimeout(r, 300));
    expect(await annotationOf("dual")).toBe(both);
  });

  it("externalTrafficPolicy Local follows the ready endpoints", async () => {
    const ip = parseIp("192.0.2.101")!;
    await service("local", "192.0.2.101", { externalTrafficPolicy: "Local" });
    await until("a NotAnnounced event", async () =>
      (await eventsOf("local")).some((e) => e.reason === "NotAnnounced" && /local endpoint/.test(e.message)),
    );
    expect(owners(ip)).toEqual([]);
    for (const node of ["node2", "node3"]) {
      await create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
        metadata: { name: `local-${node}`, namespace: ns, labels: { "kubernetes.io/service-name": "local" } },
        addressType: "IPv4",
        endpoints: [{ addresses: ["10.0.0.1"], nodeName: node, conditions: { ready: node === "node3" } }],
      });
    }
    expect(await until("owner node3", single(ip))).toBe("node3");
  });

  it("externalTrafficPolicy Cluster → Local → Cluster → Local: the endpoints are those of the moment", async () => {
    await fullMembership();
    const text = "192.0.2.102";
    const ip = parseIp(text)!;
    const [first, second, third] = rank(text) as [string, string, string];
    // Lists of one Service's slices (label kubernetes.io/service-name), and of the whole cluster's.
    const lists = () => [...members.values()].map((m) => m.cut.ownSliceLists);
    const clusterLists = () => [...members.values()].map((m) => m.cut.sliceLists);
    const patch = async (path: string, body: unknown) =>
      expect((await admin.request({ method: "PATCH", path, body })).status).toBe(200);
    const policy = (p: "Local" | "Cluster") =>
      patch(`/api/v1/namespaces/${ns}/services/flip`, { spec: { externalTrafficPolicy: p } });
    const ready = (node: string, r: boolean) =>
      patch(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/flip-${node}`, {
        endpoints: [{ addresses: ["10.0.0.2"], nodeName: node, conditions: { ready: r } }],
      });
    await service("flip", text);
    for (const node of [first, second, third]) {
      await create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
        metadata: { name: `flip-${node}`, namespace: ns, labels: { "kubernetes.io/service-name": "flip" } },
        addressType: "IPv4",
        endpoints: [{ addresses: ["10.0.0.2"], nodeName: node, conditions: { ready: node === third } }],
      });
    }
    // Cluster: the first in rank, without a ready endpoint; the speakers kept none of these slices.
    expect(await stableOwner(ip)).toBe(first);
    const beforeLocal = lists();
    const clusterBefore = clusterLists();

    await policy("Local");
    await until(`${third} (the only ready endpoint) announces`, () => single(ip)() === third || undefined);
    expect(await stableOwner(ip)).toBe(third);
    // Each speaker listed this Service's slices to learn them (no slice event would have brought them), and only
    // those: nobody listed the whole cluster's.
    expect(lists().every((n, i) => n > beforeLocal[i]!)).toBe(true);
    expect(clusterLists()).toEqual(clusterBefore);
    // While they were being listed, the Service was left out, not reported as having no local endpoint.
    expect((await eventsOf("flip")).filter((e) => e.reason === "NotAnnounced")).toEqual([]);

    // Back to Cluster; the endpoints move while it is Cluster...
    await policy("Cluster");
    expect(await stableOwner(ip)).toBe(first);
    await ready(third, false);
    await ready(second, true);
    await new Promise((r) => setTimeout(r, 200));
    const beforeSecondLocal = lists();
    // ...and Local again: the node with a ready endpoint now, not the one that had it before.
    await policy("Local");
    await until(`${second} announces`, () => single(ip)() === second || undefined);
    expect(await stableOwner(ip)).toBe(second);
    // Its own slice informer kept following it while it was Cluster: nothing had to be listed again.
    expect(lists()).toEqual(beforeSecondLocal);

    // Local → Cluster → Local with no slice change in between: the kept slices still hold, nothing is listed.
    await policy("Cluster");
    expect(await stableOwner(ip)).toBe(first);
    const unchanged = lists();
    await policy("Local");
    expect(await stableOwner(ip)).toBe(second);
    expect(lists()).toEqual(unchanged);
  });
});
