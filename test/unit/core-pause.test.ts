import { describe, expect, it } from "vitest";
import { createPauses, type SetTimer } from "../../src/core/pause.ts";

/** A hand-driven timer: `fire()` runs what is due by `at`, `live` counts timers neither fired nor cancelled. */
function fakeTimer() {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let id = 0;
  const setTimer: SetTimer = (ms, fn) => {
    const k = ++id;
    timers.set(k, { at: now + ms, fn });
    return () => timers.delete(k);
  };
  return {
    setTimer,
    advance(ms: number) {
      now += ms;
      for (const [k, t] of [...timers])
        if (t.at <= now) {
          timers.delete(k);
          t.fn();
        }
    },
    get live() {
      return timers.size;
    },
  };
}

const settled = async (p: Promise<void>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
};

describe("pauses", () => {
  it("ends after its time", async () => {
    const t = fakeTimer();
    const p = createPauses(t.setTimer).pause(100);
    t.advance(99);
    expect(await settled(p)).toBe(false);
    t.advance(1);
    expect(await settled(p)).toBe(true);
    expect(t.live).toBe(0);
  });

  it("wake() ends every pause in progress and cancels its timer; later pauses wait again", async () => {
    const t = fakeTimer();
    const pauses = createPauses(t.setTimer);
    const a = pauses.pause(1_000);
    const b = pauses.pause(60_000);
    pauses.wake();
    expect([await settled(a), await settled(b)]).toEqual([true, true]);
    expect(t.live).toBe(0);
    const c = pauses.pause(10);
    expect(await settled(c)).toBe(false);
    t.advance(10);
    expect(await settled(c)).toBe(true);
  });

  it("stop() ends those in progress and every later one at once, leaving no timer", async () => {
    const t = fakeTimer();
    const pauses = createPauses(t.setTimer);
    const a = pauses.pause(1_000);
    pauses.stop();
    expect(await settled(a)).toBe(true);
    expect(await settled(pauses.pause(1_000))).toBe(true);
    expect(t.live).toBe(0);
  });

  it("survives a timer that fires inside setTimer", async () => {
    const pauses = createPauses((_ms, fn) => {
      fn();
      return () => undefined;
    });
    expect(await settled(pauses.pause(5))).toBe(true);
  });
});
