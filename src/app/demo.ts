import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { createPauses } from "../core/pause.ts";
import { renderStatusTable } from "../core/status-report.ts";
import type { KubeClient } from "../kube/client.ts";
import { createKubeClient, responseMessage } from "../kube/client.ts";
import { systemClock } from "../kube/lease.ts";
import { startSandbox } from "../sandbox/index.ts";
import type { Daemon } from "./daemon.ts";
import { startDaemon } from "./daemon.ts";
import { readStatus } from "./status-report.ts";
import {
  DEFAULT_NAMESPACE,
  LOAD_BALANCER_IPS_ANNOTATION,
  POOLS_LABEL,
  SHARING_KEY_ANNOTATION,
} from "../core/well-known.ts";

const execFileAsync = promisify(execFile);

/** The demo's cluster: one pool ConfigMap and a handful of LoadBalancer Services showing what Lodestone does. */
export const DEMO_NAMESPACE = "demo";
export const DAEMON_NAMESPACE = DEFAULT_NAMESPACE;

export const demoPools = `# Two pools from the documentation ranges (RFC 5737 / RFC 3849).
- name: lan
  addresses:
    - 192.0.2.240/28
    - 2001:db8:0:1::240-2001:db8:0:1::24f
- name: reserved
  autoAssign: false            # only for Services that ask for it
  addresses: [198.51.100.10-198.51.100.19]
  serviceAllocation:
    namespaces: [demo]
`;

interface DemoService {
  readonly name: string;
  readonly what: string;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly spec: Readonly<Record<string, unknown>>;
  /** False when the demo shows a refusal instead of an address. */
  readonly gets: boolean;
}

const tcp = (port: number): { name: string; port: number; protocol: string } => ({
  name: `tcp-${port}`,
  port,
  protocol: "TCP",
});

export const demoServices: readonly DemoService[] = [
  { name: "web", what: "IPv4", spec: { ports: [tcp(80), tcp(443)] }, gets: true },
  {
    name: "web6",
    what: "IPv6 only",
    spec: { ipFamilies: ["IPv6"], ipFamilyPolicy: "SingleStack", ports: [tcp(80)] },
    gets: true,
  },
  {
    name: "dual",
    what: "dual-stack: one IPv4 and one IPv6 from the same pool",
    spec: { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"], ports: [tcp(8080)] },
    gets: true,
  },
  {
    name: "dns-tcp",
    what: "shares one IP with dns-udp (same sharing key, different protocols)",
    annotations: { [SHARING_KEY_ANNOTATION]: "dns" },
    spec: { ports: [tcp(53)] },
    gets: true,
  },
  {
    name: "dns-udp",
    what: "shares one IP with dns-tcp",
    annotations: { [SHARING_KEY_ANNOTATION]: "dns" },
    spec: { ports: [{ name: "udp-53", port: 53, protocol: "UDP" }] },
    gets: true,
  },
  {
    name: "legacy",
    what: "MetalLB annotation (drop-in): pool `reserved`, which is not auto-assigned",
    annotations: { "metallb.universe.tf/address-pool": "reserved" },
    spec: { ports: [tcp(5432)] },
    gets: true,
  },
  {
    name: "outside",
    what: "asks for 203.0.113.7, which no pool holds: refused with a readable reason",
    annotations: { [LOAD_BALANCER_IPS_ANNOTATION]: "203.0.113.7" },
    spec: { ports: [tcp(80)] },
    gets: false,
  },
];

export interface DemoOptions {
  /** Where the demo's report goes (stdout in the CLI). */
  readonly print: (text: string) => void;
  /** Aborted on Ctrl-C: the demo stops waiting and cleans up. */
  readonly signal: AbortSignal;
  /** How long to wait for the daemon to assign every address. */
  readonly timeoutMs: number;
  /** Run the three-node failover lab when root (default true). */
  readonly lab: boolean;
  /** Runs the lab and returns the lines to print; absent when no lab is available in this build. */
  readonly runLab?: (print: (text: string) => void, signal: AbortSignal) => Promise<void>;
}

class DemoError extends Error {
  override readonly name = "DemoError";
}

async function must(client: KubeClient, method: "POST" | "GET", path: string, body?: unknown): Promise<unknown> {
  const res = await client.request({ method, path, ...(body === undefined ? {} : { body }) });
  if (res.status >= 300) throw new DemoError(`${method} ${path}: ${responseMessage(res)}`);
  return res.body;
}

async function createObjects(client: KubeClient): Promise<void> {
  for (const name of [DAEMON_NAMESPACE, DEMO_NAMESPACE]) {
    await must(client, "POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
  }
  await must(client, "POST", `/api/v1/namespaces/${DAEMON_NAMESPACE}/configmaps`, {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "lodestone-pools", namespace: DAEMON_NAMESPACE, labels: { [POOLS_LABEL]: "true" } },
    data: { "pools.yaml": demoPools },
  });
  for (const s of demoServices) {
    await must(client, "POST", `/api/v1/namespaces/${DEMO_NAMESPACE}/services`, {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: s.name, namespace: DEMO_NAMESPACE, ...(s.annotations ? { annotations: s.annotations } : {}) },
      spec: { type: "LoadBalancer", selector: { app: s.name }, ...s.spec },
    });
  }
}

/** Waits until every Service that should get an address has one and the refused one has its failure Event. */
async function waitForAllocations(client: KubeClient, o: DemoOptions): Promise<void> {
  const deadline = performance.now() + o.timeoutMs;
  const pauses = createPauses(systemClock.setTimer);
  const interrupted = (): void => pauses.stop();
  o.signal.addEventListener("abort", interrupted, { once: true });
  try {
    for (;;) {
      const report = await readStatus(client, { namespace: DAEMON_NAMESPACE });
      const byName = new Map(report.services.map((s) => [s.service, s]));
      const waiting = demoServices.filter((d) => {
        const row = byName.get(`${DEMO_NAMESPACE}/${d.name}`);
        return d.gets ? row?.state !== "allocated" : row?.state !== "failed";
      });
      if (waiting.length === 0) return;
      if (o.signal.aborted) throw new DemoError("interrupted");
      if (performance.now() > deadline) {
        throw new DemoError(`timed out waiting for ${waiting.map((w) => w.name).join(", ")}`);
      }
      await pauses.pause(100);
    }
  } finally {
    o.signal.removeEventListener("abort", interrupted);
  }
}

/** kubectl as a user would run it; asynchronous, since the API server it talks to lives in this process. */
async function kubectl(kubeconfigPath: string, args: readonly string[]): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync("kubectl", ["--kubeconfig", kubeconfigPath, ...args], { timeout: 20_000 });
    return stdout.trimEnd();
  } catch {
    return undefined;
  }
}

function section(o: DemoOptions, title: string, body: string): void {
  o.print(`\n== ${title}\n${body}`);
}

/**
 * The newcomer's path: an embedded API server, a pool ConfigMap, LoadBalancer Services, the daemon (speaker off:
 * it would send ARP in this machine's own network), then what a user looks at. As root it continues with the
 * three-node failover lab in network namespaces it creates and removes. Everything is cleaned up, also on Ctrl-C.
 */
export async function runDemo(o: DemoOptions): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), "lodestone-demo-"));
  const logFile = join(work, "daemon.log");
  const sandbox = await startSandbox({ kubeconfigPath: join(work, "kubeconfig") });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sandbox.kubeconfigYaml);
  const client = createKubeClient(kubeConfig);
  let daemon: Daemon | undefined;
  const logger = pino({ level: "info" }, pino.destination({ dest: logFile, sync: true }));
  try {
    o.print(`Lodestone demo: embedded Kubernetes API server at ${sandbox.url}`);
    o.print(`  kubeconfig (while the demo runs): ${sandbox.kubeconfigPath}`);
    await createObjects(client);
    section(o, `Pool ConfigMap ${DAEMON_NAMESPACE}/lodestone-pools (pools.yaml)`, demoPools.trimEnd());
    section(
      o,
      `LoadBalancer Services created in namespace ${DEMO_NAMESPACE}`,
      demoServices.map((s) => `  ${s.name.padEnd(8)} ${s.what}`).join("\n"),
    );

    const started = performance.now();
    daemon = await startDaemon(
      { kubeConfig, namespace: DAEMON_NAMESPACE, nodeName: "demo-node", component: "controller", metricsPort: 0 },
      logger,
    );
    o.print("\nStarted `lodestone run --component controller` (allocation only; the speaker needs its own network).");
    await waitForAllocations(client, o);
    o.print(`Every Service settled in ${Math.round(performance.now() - started)} ms (daemon start included).`);

    const get = await kubectl(sandbox.kubeconfigPath, ["get", "svc", "-n", DEMO_NAMESPACE]);
    if (get !== undefined) section(o, `kubectl get svc -n ${DEMO_NAMESPACE}`, get);
    for (const name of ["dual", "legacy", "outside"]) {
      const text = await kubectl(sandbox.kubeconfigPath, ["describe", "svc", name, "-n", DEMO_NAMESPACE]);
      if (text !== undefined) section(o, `kubectl describe svc ${name} -n ${DEMO_NAMESPACE}`, text);
    }
    if (get === undefined) o.print("\n(kubectl not found: skipped `kubectl get/describe`; `lodestone status` follows)");
    const report = await readStatus(client, { namespace: DAEMON_NAMESPACE });
    section(o, "lodestone status", renderStatusTable(report));

    if (!o.lab) {
      o.print("\nSkipped the failover lab (--no-lab).");
    } else if (process.getuid?.() !== 0) {
      o.print(
        "\nSkipped the three-node failover lab: it needs root to create network namespaces " +
          "(run `sudo npm run demo`). The speaker never runs in this machine's own network namespace.",
      );
    } else if (o.runLab === undefined) {
      o.print("\nSkipped the three-node failover lab: not available in this build.");
    } else {
      try {
        await o.runLab(o.print, o.signal);
      } catch (e: unknown) {
        // The lab drives real processes and links: report what went wrong in one line, clean up, exit 1.
        throw new DemoError(`failover lab: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    o.print("\nDemo done; cleaning up.");
    return 0;
  } catch (e: unknown) {
    if (!(e instanceof DemoError)) throw e;
    o.print(`\ndemo failed: ${e.message}`);
    const log = readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-20).join("\n");
    if (log !== "") section(o, "last lines of the daemon log", log);
    return 1;
  } finally {
    await daemon?.stop("demo finished");
    await client.close();
    await sandbox.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
