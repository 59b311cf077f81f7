import { describe, expect, it } from "vitest";
import { poolRefusal } from "../../src/core/allocation-rules.ts";
import { toAnnouncePool } from "../../src/app/speaker-pools.ts";
import { pools, svc } from "./support/core-fixtures.ts";

/**
 * The speaker accepts a Service's spec.externalIPs only from namespaces the pool serves; it must read
 * serviceAllocation exactly as the allocator does (docs/configuration.md, "Pool fields": `namespaces` and
 * `namespaceSelector` each admit), or an IP the allocator hands out could be refused on the wire, or the reverse.
 */
const [byNameOrLabel, byName, byLabel, open] = pools(`
- {name: either, addresses: [192.0.2.0/28], serviceAllocation: {namespaces: [team-a], namespaceSelector: {matchLabels: {tenant: a}}}}
- {name: by-name, addresses: [192.0.2.16/28], serviceAllocation: {namespaces: [team-a]}}
- {name: by-label, addresses: [192.0.2.32/28], serviceAllocation: {namespaceSelector: {matchLabels: {tenant: a}}}}
- {name: open, addresses: [192.0.2.48/28]}
`);
const labelsOf: Record<string, Record<string, string>> = {
  "team-a": {},
  "team-b": { tenant: "a" },
  other: { tenant: "b" },
};

describe("speaker pools: which namespaces may announce externalIPs", () => {
  it.each([
    { desc: "listed by name, labels do not match", pool: byNameOrLabel, ns: "team-a", want: true },
    { desc: "not listed, labels match", pool: byNameOrLabel, ns: "team-b", want: true },
    { desc: "neither listed nor matching", pool: byNameOrLabel, ns: "other", want: false },
    { desc: "names only: listed", pool: byName, ns: "team-a", want: true },
    { desc: "names only: not listed", pool: byName, ns: "team-b", want: false },
    { desc: "selector only: matching", pool: byLabel, ns: "team-b", want: true },
    { desc: "selector only: not matching", pool: byLabel, ns: "team-a", want: false },
    { desc: "selector only: unknown namespace (no labels)", pool: byLabel, ns: "ghost", want: false },
    { desc: "no restriction", pool: open, ns: "other", want: true },
  ])("$desc → $want, as the allocator decides", ({ pool, ns, want }) => {
    const speaker = toAnnouncePool(pool!, (name) => labelsOf[name]);
    expect(speaker.allowsNamespace(ns)).toBe(want);
    const allocator = poolRefusal(pool!, svc(`${ns}/x`, { namespaceLabels: labelsOf[ns] ?? {} })) === undefined;
    expect(allocator).toBe(want);
  });
});
