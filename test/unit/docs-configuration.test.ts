// docs/configuration.md is the pool reference: its field table must name every property of the pool schema
// (config/schema.json, generated from the zod schema), nested ones included, and nothing the schema lacks, so
// the page cannot drift from what the daemon accepts.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface SchemaNode {
  readonly type?: string;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
}

const schema = JSON.parse(readFileSync(new URL("../../config/schema.json", import.meta.url), "utf8")) as SchemaNode;
const page = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");

// A Kubernetes label selector is documented once, in prose, as a whole; its matchLabels/matchExpressions are not
// pool fields of their own.
const isLabelSelector = (n: SchemaNode): boolean =>
  n.properties !== undefined && Object.keys(n.properties).sort().join(",") === "matchExpressions,matchLabels";

/** Every property path of a pool, parents before children: `announce`, `announce.gratuitous`, … */
function fieldsOf(node: SchemaNode, prefix = ""): { path: string; node: SchemaNode }[] {
  const out: { path: string; node: SchemaNode }[] = [];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = prefix + name;
    out.push({ path, node: child });
    if (isLabelSelector(child)) continue;
    out.push(...fieldsOf(child, `${path}.`));
    if (child.items?.properties !== undefined) out.push(...fieldsOf(child.items, `${path}.`));
  }
  return out;
}

/** The rows of the table under "### Pool fields": field path → default cell. */
function tableRows(): Map<string, string> {
  const section = page.split(/^### Pool fields$/m)[1]?.split(/^#/m)[0] ?? "";
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^\| `([^`]+)` \| ([^|]*) \|/.exec(line);
    if (m?.[1] !== undefined) rows.set(m[1], (m[2] ?? "").trim());
  }
  return rows;
}

const pool = schema.items;
const fields = pool === undefined ? [] : fieldsOf(pool);
const rows = tableRows();

describe("docs/configuration.md pool field table", () => {
  it("finds the schema's pool fields and the table", () => {
    expect(fields.map((f) => f.path)).toEqual(
      expect.arrayContaining(["name", "serviceAllocation.namespaces", "announce.gratuitous.intervalMs"]),
    );
    expect(rows.size).toBeGreaterThan(0);
  });

  it.each(fields.map((f) => ({ path: f.path, node: f.node })))("has a row for $path", ({ path, node }) => {
    expect(rows.has(path), `no row for \`${path}\` in docs/configuration.md`).toBe(true);
    // A scalar default in the schema is the default the table gives.
    const d = node.default;
    if (d !== undefined && (typeof d !== "object" || d === null)) {
      expect(rows.get(path)).toBe(`\`${JSON.stringify(d)}\``);
    }
  });

  it("has no row for a field the schema lacks", () => {
    const known = new Set(fields.map((f) => f.path));
    expect([...rows.keys()].filter((r) => !known.has(r))).toEqual([]);
  });
});
