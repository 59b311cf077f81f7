import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { findHelmTemplate, renderChart } from "../../scripts/lib/chart.ts";
import { parseRunFlags } from "../../src/cli/run.ts";

/** The chart's BGP mode: the FRR sidecar of the speaker pod, what it shares, and the password Secrets it may read. */
const tool = findHelmTemplate();
if (tool === undefined) console.log("packaging-bgp: helm-template not found: render tests skip");

interface Container {
  name: string;
  args?: string[];
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext: { capabilities: { drop: string[]; add?: string[] }; readOnlyRootFilesystem?: boolean };
  volumeMounts: { name: string; mountPath: string }[];
}
interface Pod {
  hostNetwork?: boolean;
  containers: Container[];
  volumes: { name: string }[];
}

async function render(set: string[]) {
  const r = await renderChart(tool!, { set });
  if (!r.ok) throw new Error(r.error);
  const objs = parseAllDocuments(r.yaml).map((d) => d.toJS() as Record<string, unknown> | null);
  const ds = objs.find((o) => o?.["kind"] === "DaemonSet") as { spec: { template: { spec: Pod } } } | undefined;
  type Role = { rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[] };
  // The speaker's Role: the one that may read Secrets (the controller's may only create the heartbeat key).
  const role = objs.find(
    (o) =>
      o?.["kind"] === "Role" &&
      (o as unknown as Role).rules.some((r) => r.resources.includes("secrets") && r.verbs.includes("get")),
  ) as Role | undefined;
  const all = objs.filter((o) => o?.["kind"] === "Deployment" || o?.["kind"] === "DaemonSet") as unknown as {
    spec: { template: { spec: Pod } };
  }[];
  return { pod: ds?.spec.template.spec, role, pods: all.map((w) => w.spec.template.spec) };
}

describe.skipIf(tool === undefined)("chart: BGP mode", () => {
  it("off by default: one container, no FRR volume", async () => {
    const { pod } = await render([]);
    expect(pod?.containers.map((c) => c.name)).toEqual(["speaker"]);
    expect(pod?.volumes.map((v) => v.name) ?? []).not.toContain("frr-conf");
  });

  it("bgp.frr.enabled: an FRR sidecar on the host network sharing /etc/frr and /var/run/frr, held past the drain", async () => {
    const { pod } = await render(["bgp.frr.enabled=true", "bgp.drain=5s", "bgp.frr.holdAfterSeconds=12"]);
    expect(pod?.hostNetwork).toBe(true);
    const [lodestone, frr] = pod?.containers ?? [];
    expect(frr?.name).toBe("frr");
    const mounts = (c: Container | undefined) => c?.volumeMounts.map((m) => m.mountPath);
    expect(mounts(lodestone)).toEqual(expect.arrayContaining(["/etc/frr", "/var/run/frr"]));
    expect(mounts(frr)).toEqual(expect.arrayContaining(["/etc/frr", "/var/run/frr", "/var/tmp/frr"]));
    expect(frr?.lifecycle?.preStop?.exec?.command).toEqual(["sleep", "12"]);
    expect(frr?.securityContext.capabilities).toEqual({
      drop: ["ALL"],
      add: ["NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW"],
    });
    expect(frr?.securityContext.readOnlyRootFilesystem).toBe(true);
    // The speaker's own flags parse, and point it at the shared frr.conf with the drain asked for.
    const parsed = parseRunFlags(lodestone?.args?.slice(1) ?? [], {});
    if (parsed.ok !== true) throw new Error(`flags: ${JSON.stringify(parsed)}`);
    expect(parsed.value.daemon.bgp).toEqual({ drainMs: 5_000, frr: { configPath: "/etc/frr/frr.conf" } });
  });

  it("no sidecar for a controller-only install (no speaker, no host network to share)", async () => {
    const { pod, pods } = await render(["bgp.frr.enabled=true", "speaker.enabled=false"]);
    expect(pod).toBeUndefined();
    expect(pods.flatMap((p) => p.containers.map((c) => c.name))).not.toContain("frr");
  });

  it("bgp.passwordSecrets: those Secrets become readable, by name only", async () => {
    const { role } = await render(["bgp.passwordSecrets[0]=bgp-auth", "bgp.passwordSecrets[1]=tor-b"]);
    const get = role?.rules.find((r) => r.resources.includes("secrets") && r.verbs.includes("get"));
    expect(get?.resourceNames).toEqual(["lodestone-memberlist", "bgp-auth", "tor-b"]);
  });
});
