import { execFile, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { isRoot, labUnavailable } from "../../src/lab/netns.ts";

/**
 * The newcomer's path, as the README gives it: `npm run demo`, bounded in time. It must show an assigned IP the way a
 * user sees it, the MetalLB annotation and the refused request, and, as root, a measured failover time; it must leave
 * nothing behind (temp files, network namespaces).
 */
const root = fileURLToPath(new URL("../..", import.meta.url));
const LIMIT_MS = 280_000;
const ours = (name: string): boolean => name.startsWith("lodestone-demo-") || name.startsWith("ls-demo-");

async function namespaces(): Promise<string[]> {
  if (!isRoot) return [];
  const { stdout } = await promisify(execFile)("ip", ["netns", "list"]).catch(() => ({ stdout: "" }));
  return stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith("ls-demo-"));
}

/** Runs the demo; with `interruptAt`, sends SIGINT (Ctrl-C) once the output matches it. */
function runDemo(
  interruptAt?: RegExp,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; interrupted: boolean }> {
  return new Promise((resolve) => {
    // `npm run demo` as the README says; for Ctrl-C the CLI itself, so the signal reaches the demo, not npm.
    const child =
      interruptAt === undefined
        ? spawn("npm", ["run", "--silent", "demo"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
        : spawn(process.execPath, ["bin/lodestone.js", "demo"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let interrupted = false;
    const take = (d: Buffer): void => {
      out += d.toString();
      if (interruptAt !== undefined && !interrupted && interruptAt.test(out)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    const timer = setTimeout(() => child.kill("SIGINT"), LIMIT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, interrupted });
    });
  });
}

describe("npm run demo", () => {
  it(
    "shows assigned IPs in kubectl describe and lodestone status, the refusal, and (as root) a failover time; leaves nothing behind",
    async () => {
      const before = new Set(readdirSync(tmpdir()).filter(ours));
      const { code, out } = await runDemo();
      if (code !== 0) console.log(out.slice(-4000));
      expect(code).toBe(0);
      expect(out).toMatch(/^LoadBalancer Ingress:\s+192\.0\.2\.\d+/m);
      expect(out).toMatch(/^demo\/web\s+192\.0\.2\.2(4\d|5[0-5])\s+lan\s/m);
      expect(out).toMatch(/^demo\/legacy\s+198\.51\.100\.1\d\s+reserved\s/m);
      expect(out).toContain("DeprecatedAnnotation");
      expect(out).toContain("203.0.113.7 is not in any address pool");
      if (isRoot && labUnavailable(["arping"]) === undefined) {
        const m = /^Failover after SIGKILL of the owner: (\d+) ms/m.exec(out);
        expect(m, "the demo prints a measured failover time").not.toBeNull();
        expect(Number(m?.[1])).toBeLessThan(10_000);
      } else {
        expect(out).toMatch(/Skipped the three-node failover lab/);
      }
      expect(out).toContain("Demo done; cleaning up.");
      const leftovers = readdirSync(tmpdir()).filter((n) => ours(n) && !before.has(n));
      expect(leftovers).toEqual([]);
      expect(await namespaces()).toEqual([]);
    },
    LIMIT_MS + 20_000,
  );

  it(
    "Ctrl-C in the middle (during the lab as root) ends it as interrupted and still removes everything it created",
    async () => {
      const before = new Set(readdirSync(tmpdir()).filter(ours));
      const lab = isRoot && labUnavailable(["arping"]) === undefined;
      const { code, signal, out, interrupted } = await runDemo(lab ? /^ {2}nodes: node1/m : /^== lodestone status/m);
      expect(interrupted, out.slice(-2000)).toBe(true);
      // 130 from the demo's own handler, or death by SIGINT re-raised after the lab's clean-up (a shell shows 130
      // for both, the Unix convention for an interrupted program).
      expect(code === 130 || signal === "SIGINT", `exit code ${code}, signal ${signal}`).toBe(true);
      expect(out).not.toContain("Demo done");
      const leftovers = readdirSync(tmpdir()).filter((n) => ours(n) && !before.has(n));
      expect(leftovers).toEqual([]);
      expect(await namespaces()).toEqual([]);
    },
    LIMIT_MS + 20_000,
  );
});
