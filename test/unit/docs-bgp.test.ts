// docs/bgp.md is the bgp.yaml reference: its field tables must name every property of the schema
// (config/bgp-schema.json, generated from the zod schema), nested ones included, and nothing it lacks.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface SchemaNode {
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
  readonly anyOf?: readonly SchemaNode[];
}

const schema = JSON.parse(readFileSync(new URL("../../config/bgp-schema.json", import.meta.url), "utf8")) as SchemaNode;
const page = readFileSync(new URL("../../docs/bgp.md", import.meta.url), "utf8");

const isLabelSelector = (n: SchemaNode): boolean =>
  n.properties !== undefined && Object.keys(n.properties).sort().join(",") === "matchExpressions,matchLabels";

function fieldsOf(node: SchemaNode, prefix: string): string[] {
  const out: string[] = [];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    out.push(prefix + name);
    if (!isLabelSelector(child)) out.push(...fieldsOf(child, `${prefix}${name}.`));
  }
  return out;
}

const fields = Object.entries(schema.properties ?? {}).flatMap(([section, list]) =>
  fieldsOf(list.items ?? {}, `${section}.`),
);
const rows = [...page.matchAll(/^\| `((?:bgpPeers|bgpAdvertisements|bfdProfiles)\.[^`]+)` \|/gm)].map((m) => m[1]);

describe("docs/bgp.md field tables", () => {
  it("finds the schema's fields", () => {
    expect(fields).toEqual(expect.arrayContaining(["bgpPeers.peerASN", "bgpPeers.passwordSecret.key"]));
  });
  it.each(fields)("has a row for %s", (field) => {
    expect(rows).toContain(field);
  });
  it("has no row for a field the schema lacks", () => {
    expect(rows.filter((r) => !fields.includes(r ?? ""))).toEqual([]);
  });
});
