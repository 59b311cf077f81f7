import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);
const bin = new URL("../../bin/lodestone.js", import.meta.url).pathname;

async function lodestone(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

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
