import type { Cause } from "./api-errors.ts";
import { clone, isObject, type Json, type JsonObject } from "./json.ts";

/**
 * Pure: a CustomResourceDefinition's structural schema (`openAPIV3Schema`) at work on a custom object, as
 * apiextensions-apiserver applies it: which fields it keeps (the rest are pruned), the defaults it fills in, and
 * what it refuses. Only the parts of OpenAPI v3 that CRDs use and Lodestone's users write are implemented: type,
 * nullable, properties, additionalProperties, items, required, enum, pattern, minimum/maximum (and exclusive),
 * minLength/maxLength, minItems/maxItems, default and x-kubernetes-int-or-string here; pruning (with
 * x-kubernetes-preserve-unknown-fields and x-kubernetes-embedded-resource) is schemas.ts, structuralFields.
 */

const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
/** The fields of the root that apiextensions never prunes nor validates against the schema (ObjectMeta is its own). */
const ROOT = ["apiVersion", "kind", "metadata"];

/**
 * Fills in the schema's defaults where the value lacks the field (schema/defaulting, Default): an absent
 * property with a `default` gets a copy of it, then each present property, map value and list item is visited.
 * Returns the value with defaults (the input is not changed).
 */
export function applyDefaults(s: JsonObject, value: Json): Json {
  if (Array.isArray(value)) {
    const items = s["items"];
    return isObject(items) ? value.map((v) => applyDefaults(items, v)) : value;
  }
  if (!isObject(value)) return value;
  const out: JsonObject = { ...value };
  const props = obj(s["properties"]);
  for (const [k, p] of Object.entries(props)) {
    if (!isObject(p)) continue;
    if (out[k] === undefined && p["default"] !== undefined) out[k] = clone(p["default"]);
    const v = out[k];
    if (v !== undefined) out[k] = applyDefaults(p, v);
  }
  const extra = s["additionalProperties"];
  if (isObject(extra))
    for (const [k, v] of Object.entries(out)) if (props[k] === undefined) out[k] = applyDefaults(extra, v);
  return out;
}

const typeName = (v: Json): string =>
  v === null
    ? "null"
    : Array.isArray(v)
      ? "array"
      : typeof v === "number"
        ? Number.isInteger(v)
          ? "integer"
          : "number"
        : typeof v === "object"
          ? "object"
          : typeof v;

/** A value as kube-openapi's validation errors quote it: JSON (strings in double quotes). */
const quote = (v: Json): string => JSON.stringify(v);

function typeMatches(type: string, v: Json): boolean {
  const actual = typeName(v);
  if (type === "number") return actual === "number" || actual === "integer";
  return actual === type;
}

/**
 * The schema's refusals of a value, as field causes of a 422 (apiserver/validation, ValidateCustomResource over
 * kube-openapi's validate.SchemaValidator): the path in `field`, the message as kube-openapi words it.
 */
export function schemaProblems(s: JsonObject, value: Json, path = ""): Cause[] {
  const causes: Cause[] = [];
  const at = path === "" ? "<root>" : path;
  const invalidValue = (why: string): void => {
    causes.push({ reason: "FieldValueInvalid", field: at, message: `Invalid value: ${quote(value)}: ${why}` });
  };
  if (value === null) {
    if (s["nullable"] !== true && s["type"] !== undefined)
      causes.push({
        reason: "FieldValueTypeInvalid",
        field: at,
        message: `Invalid value: "null": ${at} in body must be of type ${String(s["type"])}: "null"`,
      });
    return causes;
  }
  const intOrString = s["x-kubernetes-int-or-string"] === true;
  const type = s["type"];
  if (intOrString) {
    if (typeof value !== "string" && typeName(value) !== "integer")
      causes.push({
        reason: "FieldValueTypeInvalid",
        field: at,
        message: `Invalid value: ${quote(typeName(value))}: ${at} in body must be of type integer,string: ${quote(typeName(value))}`,
      });
  } else if (typeof type === "string" && !typeMatches(type, value)) {
    causes.push({
      reason: "FieldValueTypeInvalid",
      field: at,
      message: `Invalid value: ${quote(typeName(value))}: ${at} in body must be of type ${type}: ${quote(typeName(value))}`,
    });
    return causes;
  }
  const en = s["enum"];
  if (Array.isArray(en) && !en.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    causes.push({
      reason: "FieldValueNotSupported",
      field: at,
      message: `Unsupported value: ${quote(value)}: supported values: ${en.map(quote).join(", ")}`,
    });
  if (typeof value === "string") {
    const pattern = s["pattern"];
    if (typeof pattern === "string" && !new RegExp(pattern, "u").test(value))
      invalidValue(`${at} in body should match '${pattern}'`);
    const max = s["maxLength"];
    if (typeof max === "number" && [...value].length > max)
      causes.push({ reason: "FieldValueTooLong", field: at, message: `Too long: may not be more than ${max} bytes` });
    const min = s["minLength"];
    if (typeof min === "number" && [...value].length < min)
      invalidValue(`${at} in body should be at least ${min} chars long`);
  }
  if (typeof value === "number") {
    const min = s["minimum"];
    if (typeof min === "number") {
      if (s["exclusiveMinimum"] === true ? value <= min : value < min)
        invalidValue(
          `${at} in body should be greater than ${s["exclusiveMinimum"] === true ? "" : "or equal to "}${min}`,
        );
    }
    const max = s["maximum"];
    if (typeof max === "number") {
      if (s["exclusiveMaximum"] === true ? value >= max : value > max)
        invalidValue(`${at} in body should be less than ${s["exclusiveMaximum"] === true ? "" : "or equal to "}${max}`);
    }
  }
  if (Array.isArray(value)) {
    const max = s["maxItems"];
    if (typeof max === "number" && value.length > max)
      causes.push({
        reason: "FieldValueTooMany",
        field: at,
        message: `Too many: ${value.length}: must have at most ${max} items`,
      });
    const min = s["minItems"];
    if (typeof min === "number" && value.length < min) invalidValue(`${at} in body should have at least ${min} items`);
    const items = s["items"];
    if (isObject(items)) value.forEach((v, i) => causes.push(...schemaProblems(items, v, `${path}[${i}]`)));
  }
  if (isObject(value)) {
    const root = path === "";
    const required = s["required"];
    if (Array.isArray(required))
      for (const r of required)
        if (typeof r === "string" && value[r] === undefined && !(root && ROOT.includes(r)))
          causes.push({
            reason: "FieldValueRequired",
            field: path === "" ? r : `${path}.${r}`,
            message: "Required value",
          });
    const props = obj(s["properties"]);
    const extra = s["additionalProperties"];
    for (const [k, v] of Object.entries(value)) {
      if (root && ROOT.includes(k)) continue;
      const sub = props[k] ?? (isObject(extra) ? extra : undefined);
      if (isObject(sub)) causes.push(...schemaProblems(sub, v, path === "" ? k : `${path}.${k}`));
    }
  }
  return causes;
}
