/**
 * The known field a misspelt one most likely meant: the same letters ignoring case, `-` and `_`
 * (`auto-assign` for `autoAssign`), or at most two edits away. Undefined when nothing is close.
 */
export function suggestField(field: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_]/g, "");
  const exact = known.find((k) => norm(k) === norm(field));
  if (exact !== undefined) return exact;
  let best: { name: string; distance: number } | undefined;
  for (const k of known) {
    const d = editDistance(norm(field), norm(k));
    if (d <= Math.min(2, Math.floor(k.length / 3)) && (best === undefined || d < best.distance))
      best = { name: k, distance: d };
  }
  return best?.name;
}

/** Levenshtein distance (field names are short, so the quadratic table is fine). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
