/**
 * A de-duplicating work queue with per-key retry backoff, in the shape of client-go's workqueue, but pure: time is
 * passed in, nothing is scheduled here. The driver asks `take(now)` for the next ready key and `nextDueAt()` to
 * know when to wake up.
 *
 * Rules (the ones that make bursts coalesce and keep one worker per key):
 * - a key queued twice is processed once;
 * - a key added while it is being processed is processed again after `done`, never concurrently;
 * - `retry` re-queues after `baseMs * 2^failures` (capped), or after the server's Retry-After when larger;
 *   `forget` resets the failure count after a success.
 */
export interface WorkQueueOptions {
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

export class WorkQueue {
  readonly #ready: string[] = [];
  #head = 0;
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  /** Added again while processing: re-queue on done. */
  readonly #dirty = new Set<string>();
  readonly #delayed = new Map<string, number>();
  readonly #failures = new Map<string, number>();
  readonly #base: number;
  readonly #max: number;

  constructor(opts: WorkQueueOptions = {}) {
    this.#base = opts.baseDelayMs ?? 50;
    this.#max = opts.maxDelayMs ?? 30_000;
  }

  add(key: string): void {
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#delayed.delete(key);
    this.#queued.add(key);
    this.#ready.push(key);
  }

  /** Queues `key` at `dueAt` unless it is already queued sooner. */
  addAt(key: string, dueAt: number): void {
    if (this.#queued.has(key) || this.#dirty.has(key)) return;
    const prev = this.#delayed.get(key);
    if (prev === undefined || dueAt < prev) this.#delayed.set(key, dueAt);
  }

  /** Schedules a retry with exponential backoff; returns the delay chosen. */
  retry(key: string, now: number, atLeastMs = 0): number {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const delay = Math.max(atLeastMs, Math.min(this.#max, this.#base * 2 ** n));
    this.addAt(key, now + delay);
    return delay;
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** The next key to process, or undefined when nothing is ready at `now`. */
  take(now: number): string | undefined {
    this.#promote(now);
    while (this.#head < this.#ready.length) {
      const key = this.#ready[this.#head++];
      if (this.#head > 1024 && this.#head * 2 > this.#ready.length) {
        this.#ready.splice(0, this.#head);
        this.#head = 0;
      }
      if (key === undefined || !this.#queued.delete(key)) continue;
      this.#processing.add(key);
      return key;
    }
    return undefined;
  }

  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  /** Earliest time a delayed key becomes ready, or undefined. */
  nextDueAt(): number | undefined {
    // Asked after every unit of work: no iterator when nothing waits.
    if (this.#delayed.size === 0) return undefined;
    let min: number | undefined;
    for (const t of this.#delayed.values()) if (min === undefined || t < min) min = t;
    return min;
  }

  /** Keys waiting (ready or delayed), not counting those being processed. */
  get length(): number {
    return this.#queued.size + this.#delayed.size;
  }

  /** Keys ready to be taken now (not delayed, not being processed). */
  get ready(): number {
    return this.#queued.size;
  }

  get busy(): number {
    return this.#processing.size;
  }

  #promote(now: number): void {
    if (this.#delayed.size === 0) return;
    for (const [key, due] of this.#delayed) {
      if (due <= now) {
        this.#delayed.delete(key);
        this.add(key);
      }
    }
  }
}
