import { randomBytes, randomUUID } from "node:crypto";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { defaultDeployment, deploymentProblems } from "./deployments.ts";
import { fromEventsV1, toEventsV1 } from "./events.ts";
import { clone, dropKey, isObject, jsonEqual, meta, str, timestamp, type Json, type JsonObject } from "./json.ts";
import { jsonPatch, mergePatch, strategicMerge } from "./patch.ts";
import { CRD_STORAGE, crdProblems, crdTypes, defaultCrd, establish } from "./crds.ts";
import { apiVersionOf, Registry, type ResourceType } from "./resources.ts";
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  type FieldRequirement,
  type Requirement,
} from "./selectors.ts";
import { schemaOf, unknownFields } from "./schemas.ts";
import { applyDefaults, schemaProblems } from "./structural.ts";
import { ServiceRules, validateServiceStatus } from "./service.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  invalid,
  notFound,
  unsupportedMediaType,
  boundCause,
  type ApiError,
  type Cause,
} from "./api-errors.ts";
import type { Store } from "./store.ts";

/** apimachinery/pkg/api/validation TotalAnnotationSizeLimitB. */
const TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024;
import { serialize, type Entry } from "./store.ts";

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ApiError };
const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
const fail = (error: ApiError): Outcome<never> => ({ ok: false, error });

export interface Selection {
  readonly labels: readonly Requirement[];
  readonly fields: readonly FieldRequirement[];
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** The name part of a qualified name (apimachinery util/validation, IsQualifiedName). */
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
/** metav1.MicroTime on the wire: RFC 3339 with exactly six fractional digits (RFC3339Micro). */
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;
/** The MicroTime fields of the kinds that have them, as paths into the stored (core/v1) form. */
const MICRO_TIMES: Readonly<Record<string, readonly (readonly string[])[]>> = {
  "leases.coordination.k8s.io": [
    ["spec", "acquireTime"],
    ["spec", "renewTime"],
  ],
  events: [["eventTime"], ["series", "lastObservedTime"]],
};

/**
 * Pure: why the JSON decoder refuses a MicroTime field of `obj` (a 400 before any validation: it is a decoding
 * error, metav1.MicroTime.UnmarshalJSON), undefined when every one is null, absent or well formed.
 */
export function microTimeProblem(t: ResourceType, obj: JsonObject): string | undefined {
  for (const path of MICRO_TIMES[t.storage] ?? []) {
    let v: Json | undefined = obj;
    for (const k of path) v = isObject(v) ? v[k] : undefined;
    if (v === undefined || v === null) continue;
    if (typeof v !== "string" || !MICRO_TIME.test(v) || Number.isNaN(Date.parse(v)))
      return `${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse it as a MicroTime (${path.join(".")})`;
  }
  return undefined;
}

/** How a write treats fields its kind does not declare (the `fieldValidation` query parameter). */
export type FieldValidation = "Ignore" | "Warn" | "Strict";

/** What a create, update or patch is asked besides its body; `warnings` collects the response's Warning headers. */
export interface WriteOptions {
  /** Default Ignore (in-process callers); over HTTP an empty `fieldValidation` means Warn, as in kube-apiserver. */
  readonly fieldValidation?: FieldValidation;
  readonly warnings?: string[];
  /** Keys the request body (or patch) has twice, found in its text (json.ts, duplicateFields). */
  readonly duplicates?: readonly string[];
}

/** A Go `%+v` of a decoded JSON value (map[k:v] with sorted keys), as kube-apiserver quotes a patch back. */
function goValue(v: Json): string {
  if (v === null) return "<nil>";
  if (Array.isArray(v)) return `[${v.map(goValue).join(" ")}]`;
  if (isObject(v))
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${goValue(v[k] ?? null)}`)
      .join(" ")}]`;
  return String(v);
}

/**
 * A body's strict decoding error: 400, as the create and update handlers turn it (staging/src/k8s.io/apiserver/
 * pkg/endpoints/handlers, create.go / update.go, transformDecodeError).
 */
const decodeRefusal =
  (t: ResourceType) =>
  (why: string): ApiError =>
    badRequest(`${t.kind} in version "${t.version}" cannot be handled as a ${t.kind}: ${why}`);

/**
 * A patched object's strict decoding error: 422 on the field `patch`, quoting the patch back (handlers/patch.go,
 * applyPatchToObject and jsonPatcher.applyPatchToCurrentObject).
 */
const patchRefusal =
  (quoted: () => string) =>
  (why: string): ApiError =>
    invalid("", "", "", [
      { reason: "FieldValueInvalid", field: "patch", message: `Invalid value: ${JSON.stringify(quoted())}: ${why}` },
    ]);

/** `/v1, Kind=ConfigMap`: a GroupVersionKind as Go prints it. */
const gvkString = (t: ResourceType): string => `${t.group}/${t.version}, Kind=${t.kind}`;

/** Key of an object inside its storage: "" namespace for cluster-scoped resources. */
const nsOf = (t: ResourceType, namespace: string): string => (t.namespaced ? namespace : "");
/** A /status write changes status and metadata only (see #replace): the same of those is no change. */
const sameStatusWrite = (a: JsonObject, b: JsonObject): boolean =>
  jsonEqual(a["status"], b["status"]) && jsonEqual(meta(a), meta(b));

/**
 * A list's options as kube-apiserver checks them (staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/
 * validation, ValidateListOptions): 422 for each problem.
 */
export function listOptionProblems(query: URLSearchParams): Cause[] {
  const causes: Cause[] = [];
  const match = query.get("resourceVersionMatch") ?? "";
  const rv = query.get("resourceVersion") ?? "";
  const forbidden = (field: string, why: string): Cause => ({
    reason: "FieldValueForbidden",
    field,
    message: `Forbidden: ${why}`,
  });
  if (match !== "") {
    if (rv === "")
      causes.push(
        forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided"),
      );
    if ((query.get("continue") ?? "") !== "")
      causes.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"));
    if (match !== "Exact" && match !== "NotOlderThan")
      causes.push({
        reason: "FieldValueNotSupported",
        field: "resourceVersionMatch",
        message: `Unsupported value: "${match}": supported values: "Exact", "NotOlderThan", ""`,
      });
    if (match === "Exact" && rv === "0")
      causes.push(
        forbidden("resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
      );
  }
  if (query.get("sendInitialEvents") !== null)
    causes.push(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
  return causes;
}

/** A Lease's spec as ValidateLeaseSpec (pkg/apis/coordination/validation) checks it. */
function leaseSpecProblems(obj: JsonObject): Cause[] {
  const spec = isObject(obj["spec"]) ? obj["spec"] : {};
  return [
    ...boundCause("spec.leaseDurationSeconds", spec["leaseDurationSeconds"], "> 0"),
    ...boundCause("spec.leaseTransitions", spec["leaseTransitions"], ">= 0"),
  ];
}

/** A continue token as the sandbox writes it (the shape of etcd3's): the first page's revision and the last key. */
function decodeContinue(token: string): { rv: number; start: string } | undefined {
  try {
    const t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { rv?: unknown; start?: unknown };
    return typeof t.rv === "number" && Number.isInteger(t.rv) && typeof t.start === "string"
      ? { rv: t.rv, start: t.start }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The API semantics of the sandbox, independent of HTTP: versioned objects, optimistic concurrency, status
 * subresources, defaulting and validation, selectors and pagination, over the Store.
 */
export class Api {
  readonly store: Store;
  readonly services: ServiceRules;
  /** The served types: the built-in ones and those of the established CustomResourceDefinitions. */
  readonly registry = new Registry();

  constructor(store: Store, services: ServiceRules = new ServiceRules()) {
    this.store = store;
    this.services = services;
  }

  /** The object as the resource type's API version shows it. */
  view(t: ResourceType, obj: JsonObject): JsonObject {
    if (t.group === "events.k8s.io") return toEventsV1(obj);
    // Custom objects are stored in one version and served in each (conversion strategy None: only apiVersion
    // changes; apiextensions-apiserver, conversion, nopConverter).
    if (t.custom !== undefined && obj["apiVersion"] !== apiVersionOf(t)) return { ...obj, apiVersion: apiVersionOf(t) };
    return obj;
  }

  /** The response body for an object just written: the stored entry's cached JSON when it is the same object. */
  written(t: ResourceType, obj: JsonObject): string {
    const m = meta(obj);
    const e = this.store.get(t.storage, nsOf(t, str(m["namespace"]) ?? ""), str(m["name"]) ?? "");
    return e !== undefined && e.obj === obj ? this.viewJson(t, e) : JSON.stringify(this.view(t, obj));
  }

  viewJson(t: ResourceType, e: Entry): string {
    if (t.group === "events.k8s.io") return JSON.stringify(toEventsV1(e.obj));
    if (t.custom !== undefined && e.obj["apiVersion"] !== apiVersionOf(t)) return JSON.stringify(this.view(t, e.obj));
    return serialize(e);
  }

  selection(t: ResourceType, query: URLSearchParams): Outcome<Selection> {
    const labels = parseLabelSelector(query.get("labelSelector") ?? "");
    if (!labels.ok) return fail(badRequest(labels.error));
    const fields = parseFieldSelector(query.get("fieldSelector") ?? "", t.fields);
    if (!fields.ok) return fail(badRequest(fields.error));
    return ok({ labels: labels.value, fields: fields.value });
  }

  matches(t: ResourceType, sel: Selection, obj: JsonObject): boolean {
    const m = meta(obj);
    if (sel.labels.length > 0 && !matchesLabels(sel.labels, isObject(m["labels"]) ? m["labels"] : undefined))
      return false;
    return sel.fields.length === 0 || matchesFields(sel.fields, this.view(t, obj));
  }

  get(t: ResourceType, namespace: string, name: string): Outcome<Entry> {
    const e = this.store.get(t.storage, nsOf(t, namespace), name);
    return e === undefined ? fail(notFound({ resource: t.resource, group: t.group, name })) : ok(e);
  }

  /** The entries of a list request (selectors, limit/continue applied) and its list metadata. */
  listEntries(
    t: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
  ): Outcome<{ entries: Entry[]; listMeta: JsonObject }> {
    const sel = this.selection(t, query);
    if (!sel.ok) return sel;
    const problems = listOptionProblems(query);
    if (problems.length > 0) return fail(invalid("ListOptions", "meta.k8s.io", "", problems));
    const key = (e: Entry): string => {
      const m = meta(e.obj);
      return `${str(m["namespace"]) ?? ""}/${str(m["name"]) ?? ""}`;
    };
    const cont = query.get("continue") ?? "";
    const rvText = query.get("resourceVersion") ?? "";
    let rv = this.store.resourceVersion;
    let start: string | undefined;
    if (cont !== "") {
      // etcd3's store (staging/src/k8s.io/apiserver/pkg/storage/etcd3, GetList): a continue token carries the
      // revision of the first page, and every later page is read at that revision.
      if (rvText !== "" && rvText !== "0")
        return fail(badRequest("specifying resource version is not allowed when using continue"));
      const token = decodeContinue(cont);
      if (token === undefined) return fail(badRequest(`continue key is not valid: ${cont}`));
      rv = token.rv;
      start = token.start;
    } else if (query.get("resourceVersionMatch") === "Exact") {
      const exact = Number(rvText);
      if (!Number.isInteger(exact) || exact < 1) return fail(badRequest(`invalid resource version: ${rvText}`));
      rv = exact;
    }
    const all = this.store.snapshot(t.storage, t.namespaced ? namespace : undefined, rv);
    if (all === "expired")
      return fail(
        cont !== ""
          ? {
              code: 410,
              reason: "Expired",
              message:
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            }
          : { code: 410, reason: "Expired", message: `The resourceVersion for the provided list is too old.` },
      );
    let entries = all.map((e) => [key(e), e] as const);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    if (start !== undefined) {
      const after = start;
      entries = entries.filter(([k]) => k > after);
    }
    const filtered =
      sel.value.labels.length + sel.value.fields.length === 0
        ? entries
        : entries.filter(([, e]) => this.matches(t, sel.value, e.obj));
    const limit = Number(query.get("limit") ?? "0");
    let page = filtered;
    let next = "";
    if (Number.isInteger(limit) && limit > 0 && filtered.length > limit) {
      page = filtered.slice(0, limit);
      next = Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv, start: page[page.length - 1]?.[0] ?? "" })).toString(
        "base64url",
      );
    }
    const listMeta: JsonObject = {
      resourceVersion: String(rv),
      ...(next === "" ? {} : { continue: next, remainingItemCount: filtered.length - page.length }),
    };
    return ok({ entries: page.map(([, e]) => e), listMeta });
  }

  /** A list body, items sorted by namespace/name as etcd returns them, with limit/continue. */
  list(t: ResourceType, namespace: string | undefined, query: URLSearchParams): Outcome<string> {
    const r = this.listEntries(t, namespace, query);
    if (!r.ok) return r;
    const items = r.value.entries.map((e) => this.viewJson(t, e)).join(",");
    const metaJson = JSON.stringify(r.value.listMeta);
    return ok(`{"kind":"${t.kind}List","apiVersion":"${apiVersionOf(t)}","metadata":${metaJson},"items":[${items}]}`);
  }

  /** Checks a request body against the URL: apiVersion/kind, name and namespace. */
  /** `shared`: the body shares parts with a stored object (a patch result) and must be deep-copied first. */
  #decode(
    t: ResourceType,
    namespace: string,
    urlName: string | undefined,
    body: Json,
    shared = false,
  ): Outcome<JsonObject> {
    if (!isObject(body)) return fail(badRequest(`the object provided is unrecognized (must be of type ${t.kind})`));
    const kind = body["kind"];
    const apiVersion = body["apiVersion"];
    if (kind !== undefined && kind !== t.kind)
      return fail(
        badRequest(
          `the kind in the data (${String(kind)}) does not match the expected kind (${t.kind}) for ${apiVersionOf(t)}, Resource=${t.resource}`,
        ),
      );
    if (apiVersion !== undefined && apiVersion !== apiVersionOf(t))
      return fail(
        badRequest(
          `the API version in the data (${String(apiVersion)}) does not match the expected API version (${apiVersionOf(t)})`,
        ),
      );
    let obj = shared ? clone(body) : { ...body };
    if (t.group === "events.k8s.io") obj = fromEventsV1(obj);
    obj["apiVersion"] = t.group === "events.k8s.io" ? "v1" : apiVersionOf(t);
    obj["kind"] = t.kind;
    const m: JsonObject = isObject(obj["metadata"]) ? { ...obj["metadata"] } : {};
    obj["metadata"] = m;
    if (urlName !== undefined && m["name"] !== undefined && m["name"] !== urlName)
      return fail(
        badRequest(`the name of the object (${String(m["name"])}) does not match the name on the URL (${urlName})`),
      );
    if (urlName !== undefined) m["name"] = urlName;
    if (t.namespaced) {
      if (m["namespace"] !== undefined && m["namespace"] !== "" && m["namespace"] !== namespace)
        return fail(
          badRequest("the namespace of the provided object does not match the namespace sent on the request"),
        );
      m["namespace"] = namespace;
    } else delete m["namespace"];
    const time = microTimeProblem(t, obj);
    if (time !== undefined) return fail(badRequest(time));
    return ok(obj);
  }

  #validateMeta(t: ResourceType, obj: JsonObject): Cause[] {
    const m = meta(obj);
    const name = m["name"];
    if (typeof name !== "string" || name === "")
      return [
        {
          reason: "FieldValueRequired",
          field: "metadata.name",
          message: "Required value: name or generateName is required",
        },
      ];
    const causes: Cause[] = [];
    if (
      t.resource === "namespaces"
        ? !DNS1123_LABEL.test(name) || name.length > 63
        : t.resource !== "services" && (!DNS1123_SUBDOMAIN.test(name) || name.length > 253)
    )
      causes.push({
        reason: "FieldValueInvalid",
        field: "metadata.name",
        message: `Invalid value: "${name}": a lowercase RFC 1123 ${t.resource === "namespaces" ? "label" : "subdomain"} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      });
    for (const f of ["labels", "annotations"]) {
      const v = m[f];
      if (v === undefined || v === null) continue;
      if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string"))
        causes.push({
          reason: "FieldValueInvalid",
          field: `metadata.${f}`,
          message: `Invalid value: must be a map of strings`,
        });
    }
    // apimachinery/pkg/api/validation ValidateAnnotations: keys and values together, in bytes, at most
    // TotalAnnotationSizeLimitB (256 KiB).
    const annotations = m["annotations"];
    if (isObject(annotations)) {
      let size = 0;
      for (const [k, v] of Object.entries(annotations))
        size += Buffer.byteLength(k) + (typeof v === "string" ? Buffer.byteLength(v) : 0);
      if (size > TOTAL_ANNOTATION_SIZE_LIMIT_B)
        causes.push({
          reason: "FieldValueTooLong",
          field: "metadata.annotations",
          message: `Too long: must have at most ${TOTAL_ANNOTATION_SIZE_LIMIT_B} bytes`,
        });
    }
    return causes;
  }

  #namespaceExists(t: ResourceType, namespace: string): ApiError | undefined {
    if (!t.namespaced || this.store.get("namespaces", "", namespace) !== undefined) return undefined;
    return notFound({ resource: "namespaces", group: "", name: namespace });
  }

  /** Kind-specific defaulting and validation of a create or update of the object itself (not /status). */
  #prepare(t: ResourceType, obj: JsonObject, old: JsonObject | undefined): Cause[] {
    switch (t.storage) {
      case "services": {
        if (old === undefined) obj["status"] = { loadBalancer: {} };
        const causes = this.services.prepare(obj, old);
        // kube-apiserver empties the load-balancer status of a Service that is no LoadBalancer (any more):
        // pkg/registry/core/service, dropTypeDependentFields, on every update through the object.
        const spec = isObject(obj["spec"]) ? obj["spec"] : {};
        if (old !== undefined && spec["type"] !== "LoadBalancer")
          obj["status"] = { ...(isObject(obj["status"]) ? obj["status"] : {}), loadBalancer: {} };
        return causes;
      }
      case "namespaces": {
        const m = meta(obj);
        const labels = isObject(m["labels"]) ? m["labels"] : {};
        labels["kubernetes.io/metadata.name"] = str(m["name"]) ?? "";
        m["labels"] = labels;
        if (old === undefined) {
          obj["spec"] = { finalizers: ["kubernetes"] };
          obj["status"] = { phase: "Active" };
        }
        return [];
      }
      case "secrets": {
        const sd = obj["stringData"];
        if (isObject(sd)) {
          const data = isObject(obj["data"]) ? obj["data"] : {};
          for (const [k, v] of Object.entries(sd))
            if (typeof v === "string") data[k] = Buffer.from(v).toString("base64");
          obj["data"] = data;
          delete obj["stringData"];
        }
        obj["type"] ??= "Opaque";
        return [];
      }
      case "events":
        return this.#validateEvent(t, obj, old);
      case "leases.coordination.k8s.io":
        return leaseSpecProblems(obj);
      case "deployments.apps":
        defaultDeployment(obj);
        return deploymentProblems(obj, old);
      case CRD_STORAGE: {
        defaultCrd(obj);
        const causes = crdProblems(obj, old);
        if (causes.length === 0) establish(obj, old);
        return causes;
      }
      case "rolebindings.rbac.authorization.k8s.io":
      case "clusterrolebindings.rbac.authorization.k8s.io": {
        const ref = obj["roleRef"];
        if (
          !isObject(ref) ||
          typeof ref["name"] !== "string" ||
          (ref["kind"] !== "Role" && ref["kind"] !== "ClusterRole")
        )
          return [
            {
              reason: "FieldValueRequired",
              field: "roleRef",
              message: "Required value: roleRef.kind (Role or ClusterRole) and roleRef.name",
            },
          ];
        if (old !== undefined && !jsonEqual(old["roleRef"], ref))
          return [
            {
              reason: "FieldValueInvalid",
              field: "roleRef",
              message: `Invalid value: ${JSON.stringify(ref)}: cannot change roleRef`,
            },
          ];
        return [];
      }
      default:
        return t.custom === undefined ? [] : this.#prepareCustom(t, obj, old);
    }
  }

  /**
   * A custom object: with a status subresource a create drops its status (registry/customresource, strategy
   * PrepareForCreate); then the schema's defaults (schema/defaulting, Default) and its validation
   * (customResourceStrategy.Validate, over the structural schema).
   */
  #prepareCustom(t: ResourceType, obj: JsonObject, old: JsonObject | undefined): Cause[] {
    const schema = t.custom?.schema ?? {};
    if (old === undefined && t.status) delete obj["status"];
    const defaulted = applyDefaults(schema, obj);
    if (isObject(defaulted)) for (const [k, v] of Object.entries(defaulted)) obj[k] = v;
    return schemaProblems(schema, obj);
  }

  #validateEvent(t: ResourceType, obj: JsonObject, old: JsonObject | undefined): Cause[] {
    const causes: Cause[] = [];
    const ns = str(meta(obj)["namespace"]) ?? "";
    const involved = isObject(obj["involvedObject"]) ? obj["involvedObject"] : undefined;
    const v1 = t.group === "events.k8s.io";
    const field = v1 ? "regarding" : "involvedObject";
    const ins = involved === undefined ? undefined : str(involved["namespace"]);
    if (ins !== undefined && ins !== "" && ins !== ns)
      causes.push({
        reason: "FieldValueInvalid",
        field: `${field}.namespace`,
        message: `Invalid value: "${ins}": does not match event.namespace`,
      });
    const has = (f: string): boolean => typeof obj[f] === "string" && obj[f] !== "";
    const bytes = (f: string): number => (typeof obj[f] === "string" ? Buffer.byteLength(obj[f]) : 0);
    // An Event with eventTime is a "new" Event, through either API group (pkg/apis/core/validation,
    // legacyValidateEvent): the reporting fields are required and every text has a limit, in bytes.
    if (has("eventTime")) {
      const controller = str(obj["reportingComponent"]) ?? "";
      if (controller === "")
        causes.push({ reason: "FieldValueRequired", field: "reportingController", message: "Required value" });
      else if (
        !QUALIFIED_NAME.test(controller.split("/").pop() ?? "") ||
        (controller.split("/").pop() ?? "").length > 63
      )
        causes.push({
          reason: "FieldValueInvalid",
          field: "reportingController",
          message: `Invalid value: "${controller}": must be a qualified name`,
        });
      const limits: [core: string, path: string, limit: number][] = [
        ["reportingInstance", "reportingInstance", 128],
        ["action", "action", 128],
        ["reason", "reason", 128],
      ];
      for (const [f, path, limit] of limits) {
        if (!has(f)) causes.push({ reason: "FieldValueRequired", field: path, message: "Required value" });
        else if (bytes(f) > limit)
          causes.push({
            reason: "FieldValueInvalid",
            field: path,
            message: `Invalid value: "": can have at most ${limit} characters`,
          });
      }
      if (bytes("message") > 1024)
        causes.push({
          reason: "FieldValueInvalid",
          field: v1 ? "note" : "message",
          message: `Invalid value: "": can have at most 1024 characters`,
        });
    }
    if (v1 && old === undefined) {
      // Strict validation of events.k8s.io/v1 creates (ValidateEventCreate).
      if (!has("eventTime"))
        causes.push({ reason: "FieldValueRequired", field: "eventTime", message: "Required value" });
      if (obj["type"] !== "Normal" && obj["type"] !== "Warning")
        causes.push({
          reason: "FieldValueInvalid",
          field: "type",
          message: `Invalid value: ${JSON.stringify(obj["type"] ?? "")}: has invalid value`,
        });
    }
    return causes;
  }

  /** Stores `obj` as the next version unless nothing changed (then the old entry stands, no event). */
  #commit(t: ResourceType, obj: JsonObject, old: Entry | undefined, dryRun: boolean, statusOnly = false): JsonObject {
    const m = meta(obj);
    if (old !== undefined) {
      m["resourceVersion"] = meta(old.obj)["resourceVersion"] ?? null;
      if (statusOnly ? sameStatusWrite(obj, old.obj) : jsonEqual(obj, old.obj)) return old.obj;
    }
    if (dryRun) return obj;
    const rv = this.store.nextVersion();
    m["resourceVersion"] = String(rv);
    const ns = str(m["namespace"]) ?? "";
    const name = str(m["name"]) ?? "";
    // A deleted object with no finalizers left goes away now (the garbage collector's job, done inline).
    if (m["deletionTimestamp"] !== undefined && (!Array.isArray(m["finalizers"]) || m["finalizers"].length === 0)) {
      this.#released(t, obj);
      this.store.remove(t.storage, nsOf(t, ns), name, obj, rv);
      return obj;
    }
    this.store.put(t.storage, nsOf(t, ns), name, obj, rv);
    if (t.storage === CRD_STORAGE) this.registry.setCustom(name, crdTypes(obj));
    return obj;
  }

  #released(t: ResourceType, obj: JsonObject): void {
    if (t.storage === "services") this.services.release(obj);
    if (t.storage === CRD_STORAGE) this.#dropCustom(str(meta(obj)["name"]) ?? "");
  }

  /**
   * A deleted CRD takes its objects with it, then its REST paths and discovery go (controller/finalizer,
   * CRDFinalizer.deleteInstances, done inline rather than behind the customresourcecleanup finalizer).
   */
  #dropCustom(crd: string): void {
    const t = this.registry.custom(crd)[0];
    if (t !== undefined)
      for (const e of this.store.list(t.storage, undefined)) {
        const m = meta(e.obj);
        const rv = this.store.nextVersion();
        const tomb = { ...e.obj, metadata: { ...m, resourceVersion: String(rv) } };
        this.store.remove(t.storage, str(m["namespace"]) ?? "", str(m["name"]) ?? "", tomb, rv);
      }
    this.registry.setCustom(crd, []);
    // Its watches end, as the crdHandler's storage for the CRD is torn down (removeStorage): clients relist, 404.
    if (t !== undefined) this.store.endWatchers(t.storage);
  }

  /**
   * Unknown and duplicate fields of a decoded object under the request's `fieldValidation`: refused under Strict
   * (`refusal` builds the error from the strict decoding errors), warned about under Warn, and the object without
   * the unknown fields in every other case, as decoding into the Go types drops them.
   */
  #checkFields(
    t: ResourceType,
    obj: JsonObject,
    opts: WriteOptions,
    refusal: (strictErrors: string) => ApiError,
  ): Outcome<JsonObject> {
    const schema = schemaOf(t);
    const { unknown, known } = schema === undefined ? { unknown: [], known: obj } : unknownFields(schema, obj);
    const duplicates = opts.duplicates ?? [];
    if (unknown.length === 0 && duplicates.length === 0) return ok(obj);
    const errors = [...unknown.map((f) => `unknown field "${f}"`), ...duplicates.map((f) => `duplicate field "${f}"`)];
    const mode = opts.fieldValidation ?? "Ignore";
    if (mode === "Strict") return fail(refusal(`strict decoding error: ${errors.join(", ")}`));
    if (mode === "Warn") opts.warnings?.push(...errors);
    return ok(known as JsonObject);
  }

  create(
    t: ResourceType,
    namespace: string,
    body: Json,
    dryRun: boolean,
    opts: WriteOptions = {},
  ): Outcome<JsonObject> {
    const d = this.#decode(t, namespace, undefined, body);
    if (!d.ok) return d;
    const checked = this.#checkFields(t, d.value, opts, decodeRefusal(t));
    if (!checked.ok) return checked;
    const obj = checked.value;
    const m = meta(obj);
    if (
      (m["name"] === undefined || m["name"] === "") &&
      typeof m["generateName"] === "string" &&
      m["generateName"] !== ""
    )
      m["name"] = m["generateName"] + randomBytes(4).toString("hex").slice(0, 5);
    const causes = this.#validateMeta(t, obj);
    const name = str(m["name"]) ?? "";
    if (causes.length > 0) return fail(invalid(t.kind, t.group, name, causes));
    const nsErr = this.#namespaceExists(t, namespace);
    if (nsErr !== undefined) return fail(nsErr);
    if (this.store.get(t.storage, nsOf(t, namespace), name) !== undefined)
      return fail(alreadyExists({ resource: t.resource, group: t.group, name }));
    for (const f of ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"]) dropKey(m, f);
    m["uid"] = randomUUID();
    m["creationTimestamp"] = timestamp();
    if (t.generation) m["generation"] = 1;
    const kindCauses = this.#prepare(t, obj, undefined);
    if (kindCauses.length > 0) return fail(invalid(t.kind, t.group, name, kindCauses));
    if (t.storage === "services" && dryRun) this.services.release(obj);
    return ok(this.#commit(t, obj, undefined, dryRun));
  }

  /** PUT of the object or its /status, with the optimistic-concurrency check on metadata.resourceVersion. */
  update(
    t: ResourceType,
    namespace: string,
    name: string,
    subresource: string,
    body: Json,
    dryRun: boolean,
    opts: WriteOptions = {},
  ): Outcome<JsonObject> {
    const decoded = this.#decode(t, namespace, name, body);
    if (!decoded.ok) return decoded;
    const d = this.#checkFields(t, decoded.value, opts, decodeRefusal(t));
    if (!d.ok) return d;
    const cur = this.store.get(t.storage, nsOf(t, namespace), name);
    const lease = t.storage === "leases.coordination.k8s.io";
    if (cur === undefined) {
      // The Lease strategy allows create on update (pkg/registry/coordination/lease, AllowCreateOnUpdate).
      if (lease && subresource === "") return this.create(t, namespace, d.value, dryRun);
      return fail(notFound({ resource: t.resource, group: t.group, name }));
    }
    const rv = meta(d.value)["resourceVersion"];
    if (lease && (rv === undefined || rv === null || rv === ""))
      // ... but not an unconditional one (AllowUnconditionalUpdate false; the generic registry's Store.Update).
      return fail(
        invalid(t.resource, t.group, name, [
          {
            reason: "FieldValueInvalid",
            field: "metadata.resourceVersion",
            message: "Invalid value: 0x0: must be specified for an update",
          },
        ]),
      );
    return this.#replace(t, cur, d.value, subresource, dryRun);
  }

  #replace(
    t: ResourceType,
    cur: Entry,
    candidate: JsonObject,
    subresource: string,
    dryRun: boolean,
  ): Outcome<JsonObject> {
    const target = { resource: t.resource, group: t.group, name: str(meta(cur.obj)["name"]) ?? "" };
    const want = meta(candidate)["resourceVersion"];
    if (want !== undefined && want !== null && want !== "" && want !== meta(cur.obj)["resourceVersion"])
      return fail(conflict(target));
    const oldMeta = meta(cur.obj);
    let obj: JsonObject;
    if (subresource === "status") {
      // Status and metadata change; spec does not: the status strategy of built-in types such as Service resets
      // only spec (pkg/registry/core/service, serviceStatusStrategy.PrepareForUpdate), so every metadata change
      // of the request persists — labels, annotations, finalizers, owner references — except the fields the
      // registry keeps (restored below). The rest stays shared with the stored (immutable) object.
      const metadata: JsonObject = { ...meta(candidate) };
      for (const f of ["labels", "annotations", "finalizers", "ownerReferences"]) {
        const v = metadata[f];
        // Empty is absent, as the API stores it; not a map or list: kept, so the validation below refuses it.
        if (v === undefined || v === null || (isObject(v) && Object.keys(v).length === 0)) dropKey(metadata, f);
        else if (Array.isArray(v) && v.length === 0) dropKey(metadata, f);
      }
      obj = { ...cur.obj, metadata, status: candidate["status"] ?? null };
      if (obj["status"] === null) delete obj["status"];
    } else {
      obj = candidate;
      if (t.status) {
        if (cur.obj["status"] === undefined) delete obj["status"];
        else obj["status"] = clone(cur.obj["status"]);
      }
    }
    const m = meta(obj);
    for (const f of [
      "uid",
      "creationTimestamp",
      "deletionTimestamp",
      "deletionGracePeriodSeconds",
      "generation",
      "namespace",
      "name",
    ]) {
      const v = oldMeta[f];
      if (v === undefined) dropKey(m, f);
      else m[f] = v;
    }
    const causes = this.#validateMeta(t, obj);
    if (causes.length > 0) return fail(invalid(t.kind, t.group, target.name, causes));
    let kindCauses: Cause[] = [];
    if (subresource === "status") {
      if (t.storage === "services") kindCauses = validateServiceStatus(obj);
      else if (t.custom !== undefined) kindCauses = this.#prepareCustom(t, obj, cur.obj);
    } else {
      if (t.storage === "namespaces" || t.storage === "services") kindCauses = this.#prepare(t, obj, cur.obj);
      else kindCauses = this.#prepare(t, obj, cur.obj);
    }
    if (kindCauses.length > 0) return fail(invalid(t.kind, t.group, target.name, kindCauses));
    if (t.generation && subresource !== "status") {
      const rest = (o: JsonObject): JsonObject => {
        const r = { ...o };
        delete r["metadata"];
        delete r["status"];
        return r;
      };
      if (!jsonEqual(rest(obj), rest(cur.obj)))
        m["generation"] = (typeof oldMeta["generation"] === "number" ? oldMeta["generation"] : 0) + 1;
    }
    if (dryRun && t.storage === "services" && subresource !== "status") {
      this.services.release(obj);
      this.services.reserve(cur.obj);
    }
    return ok(this.#commit(t, obj, cur, dryRun, subresource === "status"));
  }

  patch(
    t: ResourceType,
    namespace: string,
    name: string,
    subresource: string,
    contentType: string,
    text: string,
    dryRun: boolean,
    opts: WriteOptions = {},
  ): Outcome<JsonObject> {
    const type = (contentType.split(";")[0] ?? "").trim();
    const apply = type === "application/apply-patch+yaml" || type === "application/apply-patch+json";
    const cur = this.store.get(t.storage, nsOf(t, namespace), name);
    if (cur === undefined && !apply) return fail(notFound({ resource: t.resource, group: t.group, name }));
    let patch: Json;
    try {
      if (type === "application/apply-patch+yaml") {
        const y = this.#applyYaml(text, opts);
        if (!y.ok) return y;
        patch = y.value;
      } else patch = JSON.parse(text) as Json;
    } catch (err: unknown) {
      const why = err instanceof Error ? err.message : String(err);
      return fail(badRequest(apply ? `error decoding YAML: ${why}` : `error decoding patch: ${why}`));
    }
    if (apply) return this.#apply(t, namespace, name, subresource, cur, patch, dryRun);
    if (cur === undefined) return fail(notFound({ resource: t.resource, group: t.group, name }));
    if (
      subresource === "status" &&
      isObject(patch) &&
      t.group !== "events.k8s.io" &&
      (type === "application/merge-patch+json" || type === "application/strategic-merge-patch+json")
    )
      return this.#patchStatus(t, cur, patch, type, dryRun, opts);
    const base = this.view(t, cur.obj);
    let patched: Json;
    if (type === "application/merge-patch+json") {
      if (!isObject(patch))
        return fail(badRequest("json: cannot unmarshal into Go value of type map[string]interface {}"));
      patched = mergePatch(base, patch);
    } else if (type === "application/strategic-merge-patch+json") {
      if (!isObject(patch))
        return fail(badRequest("json: cannot unmarshal into Go value of type map[string]interface {}"));
      const r = strategicMerge(base, patch);
      if (!r.ok) return fail(badRequest(r.error));
      patched = r.value;
    } else if (type === "application/json-patch+json") {
      if (!Array.isArray(patch))
        return fail(badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch"));
      const r = jsonPatch(base, patch);
      if (!r.ok) return fail({ code: 422, reason: "Invalid", message: r.error });
      patched = r.value;
    } else return fail(unsupportedMediaType(contentType));
    const decoded = this.#decode(t, namespace, name, patched, true);
    if (!decoded.ok) return decoded;
    // The patched object decodes into the Go type; the error quotes the patched JSON (merge and JSON patch) or
    // the strategic patch as Go prints a map.
    const quoted = (): string =>
      type === "application/strategic-merge-patch+json" ? goValue(patch) : JSON.stringify(patched);
    const d = this.#checkFields(t, decoded.value, opts, patchRefusal(quoted));
    if (!d.ok) return d;
    // A patch that leaves resourceVersion as it was carries no precondition.
    if (
      !(isObject(patch) && isObject(patch["metadata"]) && "resourceVersion" in patch["metadata"]) &&
      type !== "application/json-patch+json"
    )
      delete meta(d.value)["resourceVersion"];
    return this.#replace(t, cur, d.value, subresource, dryRun);
  }

  /**
   * An apply patch's YAML: non-strict decoding takes the last of a duplicate key (sigs.k8s.io/yaml, Unmarshal);
   * the strict one the apply patcher runs under Strict and Warn refuses or warns about it (applyPatcher).
   */
  #applyYaml(text: string, opts: WriteOptions): Outcome<Json> {
    const lenient = (): Outcome<Json> => ok(parseYaml(text, { uniqueKeys: false }) as Json);
    const mode = opts.fieldValidation ?? "Ignore";
    if (mode === "Ignore") return lenient();
    try {
      return ok(parseYaml(text) as Json);
    } catch (err: unknown) {
      if (!(err instanceof YAMLParseError) || err.code !== "DUPLICATE_KEY") throw err;
      const why = err.message.split("\n")[0] ?? err.message;
      if (mode === "Strict") return fail(badRequest(`error strict decoding YAML: ${why}`));
      opts.warnings?.push(why);
      return lenient();
    }
  }

  /**
   * Server-side apply, simplified: no managedFields and no field-ownership conflicts; the applied configuration
   * is merged over the live object, or creates it when there is none (handlers/patch.go: an apply patch forces
   * create-on-update). The applied configuration must declare every field, whatever `fieldValidation` says: the
   * field manager converts it to a typed value first (managedfields/internal, structuredMergeManager.Apply).
   */
  #apply(
    t: ResourceType,
    namespace: string,
    name: string,
    subresource: string,
    cur: Entry | undefined,
    patch: Json,
    dryRun: boolean,
  ): Outcome<JsonObject> {
    if (!isObject(patch)) return fail(badRequest("error decoding YAML: the applied configuration must be an object"));
    const version = typeof patch["apiVersion"] === "string" ? patch["apiVersion"] : "";
    if (version !== apiVersionOf(t))
      return fail(
        badRequest(
          `Incorrect version specified in apply patch. Specified patch version: ${version}, expected: ${apiVersionOf(t)}`,
        ),
      );
    const pm = isObject(patch["metadata"]) ? patch["metadata"] : {};
    if (pm["managedFields"] !== undefined && pm["managedFields"] !== null)
      return fail(badRequest("metadata.managedFields must be nil"));
    const schema = schemaOf(t);
    const unknown = schema === undefined ? [] : unknownFields(schema, patch).unknown;
    if (unknown.length > 0) {
      const errors = unknown.map((f) => `.${f}: field not declared in schema`);
      const why = errors.length === 1 ? errors[0] : ["errors:", ...errors.map((e) => `  ${e}`)].join("\n");
      // A plain error in kube-apiserver: 500 with no reason (responsewriters, ErrorToAPIStatus).
      return fail({
        code: 500,
        reason: "",
        message: `failed to create typed patch object (${t.namespaced ? namespace : ""}/${name}; ${gvkString(t)}): ${why}`,
      });
    }
    if (cur === undefined) {
      if (subresource !== "") return fail(notFound({ resource: t.resource, group: t.group, name }));
      const d = this.#decode(t, namespace, name, patch, true);
      if (!d.ok) return d;
      return this.create(t, namespace, d.value, dryRun);
    }
    const r = strategicMerge(this.view(t, cur.obj), patch);
    if (!r.ok) return fail(badRequest(r.error));
    const d = this.#decode(t, namespace, name, r.value, true);
    if (!d.ok) return d;
    if (!("resourceVersion" in pm)) delete meta(d.value)["resourceVersion"];
    return this.#replace(t, cur, d.value, subresource, dryRun);
  }

  /**
   * The hot path of controllers (status PATCH): only `status` and a resourceVersion precondition of the patch
   * matter on /status, so the stored object is neither copied nor re-validated beyond its status.
   */
  #patchStatus(
    t: ResourceType,
    cur: Entry,
    patch: JsonObject,
    type: string,
    dryRun: boolean,
    opts: WriteOptions,
  ): Outcome<JsonObject> {
    const old = cur.obj["status"];
    let p = patch["status"];
    if (p !== undefined) {
      const checked = this.#checkFields(
        t,
        { status: p },
        opts,
        patchRefusal(() => goValue(patch)),
      );
      if (!checked.ok) return checked;
      p = checked.value["status"];
    }
    let status: Json | undefined;
    if (p === undefined) status = old;
    else if (type === "application/merge-patch+json") status = mergePatch(old, p);
    else {
      const r = strategicMerge(old, p, "status");
      if (!r.ok) return fail(badRequest(r.error));
      status = r.value;
    }
    const pm = isObject(patch["metadata"]) ? patch["metadata"] : {};
    const oldMeta = meta(cur.obj);
    // Every metadata field of the patch applies, as on the object (strategic merge of metadata is a merge too:
    // finalizers and owner references are replaced as lists, maps merged key by key).
    const merged = mergePatch(oldMeta, pm);
    const metadata: JsonObject = {
      ...(isObject(merged) ? merged : {}),
      resourceVersion: pm["resourceVersion"] ?? null,
    };
    const candidate: JsonObject = {
      metadata,
      status: status === undefined ? null : clone(status),
    };
    return this.#replace(t, cur, candidate, "status", dryRun);
  }

  delete(
    t: ResourceType,
    namespace: string,
    name: string,
    body: Json | undefined,
    dryRun: boolean,
  ): Outcome<JsonObject> {
    const cur = this.store.get(t.storage, nsOf(t, namespace), name);
    const target = { resource: t.resource, group: t.group, name };
    if (cur === undefined) return fail(notFound(target));
    const pre = isObject(body) && isObject(body["preconditions"]) ? body["preconditions"] : {};
    const m = meta(cur.obj);
    if (pre["uid"] !== undefined && pre["uid"] !== null && pre["uid"] !== m["uid"])
      return fail(
        conflict(
          target,
          `Precondition failed: UID in precondition: ${String(pre["uid"])}, UID in object meta: ${String(m["uid"])}`,
        ),
      );
    if (
      pre["resourceVersion"] !== undefined &&
      pre["resourceVersion"] !== null &&
      pre["resourceVersion"] !== m["resourceVersion"]
    )
      return fail(
        conflict(
          target,
          `Precondition failed: ResourceVersion in precondition: ${String(pre["resourceVersion"])}, ResourceVersion in object meta: ${String(m["resourceVersion"])}`,
        ),
      );
    if (dryRun) return ok(cur.obj);
    if (Array.isArray(m["finalizers"]) && m["finalizers"].length > 0 && t.storage !== "namespaces") {
      if (m["deletionTimestamp"] !== undefined) return ok(cur.obj);
      const obj = clone(cur.obj);
      meta(obj)["deletionTimestamp"] = timestamp();
      meta(obj)["deletionGracePeriodSeconds"] = 0;
      return ok(this.#commit(t, obj, undefined, false));
    }
    if (t.storage === "namespaces") this.#emptyNamespace(name);
    const rv = this.store.nextVersion();
    const tomb = { ...cur.obj, metadata: { ...m, resourceVersion: String(rv) } };
    this.#released(t, tomb);
    this.store.remove(t.storage, nsOf(t, namespace), name, tomb, rv);
    return ok(tomb);
  }

  /** Namespace deletion removes everything in it at once (the namespace controller's work, done inline). */
  #emptyNamespace(ns: string): void {
    const done = new Set<string>();
    for (const t of this.registry.all()) {
      if (!t.namespaced || done.has(t.storage)) continue;
      done.add(t.storage);
      for (const e of this.store.list(t.storage, ns)) {
        const rv = this.store.nextVersion();
        const tomb = { ...e.obj, metadata: { ...meta(e.obj), resourceVersion: String(rv) } };
        this.#released(t, tomb);
        this.store.remove(t.storage, ns, str(meta(e.obj)["name"]) ?? "", tomb, rv);
      }
    }
  }

  deleteCollection(
    t: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
    dryRun: boolean,
  ): Outcome<string> {
    const sel = this.selection(t, query);
    if (!sel.ok) return sel;
    const items: string[] = [];
    for (const e of this.store.list(t.storage, t.namespaced ? namespace : undefined)) {
      if (!this.matches(t, sel.value, e.obj)) continue;
      const m = meta(e.obj);
      const r = this.delete(t, str(m["namespace"]) ?? "", str(m["name"]) ?? "", undefined, dryRun);
      if (r.ok) items.push(JSON.stringify(this.view(t, r.value)));
    }
    return ok(
      `{"kind":"${t.kind}List","apiVersion":"${apiVersionOf(t)}","metadata":{"resourceVersion":"${this.store.resourceVersion}"},"items":[${items.join(",")}]}`,
    );
  }

  /** Creates an object at startup (default namespaces, the `kubernetes` Service). */
  seed(t: ResourceType, obj: JsonObject): void {
    const r = this.create(t, str(meta(obj)["namespace"]) ?? "", obj, false);
    if (!r.ok) throw new Error(`sandbox seed failed: ${r.error.message}`);
  }
}
