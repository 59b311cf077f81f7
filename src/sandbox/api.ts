import { randomBytes, randomUUID } from "node:crypto";
import { parse as parseYaml } from "yaml";
import { fromEventsV1, toEventsV1 } from "./events.ts";
import { clone, dropKey, isObject, jsonEqual, meta, str, timestamp, type Json, type JsonObject } from "./json.ts";
import { jsonPatch, mergePatch, strategicMerge } from "./patch.ts";
import { apiVersionOf, resourceTypes, type ResourceType } from "./resources.ts";
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  type FieldRequirement,
  type Requirement,
} from "./selectors.ts";
import { ServiceRules, validateServiceStatus } from "./service.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  invalid,
  notFound,
  unsupportedMediaType,
  type ApiError,
  type Cause,
} from "./status.ts";
import type { Store } from "./store.ts";
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

/** Key of an object inside its storage: "" namespace for cluster-scoped resources. */
const nsOf = (t: ResourceType, namespace: string): string => (t.namespaced ? namespace : "");
/** A /status write changes status, labels and annotations only (see #replace): the same of those is no change. */
const sameStatusWrite = (a: JsonObject, b: JsonObject): boolean =>
  jsonEqual(a["status"], b["status"]) &&
  jsonEqual(meta(a)["labels"], meta(b)["labels"]) &&
  jsonEqual(meta(a)["annotations"], meta(b)["annotations"]);

/**
 * The API semantics of the sandbox, independent of HTTP: versioned objects, optimistic concurrency, status
 * subresources, defaulting and validation, selectors and pagination, over the Store.
 */
export class Api {
  readonly store: Store;
  readonly services: ServiceRules;

  constructor(store: Store, services: ServiceRules = new ServiceRules()) {
    this.store = store;
    this.services = services;
  }

  /** The object as the resource type's API version shows it. */
  view(t: ResourceType, obj: JsonObject): JsonObject {
    return t.group === "events.k8s.io" ? toEventsV1(obj) : obj;
  }

  /** The response body for an object just written: the stored entry's cached JSON when it is the same object. */
  written(t: ResourceType, obj: JsonObject): string {
    const m = meta(obj);
    const e = this.store.get(t.storage, nsOf(t, str(m["namespace"]) ?? ""), str(m["name"]) ?? "");
    return e !== undefined && e.obj === obj ? this.viewJson(t, e) : JSON.stringify(this.view(t, obj));
  }

  viewJson(t: ResourceType, e: Entry): string {
    return t.group === "events.k8s.io" ? JSON.stringify(toEventsV1(e.obj)) : serialize(e);
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
    const rv = this.store.resourceVersion;
    const key = (e: Entry): string => {
      const m = meta(e.obj);
      return `${str(m["namespace"]) ?? ""}/${str(m["name"]) ?? ""}`;
    };
    let entries = this.store.list(t.storage, t.namespaced ? namespace : undefined).map((e) => [key(e), e] as const);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const cont = query.get("continue");
    if (cont !== null && cont !== "") {
      let start: unknown;
      try {
        start = (JSON.parse(Buffer.from(cont, "base64url").toString("utf8")) as { start?: unknown }).start;
      } catch {
        start = undefined;
      }
      if (typeof start !== "string") return fail(badRequest(`continue key is not valid: ${cont}`));
      entries = entries.filter(([k]) => k > start);
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
        return [];
    }
  }

  #validateEvent(t: ResourceType, obj: JsonObject, old: JsonObject | undefined): Cause[] {
    const causes: Cause[] = [];
    const ns = str(meta(obj)["namespace"]) ?? "";
    const involved = isObject(obj["involvedObject"]) ? obj["involvedObject"] : undefined;
    const field = t.group === "events.k8s.io" ? "regarding" : "involvedObject";
    const ins = involved === undefined ? undefined : str(involved["namespace"]);
    if (ins !== undefined && ins !== "" && ins !== ns)
      causes.push({
        reason: "FieldValueInvalid",
        field: `${field}.namespace`,
        message: `Invalid value: "${ins}": does not match event.namespace`,
      });
    if (t.group === "events.k8s.io" && old === undefined) {
      const need: [string, string][] = [
        ["eventTime", "eventTime"],
        ["reportingComponent", "reportingController"],
        ["reportingInstance", "reportingInstance"],
        ["action", "action"],
        ["reason", "reason"],
      ];
      for (const [coreField, v1Field] of need)
        if (typeof obj[coreField] !== "string" || obj[coreField] === "")
          causes.push({ reason: "FieldValueRequired", field: v1Field, message: "Required value" });
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
    return obj;
  }

  #released(t: ResourceType, obj: JsonObject): void {
    if (t.storage === "services") this.services.release(obj);
  }

  create(t: ResourceType, namespace: string, body: Json, dryRun: boolean): Outcome<JsonObject> {
    const d = this.#decode(t, namespace, undefined, body);
    if (!d.ok) return d;
    const obj = d.value;
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
  ): Outcome<JsonObject> {
    const d = this.#decode(t, namespace, name, body);
    if (!d.ok) return d;
    const cur = this.store.get(t.storage, nsOf(t, namespace), name);
    if (cur === undefined) return fail(notFound({ resource: t.resource, group: t.group, name }));
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
      // Status and metadata change; spec does not (kube-apiserver's status strategy of built-in types such as
      // Service resets only spec, so labels and annotations written through /status persist). The rest stays
      // shared with the stored (immutable) object.
      const newMeta = meta(candidate);
      const metadata: JsonObject = { ...oldMeta };
      for (const f of ["labels", "annotations"]) {
        const v = newMeta[f];
        // Not a map: kept, so the validation below refuses it (as on the object) instead of it removing them all.
        if (v === undefined || v === null || (isObject(v) && Object.keys(v).length === 0)) dropKey(metadata, f);
        else metadata[f] = v;
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
  ): Outcome<JsonObject> {
    const cur = this.store.get(t.storage, nsOf(t, namespace), name);
    if (cur === undefined) return fail(notFound({ resource: t.resource, group: t.group, name }));
    const type = (contentType.split(";")[0] ?? "").trim();
    let patch: Json;
    try {
      patch = (type === "application/apply-patch+yaml" ? parseYaml(text) : JSON.parse(text)) as Json;
    } catch (err: unknown) {
      return fail(badRequest(`error decoding patch: ${err instanceof Error ? err.message : String(err)}`));
    }
    if (
      subresource === "status" &&
      isObject(patch) &&
      t.group !== "events.k8s.io" &&
      (type === "application/merge-patch+json" || type === "application/strategic-merge-patch+json")
    )
      return this.#patchStatus(t, cur, patch, type, dryRun);
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
    } else if (type === "application/apply-patch+yaml" || type === "application/apply-patch+json") {
      // Server-side apply, simplified: the applied configuration is merged over the live object.
      if (!isObject(patch)) return fail(badRequest("apply patch must be an object"));
      const r = strategicMerge(base, patch);
      if (!r.ok) return fail(badRequest(r.error));
      patched = r.value;
    } else return fail(unsupportedMediaType(contentType));
    const d = this.#decode(t, namespace, name, patched, true);
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
   * The hot path of controllers (status PATCH): only `status` and a resourceVersion precondition of the patch
   * matter on /status, so the stored object is neither copied nor re-validated beyond its status.
   */
  #patchStatus(t: ResourceType, cur: Entry, patch: JsonObject, type: string, dryRun: boolean): Outcome<JsonObject> {
    const old = cur.obj["status"];
    const p = patch["status"];
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
    const metadata: JsonObject = { resourceVersion: pm["resourceVersion"] ?? null };
    for (const f of ["labels", "annotations"]) {
      const merged = pm[f] === undefined ? oldMeta[f] : mergePatch(oldMeta[f] ?? {}, pm[f] ?? null);
      if (merged !== undefined && merged !== null) metadata[f] = merged;
    }
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
    for (const t of resourceTypes) {
      if (!t.namespaced || t.group === "events.k8s.io") continue;
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
