import { describe, expect, it } from "vitest";
import { parseFlags } from "../../src/cli/flags.ts";
import { parseSandboxFlags } from "../../src/cli/sandbox.ts";

const specs = {
  name: { type: "string" },
  port: { type: "string" },
  on: { type: "boolean" },
  tag: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

describe("sub-command flags", () => {
  it.each([
    { desc: "--flag value and --flag=value", args: ["--name", "a", "--port=1"], values: { name: "a", port: "1" } },
    { desc: "a value may start with a dash", args: ["--port", "-1"], values: { port: "-1" } },
    { desc: "bare boolean", args: ["--on"], values: { on: true } },
    { desc: "boolean=false", args: ["--on=false"], values: { on: false } },
    { desc: "boolean false as the next word", args: ["--on", "false"], values: { on: false } },
    { desc: "boolean true as the next word", args: ["--on", "true", "--name=x"], values: { on: true, name: "x" } },
    { desc: "repeatable", args: ["--tag", "a", "--tag=b"], values: { tag: ["a", "b"] } },
    { desc: "short form", args: ["-h"], values: { help: true } },
    { desc: "last one wins", args: ["--name=a", "--name=b"], values: { name: "b" } },
  ])("$desc", ({ args, values }) => {
    expect(parseFlags(args, specs)).toEqual({ ok: true, values, positionals: [] });
  });

  it("keeps positionals where the command takes them, the word after a bare boolean included", () => {
    expect(parseFlags(["a", "--on", "b", "--", "--c"], specs, { positionals: true })).toEqual({
      ok: true,
      values: { on: true },
      positionals: ["a", "b", "--c"],
    });
  });

  it.each([
    { desc: "unknown flag", args: ["--nodes=3"], error: "unknown flag --nodes" },
    { desc: "unknown short flag", args: ["-x"], error: "unknown flag -x" },
    { desc: "missing value at the end", args: ["--name"], error: "--name needs a value" },
    { desc: "missing value before a flag", args: ["--name", "--on"], error: "--name needs a value" },
    { desc: "bad boolean", args: ["--on=maybe"], error: '--on must be true or false, got "maybe"' },
    { desc: "positional", args: ["now"], error: 'unexpected argument "now"' },
  ])("rejects $desc", ({ args, error }) => {
    expect(parseFlags(args, specs)).toEqual({ ok: false, error });
  });
});

describe("lodestone sandbox flags", () => {
  it.each([
    { desc: "defaults", args: [], want: { port: 6443, address: "127.0.0.1", rbac: false, tls: undefined } },
    { desc: "--rbac alone", args: ["--rbac", "--port=0"], want: { port: 0, rbac: true, tls: undefined } },
    { desc: "--tls=false", args: ["--rbac", "--tls=false"], want: { rbac: true, tls: false } },
    { desc: "--tls false", args: ["--tls", "false", "--address", "::1"], want: { address: "::1", tls: false } },
    { desc: "--kubeconfig", args: ["--kubeconfig", "/tmp/k"], want: { kubeconfig: "/tmp/k" } },
  ])("$desc", ({ args, want }) => {
    expect(parseSandboxFlags(args)).toMatchObject(want);
  });

  it.each([
    { args: ["--help"], want: "help" },
    { args: ["--port=70000"], want: "--port needs a number 0..65535, got 70000" },
    { args: ["--address="], want: "--address needs an address" },
    { args: ["--tls=yes"], want: '--tls must be true or false, got "yes"' },
    { args: ["--nope"], want: "unknown flag --nope" },
  ])("$args → $want", ({ args, want }) => {
    expect(parseSandboxFlags(args)).toBe(want);
  });
});
