// The controller's announcing-node writer on fake caches and fake time: what it writes from the speakers' Lease
// reports, what it leaves alone, and how much it writes.
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createAnnouncingWriter } from "../../src/app/announcing-writer.ts";
import { encodeAnnounced } from "../../src/core/announced-codec.ts";
import { parseIp } from "../../src/core/ip.ts";
import type { Informer, InformerHandlers, Slim } from "../../src/kube/informer.ts";
import type { Clock } from "../../src/kube/lease.ts";
import type { SlimService } from "../../src/kube/objects.ts";
import type { ServiceStatusWriter, WriteOutcome } from "../../src/kube/service-status-writer.ts";
import type { SpeakerLease } from "../../src/kube/speaker-resources.ts";

/** An informer's cache that the test fills: every set or delete is delivered to the subscribers at once. */
function fakeInformer<T extends Slim>(resource: string) {
  const items = new Map<string, T>();
  const handlers: InformerHandlers<T>[] = [];
  const inf: Informer<T> & { set(o: T): void; remove(key: string): void } = {
    resource,
    start: () => undefined,
    stop: async () => undefined,
    subscribe: (h) => {
      handlers.push(h);
      return () => undefined;
    },
    get: (k) => items.get(k),
    values: () => items.values(),
    get size() {
      return items.size;
    },
    synced: () => true,
    whenSynced: async () => undefined,
    restarts: () => 0,
    crashed: () => false,
    relist: async () => undefined,
    set(o) {
      const old = items.get(o.key);
      items.set(o.key, o);
      for (const h of handlers) h.upsert?.(o, old);
    },
    remove(key) {
      const old = items.get(key);
      if (old === undefined) return;
      items.delete(key);
      for (const h of handlers) h.delete?.(old);
    },
  };
  return inf;
}

/** Monotonic fake time: timers run when the test advances past them. */
function fakeClock() {
  let now = 0;
  const timers: { at: number; fn: () => void }[] = [];
  const clock: Clock & { advance(ms: number): void } = {
    now: () => now,
    wall: () => new Date(now),
    setTimer(ms, fn) {
      const t = { at: now + ms, fn };
      timers.push(t);
      return () => timers.splice(timers.indexOf(t) >>> 0, timers.includes(t) ? 1 : 0);
    },
    advance(ms) {
      now += ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at)[0];
        if (due === undefined) return;
        timers.splice(timers.indexOf(due), 1);
        due.fn();
      }
    },
  };
  return clock;
}

const svc = (name: string, ips: string[], extra: Partial<SlimService> = {}): SlimService => ({
  key: `app/${name}`,
  resourceVersion: "1",
  namespace: "app",
  name,
  uid: `uid-${name}`,
  type: "LoadBalancer",
  loadBalancerClass: undefined,
  loadBalancerIP: undefined,
  ipFamilies: [],
  ipFamilyPolicy: undefined,
  ports: [],
  externalTrafficPolicy: undefined,
  selector: {},
  labels: {},
  annotations: {},
  externalIPs: [],
  ingress: ips,
  ...extra,
});

let rv = 1;
const lease = (node: string, ips: string[] | undefined, renew = `t${rv}`): SpeakerLease => ({
  key: `lodestone-system/lodestone-speaker-${node}`,
  resourceVersion: String(++rv),
  node,
  renewTime: renew,
  interfaces: undefined,
  heartbeat: undefined,
  announced: ips === undefined ? undefined : encodeAnnounced(ips.map((t) => parseIp(t)!)),
  durationSeconds: 10,
});

function setup(options: { inFlight?: number; hold?: boolean } = {}) {
  const services = fakeInformer<SlimService>("services");
  const leases = fakeInformer<SpeakerLease>("leases");
  const clock = fakeClock();
  const writes: { key: string; value: string | undefined }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const held: (() => void)[] = [];
  const writer: ServiceStatusWriter = {
    writeIngress: async () => ({ kind: "written" }),
    writePool: async () => ({ kind: "written" }),
    writeAnnouncing: async (ref, value): Promise<WriteOutcome> => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      if (options.hold === true) await new Promise<void>((r) => held.push(r));
      inFlight--;
      writes.push({ key: `${ref.namespace}/${ref.name}`, value });
      // The watch brings the write back as a new version of the Service.
      const cur = services.get(`${ref.namespace}/${ref.name}`);
      if (cur !== undefined) {
        const annotations = { ...cur.annotations };
        if (value === undefined) delete annotations["lodestone.dev/announcing-node"];
        else annotations["lodestone.dev/announcing-node"] = value;
        services.set({ ...cur, resourceVersion: String(Number(cur.resourceVersion) + 1), annotations });
      }
      return { kind: "written" };
    },
  };
  const w = createAnnouncingWriter({
    services,
    leases,
    handlesClass: (cls) => cls === undefined,
    writer,
    clock,
    logger: pino({ level: "silent" }),
    ...(options.inFlight === undefined ? {} : { writesInFlight: options.inFlight }),
  });
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  const named = (name: string) => services.get(`app/${name}`)?.annotations["lodestone.dev/announcing-node"];
  return {
    services,
    leases,
    clock,
    w,
    writes,
    settle,
    named,
    maxInFlight: () => maxInFlight,
    release: () => held.splice(0).forEach((r) => r()),
  };
}

describe("announcing-node writer", () => {
  it("names each Service's node from the reports, both nodes of a dual-stack Service, and skips what is right", async () => {
    const t = setup();
    t.services.set(svc("web", ["192.0.2.1"]));
    t.services.set(svc("dual", ["192.0.2.2", "2001:db8::2"]));
    t.services.set(svc("right", ["192.0.2.3"], { annotations: { "lodestone.dev/announcing-node": "n1" } }));
    t.leases.set(lease("n1", ["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
    t.leases.set(lease("n2", ["2001:db8::2"]));
    t.w.start();
    await t.settle();
    expect(t.named("web")).toBe("n1");
    expect(t.named("dual")).toBe("192.0.2.2=n1,2001:db8::2=n2");
    expect(t.writes.map((x) => x.key).sort()).toEqual(["app/dual", "app/web"]);
  });

  it("writes nothing before it leads, and nothing on an unchanged renewal", async () => {
    const t = setup();
    t.services.set(svc("web", ["192.0.2.1"]));
    t.leases.set(lease("n1", ["192.0.2.1"]));
    await t.settle();
    expect(t.writes).toEqual([]);
    t.w.start();
    await t.settle();
    expect(t.writes).toHaveLength(1);
    for (let i = 0; i < 5; i++) {
      t.clock.advance(2_000);
      t.leases.set(lease("n1", ["192.0.2.1"], `renew-${i}`));
      await t.settle();
    }
    expect(t.writes).toHaveLength(1);
  });

  it("follows a takeover before the dead node's Lease expires, and removes a name nobody reports after it does", async () => {
    const t = setup();
    t.services.set(svc("a", ["192.0.2.1"]));
    t.services.set(svc("b", ["192.0.2.2"]));
    t.leases.set(lease("n1", ["192.0.2.1", "192.0.2.2"]));
    t.leases.set(lease("n2", []));
    t.w.start();
    await t.settle();
    expect([t.named("a"), t.named("b")]).toEqual(["n1", "n1"]);
    // n1 dies; n2 takes 192.0.2.1 over (192.0.2.2 had only n1 to go to: an eTP Local Service, say).
    t.clock.advance(1_000);
    t.leases.set(lease("n2", ["192.0.2.1"]));
    await t.settle();
    expect([t.named("a"), t.named("b")]).toEqual(["n2", "n1"]);
    t.clock.advance(9_500); // n1's Lease, last renewed at 0, has expired (10 s)
    await t.settle();
    expect([t.named("a"), t.named("b")]).toEqual(["n2", undefined]);
    expect(t.writes).toHaveLength(4);
  });

  it("keeps what the annotations say of a node whose Lease carries no report (an older speaker)", async () => {
    const t = setup();
    t.services.set(svc("old", ["192.0.2.1"], { annotations: { "lodestone.dev/announcing-node": "n1" } }));
    t.services.set(svc("new", ["192.0.2.2"]));
    t.leases.set(lease("n1", undefined));
    t.leases.set(lease("n2", ["192.0.2.2"]));
    t.w.start();
    await t.settle();
    expect([t.named("old"), t.named("new")]).toEqual(["n1", "n2"]);
    // Upgraded: n1 now reports, without 192.0.2.1 (n2 holds it meanwhile).
    t.leases.set(lease("n1", []));
    t.leases.set(lease("n2", ["192.0.2.2", "192.0.2.1"]));
    await t.settle();
    expect(t.named("old")).toBe("n2");
  });

  it("never writes a Service of another class, and removes the name of one that left every report", async () => {
    const t = setup();
    t.services.set(
      svc("theirs", ["192.0.2.9"], {
        loadBalancerClass: "example.com/other",
        annotations: { "lodestone.dev/announcing-node": "elsewhere" },
      }),
    );
    t.services.set(svc("gone", ["203.0.113.7"], { annotations: { "lodestone.dev/announcing-node": "n1" } }));
    t.leases.set(lease("n1", ["192.0.2.9"]));
    t.w.start();
    await t.settle();
    expect(t.named("theirs")).toBe("elsewhere");
    expect(t.named("gone")).toBeUndefined();
    expect(t.writes.map((x) => x.key)).toEqual(["app/gone"]);
  });

  it("has at most 8 writes in flight", async () => {
    const t = setup({ hold: true });
    const ips = Array.from({ length: 50 }, (_, i) => `192.0.2.${i + 1}`);
    ips.forEach((ip, i) => t.services.set(svc(`s${i}`, [ip])));
    t.leases.set(lease("n1", ips));
    t.w.start();
    await t.settle();
    expect(t.maxInFlight()).toBe(8);
    for (let i = 0; i < 10 && t.writes.length < 50; i++) {
      t.release();
      await t.settle();
    }
    expect(t.writes).toHaveLength(50);
    expect(t.maxInFlight()).toBe(8);
    expect(t.w.pending()).toBe(0);
  });
});
