import { describe, expect, it } from "vitest";
import { AllocationCodes, ConfigCodes, configMessages, refusal } from "../../src/core/errors.ts";

describe("error catalogue", () => {
  const codes = [...Object.values(ConfigCodes), ...Object.values(AllocationCodes)];

  it("has unique, stable-looking codes", () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^LODESTONE_E_[A-Z0-9_]+$/);
  });

  it.each([
    { desc: "exhausted", e: refusal.poolExhausted(["a"], 4), text: 'no free IPv4 address left in pool "a"' },
    {
      desc: "exhausted, several",
      e: refusal.poolExhausted(["a", "b"], 6),
      text: 'no free IPv6 address left in pools "a", "b"',
    },
    { desc: "in use", e: refusal.ipInUse("192.0.2.1", "ns/web"), text: "192.0.2.1 is in use by Service ns/web" },
    { desc: "not in any pool", e: refusal.ipNotInPool("192.0.2.1"), text: "192.0.2.1 is not in any address pool" },
    { desc: "not in requested pool", e: refusal.ipNotInPool("192.0.2.1", "p"), text: 'not in the requested pool "p"' },
    {
      desc: "namespace",
      e: refusal.namespaceNotAllowed("p", "team-b"),
      text: 'pool "p" is not available to namespace "team-b"',
    },
    { desc: "family", e: refusal.familyUnavailable(6, ["p"]), text: 'pool "p" has no IPv6 addresses' },
    {
      desc: "sharing",
      e: refusal.sharingConflict("192.0.2.1", "ns/a", "both use TCP/80"),
      text: "cannot be shared with Service ns/a: both use TCP/80",
    },
  ])("reads well: $desc", ({ e, text }) => {
    expect(e.message).toContain(text);
    expect(codes).toContain(e.code);
  });

  it("suggests only when there is a suggestion", () => {
    expect(configMessages.unknownField("x", undefined)).toBe('unknown field "x"');
    expect(configMessages.unknownField("nmae", "name")).toBe('unknown field "nmae" (did you mean "name"?)');
  });
});
