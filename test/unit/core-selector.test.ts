import { describe, expect, it } from "vitest";
import type { LabelSelector } from "../../src/core/selector.ts";
import { matchesSelector, validateSelector } from "../../src/core/selector.ts";

describe("matchesSelector", () => {
  const labels = { app: "web", tier: "front" };
  it.each<{ desc: string; selector: LabelSelector; match: boolean }>([
    { desc: "empty selector matches everything", selector: {}, match: true },
    { desc: "matchLabels equal", selector: { matchLabels: { app: "web" } }, match: true },
    { desc: "matchLabels differ", selector: { matchLabels: { app: "db" } }, match: false },
    { desc: "matchLabels missing key", selector: { matchLabels: { zone: "a" } }, match: false },
    {
      desc: "In hit",
      selector: { matchExpressions: [{ key: "app", operator: "In", values: ["db", "web"] }] },
      match: true,
    },
    { desc: "In miss", selector: { matchExpressions: [{ key: "app", operator: "In", values: ["db"] }] }, match: false },
    {
      desc: "In absent key",
      selector: { matchExpressions: [{ key: "x", operator: "In", values: ["db"] }] },
      match: false,
    },
    {
      desc: "NotIn hit",
      selector: { matchExpressions: [{ key: "app", operator: "NotIn", values: ["web"] }] },
      match: false,
    },
    {
      desc: "NotIn absent key matches",
      selector: { matchExpressions: [{ key: "x", operator: "NotIn", values: ["a"] }] },
      match: true,
    },
    { desc: "Exists", selector: { matchExpressions: [{ key: "tier", operator: "Exists" }] }, match: true },
    { desc: "Exists absent", selector: { matchExpressions: [{ key: "x", operator: "Exists" }] }, match: false },
    { desc: "DoesNotExist", selector: { matchExpressions: [{ key: "x", operator: "DoesNotExist" }] }, match: true },
    {
      desc: "DoesNotExist present",
      selector: { matchExpressions: [{ key: "app", operator: "DoesNotExist" }] },
      match: false,
    },
    {
      desc: "all terms must hold",
      selector: { matchLabels: { app: "web" }, matchExpressions: [{ key: "tier", operator: "In", values: ["back"] }] },
      match: false,
    },
  ])("$desc", ({ selector, match }) => {
    expect(matchesSelector(selector, labels)).toBe(match);
  });
});

describe("validateSelector", () => {
  it.each<{ desc: string; selector: LabelSelector; paths: string[] }>([
    {
      desc: "valid",
      selector: { matchLabels: { "example.com/app": "web" }, matchExpressions: [{ key: "a", operator: "Exists" }] },
      paths: [],
    },
    {
      desc: "In without values",
      selector: { matchExpressions: [{ key: "a", operator: "In", values: [] }] },
      paths: ["matchExpressions[0].values"],
    },
    {
      desc: "Exists with values",
      selector: { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
      paths: ["matchExpressions[0].values"],
    },
    { desc: "bad key", selector: { matchLabels: { "-bad": "x" } }, paths: ["matchLabels.-bad"] },
    {
      desc: "bad prefix",
      selector: { matchExpressions: [{ key: "Bad_Prefix/a", operator: "Exists" }] },
      paths: ["matchExpressions[0].key"],
    },
    { desc: "bad value", selector: { matchLabels: { a: "x y" } }, paths: ["matchLabels.a"] },
    {
      desc: "bad expression value",
      selector: { matchExpressions: [{ key: "a", operator: "In", values: ["ok", "not ok"] }] },
      paths: ["matchExpressions[0].values[1]"],
    },
  ])("$desc", ({ selector, paths }) => {
    expect(validateSelector(selector).map((p) => p.path)).toEqual(paths);
  });
});
