import type { JsonObject } from "./json.ts";

/** An `additionalPrinterColumns` entry of a CustomResourceDefinition version. */
export interface PrinterColumn {
  readonly name: string;
  readonly type: string;
  readonly format: string;
  readonly description: string;
  readonly priority: number;
  readonly jsonPath: string;
}

/** What a resource type served for a CustomResourceDefinition carries beyond a built-in one. */
export interface CustomServing {
  /** The CRD's name (`plural.group`): the types of one CRD come and go together. */
  readonly crd: string;
  /** The version's `schema.openAPIV3Schema` (structural). */
  readonly schema: JsonObject;
  readonly columns: readonly PrinterColumn[];
  readonly categories: readonly string[];
}

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
  /** Set for the kinds of CustomResourceDefinitions. */
  readonly custom?: CustomServing;
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
  // Stored only, like the DaemonSets: the chart's controller has one (nothing evicts in the sandbox).
  rt("policy", "poddisruptionbudgets", "PodDisruptionBudget", true, {
    shortNames: ["pdb"],
    status: true,
    generation: true,
  }),
  rt("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", false, {
    shortNames: ["crd", "crds"],
    status: true,
    generation: true,
  }),
];

export const apiVersionOf = (t: ResourceType): string => (t.group === "" ? t.version : `${t.group}/${t.version}`);

/**
 * The collection path of a built-in kind (`Role` in `ns` → `/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles`),
 * for creating rendered manifests object by object; undefined for a kind the sandbox does not serve.
 */
export function collectionPath(kind: string, namespace: string): string | undefined {
  const t = resourceTypes.find((r) => r.kind === kind && r.group !== "events.k8s.io");
  if (t === undefined) return undefined;
  const base = t.group === "" ? `/api/${t.version}` : `/apis/${t.group}/${t.version}`;
  return t.namespaced ? `${base}/namespaces/${encodeURIComponent(namespace)}/${t.resource}` : `${base}/${t.resource}`;
}

const pathOf = (group: string, version: string, resource: string): string =>
  `${group === "" ? version : `${group}/${version}`}/${resource}`;

const byPath = new Map(resourceTypes.map((t) => [pathOf(t.group, t.version, t.resource), t]));

/** A built-in resource type (the kinds of CustomResourceDefinitions are in each sandbox's Registry). */
export function findResource(group: string, version: string, resource: string): ResourceType | undefined {
  return byPath.get(pathOf(group, version, resource));
}

/**
 * The types one sandbox serves: the built-in ones and those of its established CustomResourceDefinitions, which
 * appear and go while it runs (apiextensions-apiserver, crdHandler: a CRD's REST paths and discovery exist from
 * the moment it is Established until it is deleted). `generation` counts changes, for caches of documents
 * built from the types (discovery, OpenAPI).
 */
export class Registry {
  readonly #custom = new Map<string, readonly ResourceType[]>();
  #byPath = new Map(byPath);
  #all: readonly ResourceType[] = resourceTypes;
  generation = 0;

  find(group: string, version: string, resource: string): ResourceType | undefined {
    return this.#byPath.get(pathOf(group, version, resource));
  }

  all(): readonly ResourceType[] {
    return this.#all;
  }

  /** Serves (or re-serves, on an update) the types of one CRD. */
  setCustom(crd: string, types: readonly ResourceType[]): void {
    if (types.length === 0) this.#custom.delete(crd);
    else this.#custom.set(crd, types);
    this.#all = [...resourceTypes, ...[...this.#custom.values()].flat()];
    this.#byPath = new Map(this.#all.map((t) => [pathOf(t.group, t.version, t.resource), t]));
    this.generation++;
  }

  custom(crd: string): readonly ResourceType[] {
    return this.#custom.get(crd) ?? [];
  }

  /** The groups in discovery order (the empty group is the legacy /api), each with its versions. */
  groups(): readonly { group: string; versions: readonly string[] }[] {
    const seen = new Map<string, string[]>();
    for (const t of this.#all) {
      if (t.group === "") continue;
      const vs = seen.get(t.group) ?? [];
      if (!vs.includes(t.version)) vs.push(t.version);
      seen.set(t.group, vs);
    }
    return [...seen].map(([group, versions]) => ({ group, versions }));
  }
}
