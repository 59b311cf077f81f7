import { readFileSync } from "node:fs";

/** The daemon's entry point, as the image runs it. */
export const DAEMON_BIN = new URL("../../bin/lodestone.js", import.meta.url).pathname;

/**
 * The Node flags of bin/lodestone.js's `#!` line (the image's V8 memory settings), so the labs and benchmarks run
 * the daemon as the image does rather than as `node bin/lodestone.js` would.
 */
export function daemonNodeFlags(): string[] {
  const line = readFileSync(DAEMON_BIN, "utf8").split("\n", 1)[0] ?? "";
  return line.split(/\s+/).filter((w) => w.startsWith("--"));
}
