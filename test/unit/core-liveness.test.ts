import { describe, expect, it } from "vitest";
import { InFlight, livenessOf, type LoopReport } from "../../src/core/liveness.ts";

describe("livenessOf", () => {
  it.each<{ desc: string; loops: LoopReport[]; reasons: RegExp[] }>([
    { desc: "no loops", loops: [], reasons: [] },
    {
      desc: "idle loops and running informers",
      loops: [
        { loop: "informer services", ended: false },
        { loop: "controller workqueue", busyForMs: undefined, stallMs: 1000 },
      ],
      reasons: [],
    },
    {
      desc: "work in flight within the limit (a slow API server)",
      loops: [{ loop: "controller workqueue", busyForMs: 1000, stallMs: 1000 }],
      reasons: [],
    },
    {
      desc: "work in flight past the limit",
      loops: [{ loop: "controller workqueue", busyForMs: 125_000, stallMs: 120_000 }],
      reasons: [/^controller workqueue: one unit of work has run for 125 s \(limit 120 s\): hung$/],
    },
    {
      desc: "a crashed informer",
      loops: [{ loop: "informer speaker-nodes", ended: true }],
      reasons: [/^informer speaker-nodes: stopped after a crash/],
    },
    {
      desc: "every failing loop is named",
      loops: [
        { loop: "informer services", ended: true },
        { loop: "speaker evaluation", busyForMs: 31_000, stallMs: 30_000 },
        { loop: "controller workqueue", busyForMs: 10, stallMs: 120_000 },
      ],
      reasons: [/^informer services:/, /^speaker evaluation:/],
    },
    {
      desc: "no limit given: busy is never hung",
      loops: [{ loop: "some loop", busyForMs: 1e12 }],
      reasons: [],
    },
  ])("$desc", ({ loops, reasons }) => {
    const r = livenessOf(loops);
    expect(r.ok).toBe(reasons.length === 0);
    expect(r.reasons).toHaveLength(reasons.length);
    reasons.forEach((re, i) => expect(r.reasons[i]).toMatch(re));
  });
});

describe("InFlight", () => {
  it("reports the age of the oldest unit still running, and nothing when idle", () => {
    const f = new InFlight();
    expect(f.busyForMs(0)).toBeUndefined();
    const a = f.begin(100);
    const b = f.begin(250);
    expect(f.busyForMs(300)).toBe(200);
    f.end(a);
    expect(f.busyForMs(300)).toBe(50);
    expect(f.size).toBe(1);
    f.end(b);
    f.end(b);
    expect(f.busyForMs(1000)).toBeUndefined();
    expect(f.size).toBe(0);
  });
});
