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
  const QUOTE = 0x22;
  const BACKSLASH = 0x5c;
  const ws = (): void => {
    for (let c = text.charCodeAt(i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = text.charCodeAt(++i));
  };
  const string = (): string => {
    const start = i++;
    let escaped = false;
    for (let c = text.charCodeAt(i); c !== QUOTE && i < text.length; c = text.charCodeAt(++i))
      if (c === BACKSLASH) {
        escaped = true;
        i++;
      }
    i++;
    return escaped ? (JSON.parse(text.slice(start, i)) as string) : text.slice(start + 1, i - 1);
  };
  /** The path of the value being read, as segments (`.key`, `[n]`), joined only for a duplicate. */
  const path: string[] = [];
  const value = (): void => {
    ws();
    const c = text.charCodeAt(i);
    if (c === 0x7b) {
      // {
      i++;
      let seen: Set<string> | undefined;
      let first: string | undefined;
      ws();
      while (text.charCodeAt(i) !== 0x7d && i < text.length) {
        const key = string();
        path.push(path.length === 0 ? key : `.${key}`);
        // Most objects have few keys: a Set only from the second one.
        if (first === undefined) first = key;
        else {
          seen ??= new Set([first]);
          if (seen.has(key)) out.push(path.join(""));
          seen.add(key);
        }
        ws();
        i++; // colon
        value();
        path.pop();
        ws();
        if (text.charCodeAt(i) === 0x2c) i++;
        ws();
      }
      i++;
    } else if (c === 0x5b) {
      // [
      i++;
      let n = 0;
      ws();
      while (text.charCodeAt(i) !== 0x5d && i < text.length) {
        path.push(`[${n++}]`);
        value();
        path.pop();
        ws();
        if (text.charCodeAt(i) === 0x2c) i++;
        ws();
      }
      i++;
    } else if (c === QUOTE) string();
    else
      for (
        let d = text.charCodeAt(i);
        i < text.length &&
        d !== 0x2c &&
        d !== 0x5d &&
        d !== 0x7d &&
        d !== 0x20 &&
        d !== 0x0a &&
        d !== 0x0d &&
        d !== 0x09;
        d = text.charCodeAt(++i)
      );
  };
  try {
    value();
  } catch {
    return [];
  }
  return out;
}
