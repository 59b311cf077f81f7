import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../src/core/workqueue.ts";

/** Drains everything ready at `now`, marking each key done at once. */
function drain(q: WorkQueue, now = 0): string[] {
  const out: string[] = [];
  for (let k = q.take(now); k !== undefined; k = q.take(now)) {
    out.push(k);
    q.done(k);
  }
  return out;
}

describe("WorkQueue", () => {
  it.each([
    { desc: "a burst of one key coalesces", adds: ["a", "a", "a"], want: ["a"] },
    { desc: "keys keep their first-added order", adds: ["b", "a", "b", "c", "a"], want: ["b", "a", "c"] },
    { desc: "empty queue yields nothing", adds: [], want: [] },
  ])("$desc", ({ adds, want }) => {
    const q = new WorkQueue();
    for (const k of adds) q.add(k);
    expect(drain(q)).toEqual(want);
    expect(q.length).toBe(0);
  });

  it("never hands out a key being processed; re-queues it after done when it changed meanwhile", () => {
    const q = new WorkQueue();
    q.add("a");
    expect(q.take(0)).toBe("a");
    q.add("a");
    q.add("a");
    expect(q.take(0)).toBeUndefined();
    q.done("a");
    expect(q.take(0)).toBe("a");
    q.done("a");
    expect(q.take(0)).toBeUndefined();
  });

  it("backs off exponentially per key, capped, honours a larger Retry-After, and forgets on success", () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    const delays = [0, 1, 2, 3, 4].map(() => q.retry("a", 0));
    expect(delays).toEqual([10, 20, 40, 50, 50]);
    expect(q.retry("a", 0, 5000)).toBe(5000);
    q.forget("a");
    expect(q.failures("a")).toBe(0);
    expect(q.retry("b", 100)).toBe(10);
    expect(q.nextDueAt()).toBe(10);
  });

  it("releases delayed keys only when due, and an add makes them ready at once", () => {
    const q = new WorkQueue();
    q.addAt("a", 100);
    q.addAt("a", 50);
    q.addAt("b", 200);
    expect(q.nextDueAt()).toBe(50);
    expect(q.take(49)).toBeUndefined();
    expect(q.take(50)).toBe("a");
    q.done("a");
    q.add("b");
    expect(q.take(51)).toBe("b");
    q.done("b");
    expect(q.nextDueAt()).toBeUndefined();
  });

  it("counts as ready only keys that can be taken now: not delayed ones, not those being processed", () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    q.addAt("c", 100);
    expect(q.ready).toBe(2);
    expect(q.take(0)).toBe("a");
    expect(q.ready).toBe(1);
    q.add("a"); // dirty while processing: not ready until done
    expect(q.ready).toBe(1);
    q.done("a");
    expect(q.ready).toBe(2);
    expect(drain(q, 0)).toEqual(["b", "a"]);
    expect(q.ready).toBe(0);
    expect(q.length).toBe(1);
  });

  it("keeps order and memory bounded across many keys", () => {
    const q = new WorkQueue();
    const keys = Array.from({ length: 5000 }, (_, i) => `ns/svc-${i}`);
    for (const k of keys) q.add(k);
    expect(drain(q)).toEqual(keys);
  });
});
