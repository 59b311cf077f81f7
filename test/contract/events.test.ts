import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { causeFields, sandboxHttp, type Http } from "./support.ts";

let http: Http;
const ns = "events-contract";
const core = `/api/v1/namespaces/${ns}/events`;
const v1 = `/apis/events.k8s.io/v1/namespaces/${ns}/events`;
let n = 0;

beforeAll(async () => {
  http = await sandboxHttp();
  await http.call("POST", "/api/v1/namespaces", { metadata: { name: ns } });
});
afterAll(() => http.stop());

/** A core/v1 Event with eventTime, as Lodestone's recorder writes it. */
const event = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  metadata: { name: `e${++n}`, namespace: ns },
  involvedObject: { kind: "Service", namespace: ns, name: "web", uid: "u-1", apiVersion: "v1" },
  type: "Normal",
  reason: "IPAllocated",
  message: "Assigned IP 192.0.2.10 from pool lan",
  source: { component: "lodestone-controller" },
  reportingComponent: "lodestone-controller",
  reportingInstance: "node-1",
  action: "IPAllocated",
  eventTime: "2026-01-01T00:00:00.000000Z",
  firstTimestamp: "2026-01-01T00:00:00Z",
  lastTimestamp: "2026-01-01T00:00:00Z",
  count: 1,
  ...over,
});

// pkg/apis/core/validation, legacyValidateEvent (and ValidateEventCreate, which runs it for both API groups): an
// Event with eventTime needs reportingController, reportingInstance, action and reason; reportingInstance, action
// and reason have at most 128 bytes, the message at most 1024 (NoteLengthLimit; Go's len() counts bytes).
describe("Events with eventTime (core validation: legacyValidateEvent)", () => {
  it("accepts what Lodestone's recorder writes, a message of exactly 1024 bytes included", async () => {
    expect((await http.call("POST", core, event())).status).toBe(201);
    expect((await http.call("POST", core, event({ message: "é".repeat(512) }))).status).toBe(201);
  });

  it.each([
    { desc: "no reportingController", over: { reportingComponent: undefined }, field: "reportingController" },
    { desc: "no reportingInstance", over: { reportingInstance: "" }, field: "reportingInstance" },
    { desc: "a 129-byte reportingInstance", over: { reportingInstance: "n".repeat(129) }, field: "reportingInstance" },
    { desc: "no action", over: { action: undefined }, field: "action" },
    { desc: "a 129-byte action", over: { action: "a".repeat(129) }, field: "action" },
    { desc: "a 129-byte reason", over: { reason: "r".repeat(129) }, field: "reason" },
    // 513 two-byte characters: 1026 bytes, though only 513 JavaScript characters.
    { desc: "a message of 1026 bytes", over: { message: "é".repeat(513) }, field: "message" },
  ])("422 for $desc", async ({ over, field }) => {
    const r = await http.call("POST", core, event(over));
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toContain(field);
  });

  it("without eventTime (an old-style Event) none of that applies", async () => {
    const old = event({
      eventTime: undefined,
      reportingComponent: undefined,
      action: undefined,
      message: "x".repeat(2000),
    });
    expect((await http.call("POST", core, old)).status).toBe(201);
  });

  it("the same rules through events.k8s.io/v1, where the message is `note`", async () => {
    const body = {
      metadata: { name: `e${++n}` },
      regarding: { kind: "Service", namespace: ns, name: "web" },
      type: "Warning",
      reason: "AllocationFailed",
      action: "Allocate",
      reportingController: "lodestone.dev/controller",
      reportingInstance: "node-1",
      eventTime: "2026-01-01T00:00:00.000000Z",
      note: "n".repeat(1025),
    };
    const r = await http.call("POST", v1, body);
    expect(r.status).toBe(422);
    expect(causeFields(r.body)).toContain("note");
    expect((await http.call("POST", v1, { ...body, note: "fits" })).status).toBe(201);
  });
});

// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1, MicroTime.UnmarshalJSON: RFC3339Micro, six fractional digits;
// anything else fails decoding (400) before validation.
describe("eventTime is a MicroTime (meta/v1: MicroTime.UnmarshalJSON)", () => {
  it.each([
    { desc: "seconds only", eventTime: "2026-01-01T00:00:00Z" },
    { desc: "milliseconds", eventTime: "2026-01-01T00:00:00.000Z" },
    { desc: "not a time", eventTime: "yesterday" },
  ])("400 for $desc", async ({ eventTime }) => {
    const r = await http.call("POST", core, event({ eventTime }));
    expect(r.status).toBe(400);
    expect(r.body["reason"]).toBe("BadRequest");
  });

  it("accepts an offset instead of Z", async () => {
    expect((await http.call("POST", core, event({ eventTime: "2026-01-01T02:00:00.123456+02:00" }))).status).toBe(201);
  });
});
