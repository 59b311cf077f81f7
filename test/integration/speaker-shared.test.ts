import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnnounceClaim } from "../../src/core/announce-plan.ts";
import { formatIp, parseIp } from "../../src/core/ip.ts";
import { type Controller, createController } from "../../src/app/controller.ts";
import { type Speaker, createSpeaker } from "../../src/app/speaker.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { until } from "./controller-env.ts";
import { createOrFail, createPoolNamespace, fastMembership, lanIfaces } from "./speaker-env.ts";

/**
 * The daemon's controller and speaker in one process, as `lodestone run` wires them: the speaker reads the
 * controller's Service, pool ConfigMap and Namespace caches instead of watching them again.
 */
const ns = `ls-shared-${process.pid}`;
const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });

let sandbox: Sandbox;
let admin: KubeClient;
let controller: Controller;
let speaker: Speaker;
let claims: readonly AnnounceClaim[] = [];
/** Every watch the daemon's client opened, by collection path. */
const watches: string[] = [];

function kc(): KubeConfig {
  const k = new KubeConfig();
  k.loadFromString(sandbox.kubeconfigYaml);
  return k;
}

const create = (path: string, body: unknown): Promise<void> => createOrFail(admin, path, body);

/** Allocated addresses, and a pool that only serves opt-in spec.externalIPs. */
const POOLS =
  "- name: lan\n  addresses: [192.0.2.100-192.0.2.149]\n" +
  "- name: ext\n  addresses: [192.0.2.150-192.0.2.169]\n  autoAssign: false\n  announce: {externalIPs: true}\n";

/** True once the fake announcer holds the IP, else undefined (what `until` waits on). */
const announced = (ip: string): true | undefined => claims.some((c) => formatIp(c.ip) === ip) || undefined;

beforeAll(async () => {
  sandbox = await startSandbox();
  admin = createKubeClient(kc());
  await createPoolNamespace(admin, ns, POOLS);
  await create("/api/v1/nodes", {
    metadata: { name: "node1", labels: { "kubernetes.io/hostname": "node1" } },
    status: {
      conditions: [{ type: "Ready", status: "True" }],
      addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
    },
  });
  const inner = createKubeClient(kc());
  const client: KubeClient = {
    request: (req) => inner.request(req),
    watch: (path, q, line, done) => {
      watches.push(path);
      return inner.watch(path, q, line, done);
    },
    close: () => inner.close(),
  };
  controller = createController({
    client,
    namespace: ns,
    identity: "node1_test",
    logger,
    lease: { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 200, name: "lodestone-controller" },
  });
  speaker = createSpeaker({
    client,
    namespace: ns,
    nodeName: "node1",
    logger,
    createAnnouncer: async () => ({
      ok: true,
      value: {
        reconcile: (c: readonly AnnounceClaim[]) => (claims = c),
        telemetry: () => ({ layer2: [], layer2Drops: [] }),
        close: () => undefined,
      },
    }),
    heartbeatPort: 0,
    heartbeatAddress: parseIp("127.0.0.1")!,
    timing: fastMembership,
    handoffMs: 50,
    scanInterfaces: lanIfaces,
    shared: controller.watched,
    // One Event queued (and, past that backlog, eight writes in flight): a pass with more overflows (the Events test).
    maxQueuedEvents: 1,
  });
  controller.start();
  await speaker.start();
});

afterAll(async () => {
  await speaker?.stop();
  await controller?.stop();
  await admin?.close();
  await sandbox?.stop();
});

describe("speaker sharing the controller's caches", () => {
  it("announces what the controller allocates, watching Services, ConfigMaps and Namespaces once", async () => {
    await create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name: "web", namespace: ns },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    await until("the allocated IP announced", () => announced("192.0.2.100"));
    const once = (suffix: string): number => watches.filter((p) => p.endsWith(suffix)).length;
    expect(once("/services")).toBe(1);
    expect(once("/configmaps")).toBe(1);
    expect(once("/api/v1/namespaces")).toBe(1);
    expect(once("/endpointslices")).toBe(1);
  });

  it("announces a ClusterIP Service's opt-in spec.externalIPs (the shared cache keeps such Services)", async () => {
    await create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name: "ext", namespace: ns },
      spec: { type: "ClusterIP", externalIPs: ["192.0.2.150"], ports: [{ port: 80 }] },
    });
    await until("the external IP announced", () => announced("192.0.2.150"));
    expect(controller.watched.services.get(`${ns}/ext`)?.ingress).toEqual([]);
  });

  it("Events that do not fit in the queue are recorded on a later pass, none lost", async () => {
    const names = Array.from({ length: 12 }, (_, i) => `optin-${i}`);
    for (const [i, name] of names.entries()) {
      await create(`/api/v1/namespaces/${ns}/services`, {
        metadata: { name, namespace: ns },
        spec: { type: "ClusterIP", externalIPs: [`192.0.2.${151 + i}`], ports: [{ port: 80 }] },
      });
    }
    await until(
      "the twelve external IPs announced",
      () => names.every((_, i) => announced(`192.0.2.${151 + i}`)) || undefined,
    );
    // One pool change makes all twelve unannounceable in one pass: more NotAnnounced Events than the queue holds.
    const r = await admin.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/configmaps/pools`,
      body: { data: { "pools.yaml": POOLS.replace("  announce: {externalIPs: true}\n", "") } },
    });
    expect(r.status).toBe(200);
    const notAnnounced = async (): Promise<string[]> => {
      const e = await admin.request({ method: "GET", path: `/api/v1/namespaces/${ns}/events` });
      const items = (e.body as { items: { involvedObject: { name: string }; reason: string }[] }).items;
      const names = items.filter((x) => x.reason === "NotAnnounced").map((x) => x.involvedObject.name);
      return [...new Set(names)].filter((n) => n.startsWith("optin-")).sort();
    };
    await until(
      "a NotAnnounced Event on each of the twelve Services",
      async () => (await notAnnounced()).length === names.length || undefined,
      15_000,
    );
    expect(await notAnnounced()).toEqual([...names].sort());
  });

  it("counts each informer's restarts once and reports each loop once", () => {
    const restarts = Object.keys({
      ...controller.telemetry().informerRestarts,
      ...speaker.telemetry().informerRestarts,
    });
    expect(restarts.sort()).toEqual([
      "configmaps",
      // The speakers' Leases: the controller reads their reports, the speaker its peers' membership.
      "leases",
      "namespaces",
      "services",
      "speaker-endpointslices",
      "speaker-nodes",
    ]);
    const loops = [...controller.loops(), ...speaker.loops()].map((l) => l.loop);
    expect(new Set(loops).size).toBe(loops.length);
  });

  it("a stopped speaker leaves the controller's caches running", async () => {
    await speaker.stop();
    await create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name: "after", namespace: ns },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    await until("the controller still sees new Services", () => controller.watched.services.get(`${ns}/after`));
    await until("and still allocates", () => controller.watched.services.get(`${ns}/after`)?.ingress[0]);
  });
});
