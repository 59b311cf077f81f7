import { isObject, meta, str, type Json, type JsonObject } from "./json.ts";
import { jsonPathValue } from "./crds.ts";
import type { PrinterColumn, ResourceType } from "./resources.ts";

/**
 * Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), which `kubectl get` asks for:
 * the columns kube-apiserver prints for the kinds Lodestone's users look at, NAME and AGE for the rest.
 */
interface Column {
  readonly name: string;
  readonly type: string;
  readonly priority?: number;
  readonly cell: (o: JsonObject, now: number) => Json;
}

const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration. */
export function humanDuration(seconds: number): string {
  if (seconds < -1) return "<invalid>";
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  const h = Math.floor(s / 3600);
  const d = Math.floor(h / 24);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 192) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

const since = (t: Json | undefined, now: number): string => {
  const ms = typeof t === "string" ? Date.parse(t) : NaN;
  return Number.isNaN(ms) ? "<unknown>" : humanDuration((now - ms) / 1000);
};

const NAME: Column = { name: "Name", type: "string", cell: (o) => str(meta(o)["name"]) ?? "" };
const AGE: Column = { name: "Age", type: "string", cell: (o, now) => since(meta(o)["creationTimestamp"], now) };
const count = (v: Json | undefined): number => Object.keys(obj(v)).length;

function servicePorts(spec: JsonObject): string {
  const ports = arr(spec["ports"]).filter(isObject);
  if (ports.length === 0) return "<none>";
  return ports
    .map(
      (p) =>
        `${String(p["port"])}${typeof p["nodePort"] === "number" ? `:${p["nodePort"]}` : ""}/${str(p["protocol"]) ?? "TCP"}`,
    )
    .join(",");
}

function externalIp(o: JsonObject): string {
  const spec = obj(o["spec"]);
  const external = arr(spec["externalIPs"]).filter((x): x is string => typeof x === "string");
  const type = spec["type"];
  if (type === "ExternalName") return str(spec["externalName"]) ?? "<none>";
  if (type === "LoadBalancer") {
    const ingress = arr(obj(obj(o["status"])["loadBalancer"])["ingress"])
      .filter(isObject)
      .map((i) => str(i["ip"]) ?? str(i["hostname"]) ?? "")
      .filter((x) => x !== "");
    const all = [...ingress, ...external];
    return all.length > 0 ? all.join(",") : "<pending>";
  }
  return external.length > 0 ? external.join(",") : "<none>";
}

function selector(spec: JsonObject): string {
  const sel = obj(spec["selector"]);
  const parts = Object.entries(sel).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length > 0 ? parts.join(",") : "<none>";
}

function nodeStatus(o: JsonObject): string {
  const ready = arr(obj(o["status"])["conditions"])
    .filter(isObject)
    .find((c) => c["type"] === "Ready");
  const s = ready === undefined ? "Unknown" : ready["status"] === "True" ? "Ready" : "NotReady";
  return obj(o["spec"])["unschedulable"] === true ? `${s},SchedulingDisabled` : s;
}

function nodeRoles(o: JsonObject): string {
  const roles = Object.keys(obj(meta(o)["labels"]))
    .filter((k) => k.startsWith("node-role.kubernetes.io/"))
    .map((k) => k.slice("node-role.kubernetes.io/".length));
  return roles.length > 0 ? roles.join(",") : "<none>";
}

function eventObject(o: JsonObject): string {
  const inv = obj(o["involvedObject"]);
  return `${(str(inv["kind"]) ?? "").toLowerCase()}/${str(inv["name"]) ?? ""}`;
}

const COLUMNS: Readonly<Record<string, readonly Column[]>> = {
  services: [
    NAME,
    { name: "Type", type: "string", cell: (o) => str(obj(o["spec"])["type"]) ?? "ClusterIP" },
    { name: "Cluster-IP", type: "string", cell: (o) => str(obj(o["spec"])["clusterIP"]) ?? "<none>" },
    { name: "External-IP", type: "string", cell: externalIp },
    { name: "Port(s)", type: "string", cell: (o) => servicePorts(obj(o["spec"])) },
    AGE,
    { name: "Selector", type: "string", priority: 1, cell: (o) => selector(obj(o["spec"])) },
  ],
  nodes: [
    NAME,
    { name: "Status", type: "string", cell: nodeStatus },
    { name: "Roles", type: "string", cell: nodeRoles },
    AGE,
    { name: "Version", type: "string", cell: (o) => str(obj(obj(o["status"])["nodeInfo"])["kubeletVersion"]) ?? "" },
  ],
  namespaces: [NAME, { name: "Status", type: "string", cell: (o) => str(obj(o["status"])["phase"]) ?? "" }, AGE],
  configmaps: [NAME, { name: "Data", type: "integer", cell: (o) => count(o["data"]) + count(o["binaryData"]) }, AGE],
  secrets: [
    NAME,
    { name: "Type", type: "string", cell: (o) => str(o["type"]) ?? "" },
    { name: "Data", type: "integer", cell: (o) => count(o["data"]) },
    AGE,
  ],
  events: [
    {
      name: "Last Seen",
      type: "string",
      cell: (o, now) => since(o["lastTimestamp"] ?? o["eventTime"] ?? meta(o)["creationTimestamp"], now),
    },
    { name: "Type", type: "string", cell: (o) => str(o["type"]) ?? "" },
    { name: "Reason", type: "string", cell: (o) => str(o["reason"]) ?? "" },
    { name: "Object", type: "string", cell: eventObject },
    { name: "Message", type: "string", cell: (o) => str(o["message"]) ?? "" },
  ],
  "leases.coordination.k8s.io": [
    NAME,
    { name: "Holder", type: "string", cell: (o) => str(obj(o["spec"])["holderIdentity"]) ?? "" },
    AGE,
  ],
  "endpointslices.discovery.k8s.io": [
    NAME,
    { name: "AddressType", type: "string", cell: (o) => str(o["addressType"]) ?? "" },
    {
      name: "Ports",
      type: "string",
      cell: (o) =>
        arr(o["ports"])
          .filter(isObject)
          .map((p) => String(p["port"]))
          .join(",") || "<unset>",
    },
    {
      name: "Endpoints",
      type: "string",
      cell: (o) =>
        arr(o["endpoints"])
          .filter(isObject)
          .flatMap((e) => arr(e["addresses"]))
          .join(",") || "<unset>",
    },
    AGE,
  ],
  // Nothing runs the pods, so READY, UP-TO-DATE and AVAILABLE stay as the (empty) status says.
  "deployments.apps": [
    NAME,
    {
      name: "Ready",
      type: "string",
      cell: (o) => `${Number(obj(o["status"])["readyReplicas"] ?? 0)}/${Number(obj(o["spec"])["replicas"] ?? 0)}`,
    },
    { name: "Up-to-date", type: "integer", cell: (o) => Number(obj(o["status"])["updatedReplicas"] ?? 0) },
    { name: "Available", type: "integer", cell: (o) => Number(obj(o["status"])["availableReplicas"] ?? 0) },
    AGE,
  ],
};

export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /as=Table/.test(accept);
}

/**
 * A custom kind's printer column (apiextensions-apiserver, registry/customresource/tableconvertor, ConvertToTable
 * and cellForJSONValue): strings printed as jsonpath prints them, the other types typed, dates as an age; null
 * when the path finds nothing or a value of another type.
 */
function customColumn(c: PrinterColumn): Column {
  return {
    name: c.name,
    type: c.type,
    ...(c.priority === 0 ? {} : { priority: c.priority }),
    cell: (o, now) => {
      const v = jsonPathValue(o, c.jsonPath);
      if (v === undefined || v === null) return null;
      switch (c.type) {
        case "string":
          return typeof v === "string" ? v : JSON.stringify(v);
        case "integer":
          return typeof v === "number" ? Math.trunc(v) : null;
        case "number":
          return typeof v === "number" ? v : null;
        case "boolean":
          return typeof v === "boolean" ? v : null;
        case "date":
          return typeof v === "string" ? (Number.isNaN(Date.parse(v)) ? "<invalid>" : since(v, now)) : null;
        default:
          return null;
      }
    },
  };
}

const customColumns = new WeakMap<ResourceType, readonly Column[]>();

function columnsOf(t: ResourceType): readonly Column[] {
  if (t.custom !== undefined) {
    let cols = customColumns.get(t);
    if (cols === undefined) {
      cols = [NAME, ...t.custom.columns.map(customColumn)];
      customColumns.set(t, cols);
    }
    return cols;
  }
  return COLUMNS[t.storage] ?? [NAME, AGE];
}

function row(t: ResourceType, stored: JsonObject, viewed: JsonObject, includeObject: string, now: number): JsonObject {
  const object: JsonObject =
    includeObject === "Object"
      ? viewed
      : includeObject === "None"
        ? {}
        : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: meta(viewed) };
  return { cells: columnsOf(t).map((c) => c.cell(stored, now)), object };
}

/**
 * A Table of objects: cells come from the stored form (core/v1 for events), row objects from the view the
 * client asked for; with or without the column definitions.
 */
export function table(
  t: ResourceType,
  stored: readonly JsonObject[],
  viewed: readonly JsonObject[],
  listMeta: JsonObject,
  includeObject: string,
  withColumns = true,
): JsonObject {
  const now = Date.now();
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: listMeta,
    ...(withColumns
      ? {
          columnDefinitions: columnsOf(t).map((c) => ({
            name: c.name,
            type: c.type,
            format: c === NAME ? "name" : (t.custom?.columns.find((x) => x.name === c.name)?.format ?? ""),
            description: t.custom?.columns.find((x) => x.name === c.name)?.description ?? "",
            priority: c.priority ?? 0,
          })),
        }
      : {}),
    rows: stored.map((o, i) => row(t, o, viewed[i] ?? o, includeObject, now)),
  };
}
