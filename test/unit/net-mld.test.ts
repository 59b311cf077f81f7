import { describe, expect, it } from "vitest";
import { parseIp, type IpAddress } from "../../src/core/ip.ts";
import { openMulticastListener, type MembershipSocket } from "../../src/net/mld.ts";

const errno = (code: string): Error => Object.assign(new Error(`addMembership ${code}`), { code });

/** A udp6 socket that records its memberships and refuses more than `capacity` (ENOMEM, like optmem_max). */
class FakeUdp6 implements MembershipSocket {
  readonly groups: string[] = [];
  closed = false;
  private readonly capacity: number;
  private readonly failWith: string | undefined;
  constructor(capacity = Infinity, failWith?: string) {
    this.capacity = capacity;
    this.failWith = failWith;
  }
  addMembership(group: string, iface: string): void {
    if (this.failWith !== undefined) throw errno(this.failWith);
    if (this.groups.length >= this.capacity) throw errno("ENOMEM");
    this.groups.push(`${group} ${iface}`);
  }
  dropMembership(group: string, iface: string): void {
    const i = this.groups.indexOf(`${group} ${iface}`);
    if (i < 0) throw errno("EADDRNOTAVAIL");
    this.groups.splice(i, 1);
  }
  close(): void {
    this.closed = true;
  }
}

const g = (text: string): IpAddress => parseIp(text)!;

describe("openMulticastListener", () => {
  it("joins on the named interface through the zone, once per group, and leaves", () => {
    const opened: FakeUdp6[] = [];
    const l = openMulticastListener("eth0", () => {
      const s = new FakeUdp6();
      opened.push(s);
      return s;
    });
    expect(l.join(g("ff02::1:ff00:100"))).toEqual({ ok: true, value: undefined });
    expect(l.join(g("ff02::1:ff00:100"))).toEqual({ ok: true, value: undefined }); // held already: no EADDRINUSE
    expect(l.join(g("ff02::1:ff00:200"))).toEqual({ ok: true, value: undefined });
    expect(opened.map((s) => s.groups)).toEqual([["ff02::1:ff00:100 ::%eth0", "ff02::1:ff00:200 ::%eth0"]]);
    expect(l.leave(g("ff02::1:ff00:100"))).toEqual({ ok: true, value: undefined });
    expect(l.leave(g("ff02::1:ff00:100"))).toEqual({ ok: true, value: undefined }); // not held: nothing to do
    expect(opened[0]!.groups).toEqual(["ff02::1:ff00:200 ::%eth0"]);
    l.close();
    expect(opened[0]!.closed).toBe(true);
  });

  it("moves to a new socket when the kernel refuses more groups on one (ENOMEM: net.core.optmem_max)", () => {
    const opened: FakeUdp6[] = [];
    const l = openMulticastListener("eth0", () => {
      const s = new FakeUdp6(2);
      opened.push(s);
      return s;
    });
    const groups = ["ff02::1:ff00:1", "ff02::1:ff00:2", "ff02::1:ff00:3", "ff02::1:ff00:4", "ff02::1:ff00:5"];
    for (const group of groups) expect(l.join(g(group)).ok).toBe(true);
    expect(opened.map((s) => s.groups.length)).toEqual([2, 2, 1]);
    // Each group is left on the socket that holds it.
    for (const group of groups) expect(l.leave(g(group)).ok).toBe(true);
    expect(opened.map((s) => s.groups.length)).toEqual([0, 0, 0]);
    l.close();
    expect(opened.every((s) => s.closed)).toBe(true);
  });

  it.each([
    { desc: "an unknown interface", code: "ENODEV", want: "LODESTONE_E_NET_INTERFACE" },
    { desc: "IPv6 disabled", code: "EAFNOSUPPORT", want: "LODESTONE_E_NET_SOCKET" },
  ])("returns a join refused for $desc as an error naming interface and group", ({ code, want }) => {
    const l = openMulticastListener("eth9", () => new FakeUdp6(Infinity, code));
    expect(l.join(g("ff02::1:ff00:100"))).toEqual({
      ok: false,
      error: { code: want, message: `joining ff02::1:ff00:100 on eth9: addMembership ${code}` },
    });
    expect(l.leave(g("ff02::1:ff00:100"))).toEqual({ ok: true, value: undefined }); // never held
  });
});
