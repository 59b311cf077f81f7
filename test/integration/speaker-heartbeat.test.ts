import { createSocket } from "node:dgram";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type Heartbeat, encodeHeartbeat, heartbeatKey } from "../../src/core/heartbeat-codec.ts";
import { parseIp } from "../../src/core/ip.ts";
import { type HeartbeatTransport, createHeartbeatTransport } from "../../src/net/heartbeat.ts";

const logger = pino({ level: "silent" });
const loopback = parseIp("127.0.0.1")!;
const key = heartbeatKey(new TextEncoder().encode(`key-${process.pid}`));
const open: HeartbeatTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

async function transport(received: Heartbeat[], keys = [key]) {
  const r = await createHeartbeatTransport({
    address: loopback,
    port: 0,
    logger,
    keys: () => keys,
    onHeartbeat: (hb) => received.push(hb),
  });
  if (!r.ok) throw new Error(r.error.message);
  open.push(r.value);
  return r.value;
}

async function until(cond: () => boolean, ms = 2_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const hb: Heartbeat = { node: "node1", incarnation: 1, seq: 1, sentAtMs: Date.now(), kind: "alive", apiOk: true };

describe("heartbeat transport over UDP", () => {
  it("delivers signed heartbeats to peers", async () => {
    const got: Heartbeat[] = [];
    const a = await transport([]);
    const b = await transport(got);
    a.send(hb, [{ node: "node2", address: loopback, port: b.port }]);
    await until(() => got.length === 1);
    expect(got[0]).toEqual(hb);
  });

  it("refuses datagrams signed with another key or tampered with, and counts them", async () => {
    const got: Heartbeat[] = [];
    const b = await transport(got);
    const forger = await transport([], [heartbeatKey(new TextEncoder().encode("guess"))]);
    forger.send(hb, [{ node: "node2", address: loopback, port: b.port }]);
    const raw = createSocket("udp4");
    const tampered = encodeHeartbeat(hb, key);
    tampered[6] = 0;
    await new Promise<void>((r) => raw.send(tampered, b.port, "127.0.0.1", () => r()));
    raw.close();
    await until(() => b.rejected()["unknown-key"] === 1 && b.rejected()["bad-mac"] === 1);
    expect(got).toEqual([]);
  });

  it("reports a bind failure as data", async () => {
    const a = await transport([]);
    const r = await createHeartbeatTransport({
      address: loopback,
      port: a.port,
      logger,
      keys: () => [key],
      onHeartbeat: () => undefined,
    });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/cannot bind UDP 127\.0\.0\.1:\d+/);
  });
});
