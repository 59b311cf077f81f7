/**
 * Event-loop lag as a histogram: how late a timer fired, in seconds. One per thread: the main thread's (planning,
 * API, Events) and the speaker's wire thread's (ARP/NDP answers and heartbeats — a peer is declared dead after
 * 600 ms without one), so a long turn shows here before it shows as a failover. Pure: the sampler
 * (src/app/loop-lag.ts) feeds it.
 */
export interface LagHistogram {
  /** Upper bounds in seconds, ascending; +Inf is implied. */
  readonly bounds: readonly number[];
  /** Cumulative: counts[i] is the number of samples ≤ bounds[i]. */
  readonly counts: readonly number[];
  readonly count: number;
  readonly sum: number;
}

/** 2 ms is about a timer's own jitter; 20 ms is the per-turn target; 600 ms loses the membership. */
export const LOOP_LAG_BOUNDS: readonly number[] = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

export const emptyLag = (bounds: readonly number[] = LOOP_LAG_BOUNDS): LagHistogram => ({
  bounds,
  counts: bounds.map(() => 0),
  count: 0,
  sum: 0,
});

export function observeLag(h: LagHistogram, seconds: number): LagHistogram {
  return {
    bounds: h.bounds,
    counts: h.counts.map((c, i) => (seconds <= (h.bounds[i] ?? Infinity) ? c + 1 : c)),
    count: h.count + 1,
    sum: h.sum + seconds,
  };
}

/**
 * The q-quantile of the samples between two snapshots of one histogram (`before` may be empty), as the upper
 * bound of the bucket it falls in: Infinity when it is beyond the last bound, 0 without samples.
 */
export function lagQuantile(after: LagHistogram, before: LagHistogram, q: number): number {
  const n = after.count - before.count;
  if (n <= 0) return 0;
  const rank = Math.ceil(q * n);
  for (let i = 0; i < after.bounds.length; i++) {
    if ((after.counts[i] ?? 0) - (before.counts[i] ?? 0) >= rank) return after.bounds[i] ?? Infinity;
  }
  return Infinity;
}
