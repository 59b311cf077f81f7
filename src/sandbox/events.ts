import { isObject, type JsonObject } from "./json.ts";

/**
 * core/v1 Event <-> events.k8s.io/v1 Event. Both API groups serve the same stored objects (kept in core/v1 form),
 * as kube-apiserver does, so `kubectl describe` sees events a controller wrote through events.k8s.io.
 */
const RENAMES: readonly (readonly [core: string, events: string])[] = [
  ["involvedObject", "regarding"],
  ["message", "note"],
  ["reportingComponent", "reportingController"],
  ["source", "deprecatedSource"],
  ["firstTimestamp", "deprecatedFirstTimestamp"],
  ["lastTimestamp", "deprecatedLastTimestamp"],
  ["count", "deprecatedCount"],
];

function rename(obj: JsonObject, pairs: readonly (readonly [string, string])[], apiVersion: string): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) {
    const pair = pairs.find(([from]) => from === k);
    out[pair === undefined ? k : pair[1]] = v;
  }
  out["apiVersion"] = apiVersion;
  return out;
}

export const toEventsV1 = (core: JsonObject): JsonObject => rename(core, RENAMES, "events.k8s.io/v1");

export function fromEventsV1(ev: JsonObject): JsonObject {
  const core = rename(
    ev,
    RENAMES.map(([c, e]) => [e, c] as const),
    "v1",
  );
  // kube-apiserver fills these so core/v1 readers (kubectl describe) show source and times.
  if (!isObject(core["source"]) && typeof core["reportingComponent"] === "string")
    core["source"] = { component: core["reportingComponent"] };
  return core;
}
