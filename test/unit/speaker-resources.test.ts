import { describe, expect, it } from "vitest";
import { parseIp } from "../../src/core/ip.ts";
import {
  decodeHeartbeatAddress,
  decodeInterfaces,
  encodeHeartbeatAddress,
  encodeInterfaces,
  projectLease,
  projectNode,
} from "../../src/kube/speaker-resources.ts";

const ifaces = [
  {
    name: "eth0",
    prefixes: [
      { ip: parseIp("192.0.2.11")!, bits: 24 },
      { ip: parseIp("2001:db8::11")!, bits: 64 },
    ],
    defaultRoute4: true,
    defaultRoute6: false,
  },
];

describe("speaker Lease annotations", () => {
  it("interfaces round-trip through the compact text", () => {
    const text = encodeInterfaces(ifaces);
    expect(text).toBe('[{"n":"eth0","p":["192.0.2.11/24","2001:db8::11/64"],"d4":true}]');
    expect(decodeInterfaces(text)).toEqual(ifaces);
  });

  it.each<{ desc: string; text: string | undefined; want: unknown }>([
    { desc: "absent", text: undefined, want: undefined },
    { desc: "not JSON", text: "{", want: undefined },
    { desc: "not a list", text: "{}", want: undefined },
    { desc: "entries without a name are dropped", text: '[{"p":[]}]', want: [] },
    {
      desc: "bad prefixes are dropped",
      text: '[{"n":"x","p":["nope/24","192.0.2.1/x"]}]',
      want: [{ name: "x", prefixes: [], defaultRoute4: false, defaultRoute6: false }],
    },
  ])("decodeInterfaces: $desc", ({ text, want }) => {
    expect(decodeInterfaces(text)).toEqual(want);
  });

  it.each<{ text: string; want: string | undefined }>([
    { text: "192.0.2.11:7947", want: "192.0.2.11:7947" },
    { text: "[2001:db8::11]:7947", want: "[2001:db8::11]:7947" },
    { text: "192.0.2.11:0", want: undefined },
    { text: "192.0.2.11", want: undefined },
    { text: "host:7947", want: undefined },
  ])("heartbeat address $text", ({ text, want }) => {
    const d = decodeHeartbeatAddress(text);
    expect(d === undefined ? undefined : encodeHeartbeatAddress(d.address, d.port)).toBe(want);
  });
});

describe("projections", () => {
  it("a Node: Ready condition, InternalIPs, labels", () => {
    const n = projectNode({
      metadata: { name: "node1", resourceVersion: "7", labels: { a: "b" } },
      status: {
        conditions: [{ type: "Ready", status: "True" }],
        addresses: [
          { type: "Hostname", address: "node1" },
          { type: "InternalIP", address: "192.0.2.11" },
        ],
      },
    });
    expect(n).toMatchObject({ name: "node1", ready: true, labels: { a: "b" }, internalIps: [parseIp("192.0.2.11")] });
    expect(
      projectNode({ metadata: { name: "x" }, status: { conditions: [{ type: "Ready", status: "Unknown" }] } }),
    ).toMatchObject({ ready: false, internalIps: [] });
  });

  it("a membership Lease: holder, renewTime and the published annotations", () => {
    const l = projectLease({
      metadata: {
        name: "lodestone-speaker-node1",
        namespace: "lodestone-system",
        annotations: {
          "lodestone.dev/heartbeat": "192.0.2.11:7947",
          "lodestone.dev/interfaces": encodeInterfaces(ifaces),
        },
      },
      spec: { holderIdentity: "node1", renewTime: "2026-11-25T10:00:00.000000Z" },
    });
    expect(l).toMatchObject({ node: "node1", renewTime: "2026-11-25T10:00:00.000000Z", interfaces: ifaces });
    expect(l?.heartbeat?.port).toBe(7947);
    expect(Date.parse(l!.renewTime!)).toBe(Date.UTC(2026, 10, 25, 10));
    expect(projectLease({ metadata: { name: "x" }, spec: {} })).toBeUndefined();
  });
});
