import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Api } from "./api.ts";
import { Audit } from "./audit.ts";
import { Faults, type FailNext } from "./faults.ts";
import { kubeconfigYaml } from "./kubeconfig.ts";
import { Rbac, selfSubjectAccessReview, type Denial } from "./rbac.ts";
import { findResource } from "./resources.ts";
import { Handler, sendError, sendJson } from "./server.ts";
import { badRequest, notFoundPath } from "./api-errors.ts";
import { Store } from "./store.ts";
import { selfSignedCertificate } from "./tls.ts";

export { Audit } from "./audit.ts";
export type { AuditFilter, AuditRecord } from "./audit.ts";
export { Faults } from "./faults.ts";
export type { FailNext, FaultMatch, FaultState } from "./faults.ts";
export type { Denial } from "./rbac.ts";

export interface SandboxOptions {
  /** TCP port (0 or unset: an ephemeral port). */
  readonly port?: number;
  /** Listen address (default 127.0.0.1). */
  readonly host?: string;
  /** Where to write the kubeconfig (default: a file in the temp directory named after pid and port). */
  readonly kubeconfigPath?: string;
  /** Authenticate bearer tokens and enforce RBAC (see docs/design/sandbox.md, "RBAC mode"). */
  readonly rbac?: boolean;
  /**
   * Serve HTTPS with a fresh self-signed certificate (needs the openssl command). Default: on in RBAC mode,
   * because kubectl sends no credentials over plain HTTP; off otherwise.
   */
  readonly tls?: boolean;
  /** Watch events kept per resource for watches that resume from a resourceVersion (default 10,000). */
  readonly historySize?: number;
  /**
   * Interval of BOOKMARK events on watches that allow them (default 60 s, kube-apiserver's cadence: the first a
   * minute into the watch, and one 2 s before its timeoutSeconds end when that comes first). Tests that want
   * bookmarks sooner set it.
   */
  readonly bookmarkIntervalMs?: number;
}

export interface Sandbox {
  /** Base URL, e.g. http://127.0.0.1:41234 (https:// with TLS) */
  readonly url: string;
  /** With TLS: the self-signed certificate (PEM) to trust; it is also in the kubeconfigs. */
  readonly ca: string | undefined;
  readonly port: number;
  readonly kubeconfigPath: string;
  readonly kubeconfigYaml: string;
  readonly faults: Faults;
  /** Every request served (verb, resource, User-Agent, fieldManager, code); also `GET /_sandbox/audit`. */
  readonly audit: Audit;
  /** The in-process API (objects, store) for assertions that should not go through HTTP. */
  readonly api: Api;
  /** A bearer token for a ServiceAccount (honoured in RBAC mode; without RBAC every request is allowed anyway). */
  tokenFor(namespace: string, serviceAccount: string): string;
  /** A kubeconfig (written to a file too) that authenticates as the ServiceAccount. */
  kubeconfigFor(
    namespace: string,
    serviceAccount: string,
  ): { token: string; kubeconfigYaml: string; kubeconfigPath: string };
  /** RBAC mode: the requests refused with 403, oldest first (the last 1,000); also `GET /_sandbox/denials`. */
  denials(): readonly Denial[];
  stop(): Promise<void>;
}

const NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];

/** Starts the embedded Kubernetes API server. */
export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const host = opts.host ?? "127.0.0.1";
  const api = new Api(new Store(opts.historySize ?? 10_000));
  const namespaces = findResource("", "v1", "namespaces");
  const services = findResource("", "v1", "services");
  if (namespaces === undefined || services === undefined)
    throw new Error("sandbox: resource table lacks namespaces/services");
  for (const name of NAMESPACES) api.seed(namespaces, { metadata: { name } });
  api.seed(services, {
    metadata: { name: "kubernetes", namespace: "default", labels: { component: "apiserver", provider: "kubernetes" } },
    spec: { clusterIP: "10.96.0.1", ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: 6443 }] },
  });
  const adminToken = `lodestone-sandbox-admin-${randomBytes(12).toString("hex")}`;
  const rbac = new Rbac(api, adminToken);
  const audit = new Audit();

  let server: Server | undefined;
  let port = opts.port ?? 0;
  const sockets = new Set<Socket>();
  const hostInUrl = host.includes(":") ? `[${host}]` : host;

  const faults: Faults = new Faults({
    closeWatches: () => handler.closeWatches(),
    stopServing: async () => {
      if (server === undefined) return;
      const s = server;
      server = undefined;
      handler.closeWatches();
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        for (const sock of sockets) sock.destroy();
        s.closeAllConnections();
      });
    },
    resume: async () => {
      if (server === undefined) await listen();
    },
    serving: () => server !== undefined,
  });

  const extra = (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    body: () => Promise<string | undefined>,
  ): boolean => {
    if (!path.startsWith("/_sandbox/")) return false;
    if (path === "/_sandbox/audit") {
      if (req.method !== "GET") sendError(res, badRequest("use GET"));
      else sendJson(res, 200, JSON.stringify({ totals: audit.totals(), items: audit.records() }));
      return true;
    }
    if (path === "/_sandbox/denials") {
      if (req.method !== "GET") sendError(res, badRequest("use GET"));
      else sendJson(res, 200, JSON.stringify({ items: rbac.denials() }));
      return true;
    }
    void sandboxEndpoint(req, res, path, body, faults, kubeconfigFor).catch((err: unknown) =>
      sendError(res, badRequest(String(err))),
    );
    return true;
  };

  const handler: Handler = new Handler({
    api,
    audit,
    faults,
    gate: (req, attrs) => (opts.rbac === true ? rbac.check(req.headers, attrs) : undefined),
    accessReview: (req, review) =>
      selfSubjectAccessReview(opts.rbac === true ? rbac : undefined, rbac.authenticate(req.headers), review),
    address: () => `${host}:${port}`,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 60_000,
    extra,
  });

  async function listen(): Promise<void> {
    const serve = (req: IncomingMessage, res: ServerResponse): void => handler.handle(req, res);
    const s: Server =
      certificate === undefined
        ? createServer({ keepAliveTimeout: 60_000 }, serve)
        : createTlsServer({ keepAliveTimeout: 60_000, key: certificate.key, cert: certificate.cert }, serve);
    s.on("connection", (sock) => {
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
    });
    s.on("clientError", (_err, sock) => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, host, () => {
        s.off("error", reject);
        resolve();
      });
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  }

  const certificate = (opts.tls ?? opts.rbac === true) ? selfSignedCertificate(host) : undefined;
  await listen();
  const url = `${certificate === undefined ? "http" : "https"}://${hostInUrl}:${port}`;
  const ca = certificate?.cert;
  const yaml = kubeconfigYaml(url, "lodestone-sandbox-admin", adminToken, "default", ca);
  const kubeconfigPath = opts.kubeconfigPath ?? join(tmpdir(), `lodestone-sandbox-${process.pid}-${port}.kubeconfig`);
  writeFileSync(kubeconfigPath, yaml, { mode: 0o600 });
  // Files this server chose itself are removed on stop; a path the caller gave is theirs to keep.
  const written: string[] = opts.kubeconfigPath === undefined ? [kubeconfigPath] : [];
  let minted = 0;
  function kubeconfigFor(
    namespace: string,
    serviceAccount: string,
  ): { token: string; kubeconfigYaml: string; kubeconfigPath: string } {
    const token = rbac.tokenFor(namespace, serviceAccount);
    const y = kubeconfigYaml(url, `system:serviceaccount:${namespace}:${serviceAccount}`, token, namespace, ca);
    const path = `${kubeconfigPath}.${namespace}.${serviceAccount}.${++minted}`;
    writeFileSync(path, y, { mode: 0o600 });
    written.push(path);
    return { token, kubeconfigYaml: y, kubeconfigPath: path };
  }

  return {
    url,
    ca,
    port,
    kubeconfigPath,
    kubeconfigYaml: yaml,
    faults,
    audit,
    api,
    tokenFor: (namespace, serviceAccount) => rbac.tokenFor(namespace, serviceAccount),
    kubeconfigFor,
    denials: () => rbac.denials(),
    stop: async () => {
      await faults.stopServing();
      for (const path of written.splice(0)) rmSync(path, { force: true });
    },
  };
}

/** `/_sandbox/faults`: GET the fault state, POST `{action, ...}` to inject one (see docs/design/sandbox.md, "Fault injection"). */
async function sandboxEndpoint(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  body: () => Promise<string | undefined>,
  faults: Faults,
  kubeconfigFor: (
    namespace: string,
    serviceAccount: string,
  ) => { token: string; kubeconfigYaml: string; kubeconfigPath: string },
): Promise<void> {
  if (path === "/_sandbox/tokens") {
    if (req.method !== "POST") return sendError(res, badRequest("POST {namespace, serviceAccount}"));
    let q: unknown;
    try {
      q = JSON.parse((await body()) ?? "");
    } catch {
      q = undefined;
    }
    const o = typeof q === "object" && q !== null ? (q as Record<string, unknown>) : {};
    const ns = o["namespace"];
    const sa = o["serviceAccount"];
    if (typeof ns !== "string" || typeof sa !== "string" || ns === "" || sa === "")
      return sendError(res, badRequest('body must be {"namespace": "...", "serviceAccount": "..."}'));
    return sendJson(res, 200, JSON.stringify(kubeconfigFor(ns, sa)));
  }
  if (path !== "/_sandbox/faults") return sendError(res, notFoundPath());
  if (req.method === "GET") return sendJson(res, 200, JSON.stringify(faults.state()));
  if (req.method !== "POST") return sendError(res, badRequest("use GET or POST"));
  const text = (await body()) ?? "";
  let cmd: unknown;
  try {
    cmd = JSON.parse(text);
  } catch {
    return sendError(res, badRequest('body must be JSON: {"action": ...}'));
  }
  if (typeof cmd !== "object" || cmd === null || !("action" in cmd))
    return sendError(res, badRequest('body must be {"action": ...}'));
  const c = cmd as Record<string, unknown>;
  const num = (k: string): number | undefined => (typeof c[k] === "number" ? c[k] : undefined);
  const text2 = (k: string): string | undefined => (typeof c[k] === "string" ? c[k] : undefined);
  const verb = text2("verb");
  const resource = text2("resource");
  const match = { ...(verb === undefined ? {} : { verb }), ...(resource === undefined ? {} : { resource }) };
  switch (c["action"]) {
    case "closeWatches":
      return sendJson(res, 200, JSON.stringify({ closed: faults.closeWatches() }));
    case "expireNextWatches":
      faults.expireNextWatches(num("count") ?? 1);
      break;
    case "failNext": {
      const code = num("code");
      if (code !== 409 && code !== 429 && code !== 500)
        return sendError(res, badRequest("code must be 409, 429 or 500"));
      const f: FailNext = {
        ...match,
        code,
        count: num("count") ?? 1,
        retryAfterSeconds: num("retryAfterSeconds") ?? 1,
      };
      faults.failNext(f);
      break;
    }
    case "latency":
      faults.setLatency(num("ms") ?? 0, match);
      break;
    case "stopServing": {
      const ms = num("forMs");
      if (ms === undefined || ms <= 0 || ms > 600_000)
        return sendError(
          res,
          badRequest("stopServing over HTTP needs forMs (1..600000): nothing could resume it otherwise"),
        );
      sendJson(res, 200, JSON.stringify({ stoppedForMs: ms }));
      setTimeout(() => {
        void faults.stopServing().then(() => setTimeout(() => void faults.resume(), ms));
      }, 10);
      return;
    }
    case "clear":
      faults.clear();
      break;
    default:
      return sendError(
        res,
        badRequest(
          `unknown action ${JSON.stringify(c["action"])}: closeWatches, expireNextWatches, failNext, latency, stopServing, clear`,
        ),
      );
  }
  return sendJson(res, 200, JSON.stringify(faults.state()));
}
