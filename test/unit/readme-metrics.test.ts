// The README is the metrics reference: every metric the code exports must be documented there, by name.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { metricCatalogue } from "../../src/http/metrics.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README metrics table", () => {
  it.each(metricCatalogue.map(([name, type]) => ({ name, type })))("documents $name ($type)", ({ name, type }) => {
    expect(readme).toMatch(new RegExp(`^\\| \`${name}\` \\| ${type} \\|`, "m"));
  });
});
