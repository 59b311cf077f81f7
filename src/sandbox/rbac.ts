import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { Api } from "./api.ts";
import { isObject, meta, str, type Json, type JsonObject } from "./json.ts";
import type { RequestAttributes } from "./server.ts";
import { forbidden, unauthorized, type ApiError } from "./api-errors.ts";

/** Who a request is from, as the real authenticators name ServiceAccounts and their groups. */
export interface UserInfo {
  readonly name: string;
  readonly groups: readonly string[];
  /** For ServiceAccount tokens: the account, which must still exist when the token is used. */
  readonly serviceAccount?: { readonly namespace: string; readonly name: string };
}

const ADMIN: UserInfo = { name: "lodestone-sandbox-admin", groups: ["system:masters", "system:authenticated"] };

export function serviceAccountUser(namespace: string, name: string): UserInfo {
  return {
    name: `system:serviceaccount:${namespace}:${name}`,
    groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
    serviceAccount: { namespace, name },
  };
}

const list = (v: Json | undefined): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
const has = (values: readonly string[], want: string): boolean => values.includes("*") || values.includes(want);

/** What RBAC decides on (the authorizer's attributes; SubjectAccessReview's resourceAttributes). */
export interface AuthzAttributes {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
}

export const authzAttributes = (a: RequestAttributes): AuthzAttributes => ({
  verb: a.verb,
  group: a.type.group,
  resource: a.type.resource,
  subresource: a.subresource,
  namespace: a.type.namespaced ? a.namespace : "",
  name: a.name,
});

/** A request RBAC refused with 403: who sent it, and what the authorizer decided on. */
export interface Denial extends AuthzAttributes {
  readonly user: string;
}

/** How many denials are kept (the most recent). */
const DENIALS_KEPT = 1000;

/** Does one PolicyRule allow the request? Same matching as k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac. */
function ruleAllows(rule: JsonObject, a: AuthzAttributes): boolean {
  if (!has(list(rule["verbs"]), a.verb)) return false;
  if (!has(list(rule["apiGroups"]), a.group)) return false;
  const resources = list(rule["resources"]);
  const combined = a.subresource === "" ? a.resource : `${a.resource}/${a.subresource}`;
  const resOk =
    resources.includes("*") ||
    resources.includes(combined) ||
    (a.subresource !== "" && resources.includes(`*/${a.subresource}`));
  if (!resOk) return false;
  const names = list(rule["resourceNames"]);
  return names.length === 0 || (a.name !== "" && names.includes(a.name));
}

function subjectMatches(subject: JsonObject, user: UserInfo, bindingNamespace: string): boolean {
  const kind = subject["kind"];
  const name = str(subject["name"]);
  if (kind === "User") return name === user.name;
  if (kind === "Group") return name !== undefined && user.groups.includes(name);
  if (kind === "ServiceAccount") {
    const ns = str(subject["namespace"]) ?? bindingNamespace;
    return (
      user.serviceAccount !== undefined && user.serviceAccount.namespace === ns && user.serviceAccount.name === name
    );
  }
  return false;
}

/**
 * RBAC mode: bearer-token authentication (the admin token of the kubeconfig, or ServiceAccount tokens minted
 * with `tokenFor`) and authorization from the Role/ClusterRole/RoleBinding/ClusterRoleBinding objects stored in
 * the sandbox, answering 401/403 as kube-apiserver does.
 */
export class Rbac {
  readonly #api: Api;
  readonly #tokens = new Map<string, UserInfo>();
  readonly #denials: Denial[] = [];

  constructor(api: Api, adminToken: string) {
    this.#api = api;
    this.#tokens.set(adminToken, ADMIN);
  }

  /** A bearer token for a ServiceAccount (it need not exist yet; requests fail with 401 while it does not). */
  tokenFor(namespace: string, serviceAccount: string): string {
    const token = `lodestone-sandbox-sa-${randomBytes(16).toString("hex")}`;
    this.#tokens.set(token, serviceAccountUser(namespace, serviceAccount));
    return token;
  }

  /**
   * The user of a request: its bearer token, then `Impersonate-User`/`Impersonate-Group` (kubectl --as, --as-group)
   * when the token's user is in system:masters. Undefined: not authenticated.
   */
  authenticate(headers: IncomingHttpHeaders): UserInfo | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? "");
    const user = m === null ? undefined : this.#tokens.get(m[1] ?? "");
    const as = headers["impersonate-user"];
    if (user !== undefined && user.groups.includes("system:masters") && typeof as === "string" && as !== "") {
      const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(as);
      const rawGroups = headers["impersonate-group"];
      const groups = (Array.isArray(rawGroups) ? rawGroups : rawGroups === undefined ? [] : [rawGroups]).flatMap((g) =>
        g.split(","),
      );
      const base = sa === null ? { name: as, groups: [] as string[] } : serviceAccountUser(sa[1] ?? "", sa[2] ?? "");
      return { ...base, groups: [...new Set([...base.groups, ...groups, "system:authenticated"])] };
    }
    if (user?.serviceAccount !== undefined) {
      const sa = this.#api.store.get("serviceaccounts", user.serviceAccount.namespace, user.serviceAccount.name);
      if (sa === undefined) return undefined;
    }
    return user;
  }

  /** undefined when allowed, else the Status to send. Non-resource paths (discovery, /version) are open to any
   * authenticated user, as the default system:discovery binding makes them. */
  check(headers: IncomingHttpHeaders, attrs: RequestAttributes | undefined): ApiError | undefined {
    const user = this.authenticate(headers);
    if (user === undefined) return unauthorized();
    // Every authenticated user may ask what it may do (system:basic-user), and read discovery.
    if (attrs === undefined || attrs.type.resource === "selfsubjectaccessreviews") return undefined;
    const a = authzAttributes(attrs);
    if (this.allows(user, a)) return undefined;
    this.#denials.push({ user: user.name, ...a });
    if (this.#denials.length > DENIALS_KEPT) this.#denials.shift();
    return forbidden(
      user.name,
      attrs.verb,
      attrs.type.resource,
      attrs.type.group,
      attrs.type.namespaced ? attrs.namespace : "",
      attrs.name,
      attrs.subresource,
    );
  }

  /** The requests refused with 403 so far, oldest first (the last 1,000): what a least-privilege test counts. */
  denials(): readonly Denial[] {
    return [...this.#denials];
  }

  allows(user: UserInfo, a: AuthzAttributes): boolean {
    if (user.groups.includes("system:masters")) return true;
    const store = this.#api.store;
    for (const b of store.list("clusterrolebindings.rbac.authorization.k8s.io", undefined)) {
      if (this.#bindingAllows(b.obj, "", user, a)) return true;
    }
    if (a.namespace !== "") {
      for (const b of store.list("rolebindings.rbac.authorization.k8s.io", a.namespace)) {
        if (this.#bindingAllows(b.obj, a.namespace, user, a)) return true;
      }
    }
    return false;
  }

  #bindingAllows(binding: JsonObject, namespace: string, user: UserInfo, a: AuthzAttributes): boolean {
    const subjects = Array.isArray(binding["subjects"]) ? binding["subjects"].filter(isObject) : [];
    if (!subjects.some((s) => subjectMatches(s, user, namespace))) return false;
    const ref = isObject(binding["roleRef"]) ? binding["roleRef"] : {};
    const roleName = str(ref["name"]) ?? "";
    const role =
      ref["kind"] === "ClusterRole"
        ? this.#api.store.get("clusterroles.rbac.authorization.k8s.io", "", roleName)
        : ref["kind"] === "Role" && namespace !== ""
          ? this.#api.store.get("roles.rbac.authorization.k8s.io", namespace, roleName)
          : undefined;
    if (role === undefined) return false;
    const rules = Array.isArray(role.obj["rules"]) ? role.obj["rules"].filter(isObject) : [];
    return rules.some((r) => ruleAllows(r, a));
  }
}

/** roleRef of a binding cannot change (kube-apiserver validation). */
export function roleRefChanged(old: JsonObject, obj: JsonObject): boolean {
  return (
    JSON.stringify(old["roleRef"] ?? null) !== JSON.stringify(obj["roleRef"] ?? null) && meta(old)["name"] !== undefined
  );
}

/** `kubectl auth can-i`: a SelfSubjectAccessReview answered for the requesting user (everyone may ask). */
export function selfSubjectAccessReview(
  rbac: Rbac | undefined,
  user: UserInfo | undefined,
  review: JsonObject,
): JsonObject {
  const spec = isObject(review["spec"]) ? review["spec"] : {};
  const ra = isObject(spec["resourceAttributes"]) ? spec["resourceAttributes"] : undefined;
  let allowed = rbac === undefined;
  if (!allowed && user !== undefined) {
    if (ra === undefined)
      allowed = true; // non-resource URLs: discovery is open to authenticated users
    else {
      const a: AuthzAttributes = {
        verb: str(ra["verb"]) ?? "",
        group: str(ra["group"]) ?? "",
        resource: str(ra["resource"]) ?? "",
        subresource: str(ra["subresource"]) ?? "",
        namespace: str(ra["namespace"]) ?? "",
        name: str(ra["name"]) ?? "",
      };
      allowed = rbac?.allows(user, a) ?? true;
    }
  }
  return {
    kind: "SelfSubjectAccessReview",
    apiVersion: "authorization.k8s.io/v1",
    metadata: { creationTimestamp: null },
    spec,
    status: { allowed, ...(allowed ? { reason: "RBAC: allowed by the sandbox's bindings" } : {}) },
  };
}
