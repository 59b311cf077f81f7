import { describe, expect, it } from "vitest";
import pino from "pino";
import { createLocalSlices } from "../../src/app/speaker-slices.ts";
import { createInformer } from "../../src/kube/informer.ts";
import { projectWatchedService } from "../../src/kube/objects.ts";
import { FakeApi, until } from "./support/fake-api.ts";

const logger = pino({ level: "silent" });

let rv = 200;
const service = (name: string, policy: "Local" | "Cluster") => ({
  metadata: { namespace: "ns", name, uid: `uid-${name}`, resourceVersion: String(++rv) },
  spec: { type: "LoadBalancer", externalTrafficPolicy: policy },
  status: { loadBalancer: { ingress: [{ ip: "192.0.2.100" }] } },
});
const slice = (name: string, svc: string, ready: Record<string, boolean>) => ({
  metadata: {
    namespace: "ns",
    name,
    resourceVersion: String(++rv),
    labels: { "kubernetes.io/service-name": svc },
  },
  endpoints: Object.entries(ready).map(([nodeName, r]) => ({ nodeName, conditions: { ready: r } })),
});

/** A Service cache and the speaker's slice cache over two scripted APIs, both listed. */
async function setup(services: unknown[], slices: unknown[]) {
  const svcApi = new FakeApi();
  svcApi.items = services;
  const sliceApi = new FakeApi();
  sliceApi.items = slices;
  const svcInformer = createInformer({
    client: svcApi.client,
    resource: "services",
    path: "/api/v1/services",
    project: projectWatchedService,
    logger,
  });
  let loaded = 0;
  const local = createLocalSlices({
    client: sliceApi.client,
    logger,
    services: svcInformer,
    loaded: () => loaded++,
  });
  svcInformer.start();
  await until(() => svcApi.watches.length === 1);
  local.informer.start();
  await until(() => sliceApi.watches.length === 1);
  const nodesOf = (key: string) => [...(local.endpointNodes().get(key) ?? [])].sort();
  const stop = async () => {
    local.detach();
    await Promise.all([svcInformer.stop(), local.informer.stop()]);
  };
  return { svcApi, sliceApi, local, nodesOf, loaded: () => loaded, stop };
}

describe("the speaker's EndpointSlice cache", () => {
  it("keeps only the slices of Local Services, and lists the nodes with a ready endpoint", async () => {
    const t = await setup(
      [service("web", "Cluster"), service("loc", "Local")],
      [
        slice("web-1", "web", { node1: true }),
        slice("loc-1", "loc", { node2: true, node3: false }),
        slice("loc-2", "loc", { node3: true }),
        slice("other-1", "clusterip-only", { node1: true }),
      ],
    );
    expect([...t.local.informer.values()].map((s) => s.key).sort()).toEqual(["ns/loc-1", "ns/loc-2"]);
    expect(t.nodesOf("ns/loc")).toEqual(["node2", "node3"]);
    expect(t.local.endpointNodes().has("ns/web")).toBe(false);
    await t.stop();
  });

  it("Cluster → Local: the Service is loading until its own passed-over slices are listed, not the cluster's", async () => {
    const t = await setup([service("web", "Cluster")], [slice("web-1", "web", { node1: true })]);
    expect(t.local.informer.size).toBe(0);
    const lists = t.sliceApi.listCalls.length;
    t.svcApi.last().line("MODIFIED", service("web", "Local"));
    expect(t.local.loading("ns/web")).toBe(true);
    await until(() => !t.local.loading("ns/web"));
    expect(t.sliceApi.listCalls.slice(lists).map((q) => q.labelSelector)).toEqual(["kubernetes.io/service-name=web"]);
    expect(t.nodesOf("ns/web")).toEqual(["node1"]);
    expect(t.loaded()).toBe(1);
    // Its own watch follows it: an endpoint moving to node2 shows.
    const own = t.sliceApi.last();
    expect(own.query.labelSelector).toBe("kubernetes.io/service-name=web");
    own.line("MODIFIED", slice("web-1", "web", { node1: false, node2: true }));
    expect(t.nodesOf("ns/web")).toEqual(["node2"]);
    // The next complete list of the main cache holds its slices: its own informer stops.
    t.sliceApi.items = [slice("web-1", "web", { node2: true })];
    await t.local.informer.relist();
    await until(() => own.ctl.signal.aborted);
    expect(t.nodesOf("ns/web")).toEqual(["node2"]);
    await t.stop();
  });

  it("Cluster → Local → Cluster → Local: the Service's own informer keeps following it, until it is deleted", async () => {
    const t = await setup([service("web", "Cluster")], [slice("web-1", "web", { node1: true })]);
    t.svcApi.last().line("MODIFIED", service("web", "Local"));
    await until(() => !t.local.loading("ns/web"));
    const own = t.sliceApi.last();
    t.svcApi.last().line("MODIFIED", service("web", "Cluster"));
    own.line("MODIFIED", slice("web-1", "web", { node1: false, node3: true }));
    const lists = t.sliceApi.listCalls.length;
    t.svcApi.last().line("MODIFIED", service("web", "Local"));
    expect(t.local.loading("ns/web")).toBe(false);
    expect(t.nodesOf("ns/web")).toEqual(["node3"]);
    expect(t.sliceApi.listCalls.length).toBe(lists);
    expect(own.ctl.signal.aborted).toBe(false);
    t.svcApi.last().line("DELETED", service("web", "Local"));
    await until(() => own.ctl.signal.aborted);
    await t.stop();
  });

  it("a new Local Service whose slices come after it: kept as they come, nothing listed again", async () => {
    const t = await setup([], []);
    const lists = t.sliceApi.listCalls.length;
    t.svcApi.last().line("ADDED", service("fresh", "Local"));
    expect(t.local.loading("ns/fresh")).toBe(false);
    t.sliceApi.last().line("ADDED", slice("fresh-1", "fresh", { node2: true }));
    expect(t.nodesOf("ns/fresh")).toEqual(["node2"]);
    expect(t.sliceApi.listCalls.length).toBe(lists);
    await t.stop();
  });

  it("Local → Cluster → Local: a slice changed while Cluster is listed anew; an unchanged one is kept", async () => {
    const t = await setup([service("loc", "Local")], [slice("loc-1", "loc", { node2: true })]);
    t.svcApi.last().line("MODIFIED", service("loc", "Cluster"));
    // Unchanged slices stay while the Service is Cluster: turning Local again needs no list.
    t.svcApi.last().line("MODIFIED", service("loc", "Local"));
    expect(t.local.loading("ns/loc")).toBe(false);
    expect(t.nodesOf("ns/loc")).toEqual(["node2"]);
    t.svcApi.last().line("MODIFIED", service("loc", "Cluster"));
    const moved = slice("loc-1", "loc", { node2: false, node3: true });
    t.sliceApi.items = [moved];
    t.sliceApi.last().line("MODIFIED", moved);
    expect(t.local.informer.size).toBe(0);
    t.svcApi.last().line("MODIFIED", service("loc", "Local"));
    expect(t.local.loading("ns/loc")).toBe(true);
    await until(() => !t.local.loading("ns/loc"));
    expect(t.nodesOf("ns/loc")).toEqual(["node3"]);
    await t.stop();
  });

  it("forgets a passed-over Service once a complete list no longer finds its slices", async () => {
    const t = await setup([], [slice("gone-1", "gone", { node1: true })]);
    t.sliceApi.items = [];
    await t.local.informer.relist();
    const lists = t.sliceApi.listCalls.length;
    // Its slices were deleted (unseen: they were not kept); it comes back Local with none: nothing to list.
    t.svcApi.last().line("ADDED", service("gone", "Local"));
    expect(t.local.loading("ns/gone")).toBe(false);
    expect(t.sliceApi.listCalls.length).toBe(lists);
    await t.stop();
  });
});
