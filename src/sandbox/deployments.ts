import { boundCause, type Cause } from "./api-errors.ts";
import { isObject, jsonEqual, type Json, type JsonObject } from "./json.ts";

/** Go's `%v` of a map[string]string, as validation messages quote labels: `map[app:web]` with sorted keys. */
const goMap = (m: JsonObject): string =>
  `map[${Object.keys(m)
    .sort()
    .map((k) => `${k}:${String(m[k])}`)
    .join(" ")}]`;

const object = (v: Json | undefined): JsonObject | undefined => (isObject(v) ? v : undefined);

/**
 * Pure: the apps/v1 defaults of a Deployment (pkg/apis/apps/v1, SetDefaults_Deployment; pkg/apis/core/v1,
 * SetDefaults_PodSpec and SetDefaults_Container), applied in place. Nothing runs the pods: the sandbox stores
 * Deployments so that `kubectl create deployment` and `kubectl expose deployment` work as on a cluster.
 */
export function defaultDeployment(obj: JsonObject): void {
  const spec = (obj["spec"] = object(obj["spec"]) ?? {});
  spec["replicas"] ??= 1;
  const strategy = (spec["strategy"] = object(spec["strategy"]) ?? {});
  strategy["type"] ??= "RollingUpdate";
  if (strategy["type"] === "RollingUpdate") {
    const ru = (strategy["rollingUpdate"] = object(strategy["rollingUpdate"]) ?? {});
    ru["maxUnavailable"] ??= "25%";
    ru["maxSurge"] ??= "25%";
  }
  spec["revisionHistoryLimit"] ??= 10;
  spec["progressDeadlineSeconds"] ??= 600;
  const template = object(spec["template"]);
  const pod = template === undefined ? undefined : object(template["spec"]);
  if (pod === undefined) return;
  pod["restartPolicy"] ??= "Always";
  pod["terminationGracePeriodSeconds"] ??= 30;
  pod["dnsPolicy"] ??= "ClusterFirst";
  pod["securityContext"] ??= {};
  pod["schedulerName"] ??= "default-scheduler";
  for (const list of ["containers", "initContainers"]) {
    const containers = pod[list];
    if (!Array.isArray(containers)) continue;
    for (const c of containers) {
      if (!isObject(c)) continue;
      c["terminationMessagePath"] ??= "/dev/termination-log";
      c["terminationMessagePolicy"] ??= "File";
      // An image without a tag or tagged :latest is pulled every time (SetDefaults_Container).
      const image = typeof c["image"] === "string" ? c["image"] : "";
      const tag = /:([^/:@]+)$/.exec(image.split("@")[0] ?? "")?.[1];
      c["imagePullPolicy"] ??= tag === undefined || tag === "latest" ? "Always" : "IfNotPresent";
      c["resources"] ??= {};
      const ports = c["ports"];
      if (Array.isArray(ports)) for (const p of ports) if (isObject(p)) p["protocol"] ??= "TCP";
    }
  }
}

/**
 * Pure: a Deployment's spec as pkg/apis/apps/validation checks it (ValidateDeploymentSpec, and
 * ValidateDeploymentUpdate for the immutable selector); `old` is the stored object on an update.
 */
export function deploymentProblems(obj: JsonObject, old: JsonObject | undefined): Cause[] {
  const causes: Cause[] = [];
  const spec = object(obj["spec"]) ?? {};
  causes.push(...boundCause("spec.replicas", spec["replicas"], ">= 0"));
  const selector = object(spec["selector"]);
  const matchLabels = object(selector?.["matchLabels"]) ?? {};
  const expressions = selector?.["matchExpressions"];
  if (selector === undefined)
    causes.push({ reason: "FieldValueRequired", field: "spec.selector", message: "Required value" });
  else if (Object.keys(matchLabels).length === 0 && !(Array.isArray(expressions) && expressions.length > 0))
    causes.push({
      reason: "FieldValueInvalid",
      field: "spec.selector",
      message: "Invalid value: {}: empty selector is invalid for deployment",
    });
  const template = object(spec["template"]);
  const labels = object(object(template?.["metadata"])?.["labels"]) ?? {};
  if (selector !== undefined && Object.entries(matchLabels).some(([k, v]) => labels[k] !== v))
    causes.push({
      reason: "FieldValueInvalid",
      field: "spec.template.metadata.labels",
      message: `Invalid value: ${JSON.stringify(goMap(labels))}: \`selector\` does not match template \`labels\``,
    });
  const pod = object(template?.["spec"]);
  const containers = pod?.["containers"];
  if (!Array.isArray(containers) || containers.length === 0)
    causes.push({ reason: "FieldValueRequired", field: "spec.template.spec.containers", message: "Required value" });
  const restart = pod?.["restartPolicy"];
  if (restart !== undefined && restart !== "Always")
    causes.push({
      reason: "FieldValueNotSupported",
      field: "spec.template.spec.restartPolicy",
      message: `Unsupported value: ${JSON.stringify(restart)}: supported values: "Always"`,
    });
  if (old !== undefined && !jsonEqual(object(old["spec"])?.["selector"], spec["selector"]))
    causes.push({
      reason: "FieldValueInvalid",
      field: "spec.selector",
      message: `Invalid value: ${JSON.stringify(spec["selector"] ?? null)}: field is immutable`,
    });
  return causes;
}
