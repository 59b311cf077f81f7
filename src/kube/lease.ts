import type { Logger } from "pino";
import { createPauses, type Pauses } from "../core/pause.ts";
import { responseMessage, type KubeClient } from "./client.ts";

/** Time as the elector sees it: a monotonic clock for deadlines, wall time only for what it writes. */
export interface Clock {
  /** Monotonic milliseconds (never jumps with NTP). */
  now(): number;
  wall(): Date;
  /** Calls `fn` after `ms`; returns a cancel function. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => new Date(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

export interface LeaseTimings {
  /** How long others wait after the last observed renew before taking over. */
  readonly leaseDurationMs: number;
  /** A leader that has not renewed for this long stops acting; must be < leaseDurationMs. */
  readonly renewDeadlineMs: number;
  /** Time between attempts to acquire or renew. */
  readonly retryPeriodMs: number;
}

export const defaultLeaseTimings: LeaseTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** Errors as data: every reason a set of timings is unsafe, empty when they are fine. */
export function leaseTimingProblems(t: LeaseTimings): string[] {
  const p: string[] = [];
  if (!(t.leaseDurationMs > 0)) p.push("lease duration must be positive");
  if (!(t.renewDeadlineMs > 0)) p.push("renew deadline must be positive");
  if (!(t.retryPeriodMs > 0)) p.push("retry period must be positive");
  if (!(t.renewDeadlineMs < t.leaseDurationMs)) p.push("renew deadline must be shorter than the lease duration");
  if (!(t.retryPeriodMs < t.renewDeadlineMs)) p.push("retry period must be shorter than the renew deadline");
  return p;
}

export interface LeaderElectorOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly timings?: LeaseTimings;
  readonly clock?: Clock;
  readonly logger: Logger;
  readonly onStartedLeading: () => void;
  /** Called (synchronously, at once) when leadership is lost or given up; stop writing before returning. */
  readonly onStoppedLeading: () => void;
  readonly random?: () => number;
}

export interface LeaderElector {
  start(): void;
  /** Stops acting, then hands the Lease back (empty holder) so a standby takes over without waiting. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /** The holder last observed in the Lease ("" when free or not yet read). */
  holder(): string;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
interface LeaseObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** RFC 3339 with microseconds, the form of `MicroTime`. */
export const microTime = (d: Date): string => d.toISOString().replace(/Z$/, "000Z");

/**
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go does it, with one safety rule made explicit:
 * others judge expiry by *their* observation time of the last renew (never by comparing wall clocks), which is
 * at or after the moment this pod sent that renew. So stepping down `renewDeadline` after the send time of the
 * last successful renew, measured on the monotonic clock, always happens before anyone else may take over
 * (`renewDeadline < leaseDuration`). A watchdog timer enforces it even while a renew request hangs.
 */
export function createLeaderElector(o: LeaderElectorOptions): LeaderElector {
  const t = o.timings ?? defaultLeaseTimings;
  const problems = leaseTimingProblems(t);
  if (problems.length > 0) throw new Error(`invalid lease timings: ${problems.join("; ")}`);
  const clock = o.clock ?? systemClock;
  const random = o.random ?? Math.random;
  const log = o.logger.child({ lease: `${o.namespace}/${o.name}`, identity: o.identity });
  const path = `/apis/coordination.k8s.io/v1/namespaces/${o.namespace}/leases/${o.name}`;
  let leading = false;
  let stopped = true;
  let lastRenewSentAt = 0;
  let cancelWatchdog: (() => void) | undefined;
  /** Our last successful write, so a renew needs one PUT and no GET. */
  let mine: LeaseObject | undefined;
  let observed: { holder: string; renewTime: string; at: number } = { holder: "", renewTime: "", at: 0 };
  let running: Promise<void> | undefined;
  let pauses: Pauses = createPauses((ms, fn) => clock.setTimer(ms, fn));

  const leaseSeconds = Math.max(1, Math.ceil(t.leaseDurationMs / 1000));

  function spec(prev: LeaseSpec | undefined): LeaseSpec {
    const now = microTime(clock.wall());
    const same = prev?.holderIdentity === o.identity;
    return {
      holderIdentity: o.identity,
      leaseDurationSeconds: leaseSeconds,
      acquireTime: same && prev?.acquireTime !== undefined ? prev.acquireTime : now,
      renewTime: now,
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (same || prev === undefined ? 0 : 1),
    };
  }

  async function put(prev: LeaseObject, next: LeaseSpec): Promise<boolean> {
    const res = await o.client.request({
      method: "PUT",
      path,
      body: { ...prev, spec: next },
      timeoutMs: t.retryPeriodMs,
    });
    // 201: the Lease was deleted meanwhile and the PUT created it (Leases allow create on update).
    if (res.status === 200 || res.status === 201) {
      mine = res.body as LeaseObject;
      return true;
    }
    mine = undefined;
    if (res.status !== 409) log.warn({ status: res.status, reason: responseMessage(res) }, "lease update failed");
    return false;
  }

  /** One attempt; true when this pod holds the Lease as of the request it sent. */
  async function tryAcquireOrRenew(): Promise<boolean> {
    if (leading && mine !== undefined && (await put(mine, spec(mine.spec)))) return true;
    const res = await o.client.request({ method: "GET", path, timeoutMs: t.retryPeriodMs });
    if (res.status === 404) {
      const created = await o.client.request({
        method: "POST",
        path: `/apis/coordination.k8s.io/v1/namespaces/${o.namespace}/leases`,
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: o.name, namespace: o.namespace },
          spec: spec(undefined),
        },
        timeoutMs: t.retryPeriodMs,
      });
      if (created.status === 201 || created.status === 200) {
        mine = created.body as LeaseObject;
        return true;
      }
      return false;
    }
    if (res.status !== 200) {
      log.debug({ status: res.status, reason: responseMessage(res) }, "lease read failed");
      return false;
    }
    const lease = res.body as LeaseObject;
    const holder = lease.spec?.holderIdentity ?? "";
    const renewTime = lease.spec?.renewTime ?? "";
    if (holder !== observed.holder || renewTime !== observed.renewTime) {
      observed = { holder, renewTime, at: clock.now() };
    }
    if (holder !== "" && holder !== o.identity && observed.at + t.leaseDurationMs > clock.now()) return false;
    return put(lease, spec(lease.spec));
  }

  function stepDown(reason: string): void {
    cancelWatchdog?.();
    cancelWatchdog = undefined;
    if (!leading) return;
    leading = false;
    mine = undefined;
    log.warn({ reason }, "stopped leading");
    o.onStoppedLeading();
  }

  function renewed(sentAt: number): void {
    lastRenewSentAt = sentAt;
    observed = { holder: o.identity, renewTime: "", at: sentAt };
    cancelWatchdog?.();
    const left = sentAt + t.renewDeadlineMs - clock.now();
    if (left <= 0) {
      stepDown("renew answered after the renew deadline");
      return;
    }
    cancelWatchdog = clock.setTimer(left, () => stepDown(`no successful renew for ${t.renewDeadlineMs} ms`));
    if (!leading) {
      leading = true;
      log.info("started leading");
      o.onStartedLeading();
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      const sentAt = clock.now();
      const ok = await tryAcquireOrRenew().catch((err: unknown) => {
        log.warn({ err }, "lease attempt failed");
        return false;
      });
      if (stopped) break;
      if (ok) renewed(sentAt);
      else if (leading && clock.now() - lastRenewSentAt >= t.renewDeadlineMs) {
        stepDown("renew deadline passed");
      }
      // Standbys jitter their attempts so a crowd does not hit the API server in lockstep.
      await pauses.pause(leading ? t.retryPeriodMs : t.retryPeriodMs * (1 + 0.2 * random()));
    }
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      pauses = createPauses((ms, fn) => clock.setTimer(ms, fn));
      running = loop();
    },
    async stop() {
      stopped = true;
      const wasLeading = leading;
      stepDown("shutting down");
      pauses.stop();
      await running;
      if (wasLeading) {
        // Hand the Lease back so the standby takes over at once instead of after leaseDuration.
        const res = await o.client.request({ method: "GET", path, timeoutMs: 2000 });
        const lease = res.body as LeaseObject;
        if (res.status === 200 && lease.spec?.holderIdentity === o.identity) {
          const now = microTime(clock.wall());
          const released = await o.client.request({
            method: "PUT",
            path,
            body: {
              ...lease,
              spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
            },
            timeoutMs: 2000,
          });
          log.info({ status: released.status }, "lease released");
        }
      }
    },
    isLeader: () => leading && clock.now() - lastRenewSentAt < t.renewDeadlineMs,
    holder: () => observed.holder,
  };
}
