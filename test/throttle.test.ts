import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { Throttle } from '../src/telegram/throttle.ts';

const T0 = new Date('2026-11-29T10:00:00Z').getTime();

/** Runs the clock's timers one after another until `done` holds (each step lets the callers' continuations run). */
async function runUntil(clock: FakeClock, done: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    // Callers whose slot is now go through before time moves on.
    await new Promise((r) => setImmediate(r));
    if (done() || (await clock.runNext()) === null) return;
  }
}

test('calls are spaced evenly at the rate, in the order they asked', async () => {
  const clock = new FakeClock(T0);
  const t = new Throttle(100, clock); // one slot every 10 ms
  const at: number[] = [];
  const order: number[] = [];
  const all = Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      t.take().then(() => {
        at.push(clock.now().getTime() - T0);
        order.push(i);
      }),
    ),
  );
  await runUntil(clock, () => at.length === 5);
  await all;
  assert.deepEqual(at, [0, 10, 20, 30, 40]);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
});

test('a pause (after a 429) holds every caller, also those already waiting for a slot', async () => {
  const clock = new FakeClock(T0);
  const t = new Throttle(100, clock);
  const done: number[] = [];
  let pausedAt = 0;
  // The 5th caller through pauses everyone (as its 429 would): the 15 behind it all wait for the pause's end.
  const waiting = Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      t.take().then(() => {
        done.push(clock.now().getTime());
        if (i === 4) {
          pausedAt = clock.now().getTime();
          t.pause(300);
        }
      }),
    ),
  );
  await runUntil(clock, () => done.length === 20);
  await waiting;
  assert.equal(done.filter((at) => at <= pausedAt).length, 5, 'five went before the pause');
  assert.equal(done.filter((at) => at >= pausedAt + 300).length, 15, 'every other caller went after it, none during');
  // After the pause the callers are spaced at the rate again, from its end.
  const after = done.slice(5).map((at) => at - pausedAt);
  assert.deepEqual(
    after,
    Array.from({ length: 15 }, (_, i) => 300 + 10 * i),
  );
});

test('an unlimited throttle only waits for a pause', async () => {
  const clock = new FakeClock(T0);
  const t = new Throttle(0, clock);
  await t.take();
  await t.take();
  assert.equal(clock.pending, 0, 'no wait without a pause');
  t.pause(100);
  let through = false;
  const p = t.take().then(() => (through = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(through, false, 'held by the pause');
  clock.advance(99);
  await new Promise((r) => setImmediate(r));
  assert.equal(through, false, 'still held 1 ms before its end');
  await clock.runNext();
  await p;
  assert.equal(clock.now().getTime(), T0 + 100);
});

test('the wall clock set back does not stall the throttle', async () => {
  const clock = new FakeClock(T0);
  const t = new Throttle(10, clock); // one slot every 100 ms
  await t.take();
  clock.set(T0 - 3_600_000); // an hour back (NTP, a manual change)
  let through = false;
  const p = t.take().then(() => (through = true));
  await runUntil(clock, () => through);
  await p;
  assert.equal(clock.now().getTime(), T0 - 3_600_000 + 100, 'the next slot, not an hour later');
});
