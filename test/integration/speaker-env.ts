import { parseIp } from "../../src/core/ip.ts";
import type { InterfaceSummary } from "../../src/core/announcer-ranking.ts";
import type { MembershipTiming } from "../../src/core/membership.ts";
import type { Logger } from "pino";
import { createAnnouncingWriter } from "../../src/app/announcing-writer.ts";
import type { ComponentFactory } from "../../src/app/daemon.ts";
import { speakerComponent } from "../../src/app/speaker-component.ts";
import type { SpeakerAnnouncer } from "../../src/app/speaker.ts";
import { classMatches } from "../../src/app/controller.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { createInformer } from "../../src/kube/informer.ts";
import { systemClock } from "../../src/kube/lease.ts";
import { projectWatchedService } from "../../src/kube/objects.ts";
import { createServiceStatusWriter } from "../../src/kube/service-status-writer.ts";
import { ensureMemberlistSecret, projectLease } from "../../src/kube/speaker-resources.ts";
import { SPEAKER_SELECTOR } from "../../src/core/well-known.ts";

/** Shared by the integration tests that run speakers in process (fake announcer, loopback heartbeats). */

/** The default membership timing with fencing scaled down 10x, so the scenarios stay short. */
export const fastMembership: MembershipTiming = {
  // Heartbeats at 100 ms and the production dead-after (600 ms): the speakers share one event loop with the API
  // server and the test, and a loaded machine stalls it for hundreds of ms — a shorter dead-after turns every
  // stall into a false suspicion (and the tests into a measure of the machine, not of the speaker).
  heartbeatIntervalMs: 100,
  deadAfterMs: 600,
  renewIntervalMs: 200,
  fenceAfterMs: 600,
  // Fencing margin (Lease duration minus fence-after) 1.8 s: room for event-loop stalls of a loaded test machine
  // running three speakers and the API server in one process (production: 10 s - 6 s = 4 s).
  leaseDurationMs: 2_400,
  maxClockSkewMs: 10_000,
};

/** What the interface scan of a node on 192.0.2.0/24 and 2001:db8::/64 finds: one interface, eth0, no default route. */
export const lanIfaces = async (): Promise<InterfaceSummary[]> => [
  {
    name: "eth0",
    prefixes: [
      { ip: parseIp("192.0.2.10")!, bits: 24 },
      { ip: parseIp("2001:db8::10")!, bits: 64 },
    ],
    defaultRoute4: false,
    defaultRoute6: false,
  },
];

/** POST that must create (201), else the test's set-up fails with the API server's answer. */
export async function createOrFail(client: KubeClient, path: string, body: unknown): Promise<void> {
  const r = await client.request({ method: "POST", path, body });
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
}

/** A speaker test's namespace with one pool ConfigMap holding `poolsYaml`. */
export async function createPoolNamespace(client: KubeClient, ns: string, poolsYaml: string): Promise<void> {
  await createOrFail(client, "/api/v1/namespaces", { metadata: { name: ns } });
  await createOrFail(client, `/api/v1/namespaces/${ns}/configmaps`, {
    metadata: { name: "pools", namespace: ns, labels: { "lodestone.dev/pools": "true" } },
    data: { "pools.yaml": poolsYaml },
  });
}

/**
 * What the controller does for speakers running without one: creates the heartbeat key Secret and writes the
 * announcing-node annotation from their Leases' reports (its own informers, the real writer). Returns a stop.
 */
export async function startSpeakerCompanion(
  client: KubeClient,
  ns: string,
  logger: Logger,
): Promise<() => Promise<void>> {
  const err = await ensureMemberlistSecret(client, ns);
  if (err !== undefined) throw new Error(err);
  const services = createInformer({
    client,
    logger,
    resource: "services",
    path: "/api/v1/services",
    project: projectWatchedService,
  });
  const leases = createInformer({
    client,
    logger,
    resource: "leases",
    path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
    labelSelector: SPEAKER_SELECTOR,
    project: projectLease,
  });
  const writer = createAnnouncingWriter({
    services,
    leases,
    handlesClass: (cls) => classMatches(cls, undefined),
    writer: createServiceStatusWriter(client),
    clock: systemClock,
    logger,
  });
  services.start();
  leases.start();
  await Promise.all([services.whenSynced(), leases.whenSynced()]);
  writer.start();
  return async () => {
    writer.stop();
    await Promise.all([services.stop(), leases.stop()]);
  };
}

/** An announcer that announces nothing (no packets): the speaker's decisions and API writes are what is tested. */
const silentAnnouncer: SpeakerAnnouncer = {
  reconcile: () => undefined,
  telemetry: () => ({ layer2: [], layer2Drops: [] }),
  close: () => undefined,
};

/** The speaker of a daemon under test: the silent announcer, loopback heartbeats, the LAN's interfaces, fast. */
export const quietSpeaker = (): ComponentFactory =>
  speakerComponent({
    createAnnouncer: async () => ({ ok: true, value: silentAnnouncer }),
    heartbeatPort: 0,
    heartbeatAddress: parseIp("127.0.0.1")!,
    scanInterfaces: lanIfaces,
    timing: fastMembership,
    handoffMs: 50,
  });
