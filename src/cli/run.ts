import { hostname } from "node:os";
import pino, { type Level } from "pino";
import type { Command } from "./main.ts";
import { defaultLeaseTimings, leaseTimingProblems } from "../kube/lease.ts";
import type { DaemonOptions } from "../app/daemon.ts";
import {
  CONTROLLER_LEASE,
  DEFAULT_LOAD_BALANCER_CLASS,
  DEFAULT_METALLB_NAMESPACE,
  DEFAULT_NAMESPACE,
} from "../core/well-known.ts";
import { type FlagSpecs, parseFlags } from "./flags.ts";

const LEVELS: readonly string[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface RunFlags {
  readonly daemon: DaemonOptions;
  readonly logLevel: Level | "silent";
}

const HELP = `Usage: lodestone run [flags]

Runs the Lodestone daemon: the allocating controller (one active pod at a time, elected by a Lease) and the
layer-2 speaker, or one of them with --component. Logs are JSON lines on stdout.

Flags (environment default in brackets):
  --kubeconfig PATH            kubeconfig file [KUBECONFIG]; without it, the in-cluster ServiceAccount
  --namespace NS               the daemon's namespace: pool ConfigMaps, Leases [POD_NAMESPACE, else ${DEFAULT_NAMESPACE}]
  --node-name NAME             this node [NODE_NAME, else the host name]
  --load-balancer-class CLASS  handle only Services of this class (default: no class, or ${DEFAULT_LOAD_BALANCER_CLASS})
  --metallb-namespace NS       read MetalLB's IPAddressPools and L2Advertisements here, once their CRDs exist
                               (default ${DEFAULT_METALLB_NAMESPACE}; --metallb-namespace= turns it off)
  --log-level LEVEL            fatal, error, warn, info, debug, trace, silent [LOG_LEVEL, else info]
  --metrics-port N             /metrics, /healthz, /readyz port; 0 = any free port, -1 = off (default 7472)
  --component NAME             controller: allocate, write status and the announcing-node annotation (the
                               Deployment); speaker: announce from this node (the DaemonSet); unset: both
  --speaker BOOL               false: the same as --component controller (default true)
  --bgp BOOL                   BGP mode through FRR once a bgp.yaml configures a peer (default true; docs/bgp.md;
                               never with --component controller or --speaker=false)
  --frr-config PATH            frr.conf that Lodestone writes and reloads [FRR_CONFIG, else /etc/frr/frr.conf]
  --frr-pathspace NAME         FRR's -N pathspace, for one FRR of several on a host (default none)
  --bgp-drain DURATION         on SIGTERM, after withdrawing every prefix, wait this long (default 3s)
  --lease-name NAME            controller Lease (default ${CONTROLLER_LEASE})
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

const FLAGS = {
  kubeconfig: { type: "string" },
  namespace: { type: "string" },
  "node-name": { type: "string" },
  "load-balancer-class": { type: "string" },
  "metallb-namespace": { type: "string" },
  "log-level": { type: "string" },
  "metrics-port": { type: "string" },
  component: { type: "string" },
  speaker: { type: "boolean" },
  bgp: { type: "boolean" },
  "frr-config": { type: "string" },
  "frr-pathspace": { type: "string" },
  "bgp-drain": { type: "string" },
  "lease-name": { type: "string" },
  "lease-duration": { type: "string" },
  "renew-deadline": { type: "string" },
  "retry-period": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies FlagSpecs;

/** Pure: flags and environment → options, or the one-line reason they are wrong. A flag wins over its variable. */
export function parseRunFlags(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): { ok: true; value: RunFlags } | { ok: false; error: string } | { ok: "help" } {
  const parsed = parseFlags(args, FLAGS);
  if (!parsed.ok) return parsed;
  const { values } = parsed;
  if (values.help === true) return { ok: "help" };
  type Text = Exclude<keyof typeof FLAGS, "speaker" | "bgp" | "help">;
  const get = (name: Text, envName?: string): string | undefined =>
    values[name] ?? (envName === undefined ? undefined : env[envName] || undefined);

  const logLevel = get("log-level", "LOG_LEVEL") ?? "info";
  if (!LEVELS.includes(logLevel)) return { ok: false, error: `--log-level must be one of ${LEVELS.join(", ")}` };
  const portText = get("metrics-port") ?? "7472";
  const metricsPort = Number(portText);
  if (!Number.isInteger(metricsPort) || metricsPort < -1 || metricsPort > 65535) {
    return { ok: false, error: `--metrics-port must be -1 (off), 0 (any) or a port up to 65535, got "${portText}"` };
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
  const component = get("component");
  if (component !== undefined && component !== "controller" && component !== "speaker") {
    return { ok: false, error: `--component must be controller or speaker, got "${component}"` };
  }
  if (component === "speaker" && values.speaker === false) {
    return { ok: false, error: "--component speaker and --speaker=false leave nothing to run" };
  }
  const drainText = get("bgp-drain");
  const drainMs = drainText === undefined ? undefined : parseDuration(drainText);
  if (drainMs === undefined && drainText !== undefined) {
    return { ok: false, error: `--bgp-drain: "${drainText}" is not a duration (3s, 1500ms)` };
  }
  const frrConfig = get("frr-config", "FRR_CONFIG");
  const pathspace = get("frr-pathspace");
  const problems = leaseTimingProblems(timings);
  if (problems.length > 0) return { ok: false, error: `lease timings: ${problems.join("; ")}` };
  const kubeconfig = get("kubeconfig", "KUBECONFIG");
  const cls = get("load-balancer-class");
  const nodeName = get("node-name", "NODE_NAME") ?? hostname();
  const metallbNamespace = get("metallb-namespace") ?? DEFAULT_METALLB_NAMESPACE;
  return {
    ok: true,
    value: {
      logLevel: logLevel as Level | "silent",
      daemon: {
        ...(kubeconfig === undefined ? {} : { kubeconfig }),
        namespace: get("namespace", "POD_NAMESPACE") ?? DEFAULT_NAMESPACE,
        nodeName,
        identity: `${env.POD_NAME ?? nodeName}_${process.pid}`,
        ...(cls === undefined ? {} : { loadBalancerClass: cls }),
        ...(metallbNamespace === "" ? {} : { metallbNamespace }),
        metricsPort,
        ...(component === undefined ? {} : { component }),
        speaker: values.speaker ?? true,
        // --speaker=false is --component controller: no node side, so no BGP either.
        bgp:
          values.bgp === false || values.speaker === false
            ? false
            : {
                ...(drainMs === undefined ? {} : { drainMs }),
                frr: {
                  ...(frrConfig === undefined ? {} : { configPath: frrConfig }),
                  ...(pathspace === undefined ? {} : { pathspace }),
                },
              },
        lease: { name: get("lease-name") ?? CONTROLLER_LEASE, ...timings },
      },
    },
  };
}

export const command: Command = {
  summary: "run the daemon (allocating controller, speaker, or both)",
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
