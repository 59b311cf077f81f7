import type { LabCluster } from "../lab/cluster.ts";
import { startLabCluster } from "../lab/cluster.ts";

/**
 * The demo's second half (root only): three nodes in network namespaces, each running `lodestone run` with the
 * speaker, a client on the same LAN, one LoadBalancer Service. The client resolves the VIP to its owner's MAC
 * and connects over TCP; the owner's daemon is SIGKILLed and the demo prints how long until the client's
 * connections reach the next node. Only documentation ranges, only namespaces it creates and removes.
 */
export async function runFailoverLab(print: (text: string) => void, signal: AbortSignal): Promise<void> {
  print("\n== Failover lab: three nodes and a client in network namespaces (documentation ranges only)");
  // Ctrl-C ends the lab at once: every step races the abort, and the cluster (once started) is destroyed.
  let stopWaiting = (): void => undefined;
  const interrupted = new Promise<never>((_, reject) => {
    stopWaiting = () => reject(new Error("interrupted"));
    if (signal.aborted) stopWaiting();
  });
  interrupted.catch(() => undefined);
  signal.addEventListener("abort", stopWaiting);
  const starting = startLabCluster({ area: "demo", nodes: 3 });
  try {
    const cluster = await Promise.race([starting, interrupted]);
    await Promise.race([show(cluster, print), interrupted]);
  } finally {
    signal.removeEventListener("abort", stopWaiting);
    const cluster = await starting.catch(() => undefined);
    await cluster?.destroy();
  }
}

async function show(cluster: LabCluster, print: (text: string) => void): Promise<void> {
  await cluster.waitReady(60_000);
  print(`  nodes: ${cluster.nodes.map((n) => `${n.name} ${n.lanIp} (${n.host.mac})`).join(", ")}`);
  const ip = await cluster.createService("web", {}, 30_000);
  const owner = await waitFor(() => cluster.announcingNode("web"), 15_000);
  const answeredBy = await cluster.whoAnswers(ip, 2_000);
  const ownerNode = cluster.nodes.find((n) => n.name === owner);
  const neighbours = await cluster.lab.neighbours(cluster.clientHost.ns);
  const entry = neighbours.find((n) => n.ip === ip);
  print(`  Service default/web got ${ip}; announced by ${owner ?? "?"} (MAC ${ownerNode?.host.mac ?? "?"})`);
  print(
    `  client: ip neigh ${ip} -> ${entry?.mac ?? "(no entry)"}; TCP ${ip}:8080 answered by ${answeredBy ?? "nobody"}`,
  );
  const r = await cluster.measureFailover("web", ip, "sigkill", { timeoutMs: 10_000 });
  print(
    r.failoverMs === undefined
      ? `Failover after SIGKILL of the owner: none within 10 s (from ${r.from})`
      : `Failover after SIGKILL of the owner: ${Math.round(r.failoverMs)} ms (${r.from} -> ${r.to ?? "?"}; ` +
          `${r.failedConnections} client connections failed meanwhile; two nodes answered ARP for at most ` +
          `${Math.round(r.doubleAnswerMs)} ms)`,
  );
  const after = (await cluster.lab.neighbours(cluster.clientHost.ns)).find((n) => n.ip === ip);
  print(`  client: ip neigh ${ip} -> ${after?.mac ?? "(no entry)"} (the gratuitous ARP moved it)`);
}

async function waitFor<T>(f: () => Promise<T | undefined> | undefined, timeoutMs: number): Promise<T | undefined> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}
