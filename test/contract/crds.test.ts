import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { causeFields, meta, sandboxHttp, type Http } from "./support.ts";

// Contract: CustomResourceDefinitions as apiextensions-apiserver serves them (staging/src/k8s.io/
// apiextensions-apiserver/pkg/...). Test data: a made-up "gadgets.lab.example" group.

let http: Http;
const ns = "crds-contract";
const CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

const schema = {
  type: "object",
  properties: {
    spec: {
      type: "object",
      required: ["size"],
      properties: {
        size: { type: "integer", minimum: 1, maximum: 8 },
        color: { type: "string", enum: ["red", "green"], default: "green" },
        code: { type: "string", pattern: "^[a-z]+$" },
        tags: { type: "array", items: { type: "string" } },
        extra: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      },
    },
    status: { type: "object", properties: { phase: { type: "string" }, count: { type: "integer" } } },
  },
};

const crd = (plural: string, kind: string, scope: "Namespaced" | "Cluster", extra: Record<string, unknown> = {}) => ({
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `${plural}.lab.example` },
  spec: {
    group: "lab.example",
    scope,
    names: { plural, kind, shortNames: [plural.slice(0, 3)] },
    versions: [
      {
        name: "v1alpha1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: { openAPIV3Schema: schema },
        additionalPrinterColumns: [
          { name: "Size", type: "integer", jsonPath: ".spec.size" },
          { name: "Phase", type: "string", jsonPath: ".status.phase" },
        ],
        ...extra,
      },
    ],
  },
});

const gadgets = `/apis/lab.example/v1alpha1/namespaces/${ns}/gadgets`;
const gadget = (name: string, spec: Record<string, unknown>, more: Record<string, unknown> = {}) => ({
  apiVersion: "lab.example/v1alpha1",
  kind: "Gadget",
  metadata: { name },
  spec,
  ...more,
});

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
  expect((await http.call("POST", CRDS, crd("gadgets", "Gadget", "Namespaced"))).status).toBe(201);
});
afterAll(async () => {
  await http.stop();
});

// pkg/controller/establish (EstablishingController) and pkg/controller/status (NamingConditionController).
describe("a created CRD is Established (controller/establish, controller/status naming)", () => {
  it("has NamesAccepted and Established conditions, acceptedNames and storedVersions", async () => {
    const r = await http.call("GET", `${CRDS}/gadgets.lab.example`);
    const status = r.body["status"] as { conditions: { type: string; status: string }[]; storedVersions: string[] };
    expect(status.conditions.map((c) => [c.type, c.status])).toEqual([
      ["NamesAccepted", "True"],
      ["Established", "True"],
    ]);
    expect(status.storedVersions).toEqual(["v1alpha1"]);
    const spec = r.body["spec"] as { names: Record<string, unknown> };
    // apis/apiextensions/v1, SetDefaults_CustomResourceDefinitionSpec.
    expect(spec.names).toMatchObject({ singular: "gadget", listKind: "GadgetList" });
  });
});

// pkg/apis/apiextensions/validation, ValidateCustomResourceDefinition.
describe("CRD validation (apiextensions validation: ValidateCustomResourceDefinition)", () => {
  it.each([
    {
      desc: "a name other than plural.group",
      body: { ...crd("things", "Thing", "Cluster"), metadata: { name: "other.lab.example" } },
      field: "metadata.name",
    },
    {
      desc: "an unknown scope",
      body: crd("things", "Thing", "Global" as "Cluster"),
      field: "spec.scope",
    },
    {
      desc: "a version without a schema",
      body: crd("things", "Thing", "Cluster", { schema: {} }),
      field: "spec.versions[0].schema.openAPIV3Schema",
    },
    {
      desc: "no storage version",
      body: crd("things", "Thing", "Cluster", { storage: false }),
      field: "spec.versions",
    },
  ])("422 for $desc", async ({ body, field }) => {
    const r = await http.call("POST", CRDS, body);
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toContain(field);
  });
});

// pkg/apiserver, crdHandler.ServeHTTP and getOrCreateServingInfoFor; discovery: DiscoveryController.
describe("discovery and REST paths follow the CRD (apiserver: crdHandler, DiscoveryController)", () => {
  it("lists the group in /apis and the resource in /apis/GROUP/VERSION, with its status subresource", async () => {
    const groups = (await http.call("GET", "/apis")).body["groups"] as { name: string }[];
    expect(groups.map((g) => g.name)).toContain("lab.example");
    const list = await http.call("GET", "/apis/lab.example/v1alpha1");
    const resources = list.body["resources"] as { name: string; namespaced: boolean; shortNames?: string[] }[];
    expect(resources.map((r) => r.name)).toEqual(["gadgets", "gadgets/status"]);
    expect(resources[0]).toMatchObject({ namespaced: true, kind: "Gadget", shortNames: ["gad"] });
  });

  it("serves a cluster-scoped CRD without namespaces, and removes everything on delete", async () => {
    expect((await http.call("POST", CRDS, crd("widgets", "Widget", "Cluster"))).status).toBe(201);
    const path = "/apis/lab.example/v1alpha1/widgets";
    const w = { ...gadget("w1", { size: 2 }), kind: "Widget" };
    expect((await http.call("POST", path, w)).status).toBe(201);
    expect((await http.call("POST", `/apis/lab.example/v1alpha1/namespaces/${ns}/widgets`, w)).status).toBe(404);
    const all = http.watch(`${path}?watch=true`);
    const watch = http.watch(
      `${path}?watch=true&resourceVersion=${String(meta((await http.call("GET", path)).body)["resourceVersion"])}&timeoutSeconds=2`,
      1,
    );
    expect((await http.call("DELETE", `${CRDS}/widgets.lab.example`)).status).toBe(200);
    // controller/finalizer, CRDFinalizer.deleteInstances: the objects go first (a DELETED event each).
    expect((await watch).map((e) => e.type)).toEqual(["DELETED"]);
    // Its watches end once the objects' deletions are sent (apiserver: crdHandler.removeStorage).
    expect((await all).map((e) => e.type)).toEqual(["ADDED", "DELETED"]);
    expect((await http.call("GET", path)).status).toBe(404);
    const list = (await http.call("GET", "/apis/lab.example/v1alpha1")).body["resources"] as { name: string }[];
    expect(list.map((r) => r.name)).not.toContain("widgets");
    // Created again, it starts empty.
    expect((await http.call("POST", CRDS, crd("widgets", "Widget", "Cluster"))).status).toBe(201);
    expect(((await http.call("GET", path)).body["items"] as unknown[]).length).toBe(0);
  });
});

// pkg/apiserver/schema/pruning, Prune; pkg/apiserver/schema/defaulting, Default.
describe("unknown fields are pruned and defaults applied (schema/pruning: Prune, schema/defaulting: Default)", () => {
  it("drops undeclared fields, keeps x-kubernetes-preserve-unknown-fields, fills in defaults", async () => {
    const r = await http.call(
      "POST",
      `${gadgets}?fieldValidation=Ignore`,
      gadget("pruned", { size: 1, bogus: true, extra: { anything: { goes: 1 } } }, { top: 1 }),
    );
    expect(r.status).toBe(201);
    expect(r.body["spec"]).toEqual({ size: 1, color: "green", extra: { anything: { goes: 1 } } });
    expect(r.body["top"]).toBeUndefined();
  });

  it("reports them under Strict as a strict decoding error (400) and under Warn as a warning", async () => {
    const strict = await http.call(
      "POST",
      `${gadgets}?fieldValidation=Strict`,
      gadget("strict", { size: 1, bogus: 1 }),
    );
    expect(strict.status).toBe(400);
    expect(strict.body["message"]).toContain('strict decoding error: unknown field "spec.bogus"');
    const warn = await http.call("POST", gadgets, gadget("warn", { size: 1, bogus: 1 }));
    expect(warn.status).toBe(201);
    expect(warn.headers.get("warning")).toContain('unknown field \\"spec.bogus\\"');
  });
});

// pkg/apiserver/validation, ValidateCustomResource (kube-openapi validate.SchemaValidator).
describe("schema validation (apiserver/validation: ValidateCustomResource)", () => {
  it.each([
    { desc: "a string for an integer", spec: { size: "2" }, field: "spec.size", reason: "FieldValueTypeInvalid" },
    { desc: "a missing required field", spec: { color: "red" }, field: "spec.size", reason: "FieldValueRequired" },
    {
      desc: "a value outside the enum",
      spec: { size: 1, color: "blue" },
      field: "spec.color",
      reason: "FieldValueNotSupported",
    },
    { desc: "a value below minimum", spec: { size: 0 }, field: "spec.size", reason: "FieldValueInvalid" },
    { desc: "a value above maximum", spec: { size: 9 }, field: "spec.size", reason: "FieldValueInvalid" },
    { desc: "a pattern mismatch", spec: { size: 1, code: "A1" }, field: "spec.code", reason: "FieldValueInvalid" },
    {
      desc: "a list item of the wrong type",
      spec: { size: 1, tags: [1] },
      field: "spec.tags[0]",
      reason: "FieldValueTypeInvalid",
    },
  ])("422 for $desc", async ({ spec, field, reason }) => {
    const r = await http.call("POST", gadgets, gadget("bad", spec));
    expect(r.status).toBe(422);
    const causes = (r.body["details"] as { causes: { field: string; reason: string }[] }).causes;
    expect(causes).toEqual([expect.objectContaining({ field, reason })]);
  });

  it("validates the result of a patch as well", async () => {
    expect((await http.call("POST", gadgets, gadget("patched", { size: 2 }))).status).toBe(201);
    const r = await http.call("PATCH", `${gadgets}/patched`, { spec: { size: 100 } }, "application/merge-patch+json");
    expect(r.status).toBe(422);
  });
});

// pkg/registry/customresource, customResourceStrategy and statusStrategy (PrepareForCreate / PrepareForUpdate).
describe("the status subresource (registry/customresource: strategy, statusStrategy)", () => {
  it("ignores status on create and on writes to the object; /status changes only status", async () => {
    const c = await http.call("POST", gadgets, gadget("st", { size: 3 }, { status: { phase: "Made" } }));
    expect(c.body["status"]).toBeUndefined();
    expect(meta(c.body)["generation"]).toBe(1);
    const s = await http.call(
      "PATCH",
      `${gadgets}/st/status`,
      { spec: { size: 4 }, status: { phase: "Ready" } },
      "application/merge-patch+json",
    );
    expect(s.status).toBe(200);
    expect(s.body["spec"]).toMatchObject({ size: 3 });
    expect(s.body["status"]).toEqual({ phase: "Ready" });
    expect(meta(s.body)["generation"]).toBe(1);
    const o = await http.call(
      "PATCH",
      `${gadgets}/st`,
      { spec: { size: 5 }, status: { phase: "Gone" } },
      "application/merge-patch+json",
    );
    expect(o.body["status"]).toEqual({ phase: "Ready" });
    // The generation counts spec changes (customResourceStrategy.PrepareForUpdate).
    expect(meta(o.body)["generation"]).toBe(2);
  });

  it("validates status writes against the schema", async () => {
    const r = await http.call(
      "PATCH",
      `${gadgets}/st/status`,
      { status: { count: "x" } },
      "application/merge-patch+json",
    );
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toEqual(["status.count"]);
  });
});

// Lists, label selectors and watches go through the generic registry as for built-in kinds.
describe("lists, selectors and watches (apiserver/pkg/registry/generic/registry, Store)", () => {
  it("selects by label and watches changes", async () => {
    await http.call(
      "POST",
      gadgets,
      gadget("red", { size: 1, color: "red" }, { metadata: { name: "red", labels: { c: "r" } } }),
    );
    const list = await http.call("GET", `${gadgets}?labelSelector=c%3Dr`);
    expect(list.body["kind"]).toBe("GadgetList");
    expect((list.body["items"] as Record<string, unknown>[]).map((i) => meta(i)["name"])).toEqual(["red"]);
    const rv = String(meta(list.body)["resourceVersion"]);
    const events = http.watch(`${gadgets}?watch=true&labelSelector=c%3Dr&resourceVersion=${rv}&timeoutSeconds=2`, 1);
    await http.call("PATCH", `${gadgets}/red`, { spec: { size: 2 } }, "application/merge-patch+json");
    expect((await events).map((e) => e.type)).toEqual(["MODIFIED"]);
  });
});

// pkg/registry/customresource/tableconvertor, ConvertToTable and cellForJSONValue.
describe("Table printing (registry/customresource/tableconvertor: ConvertToTable)", () => {
  it("has Name and the additionalPrinterColumns, typed, null where the path finds nothing", async () => {
    const res = await fetch(`${http.sandbox.url}${gadgets}/st`, {
      headers: { accept: "application/json;as=Table;g=meta.k8s.io;v=v1" },
    });
    const table = (await res.json()) as {
      columnDefinitions: { name: string; type: string }[];
      rows: { cells: unknown[] }[];
    };
    expect(table.columnDefinitions.map((c) => [c.name, c.type])).toEqual([
      ["Name", "string"],
      ["Size", "integer"],
      ["Phase", "string"],
    ]);
    expect(table.rows[0]?.cells).toEqual(["st", 5, "Ready"]);
    const none = await fetch(`${http.sandbox.url}${gadgets}/patched`, {
      headers: { accept: "application/json;as=Table;g=meta.k8s.io;v=v1" },
    });
    expect(((await none.json()) as { rows: { cells: unknown[] }[] }).rows[0]?.cells).toEqual(["patched", 2, null]);
  });
});
