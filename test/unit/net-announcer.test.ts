import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { err, NetCodes, ok } from "../../src/core/errors.ts";
import { arpFrame, ArpOp, decodeArpFrame } from "../../src/core/frames/arp.ts";
import { BROADCAST_MAC, formatMac, parseMac } from "../../src/core/frames/ethernet.ts";
import { decodeNdpFrame } from "../../src/core/frames/ndp.ts";
import type { InterfaceSnapshot, NetInterface } from "../../src/core/interfaces.ts";
import { formatIp, ipKey, parseIp, type IpAddress } from "../../src/core/ip.ts";
import { createAnnouncer, type Announcer, type Claim, type Transport } from "../../src/net/announcer.ts";
import type { MulticastListener } from "../../src/net/mld.ts";
import type { PacketSocket } from "../../src/net/packet-socket.ts";

/** A transport that records what the announcer sends and lets the test deliver frames. */
class FakeSocket implements PacketSocket {
  readonly sent: Uint8Array[] = [];
  readonly groups = new Set<string>();
  allMulticastOn = 0;
  closed = false;
  private handler: ((frame: Uint8Array) => void) | undefined;
  send(frame: Uint8Array) {
    this.sent.push(frame);
    return ok(frame.length);
  }
  onFrame(handler: (frame: Uint8Array) => void): void {
    this.handler = handler;
  }
  deliver(frame: Uint8Array): void {
    this.handler?.(frame);
  }
  multicast(mac: Uint8Array, join: boolean) {
    if (join) this.groups.add(formatMac(mac));
    else this.groups.delete(formatMac(mac));
    return ok(undefined);
  }
  allMulticast(join: boolean) {
    this.allMulticastOn += join ? 1 : -1;
    return ok(undefined);
  }
  kernelStats() {
    return { packets: 0, drops: 0 };
  }
  close(): void {
    this.closed = true;
  }
}

/** Records the kernel memberships (MLD) the announcer asks for; `failJoins` makes every join fail. */
class FakeListener implements MulticastListener {
  readonly groups = new Set<string>();
  readonly calls: string[] = [];
  closed = false;
  private readonly failJoins: boolean;
  constructor(failJoins = false) {
    this.failJoins = failJoins;
  }
  join(group: IpAddress) {
    this.calls.push(`join ${formatIp(group)}`);
    if (this.failJoins) return err({ code: NetCodes.socket, message: "addMembership EPERM" });
    this.groups.add(formatIp(group));
    return ok(undefined);
  }
  leave(group: IpAddress) {
    this.calls.push(`leave ${formatIp(group)}`);
    this.groups.delete(formatIp(group));
    return ok(undefined);
  }
  close(): void {
    this.closed = true;
  }
}

const ipOf = (t: string): IpAddress => parseIp(t)!;
const nic = (name: string, index: number, mac: string, cidrs: string[]): NetInterface => ({
  name,
  index,
  mac: parseMac(mac),
  up: true,
  noarp: false,
  loopback: false,
  master: undefined,
  addresses: cidrs.map((c) => ({ ip: ipOf(c.split("/")[0]!), prefixLength: Number(c.split("/")[1]) })),
});
const snapshot: InterfaceSnapshot = {
  interfaces: [
    nic("eth0", 2, "02:00:00:00:00:01", ["192.0.2.1/24", "2001:db8::1/64"]),
    nic("eth1", 3, "02:00:00:00:00:02", ["198.51.100.1/24"]),
  ],
  defaultRoute: { 4: undefined, 6: undefined },
};
const client = parseMac("02:00:00:00:00:99")!;
const request = (target: string): Uint8Array =>
  arpFrame(
    {
      op: ArpOp.Request,
      senderMac: client,
      senderIp: ipOf("192.0.2.99"),
      targetMac: new Uint8Array(6),
      targetIp: ipOf(target),
    },
    BROADCAST_MAC,
  );
const claim = (ip: string, gratuitous: Claim["gratuitous"] = { intervalMs: 1100, count: 5 }): Claim => ({
  key: `ns/${ip}`,
  ip: ipOf(ip),
  gratuitous,
});

let sockets: Map<number, FakeSocket>;
let listeners: Map<string, FakeListener>;
let announcer: Announcer;

async function start(transport?: Partial<Transport>, logger = pino({ level: "silent" })): Promise<void> {
  sockets = new Map();
  listeners = new Map();
  const created = await createAnnouncer({
    logger,
    scan: async () => snapshot,
    watch: false,
    transport: {
      checkAccess: () => ok(undefined),
      open: (o) => {
        const s = new FakeSocket();
        sockets.set(o.ifindex, s);
        return ok(s);
      },
      multicastListener: (ifname) => {
        const l = new FakeListener();
        listeners.set(ifname, l);
        return l;
      },
      ...transport,
    },
  });
  if (!created.ok) throw new Error(created.error.message);
  announcer = created.value;
}
const eth0 = (): FakeSocket => sockets.get(2)!;
const eth1 = (): FakeSocket => sockets.get(3)!;

describe("Announcer (fake transport, fake clock)", () => {
  beforeEach(async () => {
    vi.useFakeTimers();
    await start();
  });
  afterEach(async () => {
    await announcer.close();
    vi.useRealTimers();
  });

  it("sends a gratuitous round at once, then every intervalMs, count rounds in all", () => {
    announcer.reconcile([claim("192.0.2.10", { intervalMs: 1100, count: 3 })]);
    expect(eth0().sent).toHaveLength(2); // ARP request + reply
    vi.advanceTimersByTime(1099);
    expect(eth0().sent).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(eth0().sent).toHaveLength(4);
    vi.advanceTimersByTime(10_000);
    expect(eth0().sent).toHaveLength(6);
    const ops = eth0().sent.map((f) => {
      const d = decodeArpFrame(f);
      return d.ok ? d.value.op : 0;
    });
    expect(ops).toEqual([1, 2, 1, 2, 1, 2]);
  });

  it("keeps refreshing every refreshSeconds after the burst", () => {
    announcer.reconcile([claim("192.0.2.10", { intervalMs: 1000, count: 1, refreshSeconds: 60 })]);
    vi.advanceTimersByTime(59_999);
    expect(eth0().sent).toHaveLength(2);
    vi.advanceTimersByTime(60_001);
    expect(eth0().sent).toHaveLength(6);
  });

  it("answers only for owned IPs on their interface, and stops at release", () => {
    announcer.reconcile([
      claim("192.0.2.10", { intervalMs: 1000, count: 0 }),
      claim("198.51.100.10", { intervalMs: 1000, count: 0 }),
    ]);
    eth0().deliver(request("192.0.2.10"));
    eth0().deliver(request("192.0.2.11"));
    eth0().deliver(request("198.51.100.10")); // owned, but announced on eth1
    expect(eth0().sent).toHaveLength(1);
    const reply = decodeArpFrame(eth0().sent[0]!);
    expect(reply.ok && [reply.value.op, formatMac(reply.value.senderMac), formatMac(reply.value.targetMac)]).toEqual([
      ArpOp.Reply,
      "02:00:00:00:00:01",
      "02:00:00:00:00:99",
    ]);

    announcer.reconcile([claim("198.51.100.10", { intervalMs: 1000, count: 0 })]);
    expect(eth0().closed).toBe(true); // nothing left to answer on eth0
    eth1().deliver(request("198.51.100.10"));
    expect(eth1().sent).toHaveLength(1);
    expect(announcer.telemetry()).toEqual({
      // 192.0.2.10's counters went with it: per-IP series exist while the IP is owned here.
      layer2: [{ interface: "eth1", ip: "198.51.100.10", requests: 1, replies: 1, gratuitous: 0 }],
      layer2Drops: [
        { interface: "eth0", reason: "not-owned", count: 1 },
        { interface: "eth0", reason: "other-interface", count: 1 },
      ],
    });
  });

  it("a takeover of thousands of IPs sends at most 200 first rounds (5 ms) per turn, the rest in later turns", () => {
    const many = Array.from({ length: 5_000 }, (_, i) =>
      claim(`2001:db8::${(i + 1).toString(16)}`, { intervalMs: 1000, count: 1 }),
    );
    announcer.reconcile(many);
    expect(eth0().sent.length).toBeGreaterThan(0);
    expect(eth0().sent.length).toBeLessThanOrEqual(200);
    vi.advanceTimersByTime(100);
    expect(eth0().sent).toHaveLength(5_000); // one unsolicited NA each
  });

  it("a reconcile with thousands of unchanged claims starts only the new one's burst", () => {
    const many = Array.from({ length: 5_000 }, (_, i) =>
      claim(`2001:db8::${(i + 1).toString(16)}`, { intervalMs: 1000, count: 1 }),
    );
    announcer.reconcile(many);
    vi.advanceTimersByTime(100);
    const before = eth0().sent.length;
    expect(before).toBe(5_000);
    const report = announcer.reconcile([...many, claim("2001:db8::ffff", { intervalMs: 1000, count: 1 })]);
    vi.advanceTimersByTime(100);
    expect(eth0().sent.length - before).toBe(1);
    expect(report.announced).toHaveLength(5_001);
    vi.advanceTimersByTime(100);
    expect(listeners.get("eth0")!.groups.size).toBe(5_001);
  });

  it("an unannounceable claim is reported on every reconcile", () => {
    const nowhere = claim("203.0.113.7");
    expect(announcer.reconcile([nowhere]).unannounced.map((u) => u.key)).toEqual(["ns/203.0.113.7"]);
    expect(announcer.reconcile([nowhere]).unannounced.map((u) => u.key)).toEqual(["ns/203.0.113.7"]);
  });

  it("stops a running burst at release", () => {
    announcer.reconcile([claim("192.0.2.10"), claim("192.0.2.20")]);
    const before = eth0().sent.length;
    announcer.reconcile([claim("192.0.2.20")]);
    vi.advanceTimersByTime(10_000);
    const ips = eth0()
      .sent.slice(before)
      .map((f) => {
        const d = decodeArpFrame(f);
        return d.ok ? d.value.senderIp.value : 0n;
      });
    expect(new Set(ips)).toEqual(new Set([ipOf("192.0.2.20").value]));
  });

  it("joins the solicited-node group of an owned IPv6, sends unsolicited NAs, and leaves at release", () => {
    announcer.reconcile([claim("2001:db8::100", { intervalMs: 1000, count: 2 })]);
    expect(eth0().allMulticastOn).toBe(1); // one all-multicast setting, no per-group link-layer membership
    expect(eth0().groups.size).toBe(0);
    vi.advanceTimersByTime(1);
    expect([...listeners.get("eth0")!.groups]).toEqual(["ff02::1:ff00:100"]); // the kernel's, for MLD reports
    vi.advanceTimersByTime(1000);
    const nas = eth0().sent.map((f) => decodeNdpFrame(f));
    expect(nas.map((n) => n.ok && n.value.type === 136 && n.value.override && !n.value.solicited)).toEqual([
      true,
      true,
    ]);
    announcer.reconcile([claim("2001:db8::100"), claim("2001:db8::1:0:100")]); // same low 24 bits: one group
    announcer.reconcile([claim("2001:db8::1:0:100")]);
    vi.advanceTimersByTime(1);
    expect([...listeners.get("eth0")!.groups]).toEqual(["ff02::1:ff00:100"]);
    expect(eth0().allMulticastOn).toBe(1);
    announcer.reconcile([]);
    expect(eth0().closed).toBe(true);
    expect(listeners.get("eth0")).toMatchObject({
      calls: ["join ff02::1:ff00:100"], // closing the listener leaves what it joined
      closed: true,
    });
  });

  it("a takeover of thousands of IPv6 addresses joins their groups a few per turn", () => {
    const many = Array.from({ length: 1_000 }, (_, i) =>
      claim(`2001:db8::${(i + 1).toString(16)}`, { intervalMs: 1000, count: 1 }),
    );
    announcer.reconcile(many);
    const listener = listeners.get("eth0")!;
    expect(listener.calls).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(listener.calls.length).toBeGreaterThan(0);
    expect(listener.calls.length).toBeLessThan(1_000);
    vi.advanceTimersByTime(100);
    expect(listener.groups.size).toBe(1_000);
    // Released before its join came: never joined, nothing to leave.
    announcer.reconcile([...many, claim("2001:db8::1:2:3")]);
    announcer.reconcile(many);
    vi.advanceTimersByTime(100);
    expect(listener.calls.filter((c) => c.endsWith("ff02:3"))).toEqual([]);
    announcer.reconcile(many.slice(1));
    vi.advanceTimersByTime(100);
    expect(listener.calls.at(-1)).toBe("leave ff02::1:ff00:1");
  });

  it("update() applies a difference: the same ownership as reconcile(), touching only what changed", () => {
    const many = Array.from({ length: 1_000 }, (_, i) =>
      claim(`2001:db8::${(i + 1).toString(16)}`, { intervalMs: 1000, count: 1 }),
    );
    announcer.update(many.slice(0, 600), []);
    announcer.update(many.slice(600), []);
    vi.advanceTimersByTime(100);
    expect(eth0().sent).toHaveLength(1_000); // one unsolicited NA each, nothing sent twice
    const gone = many.slice(0, 10).map((c) => ipKey(c.ip));
    const outside = claim("203.0.113.7");
    const report = announcer.update([outside], gone);
    expect(report.unannounced.map((u) => u.key)).toEqual(["ns/203.0.113.7"]);
    vi.advanceTimersByTime(100);
    expect(listeners.get("eth0")!.groups.size).toBe(990);
    eth0().deliver(request("192.0.2.10")); // never claimed: not answered
    const sentBefore = eth0().sent.length;
    // A full reconcile with the same set changes nothing more.
    announcer.reconcile([...many.slice(10), outside]);
    vi.advanceTimersByTime(100);
    expect(eth0().sent.length).toBe(sentBefore);
    expect(announcer.update([], [ipKey(outside.ip)]).unannounced).toEqual([]);
  });

  it("joins no IPv6 group for IPv4 addresses, and closes the listeners when the announcer closes", async () => {
    announcer.reconcile([claim("192.0.2.10"), claim("2001:db8::abc:def")]);
    vi.advanceTimersByTime(1);
    expect(listeners.get("eth0")!.calls).toEqual(["join ff02::1:ffbc:def"]);
    await announcer.close();
    expect(listeners.get("eth0")!.closed).toBe(true);
  });

  it("a failed MLD join is a warning naming interface and group; the packet socket still takes multicast", async () => {
    await announcer.close();
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    await start({ multicastListener: () => new FakeListener(true) }, logger);
    const report = announcer.reconcile([claim("2001:db8::100")]);
    vi.advanceTimersByTime(1);
    expect(report.unannounced).toEqual([]);
    expect(eth0().allMulticastOn).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({
        interface: "eth0",
        group: "ff02::1:ff00:100",
        err: "addMembership EPERM",
        msg: "MLD join failed",
      }),
    ]);
  });

  it("announceNow restarts the burst of an owned IP and refuses others", () => {
    announcer.reconcile([claim("192.0.2.10", { intervalMs: 1000, count: 1 })]);
    expect(announcer.announceNow(ipOf("192.0.2.10"))).toBe(true);
    expect(announcer.announceNow(ipOf("192.0.2.77"))).toBe(false);
    expect(eth0().sent).toHaveLength(4);
  });

  it("announceNow once sends one round and leaves the running burst alone (defence)", () => {
    announcer.reconcile([claim("192.0.2.10", { intervalMs: 1000, count: 3 })]);
    expect(eth0().sent).toHaveLength(2);
    expect(announcer.announceNow(ipOf("192.0.2.10"), { once: true })).toBe(true);
    expect(eth0().sent).toHaveLength(4);
    vi.advanceTimersByTime(10_000);
    // The burst's own two rounds still follow, no more.
    expect(eth0().sent).toHaveLength(8);
  });

  it("reports IPs it cannot place on any interface", () => {
    const report = announcer.reconcile([claim("203.0.113.5"), { ...claim("192.0.2.5"), interfaces: ["eth9"] }]);
    expect(report.announced).toEqual([]);
    expect(report.unannounced.map((u) => [u.error.code, u.error.message])).toEqual([
      [NetCodes.interfaceUnusable, expect.stringContaining("no interface has a subnet containing it")],
      [NetCodes.interfaceUnusable, expect.stringContaining("eth9: missing")],
    ]);
  });
});

describe("createAnnouncer errors", () => {
  it("returns LODESTONE_E_NET_PERMISSION without CAP_NET_RAW", async () => {
    const created = await createAnnouncer({
      logger: pino({ level: "silent" }),
      watch: false,
      transport: {
        checkAccess: () => err({ code: NetCodes.permission, message: "need CAP_NET_RAW" }),
        open: () => err({ code: NetCodes.permission, message: "need CAP_NET_RAW" }),
        multicastListener: () => new FakeListener(),
      },
    });
    expect(created).toEqual({ ok: false, error: { code: "LODESTONE_E_NET_PERMISSION", message: "need CAP_NET_RAW" } });
  });

  it("returns LODESTONE_E_NET_SCAN when interfaces cannot be listed", async () => {
    const created = await createAnnouncer({
      logger: pino({ level: "silent" }),
      watch: false,
      scan: () => Promise.reject(new Error("ip: not found")),
      transport: {
        checkAccess: () => ok(undefined),
        open: () => err({ code: NetCodes.socket, message: "x" }),
        multicastListener: () => new FakeListener(),
      },
    });
    expect(created.ok ? "" : created.error.code).toBe("LODESTONE_E_NET_SCAN");
  });
});
