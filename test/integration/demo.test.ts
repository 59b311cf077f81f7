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

function runDemo(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "--silent", "demo"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGINT"), LIMIT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
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
});
