import { describe, expect, it } from "vitest";
import { parseMac } from "../../src/core/frames/ethernet.ts";
import { interfacesFor, type InterfaceSnapshot, type NetInterface } from "../../src/core/interfaces.ts";
import { parseIp } from "../../src/core/ip.ts";

const iface = (name: string, cidrs: readonly string[], extra: Partial<NetInterface> = {}): NetInterface => ({
  name,
  index: name.length,
  mac: parseMac("02:00:00:00:00:01"),
  up: true,
  noarp: false,
  loopback: false,
  master: undefined,
  addresses: cidrs.map((c) => {
    const [ip, len] = c.split("/");
    return { ip: parseIp(ip!)!, prefixLength: Number(len) };
  }),
  ...extra,
});

const snapshot: InterfaceSnapshot = {
  interfaces: [
    iface("lo", ["127.0.0.1/8"], { loopback: true, mac: undefined }),
    iface("eth0", ["192.0.2.1/24", "2001:db8::1/64"]),
    iface("eth1", ["198.51.100.1/24"]),
    iface("eth2", ["203.0.113.1/24"], { up: false }),
    iface("bond-port", ["198.51.100.9/24"], { master: "bond0" }),
    iface("tun0", ["198.51.100.77/32"], { noarp: true, mac: undefined }),
  ],
  defaultRoute: { 4: "eth1", 6: undefined },
};

describe("interfacesFor: where an IP is announced", () => {
  it.each([
    { desc: "the pool's interfaces win", ip: "192.0.2.50", pool: ["eth1"], want: ["eth1"], rule: "pool", skipped: [] },
    {
      desc: "pool interfaces that are unusable are reported",
      ip: "192.0.2.50",
      pool: ["eth2", "nope", "eth0"],
      want: ["eth0"],
      rule: "pool",
      skipped: [
        { name: "eth2", reason: "down" },
        { name: "nope", reason: "missing" },
      ],
    },
    {
      desc: "else the interface whose subnet holds the IP",
      ip: "192.0.2.50",
      pool: undefined,
      want: ["eth0"],
      rule: "subnet",
      skipped: [],
    },
    { desc: "IPv6 by subnet", ip: "2001:db8::50", pool: [], want: ["eth0"], rule: "subnet", skipped: [] },
    {
      desc: "enslaved and NOARP interfaces never qualify",
      ip: "198.51.100.50",
      pool: undefined,
      want: ["eth1"],
      rule: "subnet",
      skipped: [{ name: "bond-port", reason: "enslaved" }],
    },
    {
      desc: "a down subnet interface falls back to the default route",
      ip: "203.0.113.50",
      pool: undefined,
      want: ["eth1"],
      rule: "default-route",
      skipped: [{ name: "eth2", reason: "down" }],
    },
    {
      desc: "no subnet and no IPv6 default route: nowhere",
      ip: "2001:db8:1::5",
      pool: undefined,
      want: [],
      rule: "none",
      skipped: [],
    },
  ])("$desc", ({ ip, pool, want, rule, skipped }) => {
    const choice = interfacesFor(parseIp(ip)!, snapshot, pool);
    expect(choice).toEqual({ interfaces: want, rule, skipped });
  });
});
