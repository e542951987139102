/** A throttle on a fake clock and the log of the slots it gave: the lanes tests' world. */
import { FakeClock } from '../../src/clock.ts';
import { Throttle, type ThrottleOptions } from '../../src/telegram/throttle.ts';
import type { ChatKey, Lane } from '../../src/telegram/lanes.ts';

export const T0 = new Date('2026-11-29T10:00:00Z').getTime();

/**
 * Runs the clock's timers one after another until `done` holds (each step lets the callers' continuations run), or
 * until no timer is left. Each grant takes a turn of the event loop, and a few grants can come at one instant (a
 * reply and a paid copy): only 20 turns in a row with no timer mean the throttle has nothing left to do.
 */
export async function runUntil(clock: FakeClock, done: () => boolean): Promise<void> {
  for (let i = 0, idle = 0; i < 100_000 && idle < 20; i++) {
    await new Promise((r) => setImmediate(r));
    if (done()) return;
    idle = (await clock.runNext()) === null ? idle + 1 : 0;
  }
}

/** One slot the throttle gave: when (ms after T0), to whom, in asking order `id`. */
export interface Grant {
  at: number;
  lane: Lane;
  chat: ChatKey | undefined;
  paid: boolean;
  id: number;
}

/**
 * A throttle at `rate` on a fake clock at T0; `ask` queues a caller (a paid broadcast message with `paid`), `after`
 * runs the clock to T0 + ms, `count` counts the slots given that match.
 */
export function world(rate: number, opts: ThrottleOptions = {}) {
  const clock = new FakeClock(T0);
  const t = new Throttle(rate, clock, opts);
  const log: Grant[] = [];
  let n = 0;
  const ask = (lane: Lane, chat?: ChatKey, paid = false) => {
    const id = n++;
    void t.take(lane, chat, paid).then((at) => log.push({ at: at - T0, lane, chat, paid, id }));
    return id;
  };
  const after = (ms: number) => runUntil(clock, () => clock.now().getTime() >= T0 + ms);
  return { clock, t, log, ask, after, count: (p: (g: Grant) => boolean) => log.filter(p).length };
}
