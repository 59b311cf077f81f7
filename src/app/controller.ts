import type { Logger } from "pino";
import { Allocator, type Allocation, type RecordedAllocation } from "../core/allocator.ts";
import { parsePoolConfigMap, type Pool } from "../core/config.ts";
import { describeProblems, effectivePools, nextConfigMapState, type ConfigMapState } from "../core/config-state.ts";
import { AllocationCodes, type AllocationError, type ConfigWarning } from "../core/errors.ts";
import { formatIp, parseIp, type IpAddress } from "../core/ip.ts";
import { ingressShapeProblem, serviceRequestFrom } from "../core/service-request.ts";
import type { ProbeResult, TelemetrySnapshot } from "../core/telemetry.ts";
import { WorkQueue } from "../core/workqueue.ts";
import { InFlight, type LoopReport } from "../core/liveness.ts";
import type { KubeClient } from "../kube/client.ts";
import { createEventRecorder, type EventRecorder, type ObjectRef } from "../kube/events.ts";
import { createInformer, type Informer, type Slim } from "../kube/informer.ts";
import {
  createMetalLBPools,
  createPoolStatusWriter,
  poolStatuses,
  type MetalLBPools,
  type MetalLBReport,
} from "./metallb-pools.ts";
import { createLeaderElector, systemClock, type Clock, type LeaderElector, type LeaseTimings } from "../kube/lease.ts";
import {
  projectConfigMap,
  projectNamespace,
  projectService,
  projectWatchedService,
  type SlimConfigMap,
  type SlimNamespace,
  type SlimService,
} from "../kube/objects.ts";
import { createServiceStatusWriter, type ServiceStatusWriter } from "../kube/service-status-writer.ts";
import { ensureMemberlistSecret, projectLease, type SpeakerLease } from "../kube/speaker-resources.ts";
import { createAnnouncingWriter, type AnnouncingWriter } from "./announcing-writer.ts";
import {
  DEFAULT_LOAD_BALANCER_CLASS,
  MEMBERLIST_SECRET,
  POOL_ANNOTATION,
  POOLS_SELECTOR,
  SPEAKER_SELECTOR,
} from "../core/well-known.ts";

/**
 * Liveness limit of one reconcile or pool write. It makes at most a PATCH (10 s timeout) and, after a 409, a GET
 * (30 s), so it ends within about a minute even when the API server never answers: a slow API server stays clear
 * of the limit, and only a promise that never settles reaches it.
 */
export const DEFAULT_CONTROLLER_STALL_MS = 120_000;

/** How often the leader compares IPAddressPool usage with the status it wrote. */
const STATUS_EVERY_MS = 500;
/** Status writes in flight while the Event queue is near its bound (see ControllerOptions.maxQueuedEvents). */
const EVENT_PRESSURE_WORKERS = 2;

export interface ControllerOptions {
  readonly client: KubeClient;
  /** The daemon's namespace: pool ConfigMaps and the controller Lease live here. */
  readonly namespace: string;
  /** Unique per pod: the Lease holder identity and the Events' reportingInstance. */
  readonly identity: string;
  readonly logger: Logger;
  /** Handle only this class; unset = Services without a class and those of DEFAULT_LOAD_BALANCER_CLASS. */
  readonly loadBalancerClass?: string;
  readonly lease: LeaseTimings & { readonly name: string };
  /** Status writes in flight at once (default 16). */
  readonly workers?: number;
  /** The Event queue's bound (default 10,000); status writes slow down before it is reached (see pump). */
  readonly maxQueuedEvents?: number;
  readonly informerBackoff?: { readonly initialMs: number; readonly maxMs: number };
  /** The informers' server-side watch timeout (default 240 s; tests scale it down with the sandbox's bookmarks). */
  readonly watchTimeoutSeconds?: number;
  readonly clock?: Clock;
  /** How long one status or annotation write may run before liveness calls the workqueue hung. */
  readonly stallMs?: number;
  /** Read MetalLB's IPAddressPools and L2Advertisements in this namespace (unset: not at all). */
  readonly metallbNamespace?: string;
  /** How often a MetalLB CRD that is not installed is looked for again (default 10 s). */
  readonly absentRetryMs?: number;
  /**
   * False: watch and parse only, never campaign or write (what a speaker running alone needs of the controller's
   * caches: Services, pools, Namespaces, MetalLB's objects). Default true.
   */
  readonly campaign?: boolean;
}

export type ControllerTelemetry = Pick<
  TelemetrySnapshot,
  "pools" | "servicesAllocated" | "allocationFailures" | "configMaps" | "leader" | "informerRestarts" | "eventsDropped"
>;

/**
 * The controller's caches, for the speaker of the same daemon to read instead of watching the same objects again.
 * The controller starts and stops them; a reader only subscribes.
 */
export interface WatchedObjects {
  readonly services: Informer<SlimService>;
  readonly configMaps: Informer<SlimConfigMap>;
  readonly namespaces: Informer<SlimNamespace>;
  /** The pools read from MetalLB's CRDs, as the controller translated them (last good versions kept). */
  readonly customPools?: () => readonly Pool[];
  /** The speakers' membership Leases, when the controller campaigns (it reads their reports). */
  readonly speakerLeases?: Informer<SpeakerLease>;
}

export interface Controller {
  start(): void;
  stop(): Promise<void>;
  telemetry(): ControllerTelemetry;
  readiness(): ProbeResult;
  /** For liveness: the informers' loops and the workqueue's oldest write in flight. */
  loops(): LoopReport[];
  isLeader(): boolean;
  /** The pools in force (all pods parse the config; only the leader allocates). */
  pools(): readonly Pool[];
  readonly watched: WatchedObjects;
}

/** Pure: whether a Service's class is ours (see `--load-balancer-class`). */
export function classMatches(cls: string | undefined, ours: string | undefined): boolean {
  return ours === undefined || ours === "" ? cls === undefined || cls === DEFAULT_LOAD_BALANCER_CLASS : cls === ours;
}

/** `have` as written by us is canonical text, so comparing with the canonical form of `want` is enough. */
const sameIps = (want: readonly IpAddress[], have: readonly string[]): boolean =>
  want.length === have.length && want.every((ip) => have.includes(formatIp(ip)));

/** One address (nearly every Service) is its cached text, no array and no join. */
const ipList = (ips: readonly IpAddress[]): string =>
  ips.length === 1 && ips[0] !== undefined ? formatIp(ips[0]) : ips.map(formatIp).join(", ");

const serviceRef = (s: SlimService): ObjectRef => ({
  kind: "Service",
  namespace: s.namespace,
  name: s.name,
  uid: s.uid,
});

/**
 * The allocating half of the daemon. Every pod watches and parses; only the Lease holder allocates and writes.
 * Order of things on becoming leader: informers synced → allocator rebuilt from every Service's recorded
 * `status.loadBalancer.ingress` → only then new allocations, so a restart or failover never moves an address.
 */
export function createController(o: ControllerOptions): Controller {
  const campaign = o.campaign ?? true;
  // A speaker running alone uses these caches too; its log lines about pools should not say "controller".
  const log = o.logger.child({ component: campaign ? "controller" : "pools" });
  const clock = o.clock ?? systemClock;
  const workers = o.workers ?? 16;
  const maxQueuedEvents = o.maxQueuedEvents ?? 10_000;
  /**
   * Past this many waiting Events, at most EVENT_PRESSURE_WORKERS status writes run: the recorder then writes 8 at a
   * time, faster than those few writes make new Events, so a burst larger than the queue loses none of its own.
   */
  const eventPressure = Math.floor(maxQueuedEvents * 0.8);
  const stallMs = o.stallMs ?? DEFAULT_CONTROLLER_STALL_MS;
  const common = {
    client: o.client,
    logger: log,
    ...(o.informerBackoff ? { backoff: o.informerBackoff } : {}),
    ...(o.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: o.watchTimeoutSeconds }),
  };
  const services: Informer<SlimService> = createInformer({
    ...common,
    resource: "services",
    path: "/api/v1/services",
    project: projectWatchedService,
  });
  const configMaps: Informer<SlimConfigMap> = createInformer({
    ...common,
    resource: "configmaps",
    path: `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/configmaps`,
    labelSelector: POOLS_SELECTOR,
    project: projectConfigMap,
  });
  const namespaces: Informer<SlimNamespace> = createInformer({
    ...common,
    resource: "namespaces",
    path: "/api/v1/namespaces",
    project: projectNamespace,
  });
  const metallb: MetalLBPools | undefined =
    o.metallbNamespace === undefined
      ? undefined
      : createMetalLBPools({
          ...common,
          namespace: o.metallbNamespace,
          ...(o.absentRetryMs === undefined ? {} : { absentRetryMs: o.absentRetryMs }),
        });
  const poolStatus =
    o.metallbNamespace === undefined
      ? undefined
      : createPoolStatusWriter({ client: o.client, logger: log, namespace: o.metallbNamespace });
  let cancelStatus: (() => void) | undefined;
  /**
   * While leading, every IPAddressPool's status counts are written within 1 s of a change: a look every 500 ms,
   * a write only where a count changed (idle, it costs a comparison).
   */
  function statusTick(at: number): void {
    cancelStatus = clock.setTimer(STATUS_EVERY_MS, () => {
      if (!acting || epoch !== at || poolStatus === undefined) return;
      const names = pools.filter((p) => p.configMap.startsWith("IPAddressPool ")).map((p) => p.name);
      void poolStatus
        .write(poolStatuses(names, allocator.usage()))
        .catch((err: unknown) => log.debug({ err }, "IPAddressPool status write failed; retried"))
        .finally(() => {
          if (acting && epoch === at) statusTick(at);
        });
    });
  }
  // The speakers' membership Leases: what each reports it announces, for the announcing-node annotation.
  const speakerLeases: Informer<SpeakerLease> | undefined = campaign
    ? createInformer({
        ...common,
        resource: "leases",
        path: `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(o.namespace)}/leases`,
        labelSelector: SPEAKER_SELECTOR,
        project: projectLease,
      })
    : undefined;
  const informers: Informer<Slim>[] = [
    services,
    configMaps,
    namespaces,
    ...(metallb?.informers ?? []),
    ...(speakerLeases === undefined ? [] : [speakerLeases]),
  ];
  const writer: ServiceStatusWriter = createServiceStatusWriter(o.client);
  const announcing: AnnouncingWriter | undefined =
    speakerLeases === undefined
      ? undefined
      : createAnnouncingWriter({
          services,
          leases: speakerLeases,
          handlesClass: (cls) => classMatches(cls, o.loadBalancerClass),
          writer,
          clock,
          logger: log,
        });
  let cancelSecret: (() => void) | undefined;
  /**
   * The heartbeat key Secret, created by the leader when it is missing (the speakers only read it; the chart does
   * not make it, or every upgrade would change the key and fail every node over). Retried while leading.
   */
  async function ensureSecret(at: number, attempt = 0): Promise<void> {
    if (!acting || epoch !== at) return;
    const err = await ensureMemberlistSecret(o.client, o.namespace);
    if (err === undefined || !acting || epoch !== at) return;
    const delay = Math.min(30_000, 1_000 * 2 ** attempt);
    log.warn({ err, retryInMs: delay }, `cannot create the heartbeat key Secret ${MEMBERLIST_SECRET}`);
    cancelSecret = clock.setTimer(delay, () => void ensureSecret(at, attempt + 1));
  }
  const events: EventRecorder = createEventRecorder({
    client: o.client,
    logger: log,
    component: "lodestone-controller",
    instance: o.identity,
    maxQueued: maxQueuedEvents,
    // IPs first: a backlog's Events wait while more status writes are ready than the workers take at once (see
    // pump); a steady stream of Services, which never empties the queue for long, keeps its Events flowing.
    holdWhile: () => acting && queue.ready > workers,
  });

  const configStates = new Map<string, ConfigMapState>();
  /** The resourceVersion each ConfigMap state was parsed from, so resyncs do not re-parse. */
  const parsedAt = new Map<string, string>();
  /** The data of each pool ConfigMap as last parsed: a new resourceVersion with the same data applies nothing new. */
  const parsedData = new Map<string, string>();
  let pools: readonly Pool[] = [];
  let crossProblems = "";
  let allocator = new Allocator();
  const failures: Record<string, number> = {};

  // Leader-only state, reset on every change of leadership (the epoch tells late results to go away).
  let acting = false;
  let epoch = 0;
  let queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 30_000 });
  let poolQueue = new WorkQueue({ baseDelayMs: 500, maxDelayMs: 30_000 });
  let inFlight = 0;
  let poolInFlight = 0;
  /** Every reconcile and pool write running, whatever its epoch: one that never settles is what liveness sees. */
  const working = new InFlight();
  let timer: (() => void) | undefined;
  /** Fresher copies than the cache: what a 409 re-read returned. Dropped when the watch catches up. */
  const overrides = new Map<string, SlimService>();
  /** A status write of ours landed for the version in the value; until the watch shows it, trust the write. */
  const written = new Map<string, { basedOn: string; ips: string }>();
  /**
   * Pool annotations we wrote, with the resourceVersion each write was based on: while the cache still shows that
   * version the write is trusted; once it shows any other, the object speaks — even when the version carrying our
   * write was never seen (in a backlog the watch's events for a key coalesce, e.g. with a removal right after it).
   */
  const annotated = new Map<string, { pool: string; basedOn: string }>();
  const trustedPool = (svc: SlimService): string | undefined => {
    const a = annotated.get(svc.key);
    return a !== undefined && a.basedOn === svc.resourceVersion ? a.pool : undefined;
  };
  const failed = new Set<string>();
  /** Addresses a pool change took away, for the Event of the Service's next write. */
  const lostTo = new Map<string, readonly IpAddress[]>();
  const warnedDeprecated = new Set<string>();
  let leaderWanted = false;
  let elector: LeaderElector | undefined;

  const latest = (key: string): SlimService | undefined => overrides.get(key) ?? services.get(key);

  // ---------- config ----------

  function applyConfig(): void {
    for (const cm of configMaps.values()) {
      const prev = configStates.get(cm.key);
      if (prev !== undefined && parsedAt.get(cm.key) === cm.resourceVersion) continue;
      parsedAt.set(cm.key, cm.resourceVersion);
      const data = JSON.stringify(cm.data);
      const dataChanged = parsedData.get(cm.key) !== data;
      parsedData.set(cm.key, data);
      const parsed = parsePoolConfigMap({ namespace: cm.namespace, name: cm.name, labels: cm.labels, data: cm.data });
      const next = nextConfigMapState(prev, cm.key, parsed);
      configStates.set(cm.key, next);
      if (parsed.problems.length > 0) {
        log.warn(
          { configMap: cm.key, problems: parsed.problems.length, keptLastGood: next.everGood },
          `pool ConfigMap has problems: ${describeProblems(parsed.problems, "", Infinity)}`,
        );
        if (acting) configInvalidEvent(cm, next);
      } else {
        log.info({ configMap: cm.key, pools: parsed.pools.map((p) => p.name) }, "pool ConfigMap applied");
        // Only the leader, and only for a change it sees: the versions in force when it started say nothing new.
        if (acting && dataChanged) configAppliedEvent(cm, prev, parsed.warnings);
      }
      if (parsed.warnings.length > 0) {
        log.warn(
          { configMap: cm.key, warnings: parsed.warnings.length },
          `pool ConfigMap warnings: ${describeProblems(parsed.warnings)}`,
        );
      }
    }
    for (const key of [...configStates.keys()]) {
      if (configMaps.get(key) === undefined) {
        configStates.delete(key);
        parsedAt.delete(key);
        parsedData.delete(key);
        log.info({ configMap: key }, "pool ConfigMap removed");
      }
    }
    for (const r of metallb?.apply() ?? []) {
      const at = r.ref.kind === "IPAddressPool" ? { ipAddressPool: r.source } : { l2Advertisement: r.source };
      if (r.problems.length > 0) {
        log.warn(
          { ...at, problems: r.problems.length, keptLastGood: r.everGood },
          `${r.ref.kind} has problems: ${describeProblems(r.problems, "", Infinity)}`,
        );
        if (acting) metallbInvalidEvent(r);
      } else log.info({ ...at, pools: r.pools }, `${r.ref.kind} applied`);
    }
    const merged = effectivePools([...configStates.values(), { pools: metallb?.pools() ?? [] }]);
    const problemsText = describeProblems(merged.problems, "", Infinity);
    if (problemsText !== crossProblems) {
      crossProblems = problemsText;
      if (merged.problems.length > 0) log.warn(`pools left out: ${problemsText}`);
      if (acting) crossProblemEvents(merged.problems);
    }
    const changed = merged.pools.length !== pools.length || merged.pools.some((p, i) => p !== pools[i]);
    pools = merged.pools;
    if (changed && acting) {
      for (const lost of allocator.setPools(pools)) {
        lostTo.set(lost.service, lost.lost);
        log.info(
          { service: lost.service, lost: ipList(lost.lost), reason: lost.reason.code, reallocated: lost.now.ok },
          "pool change took addresses away",
        );
      }
      // Addresses recorded while no pool covered them (pools created after the daemon started) are taken back
      // before anything new is allocated, so a late ConfigMap does not renumber Services.
      const records = recordedAllocations();
      const refused = allocator.adopt(records);
      if (records.length > refused.length) {
        log.info({ adopted: records.length - refused.length }, "recorded ingress IPs adopted after a pool change");
      }
      enqueueAll();
    }
  }

  function configInvalidEvent(cm: SlimConfigMap, state: ConfigMapState): void {
    const kept = state.everGood ? "the last good version stays in force" : "only its valid pools are used";
    events.record(
      { kind: "ConfigMap", namespace: cm.namespace, name: cm.name, uid: cm.uid },
      "Warning",
      "ConfigInvalid",
      describeProblems(state.problems, `${state.problems.length} problem(s), ${kept}: `),
    );
  }

  /** A broken IPAddressPool or L2Advertisement: the Event goes on that object, as ConfigInvalid on a ConfigMap. */
  function metallbInvalidEvent(r: MetalLBReport): void {
    const kept = r.everGood ? "the last good version stays in force" : "it is not used";
    events.record(
      r.ref,
      "Warning",
      "ConfigInvalid",
      describeProblems(r.problems, `${r.problems.length} problem(s), ${kept}: `),
    );
  }

  /** Applied with warnings is still applied: the same reason, as a Warning naming them. */
  function configAppliedEvent(
    cm: SlimConfigMap,
    prev: ConfigMapState | undefined,
    warnings: readonly ConfigWarning[],
  ): void {
    const names = configStates.get(cm.key)?.pools.map((p) => p.name) ?? [];
    const warned = warnings.length === 0 ? "" : `; warnings: ${describeProblems(warnings)}`;
    events.record(
      { kind: "ConfigMap", namespace: cm.namespace, name: cm.name, uid: cm.uid },
      warnings.length === 0 ? "Normal" : "Warning",
      "ConfigApplied",
      `${prev?.stale === true ? "problems fixed; " : ""}pools in force: ${names.length === 0 ? "none" : names.join(", ")}${warned}`,
    );
  }

  function crossProblemEvents(problems: ReturnType<typeof effectivePools>["problems"]): void {
    const byCm = new Map<string, typeof problems>();
    for (const p of problems) byCm.set(p.configMap, [...(byCm.get(p.configMap) ?? []), p]);
    for (const [key, list] of byCm) {
      const cm = configMaps.get(key);
      const ref: ObjectRef | undefined =
        cm === undefined
          ? metallb?.ref(key)
          : { kind: "ConfigMap", namespace: cm.namespace, name: cm.name, uid: cm.uid };
      if (ref === undefined) continue;
      events.record(ref, "Warning", "ConfigInvalid", describeProblems(list));
    }
  }

  // ---------- leadership ----------

  function begin(): void {
    if (!leaderWanted || acting || !informers.every((i) => i.synced())) return;
    acting = true;
    epoch++;
    inFlight = 0;
    poolInFlight = 0;
    queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 30_000 });
    poolQueue = new WorkQueue({ baseDelayMs: 500, maxDelayMs: 30_000 });
    overrides.clear();
    written.clear();
    annotated.clear();
    failed.clear();
    allocator = new Allocator(pools);
    const records = recordedAllocations();
    const refused = allocator.rebuild(records);
    for (const r of refused)
      log.warn({ service: r.service, reason: r.error.code }, `recorded IP not kept: ${r.error.message}`);
    log.info(
      { services: allocator.size, recorded: records.length, refused: refused.length, pools: pools.length },
      "leading: allocator rebuilt from recorded ingress IPs",
    );
    for (const [key, state] of configStates) {
      const cm = configMaps.get(key);
      if (cm !== undefined && state.problems.length > 0) configInvalidEvent(cm, state);
    }
    for (const r of metallb?.invalid() ?? []) metallbInvalidEvent(r);
    poolStatus?.reset();
    if (poolStatus !== undefined) statusTick(epoch);
    void ensureSecret(epoch);
    announcing?.start();
    enqueueAll();
  }

  function end(): void {
    if (!acting) return;
    acting = false;
    epoch++;
    timer?.();
    timer = undefined;
    cancelStatus?.();
    cancelStatus = undefined;
    cancelSecret?.();
    cancelSecret = undefined;
    announcing?.stop();
    events.resume();
    log.warn("no longer leading: stopped allocating and writing");
  }

  const handles = (svc: SlimService): boolean =>
    svc.type === "LoadBalancer" && classMatches(svc.loadBalancerClass, o.loadBalancerClass);

  /** What the status of our Services records that the allocator does not hold (all of it on becoming leader). */
  function recordedAllocations(): RecordedAllocation[] {
    const records: RecordedAllocation[] = [];
    for (const svc of services.values()) {
      if (!handles(svc) || svc.ingress.length === 0 || allocator.get(svc.key) !== undefined) continue;
      const parsed = serviceRequestFrom(svc, namespaces.get(svc.namespace)?.labels ?? {});
      const ips = svc.ingress.map(parseIp).filter((ip): ip is IpAddress => ip !== undefined);
      if (parsed.ok && ips.length > 0) records.push({ request: parsed.value.request, ips });
    }
    return records;
  }

  // ---------- work ----------

  function enqueue(key: string): void {
    if (!acting) return;
    queue.add(key);
    pump();
  }

  function enqueueAll(): void {
    if (!acting) return;
    for (const s of services.values()) queue.add(s.key);
    for (const a of allocator.allocations()) queue.add(a.service);
    pump();
  }

  function requeueFailed(): void {
    for (const key of failed) queue.add(key);
  }

  function pump(): void {
    if (!acting) return;
    const now = clock.now();
    // IPs first, but not at the price of Events: near a full Event queue a few status writes run, not all workers.
    // Not while Event writes hang, though: then the Events would not catch up anyway.
    const limit =
      events.waiting() >= eventPressure && events.progressing() ? Math.min(workers, EVENT_PRESSURE_WORKERS) : workers;
    while (inFlight < limit) {
      const key = queue.take(now);
      if (key === undefined) break;
      inFlight++;
      void work(false, key, epoch, queue, working.begin(now));
    }
    // A new address carries its pool annotation in the same write; this queue repairs annotations that are missing
    // or wrong on an address already recorded (another writer's, a user's edit). It is bookkeeping: it waits until
    // no status write is ready, so a burst of new Services gets its addresses first.
    while (poolInFlight < 2 && queue.ready === 0) {
      const key = poolQueue.take(now);
      if (key === undefined) break;
      poolInFlight++;
      void work(true, key, epoch, poolQueue, working.begin(now));
    }
    if (queue.ready <= workers) events.resume();
    const statusDue = queue.nextDueAt();
    const poolDue = poolQueue.nextDueAt();
    const due = statusDue === undefined ? poolDue : poolDue === undefined ? statusDue : Math.min(statusDue, poolDue);
    timer?.();
    timer = due === undefined ? undefined : clock.setTimer(Math.max(1, due - now), () => pump());
  }

  // One async function per unit of work rather than a .catch().finally() chain on it: two promises and two
  // closures fewer per reconcile, which runs twice per allocation (the write, then the watch bringing it back).
  async function work(pool: boolean, key: string, myEpoch: number, q: WorkQueue, token: number): Promise<void> {
    try {
      await (pool ? writePool(key, myEpoch) : reconcile(key, myEpoch));
    } catch (err: unknown) {
      log.error({ err, service: key }, pool ? "pool annotation crashed" : "reconcile crashed");
    } finally {
      working.end(token);
      q.done(key);
      if (myEpoch === epoch) {
        if (pool) poolInFlight--;
        else inFlight--;
        pump();
      }
    }
  }

  function fail(svc: SlimService, error: AllocationError): void {
    failures[error.code] = (failures[error.code] ?? 0) + 1;
    failed.add(svc.key);
    const sharing = error.code === AllocationCodes.sharingConflict;
    log.info({ service: svc.key, reason: error.code }, `allocation failed: ${error.message}`);
    const shape = ingressShapeProblem(svc.ingress);
    events.record(
      serviceRef(svc),
      "Warning",
      sharing ? "SharingConflict" : "AllocationFailed",
      `${error.message} [${error.code}]${shape === undefined ? "" : `; ${shape}`}`,
    );
  }

  async function reconcile(key: string, myEpoch: number): Promise<void> {
    const svc = latest(key);
    const held = allocator.get(key);
    if (svc === undefined) {
      failed.delete(key);
      written.delete(key);
      annotated.delete(key);
      if (held !== undefined) {
        allocator.release(key);
        log.info({ service: key, ips: ipList(held.ips), pool: held.pool }, "Service deleted: IP released");
        requeueFailed();
      }
      return;
    }
    if (svc.type !== "LoadBalancer") {
      // Decided from the spec alone: kube-apiserver empties status.loadBalancer itself when the type changes
      // (and drops an unchanged loadBalancerClass; pkg/registry/core/service, dropTypeDependentFields), so the
      // ingress we wrote is already gone when the watch shows the change, and there is nothing to clear.
      failed.delete(key);
      // Ours only by what we wrote: the class may have been dropped with the type, and an ingress without our pool
      // annotation may be another implementation's.
      const ours = held !== undefined || svc.annotations[POOL_ANNOTATION] !== undefined;
      if (held !== undefined) {
        allocator.release(key);
        log.info({ service: key, ips: ipList(held.ips), type: svc.type }, "no longer a LoadBalancer: IP released");
        events.record(serviceRef(svc), "Normal", "IPReleased", `Released ${ipList(held.ips)}: type is now ${svc.type}`);
        requeueFailed();
      }
      if (!ours) return;
      // An older API server (or another writer) may have left the ingress: it goes, with the annotation.
      if (svc.ingress.length > 0) await clearIngress(svc, myEpoch);
      else if (svc.annotations[POOL_ANNOTATION] !== undefined) await dropPool(svc, myEpoch);
      return;
    }
    if (!classMatches(svc.loadBalancerClass, o.loadBalancerClass)) {
      // Another implementation's Service: forget it, never write to it.
      failed.delete(key);
      if (held !== undefined) {
        allocator.release(key);
        log.info({ service: key, class: svc.loadBalancerClass }, "class is not ours any more: IP released");
        requeueFailed();
      }
      return;
    }
    const parsed = serviceRequestFrom(svc, namespaces.get(svc.namespace)?.labels ?? {});
    if (!parsed.ok) {
      if (held !== undefined) allocator.release(key);
      fail(svc, parsed.error);
      if (svc.ingress.length > 0) await clearIngress(svc, myEpoch);
      return;
    }
    const deprecated = parsed.value.deprecatedAnnotations;
    if (deprecated.length > 0 && !warnedDeprecated.has(`${svc.uid}/${deprecated.join(",")}`)) {
      warnedDeprecated.add(`${svc.uid}/${deprecated.join(",")}`);
      events.record(
        serviceRef(svc),
        "Warning",
        "DeprecatedAnnotation",
        `${deprecated.join(", ")}: MetalLB annotation honoured; prefer the lodestone.dev/ form`,
      );
    }
    const result = allocator.ensure(parsed.value.request);
    if (!result.ok) {
      if (held !== undefined) requeueFailed();
      fail(svc, result.error);
      // The Service lost a valid address (pool shrank, clash after a restart): say so instead of keeping it.
      // Not while no pool exists at all, unless a pool change took the address: a ConfigMap not created yet
      // (Lodestone installed first, MetalLB's status still in place) must not wipe every address.
      const noConfig = pools.length === 0 && !lostTo.has(key);
      if (svc.ingress.length > 0 && !noConfig) await clearIngress(svc, myEpoch);
      return;
    }
    failed.delete(key);
    const alloc = result.value;
    if (held !== undefined && !sameIps(alloc.ips, held.ips.map(formatIp))) requeueFailed();
    const fresh = written.get(key);
    const statusDone =
      sameIps(alloc.ips, svc.ingress) ||
      (fresh !== undefined && fresh.basedOn === svc.resourceVersion && fresh.ips === ipList(alloc.ips));
    if (!statusDone) {
      const pool = svc.annotations[POOL_ANNOTATION] === alloc.pool ? undefined : alloc.pool;
      const ok = await writeIngress(svc, alloc.ips, myEpoch, pool);
      if (!ok || myEpoch !== epoch) return;
      if (pool !== undefined) annotated.set(key, { pool, basedOn: svc.resourceVersion });
      const previous = svc.ingress.filter((h) => !alloc.ips.some((a) => formatIp(a) === h));
      const lost = lostTo.get(key);
      lostTo.delete(key);
      const was = previous.length > 0 ? previous.join(", ") : lost !== undefined ? ipList(lost) : undefined;
      const ips = ipList(alloc.ips);
      if (was === undefined) log.info({ service: key, ips, pool: alloc.pool }, "IP allocated");
      else log.info({ service: key, ips, pool: alloc.pool, previous: was }, "IP changed");
      // A status no LoadBalancer can have (three IPv4 addresses) was replaced: a Warning, as MetalLB records one.
      const shape = ingressShapeProblem(svc.ingress);
      events.record(
        serviceRef(svc),
        shape === undefined ? "Normal" : "Warning",
        "IPAllocated",
        `Assigned IP ${ips} from pool ${alloc.pool}${was === undefined ? "" : ` (was ${was})`}${shape === undefined ? "" : `: ${shape}`}`,
      );
    }
    // What we wrote counts until the watch shows a newer version; then the object speaks, so a removal gets repaired.
    if (svc.annotations[POOL_ANNOTATION] === alloc.pool) annotated.delete(key);
    else if (trustedPool(svc) !== alloc.pool) poolQueue.add(key);
  }

  /** No address any more: the pool annotation goes in the same write. */
  async function clearIngress(svc: SlimService, myEpoch: number): Promise<void> {
    const pool = svc.annotations[POOL_ANNOTATION] === undefined ? undefined : null;
    if (await writeIngress(svc, [], myEpoch, pool)) annotated.delete(svc.key);
  }

  /** The pool annotation of a Service that holds no address from us any more (no longer a LoadBalancer). */
  async function dropPool(svc: SlimService, myEpoch: number): Promise<void> {
    if (!acting || myEpoch !== epoch || !elector?.isLeader()) return;
    const out = await writer.writePool(svc, undefined);
    if (myEpoch !== epoch) return;
    if (out.kind === "written") {
      annotated.delete(svc.key);
      queue.forget(svc.key);
      log.info({ service: svc.key }, "pool annotation removed");
    } else if (out.kind === "retry" || out.kind === "conflict") {
      queue.retry(svc.key, clock.now(), out.kind === "retry" ? (out.afterMs ?? 0) : 0);
    } else if (out.kind === "failed") {
      log.error({ service: svc.key, reason: out.reason }, "pool annotation removal refused by the API server");
      queue.retry(svc.key, clock.now(), 5_000);
    }
  }

  /** Writes and files the outcome; true when written. */
  async function writeIngress(
    svc: SlimService,
    ips: readonly IpAddress[],
    myEpoch: number,
    pool?: string | null,
  ): Promise<boolean> {
    if (!acting || myEpoch !== epoch || !elector?.isLeader()) return false;
    const out = await writer.writeIngress(svc, ips, pool);
    if (myEpoch !== epoch) return false;
    switch (out.kind) {
      case "written":
        queue.forget(svc.key);
        written.set(svc.key, { basedOn: svc.resourceVersion, ips: ipList(ips) });
        if (ips.length === 0) log.info({ service: svc.key }, "ingress cleared");
        return true;
      case "gone":
        allocator.release(svc.key);
        overrides.delete(svc.key);
        return false;
      case "conflict": {
        const current = out.current === undefined ? undefined : projectService(out.current);
        if (current !== undefined) overrides.set(svc.key, current);
        log.debug({ service: svc.key }, "status write conflicted: re-read, deciding again");
        queue.retry(svc.key, clock.now(), 0);
        return false;
      }
      case "retry": {
        const delay = queue.retry(svc.key, clock.now(), out.afterMs ?? 0);
        log.info({ service: svc.key, delayMs: delay, reason: out.reason }, "status write will be retried");
        return false;
      }
      case "failed":
        log.error({ service: svc.key, reason: out.reason }, "status write refused by the API server");
        queue.retry(svc.key, clock.now(), 5_000);
        return false;
    }
  }

  async function writePool(key: string, myEpoch: number): Promise<void> {
    const svc = latest(key);
    const alloc: Allocation | undefined = allocator.get(key);
    if (svc === undefined || alloc === undefined || !acting || myEpoch !== epoch || !elector?.isLeader()) return;
    if (svc.annotations[POOL_ANNOTATION] === alloc.pool || trustedPool(svc) === alloc.pool) return;
    const out = await writer.writePool(svc, alloc.pool);
    if (myEpoch !== epoch) return;
    if (out.kind === "written") {
      annotated.set(key, { pool: alloc.pool, basedOn: svc.resourceVersion });
      poolQueue.forget(key);
    } else if (out.kind === "retry" || out.kind === "conflict") {
      poolQueue.retry(key, clock.now(), out.kind === "retry" ? (out.afterMs ?? 0) : 0);
    }
  }

  // ---------- wiring ----------

  services.subscribe({
    upsert: (s) => {
      // The watch caught up with (or passed) what a 409 re-read showed.
      overrides.delete(s.key);
      enqueue(s.key);
    },
    delete: (s) => {
      overrides.delete(s.key);
      enqueue(s.key);
    },
    synced: () => begin(),
  });
  configMaps.subscribe({ upsert: () => applyConfig(), delete: () => applyConfig(), synced: () => begin() });
  for (const i of metallb?.informers ?? [])
    i.subscribe({ upsert: () => applyConfig(), delete: () => applyConfig(), synced: () => begin() });
  namespaces.subscribe({
    upsert: (ns, old) => {
      if (old === undefined || JSON.stringify(old.labels) === JSON.stringify(ns.labels)) return;
      for (const s of services.values()) if (s.namespace === ns.name) enqueue(s.key);
    },
    synced: () => begin(),
  });

  return {
    start() {
      for (const i of informers) i.start();
      if (!campaign) return;
      elector = createLeaderElector({
        client: o.client,
        namespace: o.namespace,
        name: o.lease.name,
        identity: o.identity,
        timings: o.lease,
        clock,
        logger: log,
        onStartedLeading: () => {
          leaderWanted = true;
          begin();
        },
        onStoppedLeading: () => {
          leaderWanted = false;
          end();
        },
      });
      // No allocation before the first full sync: the election starts only once every cache is complete.
      void Promise.all(informers.map((i) => i.whenSynced())).then(() => {
        log.info({ services: services.size, configMaps: configMaps.size, pools: pools.length }, "caches synced");
        elector?.start();
      });
    },
    async stop() {
      await elector?.stop();
      end();
      await Promise.all(informers.map((i) => i.stop()));
      await events.flush();
    },
    telemetry: () => ({
      pools: acting ? allocator.usage() : [],
      servicesAllocated: acting ? allocator.size : 0,
      allocationFailures: { ...failures },
      configMaps: [...configStates.entries()].map(([key, s]) => ({ configMap: key, stale: s.stale })),
      leader: acting,
      eventsDropped: { controller: events.dropped() },
      informerRestarts: Object.fromEntries(
        [
          ["services", services],
          ["configmaps", configMaps],
          ["namespaces", namespaces],
          ...(metallb?.informers ?? []).map((i) => [i.resource, i]),
          ...(speakerLeases === undefined ? [] : [["leases", speakerLeases]]),
        ].map(([n, i]) => [n as string, (i as Informer<never>).restarts()]),
      ),
    }),
    readiness() {
      const reasons: string[] = [];
      if (!services.synced()) reasons.push("Services not listed yet");
      if (!configMaps.synced()) reasons.push("pool ConfigMaps not listed yet");
      if (!namespaces.synced()) reasons.push("Namespaces not listed yet");
      if (configMaps.synced() && pools.length === 0) {
        reasons.push(`no usable address pool in namespace ${o.namespace} (ConfigMaps labelled ${POOLS_SELECTOR})`);
      }
      return { ok: reasons.length === 0, reasons };
    },
    loops: () => [
      ...informers.map((i) => ({ loop: `informer ${i.resource}`, ended: i.crashed() })),
      { loop: "controller workqueue", busyForMs: working.busyForMs(clock.now()), stallMs },
    ],
    isLeader: () => acting,
    pools: () => pools,
    watched: {
      services,
      configMaps,
      namespaces,
      ...(metallb === undefined ? {} : { customPools: metallb.pools }),
      ...(speakerLeases === undefined ? {} : { speakerLeases }),
    },
  };
}
