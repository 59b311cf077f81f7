import type { ProbeResult } from "./telemetry.ts";

/**
 * Liveness answers one question: would restarting the process help? So it fails only for states a restart
 * clears and nothing else does — a loop that crashed and will never run again, or a unit of work whose promise
 * never settles (every API request has a timeout, so only a bug or a lost callback gets there). It never fails
 * because the API server is unreachable or slow: every pod would be restarted at once, the new ones would be
 * just as cut off, and the speaker would lose its announcements for nothing. That is readiness's business.
 */
export interface LoopReport {
  /** Name in the probe's answer: "controller workqueue", "informer services", … */
  readonly loop: string;
  /** The loop has ended on its own (a crash) although the daemon still needs it. */
  readonly ended?: boolean;
  /** How long the oldest unit of work still running has been running; undefined when idle. */
  readonly busyForMs?: number | undefined;
  /** How long one unit of work may run before the loop counts as hung. */
  readonly stallMs?: number;
}

/** Pure: the liveness of the daemon from what its loops report. */
export function livenessOf(loops: readonly LoopReport[]): ProbeResult {
  const reasons: string[] = [];
  for (const l of loops) {
    if (l.ended === true) reasons.push(`${l.loop}: stopped after a crash (see the log)`);
    else if (l.busyForMs !== undefined && l.stallMs !== undefined && l.busyForMs > l.stallMs) {
      const s = (ms: number): string => `${Math.round(ms / 100) / 10} s`;
      reasons.push(`${l.loop}: one unit of work has run for ${s(l.busyForMs)} (limit ${s(l.stallMs)}): hung`);
    }
  }
  return { ok: reasons.length === 0, reasons };
}

/** The units of work a loop has in flight and when each started; time is passed in. */
export class InFlight {
  readonly #started = new Map<number, number>();
  #next = 0;

  /** Records a unit of work started at `now`; pass the token to `end`. */
  begin(now: number): number {
    const token = this.#next++;
    this.#started.set(token, now);
    return token;
  }

  end(token: number): void {
    this.#started.delete(token);
  }

  /** Age of the oldest unit of work still running at `now`, undefined when none is. */
  busyForMs(now: number): number | undefined {
    let oldest: number | undefined;
    for (const t of this.#started.values()) if (oldest === undefined || t < oldest) oldest = t;
    return oldest === undefined ? undefined : now - oldest;
  }

  get size(): number {
    return this.#started.size;
  }
}
