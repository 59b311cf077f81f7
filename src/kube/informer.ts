import type { Logger } from "pino";
import { createPauses, type SetTimer } from "../core/pause.ts";
import { responseMessage, type KubeClient } from "./client.ts";
import { systemClock } from "./lease.ts";

/** What an informer keeps of an object: a key (`ns/name` or `name`) and the version it was seen at. */
export interface Slim {
  readonly key: string;
  readonly resourceVersion: string;
}

export interface InformerHandlers<T extends Slim> {
  /** Added or changed; `old` is the previous slim copy when there was one. */
  upsert?(obj: T, old: T | undefined): void;
  delete?(obj: T): void;
  /** After each complete list (the first one, and every relist after a 410 or an error). */
  synced?(): void;
}

export interface InformerOptions<T extends Slim> {
  readonly client: KubeClient;
  /** Name in logs and metrics: "services", "configmaps", … */
  readonly resource: string;
  /** Collection path, e.g. `/api/v1/services` or `/api/v1/namespaces/lodestone/configmaps`. */
  readonly path: string;
  readonly labelSelector?: string;
  /** Keeps only the fields Lodestone needs; undefined drops the object (e.g. not a LoadBalancer). */
  readonly project: (raw: unknown) => T | undefined;
  readonly logger: Logger;
  readonly pageSize?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Jitter source in [0,1); injected so tests are deterministic. */
  readonly random?: () => number;
  /** The backoff's timer (default setTimeout). */
  readonly setTimer?: SetTimer;
  /**
   * Server-side watch timeout (default 240 s); each watch asks for 0.75–1.25 of it (180–300 s by default, so an
   * idle informer re-opens its watch at most once in three minutes) and is re-opened from the last version after.
   */
  readonly watchTimeoutSeconds?: number;
  /**
   * The resource may not be served (a CRD not installed): a list answered 404 is an empty, synced cache, not an
   * error, and is tried again every `absentRetryMs` (default 10 s) without a warning or a restart counted.
   */
  readonly optional?: boolean;
  readonly absentRetryMs?: number;
}

export interface Informer<T extends Slim> {
  /** Its name in logs and metrics (the option `resource`). */
  readonly resource: string;
  start(): void;
  stop(): Promise<void>;
  subscribe(h: InformerHandlers<T>): () => void;
  get(key: string): T | undefined;
  values(): IterableIterator<T>;
  readonly size: number;
  /** True once the first complete list has been delivered. */
  synced(): boolean;
  /** Resolves after the first complete list. */
  whenSynced(): Promise<void>;
  /** Restarts after errors since start (a relist after 410 is not an error). */
  restarts(): number;
  /** True once its loop has ended by a crash (a bug: API errors restart it): the cache is frozen for good. */
  crashed(): boolean;
  /**
   * Drops the watch and lists again (after the backoff, if one is running), so `project` sees every object anew;
   * resolves once a complete list begun after the call has been delivered (never, if stopped first).
   */
  relist(): Promise<void>;
}

type WatchEnd = { kind: "closed"; events: number } | { kind: "gone" } | { kind: "error"; message: string };

/** Pure: the delay before restart number `attempt` (0-based), exponential with full jitter in [d/2, d). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + (d / 2) * random());
}

/** Reads `metadata.{namespace,name,resourceVersion}` off a raw object; the key is `ns/name` or `name`. */
export function objectMeta(raw: unknown): { key: string; namespace: string; name: string; rv: string } | undefined {
  if (typeof raw !== "object" || raw === null || !("metadata" in raw)) return undefined;
  const m = raw.metadata;
  if (typeof m !== "object" || m === null) return undefined;
  const meta = m as Record<string, unknown>;
  const name = typeof meta.name === "string" ? meta.name : undefined;
  if (name === undefined) return undefined;
  const namespace = typeof meta.namespace === "string" ? meta.namespace : "";
  const rv = typeof meta.resourceVersion === "string" ? meta.resourceVersion : "";
  return { key: namespace === "" ? name : `${namespace}/${name}`, namespace, name, rv };
}

/**
 * The resourceVersion a watch event carries, name or not: a BOOKMARK object is only `kind`, `apiVersion` and
 * `metadata.resourceVersion` (kube-apiserver's cacher makes it from an empty object of the type), "" if none.
 */
export function eventVersion(raw: unknown): string {
  if (typeof raw !== "object" || raw === null || !("metadata" in raw)) return "";
  const m = raw.metadata;
  if (typeof m !== "object" || m === null || !("resourceVersion" in m)) return "";
  return typeof m.resourceVersion === "string" ? m.resourceVersion : "";
}

/**
 * A list+watch cache of slim objects that never gives up: any error (network, 5xx, 403, a watch `ERROR` event)
 * restarts it after an exponential backoff with jitter, logged and counted; a 410 Gone relists at once. The
 * client-node informer keeps full objects and stops for good after a non-410 error; this one keeps what
 * `project` returns and keeps going.
 */
export function createInformer<T extends Slim>(opts: InformerOptions<T>): Informer<T> {
  const log = opts.logger.child({ resource: opts.resource });
  const pageSize = opts.pageSize ?? 500;
  const initialMs = opts.backoff?.initialMs ?? 200;
  const maxMs = opts.backoff?.maxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  const timeoutSeconds = opts.watchTimeoutSeconds ?? 240;
  let cache = new Map<string, T>();
  const subscribers = new Set<InformerHandlers<T>>();
  let rv = "";
  let isSynced = false;
  let restarts = 0;
  let crashed = false;
  let stopped = true;
  let running: Promise<void> | undefined;
  let abort: AbortController | undefined;
  let pauses = createPauses(opts.setTimer ?? systemClock.setTimer);
  let resolveSynced: () => void = () => undefined;
  /** Callers of relist() whose list has not begun yet; one list serves all of them. */
  let relistWaiters: (() => void)[] = [];
  const syncedPromise = new Promise<void>((r) => (resolveSynced = r));

  const emit = <K extends keyof InformerHandlers<T>>(
    kind: K,
    ...args: Parameters<NonNullable<InformerHandlers<T>[K]>>
  ): void => {
    for (const s of subscribers) {
      const fn = s[kind] as ((...a: typeof args) => void) | undefined;
      try {
        fn?.(...args);
      } catch (err: unknown) {
        // A subscriber bug must not kill the watch; it is a bug, so say so loudly.
        log.error({ err }, "informer subscriber threw");
      }
    }
  };

  function apply(type: string, raw: unknown): void {
    const meta = objectMeta(raw);
    if (meta === undefined) return;
    if (meta.rv !== "") rv = meta.rv;
    const old = cache.get(meta.key);
    if (type === "DELETED") {
      if (old !== undefined) {
        cache.delete(meta.key);
        emit("delete", old);
      }
      return;
    }
    const slim = opts.project(raw);
    if (slim === undefined) {
      // Projected away (e.g. no longer matching): to subscribers that is a delete.
      if (old !== undefined) {
        cache.delete(meta.key);
        emit("delete", old);
      }
      return;
    }
    cache.set(slim.key, slim);
    emit("upsert", slim, old);
  }

  async function list(): Promise<{ ok: true } | { ok: false; gone: boolean; absent: boolean; message: string }> {
    const served = relistWaiters;
    relistWaiters = [];
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let listRv = "";
    do {
      const res = await opts.client.request({
        method: "GET",
        path: opts.path,
        query: { limit: pageSize, continue: cont, labelSelector: opts.labelSelector },
      });
      if (res.status !== 200) {
        relistWaiters = [...served, ...relistWaiters];
        return { ok: false, gone: res.status === 410, absent: res.status === 404, message: responseMessage(res) };
      }
      const body = res.body as { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] };
      for (const item of body.items ?? []) {
        const slim = opts.project(item);
        if (slim !== undefined) fresh.set(slim.key, slim);
      }
      listRv = body.metadata?.resourceVersion ?? listRv;
      cont = body.metadata?.continue === "" ? undefined : body.metadata?.continue;
      if (stopped) return { ok: true };
    } while (cont !== undefined);
    replace(fresh, listRv);
    for (const w of served) w();
    return { ok: true };
  }

  /** The cache becomes `fresh` (a complete list), told to subscribers as the differences, then synced. */
  function replace(fresh: Map<string, T>, listRv: string): void {
    const old = cache;
    cache = fresh;
    rv = listRv;
    for (const [key, prev] of old) if (!fresh.has(key)) emit("delete", prev);
    for (const [key, obj] of fresh) {
      const prev = old.get(key);
      if (prev === undefined || prev.resourceVersion !== obj.resourceVersion) emit("upsert", obj, prev);
    }
    if (!isSynced) {
      isSynced = true;
      resolveSynced();
    }
    emit("synced");
  }

  function watchOnce(): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let events = 0;
      let end: WatchEnd | undefined;
      const finish = (e: WatchEnd): void => {
        end ??= e;
      };
      const query = {
        resourceVersion: rv,
        allowWatchBookmarks: true,
        timeoutSeconds: Math.round(timeoutSeconds * (0.75 + 0.5 * random())),
        labelSelector: opts.labelSelector,
      };
      let ctl: AbortController | undefined;
      opts.client
        .watch(
          opts.path,
          query,
          (type, obj) => {
            if (end !== undefined) return;
            if (type === "ERROR") {
              const code = (obj as { code?: number } | null)?.code;
              finish(code === 410 ? { kind: "gone" } : { kind: "error", message: watchErrorMessage(obj) });
              ctl?.abort();
              return;
            }
            events++;
            if (type === "BOOKMARK") {
              // The watch cache's progress: resuming from it stays inside the server's window even when nothing
              // this watch selects has changed for a long time (a filtered watch's last object may be hours old).
              const v = eventVersion(obj);
              if (v !== "") rv = v;
              return;
            }
            apply(type, obj);
          },
          (err: unknown) => {
            abort = undefined;
            if (end === undefined) {
              // The client ends a watch silent for longer than the server would keep it open with a TimeoutError:
              // a connection that died quietly, not a failure of the API.
              if (err === null || err === undefined || (err as { name?: unknown }).name === "TimeoutError") {
                finish({ kind: "closed", events: events + 1 });
              } else {
                const status = (err as { statusCode?: number }).statusCode;
                finish(
                  status === 410
                    ? { kind: "gone" }
                    : { kind: "error", message: err instanceof Error ? err.message : String(err) },
                );
              }
            }
            resolve(end ?? { kind: "closed", events });
          },
        )
        .then(
          (c) => {
            ctl = c;
            abort = c;
            if (stopped || end !== undefined || relistWaiters.length > 0) c.abort();
          },
          (err: unknown) => {
            finish({ kind: "error", message: err instanceof Error ? err.message : String(err) });
            resolve(end ?? { kind: "closed", events });
          },
        );
    });
  }

  async function loop(): Promise<void> {
    let needList = true;
    let attempt = 0;
    let absent = false;
    while (!stopped) {
      let failure: string | undefined;
      if (needList) {
        const r = await list();
        if (stopped) break;
        if (r.ok) {
          needList = false;
          absent = false;
        } else if (r.gone) {
          log.info("list continuation expired (410); listing again");
          continue;
        } else if (r.absent && opts.optional === true) {
          // Not served: nothing of it exists. Said once, at info, not as a failure.
          if (!absent) log.info("not served by the API server (CRD not installed?); looking again periodically");
          absent = true;
          replace(new Map(), "");
          for (const w of relistWaiters.splice(0)) w();
          await pauses.pause(opts.absentRetryMs ?? 10_000);
          continue;
        } else failure = `list failed: ${r.message}`;
      }
      if (failure === undefined) {
        if (relistWaiters.length > 0) {
          needList = true;
          continue;
        }
        const started = performance.now();
        const end = await watchOnce();
        if (stopped) break;
        // Ended by relist(), not by the server: no error, no backoff.
        if (relistWaiters.length > 0) {
          needList = true;
          continue;
        }
        if (end.kind === "gone") {
          log.info({ resourceVersion: rv }, "watch history expired (410 Gone); relisting");
          needList = true;
          attempt = 0;
          continue;
        }
        if (end.kind === "closed" && (end.events > 0 || performance.now() - started > 1000)) {
          attempt = 0;
          continue;
        }
        failure = end.kind === "error" ? `watch failed: ${end.message}` : "watch closed at once";
      }
      restarts++;
      const delayMs = backoffDelay(attempt++, initialMs, maxMs, random);
      log.warn({ restarts, delayMs, reason: failure }, "informer restarting after error");
      await pauses.pause(delayMs);
    }
  }

  return {
    resource: opts.resource,
    start() {
      if (!stopped) return;
      stopped = false;
      pauses = createPauses(opts.setTimer ?? systemClock.setTimer);
      running = loop().catch((err: unknown) => {
        crashed = true;
        log.error({ err }, "informer loop crashed: its cache is frozen until the process restarts");
      });
    },
    async stop() {
      stopped = true;
      abort?.abort();
      pauses.stop();
      await running;
    },
    subscribe(h) {
      subscribers.add(h);
      return () => subscribers.delete(h);
    },
    get: (key) => cache.get(key),
    values: () => cache.values(),
    get size() {
      return cache.size;
    },
    synced: () => isSynced,
    whenSynced: () => syncedPromise,
    restarts: () => restarts,
    crashed: () => crashed,
    relist() {
      return new Promise<void>((resolve) => {
        relistWaiters.push(resolve);
        abort?.abort();
      });
    },
  };
}

function watchErrorMessage(obj: unknown): string {
  if (typeof obj === "object" && obj !== null) {
    const o = obj as { code?: unknown; message?: unknown };
    return `${String(o.code ?? "?")} ${String(o.message ?? "")}`.trim();
  }
  return String(obj);
}
