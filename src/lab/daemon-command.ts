import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The daemon's entry point, as the image runs it. */
export const DAEMON_BIN = join(ROOT, "bin/lodestone.js");

/**
 * The Node flags of bin/lodestone.js's `#!` line (the image's V8 memory settings), so the labs and benchmarks run
 * the daemon as the image does rather than as `node bin/lodestone.js` would.
 */
export function daemonNodeFlags(): string[] {
  const line = readFileSync(DAEMON_BIN, "utf8").split("\n", 1)[0] ?? "";
  return line.split(/\s+/).filter((w) => w.startsWith("--"));
}

export interface CompiledDaemon {
  /** bin/lodestone.js of the layout: it finds no src/ and runs dist/. */
  readonly bin: string;
  remove(): void;
}

/**
 * The image's layout in a temporary directory: bin/, package.json and dist/ (the sources compiled by
 * tsconfig.build.json, as `npm run build` does in the Dockerfile), with this checkout's node_modules and native
 * addon linked in. Takes a few seconds (tsc); throws with tsc's output when the sources do not compile.
 */
export function compiledDaemon(): CompiledDaemon {
  const dir = mkdtempSync(join(tmpdir(), "lodestone-compiled-"));
  try {
    mkdirSync(join(dir, "bin"));
    copyFileSync(DAEMON_BIN, join(dir, "bin/lodestone.js"));
    copyFileSync(join(ROOT, "package.json"), join(dir, "package.json"));
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    symlinkSync(join(ROOT, "build"), join(dir, "build"));
    execFileSync(
      process.execPath,
      [
        join(ROOT, "node_modules/typescript/bin/tsc"),
        "-p",
        join(ROOT, "tsconfig.build.json"),
        "--outDir",
        join(dir, "dist"),
      ],
      { stdio: "pipe" },
    );
  } catch (err: unknown) {
    rmSync(dir, { recursive: true, force: true });
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? "";
    throw new Error(`compiling the daemon failed: ${out || String(err)}`, { cause: err });
  }
  return { bin: join(dir, "bin/lodestone.js"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
