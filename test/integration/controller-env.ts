import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Service } from "@kubernetes/client-node";
import pino from "pino";
import { startSandbox, type Sandbox, type SandboxOptions } from "../../src/sandbox/index.ts";
import { startDaemon, type Daemon, type DaemonOptions } from "../../src/app/daemon.ts";

/** Shared fixture of the controller's integration tests: one sandbox, the real client, daemons on demand. */
export const NS = "lodestone-system";
export const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
export const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const fastLease = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };

export interface Env {
  sandbox: Sandbox;
  kc: KubeConfig;
  core: CoreV1Api;
  daemons: Daemon[];
  daemon(extra?: Partial<DaemonOptions>): Promise<Daemon>;
  stop(): Promise<void>;
}

export async function startEnv(namespaces: readonly string[] = [], options: SandboxOptions = {}): Promise<Env> {
  const sandbox = await startSandbox(options);
  const kc = new KubeConfig();
  kc.loadFromString(sandbox.kubeconfigYaml);
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [NS, ...namespaces]) await core.createNamespace({ body: { metadata: { name } } });
  const env: Env = {
    sandbox,
    kc,
    core,
    daemons: [],
    async daemon(extra = {}) {
      const d = await startDaemon(
        {
          kubeConfig: kc,
          namespace: NS,
          nodeName: `node-${env.daemons.length}`,
          identity: `ctl-${process.pid}-${env.daemons.length}`,
          metricsPort: -1,
          speaker: false,
          lease: fastLease,
          informerBackoff: { initialMs: 50, maxMs: 1000 },
          ...extra,
        },
        quiet,
      );
      env.daemons.push(d);
      return d;
    },
    async stop() {
      await Promise.all(env.daemons.map((d) => d.stop("test over")));
      await sandbox.stop();
    },
  };
  return env;
}

export async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 8000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err: unknown) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function pools(core: CoreV1Api, name: string, yaml: string, extraData: Record<string, string> = {}) {
  const body = {
    metadata: { name, namespace: NS, labels: { "lodestone.dev/pools": "true" } },
    data: { "pools.yaml": yaml, ...extraData },
  };
  try {
    await core.readNamespacedConfigMap({ name, namespace: NS });
    await core.replaceNamespacedConfigMap({ name, namespace: NS, body });
  } catch {
    await core.createNamespacedConfigMap({ namespace: NS, body });
  }
}

export interface SvcSpec {
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  spec?: V1Service["spec"];
}

export function lb(core: CoreV1Api, namespace: string, name: string, s: SvcSpec = {}): Promise<V1Service> {
  return core.createNamespacedService({
    namespace,
    body: {
      metadata: {
        name,
        ...(s.annotations ? { annotations: s.annotations } : {}),
        ...(s.labels ? { labels: s.labels } : {}),
      },
      spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }], selector: { app: name }, ...s.spec },
    },
  });
}

/** The ingress IPs of a Service, or undefined while it has none. */
export async function ingress(core: CoreV1Api, namespace: string, name: string): Promise<string[] | undefined> {
  const s = await core.readNamespacedService({ namespace, name });
  const ips = (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "");
  return ips.length === 0 ? undefined : ips;
}

export async function events(
  core: CoreV1Api,
  namespace: string,
  name: string,
): Promise<{ reason: string; message: string; type: string; count: number }[]> {
  const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => ({
    reason: e.reason ?? "",
    message: e.message ?? "",
    type: e.type ?? "",
    count: e.count ?? 0,
  }));
}

export async function eventWith(core: CoreV1Api, namespace: string, name: string, reason: string, text = "") {
  return until(`${reason} event on ${namespace}/${name}${text ? ` mentioning "${text}"` : ""}`, async () =>
    (await events(core, namespace, name)).find((e) => e.reason === reason && e.message.includes(text)),
  );
}
