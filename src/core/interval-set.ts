interface Span {
  lo: bigint;
  hi: bigint;
}

/** Most spans per chunk: small enough that a splice is a short memmove, large enough that chunks are few. */
const CHUNK_MAX = 256;

/**
 * A set of bigint values stored as sorted, disjoint spans in chunks (a flat B-tree of height one). Memory follows
 * the number of spans, never the range of the values: 100k addresses taken in a row from a /64 are one span.
 * Within a chunk, spans never touch (adjacent ones merge); across a chunk boundary they may, which
 * `nextAbsent` allows for.
 */
export class IntervalSet {
  #chunks: Span[][] = [];
  #size = 0;

  /** Number of values held. */
  get size(): number {
    return this.#size;
  }

  has(v: bigint): boolean {
    const at = this.#locate(v);
    return at !== undefined && at.span !== undefined && at.span.lo <= v;
  }

  /** Adds v; false when it was already there. */
  add(v: bigint): boolean {
    // Allocation walks forward, so most additions land after the last span: no search needed.
    const lastChunk = this.#chunks.at(-1);
    const last = lastChunk?.at(-1);
    if (lastChunk !== undefined && last !== undefined && v > last.hi) {
      if (v - last.hi === 1n) last.hi = v;
      else {
        lastChunk.push({ lo: v, hi: v });
        this.#split(this.#chunks.length - 1);
      }
      this.#size++;
      return true;
    }
    const at = this.#locate(v);
    if (at === undefined) {
      this.#chunks.push([{ lo: v, hi: v }]);
      this.#size++;
      return true;
    }
    const { c, i, span: next } = at;
    if (next !== undefined && next.lo <= v) return false;
    const chunk = must(this.#chunks[c]);
    const prev = i > 0 ? chunk[i - 1] : this.#chunks[c - 1]?.at(-1);
    const joinsNext = next !== undefined && next.lo === v + 1n;
    const joinsPrev = prev !== undefined && prev.hi === v - 1n;
    if (joinsNext) {
      next.lo = v;
      if (joinsPrev && i > 0) {
        prev.hi = next.hi;
        chunk.splice(i, 1);
      }
    } else if (joinsPrev) {
      prev.hi = v;
    } else {
      chunk.splice(i, 0, { lo: v, hi: v });
      this.#split(c);
    }
    this.#size++;
    return true;
  }

  /** Removes v; false when it was not there. */
  delete(v: bigint): boolean {
    const at = this.#locate(v);
    if (at?.span === undefined || at.span.lo > v) return false;
    const { c, i, span } = at;
    const chunk = must(this.#chunks[c]);
    if (span.lo === span.hi) {
      chunk.splice(i, 1);
      if (chunk.length === 0) this.#chunks.splice(c, 1);
    } else if (v === span.lo) {
      span.lo = v + 1n;
    } else if (v === span.hi) {
      span.hi = v - 1n;
    } else {
      chunk.splice(i + 1, 0, { lo: v + 1n, hi: span.hi });
      span.hi = v - 1n;
      this.#split(c);
    }
    this.#size--;
    return true;
  }

  /** The smallest value >= v that is not in the set. */
  nextAbsent(v: bigint): bigint {
    const last = this.#chunks.at(-1)?.at(-1);
    if (last === undefined || v > last.hi) return v;
    const at = this.#locate(v);
    if (at?.span === undefined || at.span.lo > v) return v;
    let { c, i } = at;
    let x = at.span.hi + 1n;
    for (;;) {
      i++;
      if (i >= must(this.#chunks[c]).length) {
        c++;
        i = 0;
      }
      const s = this.#chunks[c]?.[i];
      if (s === undefined || s.lo !== x) return x;
      x = s.hi + 1n;
    }
  }

  /** The spans in order, as [first, last] pairs (for tests and debugging). */
  spans(): [bigint, bigint][] {
    return this.#chunks.flatMap((chunk) => chunk.map((s): [bigint, bigint] => [s.lo, s.hi]));
  }

  /**
   * Chunk c is the first whose last span ends at or after v (or the last chunk); i the first span in it that
   * ends at or after v (`span` undefined when v lies beyond every span).
   */
  #locate(v: bigint): { c: number; i: number; span: Span | undefined } | undefined {
    const chunks = this.#chunks;
    if (chunks.length === 0) return undefined;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (must(must(chunks[mid]).at(-1)).hi >= v) hi = mid;
      else lo = mid + 1;
    }
    const chunk = must(chunks[lo]);
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (must(chunk[mid]).hi >= v) b = mid;
      else a = mid + 1;
    }
    return { c: lo, i: a, span: chunk[a] };
  }

  #split(c: number): void {
    const chunk = must(this.#chunks[c]);
    if (chunk.length > CHUNK_MAX) this.#chunks.splice(c + 1, 0, chunk.splice(chunk.length >> 1));
  }
}

/** Spans and chunks are never empty; a miss here is a bug in this file, not bad input. */
function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("IntervalSet: internal invariant broken");
  return value;
}
