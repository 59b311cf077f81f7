import type { Json, JsonObject } from "./json.ts";

/**
 * Decoding of the Kubernetes protobuf envelope for the kinds kubectl's typed clients send as protobuf
 * (`kubectl create namespace|configmap|secret|serviceaccount|role|rolebinding|clusterrole|clusterrolebinding|
 * service|deployment`). Field numbers are those of k8s.io/api's generated.proto files. Responses stay JSON,
 * which the clients accept.
 */
type Scalar = "string" | "int" | "bool" | "bytes" | "map" | "mapBytes" | "time" | "intOrString";
interface Field {
  readonly name: string;
  readonly type: Scalar | Schema;
  readonly repeated?: boolean;
}
interface Schema {
  readonly [n: number]: Field;
}

const f = (name: string, type: Scalar | Schema, repeated = false): Field => ({ name, type, repeated });

const ownerReference: Schema = {
  1: f("kind", "string"),
  3: f("name", "string"),
  4: f("uid", "string"),
  5: f("apiVersion", "string"),
  6: f("controller", "bool"),
  7: f("blockOwnerDeletion", "bool"),
};
const objectMeta: Schema = {
  1: f("name", "string"),
  2: f("generateName", "string"),
  3: f("namespace", "string"),
  5: f("uid", "string"),
  6: f("resourceVersion", "string"),
  7: f("generation", "int"),
  8: f("creationTimestamp", "time"),
  11: f("labels", "map"),
  12: f("annotations", "map"),
  13: f("ownerReferences", ownerReference, true),
  14: f("finalizers", "string", true),
};
const policyRule: Schema = {
  1: f("verbs", "string", true),
  2: f("apiGroups", "string", true),
  3: f("resources", "string", true),
  4: f("resourceNames", "string", true),
  5: f("nonResourceURLs", "string", true),
};
const subject: Schema = {
  1: f("kind", "string"),
  2: f("apiGroup", "string"),
  3: f("name", "string"),
  4: f("namespace", "string"),
};
const roleRef: Schema = { 1: f("apiGroup", "string"), 2: f("kind", "string"), 3: f("name", "string") };
const labelSelector: Schema = { 1: f("matchLabels", "map") };
const servicePort: Schema = {
  1: f("name", "string"),
  2: f("protocol", "string"),
  3: f("port", "int"),
  4: f("targetPort", "intOrString"),
  5: f("nodePort", "int"),
  6: f("appProtocol", "string"),
};
const serviceSpec: Schema = {
  1: f("ports", servicePort, true),
  2: f("selector", "map"),
  3: f("clusterIP", "string"),
  4: f("type", "string"),
  5: f("externalIPs", "string", true),
  7: f("sessionAffinity", "string"),
  8: f("loadBalancerIP", "string"),
  9: f("loadBalancerSourceRanges", "string", true),
  10: f("externalName", "string"),
  11: f("externalTrafficPolicy", "string"),
  12: f("healthCheckNodePort", "int"),
  13: f("publishNotReadyAddresses", "bool"),
  17: f("ipFamilyPolicy", "string"),
  18: f("clusterIPs", "string", true),
  19: f("ipFamilies", "string", true),
  20: f("allocateLoadBalancerNodePorts", "bool"),
  21: f("loadBalancerClass", "string"),
  22: f("internalTrafficPolicy", "string"),
};
const localRef: Schema = { 1: f("name", "string") };
const container: Schema = {
  1: f("name", "string"),
  2: f("image", "string"),
  3: f("command", "string", true),
  4: f("args", "string", true),
  5: f("workingDir", "string"),
  6: f(
    "ports",
    {
      1: f("name", "string"),
      2: f("hostPort", "int"),
      3: f("containerPort", "int"),
      4: f("protocol", "string"),
      5: f("hostIP", "string"),
    },
    true,
  ),
  7: f("env", { 1: f("name", "string"), 2: f("value", "string") }, true),
  8: f("resources", {}),
  13: f("terminationMessagePath", "string"),
  14: f("imagePullPolicy", "string"),
  20: f("terminationMessagePolicy", "string"),
};
/** What `kubectl create deployment NAME --image=... [--port] [--replicas] [-- command]` sends. */
const deployment: Schema = {
  1: f("metadata", objectMeta),
  2: f("spec", {
    1: f("replicas", "int"),
    2: f("selector", labelSelector),
    3: f("template", {
      1: f("metadata", objectMeta),
      2: f("spec", { 2: f("containers", container, true), 3: f("restartPolicy", "string") }),
    }),
    4: f("strategy", { 1: f("type", "string") }),
  }),
};

const KINDS: Readonly<Record<string, Schema>> = {
  Namespace: { 1: f("metadata", objectMeta), 2: f("spec", { 1: f("finalizers", "string", true) }) },
  ConfigMap: {
    1: f("metadata", objectMeta),
    2: f("data", "map"),
    3: f("binaryData", "mapBytes"),
    4: f("immutable", "bool"),
  },
  Secret: {
    1: f("metadata", objectMeta),
    2: f("data", "mapBytes"),
    3: f("type", "string"),
    4: f("stringData", "map"),
    5: f("immutable", "bool"),
  },
  ServiceAccount: {
    1: f("metadata", objectMeta),
    3: f("imagePullSecrets", localRef, true),
    4: f("automountServiceAccountToken", "bool"),
  },
  Service: { 1: f("metadata", objectMeta), 2: f("spec", serviceSpec) },
  Deployment: deployment,
  Role: { 1: f("metadata", objectMeta), 2: f("rules", policyRule, true) },
  ClusterRole: {
    1: f("metadata", objectMeta),
    2: f("rules", policyRule, true),
    3: f("aggregationRule", { 1: f("clusterRoleSelectors", labelSelector, true) }),
  },
  RoleBinding: { 1: f("metadata", objectMeta), 2: f("subjects", subject, true), 3: f("roleRef", roleRef) },
  ClusterRoleBinding: { 1: f("metadata", objectMeta), 2: f("subjects", subject, true), 3: f("roleRef", roleRef) },
  SelfSubjectAccessReview: {
    1: f("metadata", objectMeta),
    2: f("spec", {
      1: f("resourceAttributes", {
        1: f("namespace", "string"),
        2: f("verb", "string"),
        3: f("group", "string"),
        4: f("version", "string"),
        5: f("resource", "string"),
        6: f("subresource", "string"),
        7: f("name", "string"),
      }),
      2: f("nonResourceAttributes", { 1: f("path", "string"), 2: f("verb", "string") }),
    }),
  },
};

class Reader {
  pos = 0;
  readonly buf: Uint8Array;
  readonly end: number;
  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end || shift > 63n) throw new Error("truncated varint");
      const b = this.buf[this.pos++] ?? 0;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytes(): Uint8Array {
    const len = Number(this.varint());
    if (len < 0 || this.pos + len > this.end) throw new Error("truncated field");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

function fields(buf: Uint8Array, each: (num: number, wire: number, r: Reader) => void): void {
  const r = new Reader(buf);
  while (r.pos < r.end) {
    const tag = Number(r.varint());
    const num = tag >>> 3;
    const wire = tag & 7;
    const before = r.pos;
    each(num, wire, r);
    if (r.pos === before) r.skip(wire);
  }
}

function mapEntry(buf: Uint8Array, bytesValue: boolean): [string, string] {
  let key = "";
  let value = "";
  fields(buf, (num, wire, r) => {
    if (wire !== 2) return;
    const b = r.bytes();
    if (num === 1) key = utf8.decode(b);
    if (num === 2) value = bytesValue ? Buffer.from(b).toString("base64") : utf8.decode(b);
  });
  return [key, value];
}

function scalar(type: Scalar, wire: number, r: Reader): Json {
  switch (type) {
    case "string":
      return utf8.decode(r.bytes());
    case "bytes":
      return Buffer.from(r.bytes()).toString("base64");
    case "int":
      return Number(BigInt.asIntN(64, r.varint()));
    case "bool":
      return r.varint() !== 0n;
    case "time": {
      let seconds = 0;
      fields(r.bytes(), (num, w, rr) => {
        if (num === 1 && w === 0) seconds = Number(rr.varint());
      });
      // An empty Timestamp is Go's zero time, which JSON shows as null (metav1.Time.Unmarshal, MarshalJSON).
      if (seconds === 0) return null;
      return new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, "Z");
    }
    case "intOrString": {
      let type = 0;
      let int = 0;
      let text = "";
      fields(r.bytes(), (num, w, rr) => {
        if (num === 1 && w === 0) type = Number(rr.varint());
        else if (num === 2 && w === 0) int = Number(BigInt.asIntN(32, rr.varint()));
        else if (num === 3 && w === 2) text = utf8.decode(rr.bytes());
      });
      return type === 1 ? text : int;
    }
    default:
      throw new Error(`wire ${wire}: unexpected ${type}`);
  }
}

function message(buf: Uint8Array, schema: Schema): JsonObject {
  const out: JsonObject = {};
  fields(buf, (num, wire, r) => {
    const field = schema[num];
    if (field === undefined) return;
    const { name, type } = field;
    if (type === "map" || type === "mapBytes") {
      const [k, v] = mapEntry(r.bytes(), type === "mapBytes");
      const m = (out[name] ??= {}) as JsonObject;
      m[k] = v;
      return;
    }
    const value = typeof type === "string" ? scalar(type, wire, r) : message(r.bytes(), type);
    if (field.repeated === true) ((out[name] ??= []) as Json[]).push(value);
    else if (!isZero(name, value)) out[name] = value;
  });
  return out;
}

/** Pointer fields whose zero is meaningful; the other proto2 scalars are always encoded, zero meaning unset. */
const POINTERS = new Set(["allocateLoadBalancerNodePorts", "replicas"]);

const isZero = (name: string, v: Json): boolean => !POINTERS.has(name) && (v === "" || v === 0 || v === false);

const MAGIC = [0x6b, 0x38, 0x73, 0x00];

/** The object in a `application/vnd.kubernetes.protobuf` body, as JSON; an error message when it cannot be read. */
export function decodeProtobuf(body: Uint8Array): { ok: true; value: JsonObject } | { ok: false; error: string } {
  try {
    if (body.length < 4 || MAGIC.some((b, i) => body[i] !== b))
      return { ok: false, error: "provided data does not have the kubernetes protobuf prefix" };
    let apiVersion = "";
    let kind = "";
    let raw: Uint8Array = new Uint8Array();
    fields(body.subarray(4), (num, wire, r) => {
      if (num === 1 && wire === 2)
        fields(r.bytes(), (n, w, rr) => {
          if (n === 1 && w === 2) apiVersion = utf8.decode(rr.bytes());
          if (n === 2 && w === 2) kind = utf8.decode(rr.bytes());
        });
      else if (num === 2 && wire === 2) raw = r.bytes();
    });
    const schema = KINDS[kind];
    if (schema === undefined)
      return {
        ok: false,
        error: `protobuf bodies of kind ${kind || "(none)"} are not supported by the sandbox; send JSON`,
      };
    return { ok: true, value: { apiVersion, kind, ...message(raw, schema) } };
  } catch (err: unknown) {
    return { ok: false, error: `cannot decode protobuf body: ${err instanceof Error ? err.message : String(err)}` };
  }
}
