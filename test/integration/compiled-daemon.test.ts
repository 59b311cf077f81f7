import { execFile } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compiledDaemon, DAEMON_BIN, type CompiledDaemon } from "../../src/lab/daemon-command.ts";

// The image runs dist/ (the sources compiled by `npm run build`), not src/: the compiled layout must behave as the
// checkout does.
const run = promisify(execFile);
let compiled: CompiledDaemon;
beforeAll(() => {
  compiled = compiledDaemon();
}, 120_000);
afterAll(() => compiled?.remove());

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));

describe("the compiled daemon (the image's dist/)", () => {
  it("imports only JavaScript: every relative .ts specifier was rewritten", () => {
    const dist = join(dirname(dirname(compiled.bin)), "dist");
    const js = files(dist).filter((f) => f.endsWith(".js"));
    expect(js.length).toBeGreaterThan(50);
    const stale = js.filter((f) => /(from |import\()\s*["']\.{1,2}\/[^"']*\.ts["']/.test(readFileSync(f, "utf8")));
    expect(stale).toEqual([]);
  });

  it("carries the daemon only: no embedded API server, lab or demo; those commands say where they are", async () => {
    const dist = join(dirname(dirname(compiled.bin)), "dist");
    const modules = files(dist).map((f) => f.slice(dist.length + 1));
    expect(modules).toContain("cli/run.js");
    expect(modules.filter((f) => /^(sandbox|lab)\/|(^|\/)demo[-.]|^cli\/sandbox\./.test(f))).toEqual([]);
    for (const dev of ["demo", "sandbox"]) {
      const r = await run(process.execPath, [compiled.bin, dev]).then(
        () => ({ code: 0, stderr: "" }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`"${dev}" is a development command and not part of this installation`);
    }
    const help = (await run(process.execPath, [compiled.bin, "--help"])).stdout;
    expect(help).toMatch(/^ {2}run /m);
    expect(help).not.toMatch(/^ {2}(demo|sandbox) /m);
    expect((await run(process.execPath, [DAEMON_BIN, "--help"])).stdout).toMatch(/^ {2}sandbox /m);
  });

  it("answers as the checkout does: version, a refused flag, an offline config check", async () => {
    const both = async (args: string[]) => {
      const out = await Promise.all(
        [DAEMON_BIN, compiled.bin].map((bin) =>
          run(process.execPath, [bin, ...args]).then(
            (r) => ({ code: 0, stdout: r.stdout }),
            (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout + e.stderr }),
          ),
        ),
      );
      return out as [{ code: number; stdout: string }, { code: number; stdout: string }];
    };
    const [srcVersion, distVersion] = await both(["--version"]);
    expect(distVersion).toEqual(srcVersion);
    expect(distVersion.code).toBe(0);
    const [srcBad, distBad] = await both(["run", "--metrics-port", "abc"]);
    expect(distBad).toEqual(srcBad);
    expect(distBad.code).toBe(2);
    const config = join(dirname(compiled.bin), "pools.yaml");
    writeFileSync(
      config,
      [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: { name: pools, namespace: lodestone-system, labels: { lodestone.dev/pools: 'true' } }",
        "data:",
        "  pools.yaml: |",
        "    - name: lan",
        "      addresses: [192.0.2.0/28]",
        "    - name: broken",
        "      addresses: [198.51.100.300/32]",
        "",
      ].join("\n"),
    );
    const [srcCheck, distCheck] = await both(["check-config", config]);
    expect(distCheck.stdout.replaceAll(config, "FILE")).toEqual(srcCheck.stdout.replaceAll(config, "FILE"));
    expect(distCheck.code).toBe(1);
    expect(distCheck.stdout).toContain("198.51.100.300");
  });
});
