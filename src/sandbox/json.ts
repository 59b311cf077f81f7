/** JSON values as the API server sees them: parsed request bodies and stored objects. */
export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The object's `metadata`, or an empty one (never undefined: every stored object has metadata). */
export function meta(obj: JsonObject): JsonObject {
  const m = obj["metadata"];
  return isObject(m) ? m : {};
}

/** Removes a key chosen at run time (lint forbids `delete o[k]`, which hides the intent). */
export function dropKey(obj: JsonObject, key: string): void {
  Reflect.deleteProperty(obj, key);
}

export function str(v: Json | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Deep copy of a JSON value; stored objects are never mutated, so writes start from a copy. */
export function clone<T extends Json>(v: T): T {
  return structuredClone(v);
}

/** Value at a dotted path (`involvedObject.kind`), or undefined. */
export function atPath(obj: JsonObject, path: string): Json | undefined {
  let cur: Json | undefined = obj;
  for (const part of path.split(".")) {
    if (!isObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/**
 * Equal as JSON values, whatever the order of object keys (arrays keep theirs): kube-apiserver compares objects in
 * its own encoding, which writes struct fields in a fixed order and map keys sorted, so an update that only
 * reorders keys is no change there either. A key whose value is undefined counts as absent, as in JSON text.
 */
export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (!isObject(a) || !isObject(b)) return false;
  let keys = 0;
  for (const k in a) {
    if (a[k] === undefined) continue;
    keys++;
    if (!jsonEqual(a[k], b[k])) return false;
  }
  for (const k in b) if (b[k] !== undefined) keys--;
  return keys === 0;
}

/** RFC 3339 seconds precision, as `metadata.creationTimestamp` is written by the real server. */
export function timestamp(now: Date = new Date()): string {
  return now.toISOString().replace(/\.\d+Z$/, "Z");
}

/** RFC 3339 with microseconds (`MicroTime`, used by Lease and events.k8s.io). */
export function microTimestamp(now: Date = new Date()): string {
  return now.toISOString().replace(/\.(\d+)Z$/, (_m, ms: string) => `.${ms.padEnd(6, "0")}Z`);
}

/**
 * Pure: the keys that appear twice in one object of a JSON text (which `JSON.parse` keeps the last of), as
 * sigs.k8s.io/json's strict decoder names them: `metadata.name`, `spec.ports[1].port`. The text must be valid
 * JSON; a text that is not gives no duplicates.
 */
export function duplicateFields(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const ws = (): void => {
    while (i < text.length && " \t\r\n".includes(text[i] ?? "")) i++;
  };
  const string = (): string => {
    const start = i;
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const seen = new Set<string>();
      ws();
      while (text[i] !== "}" && i < text.length) {
        ws();
        const key = string();
        const p = path === "" ? key : `${path}.${key}`;
        if (seen.has(key)) out.push(p);
        seen.add(key);
        ws();
        i++; // colon
        value(p);
        ws();
        if (text[i] === ",") i++;
        ws();
      }
      i++;
    } else if (c === "[") {
      i++;
      let n = 0;
      ws();
      while (text[i] !== "]" && i < text.length) {
        value(`${path}[${n++}]`);
        ws();
        if (text[i] === ",") i++;
        ws();
      }
      i++;
    } else if (c === '"') string();
    else while (i < text.length && !",]} \t\r\n".includes(text[i] ?? "")) i++;
  };
  try {
    value("");
  } catch {
    return [];
  }
  return out;
}
