import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { cutUtf8, utf8Length } from "../core/utf8.ts";
import { responseMessage, type KubeClient } from "./client.ts";
import { microTime } from "./lease.ts";

/** The reasons Lodestone records; stable, so users can filter `kubectl get events --field-selector reason=…`. */
export type EventReason =
  | "IPAllocated"
  | "AllocationFailed"
  | "IPReleased"
  | "SharingConflict"
  | "DeprecatedAnnotation"
  | "ConfigInvalid"
  | "ConfigApplied"
  | "Announcing"
  | "NotAnnounced"
  | "BGPSessionEstablished"
  | "BGPPeerProblem";

export interface ObjectRef {
  readonly kind: "Service" | "ConfigMap" | "IPAddressPool" | "L2Advertisement";
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface EventRecorder {
  /** Queues an Event; never blocks and never fails the caller (Events are best effort, as in client-go). */
  record(obj: ObjectRef, type: "Normal" | "Warning", reason: EventReason, message: string): void;
  /** Resolves when every queued Event has been written or dropped. */
  flush(): Promise<void>;
  dropped(): number;
  /** Events queued and not yet being written. */
  waiting(): number;
  /**
   * False while writes are in flight and none has finished for a second (the API server hangs on Events): then
   * holding other work back for the Events' sake gains nothing.
   */
  progressing(): boolean;
  /** Sends what `holdWhile` held back; call it when the condition may have turned false. */
  resume(): void;
}

export interface EventRecorderOptions {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly component: string;
  /** Pod or node name, as `reportingInstance`. */
  readonly instance: string;
  /** Writes in flight at once; kept low so Events never crowd out status writes. */
  readonly concurrency?: number;
  /** Queue bound; beyond it Events are dropped and counted (client-go drops too). */
  readonly maxQueued?: number;
  /**
   * Waiting Events beyond which holdWhile is ignored and up to four times `concurrency` writes run, so a burst of
   * Services does not fill the queue to `maxQueued` and drop Events (default: the smaller of 1,000 and half of
   * `maxQueued`).
   */
  readonly backlog?: number;
  /**
   * While this returns true no new Event write starts (the controller: while more status writes are ready than
   * its workers take at once), so a burst of Services gets its addresses before their Events; `resume()` restarts
   * the queue. Once `backlog` Events wait, they go out regardless, and faster (see `backlog`).
   */
  readonly holdWhile?: () => boolean;
  readonly now?: () => Date;
  /** Monotonic milliseconds, for `progressing()` (default performance.now). */
  readonly clock?: () => number;
}

/** How long writes in flight may go without one finishing before the recorder reports no progress. */
const STALL_MS = 1_000;

interface Pending {
  readonly obj: ObjectRef;
  readonly type: "Normal" | "Warning";
  readonly reason: EventReason;
  readonly message: string;
  readonly at: Date;
}

interface Written {
  readonly name: string;
  count: number;
}

/**
 * kube-apiserver's limits for an Event with eventTime (pkg/apis/core/validation, legacyValidateEvent), in UTF-8
 * bytes as Go counts them: beyond them the whole Event is refused with 422.
 */
export const EVENT_LIMITS = { message: 1024, reportingInstance: 128, action: 128, reason: 128 } as const;

/** Pure: the message as the API takes it, cut at a character boundary with "…" when it is too long. */
export const eventMessage = (message: string): string =>
  utf8Length(message) <= EVENT_LIMITS.message ? message : `${cutUtf8(message, EVENT_LIMITS.message - 3)}…`;

/**
 * Pure: `reportingInstance` for a pod or node name of any valid length (a node name may have 253 characters, the
 * controller's identity adds `_pid`): kept when it fits 128 bytes, else its start and a hash of the whole, so two
 * long names that share a prefix still differ.
 */
export function reportingInstanceOf(name: string): string {
  if (utf8Length(name) <= EVENT_LIMITS.reportingInstance) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 10);
  return `${cutUtf8(name, EVENT_LIMITS.reportingInstance - hash.length - 1)}-${hash}`;
}

/**
 * Pure: the object's name as the start of an Event's name, short enough that the name with its 14-digit suffix
 * stays a DNS subdomain of at most 253 characters (a ConfigMap's own name may have 253), ending alphanumeric.
 */
export const eventNameBase = (name: string): string =>
  name.length <= 253 - 16 ? name : name.slice(0, 253 - 16).replace(/[^a-z0-9]+$/, "");

/** Pure: the aggregation key of the real recorder (same object, type, reason and message → one Event, count++). */
export const aggregationKey = (p: Pick<Pending, "obj" | "type" | "reason" | "message">): string =>
  `${p.obj.uid}\u0000${p.obj.kind}/${p.obj.namespace}/${p.obj.name}\u0000${p.type}\u0000${p.reason}\u0000${p.message}`;

/**
 * core/v1 Events on the object they are about (`involvedObject` with its uid), so `kubectl describe` lists them.
 * A repeat of the same Event patches `count` and `lastTimestamp` instead of creating a new object.
 */
export function createEventRecorder(o: EventRecorderOptions): EventRecorder {
  const now = o.now ?? (() => new Date());
  const clock = o.clock ?? (() => performance.now());
  /** When a write last finished, or started with none in flight. */
  let progressAt = 0;
  const concurrency = o.concurrency ?? 2;
  const maxQueued = o.maxQueued ?? 5000;
  const backlog = o.backlog ?? Math.min(1000, Math.floor(maxQueued / 2));
  const queue: Pending[] = [];
  const written = new Map<string, Written>();
  let inFlight = 0;
  let dropped = 0;
  let idle: (() => void)[] = [];
  let seq = 0;
  const instance = reportingInstanceOf(o.instance);

  const eventsPath = (ns: string): string => `/api/v1/namespaces/${encodeURIComponent(ns)}/events`;

  async function send(p: Pending): Promise<void> {
    const key = aggregationKey(p);
    const ts = p.at.toISOString().replace(/\.\d+Z$/, "Z");
    const prev = written.get(key);
    if (prev !== undefined) {
      const res = await o.client.request({
        method: "PATCH",
        path: `${eventsPath(p.obj.namespace)}/${prev.name}`,
        body: { count: prev.count + 1, lastTimestamp: ts },
        discardSuccessBody: true,
      });
      if (res.status === 200) {
        prev.count++;
        return;
      }
      written.delete(key);
      if (res.status !== 404) {
        o.logger.warn(
          {
            status: res.status,
            reason: responseMessage(res),
            event: p.reason,
            object: `${p.obj.namespace}/${p.obj.name}`,
          },
          "Event update refused: its count stays behind",
        );
        return;
      }
    }
    const name = `${eventNameBase(p.obj.name)}.${(p.at.getTime() * 1000 + (seq++ % 1000)).toString(16)}`;
    const res = await o.client.request({
      method: "POST",
      path: eventsPath(p.obj.namespace),
      body: {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace: p.obj.namespace },
        involvedObject: {
          apiVersion: p.obj.kind === "IPAddressPool" || p.obj.kind === "L2Advertisement" ? "metallb.io/v1beta1" : "v1",
          kind: p.obj.kind,
          namespace: p.obj.namespace,
          name: p.obj.name,
          uid: p.obj.uid,
        },
        type: p.type,
        reason: p.reason,
        message: eventMessage(p.message),
        source: { component: o.component },
        reportingComponent: o.component,
        reportingInstance: instance,
        firstTimestamp: ts,
        lastTimestamp: ts,
        eventTime: microTime(p.at),
        action: p.reason,
        count: 1,
      },
      discardSuccessBody: true,
    });
    if (res.status === 201 || res.status === 200) {
      written.set(key, { name, count: 1 });
      // The aggregation memory is bounded like client-go's LRU (4096 entries).
      if (written.size > 4096) written.delete(written.keys().next().value ?? "");
    } else {
      // Past the limits above, a refusal is a bug of ours or an API server stricter than we know: say so, with
      // what was lost.
      o.logger.warn(
        {
          status: res.status,
          reason: responseMessage(res),
          event: p.reason,
          object: `${p.obj.kind}/${p.obj.namespace}/${p.obj.name}`,
          message: p.message,
        },
        "Event refused by the API server",
      );
    }
  }

  function pump(): void {
    // Holding never drops an Event: past the backlog mark they go out whatever holdWhile says, and faster.
    for (;;) {
      const behind = queue.length > backlog;
      if (inFlight >= (behind ? concurrency * 4 : concurrency) || (!behind && (o.holdWhile?.() ?? false))) break;
      const p = queue.shift();
      if (p === undefined) break;
      if (inFlight === 0) progressAt = clock();
      inFlight++;
      send(p)
        .catch((err: unknown) => o.logger.warn({ err, event: p.reason }, "Event write failed"))
        .finally(() => {
          progressAt = clock();
          inFlight--;
          pump();
        });
    }
    if (inFlight === 0 && queue.length === 0) {
      const waiters = idle;
      idle = [];
      for (const w of waiters) w();
    }
  }

  return {
    record(obj, type, reason, message) {
      if (queue.length >= maxQueued) {
        dropped++;
        return;
      }
      queue.push({ obj, type, reason, message, at: now() });
      pump();
    },
    flush() {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
    dropped: () => dropped,
    waiting: () => queue.length,
    progressing: () => inFlight === 0 || clock() - progressAt < STALL_MS,
    resume: pump,
  };
}
