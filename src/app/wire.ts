import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { err, ok, type Result } from "../core/errors.ts";
import type { Heartbeat, HeartbeatKey } from "../core/heartbeat-codec.ts";
import { ipKey, type IpAddress } from "../core/ip.ts";
import { emptyLag, type LagHistogram } from "../core/loop-lag.ts";
import type { ForeignAnnouncement } from "../core/responder.ts";
import type { Claim } from "../net/announcer.ts";
import type { HeartbeatPeer, HeartbeatTransport } from "../net/heartbeat.ts";
import type { FromWire, ToWire, WireStart, WireTelemetry } from "./wire-protocol.ts";

/**
 * How long the main thread may stay silent before the wire thread withdraws. A hung main thread renews no Lease;
 * peers leave a node out once its Lease is 10 s old although its heartbeats go on, so the wire thread must have
 * withdrawn by then: the last renewal came at most one 2 s interval before the main thread fell silent, and 5 s
 * more stays inside the 6 s fence. Shorter would withdraw a node that is merely starved of CPU for a few seconds.
 */
export const DEFAULT_MAIN_SILENT_MS = 5_000;

export interface WireOptions {
  /** The node's own address: heartbeats leave from and arrive at it. */
  readonly address: IpAddress;
  /** 0 = ephemeral (tests). */
  readonly port: number;
  readonly heartbeatIntervalMs: number;
  readonly mainSilentMs?: number;
  readonly logger: Logger;
  readonly keys: readonly HeartbeatKey[];
  /** A verified heartbeat; `receivedAt` is when the wire thread read it, on this thread's performance.now(). */
  readonly onHeartbeat: (hb: Heartbeat, receivedAt: number) => void;
}

/** The announcer as the speaker drives it, living on the wire thread. */
export interface WireAnnouncer {
  /** Resolves with the claims answered on no interface, once the wire thread has applied the claims. */
  reconcile(claims: readonly Claim[]): Promise<{ readonly unannounced: readonly WireUnannounced[] }>;
  /** The layer-2 counters as of the last answer of the wire thread (asks it for fresh ones each call). */
  telemetry(): Pick<WireTelemetry, "layer2" | "layer2Drops">;
  onForeignAnnouncement(listener: (seen: ForeignAnnouncement & { readonly interface: string }) => void): () => void;
  announceNow(ip: IpAddress, options?: { readonly once?: boolean }): void;
  close(): Promise<void>;
}

export interface WireUnannounced {
  readonly key: string;
  readonly ip: IpAddress;
  readonly error: { readonly message: string };
}

export interface Wire {
  readonly transport: HeartbeatTransport;
  readonly announcer: WireAnnouncer;
  /** The wire thread withdrew every IP because this thread was silent: plan from scratch. */
  onWithdrawn(listener: (silentMs: number) => void): void;
  /** The wire thread's own event-loop lag (last known). */
  loopLag(): LagHistogram;
  /** Why the wire thread ended, when it ended without being closed. */
  crashed(): string | undefined;
  close(): Promise<void>;
}

const workerUrl = new URL(import.meta.url.endsWith(".ts") ? "./wire-worker.ts" : "./wire-worker.js", import.meta.url);
const LEVELS: Readonly<Record<number, "trace" | "debug" | "info" | "warn" | "error" | "fatal">> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};

/** Starts the wire thread; resolves once its heartbeat socket is bound and its announcer has packet access. */
export async function startWire(o: WireOptions): Promise<Result<Wire, { readonly message: string }>> {
  const data: WireStart = {
    address: o.address,
    port: o.port,
    heartbeatIntervalMs: o.heartbeatIntervalMs,
    mainSilentMs: o.mainSilentMs ?? DEFAULT_MAIN_SILENT_MS,
    logLevel: o.logger.level,
  };
  const worker = new Worker(workerUrl, { workerData: data });
  const send = (m: ToWire): void => worker.postMessage(m);
  const log = o.logger.child({ thread: "wire" });
  let telemetry: WireTelemetry = { layer2: [], layer2Drops: [], loopLag: emptyLag(), heartbeatsRejected: {} };
  let telemetryAsked = false;
  let nextId = 0;
  const waiting = new Map<number, (u: readonly WireUnannounced[]) => void>();
  const foreignListeners = new Set<(seen: ForeignAnnouncement & { readonly interface: string }) => void>();
  const withdrawnListeners: ((silentMs: number) => void)[] = [];
  /** What the wire thread holds, by IP key: the same objects the speaker passed (unchanged claims keep theirs). */
  let sent = new Map<string, Claim>();
  let closing: Promise<void> | undefined;
  let ended: string | undefined;
  let ready: (r: Result<number, { message: string }>) => void = () => undefined;
  const started = new Promise<Result<number, { message: string }>>((resolve) => (ready = resolve));

  worker.on("message", (m: FromWire) => {
    switch (m.type) {
      case "ready":
        return ready(ok(m.port));
      case "failed":
        return ready(err({ message: m.message }));
      case "log": {
        const rec = JSON.parse(m.line) as Record<string, unknown>;
        const { level, msg, time: _t, pid: _p, hostname: _h, ...rest } = rec;
        log[LEVELS[Number(level)] ?? "info"](rest, typeof msg === "string" ? msg : "");
        return;
      }
      case "heartbeat":
        return o.onHeartbeat(m.hb, m.at - performance.timeOrigin);
      case "reconciled": {
        const resolve = waiting.get(m.id);
        waiting.delete(m.id);
        resolve?.(m.unannounced.map((u) => ({ key: u.key, ip: u.ip, error: { message: u.message } })));
        return;
      }
      case "foreign":
        for (const seen of m.seen) for (const l of foreignListeners) l(seen);
        return;
      case "telemetry":
        telemetry = m.telemetry;
        telemetryAsked = false;
        return;
      case "withdrawn":
        log.error(
          { silentMs: m.silentMs },
          "the main thread was silent: the wire thread withdrew every IP and paused the heartbeats",
        );
        // This thread is running again (it is handling this message): the wire thread may beat again, with
        // nothing claimed until the speaker has planned from scratch.
        sent = new Map();
        send({ type: "reconcile", id: nextId++, upserts: [], removes: [], reset: true });
        for (const l of withdrawnListeners) l(m.silentMs);
        return;
      case "closed":
        return;
    }
  });
  worker.on("error", (e) => {
    ended = e.message;
    log.error({ err: e.message }, "wire thread failed");
    ready(err({ message: `wire thread: ${e.message}` }));
  });
  worker.on("exit", (code) => {
    if (closing === undefined && ended === undefined) ended = `wire thread exited (code ${code})`;
    for (const resolve of waiting.values()) resolve([]);
    waiting.clear();
    ready(err({ message: ended ?? "wire thread exited" }));
  });
  send({ type: "keys", keys: o.keys });

  const r = await started;
  if (!r.ok) {
    await worker.terminate();
    return r;
  }
  const port = r.value;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      worker.once("exit", () => resolve());
      send({ type: "close" });
      // A wire thread that does not end by itself within a second is ended.
      setTimeout(() => void worker.terminate(), 1_000).unref();
    }));

  const announcer: WireAnnouncer = {
    reconcile(claims) {
      if (ended !== undefined || closing !== undefined) return Promise.resolve({ unannounced: [] });
      const next = new Map<string, Claim>();
      const upserts: Claim[] = [];
      for (const c of claims) {
        const k = ipKey(c.ip);
        next.set(k, c);
        if (sent.get(k) !== c) upserts.push(c);
      }
      const removes: string[] = [];
      for (const k of sent.keys()) if (!next.has(k)) removes.push(k);
      sent = next;
      const id = nextId++;
      send({ type: "reconcile", id, upserts, removes, reset: false });
      return new Promise((resolve) => waiting.set(id, (unannounced) => resolve({ unannounced })));
    },
    telemetry() {
      if (!telemetryAsked && ended === undefined && closing === undefined) {
        telemetryAsked = true;
        send({ type: "telemetry" });
      }
      return { layer2: telemetry.layer2, layer2Drops: telemetry.layer2Drops };
    },
    onForeignAnnouncement(listener) {
      foreignListeners.add(listener);
      return () => foreignListeners.delete(listener);
    },
    announceNow(ip, options = {}) {
      if (ended === undefined && closing === undefined) send({ type: "announce", ip, once: options.once === true });
    },
    close,
  };
  const transport: HeartbeatTransport = {
    port,
    send(hb: Heartbeat, peers: readonly HeartbeatPeer[]) {
      if (ended === undefined && closing === undefined) send({ type: "beat", hb, peers });
    },
    rejected: () => ({
      malformed: 0,
      "unknown-key": 0,
      "bad-mac": 0,
      "send-error": 0,
      ...telemetry.heartbeatsRejected,
    }),
    close,
  };
  return ok({
    transport,
    announcer,
    onWithdrawn: (l) => void withdrawnListeners.push(l),
    loopLag: () => telemetry.loopLag,
    crashed: () => ended,
    close,
  });
}
