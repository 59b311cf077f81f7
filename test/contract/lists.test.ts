import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { causeFields, meta, sandboxHttp, type Http } from "./support.ts";

let http: Http;
const ns = "lists-contract";
const cms = `/api/v1/namespaces/${ns}/configmaps`;
const merge = "application/merge-patch+json";

beforeAll(async () => {
  // A short history: 20 events per resource kept, so a test can outlive a continue token.
  http = await sandboxHttp({ historySize: 20 });
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
  for (const name of ["a", "b", "c", "d", "e"]) await http.call("POST", cms, { metadata: { name }, data: { v: "0" } });
});
afterAll(() => http.stop());

const names = (body: Record<string, unknown>): string[] =>
  ((body["items"] ?? []) as Record<string, unknown>[]).map((i) => String(meta(i)["name"]));
const cont = (body: Record<string, unknown>): string => String(meta(body)["continue"] ?? "");

// staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/validation, ValidateListOptions.
describe("list options (internalversion validation: ValidateListOptions)", () => {
  it.each([
    { desc: "resourceVersionMatch without resourceVersion", q: "resourceVersionMatch=NotOlderThan" },
    { desc: "resourceVersionMatch with continue", q: "resourceVersionMatch=NotOlderThan&resourceVersion=1&continue=x" },
    { desc: "an unknown resourceVersionMatch", q: "resourceVersionMatch=Newest&resourceVersion=1" },
    { desc: 'Exact at resourceVersion "0"', q: "resourceVersionMatch=Exact&resourceVersion=0" },
    { desc: "sendInitialEvents on a list", q: "sendInitialEvents=true" },
  ])("422 for $desc", async ({ q }) => {
    const r = await http.call("GET", `${cms}?${q}`);
    expect(r.status).toBe(422);
    expect(causeFields(r.body).length).toBeGreaterThan(0);
  });

  it("NotOlderThan with a resourceVersion is fine", async () => {
    expect((await http.call("GET", `${cms}?resourceVersionMatch=NotOlderThan&resourceVersion=1`)).status).toBe(200);
  });
});

// staging/src/k8s.io/apiserver/pkg/storage/etcd3, store.GetList: a continue token carries the first page's
// revision; later pages are read at it, and a revision etcd compacted away is 410 Expired.
describe("paged lists (etcd3 store: GetList)", () => {
  it("continue pages form one snapshot at the first page's resourceVersion", async () => {
    const first = await http.call("GET", `${cms}?limit=2`);
    expect(names(first.body)).toEqual(["a", "b"]);
    const rv = meta(first.body)["resourceVersion"];
    // Between the pages: one object changes, one is deleted, one is added after the last key.
    await http.call("PATCH", `${cms}/c`, { data: { v: "1" } }, merge);
    await http.call("DELETE", `${cms}/d`);
    await http.call("POST", cms, { metadata: { name: "f" } });
    const second = await http.call("GET", `${cms}?limit=2&continue=${cont(first.body)}`);
    expect(meta(second.body)["resourceVersion"]).toBe(rv);
    expect(names(second.body)).toEqual(["c", "d"]);
    const c = ((second.body["items"] ?? []) as Record<string, unknown>[])[0]!;
    expect(c["data"]).toEqual({ v: "0" });
    const third = await http.call("GET", `${cms}?limit=2&continue=${cont(second.body)}`);
    expect(names(third.body)).toEqual(["e"]);
    expect(cont(third.body)).toBe("");
    // A fresh list sees the present.
    expect(names((await http.call("GET", cms)).body)).toEqual(["a", "b", "c", "e", "f"]);
  });

  it("a continue token older than the kept history is 410 Expired", async () => {
    const first = await http.call("GET", `${cms}?limit=2`);
    for (let i = 0; i < 45; i++) await http.call("PATCH", `${cms}/a`, { data: { v: String(i) } }, merge);
    const r = await http.call("GET", `${cms}?limit=2&continue=${cont(first.body)}`);
    expect(r.status).toBe(410);
    expect(r.body["reason"]).toBe("Expired");
  });

  it("a continue token together with a resourceVersion is 400", async () => {
    const first = await http.call("GET", `${cms}?limit=2`);
    const r = await http.call("GET", `${cms}?limit=2&resourceVersion=5&continue=${cont(first.body)}`);
    expect(r.status).toBe(400);
  });

  it("resourceVersionMatch=Exact reads that revision", async () => {
    const before = await http.call("GET", cms);
    const rv = String(meta(before.body)["resourceVersion"]);
    await http.call("POST", cms, { metadata: { name: "g" } });
    const exact = await http.call("GET", `${cms}?resourceVersionMatch=Exact&resourceVersion=${rv}`);
    expect(exact.status).toBe(200);
    expect(names(exact.body)).toEqual(names(before.body));
    expect(meta(exact.body)["resourceVersion"]).toBe(rv);
  });
});
