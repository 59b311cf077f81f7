import { atPath, isObject, type JsonObject } from "./json.ts";

/** One requirement of a label selector, as in k8s.io/apimachinery/pkg/labels. */
export interface Requirement {
  readonly key: string;
  readonly op: "=" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";
  readonly values: readonly string[];
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Splits on commas outside parentheses (commas inside `in (a,b)` belong to the value list). */
function splitTop(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

function checkKey(key: string): string | undefined {
  return KEY.test(key) ? undefined : `unable to parse requirement: invalid label key "${key}"`;
}

function checkValue(v: string): string | undefined {
  return VALUE.test(v) ? undefined : `unable to parse requirement: invalid label value: "${v}"`;
}

export function parseLabelSelector(text: string): Parsed<readonly Requirement[]> {
  const reqs: Requirement[] = [];
  if (text.trim() === "") return { ok: true, value: reqs };
  for (const raw of splitTop(text)) {
    const part = raw.trim();
    if (part === "") return { ok: false, error: `found '', expected: !, identifier, or 'end of string'` };
    let m: RegExpExecArray | null;
    let req: Requirement;
    if ((m = /^!\s*([^\s=!<>(),]+)$/.exec(part))) req = { key: m[1] ?? "", op: "!", values: [] };
    else if ((m = /^([^\s=!<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      const values = (m[3] ?? "").split(",").map((v) => v.trim());
      req = {
        key: m[1] ?? "",
        op: m[2] === "in" ? "in" : "notin",
        values: values.length === 1 && values[0] === "" ? [] : values,
      };
    } else if ((m = /^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s=!<>(),]*)$/.exec(part)))
      req = { key: m[1] ?? "", op: m[2] === "!=" ? "!=" : "=", values: [m[3] ?? ""] };
    else if ((m = /^([^\s=!<>(),]+)\s*([<>])\s*(-?\d+)$/.exec(part)))
      req = { key: m[1] ?? "", op: m[2] === ">" ? "gt" : "lt", values: [m[3] ?? ""] };
    else if ((m = /^([^\s=!<>(),]+)$/.exec(part))) req = { key: m[1] ?? "", op: "exists", values: [] };
    else
      return {
        ok: false,
        error: `unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`,
      };
    const bad =
      checkKey(req.key) ??
      (req.op === "gt" || req.op === "lt" ? undefined : req.values.map(checkValue).find((e) => e !== undefined));
    if (bad !== undefined) return { ok: false, error: bad };
    reqs.push(req);
  }
  return { ok: true, value: reqs };
}

export function matchesLabels(
  reqs: readonly Requirement[],
  labels: Readonly<Record<string, unknown>> | undefined,
): boolean {
  for (const r of reqs) {
    const v = labels?.[r.key];
    const has = typeof v === "string";
    switch (r.op) {
      case "=":
        if (!has || v !== r.values[0]) return false;
        break;
      case "!=":
        if (has && v === r.values[0]) return false;
        break;
      case "in":
        if (!has || !r.values.includes(v)) return false;
        break;
      case "notin":
        if (has && r.values.includes(v)) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "!":
        if (has) return false;
        break;
      case "gt":
      case "lt": {
        const n = Number(v);
        if (!has || !Number.isInteger(n)) return false;
        if (r.op === "gt" ? !(n > Number(r.values[0])) : !(n < Number(r.values[0]))) return false;
      }
    }
  }
  return true;
}

export interface FieldRequirement {
  readonly field: string;
  readonly op: "=" | "!=";
  readonly value: string;
}

/** Parses `a=b,c!=d`; only the fields the resource supports are accepted, as the real server does. */
export function parseFieldSelector(text: string, allowed: readonly string[]): Parsed<readonly FieldRequirement[]> {
  const reqs: FieldRequirement[] = [];
  if (text.trim() === "") return { ok: true, value: reqs };
  for (const raw of text.split(",")) {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) return { ok: false, error: `invalid selector: '${text}'; can't understand '${raw}'` };
    const field = m[1] ?? "";
    if (field !== "metadata.name" && field !== "metadata.namespace" && !allowed.includes(field))
      return { ok: false, error: `field label not supported: ${field}` };
    reqs.push({ field, op: m[2] === "!=" ? "!=" : "=", value: m[3] ?? "" });
  }
  return { ok: true, value: reqs };
}

function fieldValue(obj: JsonObject, field: string): string {
  // `source` on core/v1 events selects source.component; every other field label is a plain path.
  const v = field === "source" ? atPath(obj, "source.component") : atPath(obj, field);
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v === undefined || v === null) return field === "spec.unschedulable" ? "false" : "";
  return isObject(v) ? "" : String(v);
}

export function matchesFields(reqs: readonly FieldRequirement[], obj: JsonObject): boolean {
  for (const r of reqs) {
    const v = fieldValue(obj, r.field);
    if (r.op === "=" ? v !== r.value : v === r.value) return false;
  }
  return true;
}
