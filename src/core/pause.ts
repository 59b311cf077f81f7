/** Calls `fn` after `ms`; returns a function that cancels it (a Clock's `setTimer`). */
export type SetTimer = (ms: number, fn: () => void) => () => void;

/**
 * Waits that a loop's owner can cut short, on an injected timer: `pause(ms)` resolves after `ms`, or at once on
 * `wake()` (every pause in progress) or `stop()` (those and every later one). A pause never rejects, and one that
 * ends early cancels its timer, so a loop that waits for minutes leaves nothing behind when it is stopped.
 */
export interface Pauses {
  pause(ms: number): Promise<void>;
  wake(): void;
  stop(): void;
}

export function createPauses(setTimer: SetTimer): Pauses {
  const waiting = new Set<() => void>();
  let stopped = false;
  const wake = (): void => {
    for (const end of [...waiting]) end();
  };
  return {
    pause(ms) {
      if (stopped) return Promise.resolve();
      return new Promise<void>((resolve) => {
        // A holder, not a variable assigned after the call: a timer may fire at once, inside setTimer.
        const timer: { cancel?: () => void } = {};
        const end = (): void => {
          if (!waiting.delete(end)) return;
          timer.cancel?.();
          resolve();
        };
        waiting.add(end);
        timer.cancel = setTimer(ms, end);
      });
    },
    wake,
    stop() {
      stopped = true;
      wake();
    },
  };
}
