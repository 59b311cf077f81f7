/** The p-th percentile (nearest rank, 0–100) of `xs`; NaN when empty. Shared by the benchmarks. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
