// The Helm chart as data for scripts and tests: where it is, its digest, rendering it with the shared
// helm-template tool, and turning a render into deploy/manifests/lodestone.yaml.
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { DEFAULT_NAMESPACE } from "../../src/core/well-known.ts";

const run = promisify(execFile);

export const repoRoot = resolve(import.meta.dirname, "../..");
export const chartDir = join(repoRoot, "deploy/helm/lodestone");
export const manifestPath = join(repoRoot, "deploy/manifests/lodestone.yaml");
export const valuesSchemaPath = join(chartDir, "values.schema.json");
export const poolSchemaPath = join(repoRoot, "config/schema.json");
export const manifestRelease = { name: "lodestone", namespace: DEFAULT_NAMESPACE } as const;

/**
 * The helm-template tool (a `helm template` look-alike; no helm binary can be installed here): $LODESTONE_HELM_TEMPLATE,
 * else ../shared/tools/helm-template/run next to the repository. undefined when neither exists (a clean clone
 * on a machine without the shared tools): tests that render then skip, and the drift test falls back to the
 * digest. LODESTONE_HELM_TEMPLATE=none pretends it is missing.
 */
export function findHelmTemplate(): string | undefined {
  if (process.env["LODESTONE_HELM_TEMPLATE"] === "none") return undefined; // to try the fallbacks
  const candidates = [process.env["LODESTONE_HELM_TEMPLATE"], join(repoRoot, "../shared/tools/helm-template/run")];
  return candidates.find((c): c is string => c !== undefined && c !== "" && existsSync(c));
}

/** sha256 over every chart file (sorted relative path, NUL, content, NUL): changes whenever the chart does. */
export function chartDigest(dir: string = chartDir): string {
  const hash = createHash("sha256");
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();
  for (const file of files) {
    hash
      .update(file)
      .update("\0")
      .update(readFileSync(join(dir, file)))
      .update("\0");
  }
  return hash.digest("hex");
}

type JsonObject = Record<string, unknown>;

/**
 * values.schema.json with `definitions.pool` set to one pool of config/schema.json (generated from the zod schema
 * the daemon parses with), so `helm install` rejects exactly the pools the daemon would.
 */
export function valuesSchemaWithPools(): JsonObject {
  const values = JSON.parse(readFileSync(valuesSchemaPath, "utf8")) as JsonObject & { definitions: JsonObject };
  const pools = JSON.parse(readFileSync(poolSchemaPath, "utf8")) as { items: JsonObject };
  return { ...values, definitions: { ...values.definitions, pool: pools.items } };
}

export interface RenderOptions {
  readonly release?: string;
  readonly namespace?: string;
  readonly valuesFiles?: readonly string[];
  readonly set?: readonly string[];
}

export type RenderResult = { ok: true; yaml: string } | { ok: false; error: string };

/** Renders the chart; a schema violation or template error comes back as {ok: false, error: the tool's stderr}. */
export async function renderChart(tool: string, options: RenderOptions = {}): Promise<RenderResult> {
  const args = [
    options.release ?? manifestRelease.name,
    chartDir,
    "-n",
    options.namespace ?? manifestRelease.namespace,
  ];
  for (const f of options.valuesFiles ?? []) args.push("-f", f);
  for (const s of options.set ?? []) args.push("--set", s);
  // flock: the first use builds the tool's binary; parallel test files must not build it at the same time.
  try {
    const { stdout } = await run("flock", ["/tmp/lodestone-helm-template.lock", tool, ...args], {
      maxBuffer: 16 << 20,
      timeout: 600_000,
    });
    return { ok: true, yaml: stdout };
  } catch (err: unknown) {
    const e = err as { stderr?: string; message?: string };
    return { ok: false, error: e.stderr !== undefined && e.stderr !== "" ? e.stderr : String(e.message) };
  }
}

// Helm's install order (pkg/releaseutil/kind_sorter.go), so `kubectl apply -f` creates what others refer to first.
const installOrder = [
  "Namespace",
  "PodDisruptionBudget",
  "ServiceAccount",
  "Secret",
  "ConfigMap",
  "CustomResourceDefinition",
  "ClusterRole",
  "ClusterRoleBinding",
  "Role",
  "RoleBinding",
  "Service",
  "DaemonSet",
  "Deployment",
];

/** Splits a render into single documents, each keeping the template it came from as a `# Source:` line. */
export function splitRender(yaml: string): { source: string; kind: string; body: string }[] {
  const docs: { source: string; kind: string; body: string }[] = [];
  let source = "";
  for (const chunk of yaml.split(/^---\n/m)) {
    const match = /^# Source: (.*)\n/.exec(chunk);
    if (match?.[1] !== undefined) source = match[1];
    const body = chunk.replace(/^# Source: .*\n/, "").trim();
    if (body === "") continue;
    docs.push({ source, kind: /^kind: (\S+)$/m.exec(body)?.[1] ?? "", body });
  }
  return docs;
}

/** deploy/manifests/lodestone.yaml: a header with the chart digest, the Namespace, then the render in install order. */
export function manifestFromRender(yaml: string, digest: string): string {
  const rank = (kind: string): number => {
    const i = installOrder.indexOf(kind);
    return i < 0 ? installOrder.length : i;
  };
  const docs = splitRender(yaml).sort((a, b) => rank(a.kind) - rank(b.kind));
  const namespace = [
    "apiVersion: v1",
    "kind: Namespace",
    "metadata:",
    `  name: ${manifestRelease.namespace}`,
    "  labels:",
    "    # The speaker DaemonSet uses the host network and NET_RAW, which the baseline Pod Security Standard forbids.",
    "    pod-security.kubernetes.io/enforce: privileged",
  ].join("\n");
  const header = [
    "# Lodestone, for `kubectl apply -f`: the Helm chart deploy/helm/lodestone rendered with its default values",
    `# (release ${manifestRelease.name}, namespace ${manifestRelease.namespace}). Generated by \`npm run gen:manifests\`; do not edit.`,
    `# chart-digest: sha256:${digest}`,
  ].join("\n");
  const parts = [namespace, ...docs.map((d) => `# Source: ${d.source}\n${d.body}`)];
  return `${header}\n---\n${parts.join("\n---\n")}\n`;
}

/** The digest recorded in a generated manifest's header, or undefined. */
export function recordedDigest(manifest: string): string | undefined {
  return /^# chart-digest: sha256:([0-9a-f]{64})$/m.exec(manifest)?.[1];
}
