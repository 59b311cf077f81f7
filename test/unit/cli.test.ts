import { describe, expect, it } from "vitest";
import { lodestone } from "./support/run-cli.ts";

describe("lodestone CLI", () => {
  it("prints its version", async () => {
    const r = await lodestone("--version");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^lodestone \d+\.\d+\.\d+/);
  });

  it("lists its commands with --help", async () => {
    const r = await lodestone("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: lodestone <command>");
  });

  it.each([
    { desc: "unknown command", args: ["frobnicate"], stderr: /unknown command "frobnicate"/ },
    { desc: "no command", args: [], stderr: /^$/ },
  ])("exits 2 on a usage error: $desc", async ({ args, stderr }) => {
    const r = await lodestone(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(stderr);
  });
});
