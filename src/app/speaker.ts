import type { Logger } from "pino";
import { setImmediate as nextTurn } from "node:timers/promises";
import {
  type AnnounceClaim,
  followDeaths,
  type AnnouncePlan,
  type AnnouncePool,
  type AnnouncedService,
  type PlannedIp,
  ownersOf,
  planSteps,
} from "../core/announce-plan.ts";
import { type ClaimState, decideClaims, initialClaimState, withdrawAll } from "../core/speaker-state.ts";
import { announcingNodeFor, formatAnnouncingNodes } from "../core/announcing-node.ts";
import {
  type AnnouncerCandidate,
  type InterfaceSummary,
  candidatesSignature,
  hasInterfaceFor,
} from "../core/announcer-ranking.ts";
import { type Heartbeat, type HeartbeatKey, heartbeatKey } from "../core/heartbeat-codec.ts";
import { type IpAddress, formatIp, ipKey, parseIp } from "../core/ip.ts";
import { Membership, type MembershipTiming, checkTiming, defaultTiming } from "../core/membership.ts";
import type { ProbeResult, TelemetrySnapshot } from "../core/telemetry.ts";
import type { Result } from "../core/errors.ts";
import { emptyLag } from "../core/loop-lag.ts";
import type { LoopReport } from "../core/liveness.ts";
import { createPauses } from "../core/pause.ts";
import type { KubeClient } from "../kube/client.ts";
import { type Informer, createInformer } from "../kube/informer.ts";
import { systemClock } from "../kube/lease.ts";
import {
  type SpeakerLease,
  type SpeakerNode,
  createLeaseRenewer,
  encodeHeartbeatAddress,
  encodeInterfaces,
  leaseChangesRanking,
  loadMemberlistKeys,
  nodeChangesRanking,
  projectLease,
  projectNode,
  serviceChangesAnnouncement,
  serviceChangesRanking,
  writeAnnouncingNode,
} from "../kube/speaker-resources.ts";
import { type EventReason, type ObjectRef, createEventRecorder } from "../kube/events.ts";
import {
  type SlimConfigMap,
  type SlimNamespace,
  type SlimService,
  projectConfigMap,
  projectNamespace,
  projectWatchedService,
} from "../kube/objects.ts";
import { DEFAULT_HEARTBEAT_PORT, type HeartbeatTransport, createHeartbeatTransport } from "../net/heartbeat.ts";
import { scanInterfaces } from "../net/interface-summary.ts";
import type { Wire, WireOptions } from "./wire.ts";
import type { WatchedObjects } from "./controller.ts";
import { createPoolCache } from "./speaker-pools.ts";
import { createLocalSlices } from "./speaker-slices.ts";
import {
  ANNOUNCING_ANNOTATION,
  DEFAULT_LOAD_BALANCER_CLASS,
  HEARTBEAT_ANNOTATION,
  INTERFACES_ANNOTATION,
  POOLS_SELECTOR,
  SPEAKER_SELECTOR,
} from "../core/well-known.ts";

/** The part of the layer-2 announcer (src/net/announcer.ts) the speaker drives. */
export interface SpeakerAnnouncer {
  /** Declarative: exactly these IPs are owned now. */
  reconcile(claims: readonly AnnounceClaim[]): unknown;
  telemetry(): Pick<TelemetrySnapshot, "layer2" | "layer2Drops">;
  /** Another host announcing an IP on the wire (see src/net/announcer.ts); absent: hand-offs wait a fixed time. */
  onForeignAnnouncement?(listener: (seen: { readonly ip: IpAddress }) => void): () => void;
  /** Starts the gratuitous burst of an owned IP again; `once`: one announcement, the burst left as it is. */
  announceNow?(ip: IpAddress, options?: { readonly once?: boolean }): unknown;
  close(): unknown;
}

export interface SpeakerContext {
  readonly client: KubeClient;
  /** The daemon's namespace: membership Leases, the heartbeat key Secret, pool ConfigMaps. */
  readonly namespace: string;
  readonly nodeName: string;
  readonly logger: Logger;
  readonly createAnnouncer: (
    logger: Logger,
  ) => Promise<{ ok: true; value: SpeakerAnnouncer } | { ok: false; error: { message: string } }>;
  /** Which Services' ingress IPs are ours (loadBalancerClass); default: no class or DEFAULT_LOAD_BALANCER_CLASS. */
  readonly handlesClass?: (cls: string | undefined) => boolean;
  /** UDP port of the heartbeats (default 7947; 0 = ephemeral, tests). */
  readonly heartbeatPort?: number;
  /** Address to bind the heartbeats to; default: the Node's first InternalIP. */
  readonly heartbeatAddress?: IpAddress;
  readonly timing?: MembershipTiming;
  /**
   * A leaving speaker keeps answering until it sees each of its IPs announced by another host, at most this long
   * (default 2,000 ms); with an announcer that cannot observe the wire, it waits exactly this long (default 300 ms).
   */
  readonly handoffMs?: number;
  readonly scanInterfaces?: () => Promise<InterfaceSummary[]>;
  /** Events queued at most before the rest of a pass waits for the next one (default 1,000, as client-go). */
  readonly maxQueuedEvents?: number;
  /** How long one evaluation may run before liveness calls the speaker hung (default 30 s). */
  readonly stallMs?: number;
  /**
   * The controller's Service, pool ConfigMap and Namespace caches when both run in one daemon: the speaker reads
   * and subscribes to them but never starts or stops them. Absent, the speaker watches those objects itself.
   */
  readonly shared?: WatchedObjects;
  /**
   * Runs the announcer and the heartbeats on a wire thread of their own (src/app/wire.ts), so planning and
   * garbage collections on this thread never hold back an answer or a heartbeat. Absent: both run here, with
   * `createAnnouncer` (tests with a fake announcer).
   */
  readonly createWire?: (options: WireOptions) => Promise<Result<Wire, { readonly message: string }>>;
}

export interface Speaker {
  start(): Promise<void>;
  /** Graceful shutdown, first half: successors take over at once, then this node withdraws. */
  handoff(): Promise<void>;
  stop(): Promise<void>;
  telemetry(): Pick<
    TelemetrySnapshot,
    | "announcedIps"
    | "membershipSize"
    | "failovers"
    | "duellingAnnouncements"
    | "layer2"
    | "layer2Drops"
    | "informerRestarts"
    | "eventsDropped"
    | "wireLoopLag"
  >;
  readiness(): ProbeResult;
  /** For liveness: the informers' loops and the evaluation in progress. */
  loops(): LoopReport[];
}

/** The interface of `ip`'s subnet, else of its family's default route; remembered per interface list. */
function subnetInterface(interfaces: readonly InterfaceSummary[], ip: IpAddress): string | undefined {
  let byIp = interfaceChoices.get(interfaces);
  if (byIp === undefined) interfaceChoices.set(interfaces, (byIp = new Map()));
  const k = ipKey(ip);
  if (byIp.has(k)) return byIp.get(k);
  const inSubnet = interfaces.find((i) => hasInterfaceFor([{ ...i, defaultRoute4: false, defaultRoute6: false }], ip));
  const name = (inSubnet ?? interfaces.find((i) => (ip.family === 4 ? i.defaultRoute4 : i.defaultRoute6)))?.name;
  byIp.set(k, name);
  return name;
}
const interfaceChoices = new WeakMap<readonly InterfaceSummary[], Map<string, string | undefined>>();

/** The announcer's report of claims it answers on no interface (src/net/announcer.ts ReconcileReport). */
function onNoInterface(report: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (typeof report !== "object" || report === null || !("unannounced" in report)) return out;
  const list = report.unannounced;
  if (!Array.isArray(list)) return out;
  for (const u of list as readonly { ip?: IpAddress; error?: { message?: string } }[]) {
    if (u.ip !== undefined && typeof u.error?.message === "string") out.set(ipKey(u.ip), u.error.message);
  }
  return out;
}

const parseIps = (texts: readonly string[]): IpAddress[] =>
  texts.flatMap((t) => {
    const a = parseIp(t);
    return a === undefined ? [] : [a];
  });
const NO_NODES: ReadonlySet<string> = new Set();
const defaultClass = (cls: string | undefined): boolean => cls === undefined || cls === DEFAULT_LOAD_BALANCER_CLASS;
const EVAL_MS = 50;
/**
 * An evaluation is local work (planning, the announcer's sockets); its API writes are not awaited. Thirty seconds
 * is six hundred ticks: only a promise that never settles gets there, never a slow API server.
 */
export const DEFAULT_SPEAKER_STALL_MS = 30_000;
const WRITE_RETRY_MS = 5_000;
/**
 * client-go's broadcaster queues at most 1,000 Events (maxQueuedEvents). A full queue happens when many Services
 * cannot be announced at once (a pool with no interface on any node: one NotAnnounced each); the Events left out
 * wait in no queue, they are recorded again on a pass WRITE_RETRY_MS later, so memory stays bounded.
 */
const MAX_QUEUED_EVENTS = 1_000;
const EVENT_QUEUE_FULL = "Event queue full";
const OVERWRITTEN_AFTER_MS = 1_000;
/**
 * The most work a pass does in one event-loop turn before it lets heartbeats, timers and ARP/NDP answers run: a
 * full plan of 10,000 Services is tens of milliseconds, and peers declare a node dead after 600 ms of silence.
 */
const SLICE_MS = 5;
/**
 * Passes for changes other than the membership (Services, slices, pools, annotations: a controller allocating
 * thousands of addresses changes Services for seconds on end) come at most this often, or PACE_FACTOR times the
 * last pass's duration when that is longer (at most PACE_MAX_MS): planning then takes at most a tenth of the CPU.
 * A membership change or a gain settling is planned on the next tick. At 10,000 Services a pass is 20–90 ms of
 * CPU (the image's --optimize-for-size costs the most).
 */
const PACE_MS = 250;
const PACE_FACTOR = 10;
const PACE_MAX_MS = 2_000;
/** IPs named in one "claims" log line; the rest is a count. */
const LOGGED_IPS = 20;
/** IPs defended (announced again after another host announced them) per second at most, over all IPs. */
const DEFENCES_PER_SECOND = 100;
/** Annotation writes of one pass in flight at once. */
const WRITES_IN_FLIGHT = 8;
/**
 * After seeing its successor's announcement, a leaving speaker still answers this long: a host whose cache entry
 * is being re-validated at that moment (unicast probe to the old MAC) still gets an answer. Both nodes serve the
 * Service meanwhile, so the overlap costs nothing.
 */
const HANDOFF_GRACE_MS = 250;

export function createSpeaker(ctx: SpeakerContext): Speaker {
  const self = ctx.nodeName;
  const log = ctx.logger.child({ component: "speaker", node: self });
  const timing = ctx.timing ?? defaultTiming;
  const problems = checkTiming(timing);
  if (problems.length > 0) throw new Error(`invalid speaker timing: ${problems.join("; ")}`);
  const handlesClass = ctx.handlesClass ?? defaultClass;
  const settleMs = 2 * timing.heartbeatIntervalMs + EVAL_MS;
  const membership = new Membership(self, timing);
  const incarnation = Date.now();
  const ns = ctx.namespace;
  const common = { client: ctx.client, logger: log };
  const announcePools = createPoolCache(ctx.shared?.customPools);

  const nodes = createInformer<SpeakerNode>({
    ...common,
    resource: "speaker-nodes",
    path: "/api/v1/nodes",
    project: projectNode,
  });
  const leases = createInformer<SpeakerLease>({
    ...common,
    resource: "speaker-leases",
    path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
    labelSelector: SPEAKER_SELECTOR,
    project: projectLease,
  });
  const watched: WatchedObjects = ctx.shared ?? {
    services: createInformer<SlimService>({
      ...common,
      resource: "speaker-services",
      path: "/api/v1/services",
      project: projectWatchedService,
    }),
    configMaps: createInformer<SlimConfigMap>({
      ...common,
      resource: "speaker-configmaps",
      path: `/api/v1/namespaces/${ns}/configmaps`,
      labelSelector: POOLS_SELECTOR,
      project: projectConfigMap,
    }),
    namespaces: createInformer<SlimNamespace>({
      ...common,
      resource: "speaker-namespaces",
      path: "/api/v1/namespaces",
      project: projectNamespace,
    }),
  };
  const { services, configMaps, namespaces } = watched;
  const localSlices = createLocalSlices({ ...common, services, loaded: () => (dirty = rankingDirty = true) });
  const slices = localSlices.informer;
  /** The informers this speaker runs (and counts restarts of); shared ones belong to the controller. */
  const owned: readonly Informer<never>[] = [
    nodes,
    slices,
    leases,
    ...(ctx.shared === undefined ? [services, configMaps, namespaces] : []),
  ] as never;
  const informers: readonly Informer<never>[] = [services, nodes, slices, leases, configMaps, namespaces] as never;

  let keys: HeartbeatKey[] = [];
  let transport: HeartbeatTransport | undefined;
  let wire: Wire | undefined;
  let announcer: SpeakerAnnouncer | undefined;
  let interfaces: InterfaceSummary[] = [];
  let stopped = false;
  let leaving = false;
  let seq = 0;
  let advertisedApiOk = false;
  let renewedOnce = false;
  let lastError: string | undefined;
  let duelling = 0;
  const timers: ReturnType<typeof setInterval>[] = [];

  // --- inputs to membership ---
  leases.subscribe({
    upsert: (l, old) => {
      const renew = l.renewTime === undefined ? undefined : Date.parse(l.renewTime);
      membership.lease(l.node, l.renewTime, renew, performance.now(), Date.now());
      // Not on every renewal: a plan's cost grows with the Services, and every node renews its Lease every few seconds.
      if (leaseChangesRanking(old, l)) dirty = rankingDirty = true;
    },
    delete: (l) => {
      membership.leaseGone(l.node);
      dirty = rankingDirty = true;
    },
  });
  nodes.subscribe({
    upsert: (n, old) => {
      if (nodeChangesRanking(old, n)) dirty = rankingDirty = true;
    },
    delete: (n) => {
      membership.forget(n.name);
      dirty = rankingDirty = true;
    },
  });
  services.subscribe({
    upsert: (s, old) => {
      if (!serviceChangesAnnouncement(old, s)) return;
      dirty = true;
      if (serviceChangesRanking(old, s)) rankingDirty = true;
    },
    delete: () => (dirty = rankingDirty = true),
  });
  for (const inf of [slices, configMaps, namespaces] as const) {
    (inf as Informer<SlimService>).subscribe({
      upsert: () => (dirty = rankingDirty = true),
      delete: () => (dirty = rankingDirty = true),
    });
  }

  // --- the decision loop ---
  let dirty = true;
  /** Set with `dirty` by changes to what rankings read (not by annotation writes or retries): see followDeaths. */
  let rankingDirty = true;
  let signature = "";
  let claimState: ClaimState = initialClaimState;
  /** What the announcer was last given (claimState.claimed, in IP order). */
  let claimed: readonly AnnounceClaim[] = [];
  let lastPlan: AnnouncePlan | undefined;
  let lastPassAt = -Infinity;
  let paceMs = PACE_MS;
  /** IPs this node owns that its announcer answers on no interface, by IP key: why. */
  let unannouncedHere: ReadonlyMap<string, string> = new Map();
  let evaluating: Promise<void> | undefined;
  let evaluatingSince = 0;
  let again = false;

  function synced(): boolean {
    return informers.every((i) => i.synced());
  }

  function candidates(members: ReadonlySet<string>): AnnouncerCandidate[] {
    const leaseOf = new Map<string, SpeakerLease>();
    for (const l of leases.values()) leaseOf.set(l.node, l);
    return [...nodes.values()].map((n) => ({
      name: n.name,
      alive: members.has(n.name),
      ready: n.ready,
      labels: n.labels,
      interfaces: n.name === self ? interfaces : leaseOf.get(n.name)?.interfaces,
    }));
  }

  /** A cached Service is replaced, never changed, on update: its addresses are parsed once per version. */
  const parsed = new WeakMap<SlimService, AnnouncedService | null>();
  function announcedServices(): AnnouncedService[] {
    const endpointNodes = localSlices.endpointNodes();
    const out: AnnouncedService[] = [];
    for (const s of services.values()) {
      if (!handlesClass(s.loadBalancerClass)) continue;
      let a = parsed.get(s);
      if (a === undefined) {
        const ingressIps = s.type === "LoadBalancer" ? parseIps(s.ingress) : [];
        const externalIps = parseIps(s.externalIPs);
        a =
          ingressIps.length === 0 && externalIps.length === 0
            ? null
            : {
                key: s.key,
                namespace: s.namespace,
                ingressIps,
                externalIps,
                localTraffic: s.externalTrafficPolicy === "Local",
                endpointNodes: NO_NODES,
              };
        parsed.set(s, a);
      }
      if (a === null) continue;
      if (!a.localTraffic) {
        out.push(a);
        continue;
      }
      // Turned Local while its slices were not kept: left out (withdrawn, no Event) until they are listed again.
      if (localSlices.loading(s.key)) continue;
      out.push({ ...a, endpointNodes: endpointNodes.get(s.key) ?? NO_NODES });
    }
    return out;
  }

  /** What a ranking reads besides an IP's Services: candidates and pool ConfigMaps (see PlanOptions.context). */
  function planContext(nodes: readonly AnnouncerCandidate[]): string {
    const cms = [...configMaps.values()].map((c) => `${c.key}@${c.resourceVersion}`).sort();
    return `${candidatesSignature(nodes)}|${cms.join(",")}`;
  }

  /** Time spent in inSlices' steps since the last pass began (its own work, not the turns between). */
  let sliceWorkMs = 0;
  /** Runs a stepwise computation, SLICE_MS of it per event-loop turn. */
  async function inSlices<T>(steps: Generator<void, T, void>): Promise<T> {
    let start = performance.now();
    for (;;) {
      const r = steps.next();
      if (r.done === true) {
        sliceWorkMs += performance.now() - start;
        return r.value;
      }
      if (performance.now() - start >= SLICE_MS) {
        sliceWorkMs += performance.now() - start;
        await nextTurn();
        start = performance.now();
      }
    }
  }

  function pools(): AnnouncePool[] {
    const nsLabels = new Map<string, Readonly<Record<string, string>>>();
    for (const n of namespaces.values()) nsLabels.set(n.name, n.labels);
    return announcePools([...configMaps.values()], (name) => nsLabels.get(name));
  }

  function schedule(): void {
    if (evaluating !== undefined) {
      again = true;
      return;
    }
    evaluatingSince = performance.now();
    evaluating = evaluate()
      .catch((err: unknown) => log.error({ err }, "speaker evaluation failed"))
      .finally(() => {
        evaluating = undefined;
        if (again && !stopped) {
          again = false;
          schedule();
        }
      });
  }

  async function evaluate(): Promise<void> {
    // While handing off, this node keeps answering until its successors have announced; handoff() withdraws.
    if (announcer === undefined || leaving) return;
    const now = performance.now();
    const view = membership.view(now);
    const sig = `${[...view.members].sort().join(",")}|${view.selfApiOk}|${view.fenced}`;
    // A failed annotation/Event write is retried on the next evaluation after WRITE_RETRY_MS, even when nothing
    // else changed in between — from the plan it failed in when nothing did: with many Services a full Event queue
    // holds back thousands of Events, and planning again for each batch would cost a whole plan per retry.
    if (retryWritesAt !== undefined && now >= retryWritesAt) {
      retryWritesAt = undefined;
      recordAll = true;
      if (!dirty && sig === signature && claimState.pending.size === 0 && unfinished !== undefined) {
        if (view.selfApiOk) advertisedApiOk = true;
        void record(unfinished.plan, unfinished.members);
        return;
      }
      dirty = true;
    }
    const quiet = sig === signature && claimState.pending.size === 0;
    if ((!dirty && quiet) || (quiet && now - lastPassAt < paceMs)) {
      if (view.selfApiOk) advertisedApiOk = true;
      return;
    }
    lastPassAt = now;
    sliceWorkMs = 0;
    if (sig !== signature) log.info({ members: [...view.members].sort(), fenced: view.fenced }, "membership changed");
    const rankingChanged = rankingDirty;
    dirty = false;
    rankingDirty = false;
    signature = sig;
    const ready = synced() && renewedOnce && keys.length > 0;
    // Not ready yet: look again on the next tick (becoming ready is not an informer event).
    if (!ready) dirty = rankingDirty = true;
    let plan: AnnouncePlan | undefined;
    let followed = false;
    let inheritedOwners: ReadonlyMap<string, string> | undefined;
    if (ready) {
      const candidateNodes = candidates(view.members);
      const context = planContext(candidateNodes);
      // Only nodes died since the last plan (their IPs must move now): follow each ranking without them, in this
      // turn, instead of grouping 10,000 Services again over several.
      plan =
        !rankingChanged && lastPlan !== undefined && claimState.owners !== undefined
          ? followDeaths(self, lastPlan, candidateNodes, context)
          : undefined;
      followed = plan !== undefined;
      if (plan === undefined) {
        const wanted = announcedServices();
        const currentPools = pools();
        const options = lastPlan === undefined ? { context } : { context, previous: lastPlan };
        plan = await inSlices(planSteps(self, wanted, currentPools, candidateNodes, options));
        if (claimState.owners === undefined) {
          // First plan of this process: the IPs it wins are held by peers right now; treat them as theirs.
          const without = new Set([...view.members].filter((m) => m !== self));
          inheritedOwners = ownersOf(await inSlices(planSteps(self, wanted, currentPools, candidates(without))));
        }
      }
      lastPlan = plan;
    }
    // The plan took several turns: a hand-off or stop that began meanwhile owns the announcer now.
    if (leaving || stopped) return;
    const decidedFrom = performance.now();
    const decision = decideClaims(claimState, {
      self,
      now,
      plan,
      members: view.members,
      settleMs,
      ...(inheritedOwners === undefined ? {} : { inheritedOwners }),
    });
    claimState = decision.state;
    paceMs = Math.min(PACE_MAX_MS, Math.max(PACE_MS, PACE_FACTOR * (sliceWorkMs + performance.now() - decidedFrom)));
    if (decision.changed) {
      const handedAt = performance.now();
      unannouncedHere = onNoInterface(await announcer.reconcile(decision.claims));
      claimed = decision.claims;
      const { added, removed } = decision;
      if (added.length + removed.length > 0) {
        const ips = (cs: readonly AnnounceClaim[]) => cs.slice(0, LOGGED_IPS).map((c) => formatIp(c.ip));
        log.info(
          {
            added: ips(added),
            removed: ips(removed),
            addedCount: added.length,
            removedCount: removed.length,
            // Where a takeover's time goes: planning (followed: the last plan without the dead), then the announcer.
            followed,
            planMs: Math.round(handedAt - now),
            announcerMs: Math.round(performance.now() - handedAt),
          },
          "claims",
        );
      }
    }
    // Fencing order: withdraw first (above), only then tell the peers we cannot reach the API.
    advertisedApiOk = view.selfApiOk;
    if (plan !== undefined) void record(plan, view.members);
  }

  // --- visibility: Events per IP from its owner, the annotation from one node per Service, once per change ---
  const events = createEventRecorder({
    client: ctx.client,
    logger: log,
    component: "lodestone-speaker",
    instance: self,
    maxQueued: ctx.maxQueuedEvents ?? MAX_QUEUED_EVENTS,
  });
  /** Queues an Event; a full queue is a failed write, so `once` tries it again on a later pass. */
  function recordEvent(ref: ObjectRef, type: "Normal" | "Warning", reason: EventReason, message: string) {
    const before = events.dropped();
    events.record(ref, type, reason, message);
    return Promise.resolve(events.dropped() > before ? EVENT_QUEUE_FULL : undefined);
  }
  const written = new Map<string, { value: string; at: number }>();
  const inherited = new Set<string>();
  let recordedOnce = false;
  let retryWritesAt: number | undefined;
  /**
   * What each Service was last recorded from: its cached object, its planned IPs (the plan reuses unchanged ones)
   * and, per IP, held / not / held without an interface. A pass looks only at Services where one of these changed,
   * except the first and one after a failed write, which look at all.
   */
  const recordedFrom = new Map<string, { svc: SlimService; planned: readonly PlannedIp[]; held: string }>();
  let recordAll = true;
  /** The last plan recorded, while some of its writes wait for retryWritesAt. */
  let unfinished: { plan: AnnouncePlan; members: ReadonlySet<string> } | undefined;
  let passes = 0;
  /** Events of the current pass that did not fit in the queue. */
  let heldBack = 0;
  async function record(plan: AnnouncePlan, members: ReadonlySet<string>): Promise<void> {
    const pass = ++passes;
    heldBack = 0;
    await recordPass(plan, members, pass);
    if (pass !== passes) return;
    unfinished = retryWritesAt === undefined ? undefined : { plan, members };
    if (heldBack > 0) {
      log.info(
        { heldBack, queued: ctx.maxQueuedEvents ?? MAX_QUEUED_EVENTS },
        `Event queue full: ${heldBack} Events are recorded on a pass in ${WRITE_RETRY_MS / 1000} s`,
      );
    }
  }

  async function recordPass(plan: AnnouncePlan, members: ReadonlySet<string>, pass: number): Promise<void> {
    // Who speaks when nobody announces: the first member by name, so the Event is written once, not per node.
    const reporter = [...members].sort()[0];
    const held = claimState.claimed;
    const now = performance.now();
    // A pass looks at every Service: SLICE_MS of it per turn, and a newer pass makes this one stop where it is.
    // Annotation writes run WRITES_IN_FLIGHT at a time instead of one after the other.
    let sliceStart = now;
    let looked = 0;
    const inFlight = new Set<Promise<void>>();
    const write = async (started: Promise<void>): Promise<void> => {
      const p: Promise<void> = started
        .catch((err: unknown) => log.warn({ err }, "could not record announcement on the Service"))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(inFlight);
    };
    const superseded = async (): Promise<boolean> => {
      if (++looked % 64 === 0 && performance.now() - sliceStart >= SLICE_MS) {
        await nextTurn();
        sliceStart = performance.now();
      }
      return pass !== passes;
    };
    const firstPass = !recordedOnce;
    recordedOnce = true;
    const all = recordAll;
    recordAll = false;
    const heldText = (planned: readonly PlannedIp[]): string => {
      let t = "";
      for (const p of planned) t += !held.has(p.key) ? "0" : unannouncedHere.has(p.key) ? "x" : "1";
      return reporter === self ? `${t}r` : t;
    };
    const perService = new Map<string, PlannedIp[]>();
    for (const p of plan.ips) {
      for (const key of p.services) {
        const list = perService.get(key);
        if (list === undefined) perService.set(key, [p]);
        else list.push(p);
      }
    }
    for (const [key, planned] of perService) {
      if (await superseded()) break;
      const svc = services.get(key);
      if (svc === undefined) continue;
      const before = recordedFrom.get(key);
      const heldNow = heldText(planned);
      if (
        !all &&
        before !== undefined &&
        before.svc === svc &&
        before.held === heldNow &&
        before.planned.length === planned.length &&
        before.planned.every((p, i) => p === planned[i])
      )
        continue;
      recordedFrom.set(key, { svc, planned, held: heldNow });
      const ref = { kind: "Service", namespace: svc.namespace, name: svc.name, uid: svc.uid } as const;
      const current = svc.annotations[ANNOUNCING_ANNOTATION];
      // Each IP is elected on its own (a dual-stack Service may have two owners): its owner records its Event.
      for (const p of planned) {
        const slot = `${key}#announcing#${formatIp(p.ip)}`;
        const mine = p.announcer.ok && p.announcer.owner === self && held.has(p.key);
        if (!mine) written.delete(slot);
        // A restarted speaker finds the annotation naming it for IPs it announced before: that Event exists. Only
        // what the first pass finds counts; later, the annotation may name this node from another node's plan
        // before this one announces, which proves nothing.
        const namesSelf = announcingNodeFor(current, p.ip) === self;
        if (namesSelf && firstPass) inherited.add(slot);
        if (!namesSelf) inherited.delete(slot);
        const problem = mine ? unannouncedHere.get(p.key) : undefined;
        if (problem !== undefined) {
          // Elected, but its announcer finds no usable interface here (down, no MAC, …): nobody answers.
          written.delete(slot);
          await once(`${key}#none#${formatIp(p.ip)}`, problem, now, () =>
            recordEvent(ref, "Warning", "NotAnnounced", problem),
          );
        } else if (mine && !inherited.has(slot)) {
          const on = interfaceFor(p.ip);
          const text = `Announcing ${formatIp(p.ip)} from node ${self}${on === undefined ? "" : ` on ${on}`}`;
          await once(slot, self, now, () => recordEvent(ref, "Normal", "Announcing", text));
        } else if (!p.announcer.ok && reporter === self) {
          const message = p.announcer.message;
          await once(`${key}#none#${formatIp(p.ip)}`, message, now, () =>
            recordEvent(ref, "Warning", "NotAnnounced", message),
          );
        }
      }
      // One writer per Service, so owners of different IPs never overwrite each other: the owner of its first
      // announced IP once it announces it, or the reporter when no IP has an owner (the annotation goes).
      const owners = planned.flatMap((p) => (p.announcer.ok ? [{ ip: p.ip, node: p.announcer.owner }] : []));
      const desired = formatAnnouncingNodes(owners);
      const first = owners[0];
      const writer = first === undefined ? reporter === self : first.node === self && held.has(ipKey(first.ip));
      const slot = `${key}#annotation`;
      const prev = written.get(slot);
      if (!writer || current === desired) {
        // In place: whatever is seen next is written again (keeping the time of the last write for the limit below).
        if (prev !== undefined) written.set(slot, { value: "", at: prev.at });
        continue;
      }
      // The slot names what was seen too: when another node overwrote the annotation (a peer that held an IP while
      // this node was cut off), this one writes it again — once its own write has had time to show in the informer,
      // so two nodes that briefly disagree do not rewrite it at the API's pace.
      if (prev !== undefined && now - prev.at < OVERWRITTEN_AFTER_MS) {
        retryWritesAt ??= prev.at + OVERWRITTEN_AFTER_MS;
        continue;
      }
      // The same change written over a second ago and still not in the cache: overwritten by a writer that put
      // back what it had read (seen in one pass, between two of ours), so written again.
      const change = `${current ?? ""} -> ${desired ?? ""}`;
      if (prev?.value === change) written.delete(slot);
      await write(once(slot, change, now, () => writeAnnouncingNode(ctx.client, svc.namespace, svc.name, desired)));
    }
    await Promise.all(inFlight);
    if (pass !== passes) return;
    for (const k of recordedFrom.keys()) if (!perService.has(k)) recordedFrom.delete(k);
    if (reporter !== self) return;
    // A Service that left the plan (no IP any more, its IP outside every pool, no longer a LoadBalancer) keeps no
    // announcing-node annotation: nobody announces it. Another class's Service is never in the plan, and never
    // ours to write (a second Lodestone with its own --load-balancer-class writes the same annotation).
    for (const svc of services.values()) {
      if (await superseded()) return;
      const current = svc.annotations[ANNOUNCING_ANNOTATION];
      if (current === undefined || perService.has(svc.key) || !handlesClass(svc.loadBalancerClass)) continue;
      await write(
        once(`${svc.key}#annotation`, `${current} -> `, now, () =>
          writeAnnouncingNode(ctx.client, svc.namespace, svc.name, undefined),
        ),
      );
    }
    await Promise.all(inFlight);
    for (const u of plan.unannounced) {
      if (await superseded()) return;
      const svc = services.get(u.service);
      if (svc === undefined) continue;
      await once(`${u.service}#refused#${formatIp(u.ip)}`, u.message, now, () =>
        recordEvent(
          { kind: "Service", namespace: svc.namespace, name: svc.name, uid: svc.uid },
          "Warning",
          "NotAnnounced",
          u.message,
        ),
      );
    }
  }

  /** Runs a write unless the same value was written already (or failed less than WRITE_RETRY_MS ago). */
  async function once(slot: string, value: string, now: number, write: () => Promise<string | undefined>) {
    const prev = written.get(slot);
    if (prev !== undefined && prev.value === value) return;
    if (prev !== undefined && prev.value === `failed:${value}` && now - prev.at < WRITE_RETRY_MS) {
      // Failed in a later pass than the one the pending retry is for: that retry comes too early for this write,
      // so it must leave one of its own, or the write would wait for an unrelated change.
      retryWritesAt ??= prev.at + WRITE_RETRY_MS;
      return;
    }
    written.set(slot, { value, at: now });
    const err = await write();
    if (err !== undefined) {
      written.set(slot, { value: `failed:${value}`, at: now });
      retryWritesAt ??= now + WRITE_RETRY_MS;
      if (err === EVENT_QUEUE_FULL) heldBack++;
      else log.warn({ slot, err }, "could not record announcement on the Service");
    }
  }

  /** The interface the announcer will use, by its own rule, for the Event text. */
  function interfaceFor(ip: IpAddress): string | undefined {
    const wanted = claimState.claimed.get(ipKey(ip))?.interfaces;
    if (wanted !== undefined) return wanted.join(", ");
    return subnetInterface(interfaces, ip);
  }

  // --- heartbeats and Lease ---
  function peers() {
    const leaseOf = new Map<string, SpeakerLease>();
    for (const l of leases.values()) leaseOf.set(l.node, l);
    const out = [];
    for (const n of nodes.values()) {
      if (n.name === self) continue;
      const hb = leaseOf.get(n.name)?.heartbeat;
      const address = hb?.address ?? n.internalIps[0];
      const port = hb?.port ?? ctx.heartbeatPort ?? DEFAULT_HEARTBEAT_PORT;
      if (address === undefined || port === 0) continue;
      out.push({ node: n.name, address, port });
    }
    return out;
  }

  function beat(kind: "alive" | "leaving"): void {
    if (transport === undefined) return;
    transport.send(
      { node: self, incarnation, seq: ++seq, sentAtMs: Date.now(), kind, apiOk: kind === "alive" && advertisedApiOk },
      peers(),
    );
  }

  const renew = createLeaseRenewer(ctx.client, ns, self, Math.ceil(timing.leaseDurationMs / 1000));
  async function renewOnce(): Promise<void> {
    interfaces = await (ctx.scanInterfaces ?? scanInterfaces)();
    const annotations: Record<string, string> = { [INTERFACES_ANNOTATION]: encodeInterfaces(interfaces) };
    if (transport !== undefined && hbAddress !== undefined) {
      annotations[HEARTBEAT_ANNOTATION] = encodeHeartbeatAddress(hbAddress, transport.port);
    }
    // The fencing clock starts when the request is sent, which is no later than any peer can observe it.
    const sentAt = performance.now();
    const err = await renew(annotations, timing.renewIntervalMs);
    if (err === undefined) {
      membership.renewed(sentAt);
      renewedOnce = true;
      if (lastError !== undefined) log.info("membership Lease renewed again");
      lastError = undefined;
    } else if (err !== lastError) {
      lastError = err;
      log.warn({ err }, "cannot renew the membership Lease");
    }
  }

  // Start-up waits (the key, the Node list, its InternalIP) can last forever, e.g. when RBAC refuses a list:
  // stop() cuts them short, or a pod that never finished starting could not shut down.
  const stopSignal = new AbortController();
  const stopRequested = (): void => stopSignal.abort();
  const stopping = new Promise<void>((resolve) =>
    stopSignal.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  // Cut short by stop(); nothing is left behind per call, however long the wait lasts.
  const pauses = createPauses(systemClock.setTimer);
  stopSignal.signal.addEventListener("abort", () => pauses.stop(), { once: true });
  const pause = pauses.pause;

  let hbAddress: IpAddress | undefined;
  async function run(): Promise<void> {
    for (const i of owned) if (i !== slices) i.start();
    // Which slices are kept depends on the Services: listed before them, every slice would be dropped and listed
    // again as soon as its Local Service showed up.
    void services.whenSynced().then(() => !stopped && slices.start());
    for (let attempt = 0; !stopped; attempt++) {
      const r = await loadMemberlistKeys(ctx.client, ns);
      if (r.ok) {
        keys = r.value.map(heartbeatKey);
        break;
      }
      if (attempt === 0 || attempt % 10 === 0) log.warn({ err: r.message }, "heartbeat key not available yet");
      await pause(Math.min(5_000, 200 * 2 ** attempt));
    }
    await Promise.race([nodes.whenSynced(), stopping]);
    while (!stopped && hbAddress === undefined) {
      hbAddress = ctx.heartbeatAddress ?? nodes.get(self)?.internalIps[0];
      if (hbAddress === undefined) {
        log.warn(`Node ${self} has no InternalIP yet (or does not exist); heartbeats wait for it`);
        await pause(1_000);
      }
    }
    if (stopped || hbAddress === undefined) return;
    const onHeartbeat = (hb: Heartbeat, receivedAt: number): void => {
      const rejected = membership.heartbeat(hb, receivedAt, Date.now());
      if (rejected !== undefined && rejected !== "replay") log.debug({ from: hb.node, rejected }, "heartbeat refused");
      if (hb.kind === "leaving") schedule();
    };
    const port = ctx.heartbeatPort ?? DEFAULT_HEARTBEAT_PORT;
    if (ctx.createWire !== undefined) {
      const w = await ctx.createWire({
        address: hbAddress,
        port,
        heartbeatIntervalMs: timing.heartbeatIntervalMs,
        logger: log,
        keys,
        onHeartbeat,
      });
      if (!w.ok) throw new Error(w.error.message);
      wire = w.value;
      transport = wire.transport;
      announcer = wire.announcer;
      // This thread was silent for seconds (hung, or starved): the wire thread withdrew every IP, and peers have
      // taken them over. Start again as a restarted speaker would: what it wins now settles first.
      wire.onWithdrawn(() => {
        claimState = { ...initialClaimState, failovers: claimState.failovers };
        claimed = [];
        dirty = rankingDirty = true;
      });
    } else {
      const t = await createHeartbeatTransport({
        address: hbAddress,
        port,
        logger: log,
        keys: () => keys,
        onHeartbeat: (hb) => onHeartbeat(hb, performance.now()),
      });
      if (!t.ok) throw new Error(t.error.message);
      transport = t.value;
      const a = await ctx.createAnnouncer(log);
      if (!a.ok) throw new Error(`announcer: ${a.error.message}`);
      announcer = a.value;
    }
    // Defence (RFC 5227 §2.4): another host announcing an IP this node owns — a peer that wrongly believes it owns
    // it during a membership disagreement, or a stale claimant — gets our own announcement again, at most once
    // a second per IP, so the LAN's caches end on the owner once the disagreement is over. Not while handing off.
    // One announcement per defence, not a new burst: in a disagreement over thousands of IPs every burst frame
    // seen by the other side is answered again, and bursts would multiply the frames each node handles. The log
    // says once a second how many IPs were defended.
    const defended = new Map<string, number>();
    let defendedNow: string[] = [];
    let defenceWindowAt = -Infinity;
    let defencesInWindow = 0;
    const reportDefence = (): void => {
      log.warn(
        { ips: defendedNow.slice(0, LOGGED_IPS), count: defendedNow.length },
        "another host announces IPs this node owns; announcing them again",
      );
      defendedNow = [];
    };
    announcer.onForeignAnnouncement?.((seen) => {
      if (leaving || stopped) return;
      const k = ipKey(seen.ip);
      if (!claimState.claimed.has(k)) return;
      duelling++;
      const at = performance.now();
      if (at - (defended.get(k) ?? -Infinity) < 1_000) return;
      // And at most DEFENCES_PER_SECOND IPs a second in all: when two nodes each believe they own thousands of IPs,
      // answering every sighting floods the LAN (each answer is seen, and answered, by the other side) and the
      // softirq load starves both nodes' heartbeats, which keeps them apart.
      if (at - defenceWindowAt >= 1_000) {
        defenceWindowAt = at;
        defencesInWindow = 0;
      }
      if (++defencesInWindow > DEFENCES_PER_SECOND) return;
      defended.set(k, at);
      if (defendedNow.length === 0) setTimeout(reportDefence, 1_000).unref();
      defendedNow.push(formatIp(seen.ip));
      announcer?.announceNow?.(seen.ip, { once: true });
    });
    if (stopped) return;
    await renewOnce();
    let renewing = false;
    timers.push(
      setInterval(() => {
        if (renewing || stopped) return;
        renewing = true;
        void renewOnce().finally(() => (renewing = false));
      }, timing.renewIntervalMs),
    );
    timers.push(setInterval(() => !leaving && beat("alive"), timing.heartbeatIntervalMs));
    // From the check phase, after the poll phase of the same loop iteration: when this process was stalled (a long
    // turn, no CPU), the heartbeats that queued up meanwhile are read first, so its own stall never looks like
    // every peer falling silent — which would make it take over their IPs and duel with them.
    timers.push(setInterval(() => setImmediate(() => !stopped && schedule()), EVAL_MS));
    beat("alive");
    schedule();
  }

  let running: Promise<void> | undefined;
  return {
    async start() {
      running = run().catch((err: unknown) => {
        lastError = err instanceof Error ? err.message : String(err);
        log.error({ err: lastError }, "speaker failed to start");
      });
    },
    async handoff() {
      if (leaving) return;
      leaving = true;
      membership.stopping();
      const started = performance.now();
      const held = new Set(claimed.map((c) => ipKey(c.ip)));
      const taken = new Set<string>();
      let allTaken = (): void => undefined;
      const everyIpTaken = new Promise<void>((resolve) => (allTaken = resolve));
      const unsubscribe = announcer?.onForeignAnnouncement?.((seen) => {
        const k = ipKey(seen.ip);
        if (!held.has(k)) return;
        taken.add(k);
        if (taken.size === held.size) allTaken();
      });
      // Three copies: one lost datagram must not cost the successors a failure detection.
      for (let i = 0; i < 3; i++) {
        beat("leaving");
        await new Promise((r) => setTimeout(r, 20));
      }
      if (unsubscribe === undefined) {
        await new Promise((r) => setTimeout(r, ctx.handoffMs ?? 300));
      } else {
        if (held.size === 0) allTaken();
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([everyIpTaken, new Promise((r) => (timer = setTimeout(r, ctx.handoffMs ?? 2_000)))]);
        clearTimeout(timer);
        unsubscribe();
        // The successor's announcement reached us; give hosts on the LAN a moment to process the same frame.
        if (held.size > 0) await new Promise((r) => setTimeout(r, HANDOFF_GRACE_MS));
        log.info(
          { ips: held.size, takenOver: taken.size, ms: Math.round(performance.now() - started) },
          taken.size === held.size ? "hand-off confirmed on the wire" : "hand-off: not every IP was taken over in time",
        );
      }
      await evaluating;
      if (announcer !== undefined) await announcer.reconcile([]);
      claimed = [];
      claimState = withdrawAll(claimState);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      stopRequested();
      for (const t of timers) clearInterval(t);
      await running;
      await evaluating;
      if (announcer !== undefined) {
        await announcer.reconcile([]);
        await announcer.close();
      }
      await transport?.close();
      await events.flush();
      localSlices.detach();
      await Promise.all(owned.map((i) => i.stop()));
    },
    telemetry() {
      const l2 = announcer?.telemetry() ?? { layer2: [], layer2Drops: [] };
      const restarts: Record<string, number> = {};
      for (const i of owned) restarts[i.resource] = i.restarts();
      return {
        announcedIps: claimed.length,
        membershipSize: membership.view(performance.now()).members.size,
        failovers: claimState.failovers,
        duellingAnnouncements: duelling,
        layer2: l2.layer2,
        layer2Drops: l2.layer2Drops,
        informerRestarts: restarts,
        eventsDropped: { speaker: events.dropped() },
        wireLoopLag: wire?.loopLag() ?? emptyLag(),
      };
    },
    readiness() {
      const reasons: string[] = [];
      if (!synced()) reasons.push("speaker: informers not synced");
      if (keys.length === 0) reasons.push("speaker: heartbeat key not loaded");
      if (transport === undefined) reasons.push("speaker: heartbeat socket not bound");
      if (!membership.selfApiOk(performance.now())) {
        reasons.push(`speaker: membership Lease not renewed${lastError === undefined ? "" : ` (${lastError})`}`);
      }
      return { ok: reasons.length === 0, reasons };
    },
    loops: () => [
      ...owned.map((i) => ({ loop: `informer ${i.resource}`, ended: i.crashed() })),
      ...(wire === undefined ? [] : [{ loop: "wire thread", ended: wire.crashed() !== undefined }]),
      {
        loop: "speaker evaluation",
        busyForMs: evaluating === undefined ? undefined : performance.now() - evaluatingSince,
        stallMs: ctx.stallMs ?? DEFAULT_SPEAKER_STALL_MS,
      },
    ],
  };
}
