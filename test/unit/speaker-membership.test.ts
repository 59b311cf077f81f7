import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Heartbeat, decodeHeartbeat, encodeHeartbeat, heartbeatKey } from "../../src/core/heartbeat-codec.ts";
import { Membership, checkTiming, defaultTiming } from "../../src/core/membership.ts";

const WALL = 1_800_000_000_000;
const key = heartbeatKey(new TextEncoder().encode("k".repeat(32)));
const other = heartbeatKey(new TextEncoder().encode("x".repeat(32)));
const hb = (node: string, seq: number, over: Partial<Heartbeat> = {}): Heartbeat => ({
  node,
  incarnation: WALL - 60_000,
  seq,
  sentAtMs: WALL + seq,
  kind: "alive",
  apiOk: true,
  ...over,
});

describe("heartbeat codec", () => {
  it("round-trips and authenticates", () => {
    const m = hb("node1", 7, { kind: "leaving", apiOk: false });
    expect(decodeHeartbeat(encodeHeartbeat(m, key), [other, key])).toEqual({ ok: true, value: m });
  });

  it.each<{ desc: string; mutate: (b: Uint8Array) => Uint8Array; keys: "same" | "other"; error: string }>([
    { desc: "unknown key id", mutate: (b) => b, keys: "other", error: "unknown-key" },
    {
      desc: "a flipped bit in the body",
      mutate: (b) => b.map((v, i) => (i === 10 ? v ^ 1 : v)),
      keys: "same",
      error: "bad-mac",
    },
    { desc: "a forged apiOk flag", mutate: (b) => b.map((v, i) => (i === 6 ? 0 : v)), keys: "same", error: "bad-mac" },
    { desc: "truncated", mutate: (b) => b.subarray(0, b.length - 1), keys: "same", error: "malformed" },
    { desc: "wrong magic", mutate: (b) => b.map((v, i) => (i === 0 ? 0 : v)), keys: "same", error: "malformed" },
    { desc: "empty", mutate: () => new Uint8Array(0), keys: "same", error: "malformed" },
  ])("refuses $desc", ({ mutate, keys, error }) => {
    const bytes = mutate(encodeHeartbeat(hb("node1", 1), key));
    expect(decodeHeartbeat(bytes, keys === "same" ? [key] : [other])).toEqual({ ok: false, error });
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        expect(decodeHeartbeat(b, [key]).ok).toBe(false);
      }),
    );
  });
});

/** A two-peer world: node1 is this speaker, node2 and node3 are peers that heartbeat every 150 ms. */
function world() {
  const m = new Membership("node1");
  const seq = new Map<string, number>();
  const send = (node: string, now: number, over: Partial<Heartbeat> = {}) => {
    const s = (seq.get(node) ?? 0) + 1;
    seq.set(node, s);
    return m.heartbeat(hb(node, s, { sentAtMs: WALL + now, ...over }), now, WALL + now);
  };
  m.renewed(0);
  for (const n of ["node2", "node3"]) m.lease(n, "t0", WALL, 0, WALL);
  return { m, send };
}

describe("Membership", () => {
  it("the default timing keeps the fencing argument", () => {
    expect(checkTiming(defaultTiming)).toEqual([]);
    expect(checkTiming({ ...defaultTiming, fenceAfterMs: 9_000 })).toHaveLength(1);
  });

  it.each<{ desc: string; step: (w: ReturnType<typeof world>) => number; members: string[]; fenced?: boolean }>([
    { desc: "Lease-only peers count before any heartbeat", step: () => 100, members: ["node1", "node2", "node3"] },
    {
      desc: "a peer silent for deadAfterMs is out although its Lease is valid",
      step: (w) => {
        w.send("node2", 100);
        w.send("node3", 100);
        w.send("node3", 700);
        return 701;
      },
      members: ["node1", "node3"],
    },
    {
      desc: "a leaving peer is out at once",
      step: (w) => {
        w.send("node2", 100);
        w.send("node2", 150, { kind: "leaving" });
        return 151;
      },
      members: ["node1", "node3"],
    },
    {
      desc: "a Lease-only peer is out when its Lease expires",
      step: (w) => {
        w.m.renewed(9_000);
        w.m.lease("node3", "t1", WALL, 9_000, WALL);
        w.send("node3", 9_900);
        return 10_001;
      },
      members: ["node1", "node3"],
    },
    {
      desc: "a peer that says it cannot reach the API is out while others can",
      step: (w) => {
        w.send("node2", 100, { apiOk: false });
        w.send("node3", 100);
        return 101;
      },
      members: ["node1", "node3"],
    },
    {
      desc: "this speaker fences itself when its renewals fail and a peer reaches the API",
      step: (w) => {
        w.send("node2", 5_900);
        w.m.lease("node2", "t1", WALL, 4_000, WALL);
        w.send("node3", 5_900, { apiOk: false });
        return 6_001;
      },
      members: ["node2"],
      fenced: true,
    },
    {
      desc: "when nobody reaches the API, members keep serving on heartbeats",
      step: (w) => {
        w.send("node2", 6_100, { apiOk: false });
        w.send("node3", 6_100, { apiOk: false });
        return 6_101;
      },
      members: ["node1", "node2", "node3"],
    },
    {
      desc: "a peer claiming apiOk with an expired Lease is not believed",
      step: (w) => {
        w.m.renewed(10_500);
        w.send("node2", 10_500);
        w.send("node3", 10_500);
        w.m.lease("node3", "t1", WALL, 9_000, WALL);
        return 10_501;
      },
      members: ["node1", "node3"],
    },
  ])("$desc", ({ step, members, fenced }) => {
    const w = world();
    const now = step(w);
    const v = w.m.view(now);
    expect([...v.members].sort()).toEqual(members);
    expect(v.fenced).toBe(fenced ?? false);
  });

  it.each<{ desc: string; first: Partial<Heartbeat>; second: Partial<Heartbeat>; wall: number; want: string }>([
    { desc: "same sequence twice", first: { seq: 5 }, second: { seq: 5 }, wall: WALL, want: "replay" },
    { desc: "an older sequence", first: { seq: 5 }, second: { seq: 4 }, wall: WALL, want: "replay" },
    {
      desc: "an older incarnation",
      first: { incarnation: 2 },
      second: { incarnation: 1, seq: 99 },
      wall: WALL,
      want: "old-incarnation",
    },
    {
      desc: "a recorded heartbeat replayed later",
      first: { seq: 1 },
      second: { seq: 2 },
      wall: WALL + 60_000,
      want: "clock-skew",
    },
  ])("refuses $desc", ({ first, second, wall, want }) => {
    const m = new Membership("node1");
    expect(m.heartbeat(hb("node2", 0, { sentAtMs: WALL, ...first }), 0, WALL)).toBeUndefined();
    expect(m.heartbeat(hb("node2", 0, { sentAtMs: WALL, ...second }), 1, wall)).toBe(want);
  });

  it("a restarted peer (new incarnation) comes back after leaving", () => {
    const m = new Membership("node1");
    m.renewed(0);
    m.heartbeat(hb("node2", 1, { kind: "leaving", sentAtMs: WALL }), 0, WALL);
    expect(m.view(1).members.has("node2")).toBe(false);
    m.lease("node2", "t1", WALL, 1, WALL);
    m.heartbeat(hb("node2", 1, { incarnation: WALL, sentAtMs: WALL }), 2, WALL);
    expect(m.view(3).members.has("node2")).toBe(true);
  });

  it("a Lease already stale when first seen does not count", () => {
    const m = new Membership("node1");
    m.renewed(0);
    m.lease("gone", "old", WALL - 3_600_000, 0, WALL);
    expect(m.view(1).members.has("gone")).toBe(false);
  });

  it("a stopping speaker leaves its own view", () => {
    const m = new Membership("node1");
    m.renewed(0);
    m.stopping();
    expect(m.view(1).members.size).toBe(0);
    expect(m.view(1).fenced).toBe(false);
  });

  it("a peer with valid heartbeats never drops out while they keep coming (any jitter below deadAfterMs)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 100 }), (gaps) => {
        const m = new Membership("node1");
        let now = 0;
        let seq = 0;
        m.renewed(0);
        m.lease("node2", "t", WALL, 0, WALL);
        m.heartbeat(hb("node2", ++seq, { sentAtMs: WALL }), 0, WALL);
        for (const g of gaps) {
          now += g;
          if (now % 2_000 < g) {
            m.renewed(now);
            m.lease("node2", `t${now}`, WALL + now, now, WALL + now);
          }
          expect(m.view(now).members.has("node2")).toBe(true);
          m.heartbeat(hb("node2", ++seq, { sentAtMs: WALL + now }), now, WALL + now);
        }
      }),
    );
  });
});

describe("Membership: a late Lease watch", () => {
  const timing = defaultTiming;
  const start = () => {
    const m = new Membership("node1", timing);
    m.renewed(0);
    m.lease("node1", "s0", WALL, 0, WALL);
    m.lease("node2", "t0", WALL, 0, WALL);
    return m;
  };
  const D = timing.leaseDurationMs;

  it("judges a peer's Lease by how far the watch got: own renewals seen late keep the peer's valid", () => {
    const m = start();
    // Own renewals succeed every renewIntervalMs, but the watch shows neither ours nor the peer's after t=0.
    for (let t = timing.renewIntervalMs; t <= D + 3_000; t += timing.renewIntervalMs) m.renewed(t);
    const p = m.view(D + 3_000).peers.find((x) => x.node === "node2");
    expect(p?.leaseValid).toBe(true);
    expect(m.view(D + 3_000).members.has("node2")).toBe(true);
  });

  it("with the watch keeping up, a peer whose Lease stopped expires after the Lease duration", () => {
    const m = start();
    for (let t = timing.renewIntervalMs; t <= D + 3_000; t += timing.renewIntervalMs) {
      m.renewed(t);
      m.lease("node1", `s${t}`, WALL + t, t, WALL + t);
    }
    const p = m.view(D + 3_000).peers.find((x) => x.node === "node2");
    expect(p?.leaseValid).toBe(false);
    expect(m.view(D + 3_000).members.has("node2")).toBe(false);
  });

  it("when this speaker cannot renew, the wall clock counts again", () => {
    const m = start();
    expect(m.view(D + 1).peers.find((x) => x.node === "node2")?.leaseValid).toBe(false);
  });
});
