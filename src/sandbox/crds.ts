import type { Cause } from "./api-errors.ts";
import { isObject, meta, str, timestamp, type Json, type JsonObject } from "./json.ts";
import type { PrinterColumn, ResourceType } from "./resources.ts";

/** Where CustomResourceDefinitions are kept (resources.ts). */
export const CRD_STORAGE = "customresourcedefinitions.apiextensions.k8s.io";

const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
const strings = (v: Json | undefined): string[] => arr(v).filter((x): x is string => typeof x === "string");
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * Kube-aware version order (apimachinery/pkg/version, CompareKubeAwareVersionStrings): GA before beta before
 * alpha, higher numbers first, anything else last in lexical order. Discovery lists a group's versions so.
 */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): [number, number, number] | undefined => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (m === null) return undefined;
    const level = m[2] === undefined ? 2 : m[2] === "beta" ? 1 : 0;
    return [level, Number(m[1]), Number(m[3] ?? 0)];
  };
  const pa = parse(a);
  const pb = parse(b);
  if (pa === undefined || pb === undefined) return pa !== undefined ? -1 : pb !== undefined ? 1 : a < b ? -1 : 1;
  if (pa[0] !== pb[0]) return pb[0] - pa[0];
  if (pa[1] !== pb[1]) return pb[1] - pa[1];
  return pb[2] - pa[2];
}

/**
 * The defaults apiextensions/v1 gives a CRD (apis/apiextensions/v1, SetDefaults_CustomResourceDefinitionSpec and
 * SetDefaults_CustomResourceDefinition): singular and listKind from the names, conversion None, and every
 * version without printer columns gets an Age column (customresource_handler, getOrCreateServingInfoFor).
 */
export function defaultCrd(crd: JsonObject): void {
  const spec = obj(crd["spec"]);
  const names = obj(spec["names"]);
  const kind = str(names["kind"]) ?? "";
  names["singular"] ??= kind.toLowerCase();
  names["listKind"] ??= `${kind}List`;
  spec["names"] = names;
  spec["conversion"] ??= { strategy: "None" };
  crd["spec"] = spec;
}

/** A CRD as ValidateCustomResourceDefinition (apis/apiextensions/validation) checks the parts the sandbox uses. */
export function crdProblems(crd: JsonObject, old: JsonObject | undefined): Cause[] {
  const causes: Cause[] = [];
  const spec = obj(crd["spec"]);
  const names = obj(spec["names"]);
  const group = str(spec["group"]) ?? "";
  const plural = str(names["plural"]) ?? "";
  const kind = str(names["kind"]) ?? "";
  const push = (reason: Cause["reason"], field: string, message: string): void => {
    causes.push({ reason, field, message });
  };
  const name = str(meta(crd)["name"]) ?? "";
  if (name !== `${plural}.${group}`)
    push("FieldValueInvalid", "metadata.name", `Invalid value: "${name}": must be spec.names.plural+"."+spec.group`);
  if (group === "") push("FieldValueRequired", "spec.group", "Required value");
  else if (!DNS1123_SUBDOMAIN.test(group) || !group.includes("."))
    push("FieldValueInvalid", "spec.group", `Invalid value: "${group}": should be a domain with at least one dot`);
  if (plural === "") push("FieldValueRequired", "spec.names.plural", "Required value");
  else if (!DNS1123_LABEL.test(plural))
    push("FieldValueInvalid", "spec.names.plural", `Invalid value: "${plural}": a lowercase RFC 1123 label`);
  if (kind === "") push("FieldValueRequired", "spec.names.kind", "Required value");
  else if (!KIND.test(kind)) push("FieldValueInvalid", "spec.names.kind", `Invalid value: "${kind}": not a kind name`);
  for (const [i, s] of strings(names["shortNames"]).entries())
    if (!DNS1123_LABEL.test(s))
      push("FieldValueInvalid", `spec.names.shortNames[${i}]`, `Invalid value: "${s}": a lowercase RFC 1123 label`);
  const scope = spec["scope"];
  if (scope !== "Namespaced" && scope !== "Cluster")
    push(
      "FieldValueNotSupported",
      "spec.scope",
      `Unsupported value: ${JSON.stringify(scope ?? "")}: supported values: "Cluster", "Namespaced"`,
    );
  const versions = arr(spec["versions"]).filter(isObject);
  if (versions.length === 0)
    push(
      "FieldValueRequired",
      "spec.versions",
      "Required value: must have exactly one version marked as storage version",
    );
  else if (versions.filter((v) => v["storage"] === true).length !== 1)
    push(
      "FieldValueInvalid",
      "spec.versions",
      `Invalid value: ${JSON.stringify(versions.map((v) => v["name"]))}: must have exactly one version marked as storage version`,
    );
  const seen = new Set<string>();
  for (const [i, v] of versions.entries()) {
    const vn = str(v["name"]) ?? "";
    if (!DNS1123_LABEL.test(vn))
      push("FieldValueInvalid", `spec.versions[${i}].name`, `Invalid value: "${vn}": a DNS-1035 label`);
    else if (seen.has(vn)) push("FieldValueDuplicate", `spec.versions[${i}].name`, `Duplicate value: "${vn}"`);
    seen.add(vn);
    const schema = obj(v["schema"])["openAPIV3Schema"];
    if (!isObject(schema))
      push("FieldValueRequired", `spec.versions[${i}].schema.openAPIV3Schema`, "Required value: schemas are required");
    else if (schema["type"] !== "object")
      push(
        "FieldValueInvalid",
        `spec.versions[${i}].schema.openAPIV3Schema.type`,
        `Invalid value: ${JSON.stringify(schema["type"] ?? "")}: must be object at the root`,
      );
    for (const [j, c] of arr(v["additionalPrinterColumns"]).entries()) {
      const col = obj(c);
      const at = `spec.versions[${i}].additionalPrinterColumns[${j}]`;
      if (typeof col["name"] !== "string" || col["name"] === "")
        push("FieldValueRequired", `${at}.name`, "Required value");
      if (!["integer", "number", "string", "boolean", "date"].includes(str(col["type"]) ?? ""))
        push(
          "FieldValueNotSupported",
          `${at}.type`,
          `Unsupported value: ${JSON.stringify(col["type"] ?? "")}: supported values: "integer", "number", "string", "boolean", "date"`,
        );
      if (typeof col["jsonPath"] !== "string" || !col["jsonPath"].startsWith("."))
        push(
          "FieldValueInvalid",
          `${at}.jsonPath`,
          `Invalid value: ${JSON.stringify(col["jsonPath"] ?? "")}: must be a simple json path starting with .`,
        );
    }
  }
  if (old !== undefined) {
    const oldSpec = obj(old["spec"]);
    if (oldSpec["group"] !== spec["group"])
      push("FieldValueInvalid", "spec.group", `Invalid value: "${group}": field is immutable`);
  }
  return causes;
}

/**
 * The status of an accepted CRD: its names accepted and Established at once (the naming and establishing
 * controllers, controller/status NamingConditionController and controller/establish, run inline here).
 */
export function establish(crd: JsonObject, old: JsonObject | undefined): void {
  const spec = obj(crd["spec"]);
  const now = timestamp();
  const previous = obj(old?.["status"]);
  const condition = (type: string, reason: string, message: string): JsonObject => {
    const before = arr(previous["conditions"])
      .filter(isObject)
      .find((c) => c["type"] === type);
    return {
      type,
      status: "True",
      lastTransitionTime: before?.["status"] === "True" ? (before["lastTransitionTime"] ?? now) : now,
      reason,
      message,
    };
  };
  const storage = arr(spec["versions"])
    .filter(isObject)
    .find((v) => v["storage"] === true)?.["name"];
  const stored = strings(previous["storedVersions"]);
  if (typeof storage === "string" && !stored.includes(storage)) stored.push(storage);
  crd["status"] = {
    conditions: [
      condition("NamesAccepted", "NoConflicts", "no conflicts found"),
      condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ],
    acceptedNames: spec["names"] ?? {},
    storedVersions: stored,
  };
}

function columns(v: JsonObject): PrinterColumn[] {
  const cols = arr(v["additionalPrinterColumns"]).filter(isObject);
  // No columns declared: the Age column (customresource_handler, getOrCreateServingInfoFor's default).
  if (cols.length === 0)
    return [
      {
        name: "Age",
        type: "date",
        format: "",
        description: "",
        priority: 0,
        jsonPath: ".metadata.creationTimestamp",
      },
    ];
  return cols.map((c) => ({
    name: str(c["name"]) ?? "",
    type: str(c["type"]) ?? "string",
    format: str(c["format"]) ?? "",
    description: str(c["description"]) ?? "",
    priority: typeof c["priority"] === "number" ? c["priority"] : 0,
    jsonPath: str(c["jsonPath"]) ?? "",
  }));
}

/** The resource types a (valid) CRD serves: one per served version, preferred version first, one storage. */
export function crdTypes(crd: JsonObject): ResourceType[] {
  const spec = obj(crd["spec"]);
  const names = obj(spec["names"]);
  const group = str(spec["group"]) ?? "";
  const plural = str(names["plural"]) ?? "";
  const kind = str(names["kind"]) ?? "";
  const served = arr(spec["versions"])
    .filter(isObject)
    .filter((v) => v["served"] === true)
    .sort((a, b) => compareVersions(str(a["name"]) ?? "", str(b["name"]) ?? ""));
  return served.map((v) =>
    Object.freeze({
      group,
      version: str(v["name"]) ?? "",
      resource: plural,
      singular: str(names["singular"]) ?? kind.toLowerCase(),
      kind,
      namespaced: spec["scope"] === "Namespaced",
      shortNames: strings(names["shortNames"]),
      status: isObject(obj(v["subresources"])["status"]),
      storage: `${plural}.${group}`,
      generation: true,
      fields: [],
      custom: {
        crd: str(meta(crd)["name"]) ?? "",
        schema: obj(obj(v["schema"])["openAPIV3Schema"]),
        columns: columns(v),
        categories: strings(names["categories"]),
      },
    }),
  );
}

/**
 * A printer column's value: a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`,
 * `.status.conditions[?(@.type=="Ready")].status`) evaluated as client-go's jsonpath with missing keys allowed:
 * undefined when it finds nothing.
 */
export function jsonPathValue(o: Json, path: string): Json | undefined {
  const tokens = path.match(/\.[^.[\]]+|\[\?\(@\.[^=]+==["'][^"']*["']\)\]|\[\d+\]/g) ?? [];
  let cur: Json | undefined = o;
  for (const tok of tokens) {
    if (cur === undefined || cur === null) return undefined;
    if (tok.startsWith(".")) cur = isObject(cur) ? cur[tok.slice(1)] : undefined;
    else if (/^\[\d+\]$/.test(tok)) cur = Array.isArray(cur) ? cur[Number(tok.slice(1, -1))] : undefined;
    else {
      const m = /^\[\?\(@\.([^=]+)==["']([^"']*)["']\)\]$/.exec(tok);
      const key = m?.[1] ?? "";
      const want = m?.[2] ?? "";
      cur = Array.isArray(cur) ? cur.find((x) => isObject(x) && String(x[key]) === want) : undefined;
    }
  }
  return cur;
}
