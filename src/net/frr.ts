import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { type BgpError, BgpCodes, type Result, err, ok } from "../core/errors.ts";
import { type SessionState, parseBfdPeers, parseNeighbors } from "../core/bgp-state.ts";
import { networkCommands, networkLines, withNetworks } from "../core/bgp-frr.ts";

/**
 * FRR as Lodestone drives it: the integrated configuration file is written whole and applied as a difference
 * against FRR's running configuration (frr-reload.py for sessions and policies, `network` lines directly), so
 * sessions stay up across changes; state is read back as JSON from vtysh. The one place that runs FRR's tools.
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

/** Whole or not at all: FRR's sidecar may read frr.conf on its own restart. */
async function writeWhole(path: string, text: string): Promise<Result<void, BgpError>> {
  const tmp = `${path}.lodestone-tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o640 });
    await rename(tmp, path);
    return ok(undefined);
  } catch (e: unknown) {
    return err({
      code: BgpCodes.frrUnavailable,
      message: `cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`,
    });
  }
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

  /** The policy part last given to frr-reload.py (the configuration without `network` lines). */
  let lastBare: string | undefined;

  async function runText(args: readonly string[]): Promise<Result<string, BgpError>> {
    const r = await run(vtysh, [...ps, ...args], timeoutMs);
    if (r.missing) return err({ code: BgpCodes.frrUnavailable, message: `${vtysh} not found (install frr)` });
    // vtysh -f reports a refused line with "%" on stdout and may still exit 0.
    const refused = r.stdout.split("\n").find((l) => l.startsWith("% ") && !/Unknown command: frr/.test(l));
    if (r.code !== 0 || (args[0] === "-f" && refused !== undefined)) {
      const down = /failed to connect|not running/i.test(r.stderr + r.stdout);
      return err({
        code: down || args[0] !== "-f" ? BgpCodes.frrUnavailable : BgpCodes.frrReload,
        message: `vtysh ${args.join(" ")}: ${refused ?? (lastLines(r.stderr || r.stdout) || `exit ${r.code}`)}`,
      });
    }
    return ok(r.stdout);
  }

  async function vtyshFile(file: string): Promise<Result<void, BgpError>> {
    const r = await runText(["-f", file]);
    return r.ok ? ok(undefined) : r;
  }

  async function reloadFile(file: string): Promise<Result<void, BgpError>> {
    lastBare = undefined;
    // --stdout: its log to our stderr capture, not /var/log/frr (read-only in the chart's container).
    const args = ["--reload", "--stdout", ...(o.pathspace === undefined ? [] : ["--pathspace", o.pathspace]), file];
    const r = await run(reload, args, timeoutMs);
    if (r.missing) {
      return err({ code: BgpCodes.frrUnavailable, message: `${reload} not found (install frr-pythontools)` });
    }
    if (r.code !== 0) {
      const text = lastLines(r.stderr || r.stdout);
      const down = /failed to connect|not running|No such file/i.test(text);
      return err({
        code: down ? BgpCodes.frrUnavailable : BgpCodes.frrReload,
        message: `frr-reload.py: ${text || `exit ${r.code}`}`,
      });
    }
    return ok(undefined);
  }

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
      // FRR 8.4's frr-reload.py compares line lists quadratically, and so does bgpd with prefix-lists: 10,000
      // `network` lines through it take minutes (docs/performance.md). So: a fresh FRR (no `router bgp`) gets the
      // file in one `vtysh -f`; otherwise frr-reload.py sees the new configuration with FRR's own `network`
      // lines in it (so it diffs only the sessions and policies, a few dozen lines), and the networks that
      // changed go through `vtysh -f` as `network` / `no network` lines.
      const running = await runText(["-c", "show running-config"]);
      if (!running.ok) return running;
      const asn = /^router bgp (\d+)/m.exec(config)?.[1];
      const runningAsn = /^router bgp (\d+)/m.exec(running.value)?.[1];
      const written = await writeWhole(configPath, config);
      if (!written.ok) return written;
      if (runningAsn === undefined) {
        const r = await vtyshFile(configPath);
        if (r.ok) lastBare = withNetworks(config, new Map());
        return r;
      }
      if (asn === undefined || asn !== runningAsn) return reloadFile(configPath);
      const have = networkLines(running.value);
      const bare = withNetworks(config, new Map());
      if (bare !== lastBare) {
        const skeleton = `${configPath}.lodestone-policy`;
        const w = await writeWhole(skeleton, withNetworks(config, have));
        if (!w.ok) return w;
        const r = await reloadFile(skeleton);
        if (!r.ok) return r;
        lastBare = bare;
      }
      const commands = networkCommands(asn, have, networkLines(config));
      if (commands === "") return ok(undefined);
      const file = `${configPath}.lodestone-networks`;
      const w = await writeWhole(file, commands);
      return w.ok ? vtyshFile(file) : w;
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
