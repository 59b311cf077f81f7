import type { Logger } from "pino";
import { type BgpConfig, emptyBgpConfig, isBgpConfigured, mergeBgp, parseBgpConfigMap } from "../core/bgp-config.ts";
import { renderFrrConfig } from "../core/bgp-frr.ts";
import { type BgpPlan, type BgpService, planBgp } from "../core/bgp-plan.ts";
import { type SessionProblem, type SessionState, sessionProblemMessage } from "../core/bgp-state.ts";
import { type BgpCode, BgpCodes, type BgpError } from "../core/errors.ts";
import { type IpAddress, formatIp, parseIp } from "../core/ip.ts";
import type { BgpSessionTelemetry, ProbeResult } from "../core/telemetry.ts";
import type { LoopReport } from "../core/liveness.ts";
import { type ObjectRef, createEventRecorder } from "../kube/events.ts";
import { type Slim, createInformer, objectMeta } from "../kube/informer.ts";
import type { SlimConfigMap, SlimService } from "../kube/objects.ts";
import { type Frr, type FrrOptions, createFrr } from "../net/frr.ts";
import type { ComponentContext, ComponentFactory, DaemonComponent } from "./daemon.ts";
import { createLocalSlices } from "./speaker-slices.ts";

export interface BgpComponentOptions {
  readonly frr?: FrrOptions;
  /** Replaces FRR (tests). */
  readonly createFrr?: (o: FrrOptions) => Frr;
  /** Drain on a graceful stop: after the withdrawal is applied, wait this long for the routers (default 3 s). */
  readonly drainMs?: number;
  /** How often FRR's session state is read (default 1 s). */
  readonly pollMs?: number;
  /** Changes closer together than this are applied as one reload (default 200 ms). */
  readonly settleMs?: number;
  /** A failed reload is tried again after this long (default 5 s). */
  readonly retryMs?: number;
  /** A session not up this long after it was configured has its problem reported (default 10 s; tests). */
  readonly reportAfterMs?: number;
}

interface SelfNode extends Slim {
  readonly labels: Readonly<Record<string, string>>;
}

const rec = (v: unknown): Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

const PROBLEM_CODES: Readonly<Record<SessionProblem, BgpCode>> = {
  "wrong-asn": BgpCodes.peerASN,
  "unreachable-or-password": BgpCodes.peerAuth,
  unreachable: BgpCodes.peerUnreachable,
  down: BgpCodes.sessionDown,
};

/**
 * BGP mode on this node: from the pool ConfigMaps' `bgp.yaml`, the Services, this Node and the EndpointSlices of
 * Local Services, the plan of what this node advertises to which router (core/bgp-plan.ts), rendered as FRR's
 * configuration and applied without restarting sessions (src/net/frr.ts). Idle, with no watch of its own and no
 * FRR call, until some ConfigMap configures a peer. On a graceful stop it drains: withdraws every prefix (the
 * sessions stay up, so routers converge at once instead of waiting for a hold timer), waits `drainMs`, and only
 * then lets the daemon exit; FRR itself stops after (the chart holds it with a preStop wait).
 */
export function bgpComponent(o: BgpComponentOptions = {}): ComponentFactory {
  return (ctx): DaemonComponent => createBgp(ctx, o);
}

function createBgp(ctx: ComponentContext, o: BgpComponentOptions): DaemonComponent {
  const log: Logger = ctx.logger.child({ component: "bgp" });
  const frr = (o.createFrr ?? createFrr)(o.frr ?? {});
  const drainMs = o.drainMs ?? 3_000;
  const pollMs = o.pollMs ?? 1_000;
  const settleMs = o.settleMs ?? 200;
  const retryMs = o.retryMs ?? 5_000;
  const reportAfterMs = o.reportAfterMs ?? 10_000;
  const { services, configMaps } = ctx.watched;
  const self = ctx.nodeName;
  const events = createEventRecorder({ client: ctx.client, logger: log, component: "lodestone-bgp", instance: self });

  let started = false;
  let stopped = false;
  let draining = false;
  let dirty = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  let running: Promise<void> | undefined;
  let busySince: number | undefined;
  /** The text FRR runs now, as far as we know (undefined: never applied by this process). */
  let applied: string | undefined;
  let lastApplyError: BgpError | undefined;
  let config: BgpConfig = emptyBgpConfig;
  let plan: BgpPlan = { peers: [] };
  let sessions: readonly BgpSessionTelemetry[] = [];
  let frrError: BgpError | undefined;
  const unsubscribe: (() => void)[] = [];

  // Own watches, started once BGP is configured: this Node alone (its labels) and the slices of Local Services.
  const node = createInformer<SelfNode>({
    client: ctx.client,
    logger: log,
    resource: "bgp-node",
    path: "/api/v1/nodes",
    project: (raw) => {
      const m = objectMeta(raw);
      if (m === undefined || m.name !== self) return undefined;
      const labels = rec(rec(rec(raw)["metadata"])["labels"]);
      return {
        key: m.key,
        resourceVersion: m.rv,
        labels: Object.fromEntries(
          Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === "string"),
        ),
      };
    },
  });
  const slices = createLocalSlices({ client: ctx.client, logger: log, services, loaded: () => schedule() });
  let watching = false;

  /** Last good BGP part per ConfigMap: a broken new version keeps the old one in force, as pools do. */
  const lastGood = new Map<string, { version: string; config: BgpConfig }>();
  const reported = new Map<string, string>();
  function readConfig(): BgpConfig {
    const parts: BgpConfig[] = [];
    const seen = new Set<string>();
    for (const cm of configMaps.values()) {
      seen.add(cm.key);
      const cached = lastGood.get(cm.key);
      if (cached === undefined || cached.version !== cm.resourceVersion) {
        const parsed = parseBgpConfigMap(cm);
        if (parsed === undefined) {
          lastGood.delete(cm.key);
          continue;
        }
        if (parsed.problems.length === 0 || cached === undefined) {
          lastGood.set(cm.key, { version: cm.resourceVersion, config: parsed.config });
        }
        const text = parsed.problems.map((p) => `${p.path}: ${p.message} [${p.code}]`).join("; ");
        if (text !== "" && reported.get(cm.key) !== text) {
          reported.set(cm.key, text);
          log.warn(
            { configMap: cm.key, problems: parsed.problems },
            "bgp.yaml has problems; its last good version stays in force",
          );
        }
      }
      const good = lastGood.get(cm.key);
      if (good !== undefined) parts.push(good.config);
    }
    for (const k of [...lastGood.keys()]) if (!seen.has(k)) lastGood.delete(k);
    const poolNames = new Set(ctx.pools().map((p) => p.name));
    const merged = mergeBgp(parts, poolNames);
    for (const p of merged.problems) {
      const key = `${p.configMap} ${p.path}`;
      if (reported.get(key) !== p.message) {
        reported.set(key, p.message);
        log.warn({ configMap: p.configMap, path: p.path, code: p.code }, p.message);
      }
    }
    return merged.config;
  }

  const parsedIngress = new WeakMap<SlimService, readonly IpAddress[]>();
  function* bgpServices(): Generator<BgpService> {
    for (const s of services.values()) {
      if (s.type !== "LoadBalancer" || !ctx.handlesClass(s.loadBalancerClass) || s.ingress.length === 0) continue;
      let ingress = parsedIngress.get(s);
      if (ingress === undefined) {
        ingress = s.ingress.map(parseIp).filter((a): a is IpAddress => a !== undefined);
        parsedIngress.set(s, ingress);
      }
      yield { key: s.key, ingress, local: s.externalTrafficPolicy === "Local" };
    }
  }

  const passwords = new Map<string, { value: string | undefined; at: number }>();
  async function secretPasswords(c: BgpConfig): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const p of c.peers) {
      if (p.password === undefined || !("secret" in p.password)) continue;
      const { secret, key } = p.password;
      const cacheKey = `${secret}/${key}`;
      let hit = passwords.get(cacheKey);
      if (hit === undefined || Date.now() - hit.at > 30_000) {
        const r = await ctx.client
          .request({ method: "GET", path: `/api/v1/namespaces/${ctx.namespace}/secrets/${encodeURIComponent(secret)}` })
          .catch(() => undefined);
        const data = rec(rec(r?.body)["data"]);
        const b64 = data[key];
        const value = typeof b64 === "string" ? Buffer.from(b64, "base64").toString("utf8").trim() : undefined;
        hit = { value: value !== undefined && /^\S{1,80}$/.test(value) ? value : undefined, at: Date.now() };
        passwords.set(cacheKey, hit);
        if (hit.value === undefined) {
          const message = `peer ${p.name}: Secret ${ctx.namespace}/${secret} ${r?.status === 200 ? `has no usable key "${key}" (1-80 characters without spaces)` : `cannot be read (HTTP ${r?.status ?? "error"})`}; the session runs without a password`;
          log.warn({ peer: p.name, code: BgpCodes.secret }, message);
          warnOnce(p.configMap, `secret ${p.name}`, BgpCodes.secret, message);
        }
      }
      if (hit.value !== undefined) out.set(p.name, hit.value);
    }
    return out;
  }

  const warned = new Map<string, string>();
  function configMapRef(key: string): ObjectRef | undefined {
    const cm: SlimConfigMap | undefined = configMaps.get(key);
    return cm === undefined ? undefined : { kind: "ConfigMap", namespace: cm.namespace, name: cm.name, uid: cm.uid };
  }
  function warnOnce(configMap: string, what: string, code: BgpCode, message: string): void {
    if (warned.get(what) === message) return;
    warned.set(what, message);
    const ref = configMapRef(configMap);
    if (ref !== undefined) events.record(ref, "Warning", "BGPPeerProblem", `node ${self}: ${message} [${code}]`);
  }

  async function evaluate(): Promise<void> {
    busySince = Date.now();
    try {
      config = readConfig();
      const configured = isBgpConfigured(config);
      if (!configured && applied === undefined) return;
      if (configured && !watching) {
        watching = true;
        node.start();
        slices.informer.start();
        log.info("BGP configured: watching this Node and the EndpointSlices of Local Services");
        await Promise.all([node.whenSynced(), slices.informer.whenSynced()]);
      }
      const ready = slices.endpointNodes();
      plan = planBgp({
        config,
        pools: ctx.pools(),
        nodeLabels: node.get(self)?.labels,
        services: bgpServices(),
        readyHere: (key) => ready.get(key)?.has(self) === true,
        withdrawAll: draining,
      });
      const text = renderFrrConfig(plan, { bfdProfiles: config.bfdProfiles, passwords: await secretPasswords(config) });
      if (text === applied) return;
      const t0 = Date.now();
      const r = await frr.apply(text);
      if (!r.ok) {
        if (lastApplyError?.message !== r.error.message) log.error({ code: r.error.code }, r.error.message);
        lastApplyError = r.error;
        if (!stopped && !draining) timer ??= setTimeout(() => ((timer = undefined), schedule(0)), retryMs);
        return;
      }
      lastApplyError = undefined;
      applied = text;
      log.info(
        {
          ms: Date.now() - t0,
          peers: plan.peers.map((p) => `${p.peer.name}:${p.prefixes.length}`),
          ...(plan.silentBecause === undefined ? {} : { silentBecause: plan.silentBecause }),
        },
        "FRR configuration applied",
      );
      if (!configured) applied = undefined;
    } finally {
      busySince = undefined;
    }
  }

  /** Runs evaluate once at a time; a change during a run runs it again after. */
  function schedule(delay = settleMs): void {
    if (stopped) return;
    dirty = true;
    if (timer !== undefined || running !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void runNow();
    }, delay);
  }
  function runNow(): Promise<void> {
    if (running !== undefined) return running;
    dirty = false;
    running = evaluate()
      .catch((e: unknown) => log.error({ err: e }, "BGP evaluation failed"))
      .finally(() => {
        running = undefined;
        if (dirty) schedule();
      });
    return running;
  }

  const since = new Map<string, number>();
  const lastState = new Map<string, string>();
  async function poll(): Promise<void> {
    if (!isBgpConfigured(config) || applied === undefined) {
      sessions = [];
      return;
    }
    const byAddress = new Map(plan.peers.map((p) => [formatIp(p.peer.address), p.peer]));
    const r = await frr.sessions((a) => byAddress.get(a)?.password !== undefined);
    if (!r.ok) {
      if (frrError?.message !== r.error.message) log.error({ code: r.error.code }, r.error.message);
      frrError = r.error;
      sessions = plan.peers.map((p) => ({
        peer: p.peer.name,
        address: formatIp(p.peer.address),
        up: false,
        prefixesAdvertised: 0,
      }));
      return;
    }
    frrError = undefined;
    // FRR restarted under us (its sidecar restarted, empty): what we applied is gone, apply it again.
    if (r.value.length === 0 && plan.peers.length > 0 && !draining) {
      log.warn("FRR has none of the configured sessions (restarted?): applying the configuration again");
      applied = undefined;
      schedule(0);
    }
    const found = new Map<string, SessionState>(r.value.map((s) => [s.address, s]));
    const now = Date.now();
    sessions = plan.peers.map(({ peer }) => {
      const address = formatIp(peer.address);
      const s = found.get(address);
      if (!since.has(peer.name)) since.set(peer.name, now);
      const state = s?.established === true ? "up" : (s?.problem ?? "unreachable");
      const prev = lastState.get(peer.name);
      if (state !== prev) {
        if (state === "up") {
          log.info({ peer: peer.name, address }, "BGP session established");
          const ref = configMapRef(peer.configMap);
          if (prev !== undefined && ref !== undefined) {
            events.record(
              ref,
              "Normal",
              "BGPSessionEstablished",
              `node ${self}: BGP session with peer ${peer.name} (${address}) established`,
            );
          }
          warned.delete(`peer ${peer.name}`);
          lastState.set(peer.name, state);
        } else if (prev === "up" || now - (since.get(peer.name) ?? now) >= reportAfterMs) {
          // A new session gets time to come up before its first state is called a problem.
          const problem = state as SessionProblem;
          const message = sessionProblemMessage(peer.name, address, problem, s?.lastReset);
          log.warn({ peer: peer.name, address, code: PROBLEM_CODES[problem], frrState: s?.state }, message);
          warnOnce(peer.configMap, `peer ${peer.name}`, PROBLEM_CODES[problem], message);
          lastState.set(peer.name, state);
        }
      }
      return {
        peer: peer.name,
        address,
        up: s?.established === true,
        prefixesAdvertised: s?.prefixesSent ?? 0,
        ...(peer.bfdProfile === undefined ? {} : { bfdUp: s?.bfd === "up" }),
      };
    });
    for (const k of [...since.keys()]) {
      if (plan.peers.some((p) => p.peer.name === k)) continue;
      since.delete(k);
      lastState.delete(k);
    }
  }

  return {
    name: "bgp",
    start() {
      if (started) return Promise.resolve();
      started = true;
      const onChange = { upsert: () => schedule(), delete: () => schedule(), synced: () => schedule() };
      unsubscribe.push(services.subscribe(onChange), configMaps.subscribe(onChange), node.subscribe(onChange));
      unsubscribe.push(slices.informer.subscribe(onChange));
      let polling = false;
      pollTimer = setInterval(() => {
        if (polling) return;
        polling = true;
        void poll()
          .catch((e: unknown) => log.error({ err: e }, "reading FRR state failed"))
          .finally(() => (polling = false));
      }, pollMs);
      schedule(0);
      return Promise.resolve();
    },
    async handoff() {
      if (applied === undefined) return;
      draining = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await running;
      const t0 = Date.now();
      await runNow();
      log.info({ withdrawMs: Date.now() - t0, waitMs: drainMs }, "drain: prefixes withdrawn, waiting for the routers");
      await new Promise((r) => setTimeout(r, drainMs));
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      if (pollTimer !== undefined) clearInterval(pollTimer);
      for (const u of unsubscribe) u();
      await running;
      slices.detach();
      await Promise.all([node.stop(), slices.informer.stop()]);
      await events.flush();
    },
    telemetry: () => ({ bgpSessions: sessions }),
    readiness(): ProbeResult {
      const problem = lastApplyError ?? frrError;
      return problem === undefined || !isBgpConfigured(config)
        ? { ok: true, reasons: [] }
        : { ok: false, reasons: [`bgp: ${problem.message} [${problem.code}]`] };
    },
    loops(): readonly LoopReport[] {
      return [
        {
          loop: "bgp evaluation",
          busyForMs: busySince === undefined ? undefined : Date.now() - busySince,
          stallMs: ctx.stallMs ?? 120_000,
        },
      ];
    },
  };
}
