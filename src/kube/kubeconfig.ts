import { readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { Agent, type Dispatcher } from "undici";
import { parse } from "yaml";

/**
 * What the client uses of a kubeconfig. client-node's KubeConfig has exactly this shape, and so has what
 * `lightKubeConfig` builds: the daemon loads client-node (whose generated API classes, which Lodestone never
 * calls, cost memory) only for kubeconfigs that need its exec plugins, auth providers or proxies.
 */
export interface ApiSource {
  getCurrentCluster(): { readonly server: string } | null;
  applySecurityAuthentication(ctx: AuthContext): Promise<void>;
}

/** The part of client-node's RequestContext that `applySecurityAuthentication` writes to. */
export interface AuthContext {
  setHeaderParam(name: string, value: string): void;
  setDispatcher(dispatcher: Dispatcher): void;
}

/** Where and how to reach the API server, as read from a kubeconfig or the in-cluster ServiceAccount. */
export interface ApiAccess {
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName?: string;
  readonly token?: string;
  /** Read again for every new set of headers: projected ServiceAccount tokens rotate. */
  readonly tokenFile?: string;
}

export type AccessResult =
  | { readonly kind: "ok"; readonly access: ApiAccess }
  /** A feature only client-node's loader has (exec, auth-provider, proxy-url, several files): use it. */
  | { readonly kind: "unsupported"; readonly why: string }
  | { readonly kind: "error"; readonly message: string };

const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";
const CLUSTER_KEYS = new Set([
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "tls-server-name",
  "extensions",
]);
const USER_KEYS = new Set([
  "token",
  "tokenFile",
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "extensions",
]);

const rec = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const named = (list: unknown, name: string | undefined, field: string): Record<string, unknown> | undefined => {
  const entry = (Array.isArray(list) ? list : []).find((e) => rec(e)["name"] === name);
  return entry === undefined ? undefined : rec(rec(entry)[field]);
};

/**
 * Pure: a kubeconfig's text → how to reach its current context's cluster. File references stay paths
 * (relative ones resolved against `baseDir`); `readFile` loads certificates and keys.
 */
export function accessFromKubeConfig(text: string, baseDir: string, readFile: (path: string) => Buffer): AccessResult {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err: unknown) {
    return { kind: "error", message: `kubeconfig is not YAML: ${err instanceof Error ? err.message : String(err)}` };
  }
  const root = rec(doc);
  const contextName = str(root["current-context"]);
  const context = named(root["contexts"], contextName, "context");
  if (context === undefined) return { kind: "error", message: `kubeconfig has no context "${contextName ?? ""}"` };
  const cluster = named(root["clusters"], str(context["cluster"]), "cluster");
  if (cluster === undefined) return { kind: "error", message: "kubeconfig has no current cluster" };
  const user = named(root["users"], str(context["user"]), "user") ?? {};
  const extraCluster = Object.keys(cluster).filter((k) => !CLUSTER_KEYS.has(k));
  const extraUser = Object.keys(user).filter((k) => !USER_KEYS.has(k));
  if (extraCluster.length + extraUser.length > 0) {
    return { kind: "unsupported", why: [...extraCluster, ...extraUser].join(", ") };
  }
  const server = str(cluster["server"]);
  if (server === undefined) return { kind: "error", message: "kubeconfig cluster has no server" };
  const insecure = cluster["insecure-skip-tls-verify"] === true;
  if (server.startsWith("http:") && !insecure) {
    // client-node's rule too: a plain-HTTP server must be marked as not verified.
    return { kind: "error", message: "HTTP protocol is not allowed when skipTLSVerify is not set or false" };
  }
  const path = (p: string): string => (isAbsolute(p) ? p : join(baseDir, p));
  const material = (dataKey: string, fileKey: string): Buffer | undefined => {
    const data = str(cluster[dataKey] ?? user[dataKey]);
    if (data !== undefined) return Buffer.from(data, "base64");
    const file = str(cluster[fileKey] ?? user[fileKey]);
    return file === undefined ? undefined : readFile(path(file));
  };
  try {
    const ca = material("certificate-authority-data", "certificate-authority");
    const cert = material("client-certificate-data", "client-certificate");
    const key = material("client-key-data", "client-key");
    const token = str(user["token"]);
    const tokenFile = str(user["tokenFile"]);
    const tlsServerName = str(cluster["tls-server-name"]);
    return {
      kind: "ok",
      access: {
        server,
        insecureSkipTlsVerify: insecure,
        ...(ca === undefined ? {} : { ca }),
        ...(cert === undefined ? {} : { cert }),
        ...(key === undefined ? {} : { key }),
        ...(tlsServerName === undefined ? {} : { tlsServerName }),
        ...(token === undefined ? {} : { token }),
        ...(tokenFile === undefined ? {} : { tokenFile: path(tokenFile) }),
      },
    };
  } catch (err: unknown) {
    return { kind: "error", message: err instanceof Error ? err.message : String(err) };
  }
}

/** Pure: the in-cluster ServiceAccount (what client-node's `loadFromCluster` reads). */
export function inClusterAccess(env: Readonly<Record<string, string | undefined>>, prefix = ""): AccessResult {
  const host = env["KUBERNETES_SERVICE_HOST"];
  const port = env["KUBERNETES_SERVICE_PORT"];
  if (host === undefined || port === undefined) {
    return { kind: "error", message: "not in a cluster: KUBERNETES_SERVICE_HOST/PORT unset; pass --kubeconfig" };
  }
  const scheme = port === "80" || port === "8080" || port === "8001" ? "http" : "https";
  return {
    kind: "ok",
    access: {
      server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`,
      insecureSkipTlsVerify: false,
      tokenFile: `${prefix}${SERVICE_ACCOUNT}/token`,
      ...(scheme === "https" ? { ca: readFileSync(`${prefix}${SERVICE_ACCOUNT}/ca.crt`) } : {}),
    },
  };
}

/** An ApiSource over plain access data: a bearer token (re-read from its file) and one TLS connection pool. */
export function accessSource(access: ApiAccess): ApiSource {
  let dispatcher: Dispatcher | undefined;
  return {
    getCurrentCluster: () => ({ server: access.server }),
    applySecurityAuthentication(ctx) {
      const token = access.tokenFile === undefined ? access.token : readFileSync(access.tokenFile, "utf8").trim();
      if (token !== undefined && token !== "") ctx.setHeaderParam("Authorization", `Bearer ${token}`);
      if (access.server.startsWith("https:")) {
        dispatcher ??= new Agent({
          connect: {
            // As client-go and client-node: keep-alive probes after 30 s, before cloud load balancers drop the socket.
            keepAlive: true,
            keepAliveInitialDelay: 30_000,
            rejectUnauthorized: !access.insecureSkipTlsVerify,
            ...(access.ca === undefined ? {} : { ca: access.ca }),
            ...(access.cert === undefined ? {} : { cert: access.cert }),
            ...(access.key === undefined ? {} : { key: access.key }),
            ...(access.tlsServerName === undefined ? {} : { servername: access.tlsServerName }),
          },
        });
        ctx.setDispatcher(dispatcher);
      }
      return Promise.resolve();
    },
  };
}

/**
 * `--kubeconfig PATH` (or the in-cluster ServiceAccount without one) read without client-node, or why it needs
 * client-node's loader. Several paths in KUBECONFIG style (`a:b`) are merged with client-node (loadKubeConfig).
 */
export function lightKubeConfig(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): AccessResult {
  if (path === undefined || path === "") {
    try {
      return inClusterAccess(env);
    } catch (err: unknown) {
      return { kind: "error", message: err instanceof Error ? err.message : String(err) };
    }
  }
  if (path.includes(delimiter)) return { kind: "unsupported", why: "several kubeconfig files" };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err: unknown) {
    return { kind: "error", message: err instanceof Error ? err.message : String(err) };
  }
  return accessFromKubeConfig(text, dirname(path), (p) => readFileSync(p));
}
