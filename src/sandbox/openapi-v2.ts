import type { Json, JsonObject } from "./json.ts";
import type { Registry, ResourceType } from "./resources.ts";
import { schemaOf, type Schema } from "./schemas.ts";

/**
 * /openapi/v2, from the schema table: one definition per kind, with `x-kubernetes-group-version-kind`. kubectl
 * reads it when the server cannot validate for it, which for the sandbox's kinds means a `kind: List` (its GVK
 * has no endpoint in /openapi/v3, so kubectl validates the items itself, as against a real cluster:
 * staging/src/k8s.io/kubectl/pkg/validation, paramVerifyingSchema.ValidateBytes). Nested types are inline here,
 * where kube-apiserver names each (`io.k8s.api.apps.v1.DeploymentSpec`); kubectl's messages show the path instead.
 */

/** `io.k8s.api.core.v1.ConfigMap`: the definition name kube-apiserver gives a kind. */
export function definitionName(t: ResourceType): string {
  // A custom kind's is its group reversed (apiextensions-apiserver, controller/openapi/builder: `io.metallb.v1beta1.X`).
  if (t.custom !== undefined) return [...t.group.split(".").reverse(), t.version, t.kind].join(".");
  const pkg = t.group === "" ? "core" : (t.group.split(".")[0] ?? t.group);
  return `io.k8s.api.${pkg}.${t.version}.${t.kind}`;
}

/** A swagger schema: a struct has properties and no type (kube-openapi reads it as a Kind), `{}` is any value. */
function swagger(s: Schema): JsonObject {
  if (s === "any") return {};
  if (Array.isArray(s)) return { type: "array", items: swagger((s as readonly [Schema])[0]) };
  const fields = s as Readonly<Record<string, Schema>>;
  const values = fields["*"];
  if (values !== undefined) return { type: "object", additionalProperties: swagger(values) };
  return { properties: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, swagger(v)])) };
}

/** The document as JSON (what `Accept: application/json` gets). */
export function openApiV2Json(registry: Registry): JsonObject {
  const definitions: JsonObject = {};
  for (const t of registry.all()) {
    const s = schemaOf(t);
    if (s === undefined || t.group === "events.k8s.io") continue;
    definitions[definitionName(t)] = {
      ...swagger(s),
      "x-kubernetes-group-version-kind": [{ group: t.group, kind: t.kind, version: t.version }],
    };
  }
  return { swagger: "2.0", info: { title: "Kubernetes", version: "v1.32.0" }, paths: {}, definitions };
}

// The gnostic OpenAPIv2 protobuf (github.com/google/gnostic-models, openapiv2/OpenAPIv2.proto), which is all
// client-go's discovery client reads from /openapi/v2. Field numbers of the messages used here:
const DOCUMENT = { swagger: 1, info: 2, definitions: 9 } as const;
const INFO = { title: 1, version: 2 } as const;
const NAMED = { name: 1, value: 2 } as const; // NamedSchema, NamedAny
const SCHEMA = { additionalProperties: 21, type: 22, items: 23, properties: 25, vendorExtension: 31 } as const;
const ANY_YAML = 2;

const utf8 = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-delimited field (wire type 2): every field written here is a string or a message. */
function field(num: number, body: Uint8Array | string): number[] {
  const bytes = typeof body === "string" ? utf8.encode(body) : body;
  return [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
}

const message = (parts: number[][]): Uint8Array => Uint8Array.from(parts.flat());

/** YAML of the GVK list; JSON is YAML, and kube-openapi reads vendor extensions as YAML. */
const yamlOf = (v: Json): string => JSON.stringify(v);

function schemaBytes(s: JsonObject): Uint8Array {
  const parts: number[][] = [];
  const type = s["type"];
  if (typeof type === "string") parts.push(field(SCHEMA.type, message([field(1, type)])));
  const items = s["items"];
  if (items !== undefined && typeof items === "object" && items !== null && !Array.isArray(items))
    parts.push(field(SCHEMA.items, message([field(1, schemaBytes(items))])));
  const extra = s["additionalProperties"];
  if (extra !== undefined && typeof extra === "object" && extra !== null && !Array.isArray(extra))
    parts.push(field(SCHEMA.additionalProperties, message([field(1, schemaBytes(extra))])));
  const props = s["properties"];
  if (props !== undefined && typeof props === "object" && props !== null && !Array.isArray(props))
    parts.push(
      field(
        SCHEMA.properties,
        message(
          Object.entries(props).map(([name, sub]) =>
            field(1, message([field(NAMED.name, name), field(NAMED.value, schemaBytes(sub as JsonObject))])),
          ),
        ),
      ),
    );
  for (const [name, value] of Object.entries(s))
    if (name.startsWith("x-"))
      parts.push(
        field(
          SCHEMA.vendorExtension,
          message([field(NAMED.name, name), field(NAMED.value, message([field(ANY_YAML, yamlOf(value))]))]),
        ),
      );
  return message(parts);
}

/** Pure: the JSON document encoded as gnostic's openapi_v2.Document. */
export function openApiV2Protobuf(doc: JsonObject): Uint8Array {
  const info = doc["info"] as JsonObject;
  const definitions = doc["definitions"] as JsonObject;
  return message([
    field(DOCUMENT.swagger, String(doc["swagger"])),
    field(
      DOCUMENT.info,
      message([field(INFO.title, String(info["title"])), field(INFO.version, String(info["version"]))]),
    ),
    field(
      DOCUMENT.definitions,
      message(
        Object.entries(definitions).map(([name, s]) =>
          field(1, message([field(NAMED.name, name), field(NAMED.value, schemaBytes(s as JsonObject))])),
        ),
      ),
    ),
  ]);
}

const cache = new WeakMap<Registry, { generation: number; json: string; protobuf: Uint8Array }>();

/** The document in both encodings, built again only when the served types change (a CRD comes or goes). */
export function openApiV2(registry: Registry): { json: string; protobuf: Uint8Array } {
  let c = cache.get(registry);
  if (c === undefined || c.generation !== registry.generation) {
    const doc = openApiV2Json(registry);
    c = { generation: registry.generation, json: JSON.stringify(doc), protobuf: openApiV2Protobuf(doc) };
    cache.set(registry, c);
  }
  return c;
}
