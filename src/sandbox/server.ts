import type { IncomingMessage, ServerResponse } from "node:http";
import { parse as parseYaml } from "yaml";
import type { Api, FieldValidation, WriteOptions } from "./api.ts";
import type { Audit } from "./audit.ts";
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  openApiGroupVersion,
  openApiRoot,
  version,
} from "./discovery.ts";
import type { Faults } from "./faults.ts";
import { duplicateFields, isObject, meta, str, type Json, type JsonObject } from "./json.ts";
import { apiVersionOf, type Registry, type ResourceType } from "./resources.ts";
import {
  badRequest,
  conflict,
  gone,
  internalError,
  invalid,
  methodNotAllowed,
  notFoundPath,
  statusBody,
  tooLarge,
  type ApiError,
  type Cause,
} from "./api-errors.ts";
import { openApiV2 } from "./openapi-v2.ts";
import { decodeProtobuf } from "./protobuf.ts";
import type { StoreEvent } from "./store.ts";
import { table, wantsTable } from "./table.ts";

const MAX_BODY = 3 * 1024 * 1024;
/** A watcher further behind than this is cut off (the real server drops slow watchers too). */
const MAX_WATCH_BUFFER = 64 * 1024 * 1024;

/** What a request asks for, in the terms RBAC and the fault injector use. */
export interface RequestAttributes {
  readonly verb: string;
  readonly type: ResourceType;
  readonly namespace: string;
  readonly name: string;
  readonly subresource: string;
}

/** Decides whether a request may proceed: undefined = allowed, else the 401/403 to send. */
export type Gate = (req: IncomingMessage, attrs: RequestAttributes | undefined, path: string) => ApiError | undefined;

export interface HandlerOptions {
  readonly api: Api;
  readonly audit: Audit;
  readonly faults: Faults;
  readonly gate: Gate;
  readonly address: () => string;
  readonly bookmarkIntervalMs: number;
  /** Answers a SelfSubjectAccessReview for the requesting user. */
  readonly accessReview: (req: IncomingMessage, review: JsonObject) => JsonObject;
  /** Extra paths served before the API (the fault endpoint, token minting). */
  readonly extra: (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    body: () => Promise<string | undefined>,
  ) => boolean;
}

interface Route {
  readonly type: ResourceType;
  readonly namespace: string;
  readonly name: string;
  readonly subresource: string;
  readonly watchPath: boolean;
}

type Parsed = Route | "notfound";

/** /api/v1/[watch/][namespaces/NS/]RES[/NAME[/SUB]] and /apis/G/V/…; undefined when it is not a resource path. */
export function parseResourcePath(registry: Registry, path: string): Parsed | undefined {
  try {
    return parsePath(registry, path);
  } catch {
    return "notfound"; // a malformed %-escape in a name or namespace
  }
}

function parsePath(registry: Registry, path: string): Parsed | undefined {
  const segs = path.split("/").filter((s) => s !== "");
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === "api" && segs.length >= 3) {
    group = "";
    version = segs[1] ?? "";
    rest = segs.slice(2);
  } else if (segs[0] === "apis" && segs.length >= 4) {
    group = segs[1] ?? "";
    version = segs[2] ?? "";
    rest = segs.slice(3);
  } else return undefined;
  let watchPath = false;
  if (rest[0] === "watch") {
    watchPath = true;
    rest = rest.slice(1);
  }
  let namespace = "";
  if (
    rest[0] === "namespaces" &&
    rest.length >= 3 &&
    registry.find(group, version, rest[2] ?? "")?.namespaced === true
  ) {
    namespace = decodeURIComponent(rest[1] ?? "");
    rest = rest.slice(2);
  }
  const [res, name, sub, ...more] = rest;
  if (res === undefined || more.length > 0) return "notfound";
  const type = registry.find(group, version, res);
  if (type === undefined) return "notfound";
  if (namespace !== "" && !type.namespaced) return "notfound";
  const subresource = sub ?? "";
  if (
    subresource !== "" &&
    !(subresource === "status" && type.status) &&
    !(subresource === "finalize" && type.resource === "namespaces")
  )
    return "notfound";
  return { type, namespace, name: name === undefined ? "" : decodeURIComponent(name), subresource, watchPath };
}

export function verbOf(method: string, route: Route, query: URLSearchParams): string | undefined {
  const watch = route.watchPath || query.get("watch") === "true" || query.get("watch") === "1";
  switch (method) {
    case "GET":
    case "HEAD":
      return watch ? "watch" : route.name === "" ? "list" : "get";
    case "POST":
      return route.name === "" ? "create" : undefined;
    case "PUT":
      return route.name === "" ? undefined : "update";
    case "PATCH":
      return route.name === "" ? undefined : "patch";
    case "DELETE":
      return route.name === "" ? "deletecollection" : "delete";
    default:
      return undefined;
  }
}

export function sendJson(
  res: ServerResponse,
  code: number,
  body: string,
  headers: Record<string, string | string[]> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(code, { "content-type": "application/json", "cache-control": "no-cache, private", ...headers });
  res.end(body);
}

export function sendError(res: ServerResponse, e: ApiError): void {
  sendJson(
    res,
    e.code,
    JSON.stringify(statusBody(e)),
    e.retryAfterSeconds === undefined ? {} : { "retry-after": String(e.retryAfterSeconds) },
  );
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // An oversized body is drained, not reset, so the client reads the 413 instead of a broken connection.
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on("end", () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * Pure: when a watch's next BOOKMARK is due, as kube-apiserver's cacher schedules it
 * (staging/src/k8s.io/apiserver/pkg/storage/cacher, cacheWatcher.nextBookmarkTime): `every` after the last one
 * (a minute there), but 2 s before the watch's deadline when that comes first; none once that moment has passed.
 */
export function nextBookmarkAt(from: number, every: number, deadline: number | undefined): number | undefined {
  let at = from + every;
  if (deadline !== undefined && deadline - 2000 < at) at = deadline - 2000;
  return at <= from ? undefined : at;
}

/**
 * A watch's list options as kube-apiserver checks them (staging/src/k8s.io/apimachinery/pkg/apis/meta/
 * internalversion/validation, validateWatchOptions, with the WatchList feature on as in 1.32).
 */
export function watchOptionProblems(query: URLSearchParams): Cause[] {
  const causes: Cause[] = [];
  const match = query.get("resourceVersionMatch") ?? "";
  const send = query.get("sendInitialEvents");
  if (send !== null && match !== "NotOlderThan")
    causes.push({
      reason: "FieldValueForbidden",
      field: "resourceVersionMatch",
      message: "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
    });
  if (match !== "") {
    if (send === null)
      causes.push({
        reason: "FieldValueForbidden",
        field: "resourceVersionMatch",
        message: "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
      });
    if (match !== "NotOlderThan")
      causes.push({
        reason: "FieldValueNotSupported",
        field: "resourceVersionMatch",
        message: `Unsupported value: "${match}": supported values: "NotOlderThan"`,
      });
    if ((query.get("continue") ?? "") !== "")
      causes.push({
        reason: "FieldValueForbidden",
        field: "resourceVersionMatch",
        message: "Forbidden: resourceVersionMatch is forbidden when continue is provided",
      });
  }
  return causes;
}

/**
 * Why kube-apiserver refuses a write's `fieldManager`: more than 128 bytes or a character that is not printable
 * (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation, ValidateFieldManager); undefined when fine.
 */
export function fieldManagerProblem(manager: string): string | undefined {
  if (Buffer.byteLength(manager) > 128) return "Too long: may not be more than 128 bytes";
  for (const ch of manager)
    if (!/^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u.test(ch))
      return `Invalid value: invalid character U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
  return undefined;
}

const FIELD_VALIDATION = ["", "Ignore", "Strict", "Warn"];

/**
 * The write options kube-apiserver refuses with 422 before it reads the body (staging/src/k8s.io/apimachinery/
 * pkg/apis/meta/v1/validation, ValidateCreateOptions / ValidateUpdateOptions / ValidatePatchOptions).
 */
export function writeOptionProblems(verb: string, query: URLSearchParams, contentType: string): Cause[] {
  const causes: Cause[] = [];
  const manager = query.get("fieldManager") ?? "";
  if (verb === "patch") {
    const apply = (contentType.split(";")[0] ?? "").trim().startsWith("application/apply-patch+");
    if (!apply && query.get("force") !== null)
      causes.push({
        reason: "FieldValueForbidden",
        field: "force",
        message: "Forbidden: may not be specified for non-apply patch",
      });
    if (apply && manager === "")
      causes.push({
        reason: "FieldValueRequired",
        field: "fieldManager",
        message: "Required value: is required for apply patch",
      });
  }
  const bad = fieldManagerProblem(manager);
  if (bad !== undefined) causes.push({ reason: "FieldValueInvalid", field: "fieldManager", message: bad });
  const validation = query.get("fieldValidation") ?? "";
  if (!FIELD_VALIDATION.includes(validation))
    causes.push({
      reason: "FieldValueNotSupported",
      field: "fieldValidation",
      message: `Unsupported value: "${validation}": supported values: ${FIELD_VALIDATION.map((v) => `"${v}"`).join(", ")}`,
    });
  return causes;
}

/** A `Warning` header value (RFC 7234 §5.5, code 299 as kube-apiserver sends them): the text quoted and escaped. */
export const warningHeader = (text: string): string => `299 - ${JSON.stringify(text)}`;

/** Decodes a create/update body: JSON, YAML when the client says so, or protobuf for the kinds kubectl sends so. */
function decodeBody(body: Buffer, contentType: string): { ok: true; value: Json } | { ok: false; error: ApiError } {
  const type = (contentType.split(";")[0] ?? "").trim();
  if (type === "application/vnd.kubernetes.protobuf") {
    const r = decodeProtobuf(body);
    return r.ok ? r : { ok: false, error: { code: 415, reason: "UnsupportedMediaType", message: r.error } };
  }
  try {
    const text = body.toString("utf8");
    const value = (type === "application/yaml" ? parseYaml(text) : JSON.parse(text)) as Json;
    return { ok: true, value };
  } catch (err: unknown) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, error: badRequest(`couldn't get version/kind; json parse error: ${why}`) };
  }
}

/** The request handler of the sandbox API server. Every failure becomes a Status reply; nothing throws out. */
export class Handler {
  readonly #o: HandlerOptions;
  readonly #watches = new Set<ServerResponse>();

  constructor(o: HandlerOptions) {
    this.#o = o;
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  closeWatches(): number {
    const n = this.#watches.size;
    for (const res of [...this.#watches]) res.end();
    this.#watches.clear();
    return n;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#handle(req, res).catch((err: unknown) => {
      sendError(res, internalError(err instanceof Error ? err.message : String(err)));
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sandbox");
    const path = url.pathname;
    const method = req.method ?? "GET";
    if (this.#o.extra(req, res, path, () => readBody(req).then((b) => b?.toString("utf8")))) return;
    const route = parseResourcePath(this.#o.api.registry, path);
    if (route === undefined) {
      const denied = this.#o.gate(req, undefined, path);
      if (denied !== undefined) return sendError(res, denied);
      return this.#nonResource(res, path, req.headers.accept);
    }
    if (route === "notfound") return sendError(res, notFoundPath());
    const verb = verbOf(method, route, url.searchParams);
    if (verb === undefined) return sendError(res, methodNotAllowed(method, `${route.type.resource}`));
    const attrs: RequestAttributes = {
      verb,
      type: route.type,
      namespace: route.namespace,
      name: route.name,
      subresource: route.subresource,
    };
    const write = verb === "create" || verb === "update" || verb === "patch";
    const record = {
      at: Date.now(),
      verb,
      resource: route.subresource === "" ? route.type.resource : `${route.type.resource}/${route.subresource}`,
      namespace: route.namespace,
      name: route.name,
      query: url.search.slice(1),
      userAgent: req.headers["user-agent"] ?? "",
      fieldManager: write ? (url.searchParams.get("fieldManager") ?? "") : "",
      code: 0,
    };
    this.#o.audit.record(record);
    res.once("close", () => (record.code = res.statusCode));
    const denied = this.#o.gate(req, attrs, path);
    if (denied !== undefined) return sendError(res, denied);
    const f = this.#o.faults;
    const delay = f.latencyFor(verb, route.type.resource, route.subresource);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const injected = f.takeFailure(verb, route.type.resource, route.subresource, () =>
      conflict({ resource: route.type.resource, group: route.type.group, name: route.name }),
    );
    if (injected !== undefined) return sendError(res, injected);
    const query = url.searchParams;
    if (write) {
      const problems = writeOptionProblems(verb, query, req.headers["content-type"] ?? "");
      if (problems.length > 0)
        return sendError(
          res,
          invalid(
            verb === "create" ? "CreateOptions" : verb === "update" ? "UpdateOptions" : "PatchOptions",
            "meta.k8s.io",
            "",
            problems,
          ),
        );
    }
    const dryRun = query.getAll("dryRun").includes("All");
    const asTable = wantsTable(req.headers.accept);
    const includeObject = query.get("includeObject") ?? "Metadata";
    const { api } = this.#o;
    const t = route.type;
    // An empty fieldValidation is Warn (handlers, fieldValidation()): unknown fields are dropped with a warning.
    const warnings: string[] = [];
    const fieldValidation = (query.get("fieldValidation") || "Warn") as FieldValidation;
    const contentType = req.headers["content-type"] ?? "application/json";
    /** Duplicate keys matter only to a strict decoder; only JSON reaches here with them (YAML refuses them). */
    const optsFor = (body: Buffer): WriteOptions => ({
      fieldValidation,
      warnings,
      ...(fieldValidation !== "Ignore" && /json/.test(contentType) && !/json-patch/.test(contentType)
        ? { duplicates: duplicateFields(body.toString("utf8")) }
        : {}),
    });
    const reply = (r: { ok: true; value: JsonObject } | { ok: false; error: ApiError }, code = 200): void =>
      r.ok
        ? sendJson(
            res,
            code,
            api.written(t, r.value),
            warnings.length === 0 ? {} : { warning: warnings.map(warningHeader) },
          )
        : sendError(res, r.error);
    const needBody = async (): Promise<{ ok: true; value: Buffer } | { ok: false; error: ApiError }> => {
      const text = await readBody(req);
      return text === undefined ? { ok: false, error: tooLarge() } : { ok: true, value: text };
    };
    switch (verb) {
      case "get": {
        if (route.subresource === "finalize") return sendError(res, methodNotAllowed(method, "namespaces/finalize"));
        const r = api.get(t, route.namespace, route.name);
        if (!r.ok) return sendError(res, r.error);
        if (asTable) {
          const tab = table(
            t,
            [r.value.obj],
            [api.view(t, r.value.obj)],
            { resourceVersion: String(r.value.rv) },
            includeObject,
          );
          return sendJson(res, 200, JSON.stringify(tab));
        }
        return sendJson(res, 200, api.viewJson(t, r.value));
      }
      case "list": {
        const ns = route.namespace === "" ? undefined : route.namespace;
        if (asTable) {
          const r = api.listEntries(t, ns, query);
          if (!r.ok) return sendError(res, r.error);
          const objs = r.value.entries.map((e) => e.obj);
          const tab = table(
            t,
            objs,
            objs.map((o) => api.view(t, o)),
            r.value.listMeta,
            includeObject,
          );
          return sendJson(res, 200, JSON.stringify(tab));
        }
        const r = api.list(t, ns, query);
        return r.ok ? sendJson(res, 200, r.value) : sendError(res, r.error);
      }
      case "watch":
        return this.#watch(req, res, route, query);
      case "create": {
        const b = await needBody();
        if (!b.ok) return sendError(res, b.error);
        const d = decodeBody(b.value, req.headers["content-type"] ?? "application/json");
        if (!d.ok) return sendError(res, d.error);
        if (t.resource === "selfsubjectaccessreviews")
          return sendJson(res, 201, JSON.stringify(this.#o.accessReview(req, isObject(d.value) ? d.value : {})));
        return reply(api.create(t, route.namespace, d.value, dryRun, optsFor(b.value)), 201);
      }
      case "update": {
        const b = await needBody();
        if (!b.ok) return sendError(res, b.error);
        const d = decodeBody(b.value, req.headers["content-type"] ?? "application/json");
        if (!d.ok) return sendError(res, d.error);
        // A PUT that creates (a Lease) answers 201 Created.
        const existed = api.get(t, route.namespace, route.name).ok;
        return reply(
          api.update(
            t,
            route.namespace,
            route.name,
            route.subresource === "finalize" ? "" : route.subresource,
            d.value,
            dryRun,
            optsFor(b.value),
          ),
          existed ? 200 : 201,
        );
      }
      case "patch": {
        const b = await needBody();
        if (!b.ok) return sendError(res, b.error);
        // An apply patch of a missing object creates it: 201 Created.
        const existed = api.get(t, route.namespace, route.name).ok;
        return reply(
          api.patch(
            t,
            route.namespace,
            route.name,
            route.subresource,
            req.headers["content-type"] ?? "",
            b.value.toString("utf8"),
            dryRun,
            optsFor(b.value),
          ),
          existed ? 200 : 201,
        );
      }
      case "delete": {
        const b = await needBody();
        if (!b.ok) return sendError(res, b.error);
        let opts: Json | undefined;
        if (b.value.toString("utf8").trim() !== "") {
          const d = decodeBody(b.value, "application/json");
          if (!d.ok) return sendError(res, d.error);
          opts = d.value;
        }
        return reply(api.delete(t, route.namespace, route.name, opts, dryRun));
      }
      case "deletecollection": {
        const r = api.deleteCollection(t, route.namespace === "" ? undefined : route.namespace, query, dryRun);
        return r.ok ? sendJson(res, 200, r.value) : sendError(res, r.error);
      }
    }
  }

  #nonResource(res: ServerResponse, path: string, accept: string | undefined): void {
    const p = path.replace(/\/+$/, "");
    if (p === "/version") return sendJson(res, 200, version());
    if (p === "/api") return sendJson(res, 200, apiVersions(this.#o.address()));
    if (p === "/apis") return sendJson(res, 200, apiGroupList(this.#o.api.registry));
    if (p === "/healthz" || p === "/readyz" || p === "/livez") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    if (p === "/openapi/v2") {
      // client-go asks for the gnostic protobuf (discovery, OpenAPISchema); JSON for anyone else.
      const doc = openApiV2(this.#o.api.registry);
      if (!/protobuf/.test(accept ?? "")) return sendJson(res, 200, doc.json);
      res.writeHead(200, { "content-type": "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" });
      res.end(doc.protobuf);
      return;
    }
    if (p === "/openapi/v3") return sendJson(res, 200, openApiRoot(this.#o.api.registry));
    if (p.startsWith("/openapi/v3/")) {
      const doc = openApiGroupVersion(this.#o.api.registry, p.slice("/openapi/v3/".length));
      if (doc !== undefined) return sendJson(res, 200, doc);
    }
    const registry = this.#o.api.registry;
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)(?:\/([^/]+))?)$/.exec(p);
    if (m !== null) {
      const body =
        m[1] !== undefined
          ? apiResourceList(registry, "", m[1])
          : m[3] === undefined
            ? apiGroup(registry, m[2] ?? "")
            : apiResourceList(registry, m[2] ?? "", m[3]);
      if (body !== undefined) return sendJson(res, 200, body);
    }
    return sendError(res, notFoundPath());
  }

  #watch(req: IncomingMessage, res: ServerResponse, route: Route, query: URLSearchParams): void {
    const { api, faults } = this.#o;
    const t = route.type;
    const sel = api.selection(t, query);
    if (!sel.ok) return sendError(res, sel.error);
    const rvText = query.get("resourceVersion") ?? "";
    const rv = Number(rvText);
    if (rvText !== "" && !(Number.isInteger(rv) && rv >= 0))
      return sendError(res, badRequest(`invalid resource version: ${rvText}`));
    const options = watchOptionProblems(query);
    if (options.length > 0) return sendError(res, invalid("ListOptions", "meta.k8s.io", "", options));
    // sendInitialEvents (the WatchList feature, beta and on in kube-apiserver 1.32): true = the current state as
    // ADDED events whatever resourceVersion says, then a BOOKMARK marking their end; false = changes only, from
    // resourceVersion or (unset, "0") from now. Without it, the legacy rule: unset or "0" sends the state first.
    const sendInitial = query.get("sendInitialEvents");
    const initialState = sendInitial === null ? rvText === "" || rv === 0 : sendInitial === "true";
    const allowBookmarks = query.get("allowWatchBookmarks") === "true";
    res.writeHead(200, {
      "content-type": "application/json",
      "cache-control": "no-cache, private",
      "transfer-encoding": "chunked",
    });
    // Clients (client-node's fetch) wait for the headers before they consider the watch established.
    res.flushHeaders();
    const namespace = route.namespace === "" ? undefined : route.namespace;
    const view = t.group;
    const asTable = wantsTable(req.headers.accept);
    const includeObject = query.get("includeObject") ?? "Metadata";
    let columnsSent = false;
    /** kubectl get -w asks for Table events: one row each, the column definitions with the first. */
    const tableLine = (type: string, obj: JsonObject): string => {
      const tab = table(
        t,
        [obj],
        [api.view(t, obj)],
        { resourceVersion: str(meta(obj)["resourceVersion"]) ?? "" },
        includeObject,
        !columnsSent,
      );
      columnsSent = true;
      return `{"type":"${type}","object":${JSON.stringify(tab)}}\n`;
    };
    const line = (ev: StoreEvent, type: string): string => {
      if (asTable) return tableLine(type, ev.entry.obj);
      const key = `${view}|${type}`;
      let l = ev.lines.get(key);
      if (l === undefined) {
        l = `{"type":"${type}","object":${api.viewJson(t, ev.entry)}}\n`;
        ev.lines.set(key, l);
      }
      return l;
    };
    const expired = (oldest: number): void => {
      const body = statusBody(gone(rvText, oldest));
      res.end(`{"type":"ERROR","object":${JSON.stringify(body)}}\n`);
    };
    if (faults.takeWatchExpiry()) return expired(api.store.resourceVersion);
    const nameFilter = route.name;
    const selected = (obj: JsonObject): boolean => {
      if (nameFilter !== "" && (isObject(obj["metadata"]) ? obj["metadata"]["name"] : undefined) !== nameFilter)
        return false;
      return api.matches(t, sel.value, obj);
    };
    // Events written in one turn of the event loop go out in one write (one syscall per watcher, not per event).
    let pending: string[] = [];
    const flush = (): void => {
      const chunk = pending.join("");
      pending = [];
      if (res.writableLength > MAX_WATCH_BUFFER) {
        res.destroy();
        return;
      }
      if (!res.writableEnded) res.write(chunk);
    };
    const write = (chunk: string): void => {
      if (pending.length === 0) setImmediate(flush);
      pending.push(chunk);
    };
    /** An event as this watcher sees it: a change that moves an object out of the selection is a DELETED. */
    const deliver = (ev: StoreEvent): void => {
      const now = selected(ev.entry.obj);
      if (ev.type === "MODIFIED" && ev.prev !== undefined) {
        const before = selected(ev.prev.obj);
        if (now) write(line(ev, before ? "MODIFIED" : "ADDED"));
        else if (before) write(line(ev, "DELETED"));
        return;
      }
      if (now) write(line(ev, ev.type));
    };
    const bookmarkLine = (annotations = ""): string =>
      `{"type":"BOOKMARK","object":{"kind":"${t.kind}","apiVersion":"${apiVersionOf(t)}","metadata":{"resourceVersion":"${api.store.resourceVersion}"${annotations}}}}\n`;
    const initial: string[] = [];
    if (initialState) {
      for (const e of api.store.list(t.storage, namespace)) {
        if (selected(e.obj))
          initial.push(asTable ? tableLine("ADDED", e.obj) : `{"type":"ADDED","object":${api.viewJson(t, e)}}\n`);
      }
      // The cacher marks the end of the initial events with this annotation on a bookmark (storage,
      // AnnotateInitialEventsEndBookmark), sent at once, and only to a watch that allows bookmarks.
      if (sendInitial === "true" && allowBookmarks)
        initial.push(bookmarkLine(`,"annotations":{"k8s.io/initial-events-end":"true"}`));
    } else if (rvText !== "" && rv !== 0) {
      const events = api.store.since(t.storage, rv);
      if (events === "expired") return expired(api.store.oldestRetained(t.storage));
      for (const ev of events)
        if (namespace === undefined || ev.namespace === namespace) {
          const now = selected(ev.entry.obj);
          const before = ev.prev !== undefined && selected(ev.prev.obj);
          if (ev.type === "MODIFIED") {
            if (now) initial.push(line(ev, before ? "MODIFIED" : "ADDED"));
            else if (before) initial.push(line(ev, "DELETED"));
          } else if (now) initial.push(line(ev, ev.type));
        }
    }
    const unsubscribe = api.store.subscribe(t.storage, {
      namespace,
      deliver,
      end: () => {
        flush();
        res.end();
      },
    });
    this.#watches.add(res);
    if (initial.length > 0) res.write(initial.join(""));
    const timers: NodeJS.Timeout[] = [];
    const timeout = Number(query.get("timeoutSeconds") ?? "0");
    const started = performance.now();
    const deadline = Number.isFinite(timeout) && timeout > 0 ? started + timeout * 1000 : undefined;
    if (deadline !== undefined) timers.push(setTimeout(() => res.end(), deadline - started));
    if (allowBookmarks) {
      const every = this.#o.bookmarkIntervalMs;
      const schedule = (from: number): void => {
        const at = nextBookmarkAt(from, every, deadline);
        if (at === undefined) return;
        timers.push(
          setTimeout(() => {
            write(bookmarkLine());
            schedule(at);
          }, at - performance.now()),
        );
      };
      schedule(started);
    }
    const cleanup = (): void => {
      unsubscribe();
      this.#watches.delete(res);
      for (const tm of timers) clearTimeout(tm);
    };
    res.on("close", cleanup);
    req.on("close", cleanup);
  }
}
