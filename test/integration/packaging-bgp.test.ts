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
  const ds = objs.find((o) => o?.["kind"] === "DaemonSet") as { spec: { template: { spec: Pod } } };
  const role = objs.find((o) => o?.["kind"] === "Role") as {
    rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  };
  return { pod: ds.spec.template.spec, role };
}

describe.skipIf(tool === undefined)("chart: BGP mode", () => {
  it("off by default: one container, no FRR volume", async () => {
    const { pod } = await render([]);
    expect(pod.containers.map((c) => c.name)).toEqual(["lodestone"]);
    expect(pod.volumes.map((v) => v.name)).not.toContain("frr-conf");
  });

  it("bgp.frr.enabled: an FRR sidecar on the host network sharing /etc/frr and /var/run/frr, held past the drain", async () => {
    const { pod } = await render(["bgp.frr.enabled=true", "bgp.drain=5s", "bgp.frr.holdAfterSeconds=12"]);
    expect(pod.hostNetwork).toBe(true);
    const [lodestone, frr] = pod.containers;
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

  it("no sidecar for a controller-only install (no host network to share)", async () => {
    const { pod } = await render(["bgp.frr.enabled=true", "daemon.speaker=false"]);
    expect(pod.containers.map((c) => c.name)).toEqual(["lodestone"]);
  });

  it("bgp.passwordSecrets: those Secrets become readable, by name only", async () => {
    const { role } = await render(["bgp.passwordSecrets[0]=bgp-auth", "bgp.passwordSecrets[1]=tor-b"]);
    const get = role.rules.find((r) => r.resources.includes("secrets") && r.verbs.includes("get"));
    expect(get?.resourceNames).toEqual(["lodestone-memberlist", "bgp-auth", "tor-b"]);
  });
});
