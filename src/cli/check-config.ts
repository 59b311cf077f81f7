import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import type { ConfigMapInput, Pool } from "../core/config.ts";
import { METALLB_KEY, mergePools, parsePoolConfigMap, poolCapacity, POOLS_KEY } from "../core/config.ts";
import { isRestricted } from "../core/allocation-rules.ts";
import { ConfigCodes, ConfigWarningCodes, configMessages } from "../core/errors.ts";
import { nodeAddressConflicts, type NodeAddresses } from "../core/node-address-conflicts.ts";
import { createKubeClient, loadKubeConfig } from "../kube/client.ts";
import { listNodeAddresses } from "../kube/node-addresses.ts";
import { kubeconfigPath } from "./kubeconfig-path.ts";
import { parseMetalLBObjects, type MetalLBObject } from "../core/metallb-crds.ts";
import type { Family } from "../core/ip.ts";
import { familyName, formatIp } from "../core/ip.ts";
import { parseFlags } from "./flags.ts";
import type { Command } from "./main.ts";
import { POOLS_LABEL } from "../core/well-known.ts";
import { BGP_KEY, type BgpConfig, mergeBgp, parseBgpConfigMap } from "../core/bgp-config.ts";

const help = `Usage: lodestone check-config [--kubeconfig PATH | --offline] FILE...

Validates pool ConfigMaps offline: Lodestone (data key ${POOLS_KEY}, BGP in ${BGP_KEY}) and MetalLB <= 0.12 (data
key ${METALLB_KEY}).
Also MetalLB >= 0.13 IPAddressPool and L2Advertisement objects (metallb.io/v1beta1), read as the daemon reads
them; MetalLB's other custom resources (BGP) are reported as not supported.
Each FILE may hold several YAML documents or a kind: List; other kinds and ConfigMaps without pool data are skipped.
Prints every problem as FILE: ConfigMap NAMESPACE/NAME: PATH: MESSAGE [CODE] (or IPAddressPool / L2Advertisement
NAMESPACE/NAME), then warnings the same way with
"warning: " before PATH (they change nothing), then the pools with their sizes.
When a cluster is reachable it lists the Nodes and warns about pools holding a node's InternalIP or ExternalIP
(${ConfigWarningCodes.nodeAddressInPool}); when Nodes cannot be listed it says why in one line and checks the rest.

  --kubeconfig PATH   cluster to read Nodes from (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
  --offline           do not contact a cluster (no node address check)

Exit status: 0 valid (warnings or not), 1 problems found, 2 usage error.`;

/** The Nodes to check pool addresses against, or why there are none (said in one line). */
export type NodeCheck =
  | { readonly kind: "listed"; readonly nodes: readonly NodeAddresses[] }
  | { readonly kind: "skipped"; readonly why: string };

interface Found {
  readonly file: string;
  readonly cm: ConfigMapInput;
}

export interface CheckReport {
  readonly lines: readonly string[];
  readonly exitCode: 0 | 1;
}

/** Checks the text of several manifest files together (duplicates and overlaps span files); pure but for text in. */
export function checkConfigTexts(
  files: readonly { readonly name: string; readonly text: string }[],
  nodes?: NodeCheck,
): CheckReport {
  const lines: string[] = [];
  const found: Found[] = [];
  const crdPools: { file: string; obj: MetalLBObject }[] = [];
  const crdAds: { file: string; obj: MetalLBObject }[] = [];
  let problems = 0;
  for (const { name, text } of files) {
    const docs = parseAllDocuments(text);
    const list = Array.isArray(docs) ? docs : [docs];
    for (const doc of list) {
      for (const e of doc.errors) {
        problems++;
        lines.push(
          `${name}: line ${e.linePos?.[0].line ?? "?"}: malformed YAML: ${(e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")} [LODESTONE_E_YAML_SYNTAX]`,
        );
      }
      if (doc.errors.length > 0) continue;
      for (const obj of objects(doc.toJS())) {
        const cm = asPoolConfigMap(obj);
        if (cm !== undefined) found.push({ file: name, cm });
        const read = metallbReadable(obj);
        if (read?.kind === "IPAddressPool") crdPools.push({ file: name, obj: read.obj });
        if (read?.kind === "L2Advertisement") crdAds.push({ file: name, obj: read.obj });
        const crd = read === undefined ? metallbResource(obj) : undefined;
        if (crd !== undefined) {
          problems++;
          lines.push(`${name}: ${crd}`);
        }
      }
    }
  }
  const fileOf = new Map(found.map((f) => [`${f.cm.namespace}/${f.cm.name}`, f.file]));
  const parsed = found.map((f) => ({ file: f.file, result: parsePoolConfigMap(f.cm) }));
  for (const c of crdPools) fileOf.set(`IPAddressPool ${c.obj.namespace}/${c.obj.name}`, c.file);
  for (const c of crdAds) fileOf.set(`L2Advertisement ${c.obj.namespace}/${c.obj.name}`, c.file);
  const crd = parseMetalLBObjects(
    crdPools.map((c) => c.obj),
    crdAds.map((c) => c.obj),
  );
  const merged = mergePools([...parsed.map((p) => p.result), crd]);
  const bgpParts = found.map((f) => parseBgpConfigMap(f.cm)).filter((b) => b !== undefined);
  const bgp = mergeBgp(
    bgpParts.map((b) => b.config),
    new Set(merged.pools.map((p) => p.name)),
  );
  for (const p of [
    ...parsed.flatMap((x) => x.result.problems),
    ...crd.problems,
    ...merged.problems,
    ...bgpParts.flatMap((b) => b.problems),
    ...bgp.problems,
  ]) {
    problems++;
    lines.push(`${fileOf.get(p.configMap) ?? "?"}: ${sourceName(p.configMap)}: ${p.path}: ${p.message} [${p.code}]`);
  }
  let warnings = 0;
  for (const w of parsed.flatMap((x) => x.result.warnings)) {
    warnings++;
    lines.push(
      `${fileOf.get(w.configMap) ?? "?"}: ConfigMap ${w.configMap}: warning: ${w.path}: ${w.message} [${w.code}]`,
    );
  }
  if (nodes?.kind === "listed") {
    for (const w of nodeAddressConflicts(merged.pools, nodes.nodes)) {
      warnings++;
      lines.push(
        `${fileOf.get(w.configMap) ?? "?"}: ${sourceName(w.configMap)}: warning: ${w.path}: ${w.message} [${w.code}]`,
      );
    }
  }
  if (nodes?.kind === "skipped") lines.push(`node addresses not checked: ${nodes.why}`);
  if (found.length === 0 && crdPools.length === 0) {
    problems++;
    lines.push(
      `${files.map((f) => f.name).join(", ")}: no pool ConfigMap found (a ConfigMap with data key ${POOLS_KEY} or ${METALLB_KEY}, or labelled ${POOLS_LABEL})`,
    );
  }
  if (lines.length > 0) lines.push("");
  lines.push(
    ...summary(
      merged.pools,
      parsed.map((p) => p.result.format),
    ),
    ...bgpSummary(bgp.config),
    ...(nodes?.kind === "listed" ? [`Node addresses: ${nodes.nodes.length} node(s) checked against the pools.`] : []),
  );
  const warned = warnings === 0 ? "" : ` (${warnings} warning${warnings === 1 ? "" : "s"})`;
  lines.push(
    problems === 0
      ? `Configuration is valid${warned}.`
      : `${problems} problem${problems === 1 ? "" : "s"} found${warned}.`,
  );
  return { lines, exitCode: problems === 0 ? 0 : 1 };
}

function summary(pools: readonly Pool[], formats: readonly string[]): string[] {
  if (pools.length === 0) return ["No usable pools."];
  const legacy = formats.filter((f) => f === "metallb").length;
  const head = `Pools (${pools.length})${legacy > 0 ? `, ${legacy} ConfigMap(s) in MetalLB <= 0.12 format converted` : ""}:`;
  const rows = pools.map((p) => [
    p.name,
    sourceName(p.configMap),
    ...([4, 6] as Family[]).map((f) => `${familyName(f)} ${formatSize(poolCapacity(p, f))}`),
    [
      p.autoAssign ? "auto-assign" : "on request only",
      p.priority === undefined ? "" : `priority ${p.priority}`,
      isRestricted(p) ? "restricted" : "",
      p.announce.advertisements?.length === 0 ? "not announced (no L2Advertisement selects it)" : "",
    ]
      .filter((s) => s !== "")
      .join(", "),
  ]);
  const widths = rows.reduce((w, row) => row.map((cell, i) => Math.max(cell.length, w[i] ?? 0)), [] as number[]);
  return [
    head,
    ...rows.map(
      (row) =>
        `  ${row
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd()}`,
    ),
  ];
}

function bgpSummary(c: BgpConfig): string[] {
  if (c.peers.length + c.advertisements.length + c.bfdProfiles.length === 0) return [];
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  return [
    `BGP: ${n(c.peers.length, "peer")}, ${n(c.advertisements.length, "advertisement")}, ${n(c.bfdProfiles.length, "BFD profile")}`,
    ...c.peers.map(
      (p) =>
        `  peer ${p.name}: AS ${p.peerASN} at ${formatIp(p.address)}${p.port === 179 ? "" : ` port ${p.port}`}, my AS ${p.myASN}${p.bfdProfile === undefined ? "" : `, BFD ${p.bfdProfile}`}`,
    ),
  ];
}

/** A pool's source as lines name it: a CRD pool's is its kind and name already, a ConfigMap's gets the kind. */
const sourceName = (source: string): string =>
  /^(IPAddressPool|L2Advertisement) /.test(source) ? source : `ConfigMap ${source}`;

/** Exact counts; blocks of 2^32 and more read better as powers of two. */
export function formatSize(n: bigint): string {
  if (n >= 1n << 32n && (n & (n - 1n)) === 0n) return `2^${n.toString(2).length - 1}`;
  return n.toString();
}

function* objects(value: unknown): Generator<Record<string, unknown>> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return;
  const obj = value as Record<string, unknown>;
  if (obj["kind"] === "List" && Array.isArray(obj["items"])) {
    for (const item of obj["items"]) yield* objects(item);
  } else {
    yield obj;
  }
}

const stringMap = (v: unknown): Record<string, string> | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)]))
    : undefined;

function metadataOf(obj: Record<string, unknown>): { namespace: string; name: string; raw: Record<string, unknown> } {
  const m = obj["metadata"];
  const raw = (typeof m === "object" && m !== null ? m : {}) as Record<string, unknown>;
  return {
    namespace: typeof raw["namespace"] === "string" ? raw["namespace"] : "default",
    name: typeof raw["name"] === "string" ? raw["name"] : "(unnamed)",
    raw,
  };
}

/** An IPAddressPool or L2Advertisement of metallb.io/v1beta1: what the daemon reads of MetalLB's CRDs. */
function metallbReadable(
  obj: Record<string, unknown>,
): { kind: "IPAddressPool" | "L2Advertisement"; obj: MetalLBObject } | undefined {
  const kind = obj["kind"];
  if (obj["apiVersion"] !== "metallb.io/v1beta1" || (kind !== "IPAddressPool" && kind !== "L2Advertisement"))
    return undefined;
  const meta = metadataOf(obj);
  return {
    kind,
    obj: {
      namespace: meta.namespace,
      name: meta.name,
      labels: stringMap(meta.raw["labels"]) ?? {},
      spec: obj["spec"] ?? {},
    },
  };
}

/**
 * MetalLB's other custom resources (BGP), which Lodestone does not read: say so for each one
 * rather than skip it like an unrelated kind (a file of them would otherwise read as "no pool ConfigMap found").
 */
function metallbResource(obj: Record<string, unknown>): string | undefined {
  const apiVersion = obj["apiVersion"];
  if (typeof apiVersion !== "string" || !apiVersion.startsWith("metallb.io/")) return undefined;
  const meta = metadataOf(obj);
  const why = `Lodestone reads IPAddressPool and L2Advertisement (v1beta1) only, and announces with layer 2 (see docs/migrating-from-metallb.md)`;
  return `${String(obj["kind"])} ${meta.namespace}/${meta.name}: ${configMessages.unsupported(`MetalLB custom resource ${apiVersion}`, why)} [${ConfigCodes.unsupported}]`;
}

/** A ConfigMap that carries pools (by label or data key), as the parser's input; undefined for anything else. */
function asPoolConfigMap(obj: Record<string, unknown>): ConfigMapInput | undefined {
  if (obj["kind"] !== "ConfigMap") return undefined;
  const meta = metadataOf(obj);
  const labels = stringMap(meta.raw["labels"]) ?? {};
  const data = stringMap(obj["data"]) ?? {};
  if (
    labels[POOLS_LABEL] === undefined &&
    data[POOLS_KEY] === undefined &&
    data[METALLB_KEY] === undefined &&
    data[BGP_KEY] === undefined
  )
    return undefined;
  return {
    namespace: meta.namespace,
    name: meta.name,
    labels,
    // A MetalLB ConfigMap is read as such, unlabelled; the label rule applies to the Lodestone format.
    data,
  };
}

export const command: Command = {
  summary: "validate pool ConfigMap manifests (Lodestone and MetalLB formats); warn about pools holding node IPs",
  async run(args) {
    const parsed = parseFlags(
      args,
      { kubeconfig: { type: "string" }, offline: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      { positionals: true },
    );
    if (!parsed.ok) {
      console.error(`lodestone check-config: ${parsed.error}\n\n${help}`);
      return 2;
    }
    if (parsed.values.help === true) {
      console.log(help);
      return 0;
    }
    if (parsed.positionals.length === 0) {
      console.error(`lodestone check-config: no FILE given\n\n${help}`);
      return 2;
    }
    const files: { name: string; text: string }[] = [];
    for (const name of parsed.positionals) {
      try {
        files.push({ name, text: readFileSync(name === "-" ? 0 : name, "utf8") });
      } catch (e: unknown) {
        const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
        console.error(
          `lodestone check-config: cannot read ${name}: ${code === "ENOENT" ? "no such file" : e instanceof Error ? e.message : String(e)}`,
        );
        return 2;
      }
    }
    if (parsed.values.offline === true && parsed.values.kubeconfig !== undefined) {
      console.error(`lodestone check-config: --offline and --kubeconfig exclude each other\n\n${help}`);
      return 2;
    }
    const nodes: NodeCheck =
      parsed.values.offline === true
        ? { kind: "skipped", why: "--offline" }
        : await readNodes(parsed.values.kubeconfig);
    const report = checkConfigTexts(files, nodes);
    console.log(report.lines.join("\n"));
    return report.exitCode;
  },
};

/** The cluster's Nodes, or why not: a missing cluster or a 403 skips the check, it is not a problem of the files. */
async function readNodes(flag: string | undefined): Promise<NodeCheck> {
  const kubeconfig = kubeconfigPath(flag);
  if (kubeconfig.none) return { kind: "skipped", why: "no cluster (pass --kubeconfig PATH or set KUBECONFIG)" };
  let client;
  try {
    client = createKubeClient(await loadKubeConfig(kubeconfig.path));
  } catch (e: unknown) {
    return { kind: "skipped", why: `cannot load kubeconfig: ${e instanceof Error ? e.message : String(e)}` };
  }
  try {
    const r = await listNodeAddresses(client);
    return r.ok ? { kind: "listed", nodes: r.value } : { kind: "skipped", why: r.error };
  } finally {
    await client.close();
  }
}
