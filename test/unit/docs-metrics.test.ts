// docs/operations.md is the metrics reference: every metric the code exports must be documented there, by name.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { metricCatalogue } from "../../src/http/metrics.ts";

const page = readFileSync(new URL("../../docs/operations.md", import.meta.url), "utf8");

describe("docs/operations.md metrics table", () => {
  it.each(metricCatalogue.map(([name, type]) => ({ name, type })))("documents $name ($type)", ({ name, type }) => {
    expect(page).toMatch(new RegExp(`^\\| \`${name}\` \\| ${type} \\|`, "m"));
  });
});
