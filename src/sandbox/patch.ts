import { dropKey, isObject, jsonEqual, type Json, type JsonObject } from "./json.ts";

export type PatchResult = { ok: true; value: Json } | { ok: false; error: string };

/** RFC 7386 JSON merge patch: objects merge, null deletes, everything else (lists too) replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) dropKey(out, k);
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * Merge keys of the list fields kubectl and controllers patch, from the `patchMergeKey` tags of the Go types.
 * A list whose field is not here is replaced, as for `patchStrategy` unset. `null` merge key = list of primitives
 * merged as a set (finalizers).
 */
const MERGE_KEYS: Readonly<Record<string, string | null>> = {
  ports: "port",
  conditions: "type",
  ownerReferences: "uid",
  finalizers: null,
  addresses: "type",
  taints: "key",
  containers: "name",
  initContainers: "name",
  volumes: "name",
  env: "name",
  volumeMounts: "mountPath",
  imagePullSecrets: "name",
  tolerations: null,
};

function mergeList(field: string, target: Json[], patch: Json[]): PatchResult {
  const key = MERGE_KEYS[field];
  if (key === undefined) {
    // `$patch: replace`-style directives inside a replaced list are meaningless; strip nothing, replace.
    return { ok: true, value: patch.filter((e) => !(isObject(e) && "$patch" in e)) };
  }
  if (key === null) {
    const out = [...target];
    for (const v of patch) if (!out.some((o) => JSON.stringify(o) === JSON.stringify(v))) out.push(v);
    return { ok: true, value: out };
  }
  const out = [...target];
  for (const item of patch) {
    if (!isObject(item))
      return { ok: false, error: `unable to find api field in struct for list ${field}: expected objects` };
    if (item["$patch"] === "replace")
      return { ok: true, value: patch.filter((e) => !(isObject(e) && e["$patch"] === "replace")) };
    const k = item[key];
    const idx = out.findIndex((o) => isObject(o) && JSON.stringify(o[key]) === JSON.stringify(k));
    if (item["$patch"] === "delete") {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) {
      const merged = strategicMerge(out[idx], item, field);
      if (!merged.ok) return merged;
      out[idx] = merged.value;
    } else {
      const merged = strategicMerge(undefined, item, field);
      if (!merged.ok) return merged;
      out.push(merged.value);
    }
  }
  return { ok: true, value: out };
}

/**
 * Strategic merge patch for what kubectl sends (apply, edit, patch, label, annotate): merge-patch semantics
 * plus lists merged by their merge key, `$patch: delete|replace`, `$deleteFromPrimitiveList/<f>` and
 * `$setElementOrder/<f>` (accepted; order of merged lists follows the patch where given).
 */
export function strategicMerge(target: Json | undefined, patch: Json, field = ""): PatchResult {
  if (Array.isArray(patch)) {
    return mergeList(field, Array.isArray(target) ? target : [], patch);
  }
  if (!isObject(patch)) return { ok: true, value: patch };
  if (patch["$patch"] === "delete") return { ok: true, value: null };
  if (patch["$patch"] === "replace") {
    const rest = { ...patch };
    delete rest["$patch"];
    return { ok: true, value: rest };
  }
  const out: JsonObject = isObject(target) ? { ...target } : {};
  const order: [string, Json[]][] = [];
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch" || k === "$retainKeys") continue;
    if (k.startsWith("$setElementOrder/")) {
      if (Array.isArray(v)) order.push([k.slice("$setElementOrder/".length), v]);
      continue;
    }
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const f = k.slice("$deleteFromPrimitiveList/".length);
      const cur = out[f];
      if (Array.isArray(cur) && Array.isArray(v)) out[f] = cur.filter((e) => !v.some((d) => d === e));
      continue;
    }
    if (v === null) {
      dropKey(out, k);
      continue;
    }
    const merged = strategicMerge(out[k], v, k);
    if (!merged.ok) return merged;
    if (merged.value === null) dropKey(out, k);
    else out[k] = merged.value;
  }
  for (const [f, wanted] of order) {
    const key = MERGE_KEYS[f];
    const cur = out[f];
    if (!Array.isArray(cur) || key === undefined) continue;
    const keyOf = (e: Json): string => JSON.stringify(key === null ? e : isObject(e) ? e[key] : e);
    const rank = new Map(wanted.map((w, i) => [keyOf(w), i]));
    out[f] = [...cur].sort((a, b) => (rank.get(keyOf(a)) ?? Infinity) - (rank.get(keyOf(b)) ?? Infinity));
  }
  return { ok: true, value: out };
}

/** RFC 6901 pointer, split and unescaped. */
function pointer(path: string): string[] | undefined {
  if (path === "") return [];
  if (!path.startsWith("/")) return undefined;
  return path
    .slice(1)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function getAt(doc: Json, parts: readonly string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const p of parts) {
    if (Array.isArray(cur)) cur = /^\d+$/.test(p) ? cur[Number(p)] : undefined;
    else if (isObject(cur)) cur = Object.hasOwn(cur, p) ? cur[p] : undefined;
    else return undefined;
  }
  return cur;
}

/** RFC 6902 JSON patch on a deep copy of the document. */
export function jsonPatch(doc: Json, ops: Json): PatchResult {
  if (!Array.isArray(ops)) return { ok: false, error: "json patch must be a list of operations" };
  let root: Json = structuredClone(doc);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw["op"] !== "string" || typeof raw["path"] !== "string")
      return { ok: false, error: "json patch operation must have string fields op and path" };
    const op = raw["op"];
    const parts = pointer(raw["path"]);
    if (parts === undefined) return { ok: false, error: `invalid path: ${raw["path"]}` };
    const read = (from: string): Json | undefined => {
      const p = pointer(from);
      return p === undefined ? undefined : getAt(root, p);
    };
    let value: Json | undefined;
    switch (op) {
      case "test": {
        // RFC 6902 section 4.6: values compared as JSON (object members in any order), not as their text.
        if (!jsonEqual(getAt(root, parts), raw["value"] ?? null))
          return { ok: false, error: `testing value ${raw["path"]} failed` };
        continue;
      }
      case "remove":
        break;
      case "add":
      case "replace":
        if (!("value" in raw)) return { ok: false, error: `missing value for ${op} ${raw["path"]}` };
        value = structuredClone(raw["value"]);
        break;
      case "copy":
      case "move": {
        const from = typeof raw["from"] === "string" ? read(raw["from"]) : undefined;
        if (from === undefined) return { ok: false, error: `missing from for ${op} ${raw["path"]}` };
        value = structuredClone(from);
        break;
      }
      default:
        return { ok: false, error: `unexpected kind: ${op}` };
    }
    if (op === "move") {
      const r = removeAt(root, pointer(raw["from"] as string) ?? []);
      if (!r.ok) return r;
    }
    if (parts.length === 0) {
      if (op === "remove") return { ok: false, error: "cannot remove the whole document" };
      root = value ?? null;
      continue;
    }
    const parent = getAt(root, parts.slice(0, -1));
    const last = parts[parts.length - 1] ?? "";
    if (op === "remove" || op === "replace") {
      if (getAt(root, parts) === undefined)
        return { ok: false, error: `${op} operation does not apply: doc is missing path: ${raw["path"]}` };
    }
    if (op === "remove") {
      const r = removeAt(root, parts);
      if (!r.ok) return r;
      continue;
    }
    if (value === undefined) return { ok: false, error: `missing value for ${op} ${raw["path"]}` };
    if (Array.isArray(parent)) {
      const idx = last === "-" ? parent.length : /^\d+$/.test(last) ? Number(last) : NaN;
      if (!(idx >= 0 && idx <= parent.length)) return { ok: false, error: `invalid index ${last} for ${raw["path"]}` };
      if (op === "replace") parent[idx] = value;
      else parent.splice(idx, 0, value);
    } else if (isObject(parent)) {
      parent[last] = value;
    } else return { ok: false, error: `${op} operation does not apply: doc is missing path: ${raw["path"]}` };
  }
  return { ok: true, value: root };
}

function removeAt(root: Json, parts: readonly string[]): PatchResult {
  const parent = getAt(root, parts.slice(0, -1));
  const last = parts[parts.length - 1] ?? "";
  if (Array.isArray(parent) && /^\d+$/.test(last) && Number(last) < parent.length) parent.splice(Number(last), 1);
  else if (isObject(parent) && Object.hasOwn(parent, last)) dropKey(parent, last);
  else return { ok: false, error: `remove operation does not apply: doc is missing path: /${parts.join("/")}` };
  return { ok: true, value: root };
}
