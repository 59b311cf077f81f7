import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { Pool } from "../core/config.ts";
import { emptyTelemetry, type ProbeResult, type TelemetrySnapshot } from "../core/telemetry.ts";
import { livenessOf, type LoopReport } from "../core/liveness.ts";
import { startLoopLagSampler } from "./loop-lag.ts";
import { startHealthServer, type HealthServer } from "../http/server.ts";
import {
  createKubeClient,
  loadKubeConfig,
  lodestoneUserAgent,
  type ApiSource,
  type KubeClient,
} from "../kube/client.ts";
import { defaultLeaseTimings, type LeaseTimings } from "../kube/lease.ts";
import { classMatches, createController, type Controller, type WatchedObjects } from "./controller.ts";
import { speakerComponent } from "./speaker-component.ts";
import { type BgpComponentOptions, bgpComponent } from "./bgp-component.ts";
import { CONTROLLER_LEASE, DEFAULT_LOAD_BALANCER_CLASS } from "../core/well-known.ts";

/** What every component beside the controller is given (the speaker, and whatever comes next). */
export interface ComponentContext {
  /** The API client, as the speaker: User-Agent `lodestone/<version> (speaker; node <name>)`, lodestone-speaker. */
  readonly client: KubeClient;
  readonly kubeConfig: ApiSource;
  readonly namespace: string;
  readonly nodeName: string;
  readonly logger: Logger;
  /** Whether a Service's loadBalancerClass is handled by this daemon (`--load-balancer-class`). */
  readonly handlesClass: (cls: string | undefined) => boolean;
  /** The pools in force, as the controller parsed them. */
  readonly pools: () => readonly Pool[];
  /** The controller's Service, pool ConfigMap and Namespace caches: read and subscribe, never start or stop. */
  readonly watched: WatchedObjects;
  /** Overrides the component's own limit on one unit of work before liveness calls it hung (tests). */
  readonly stallMs?: number;
}

/** A part of the daemon with its own life cycle; `handoff` runs before `stop` on a graceful shutdown. */
export interface DaemonComponent {
  readonly name: string;
  start(): Promise<void>;
  handoff?(): Promise<void>;
  stop(): Promise<void>;
  telemetry?(): Partial<TelemetrySnapshot>;
  readiness?(): ProbeResult;
  /** Its loops, for liveness (see src/core/liveness.ts). */
  loops?(): readonly LoopReport[];
}

export type ComponentFactory = (ctx: ComponentContext) => DaemonComponent | Promise<DaemonComponent>;

export interface DaemonOptions {
  /** kubeconfig file; unset = in-cluster ServiceAccount. Ignored when `kubeConfig` is given. */
  readonly kubeconfig?: string;
  /** An already loaded KubeConfig (tests, the demo: `KubeConfig.loadFromString(sandbox.kubeconfigYaml)`). */
  readonly kubeConfig?: ApiSource;
  /** The daemon's namespace: pool ConfigMaps, the controller Lease. */
  readonly namespace: string;
  readonly nodeName: string;
  /** Lease holder identity; default `${nodeName}_${pid}`. */
  readonly identity?: string;
  readonly loadBalancerClass?: string;
  /** Read MetalLB's IPAddressPools and L2Advertisements in this namespace (unset: not at all). */
  readonly metallbNamespace?: string;
  /** How often a MetalLB CRD that is not installed is looked for again (default 10 s; tests). */
  readonly absentRetryMs?: number;
  /** Health server port: default 7472, 0 = ephemeral, -1 = off. */
  readonly metricsPort?: number;
  readonly metricsHost?: string;
  /**
   * Which half runs (`--component`): the controller alone (allocation, status, the announcing-node annotation,
   * the heartbeat key Secret: the Deployment), the speaker alone (announcing, Events and its Lease: the DaemonSet),
   * or both in one process when unset (the demo, a single node).
   */
  readonly component?: DaemonRole;
  /** Run the speaker component (default true; `--speaker=false` turns it off, as `component: "controller"`). */
  readonly speaker?: boolean;
  readonly lease?: Partial<LeaseTimings> & { readonly name?: string };
  /** Replaces the default speaker (tests: fake announcer, loopback heartbeats). */
  readonly speakerFactory?: ComponentFactory;
  /** BGP mode through FRR (idle until a bgp.yaml configures a peer); false: not at all. */
  readonly bgp?: BgpComponentOptions | false;
  /** Extra components (tests, the demo); the speaker is added when enabled. */
  readonly components?: readonly ComponentFactory[];
  /** Status writes in flight at once (default 16). */
  readonly workers?: number;
  /** The controller's Event queue bound (default 10,000; tests make it small). */
  readonly maxQueuedEvents?: number;
  readonly informerBackoff?: { readonly initialMs: number; readonly maxMs: number };
  /** The controller's informers' server-side watch timeout (default 240 s, each watch 0.75–1.25 of it; tests). */
  readonly watchTimeoutSeconds?: number;
  /** Overrides every loop's limit on one unit of work before `/healthz` calls it hung (tests; defaults 120 s, 30 s). */
  readonly stallMs?: number;
}

export type DaemonRole = "controller" | "speaker";

export interface Daemon {
  stop(reason: string): Promise<void>;
  telemetry(): TelemetrySnapshot;
  readiness(): ProbeResult;
  /** What `/healthz` answers: not live only when a restart would help (src/core/liveness.ts). */
  liveness(): ProbeResult;
  /** True while this pod holds the controller Lease and allocates. */
  isLeader(): boolean;
  /** The health server's port, undefined when off. */
  readonly metricsPort: number | undefined;
}

/** The package's version, for the User-Agent ("unknown" when package.json cannot be read). */
export function lodestoneVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "unknown";
  } catch {
    return "unknown";
  }
}

/** Numbers add, lists concatenate, records merge (counters by key add), booleans or. */
function mergeTelemetry(parts: readonly Partial<TelemetrySnapshot>[]): TelemetrySnapshot {
  const out: Record<string, unknown> = { ...emptyTelemetry };
  for (const part of parts) {
    for (const [k, v] of Object.entries(part)) {
      const cur = out[k];
      if (typeof v === "number" && typeof cur === "number") out[k] = cur + v;
      else if (typeof v === "boolean") out[k] = Boolean(cur) || v;
      else if (Array.isArray(v)) out[k] = [...(Array.isArray(cur) ? cur : []), ...v];
      // A histogram (the wire thread's loop lag) comes from one part only.
      else if (typeof v === "object" && v !== null && "bounds" in v) out[k] = v;
      else if (typeof v === "object" && v !== null) {
        const merged: Record<string, number> = { ...(cur as Record<string, number>) };
        for (const [rk, rv] of Object.entries(v as Record<string, number>)) merged[rk] = (merged[rk] ?? 0) + rv;
        out[k] = merged;
      }
    }
  }
  return out as unknown as TelemetrySnapshot;
}

/**
 * Starts the daemon: the Lease-elected controller (or, for a speaker alone, its caches without the campaign), the
 * optional components (the speaker unless disabled) and the health server. Resolves once everything is started
 * (the controller syncs and campaigns in the background);
 * rejects only when something cannot start at all (no kubeconfig, the metrics port taken).
 */
export async function startDaemon(options: DaemonOptions, logger: Logger): Promise<Daemon> {
  const kc = options.kubeConfig ?? (await loadKubeConfig(options.kubeconfig));
  const connection = createKubeClient(kc);
  // One connection pool, one identity per component: kube-apiserver's logs, audit and managedFields say which
  // half of the daemon on which node wrote.
  const version = lodestoneVersion();
  const as = (component: string): KubeClient =>
    connection.withIdentity({
      userAgent: lodestoneUserAgent(version, component, options.nodeName),
      fieldManager: `lodestone-${component}`,
    });
  const identity = options.identity ?? `${options.nodeName}_${process.pid}`;
  // A speaker alone still needs the controller's caches and parsed pools, but never campaigns or writes: it reads
  // them with its own identity (and its own, smaller, RBAC).
  const controlling = options.component !== "speaker";
  const speaking = options.component !== "controller" && (options.speaker ?? true);
  const controller: Controller = createController({
    client: as(controlling ? "controller" : "speaker"),
    campaign: controlling,
    namespace: options.namespace,
    identity,
    logger,
    ...(options.loadBalancerClass === undefined ? {} : { loadBalancerClass: options.loadBalancerClass }),
    lease: { ...defaultLeaseTimings, name: CONTROLLER_LEASE, ...options.lease },
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    ...(options.maxQueuedEvents === undefined ? {} : { maxQueuedEvents: options.maxQueuedEvents }),
    ...(options.informerBackoff === undefined ? {} : { informerBackoff: options.informerBackoff }),
    ...(options.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: options.watchTimeoutSeconds }),
    ...(options.stallMs === undefined ? {} : { stallMs: options.stallMs }),
    ...(options.metallbNamespace === undefined ? {} : { metallbNamespace: options.metallbNamespace }),
    ...(options.absentRetryMs === undefined ? {} : { absentRetryMs: options.absentRetryMs }),
  });
  const ctx: ComponentContext = {
    client: as("speaker"),
    kubeConfig: kc,
    namespace: options.namespace,
    nodeName: options.nodeName,
    logger,
    handlesClass: (cls) => classMatches(cls, options.loadBalancerClass),
    pools: () => controller.pools(),
    watched: controller.watched,
    ...(options.stallMs === undefined ? {} : { stallMs: options.stallMs }),
  };
  const factories = [...(options.components ?? [])];
  // BGP is a node's (the speaker's side); before the speaker, so its drain (withdraw, wait for the routers) runs
  // first on a graceful stop.
  if (options.component !== "controller" && options.bgp !== false) factories.push(bgpComponent(options.bgp ?? {}));
  if (speaking) factories.push(options.speakerFactory ?? speakerComponent());
  const components: DaemonComponent[] = [];
  for (const f of factories) components.push(await f(ctx));

  controller.start();
  for (const c of components) await c.start();

  const lag = startLoopLagSampler();
  const telemetry = (): TelemetrySnapshot => ({
    ...mergeTelemetry([controller.telemetry(), ...components.map((c) => c.telemetry?.() ?? {})]),
    loopLag: lag.snapshot(),
  });
  const readiness = (): ProbeResult => {
    const parts = [controller.readiness(), ...components.map((c) => c.readiness?.() ?? { ok: true, reasons: [] })];
    return { ok: parts.every((p) => p.ok), reasons: parts.flatMap((p) => p.reasons) };
  };
  const liveness = (): ProbeResult =>
    livenessOf([...controller.loops(), ...components.flatMap((c) => c.loops?.() ?? [])]);
  let health: HealthServer | undefined;
  const port = options.metricsPort ?? 7472;
  if (port >= 0) {
    health = await startHealthServer({
      port,
      ...(options.metricsHost === undefined ? {} : { host: options.metricsHost }),
      logger,
      snapshot: telemetry,
      live: liveness,
      ready: readiness,
    });
  }
  logger.info(
    {
      identity,
      namespace: options.namespace,
      loadBalancerClass: options.loadBalancerClass ?? `(none) or ${DEFAULT_LOAD_BALANCER_CLASS}`,
      components: [...(controlling ? ["controller"] : []), ...components.map((c) => c.name)],
      metricsPort: health?.port ?? "off",
    },
    "daemon started",
  );

  let stopped: Promise<void> | undefined;
  return {
    stop(reason) {
      stopped ??= (async () => {
        logger.info({ reason }, "daemon stopping");
        for (const c of components) await c.handoff?.().catch((err: unknown) => logger.warn({ err }, "handoff failed"));
        await controller.stop();
        for (const c of components) await c.stop().catch((err: unknown) => logger.warn({ err }, "stop failed"));
        await health?.close();
        lag.stop();
        await connection.close();
        logger.info("daemon stopped");
      })();
      return stopped;
    },
    telemetry,
    readiness,
    liveness,
    isLeader: () => controller.isLeader(),
    metricsPort: health?.port,
  };
}
