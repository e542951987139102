import { systemClock, type Clock, type FakeClock, type Timer, type TimerOptions } from '../../src/clock.ts';

/**
 * Real time shifted to an instant the test chooses: time flows (timers and waits are real, and "now" moves with
 * them), and `set` / `advance` jump it, as when a machine's clock is set. For tests of the whole service, where
 * grammY, HTTP and the database run in real time beside the schedulers; a fake clock that stands still would stall
 * whatever waits for an instant (the throttle after a 429).
 */
export class ShiftedClock implements Clock {
  private offset: number;

  constructor(at: Date | string | number) {
    this.offset = new Date(at).getTime() - Date.now();
  }

  now(): Date {
    return new Date(Date.now() + this.offset);
  }

  /** Jumps to `at`; time flows on from there. */
  set(at: Date | string | number): void {
    this.offset = new Date(at).getTime() - Date.now();
  }

  timeout(ms: number, fn: () => void, opts?: TimerOptions): Timer {
    return systemClock.timeout(ms, fn, opts);
  }

  sleep(ms: number, opts?: TimerOptions): Promise<void> {
    return systemClock.sleep(ms, opts);
  }

  /** Jumps `ms` ahead. */
  advance(ms: number): void {
    this.offset += ms;
  }
}

/**
 * Moves a fake clock from one timer to the next until `done` holds, letting real I/O (the database, HTTP) run
 * between the steps: for code that waits on the clock between real calls (back-offs between refused connections).
 */
export async function driveUntil(
  clock: FakeClock,
  done: () => boolean | Promise<boolean>,
  what: string,
  maxSteps = 5000,
): Promise<void> {
  for (let i = 0; i < maxSteps; i++) {
    if (await done()) return;
    // Real I/O in flight gets its turn before time moves on.
    await new Promise((r) => setTimeout(r, 5));
    if (await done()) return;
    await clock.runNext();
  }
  throw new Error(`${what} did not happen within ${maxSteps} steps of the clock`);
}
