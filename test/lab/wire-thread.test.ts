import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLab, labUnavailable, type Lab, type LabHost } from "../../src/lab/netns.ts";
import { AnnouncerDriver } from "./helpers.ts";

const skip = labUnavailable(["arping"]);
if (skip !== undefined) console.log(`test/lab/wire-thread: skipped: ${skip}`);

const VIP = "192.0.2.100";
const wireDriver = new URL("./wire-driver.ts", import.meta.url).pathname;

// Counts datagrams on UDP 7947 and reports the longest silence between two, on request (a line on stdin).
const OBSERVER = `
const dgram = require("node:dgram");
let last; let maxGap = 0; let count = 0;
dgram.createSocket("udp4").on("message", () => { const now = Date.now(); if (last !== undefined) maxGap = Math.max(maxGap, now - last); last = now; count++; })
  .bind(7947, process.argv[1]);
require("node:readline").createInterface({ input: process.stdin }).on("line", () => {
  process.stdout.write(JSON.stringify({ op: "gaps", count, maxGap, sinceLast: last === undefined ? null : Date.now() - last }) + "\\n");
  maxGap = 0;
});
process.stdout.write(JSON.stringify({ op: "ready" }) + "\\n");`;

/**
 * Busy is not dead, and alive means answering (issue 15): the wire thread keeps answering ARP and sending
 * heartbeats while the main thread is held by a synchronous stretch; when the main thread is silent past its
 * limit (5 s), the wire thread withdraws the IPs and the heartbeats stop together, so peers take over.
 */
describe.skipIf(skip !== undefined)("speaker wire thread on real interfaces", () => {
  let lab: Lab;
  let node: LabHost;
  let client: LabHost;
  let wire: AnnouncerDriver;
  let observer: AnnouncerDriver;

  beforeAll(async () => {
    lab = createLab("wire");
    node = await lab.host("node", { addresses: ["192.0.2.1/24"], mac: "02:00:00:00:0b:01" });
    client = await lab.host("client", { addresses: ["192.0.2.10/24"], mac: "02:00:00:00:0b:10" });
    observer = new AnnouncerDriver(lab, client.ns, ["-e", OBSERVER, "192.0.2.10"]);
    wire = new AnnouncerDriver(lab, node.ns, [wireDriver, "192.0.2.1", "5000"]);
    await Promise.all([observer.ready(), wire.ready()]);
    expect(await wire.send({ op: "claim", ips: [VIP] })).toMatchObject({ op: "claimed", unannounced: 0 });
    expect(await wire.send({ op: "beat", peer: "192.0.2.10", port: 7947 })).toMatchObject({ op: "beating" });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const arping = async (): Promise<boolean> =>
    (await lab.exec(client.ns, ["arping", "-c", "1", "-w", "1", "-I", "eth0", VIP], { timeoutMs: 5_000 })).code === 0;

  it("answers ARP and keeps its heartbeats while the main thread is blocked for 1.5 s", async () => {
    await observer.send({ op: "gaps" }); // reset
    const blocked = wire.send({ op: "block", ms: 1_500 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await arping()).toBe(true); // answered from the wire thread during the block
    await blocked;
    const gaps = await observer.send({ op: "gaps" });
    expect(gaps["count"]).toBeGreaterThan(6);
    expect(gaps["maxGap"]).toBeLessThan(450); // 150 ms beats: none lost to the block (peers declare dead at 600)
  });

  it("withdraws the IPs and stops the heartbeats when the main thread is silent past 5 s", async () => {
    await observer.send({ op: "gaps" });
    const blocked = wire.send({ op: "block", ms: 6_500 });
    await new Promise((r) => setTimeout(r, 5_600));
    const during = await observer.send({ op: "gaps" });
    expect(during["sinceLast"]).toBeGreaterThan(300); // the heartbeats stopped (about 5.1 s into the block)...
    expect(await arping()).toBe(false); // ...with the answers (arping waits 1 s: the block ends at 6.5 s)
    expect(await blocked).toMatchObject({ op: "unblocked" });
    expect(await wire.next()).toMatchObject({ op: "withdrawn" });
    // The main thread runs again: the beats resume at once, with nothing claimed until it plans again.
    await new Promise((r) => setTimeout(r, 500));
    expect((await observer.send({ op: "gaps" }))["sinceLast"]).toBeLessThan(300);
    expect(await arping()).toBe(false);
    expect(await wire.send({ op: "claim", ips: [VIP] })).toMatchObject({ op: "claimed" });
    expect(await arping()).toBe(true);
  });
});
