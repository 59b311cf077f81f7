import { type LagHistogram, emptyLag, observeLag } from "../core/loop-lag.ts";

export interface LoopLagSampler {
  snapshot(): LagHistogram;
  stop(): void;
}

/**
 * A timer every `everyMs` that records how late it fired. A turn that holds the loop for 30 ms shows as one
 * sample of about 30 ms; the sampler itself costs one timer callback per interval.
 */
export function startLoopLagSampler(everyMs = 20): LoopLagSampler {
  let h = emptyLag();
  let due = performance.now() + everyMs;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const now = performance.now();
    h = observeLag(h, Math.max(0, now - due) / 1000);
    due = now + everyMs;
    timer = setTimeout(tick, everyMs);
    timer.unref();
  };
  timer = setTimeout(tick, everyMs);
  timer.unref();
  return {
    snapshot: () => h,
    stop: () => clearTimeout(timer),
  };
}
