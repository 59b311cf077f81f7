import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sandboxHttp, type Http } from "./support.ts";

let http: Http;

beforeAll(async () => {
  http = await sandboxHttp();
});
afterAll(() => http.stop());

const PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

// staging/src/k8s.io/client-go/discovery, DiscoveryClient.OpenAPISchema: /openapi/v2 is read as gnostic
// protobuf only. kubectl validates against it what the server cannot validate for it — a `kind: List`
// (staging/src/k8s.io/kubectl/pkg/validation, paramVerifyingSchema.ValidateBytes then schemaValidation
// .validateList) — finding each item's definition by x-kubernetes-group-version-kind
// (staging/src/k8s.io/kubectl/pkg/util/openapi, NewOpenAPIData).
describe("/openapi/v2 (client-go discovery: OpenAPISchema; kubectl validation: validateList)", () => {
  it("is gnostic protobuf when asked for it", async () => {
    const res = await fetch(`${http.sandbox.url}/openapi/v2`, { headers: { accept: PROTOBUF } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("protobuf");
    const bytes = new Uint8Array(await res.arrayBuffer());
    // Document.swagger (field 1, length-delimited) comes first: "2.0".
    expect([...bytes.subarray(0, 5)]).toEqual([0x0a, 0x03, 0x32, 0x2e, 0x30]);
    const text = Buffer.from(bytes).toString("latin1");
    expect(text).toContain("io.k8s.api.core.v1.ConfigMap");
    expect(text).toContain("x-kubernetes-group-version-kind");
  });

  it("declares each kind's fields, with its group, version and kind", async () => {
    const r = await http.call("GET", "/openapi/v2");
    const defs = r.body["definitions"] as Record<string, Record<string, unknown>>;
    expect(Object.keys(defs)).toEqual(
      expect.arrayContaining([
        "io.k8s.api.core.v1.Service",
        "io.k8s.api.apps.v1.Deployment",
        "io.k8s.api.coordination.v1.Lease",
        "io.k8s.api.rbac.v1.RoleBinding",
      ]),
    );
    const cm = defs["io.k8s.api.core.v1.ConfigMap"] ?? {};
    expect(cm["x-kubernetes-group-version-kind"]).toEqual([{ group: "", kind: "ConfigMap", version: "v1" }]);
    const props = cm["properties"] as Record<string, unknown>;
    expect(Object.keys(props).sort()).toEqual(["apiVersion", "binaryData", "data", "immutable", "kind", "metadata"]);
    expect(props["data"]).toEqual({ type: "object", additionalProperties: {} });
  });

  it("/openapi/v3 still tells kubectl the server validates fields for its kinds, but not for a List", async () => {
    const r = await http.call("GET", "/openapi/v3/api/v1");
    const kinds = Object.values(r.body["paths"] as Record<string, { patch: Record<string, { kind: string }> }>).map(
      (p) => p.patch["x-kubernetes-group-version-kind"]?.kind,
    );
    expect(kinds).toContain("ConfigMap");
    expect(kinds).not.toContain("List");
  });
});
