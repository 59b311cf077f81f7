import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { createLab, labUnavailable, type Lab } from "../../src/lab/netns.ts";

const skip = labUnavailable(["arping"]);
if (skip !== undefined) console.log(`test/lab/net-lab: skipped: ${skip}`);

const namespaces = (): string[] => execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n");

describe.skipIf(skip !== undefined)("lab: namespaces, bridge, veths (src/lab/netns.ts)", () => {
  let lab: Lab | undefined;
  afterAll(async () => {
    await lab?.destroy();
  });

  it("connects two hosts through the bridge, shows neighbours, and removes everything", async () => {
    lab = createLab("net");
    const a = await lab.host("a", { addresses: ["192.0.2.10/24", "2001:db8::10/64"], mac: "02:00:00:00:01:0a" });
    const b = await lab.host("b", { addresses: ["192.0.2.11/24"], mac: "02:00:00:00:01:0b" });
    expect(a.mac).toBe("02:00:00:00:01:0a");

    const arping = await lab.exec(a.ns, ["arping", "-c", "1", "-w", "2", "-I", a.ifname, "192.0.2.11"]);
    expect(arping.stdout).toContain("02:00:00:00:01:0b");

    // One UDP datagram makes a's kernel resolve b (ping is not among the tools).
    await lab.run(a.ns, ["bash", "-c", "echo x > /dev/udp/192.0.2.11/9"]);
    const neigh = await lab.neighbours(a.ns, a.ifname);
    expect(neigh.find((n) => n.ip === "192.0.2.11")?.mac).toBe(b.mac);

    const sleeper = lab.spawn(b.ns, ["sleep", "30"]);
    expect(namespaces().filter((n) => n.startsWith(`${lab!.id}-`))).toHaveLength(3);
    await lab.destroy();
    expect(namespaces().filter((n) => n.startsWith(`${lab!.id}-`))).toHaveLength(0);
    expect(sleeper.killed || sleeper.exitCode !== null).toBe(true);
  });

  it("refuses addresses outside the documentation ranges", async () => {
    const other = createLab("net");
    try {
      await expect(other.host("x", { addresses: ["10.0.0.1/24"] })).rejects.toThrow(/documentation range/);
    } finally {
      await other.destroy();
    }
  });
});
