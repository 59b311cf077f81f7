import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { causeFields, meta, sandboxHttp, type Http } from "./support.ts";

let http: Http;
const ns = "writes-contract";
const cms = `/api/v1/namespaces/${ns}/configmaps`;
const apply = "application/apply-patch+yaml";
const merge = "application/merge-patch+json";
const strategic = "application/strategic-merge-patch+json";

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
});
afterAll(() => http.stop());

const configMap = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name },
  data: { a: "1" },
  ...extra,
});

// staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go, patcher.patchResource: an apply patch sets
// forceAllowCreate, so it creates a missing object (201) and updates an existing one (200).
describe("server-side apply (handlers/patch.go: patchResource, applyPatcher)", () => {
  it("creates a missing object: 201", async () => {
    const r = await http.call("PATCH", `${cms}/applied?fieldManager=kubectl&force=false`, configMap("applied"), apply);
    expect(r.status).toBe(201);
    expect(meta(r.body)["uid"]).toBeTypeOf("string");
    expect((await http.call("GET", `${cms}/applied`)).body["data"]).toEqual({ a: "1" });
  });

  it("updates an existing one: 200, and the same configuration again changes nothing", async () => {
    const path = `${cms}/applied2?fieldManager=kubectl`;
    await http.call("PATCH", path, configMap("applied2"), apply);
    const changed = await http.call("PATCH", path, configMap("applied2", { data: { a: "2" } }), apply);
    expect(changed.status).toBe(200);
    expect(changed.body["data"]).toEqual({ a: "2" });
    const again = await http.call("PATCH", path, configMap("applied2", { data: { a: "2" } }), apply);
    expect(meta(again.body)["resourceVersion"]).toBe(meta(changed.body)["resourceVersion"]);
  });

  // structuredMergeManager.Apply (apimachinery/pkg/util/managedfields/internal): the patch's version must be
  // the resource's, and managedFields may not be set.
  it.each([
    { desc: "a wrong apiVersion", body: configMap("v", { apiVersion: "v2" }), text: "Incorrect version specified" },
    {
      desc: "managedFields",
      body: { ...configMap("mf"), metadata: { name: "mf", managedFields: [{ manager: "x" }] } },
      text: "metadata.managedFields must be nil",
    },
  ])("400 for $desc", async ({ body, text }) => {
    const name = String((body.metadata as { name: string }).name);
    const r = await http.call("PATCH", `${cms}/${name}?fieldManager=kubectl`, body, apply);
    expect(r.status).toBe(400);
    expect(String(r.body["message"])).toContain(text);
  });

  // The field manager types the applied configuration first, so an unknown field fails whatever fieldValidation
  // says, as a plain error (500, no reason): structuredMergeManager.Apply, "failed to create typed patch object".
  it.each(["Strict", "Ignore"])("refuses an unknown field under fieldValidation=%s", async (mode) => {
    const r = await http.call(
      "PATCH",
      `${cms}/typed?fieldManager=kubectl&fieldValidation=${mode}`,
      configMap("typed", { spec: { foo: 1 } }),
      apply,
    );
    expect(r.status).toBe(500);
    expect(r.body["reason"]).toBeUndefined();
    expect(r.body["message"]).toBe(
      `failed to create typed patch object (${ns}/typed; /v1, Kind=ConfigMap): .spec: field not declared in schema`,
    );
  });
});

// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation, ValidatePatchOptions / ValidateCreateOptions.
describe("write options (meta/v1 validation: ValidatePatchOptions, ValidateCreateOptions)", () => {
  it("an apply patch needs a fieldManager: 422", async () => {
    const r = await http.call("PATCH", `${cms}/nomanager`, configMap("nomanager"), apply);
    expect(r.status).toBe(422);
    expect(r.body["message"]).toBe(
      'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    );
  });

  it("force is only for apply: 422", async () => {
    await http.call("POST", cms, configMap("forced"));
    const r = await http.call("PATCH", `${cms}/forced?force=true`, { data: { b: "2" } }, merge);
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual(["force"]);
  });

  it("fieldValidation must be Ignore, Warn, Strict or empty: 422", async () => {
    const r = await http.call("POST", `${cms}?fieldValidation=strict`, configMap("lower"));
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual(["fieldValidation"]);
  });
});

// handlers/create.go and update.go (CreateResource, UpdateResource): the body is decoded strictly under Strict
// and Warn; a strict decoding error is a 400 under Strict (transformDecodeError), a Warning header under Warn
// (addStrictDecodingWarnings), nothing under Ignore. The Go types drop unknown fields in every case; an empty
// fieldValidation is Warn (handlers, fieldValidation).
describe("unknown fields of a create or update (handlers: create.go, update.go, fieldValidation)", () => {
  it("Strict: 400 with the strict decoding error", async () => {
    const r = await http.call(
      "POST",
      `${cms}?fieldValidation=Strict`,
      configMap("strict", { spec: { foo: 1 }, metadata: { name: "strict", labelz: {} } }),
    );
    expect(r.status).toBe(400);
    expect(r.body["reason"]).toBe("BadRequest");
    expect(r.body["message"]).toBe(
      'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.labelz", unknown field "spec"',
    );
  });

  it.each([
    { desc: "Warn", query: "?fieldValidation=Warn", warning: '299 - "unknown field \\"spec\\""' },
    { desc: "empty (Warn)", query: "", warning: '299 - "unknown field \\"spec\\""' },
    { desc: "Ignore", query: "?fieldValidation=Ignore", warning: null },
  ])("$desc: stored without the field", async ({ desc, query, warning }) => {
    const name = `lenient-${desc.split(" ")[0]?.toLowerCase() ?? ""}`;
    const r = await http.call("POST", `${cms}${query}`, configMap(name, { spec: { foo: 1 } }));
    expect(r.status).toBe(201);
    expect(r.headers.get("warning")).toBe(warning);
    expect(r.body["spec"]).toBeUndefined();
  });

  it("a nested unknown field of a Service port, named by its index", async () => {
    const r = await http.call("POST", `/api/v1/namespaces/${ns}/services?fieldValidation=Strict`, {
      metadata: { name: "ports" },
      spec: { ports: [{ port: 80 }, { port: 81, portt: 82 }] },
    });
    expect(r.status).toBe(400);
    expect(String(r.body["message"])).toContain('unknown field "spec.ports[1].portt"');
  });

  it("PUT under Strict: 400", async () => {
    const cur = await http.call("POST", cms, configMap("put"));
    const r = await http.call("PUT", `${cms}/put?fieldValidation=Strict`, {
      ...configMap("put", { extra: true }),
      metadata: { name: "put", resourceVersion: meta(cur.body)["resourceVersion"] },
    });
    expect(r.status).toBe(400);
    expect(String(r.body["message"])).toContain('unknown field "extra"');
  });
});

// handlers/patch.go, jsonPatcher.applyPatchToCurrentObject and applyPatchToObject: the patched object decodes
// into the Go type, and under Strict an unknown field is a 422 on the field `patch`.
describe("unknown fields of a patch (handlers/patch.go: applyPatchToObject)", () => {
  it.each([
    { desc: "merge", type: merge },
    { desc: "strategic merge", type: strategic },
  ])("$desc under Strict: 422 on patch", async ({ type }) => {
    await http.call("POST", cms, configMap(`patched-${type.length}`));
    const r = await http.call(
      "PATCH",
      `${cms}/patched-${type.length}?fieldValidation=Strict`,
      { spec: { foo: 1 } },
      type,
    );
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual(["patch"]);
    expect(String(r.body["message"])).toMatch(
      /^ "" is invalid: patch: Invalid value: .*: strict decoding error: unknown field "spec"$/,
    );
  });

  it("a status patch under Warn: warned and dropped", async () => {
    await http.call("POST", `/api/v1/namespaces/${ns}/services`, {
      metadata: { name: "st" },
      spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
    });
    const r = await http.call(
      "PATCH",
      `/api/v1/namespaces/${ns}/services/st/status?fieldValidation=Warn`,
      { status: { loadBalancer: { ingress: [{ ip: "192.0.2.1", ipp: "x" }] } } },
      merge,
    );
    expect(r.status).toBe(200);
    expect(r.headers.get("warning")).toBe('299 - "unknown field \\"status.loadBalancer.ingress[0].ipp\\""');
    expect(r.body["status"]).toEqual({ loadBalancer: { ingress: [{ ip: "192.0.2.1", ipMode: "VIP" }] } });
  });
});

// sigs.k8s.io/json's strict decoder reports a key given twice in one object (the handlers decode with it under
// Strict and Warn); the apply patcher decodes YAML strictly under the same directives (applyPatcher, "error
// strict decoding YAML"), and non-strict decoding keeps the last value.
describe("duplicate fields (handlers: create.go; patch.go applyPatcher)", () => {
  const raw = async (method: string, path: string, text: string, type: string) => {
    const res = await fetch(http.sandbox.url + path, { method, headers: { "content-type": type }, body: text });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
      warning: res.headers.get("warning"),
    };
  };
  const twice = (name: string) =>
    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"${name}"},"data":{"a":"1","a":"2"}}`;

  it("Strict: 400", async () => {
    const r = await raw("POST", `${cms}?fieldValidation=Strict`, twice("dup-strict"), "application/json");
    expect(r.status).toBe(400);
    expect(r.body["message"]).toBe(
      'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data.a"',
    );
  });

  it("Warn: created with the last value and a warning", async () => {
    const r = await raw("POST", `${cms}?fieldValidation=Warn`, twice("dup-warn"), "application/json");
    expect(r.status).toBe(201);
    expect(r.warning).toBe('299 - "duplicate field \\"data.a\\""');
    expect(r.body["data"]).toEqual({ a: "2" });
  });

  it.each([
    { mode: "Strict", status: 400 },
    { mode: "Ignore", status: 201 },
  ])("an apply patch with a key twice under $mode: $status", async ({ mode, status }) => {
    const name = `dup-apply-${mode.toLowerCase()}`;
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  a: "1"\n  a: "2"\n`;
    const r = await raw("PATCH", `${cms}/${name}?fieldManager=m&fieldValidation=${mode}`, yaml, apply);
    expect(r.status).toBe(status);
    if (status === 400) expect(String(r.body["message"])).toMatch(/^error strict decoding YAML: /);
    else expect(r.body["data"]).toEqual({ a: "2" });
  });
});

// What `kubectl get -o yaml | kubectl replace -f -` sends back: everything the sandbox stores and defaults must
// be a declared field, or a round trip under Strict (kubectl's default) would be refused.
describe("every stored object passes its own kind's Strict check", () => {
  const pod = { containers: [{ name: "c", image: "nginx", ports: [{ containerPort: 80 }] }] };
  const objects: { desc: string; path: string; body: Record<string, unknown> }[] = [
    {
      desc: "a LoadBalancer Service",
      path: `/api/v1/namespaces/${ns}/services`,
      body: { metadata: { name: "rt" }, spec: { type: "LoadBalancer", ports: [{ port: 80 }], selector: { a: "b" } } },
    },
    {
      desc: "a Secret from stringData",
      path: `/api/v1/namespaces/${ns}/secrets`,
      body: { metadata: { name: "rt" }, stringData: { a: "b" } },
    },
    { desc: "a Namespace", path: "/api/v1/namespaces", body: { metadata: { name: "rt-ns" } } },
    { desc: "a ServiceAccount", path: `/api/v1/namespaces/${ns}/serviceaccounts`, body: { metadata: { name: "rt" } } },
    { desc: "a Pod", path: `/api/v1/namespaces/${ns}/pods`, body: { metadata: { name: "rt" }, spec: pod } },
    {
      desc: "a Deployment",
      path: `/apis/apps/v1/namespaces/${ns}/deployments`,
      body: {
        metadata: { name: "rt" },
        spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } }, spec: pod } },
      },
    },
    {
      desc: "a Lease",
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
      body: { metadata: { name: "rt" }, spec: { holderIdentity: "a", leaseDurationSeconds: 15 } },
    },
    {
      desc: "an EndpointSlice",
      path: `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
      body: {
        metadata: { name: "rt" },
        addressType: "IPv4",
        endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true } }],
        ports: [{ port: 80 }],
      },
    },
    {
      desc: "a RoleBinding",
      path: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
      body: {
        metadata: { name: "rt" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "x" },
        subjects: [{ kind: "ServiceAccount", name: "rt", namespace: ns }],
      },
    },
  ];

  it.each(objects)("$desc", async ({ path, body }) => {
    const created = await http.call("POST", path, body);
    expect(created.status).toBe(201);
    const name = String(meta(created.body)["name"]);
    const back = await http.call("PUT", `${path}/${name}?fieldValidation=Strict`, created.body);
    expect(back.status, JSON.stringify(back.body)).toBe(200);
  });
});
