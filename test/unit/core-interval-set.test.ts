import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { IntervalSet } from "../../src/core/interval-set.ts";

describe("IntervalSet", () => {
  it("merges neighbours into spans and splits them on delete", () => {
    const s = new IntervalSet();
    for (const v of [5n, 7n, 6n, 1n, 2n]) s.add(v);
    expect(s.spans()).toEqual([
      [1n, 2n],
      [5n, 7n],
    ]);
    expect(s.delete(6n)).toBe(true);
    expect(s.spans()).toEqual([
      [1n, 2n],
      [5n, 5n],
      [7n, 7n],
    ]);
    expect(s.nextAbsent(1n)).toBe(3n);
    expect(s.nextAbsent(4n)).toBe(4n);
    expect(s.add(5n)).toBe(false);
    expect(s.delete(100n)).toBe(false);
    expect(s.size).toBe(4);
  });

  it("behaves like a plain Set under any sequence of adds and deletes (across many chunks)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { maxLength: 3000 }),
        fc.array(fc.integer({ min: 0, max: 3100 }), { maxLength: 30 }),
        (ops, probes) => {
          const s = new IntervalSet();
          const model = new Set<number>();
          for (const [add, v] of ops) {
            if (add) expect(s.add(BigInt(v))).toBe(!model.has(v));
            else expect(s.delete(BigInt(v))).toBe(model.has(v));
            if (add) model.add(v);
            else model.delete(v);
          }
          expect(s.size).toBe(model.size);
          for (const p of probes) {
            expect(s.has(BigInt(p))).toBe(model.has(p));
            let next = p;
            while (model.has(next)) next++;
            expect(s.nextAbsent(BigInt(p))).toBe(BigInt(next));
          }
          const spans = s.spans();
          expect(spans.reduce((n, [a, b]) => n + Number(b - a + 1n), 0)).toBe(model.size);
        },
      ),
      { numRuns: 60 },
    );
  });
});
