/** The resource types the sandbox serves, as discovery describes them. */
export interface ResourceType {
  readonly group: string;
  readonly version: string;
  /** Plural, as in the URL: `services`. */
  readonly resource: string;
  readonly singular: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Has a `/status` subresource: writes to the object keep the old status, writes to /status only change it. */
  readonly status: boolean;
  /** Where the objects live; events.k8s.io/v1 events share core/v1's storage (one object, two views). */
  readonly storage: string;
  /** `metadata.generation` is bumped when anything outside metadata and status changes. */
  readonly generation: boolean;
  /** Field selector labels beyond metadata.name / metadata.namespace. */
  readonly fields: readonly string[];
}

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] as const;
export const verbs: readonly string[] = VERBS;

function rt(
  group: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  extra: Partial<Pick<ResourceType, "shortNames" | "status" | "storage" | "generation" | "fields" | "version">> = {},
): ResourceType {
  return Object.freeze({
    group,
    version: extra.version ?? "v1",
    resource,
    singular: kind.toLowerCase(),
    kind,
    namespaced,
    shortNames: extra.shortNames ?? [],
    status: extra.status ?? false,
    storage: extra.storage ?? (group === "" ? resource : `${resource}.${group}`),
    generation: extra.generation ?? false,
    fields: extra.fields ?? [],
  });
}

const EVENT_FIELDS = [
  "involvedObject.kind",
  "involvedObject.namespace",
  "involvedObject.name",
  "involvedObject.uid",
  "involvedObject.apiVersion",
  "involvedObject.resourceVersion",
  "involvedObject.fieldPath",
  "reason",
  "reportingComponent",
  "source",
  "type",
];

export const resourceTypes: readonly ResourceType[] = [
  rt("", "namespaces", "Namespace", false, { shortNames: ["ns"], status: true, fields: ["status.phase"] }),
  rt("", "services", "Service", true, {
    shortNames: ["svc"],
    status: true,
    generation: true,
    fields: ["spec.clusterIP", "spec.type"],
  }),
  rt("", "configmaps", "ConfigMap", true, { shortNames: ["cm"] }),
  rt("", "secrets", "Secret", true, { fields: ["type"] }),
  rt("", "nodes", "Node", false, { shortNames: ["no"], status: true, fields: ["spec.unschedulable"] }),
  rt("", "events", "Event", true, { shortNames: ["ev"], fields: EVENT_FIELDS }),
  rt("", "endpoints", "Endpoints", true, { shortNames: ["ep"] }),
  rt("", "serviceaccounts", "ServiceAccount", true, { shortNames: ["sa"] }),
  rt("", "pods", "Pod", true, { shortNames: ["po"], status: true, fields: ["spec.nodeName", "status.phase"] }),
  rt("discovery.k8s.io", "endpointslices", "EndpointSlice", true),
  rt("coordination.k8s.io", "leases", "Lease", true),
  rt("events.k8s.io", "events", "Event", true, {
    shortNames: ["ev"],
    storage: "events",
    fields: EVENT_FIELDS.map((f) => f.replace(/^involvedObject\./, "regarding.")).concat(["reportingController"]),
  }),
  rt("rbac.authorization.k8s.io", "roles", "Role", true),
  rt("rbac.authorization.k8s.io", "rolebindings", "RoleBinding", true),
  rt("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false),
  rt("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", false),
  // Only `create` is answered (kubectl auth can-i); nothing is stored.
  rt("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
  // So the Helm chart's rendered objects can be installed (stored only: nothing runs its pods).
  rt("apps", "daemonsets", "DaemonSet", true, { shortNames: ["ds"], status: true, generation: true }),
  // Stored, defaulted and validated, never run: so `kubectl create deployment` and `kubectl expose` work.
  rt("apps", "deployments", "Deployment", true, { shortNames: ["deploy"], status: true, generation: true }),
];

export const apiVersionOf = (t: ResourceType): string => (t.group === "" ? t.version : `${t.group}/${t.version}`);

const byPath = new Map(resourceTypes.map((t) => [`${apiVersionOf(t)}/${t.resource}`, t]));

export function findResource(group: string, version: string, resource: string): ResourceType | undefined {
  return byPath.get(`${group === "" ? version : `${group}/${version}`}/${resource}`);
}

/** The groups in discovery order (the empty group is the legacy /api). */
export function groups(): readonly { group: string; version: string }[] {
  const seen = new Map<string, string>();
  for (const t of resourceTypes) if (t.group !== "" && !seen.has(t.group)) seen.set(t.group, t.version);
  return [...seen].map(([group, version]) => ({ group, version }));
}
