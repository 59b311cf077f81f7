import { HttpMethod, KubeConfig, RequestContext, Watch } from "@kubernetes/client-node";
import { fetch, type Dispatcher } from "undici";

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
 * Agent, hence a fresh TLS handshake, for every call; at 10k status writes that dominates). `watch` is
 * client-node's Watch. Tests substitute fakes for both.
 */
export interface KubeClient {
  request(req: KubeRequest): Promise<KubeResponse>;
  watch(path: string, query: QueryParams, onLine: WatchLine, done: (err: unknown) => void): Promise<AbortController>;
  close(): Promise<void>;
}

/** Loads `--kubeconfig PATH`, or the in-cluster ServiceAccount when no path is given. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path === undefined || path === "") kc.loadFromCluster();
  else kc.loadFromFile(path);
  return kc;
}

const AUTH_TTL_MS = 30_000;

export function createKubeClient(kc: KubeConfig): KubeClient {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error("kubeconfig has no current cluster");
  const server = cluster.server.replace(/\/+$/, "");
  const watcher = new Watch(kc);
  let auth: { headers: Record<string, string>; at: number } | undefined;
  let dispatcher: Dispatcher | undefined;
  const dispatchers: Dispatcher[] = [];

  // Bearer tokens rotate (projected ServiceAccount tokens): re-read them now and then, keep the connections.
  async function headers(): Promise<Record<string, string>> {
    const now = performance.now();
    if (auth !== undefined && now - auth.at < AUTH_TTL_MS) return auth.headers;
    const ctx = new RequestContext(server, HttpMethod.GET);
    await kc.applySecurityAuthentication(ctx);
    if (dispatcher === undefined) {
      dispatcher = ctx.getDispatcher() as Dispatcher | undefined;
      if (dispatcher !== undefined) dispatchers.push(dispatcher);
    }
    auth = { headers: { ...ctx.getHeaders() }, at: now };
    return auth.headers;
  }

  return {
    async request(req) {
      const url = new URL(server + req.path);
      for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
      try {
        const h: Record<string, string> = { ...(await headers()), accept: "application/json" };
        if (req.body !== undefined) {
          h["content-type"] =
            req.contentType ?? (req.method === "PATCH" ? "application/merge-patch+json" : "application/json");
        }
        const res = await fetch(url, {
          method: req.method,
          headers: h,
          ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }),
          ...(dispatcher === undefined ? {} : { dispatcher }),
          signal: AbortSignal.timeout(req.timeoutMs ?? 30_000),
        });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = text === "" ? {} : JSON.parse(text);
        } catch {
          // Non-JSON answers (proxies, 502 pages) stay text; the status code still says what happened.
        }
        const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        return retryAfterMs === undefined ? { status: res.status, body } : { status: res.status, body, retryAfterMs };
      } catch (err: unknown) {
        return { status: 0, body: { message: err instanceof Error ? err.message : String(err) } };
      }
    },
    watch: (path, query, onLine, done) => watcher.watch(path, query, (type, obj) => onLine(type, obj), done),
    async close() {
      await Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
    },
  };
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
