import { describe, expect, it } from "vitest";
import { parseIp } from "../../src/core/ip.ts";
import type { SlimService } from "../../src/kube/objects.ts";
import {
  decodeHeartbeatAddress,
  decodeInterfaces,
  encodeHeartbeatAddress,
  encodeInterfaces,
  leaseChangesRanking,
  nodeChangesRanking,
  projectLease,
  projectNode,
  serviceChangesAnnouncement,
  serviceChangesRanking,
  type SpeakerLease,
  type SpeakerNode,
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
          "lodestone.dev/announced": "4:gYSAgAw=",
        },
      },
      spec: { holderIdentity: "node1", renewTime: "2026-11-25T10:00:00.000000Z", leaseDurationSeconds: 10 },
    });
    expect(l).toMatchObject({
      node: "node1",
      renewTime: "2026-11-25T10:00:00.000000Z",
      interfaces: ifaces,
      announced: "4:gYSAgAw=",
      durationSeconds: 10,
    });
    expect(l?.heartbeat?.port).toBe(7947);
    expect(Date.parse(l!.renewTime!)).toBe(Date.UTC(2026, 10, 25, 10));
    expect(projectLease({ metadata: { name: "x" }, spec: {} })).toBeUndefined();
  });
});

describe("which updates need a new announcement plan", () => {
  const node = (over: Partial<SpeakerNode> = {}): SpeakerNode => ({
    key: "node1",
    resourceVersion: "1",
    name: "node1",
    labels: { zone: "a" },
    ready: true,
    internalIps: [parseIp("192.0.2.11")!],
    ...over,
  });
  it.each<{ desc: string; old: SpeakerNode | undefined; now: SpeakerNode; want: boolean }>([
    { desc: "a new Node", old: undefined, now: node(), want: true },
    {
      desc: "a status update that changes nothing elected on",
      old: node(),
      now: node({ resourceVersion: "2" }),
      want: false,
    },
    { desc: "an InternalIP change (heartbeats only)", old: node(), now: node({ internalIps: [] }), want: false },
    { desc: "readiness", old: node(), now: node({ ready: false }), want: true },
    { desc: "a label value", old: node(), now: node({ labels: { zone: "b" } }), want: true },
    { desc: "a label added", old: node(), now: node({ labels: { zone: "a", x: "" } }), want: true },
    { desc: "a label removed", old: node(), now: node({ labels: {} }), want: true },
  ])("Node: $desc → $want", ({ old, now, want }) => {
    expect(nodeChangesRanking(old, now)).toBe(want);
  });

  const lease = (over: Partial<SpeakerLease> = {}): SpeakerLease => ({
    key: "ns/lodestone-speaker-node1",
    resourceVersion: "1",
    node: "node1",
    renewTime: "2026-11-29T20:00:00.000000Z",
    interfaces: ifaces,
    heartbeat: { address: parseIp("192.0.2.11")!, port: 7947 },
    announced: undefined,
    durationSeconds: 10,
    ...over,
  });
  it.each<{ desc: string; old: SpeakerLease | undefined; now: SpeakerLease; want: boolean }>([
    { desc: "a new Lease", old: undefined, now: lease(), want: true },
    {
      desc: "a renewal (interfaces decoded anew, equal)",
      old: lease(),
      now: lease({
        resourceVersion: "2",
        renewTime: "2026-11-29T20:00:02.000000Z",
        interfaces: structuredClone(ifaces),
      }),
      want: false,
    },
    { desc: "another heartbeat port", old: lease(), now: lease({ heartbeat: undefined }), want: false },
    { desc: "another holder", old: lease(), now: lease({ node: "node2" }), want: true },
    {
      desc: "interfaces published for the first time",
      old: lease({ interfaces: undefined }),
      now: lease(),
      want: true,
    },
    { desc: "an interface gone", old: lease(), now: lease({ interfaces: [] }), want: true },
    {
      desc: "a default route gained",
      old: lease(),
      now: lease({ interfaces: [{ ...ifaces[0]!, defaultRoute6: true }] }),
      want: true,
    },
  ])("Lease: $desc → $want", ({ old, now, want }) => {
    expect(leaseChangesRanking(old, now)).toBe(want);
  });

  const svc = (over: Partial<SlimService> = {}): SlimService => ({
    key: "ns/web",
    resourceVersion: "1",
    namespace: "ns",
    name: "web",
    uid: "u1",
    type: "LoadBalancer",
    loadBalancerClass: undefined,
    loadBalancerIP: undefined,
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: undefined,
    ports: [{ port: 80, protocol: "TCP" }],
    externalTrafficPolicy: "Cluster",
    selector: { app: "web" },
    labels: {},
    annotations: { "lodestone.dev/announcing-node": "node1" },
    externalIPs: [],
    ingress: ["192.0.2.100"],
    ...over,
  });
  it.each<{ desc: string; old: SlimService | undefined; now: SlimService; want: boolean }>([
    { desc: "a new Service", old: undefined, now: svc(), want: true },
    {
      desc: "the controller's pool annotation",
      old: svc(),
      now: svc({ annotations: { "lodestone.dev/announcing-node": "node1", "lodestone.dev/pool": "lan" } }),
      want: false,
    },
    {
      desc: "labels, ports, selector",
      old: svc(),
      now: svc({ labels: { a: "b" }, ports: [], selector: {} }),
      want: false,
    },
    { desc: "the ingress written", old: svc({ ingress: [] }), now: svc(), want: true },
    { desc: "a second ingress IP", old: svc(), now: svc({ ingress: ["192.0.2.100", "2001:db8::100"] }), want: true },
    { desc: "externalIPs", old: svc(), now: svc({ externalIPs: ["192.0.2.150"] }), want: true },
    { desc: "the traffic policy", old: svc(), now: svc({ externalTrafficPolicy: "Local" }), want: true },
    { desc: "the type", old: svc(), now: svc({ type: "NodePort" }), want: true },
    { desc: "the class", old: svc(), now: svc({ loadBalancerClass: "other" }), want: true },
    { desc: "the announcing-node annotation", old: svc(), now: svc({ annotations: {} }), want: true },
    { desc: "a new uid (deleted and created again)", old: svc(), now: svc({ uid: "u2" }), want: true },
  ])("Service: $desc → $want", ({ old, now, want, desc }) => {
    expect(serviceChangesAnnouncement(old, now)).toBe(want);
    // The same for the ranking, except the annotation: writing it never makes a node's death need a full plan.
    expect(serviceChangesRanking(old, now)).toBe(desc === "the announcing-node annotation" ? false : want);
  });
});
