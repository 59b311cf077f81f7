import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { ProbeResult, TelemetrySnapshot } from "../core/telemetry.ts";
import { createMetricsRegistry } from "./metrics.ts";

export interface HealthServerOptions {
  readonly port: number;
  readonly host?: string;
  readonly logger: Logger;
  readonly snapshot: () => TelemetrySnapshot;
  /** Live: no loop has crashed or hung, i.e. a restart would not help (src/core/liveness.ts). */
  readonly live: () => ProbeResult;
  /** Ready: first full sync done and the configuration usable. */
  readonly ready: () => ProbeResult;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves /metrics, /healthz and /readyz. Any other path is a 404; nothing here can crash the daemon. */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const registry = createMetricsRegistry(opts.snapshot);
  const probe = (r: ProbeResult, not: string): [number, string] =>
    r.ok ? [200, "ok\n"] : [503, `${not}: ${r.reasons.join("; ")}\n`];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (code: number, body: string, type = "text/plain; charset=utf-8"): void => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, "method not allowed\n");
    switch (path) {
      case "/metrics":
        registry.metrics().then(
          (text) => reply(200, text, registry.contentType),
          (err: unknown) => {
            opts.logger.error({ err }, "metrics scrape failed");
            reply(500, "metrics unavailable\n");
          },
        );
        return;
      case "/healthz":
        return reply(...probe(opts.live(), "not live"));
      case "/readyz":
        return reply(...probe(opts.ready(), "not ready"));
      default:
        return reply(404, "not found: try /metrics, /healthz or /readyz\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "0.0.0.0", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  opts.logger.info({ port }, "serving /metrics, /healthz, /readyz");
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
