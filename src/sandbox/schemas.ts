import { dropKey, isObject, type Json, type JsonObject } from "./json.ts";
import type { ResourceType } from "./resources.ts";

/**
 * The declared fields of the kinds the sandbox serves, so that it can refuse, warn about or drop unknown fields as
 * kube-apiserver does (its Go types decline what they do not declare). A schema is:
 * - `"any"`: not checked further (a scalar, a quantity, or a part the table does not detail);
 * - an object of field → schema: exactly these fields; `{"*": S}` is a map whose values are S;
 * - `[S]`: a list of S.
 * The top levels users write are detailed; deep, rarely hand-written parts (probes, volumes, affinity) are `"any"`.
 */
export type Schema = "any" | { readonly [field: string]: Schema } | readonly [Schema];

const any = "any" as const;
const strings: Schema = { "*": any };
const fields = (...names: string[]): Record<string, Schema> => Object.fromEntries(names.map((n) => [n, any]));

const objectMeta: Schema = {
  ...fields(
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "managedFields",
  ),
  labels: strings,
  annotations: strings,
  ownerReferences: [fields("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")],
};

const labelSelector: Schema = {
  matchLabels: strings,
  matchExpressions: [fields("key", "operator", "values")],
};

const container: Schema = {
  ...fields(
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "envFrom",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
  ),
  ports: [fields("name", "hostPort", "containerPort", "protocol", "hostIP")],
  env: [fields("name", "value", "valueFrom")],
};

const podSpec: Schema = {
  ...fields(
    "volumes",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
    "resources",
  ),
  nodeSelector: strings,
  containers: [container],
  initContainers: [container],
};

const podTemplate: Schema = { metadata: objectMeta, spec: podSpec };

const kind = (body: Record<string, Schema>): Schema => ({ apiVersion: any, kind: any, metadata: objectMeta, ...body });

const serviceSpec: Schema = {
  ...fields(
    "clusterIP",
    "clusterIPs",
    "type",
    "externalIPs",
    "sessionAffinity",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "externalName",
    "externalTrafficPolicy",
    "healthCheckNodePort",
    "publishNotReadyAddresses",
    "sessionAffinityConfig",
    "ipFamilies",
    "ipFamilyPolicy",
    "allocateLoadBalancerNodePorts",
    "loadBalancerClass",
    "internalTrafficPolicy",
    "trafficDistribution",
  ),
  ports: [fields("name", "protocol", "appProtocol", "port", "targetPort", "nodePort")],
  selector: strings,
};

const policyRule: Schema = fields("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs");
const binding = kind({
  subjects: [fields("kind", "apiGroup", "name", "namespace")],
  roleRef: fields("apiGroup", "kind", "name"),
});

/** By storage key (resources.ts); kinds not listed here are not checked. */
export const schemas: Readonly<Record<string, Schema>> = {
  services: kind({
    spec: serviceSpec,
    status: {
      loadBalancer: {
        ingress: [{ ...fields("ip", "hostname", "ipMode"), ports: [fields("port", "protocol", "error")] }],
      },
      conditions: any,
    },
  }),
  configmaps: kind({ data: strings, binaryData: strings, immutable: any }),
  secrets: kind({ data: strings, stringData: strings, type: any, immutable: any }),
  namespaces: kind({ spec: fields("finalizers"), status: fields("phase", "conditions") }),
  serviceaccounts: kind({ secrets: any, imagePullSecrets: any, automountServiceAccountToken: any }),
  "leases.coordination.k8s.io": kind({
    spec: fields(
      "holderIdentity",
      "leaseDurationSeconds",
      "acquireTime",
      "renewTime",
      "leaseTransitions",
      "strategy",
      "preferredHolder",
    ),
  }),
  "endpointslices.discovery.k8s.io": kind({
    addressType: any,
    endpoints: [
      {
        ...fields("addresses", "hostname", "targetRef", "nodeName", "zone", "hints", "deprecatedTopology"),
        conditions: fields("ready", "serving", "terminating"),
      },
    ],
    ports: [fields("name", "protocol", "port", "appProtocol")],
  }),
  "deployments.apps": kind({
    spec: {
      ...fields("replicas", "minReadySeconds", "revisionHistoryLimit", "paused", "progressDeadlineSeconds"),
      selector: labelSelector,
      template: podTemplate,
      strategy: { type: any, rollingUpdate: fields("maxUnavailable", "maxSurge") },
    },
    status: any,
  }),
  "daemonsets.apps": kind({
    spec: {
      ...fields("minReadySeconds", "revisionHistoryLimit"),
      selector: labelSelector,
      template: podTemplate,
      updateStrategy: { type: any, rollingUpdate: fields("maxUnavailable", "maxSurge") },
    },
    status: any,
  }),
  // policy/v1 PodDisruptionBudgetSpec.
  "poddisruptionbudgets.policy": kind({
    spec: { ...fields("minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy"), selector: labelSelector },
    status: any,
  }),
  pods: kind({ spec: podSpec, status: any }),
  "roles.rbac.authorization.k8s.io": kind({ rules: [policyRule] }),
  "clusterroles.rbac.authorization.k8s.io": kind({ rules: [policyRule], aggregationRule: any }),
  "rolebindings.rbac.authorization.k8s.io": binding,
  "clusterrolebindings.rbac.authorization.k8s.io": binding,
  "customresourcedefinitions.apiextensions.k8s.io": kind({
    spec: {
      ...fields("group", "scope", "conversion", "preserveUnknownFields"),
      names: fields("plural", "singular", "shortNames", "kind", "listKind", "categories"),
      versions: [
        fields(
          "name",
          "served",
          "storage",
          "deprecated",
          "deprecationWarning",
          "schema",
          "subresources",
          "additionalPrinterColumns",
          "selectableFields",
        ),
      ],
    },
    status: any,
  }),
};

/**
 * The fields a structural schema keeps (apiextensions-apiserver, schema/pruning, Prune): an object keeps its
 * `properties` (and every key of `additionalProperties`), nothing else unless it says
 * `x-kubernetes-preserve-unknown-fields` or is an int-or-string; lists prune their items. The root keeps
 * apiVersion, kind and metadata, whose fields are ObjectMeta's.
 */
export function structuralFields(s: JsonObject, root = true): Schema {
  if (s["x-kubernetes-preserve-unknown-fields"] === true || s["x-kubernetes-int-or-string"] === true) return any;
  const type = s["type"];
  if (type === "array") {
    const items = s["items"];
    return isObject(items) ? [structuralFields(items, false)] : any;
  }
  if (type !== "object" && !root) return any;
  const props = isObject(s["properties"]) ? s["properties"] : {};
  const extra = s["additionalProperties"];
  if (extra === true) return any;
  if (isObject(extra) && Object.keys(props).length === 0) return { "*": structuralFields(extra, false) };
  const out: Record<string, Schema> = Object.fromEntries(
    Object.entries(props).map(([k, v]) => [k, isObject(v) ? structuralFields(v, false) : any]),
  );
  if (s["x-kubernetes-embedded-resource"] === true) Object.assign(out, { apiVersion: any, kind: any, metadata: any });
  return root ? { ...out, apiVersion: any, kind: any, metadata: objectMeta } : out;
}

const customSchemas = new WeakMap<ResourceType, Schema>();

/** The declared fields of a kind: the table above, or a custom kind's structural schema. */
export function schemaOf(t: ResourceType): Schema | undefined {
  if (t.custom === undefined) return schemas[t.storage];
  let s = customSchemas.get(t);
  if (s === undefined) {
    s = structuralFields(t.custom.schema);
    customSchemas.set(t, s);
  }
  return s;
}

/** One unknown field: its path as sigs.k8s.io/json names it in a strict decoding error (`spec.ports[0].foo`). */
export type FieldPath = string;

/**
 * Pure: the fields of `value` that `schema` does not declare, in document order, and `value` without them (the
 * same object when there are none), as decoding into kube-apiserver's Go types drops them.
 */
export function unknownFields(schema: Schema, value: Json): { unknown: FieldPath[]; known: Json } {
  const unknown: FieldPath[] = [];
  const known = walk(schema, value, "", unknown);
  return { unknown, known };
}

function walk(schema: Schema, value: Json, path: string, out: FieldPath[]): Json {
  if (schema === "any" || value === null) return value;
  if (Array.isArray(schema)) {
    if (!Array.isArray(value)) return value;
    const item = (schema as readonly [Schema])[0];
    let changed = false;
    const items = value.map((v, i) => {
      const w = walk(item, v, `${path}[${i}]`, out);
      if (w !== v) changed = true;
      return w;
    });
    return changed ? items : value;
  }
  if (!isObject(value)) return value;
  const declared = schema as Readonly<Record<string, Schema>>;
  const values = declared["*"];
  let copy: JsonObject | undefined;
  for (const [k, v] of Object.entries(value)) {
    const p = path === "" ? k : `${path}.${k}`;
    const sub = values ?? declared[k];
    if (sub === undefined) {
      out.push(p);
      copy ??= { ...value };
      dropKey(copy, k);
      continue;
    }
    const w = walk(sub, v, p, out);
    if (w !== v) {
      copy ??= { ...value };
      copy[k] = w;
    }
  }
  return copy ?? value;
}
