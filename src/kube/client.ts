import { delimiter } from "node:path";
import { STATUS_CODES, type IncomingHttpHeaders } from "node:http";
import { getGlobalDispatcher, request, type Dispatcher } from "undici";
import { accessSource, lightKubeConfig, type ApiSource } from "./kubeconfig.ts";

export type { ApiSource } from "./kubeconfig.ts";

export type Verb = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
export type QueryParams = Readonly<Record<string, string | number | boolean | undefined>>;

export interface KubeRequest {
  readonly method: Verb;
  /** Absolute API path, e.g. `/api/v1/namespaces/default/services/web/status`. */
  readonly path: string;
  readonly query?: QueryParams;
  readonly body?: unknown;
  /** Defaults to JSON; PATCH defaults to merge patch. */
  readonly contentType?: string;
  readonly timeoutMs?: number;
  /**
   * The caller needs only the status code of a 2xx answer (a write whose returned object nobody reads): its body
   * is drained unparsed, `{}` in the response. Error answers are always read, for their message.
   */
  readonly discardSuccessBody?: boolean;
}

/**
 * An answer as data: `status` 0 means the request never got an HTTP answer (connection refused, timeout) and
 * `body` then holds `{message}`. Callers branch on the code instead of catching.
 */
export interface KubeResponse {
  readonly status: number;
  readonly body: unknown;
  /** From `Retry-After` on 429/5xx, in milliseconds. */
  readonly retryAfterMs?: number;
}

export type WatchLine = (type: string, object: unknown) => void;

/**
 * The one seam to the API server. `request` reuses one connection pool (client-node builds a fresh undici
 * Agent, hence a fresh TLS handshake, for every call; at 10k status writes that dominates). `watch` streams
 * newline-delimited watch events as client-node's Watch does, without loading client-node. Tests substitute
 * fakes for both.
 */
export interface KubeClient {
  request(req: KubeRequest): Promise<KubeResponse>;
  watch(path: string, query: QueryParams, onLine: WatchLine, done: (err: unknown) => void): Promise<AbortController>;
  close(): Promise<void>;
}

/** Who is calling: kube-apiserver logs and audits the User-Agent, and records the field manager in managedFields. */
export interface ClientIdentity {
  /** The `User-Agent` header of every request and watch. */
  readonly userAgent: string;
  /** The `fieldManager` of every create, update and patch (at most 128 characters, as the API allows). */
  readonly fieldManager: string;
}

/** Pure: `lodestone/<version> (<component>; node <name>)`, as client-go's `<binary>/<version> (<os/arch>) …`. */
export const lodestoneUserAgent = (version: string, component: string, node: string): string =>
  `lodestone/${version} (${component}; node ${node})`;

const ANONYMOUS: ClientIdentity = { userAgent: "lodestone", fieldManager: "lodestone" };

/** A client whose connections and credentials also serve clients of other identities (one per component). */
export interface KubeConnection extends KubeClient {
  /** The same connection pool and credentials, with another User-Agent and field manager; close() closes all. */
  withIdentity(identity: ClientIdentity): KubeClient;
}

const WRITES: ReadonlySet<Verb> = new Set(["POST", "PUT", "PATCH"]);

/**
 * Loads `--kubeconfig PATH`, or the in-cluster ServiceAccount when no path is given. Tokens, client
 * certificates and CAs are read directly; exec plugins, auth providers and proxies go through client-node's
 * loader, imported only then. Rejects with the reason when there is no usable configuration.
 */
export async function loadKubeConfig(
  path?: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ApiSource> {
  const light = lightKubeConfig(path, env);
  if (light.kind === "ok") return accessSource(light.access);
  if (light.kind === "error") throw new Error(light.message);
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (path === undefined || path === "") {
    kc.loadFromCluster();
    return kc;
  }
  // KUBECONFIG style `a:b`: merged as kubectl does, the first file's current context winning.
  const [first = path, ...rest] = path.split(delimiter).filter((p) => p !== "");
  kc.loadFromFile(first);
  for (const file of rest) {
    const more = new KubeConfig();
    more.loadFromFile(file);
    kc.mergeConfig(more, true);
  }
  return kc;
}

const AUTH_TTL_MS = 30_000;
/** A watch without `timeoutSeconds` silent this long is presumed dead and ends as a TimeoutError. */
const WATCH_IDLE_MS = 30_000;
/**
 * Once a watch has sent a BOOKMARK, silence this long (two and a half of the cacher's one-minute bookmark periods)
 * means the connection died without a reset: waiting for the server's own end of the watch would leave the cache
 * minutes behind. A server that sends no bookmarks (watch cache off) keeps the timeout-based limit.
 */
export const BOOKMARK_SILENCE_MS = 150_000;

/**
 * Pure: how long a watch may stay silent before it is presumed dead. A watch that asks for `timeoutSeconds` is
 * ended by the server after that time, and between its events kube-apiserver sends nothing but a BOOKMARK about
 * once a minute (and one 2 s before the end; staging/src/k8s.io/apiserver/pkg/storage/cacher, cacheWatcher
 * nextBookmarkTime) — a silence of a minute or more is normal, a silence past the server's own end is not. So the
 * limit is the timeout plus a quarter of it (at least 5 s) for a server that is slow to end it; a watch without
 * timeoutSeconds gets `idleMs`.
 */
export function watchIdleLimitMs(query: QueryParams, idleMs: number): number {
  const t = Number(query["timeoutSeconds"]);
  return Number.isFinite(t) && t > 0 ? t * 1000 + Math.max(5_000, t * 250) : idleMs;
}

const timeoutError = (): DOMException => new DOMException("The operation was aborted due to timeout", "TimeoutError");

/** `source` is client-node's KubeConfig (tests, the demo) or what `loadKubeConfig` returns. */
export function createKubeClient(
  source: ApiSource,
  options: {
    readonly authTtlMs?: number;
    /**
     * How long a watch without `timeoutSeconds` may stay silent before it ends with a TimeoutError (default 30 s);
     * one with timeoutSeconds may stay silent until shortly after the server should have ended it
     * (`watchIdleLimitMs`).
     */
    readonly watchIdleMs?: number;
    /** The silence limit of a watch once it has sent a BOOKMARK (default BOOKMARK_SILENCE_MS), if shorter. */
    readonly bookmarkSilenceMs?: number;
    /** User-Agent and field manager (default `lodestone` for both); `withIdentity` makes more. */
    readonly identity?: ClientIdentity;
  } = {},
): KubeConnection {
  const authTtlMs = options.authTtlMs ?? AUTH_TTL_MS;
  const watchIdleMs = options.watchIdleMs ?? WATCH_IDLE_MS;
  const cluster = source.getCurrentCluster();
  if (cluster === null) throw new Error("kubeconfig has no current cluster");
  const server = cluster.server.replace(/\/+$/, "");
  let auth: Auth | undefined;
  let dispatcher: Dispatcher | undefined;
  const dispatchers: Dispatcher[] = [];

  // Bearer tokens rotate (projected ServiceAccount tokens): re-read them now and then, keep the connections.
  async function refreshAuth(now: number): Promise<Auth> {
    const h: Record<string, string> = {};
    let d: Dispatcher | undefined;
    await source.applySecurityAuthentication({
      setHeaderParam: (name, value) => (h[name] = value),
      setDispatcher: (x) => (d = x),
    });
    if (dispatcher === undefined && d !== undefined) {
      dispatcher = d;
      dispatchers.push(d);
    }
    auth = { headers: h, at: now, byType: new Map() };
    return auth;
  }
  /** Sync while the cached credentials are fresh: no promise and no microtask per request. */
  const currentAuth = (): Auth | Promise<Auth> => {
    const now = performance.now();
    return auth !== undefined && now - auth.at < authTtlMs ? auth : refreshAuth(now);
  };
  /**
   * The request headers for a body of `type` ("" for none), built once per content type and credential refresh;
   * sync while the credentials are fresh (no microtask per request).
   */
  const headersFor = (type: string, userAgent: string): RequestHeaders | Promise<RequestHeaders> => {
    const a = currentAuth();
    return a instanceof Promise
      ? a.then((fresh) => typedHeaders(fresh, type, userAgent))
      : typedHeaders(a, type, userAgent);
  };

  const parsed = URL.canParse(server) ? new URL(server) : undefined;
  const prefix = parsed?.pathname.replace(/\/+$/, "") ?? "";
  /**
   * Origin and path, the query encoded as URLSearchParams does, without a URL object per request; a server that
   * is no URL fails each request ("Invalid URL", as `new URL()` says).
   */
  const target = (
    path: string,
    query: QueryParams | undefined,
    fieldManager?: string,
  ): { origin: string; path: string } => {
    if (parsed === undefined) throw new TypeError("Invalid URL");
    let search: URLSearchParams | undefined;
    if (query !== undefined) {
      for (const k in query) {
        const v = query[k];
        if (v !== undefined) (search ??= new URLSearchParams()).set(k, String(v));
      }
    }
    if (fieldManager !== undefined && search?.has("fieldManager") !== true)
      (search ??= new URLSearchParams()).set("fieldManager", fieldManager);
    return {
      origin: parsed.origin,
      path: search === undefined ? prefix + path : `${prefix}${path}?${search.toString()}`,
    };
  };

  const connection = (identity: ClientIdentity): KubeConnection => ({
    async request(req) {
      try {
        const hp = headersFor(
          req.body === undefined
            ? ""
            : (req.contentType ?? (req.method === "PATCH" ? "application/merge-patch+json" : "application/json")),
          identity.userAgent,
        );
        const h = hp instanceof Promise ? await hp : hp;
        const timeout = req.timeoutMs ?? 30_000;
        // The dispatcher's own handler interface, not request(): no Readable stream, async resource or promise
        // chain per call (docs/performance.md, "Engine notes"); undici's own timeouts, not a timer per call.
        return await new Promise<KubeResponse>((resolve) => {
          (dispatcher ?? getGlobalDispatcher()).dispatch(
            {
              ...target(req.path, req.query, WRITES.has(req.method) ? identity.fieldManager : undefined),
              method: req.method,
              headers: h,
              body: req.body === undefined ? null : JSON.stringify(req.body),
              headersTimeout: timeout,
              bodyTimeout: timeout,
            },
            new Answer(req.discardSuccessBody === true, resolve),
          );
        });
      } catch (err: unknown) {
        return { status: 0, body: { message: err instanceof Error ? err.message : String(err) } };
      }
    },

    /**
     * `done` is called exactly once: null when the server ends the watch, the error otherwise (an Error with
     * `statusCode` for a non-200 answer, a TimeoutError after a silence past `watchIdleLimitMs`, an AbortError when the
     * returned controller aborts it). Lines that are not JSON are skipped.
     */
    async watch(path, query, onLine, done) {
      const controller = new AbortController();
      let idleLimitMs = watchIdleLimitMs(query, watchIdleMs);
      const bookmarkLimitMs = Math.min(idleLimitMs, options.bookmarkSilenceMs ?? BOOKMARK_SILENCE_MS);
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      let finished = false;
      const finish = (err: unknown): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        controller.abort();
        done(err !== null && err !== undefined && timedOut ? timeoutError() : err);
      };
      // Re-armed on every chunk (one per event in a backlog): refresh() moves the one timer instead of making a
      // new one each time. A timer cleared by finish() stays cleared.
      const resetTimer = (): void => {
        if (timer !== undefined) {
          timer.refresh();
          return;
        }
        timer = setTimeout(() => {
          timedOut = true;
          controller.abort(timeoutError());
        }, idleLimitMs);
        timer.unref();
      };
      try {
        resetTimer();
        const t = target(path, { ...query, watch: true });
        const res = await request(t.origin + t.path, {
          method: "GET",
          headers: await headersFor("", identity.userAgent),
          ...(dispatcher === undefined ? {} : { dispatcher }),
          signal: controller.signal,
          // Silence is judged by the idle limit; the server ends the watch after its timeoutSeconds.
          bodyTimeout: 0,
        });
        if (res.statusCode !== 200) {
          await res.body.text().catch(() => "");
          const error = new Error(STATUS_CODES[res.statusCode] ?? `HTTP ${res.statusCode}`) as Error & {
            statusCode: number;
          };
          error.statusCode = res.statusCode;
          throw error;
        }
        resetTimer();
        let buffered = "";
        const line = (text: string): void => {
          if (text.trim() === "") return;
          try {
            const ev = JSON.parse(text) as { type?: unknown; object?: unknown };
            if (ev.type === "BOOKMARK" && idleLimitMs > bookmarkLimitMs) {
              // The server sends bookmarks: from now on a silence of a few bookmark periods is a dead connection.
              idleLimitMs = bookmarkLimitMs;
              clearTimeout(timer);
              timer = undefined;
              if (!finished) resetTimer();
            }
            onLine(String(ev.type), ev.object);
          } catch {
            // As client-node: a line that is not JSON (or a callback that throws) does not end the watch.
          }
        };
        res.body.setEncoding("utf8");
        res.body.on("data", (chunk: string) => {
          resetTimer();
          buffered += chunk;
          let i: number;
          while ((i = buffered.indexOf("\n")) >= 0) {
            const text = buffered.slice(0, i);
            buffered = buffered.slice(i + 1);
            if (!finished) line(text);
          }
        });
        res.body.on("end", () => {
          if (!finished) line(buffered);
          finish(null);
        });
        res.body.on("error", finish);
        res.body.on("close", () => finish(null));
      } catch (err: unknown) {
        finish(err);
      }
      return controller;
    },

    async close() {
      await Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
    },

    withIdentity: (next) => connection(next),
  });
  return connection(options.identity ?? ANONYMOUS);
}

type RequestHeaders = Readonly<Record<string, string>>;

function typedHeaders(auth: Auth, type: string, userAgent: string): RequestHeaders {
  const key = `${userAgent}\u0000${type}`;
  let h = auth.byType.get(key);
  if (h === undefined) {
    const base = { ...auth.headers, accept: "application/json", "user-agent": userAgent };
    h = Object.freeze(type === "" ? base : { ...base, "content-type": type });
    auth.byType.set(key, h);
  }
  return h;
}

interface Auth {
  readonly headers: Record<string, string>;
  readonly at: number;
  /** The request headers per User-Agent and content type ("" for none), built once per credential refresh. */
  readonly byType: Map<string, RequestHeaders>;
}

/**
 * Collects one answer for `request`: the body as JSON (text when it is not JSON), skipped unread for a 2xx when
 * the caller discards it; a transport error is status 0 with its message.
 */
class Answer implements Dispatcher.DispatchHandler {
  #status = 0;
  #chunks: Buffer[] | undefined;
  #retryAfter: string | null = null;
  readonly #discard: boolean;
  readonly #resolve: (r: KubeResponse) => void;

  constructor(discard: boolean, resolve: (r: KubeResponse) => void) {
    this.#discard = discard;
    this.#resolve = resolve;
  }

  /**
   * Node's bundled undici 7 (whose Agent is the global dispatcher over plain HTTP: loading `node:http` installs
   * it) takes a handler for this interface only when it has this method; without it, it expects the older one.
   */
  onRequestStart(): void {
    // Nothing to set up: the answer starts with its status line.
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // 1xx answers are informational; the final answer follows.
    if (statusCode < 200) return;
    this.#status = statusCode;
    if (!(this.#discard && statusCode < 300)) this.#chunks = [];
    const retryAfter = headers["retry-after"];
    this.#retryAfter = Array.isArray(retryAfter) ? (retryAfter[0] ?? null) : (retryAfter ?? null);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#chunks?.push(chunk);
  }

  onResponseEnd(): void {
    const status = this.#status;
    if (this.#chunks === undefined) {
      this.#resolve({ status, body: {} });
      return;
    }
    const buffer = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    // As undici's body.text(): UTF-8, a byte order mark skipped.
    const bom = buffer.length >= 3 && buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf;
    const text = buffer.toString("utf8", bom ? 3 : 0);
    let body: unknown = text;
    try {
      body = text === "" ? {} : JSON.parse(text);
    } catch {
      // Non-JSON answers (proxies, 502 pages) stay text; the status code still says what happened.
    }
    const retryAfterMs = parseRetryAfter(this.#retryAfter);
    this.#resolve(retryAfterMs === undefined ? { status, body } : { status, body, retryAfterMs });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.#resolve({ status: 0, body: { message: err.message } });
  }
}

export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The message of a `kind: Status` body or of a transport failure, for logs and Events. */
export function responseMessage(res: KubeResponse): string {
  const b = res.body;
  if (typeof b === "object" && b !== null && "message" in b && typeof b.message === "string") return b.message;
  return typeof b === "string" && b !== "" ? b.slice(0, 200) : `HTTP ${res.status}`;
}

/** Transient failures worth retrying: no answer, throttled, or a server-side error. */
export const isRetryable = (status: number): boolean => status === 0 || status === 429 || status >= 500;
