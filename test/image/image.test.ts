// `npm run test:image`: builds the local base images and the Dockerfile with buildah (vfs, chroot isolation),
// then runs `lodestone` inside the image. Root only; minutes long, so not part of `npm test`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "../../scripts/lib/chart.ts";
import { NetCodes } from "../../src/core/errors.ts";

const exec = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const hasTools = ["buildah", "debootstrap"].every(
  (t) => existsSync(`/usr/bin/${t}`) || existsSync(`/usr/sbin/${t}`) || existsSync(`/usr/local/bin/${t}`),
);
if (!isRoot || !hasTools) {
  console.log("image: needs root, buildah and debootstrap (bash scripts/ensure-tools.sh as root): skipped");
}
const image = `localhost/lodestone:test-${process.pid}`;
const bah = ["--storage-driver", "vfs"];
const samples = existsSync(join(repoRoot, "config/samples"))
  ? readdirSync(join(repoRoot, "config/samples")).filter((f) => /\.ya?ml$/.test(f))
  : [];
const sample = samples.includes("pools.yaml") ? "pools.yaml" : samples.find((f) => !f.includes("broken"));
const hasCheckConfig = existsSync(join(repoRoot, "src/cli/check-config.ts")) && sample !== undefined;

async function sh(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { cwd: repoRoot, maxBuffer: 64 << 20, timeout: 30 * 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}

describe.skipIf(!isRoot || !hasTools)("the Lodestone image", () => {
  let container = "";
  const figures: Record<string, number> = {};

  beforeAll(async () => {
    let started = Date.now();
    const base = await sh("bash", ["scripts/build-base-image.sh", "all"]);
    if (base.code !== 0) throw new Error(`build-base-image failed:\n${base.stderr}`);
    figures["base_images_s"] = (Date.now() - started) / 1000;
    started = Date.now();
    const build = await sh("bash", ["scripts/build-image.sh", image]);
    if (build.code !== 0) throw new Error(`build-image failed:\n${build.stderr.slice(-4000)}`);
    figures["image_build_s"] = (Date.now() - started) / 1000;
    container = (await sh("buildah", [...bah, "from", "--pull-never", image])).stdout.trim();
  });

  afterAll(async () => {
    if (container !== "") await sh("buildah", [...bah, "rm", container]);
    await sh("buildah", [...bah, "rmi", "-f", image]);
    console.log(`image figures: ${JSON.stringify(figures)}`);
  });

  function inImage(...args: string[]): ReturnType<typeof sh> {
    return sh("buildah", [...bah, "run", "--isolation", "chroot", container, "--", ...args]);
  }

  it("runs `lodestone --version` on Node 24 as a non-root user by default", async () => {
    const r = await inImage("lodestone", "--version");
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^lodestone \d+\.\d+\.\d+/);
    expect((await inImage("node", "--version")).stdout).toMatch(/^v24\./);
    expect((await inImage("id", "-u")).stdout.trim()).toBe("65532");
    const config = JSON.parse((await sh("buildah", [...bah, "inspect", "--type", "image", image])).stdout) as {
      OCIv1: { config: { Entrypoint?: string[] } };
    };
    expect(config.OCIv1.config.Entrypoint).toEqual(["lodestone"]);
  });

  it("holds production dependencies only, no compiler and no npm", async () => {
    // python3 only as frr-reload.py's interpreter (BGP mode), never as a build tool.
    const r = await inImage("sh", "-c", "ls /opt/lodestone/node_modules; command -v npm gcc g++ make || true");
    expect(r.code).toBe(0);
    const entries = r.stdout.split("\n");
    for (const dev of ["vitest", "typescript", "eslint", "node-gyp", "node", "prettier"])
      expect(entries).not.toContain(dev);
    expect(entries).toContain("@kubernetes");
    expect(entries.filter((l) => l.startsWith("/"))).toEqual([]);
    // The daemon only: the embedded API server, the lab and the demo are development tools of the npm package.
    const dist = await inImage("sh", "-c", "cd /opt/lodestone/dist && find . -name '*.js'");
    expect(dist.stdout).toMatch(/^\.\/cli\/run\.js$/m);
    expect(dist.stdout).not.toMatch(/^\.\/(sandbox|lab)\/|demo/m);
    const demo = await inImage("lodestone", "demo");
    expect(demo.code).toBe(2);
    expect(demo.stderr).toContain("not part of this installation");
    const du = await inImage("du", "-sxm", "/");
    figures["rootfs_mb"] = Number(du.stdout.split(/\s/)[0]);
  });

  it("carries FRR for BGP mode: vtysh and frr-reload.py for the daemon, watchfrr and the daemons for the sidecar", async () => {
    const r = await inImage(
      "sh",
      "-c",
      "vtysh -h | head -3; /usr/lib/frr/bgpd --version; ls /usr/lib/frr/frr-reload.py /usr/lib/frr/watchfrr /usr/lib/frr/bgpd /usr/lib/frr/bfdd /usr/lib/frr/zebra",
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^bgpd version \d+\.\d+/m);
    expect((await inImage("python3", "/usr/lib/frr/frr-reload.py", "--help")).stdout).toContain("--reload");
  });

  it.skipIf(!existsSync(join(repoRoot, "binding.gyp")))(
    "loads the AF_PACKET addon, which refuses the non-root user a packet socket with the permission code",
    async () => {
      expect((await inImage("sh", "-c", "ls /opt/lodestone/build/Release/*.node")).stdout).toMatch(/\.node$/m);
      // The addon opens the socket, so the permission code proves it loaded (a missing or unloadable addon gives
      // LODESTONE_E_NET_ADDON_MISSING before any socket). chroot isolation shares the host's network namespace;
      // `unshare --net` gives the run an empty one of its own, so nothing could reach a real LAN even as root.
      const r = await sh("unshare", [
        "--net",
        "buildah",
        ...bah,
        "run",
        "--isolation",
        "chroot",
        container,
        "--",
        "lodestone",
        "announce",
        "--for",
        "1",
        "--interface",
        "lo",
        "192.0.2.1",
      ]);
      expect(r.stderr).toContain(NetCodes.permission);
      expect(r.stderr).not.toContain(NetCodes.addonMissing);
      expect(r.code).toBe(1);
    },
  );

  it.skipIf(!hasCheckConfig)("checks a sample pool configuration", async () => {
    const r = await inImage("lodestone", "check-config", `/opt/lodestone/config/samples/${sample!}`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});
