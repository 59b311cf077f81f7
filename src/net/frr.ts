import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { type BgpError, BgpCodes, type Result, err, ok } from "../core/errors.ts";
import { type SessionState, parseBfdPeers, parseNeighbors } from "../core/bgp-state.ts";

/**
 * FRR as Lodestone drives it: the integrated configuration file is written whole and applied with
 * `frr-reload.py --reload`, which diffs it against the running configuration and sends only the difference
 * through vtysh, so sessions stay up across changes; state is read back as JSON from vtysh. The one place that
 * runs FRR's tools.
 */
export interface FrrOptions {
  /** Where frr.conf is written (default /etc/frr/frr.conf; the chart shares /etc/frr with the FRR sidecar). */
  readonly configPath?: string;
  /** FRR's -N pathspace (the lab runs one FRR per namespace); default none. */
  readonly pathspace?: string;
  readonly vtysh?: string;
  readonly reload?: string;
  /** One vtysh or frr-reload.py run at most this long (default 30 s: a reload of 10,000 prefixes is seconds). */
  readonly timeoutMs?: number;
}

export interface Frr {
  apply(config: string): Promise<Result<void, BgpError>>;
  /** Sessions as FRR sees them; `hasPassword` by neighbor address (to tell an MD5 mismatch apart). */
  sessions(hasPassword: (address: string) => boolean): Promise<Result<SessionState[], BgpError>>;
}

const RELOAD_PATHS = ["/usr/lib/frr/frr-reload.py", "/usr/lib/frr/frr-reload"];

function run(file: string, args: readonly string[], timeoutMs: number) {
  return new Promise<{ code: number; stdout: string; stderr: string; missing: boolean }>((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (e, stdout, stderr) => {
      const code = e === null ? 0 : typeof e.code === "number" ? e.code : -1;
      resolve({ code, stdout, stderr, missing: e !== null && e.code === "ENOENT" });
    });
  });
}

const lastLines = (text: string, n = 3): string =>
  text
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(-n)
    .join("; ")
    .slice(0, 400);

export function createFrr(o: FrrOptions = {}): Frr {
  const configPath = o.configPath ?? "/etc/frr/frr.conf";
  const vtysh = o.vtysh ?? "vtysh";
  const reload = o.reload ?? RELOAD_PATHS.find((p) => existsSync(p)) ?? RELOAD_PATHS[0] ?? "frr-reload.py";
  const timeoutMs = o.timeoutMs ?? 30_000;
  const ps = o.pathspace === undefined ? [] : ["-N", o.pathspace];

  async function show(command: string): Promise<Result<unknown, BgpError>> {
    const r = await run(vtysh, [...ps, "-c", command], timeoutMs);
    if (r.missing) return err({ code: BgpCodes.frrUnavailable, message: `${vtysh} not found (install frr)` });
    if (r.code !== 0) {
      return err({
        code: BgpCodes.frrUnavailable,
        message: `vtysh ${command}: ${lastLines(r.stderr || r.stdout) || `exit ${r.code}`}`,
      });
    }
    try {
      return ok(JSON.parse(r.stdout === "" ? "{}" : r.stdout) as unknown);
    } catch {
      return err({ code: BgpCodes.frrUnavailable, message: `vtysh ${command}: not JSON: ${r.stdout.slice(0, 200)}` });
    }
  }

  return {
    async apply(config) {
      // Whole or not at all: FRR's sidecar may read the file on its own restart.
      const tmp = `${configPath}.lodestone-tmp`;
      try {
        await writeFile(tmp, config, { mode: 0o640 });
        await rename(tmp, configPath);
      } catch (e: unknown) {
        return err({
          code: BgpCodes.frrUnavailable,
          message: `cannot write ${configPath}: ${e instanceof Error ? e.message : String(e)}`,
        });
      }
      const args = ["--reload", ...(o.pathspace === undefined ? [] : ["--pathspace", o.pathspace]), configPath];
      const r = await run(reload, args, timeoutMs);
      if (r.missing)
        return err({ code: BgpCodes.frrUnavailable, message: `${reload} not found (install frr-pythontools)` });
      if (r.code !== 0) {
        const text = lastLines(r.stderr || r.stdout);
        const down = /failed to connect|not running|No such file/i.test(text);
        return err({
          code: down ? BgpCodes.frrUnavailable : BgpCodes.frrReload,
          message: `frr-reload.py: ${text || `exit ${r.code}`}`,
        });
      }
      return ok(undefined);
    },
    async sessions(hasPassword) {
      const n = await show("show bgp neighbors json");
      if (!n.ok) return n;
      const list = parseNeighbors(n.value, hasPassword);
      // The BFD daemon's own view is newer than bgpd's copy of it; absent BFD (no bfdd) the bgpd copy stands.
      const b = await show("show bfd peers json");
      if (!b.ok) return ok(list);
      const bfd = parseBfdPeers(b.value);
      return ok(list.map((s) => (bfd.has(s.address) ? { ...s, bfd: bfd.get(s.address) ?? "unknown" } : s)));
    },
  };
}
