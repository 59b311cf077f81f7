import type { Logger } from "pino";
import { setImmediate as nextTurn } from "node:timers/promises";
import { decodeAnnounced } from "../core/announced-codec.ts";
import { AnnouncerReports } from "../core/announcer-reports.ts";
import { announcingNodeFor, formatAnnouncingNodes, type IpOwner } from "../core/announcing-node.ts";
import { type IpAddress, ipKey, parseIp } from "../core/ip.ts";
import type { Informer } from "../kube/informer.ts";
import type { Clock } from "../kube/lease.ts";
import type { SlimService } from "../kube/objects.ts";
import type { ServiceStatusWriter } from "../kube/service-status-writer.ts";
import type { SpeakerLease } from "../kube/speaker-resources.ts";
import { ANNOUNCING_ANNOTATION } from "../core/well-known.ts";

/** Annotation writes in flight at once. */
const WRITES_IN_FLIGHT = 8;
/** The most work of one event-loop turn before timers, the watches and the Lease renewals get theirs. */
const SLICE_MS = 5;
const RETRY_MS = 2_000;

export interface AnnouncingWriterOptions {
  readonly services: Informer<SlimService>;
  /** The speakers' membership Leases (label lodestone.dev/component=speaker). */
  readonly leases: Informer<SpeakerLease>;
  /** Whether a Service's class is ours: another implementation's Services are never written. */
  readonly handlesClass: (cls: string | undefined) => boolean;
  readonly writer: ServiceStatusWriter;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly writesInFlight?: number;
}

export interface AnnouncingWriter {
  /** The controller leads: every Service is looked at once, then only those a change concerns. */
  start(): void;
  stop(): void;
  /** Services waiting to be looked at or being written (tests, the benchmark). */
  pending(): number;
  /** Annotation writes made since the start (tests, the benchmark). */
  writes(): number;
}

/**
 * The controller's writer of `lodestone.dev/announcing-node`: which node answers for each of a Service's IPs, from
 * what the speakers report in their membership Leases (core/announcer-reports.ts decides whom a report names).
 * The speakers may not write Services; the report is information only, so a wrong one costs a wrong annotation,
 * never a wrong answer on the wire. Work follows changes: a report that changes marks the Services of the IPs whose
 * owner changed, a Service that changes marks itself; a Service whose annotation is already right costs a lookup.
 * A Lease that carries no readable report (a speaker of an older version during an upgrade, one too long to
 * write) keeps what the annotations say of its node.
 */
export function createAnnouncingWriter(o: AnnouncingWriterOptions): AnnouncingWriter {
  const log = o.logger.child({ part: "announcing-node" });
  const clock = o.clock;
  const limit = o.writesInFlight ?? WRITES_IN_FLIGHT;
  const reports = new AnnouncerReports();
  /** Per node: the report text last applied, the Lease's renewTime last seen and when it expires then. */
  const applied = new Map<string, { text: string | undefined; renewTime: string | undefined; expiresAt: number }>();
  /** Nodes whose Lease has no readable report, and when that Lease expires. */
  const unknown = new Map<string, number>();
  /** IP key → Services that have it; Service key → its announced-IP candidates. */
  const byIp = new Map<string, Set<string>>();
  const ipsOf = new Map<string, readonly IpAddress[]>();
  /** What we wrote, with the resourceVersion it was based on: trusted until the cache shows another version. */
  const written = new Map<string, { value: string | undefined; basedOn: string }>();
  const dirty = new Set<string>();
  let acting = false;
  let epoch = 0;
  let inFlight = 0;
  let draining = false;
  let writes = 0;
  let expiryTimer: (() => void) | undefined;
  let lastExpiryCheck = clock.now();
  /** Lease changes waiting to be applied, in order; applied a slice per turn. */
  const leaseQueue: { node: string; lease: SpeakerLease | undefined }[] = [];
  let applying = false;

  function candidates(svc: SlimService): IpAddress[] {
    if (!o.handlesClass(svc.loadBalancerClass)) return [];
    const texts = svc.type === "LoadBalancer" ? [...svc.ingress, ...svc.externalIPs] : svc.externalIPs;
    const out: IpAddress[] = [];
    for (const t of texts) {
      const a = parseIp(t);
      if (a !== undefined && !out.some((b) => ipKey(b) === ipKey(a))) out.push(a);
    }
    return out;
  }

  function index(key: string, svc: SlimService | undefined): void {
    const before = ipsOf.get(key) ?? [];
    const after = svc === undefined ? [] : candidates(svc);
    for (const a of before) byIp.get(ipKey(a))?.delete(key);
    for (const a of after) {
      const k = ipKey(a);
      let set = byIp.get(k);
      if (set === undefined) byIp.set(k, (set = new Set()));
      set.add(key);
    }
    if (after.length === 0) ipsOf.delete(key);
    else ipsOf.set(key, after);
  }

  function markIps(keys: Iterable<string>): void {
    for (const k of keys) for (const svc of byIp.get(k) ?? []) dirty.add(svc);
  }

  /** The annotation a Service should carry now. */
  function desired(svc: SlimService, now: number): string | undefined {
    const owners: IpOwner[] = [];
    const current = svc.annotations[ANNOUNCING_ANNOTATION];
    for (const a of ipsOf.get(svc.key) ?? []) {
      let node = reports.owner(ipKey(a), now);
      if (node === undefined && unknown.size > 0) {
        const named = announcingNodeFor(current, a);
        if (named !== undefined && (unknown.get(named) ?? 0) > now) node = named;
      }
      if (node !== undefined) owners.push({ ip: a, node });
    }
    return formatAnnouncingNodes(owners);
  }

  // ---- reports ----

  function leaseChanged(lease: SpeakerLease | undefined, node: string): void {
    leaseQueue.push({ node, lease });
    if (!applying) {
      applyLeases().catch((err: unknown) => {
        applying = false;
        log.error({ err }, "applying the speakers' reports failed");
      });
    }
  }

  /** Every Service with an IP: when a node's report becomes readable or unreadable (rare), all may change. */
  function markAll(): void {
    for (const key of ipsOf.keys()) dirty.add(key);
  }

  async function applyLeases(): Promise<void> {
    applying = true;
    let start = performance.now();
    const yieldIfLong = async (): Promise<void> => {
      if (performance.now() - start < SLICE_MS) return;
      await nextTurn();
      start = performance.now();
    };
    try {
      for (let next = leaseQueue.shift(); next !== undefined; next = leaseQueue.shift()) {
        const { node, lease } = next;
        const now = clock.now();
        const prev = applied.get(node);
        if (lease === undefined) {
          applied.delete(node);
          if (unknown.delete(node)) markAll();
          markIps(reports.remove(node));
          continue;
        }
        // A new renewTime extends the Lease's life from when this controller saw it, as client-go's elector
        // judges a Lease: by its own clock, not the writer's.
        const expiresAt =
          prev !== undefined && prev.renewTime === lease.renewTime
            ? prev.expiresAt
            : now + (lease.durationSeconds ?? 10) * 1000;
        applied.set(node, { text: lease.announced, renewTime: lease.renewTime, expiresAt });
        const decoded = lease.announced === undefined ? undefined : decodeAnnounced(lease.announced);
        if (decoded !== undefined && !decoded.ok && prev?.text !== lease.announced) {
          log.warn({ node, err: decoded.error }, "a speaker's report of announced IPs cannot be read; ignored");
        }
        if (decoded === undefined || !decoded.ok) {
          // No readable report: what the annotations say of this node is kept (and what it reported last).
          if (!unknown.has(node)) markAll();
          unknown.set(node, expiresAt);
          markIps(reports.renew(node, expiresAt, now));
          continue;
        }
        if (unknown.delete(node)) markAll();
        if (prev?.text === lease.announced) {
          markIps(reports.renew(node, expiresAt, now));
          continue;
        }
        const keys = decoded.value.map(ipKey);
        await yieldIfLong();
        const steps = reports.reportSteps(node, keys, expiresAt, clock.now());
        for (;;) {
          const r = steps.next();
          if (r.done === true) {
            markIps(r.value);
            break;
          }
          await yieldIfLong();
        }
        await yieldIfLong();
      }
    } finally {
      applying = false;
    }
    scheduleExpiry();
    drain();
  }

  function scheduleExpiry(): void {
    expiryTimer?.();
    const now = clock.now();
    let next = reports.nextExpiry(now);
    for (const at of unknown.values()) if (at > now && (next === undefined || at < next)) next = at;
    expiryTimer =
      next === undefined
        ? undefined
        : clock.setTimer(Math.max(1, next - now + 1), () => {
            const at = clock.now();
            markIps(reports.expired(lastExpiryCheck, at));
            for (const [n, until] of unknown) {
              if (until > at) continue;
              unknown.delete(n);
              markAll();
            }
            lastExpiryCheck = at;
            scheduleExpiry();
            drain();
          });
  }

  // ---- writes ----

  function drain(): void {
    // Not while reports are being applied: a Service looked at with half of them would be written twice (or lose
    // its name for a moment); applyLeases drains when it is done.
    if (!acting || draining || applying) return;
    draining = true;
    const myEpoch = epoch;
    void (async () => {
      let start = performance.now();
      try {
        for (const key of dirty) {
          if (!acting || epoch !== myEpoch) return;
          if (inFlight >= limit) return;
          dirty.delete(key);
          const svc = o.services.get(key);
          if (svc === undefined) {
            written.delete(key);
            continue;
          }
          const now = clock.now();
          const want = desired(svc, now);
          const have = svc.annotations[ANNOUNCING_ANNOTATION];
          const ours = written.get(key);
          const seen = ours !== undefined && ours.basedOn === svc.resourceVersion ? ours.value : have;
          if (ours !== undefined && ours.basedOn !== svc.resourceVersion) written.delete(key);
          // Nothing to say about a Service that is not ours and carries no annotation, or one already right.
          if (seen === want || (want === undefined && !o.handlesClass(svc.loadBalancerClass))) continue;
          inFlight++;
          void write(svc, want, myEpoch);
          if (performance.now() - start >= SLICE_MS) {
            await nextTurn();
            start = performance.now();
          }
        }
      } finally {
        draining = false;
      }
    })();
  }

  async function write(svc: SlimService, want: string | undefined, myEpoch: number): Promise<void> {
    try {
      const out = await o.writer.writeAnnouncing(svc, want);
      if (myEpoch !== epoch) return;
      writes++;
      if (out.kind === "written") written.set(svc.key, { value: want, basedOn: svc.resourceVersion });
      else if (out.kind === "retry" || out.kind === "failed") {
        log.info({ service: svc.key, reason: out.reason }, "announcing-node annotation not written; retried");
        clock.setTimer(out.kind === "retry" ? (out.afterMs ?? RETRY_MS) : RETRY_MS, () => {
          dirty.add(svc.key);
          drain();
        });
      }
    } catch (err: unknown) {
      log.warn({ err, service: svc.key }, "announcing-node annotation write crashed");
    } finally {
      if (myEpoch === epoch) {
        inFlight--;
        drain();
      }
    }
  }

  // ---- wiring ----

  o.services.subscribe({
    upsert: (s, old) => {
      const ipsChanged =
        old === undefined ||
        old.type !== s.type ||
        old.loadBalancerClass !== s.loadBalancerClass ||
        old.ingress.join() !== s.ingress.join() ||
        old.externalIPs.join() !== s.externalIPs.join();
      if (ipsChanged) index(s.key, s);
      // Our own write coming back is looked at once more: the object speaks from then on.
      if (
        ipsChanged ||
        old.annotations[ANNOUNCING_ANNOTATION] !== s.annotations[ANNOUNCING_ANNOTATION] ||
        written.has(s.key)
      )
        dirty.add(s.key);
      drain();
    },
    delete: (s) => {
      index(s.key, undefined);
      dirty.delete(s.key);
      written.delete(s.key);
    },
  });
  o.leases.subscribe({
    upsert: (l) => leaseChanged(l, l.node),
    delete: (l) => leaseChanged(undefined, l.node),
  });

  return {
    start() {
      if (acting) return;
      acting = true;
      epoch++;
      inFlight = 0;
      written.clear();
      for (const s of o.services.values()) dirty.add(s.key);
      log.info({ services: dirty.size }, "writing announcing-node annotations from the speakers' reports");
      drain();
    },
    stop() {
      if (!acting) return;
      acting = false;
      epoch++;
    },
    pending: () => dirty.size + inFlight + leaseQueue.length,
    writes: () => writes,
  };
}
