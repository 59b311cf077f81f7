import { readStatus, StatusReadError } from "../app/status-report.ts";
import { renderStatusTable, statusJson } from "../core/status-report.ts";
import { createKubeClient, loadKubeConfig } from "../kube/client.ts";
import { DEFAULT_METALLB_NAMESPACE, DEFAULT_NAMESPACE } from "../core/well-known.ts";
import { parseFlags } from "./flags.ts";
import { kubeconfigPath } from "./kubeconfig-path.ts";
import { renderSessionTable } from "../core/bgp-state.ts";
import { createFrr } from "../net/frr.ts";
import type { Command } from "./main.ts";

const help = `Usage: lodestone status [--kubeconfig PATH] [--namespace NS] [--metallb-namespace NS] [-o table|json]
       lodestone status --bgp [--frr-pathspace NAME] [-o table|json]

Pools with their usage, and every LoadBalancer Service with its IPs, pool, announcing node and any failure.
With --bgp, this node's BGP sessions as its FRR reports them (run it in the speaker container): peer, state,
prefixes sent, BFD and the problem, if any (docs/bgp.md).

  --kubeconfig PATH   kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
  --namespace NS      the daemon's namespace, where the pool ConfigMaps live (default: $POD_NAMESPACE,
                      else ${DEFAULT_NAMESPACE})
  --metallb-namespace NS  where MetalLB's IPAddressPools and L2Advertisements are read, if their CRDs exist
                      (default ${DEFAULT_METALLB_NAMESPACE}; --metallb-namespace= skips them)
  -o, --output FMT    table (default) or json`;

export const command: Command = {
  summary: "show pools with usage and LoadBalancer Services with IPs, pool, node and failures",
  async run(args) {
    const parsed = parseFlags(args, {
      kubeconfig: { type: "string" },
      namespace: { type: "string" },
      "metallb-namespace": { type: "string" },
      output: { type: "string", short: "o" },
      bgp: { type: "boolean" },
      "frr-pathspace": { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (!parsed.ok) {
      console.error(`lodestone status: ${parsed.error}\n\n${help}`);
      return 2;
    }
    const values = { ...parsed.values, output: parsed.values.output ?? "table" };
    if (values.help === true) {
      console.log(help);
      return 0;
    }
    if (values.output !== "table" && values.output !== "json") {
      console.error(`lodestone status: --output must be table or json, not "${values.output}"`);
      return 2;
    }
    if (values.bgp === true) return bgpStatus(values["frr-pathspace"], values.output);
    const kubeconfig = kubeconfigPath(values.kubeconfig);
    if (kubeconfig.none) {
      console.error("lodestone status: no cluster: pass --kubeconfig PATH or set KUBECONFIG (not running in a pod)");
      return 1;
    }
    let client;
    try {
      client = createKubeClient(await loadKubeConfig(kubeconfig.path));
    } catch (e: unknown) {
      console.error(`lodestone status: cannot load kubeconfig: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
    const metallb = values["metallb-namespace"] ?? DEFAULT_METALLB_NAMESPACE;
    try {
      const report = await readStatus(client, {
        namespace: values.namespace ?? process.env["POD_NAMESPACE"] ?? DEFAULT_NAMESPACE,
        ...(metallb === "" ? {} : { metallbNamespace: metallb }),
      });
      console.log(values.output === "json" ? JSON.stringify(statusJson(report), null, 2) : renderStatusTable(report));
      return 0;
    } catch (e: unknown) {
      if (!(e instanceof StatusReadError)) throw e;
      console.error(`lodestone status: cannot read the cluster: ${e.message}`);
      return 1;
    } finally {
      await client.close();
    }
  },
};

async function bgpStatus(pathspace: string | undefined, output: "table" | "json"): Promise<number> {
  const frr = createFrr(pathspace === undefined ? {} : { pathspace });
  const r = await frr.sessions(() => false);
  if (!r.ok) {
    console.error(`lodestone status: ${r.error.message} [${r.error.code}]`);
    return 1;
  }
  // Without the daemon's configuration a never-connected session cannot be told from an MD5 mismatch.
  const sessions = r.value.map((s) =>
    s.problem === "unreachable" ? { ...s, problem: "unreachable-or-password" as const } : s,
  );
  console.log(output === "json" ? JSON.stringify(sessions, null, 2) : renderSessionTable(sessions));
  return 0;
}
