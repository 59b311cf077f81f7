import { hostname } from "node:os";
import pino, { type Level } from "pino";
import type { Command } from "./main.ts";
import { defaultLeaseTimings, leaseTimingProblems } from "../kube/lease.ts";
import type { DaemonOptions } from "../app/daemon.ts";

const LEVELS: readonly string[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface RunFlags {
  readonly daemon: DaemonOptions;
  readonly logLevel: Level | "silent";
}

const HELP = `Usage: lodestone run [flags]

Runs the Lodestone daemon: the allocating controller (one active pod at a time, elected by a Lease) and,
unless --speaker=false, the layer-2 speaker. Logs are JSON lines on stdout.

Flags (environment default in brackets):
  --kubeconfig PATH            kubeconfig file [KUBECONFIG]; without it, the in-cluster ServiceAccount
  --namespace NS               the daemon's namespace: pool ConfigMaps, Leases [POD_NAMESPACE, else lodestone-system]
  --node-name NAME             this node [NODE_NAME, else the host name]
  --load-balancer-class CLASS  handle only Services of this class (default: no class, or lodestone.dev/lb)
  --log-level LEVEL            fatal, error, warn, info, debug, trace, silent [LOG_LEVEL, else info]
  --metrics-port N             /metrics, /healthz, /readyz port; 0 = any free port, -1 = off (default 7472)
  --speaker BOOL               run the layer-2 speaker too (default true)
  --lease-name NAME            controller Lease (default lodestone-controller)
  --lease-duration DURATION    how long a standby waits for a silent leader (default 15s)
  --renew-deadline DURATION    a leader that cannot renew for this long stops writing (default 10s)
  --retry-period DURATION      time between Lease attempts (default 2s)
Durations: 15s, 1500ms, 2m, or plain seconds.`;

/** Pure: "15s", "1500ms", "2m", "3" (seconds) → milliseconds, or undefined. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  return Math.round(unit === "ms" ? n : unit === "s" ? n * 1000 : n * 60_000);
}

/**
 * Pure: flags and environment → options, or the one-line reason they are wrong. `--flag value` and
 * `--flag=value` both work; booleans accept `--speaker`, `--speaker=false`, `--speaker false`.
 */
export function parseRunFlags(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): { ok: true; value: RunFlags } | { ok: false; error: string } | { ok: "help" } {
  const values = new Map<string, string>();
  const known = new Set([
    "kubeconfig",
    "namespace",
    "node-name",
    "load-balancer-class",
    "log-level",
    "metrics-port",
    "speaker",
    "lease-name",
    "lease-duration",
    "renew-deadline",
    "retry-period",
  ]);
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (a === "--help" || a === "-h") return { ok: "help" };
    if (!a.startsWith("--")) return { ok: false, error: `unexpected argument "${a}"` };
    const eq = a.indexOf("=");
    const name = a.slice(2, eq === -1 ? undefined : eq);
    if (!known.has(name)) return { ok: false, error: `unknown flag --${name}` };
    let value: string | undefined = eq === -1 ? undefined : a.slice(eq + 1);
    if (value === undefined) {
      const next = args[i + 1];
      if (name === "speaker" && (next === undefined || !["true", "false"].includes(next))) value = "true";
      else if (next === undefined || next.startsWith("--")) return { ok: false, error: `--${name} needs a value` };
      else value = args[++i] ?? "";
    }
    values.set(name, value);
  }
  const get = (name: string, envName?: string): string | undefined =>
    values.get(name) ?? (envName === undefined ? undefined : env[envName] || undefined);

  const logLevel = get("log-level", "LOG_LEVEL") ?? "info";
  if (!LEVELS.includes(logLevel)) return { ok: false, error: `--log-level must be one of ${LEVELS.join(", ")}` };
  const portText = get("metrics-port") ?? "7472";
  const metricsPort = Number(portText);
  if (!Number.isInteger(metricsPort) || metricsPort < -1 || metricsPort > 65535) {
    return { ok: false, error: `--metrics-port must be -1 (off), 0 (any) or a port up to 65535, got "${portText}"` };
  }
  const speakerText = get("speaker") ?? "true";
  if (speakerText !== "true" && speakerText !== "false") {
    return { ok: false, error: `--speaker must be true or false, got "${speakerText}"` };
  }
  const timings = { ...defaultLeaseTimings };
  for (const [flag, field] of [
    ["lease-duration", "leaseDurationMs"],
    ["renew-deadline", "renewDeadlineMs"],
    ["retry-period", "retryPeriodMs"],
  ] as const) {
    const text = get(flag);
    if (text === undefined) continue;
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0)
      return { ok: false, error: `--${flag}: "${text}" is not a duration (15s, 1500ms)` };
    timings[field] = ms;
  }
  const problems = leaseTimingProblems(timings);
  if (problems.length > 0) return { ok: false, error: `lease timings: ${problems.join("; ")}` };
  const kubeconfig = get("kubeconfig", "KUBECONFIG");
  const cls = get("load-balancer-class");
  const nodeName = get("node-name", "NODE_NAME") ?? hostname();
  return {
    ok: true,
    value: {
      logLevel: logLevel as Level | "silent",
      daemon: {
        ...(kubeconfig === undefined ? {} : { kubeconfig }),
        namespace: get("namespace", "POD_NAMESPACE") ?? "lodestone-system",
        nodeName,
        identity: `${env.POD_NAME ?? nodeName}_${process.pid}`,
        ...(cls === undefined ? {} : { loadBalancerClass: cls }),
        metricsPort,
        speaker: speakerText === "true",
        lease: { name: get("lease-name") ?? "lodestone-controller", ...timings },
      },
    },
  };
}

export const command: Command = {
  summary: "run the daemon (allocating controller + speaker)",
  async run(args) {
    const parsed = parseRunFlags(args, process.env);
    if (parsed.ok === "help") {
      console.log(HELP);
      return 0;
    }
    if (!parsed.ok) {
      console.error(`lodestone run: ${parsed.error} (see lodestone run --help)`);
      return 2;
    }
    const logger = pino({ level: parsed.value.logLevel, base: { node: parsed.value.daemon.nodeName } });
    const { startDaemon } = await import("../app/daemon.ts");
    const started = await startDaemon(parsed.value.daemon, logger).then(
      (d) => ({ ok: true as const, d }),
      (err: unknown) => ({ ok: false as const, message: err instanceof Error ? err.message : String(err) }),
    );
    if (!started.ok) {
      logger.fatal({ reason: started.message }, "daemon failed to start");
      console.error(`lodestone run: ${started.message}`);
      return 1;
    }
    const daemon = started.d;
    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (signal: NodeJS.Signals): void => {
        if (stopping) {
          logger.warn({ signal }, "second signal: exiting at once");
          resolve(1);
          return;
        }
        stopping = true;
        // Anything still holding the event loop after a clean stop must not keep a terminating pod alive.
        const exitSoon = (code: number): void => void setTimeout(() => process.exit(code), 1000).unref();
        daemon.stop(`signal ${signal}`).then(
          () => {
            resolve(0);
            exitSoon(0);
          },
          (err: unknown) => {
            logger.error({ err }, "graceful stop failed");
            resolve(1);
          },
        );
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
    });
  },
};
