// The speaker's part of /healthz against the embedded API server: an evaluation that never settles (here: an
// announcer whose reconcile hangs) makes the daemon not live once it passes the limit, and live again once it
// settles. One in-process speaker, a fake announcer, loopback heartbeats.
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnnounceClaim } from "../../src/core/announce-plan.ts";
import { formatIp, parseIp } from "../../src/core/ip.ts";
import { livenessOf } from "../../src/core/liveness.ts";
import { type Speaker, createSpeaker } from "../../src/app/speaker.ts";
import { ensureMemberlistSecret } from "../../src/kube/speaker-resources.ts";
import { type KubeClient, createKubeClient } from "../../src/kube/client.ts";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.ts";
import { fastMembership, lanIfaces } from "./speaker-env.ts";
import { until } from "./controller-env.ts";

const ns = `ls-speaker-live-${process.pid}`;
const STALL_MS = 300;
let sandbox: Sandbox;
let admin: KubeClient;
let speaker: Speaker;
let claimed: readonly AnnounceClaim[] = [];
/** While set, the announcer's reconcile returns a promise that settles only when the test calls it. */
let hang: Promise<void> | undefined;
let release: () => void = () => undefined;

async function create(path: string, body: unknown): Promise<void> {
  const r = await admin.request({ method: "POST", path, body });
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
}

beforeAll(async () => {
  sandbox = await startSandbox();
  const kc = new KubeConfig();
  kc.loadFromString(sandbox.kubeconfigYaml);
  admin = createKubeClient(kc);
  await create("/api/v1/namespaces", { metadata: { name: ns } });
  await create(`/api/v1/namespaces/${ns}/configmaps`, {
    metadata: { name: "pools", namespace: ns, labels: { "lodestone.dev/pools": "true" } },
    data: { "pools.yaml": "- name: lan\n  addresses: [192.0.2.100-192.0.2.109]\n" },
  });
  await create("/api/v1/nodes", {
    metadata: { name: "solo", labels: { "kubernetes.io/hostname": "solo" } },
    status: {
      conditions: [{ type: "Ready", status: "True" }],
      addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
    },
  });
  // The controller's part: the heartbeat key Secret (the speaker only reads it).
  expect(await ensureMemberlistSecret(admin, ns)).toBeUndefined();
  speaker = createSpeaker({
    client: createKubeClient(kc),
    namespace: ns,
    nodeName: "solo",
    logger: pino({ level: process.env["LOG_LEVEL"] ?? "silent" }),
    createAnnouncer: async () => ({
      ok: true,
      value: {
        reconcile: (c) => {
          claimed = c;
          return hang;
        },
        telemetry: () => ({ layer2: [], layer2Drops: [] }),
        close: () => undefined,
      },
    }),
    heartbeatPort: 0,
    heartbeatAddress: parseIp("127.0.0.1")!,
    timing: fastMembership,
    scanInterfaces: lanIfaces,
    stallMs: STALL_MS,
  });
  await speaker.start();
  await until("speaker ready", () => (speaker.readiness().ok ? true : undefined));
});

afterAll(async () => {
  release();
  await speaker?.stop();
  await admin?.close();
  await sandbox?.stop();
});

describe("speaker liveness", () => {
  it("is not live while an evaluation hangs past the limit, and live again once it settles", async () => {
    expect(livenessOf(speaker.loops())).toEqual({ ok: true, reasons: [] });
    hang = new Promise<void>((resolve) => (release = resolve));
    await create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name: "web", namespace: ns },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    const r = await admin.request({
      method: "PATCH",
      path: `/api/v1/namespaces/${ns}/services/web/status`,
      body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.100" }] } } },
    });
    expect(r.status).toBe(200);
    const hung = await until("not live", () => {
      const l = livenessOf(speaker.loops());
      return l.ok ? undefined : l;
    });
    expect(hung.reasons).toEqual([expect.stringMatching(/^speaker evaluation: one unit of work has run for/)]);
    expect(claimed.map((c) => formatIp(c.ip))).toEqual(["192.0.2.100"]);
    hang = undefined;
    release();
    await until("live again", () => (livenessOf(speaker.loops()).ok ? true : undefined));
  });
});
