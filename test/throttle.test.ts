import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Throttle } from '../src/telegram/throttle.ts';

test('a pause (after a 429) holds every caller, also those already waiting for a slot', async () => {
  const t = new Throttle(100);
  const done: number[] = [];
  let pausedAt = 0;
  // The 5th caller through pauses everyone (as its 429 would): the 15 behind it all wait for the pause's end.
  const waiting = Array.from({ length: 20 }, (_, i) =>
    t.take().then(() => {
      done.push(performance.now());
      if (i === 4) {
        pausedAt = performance.now();
        t.pause(300);
      }
    }),
  );
  await Promise.all(waiting);
  assert.equal(done.filter((at) => at <= pausedAt).length, 5, 'five went before the pause');
  assert.equal(done.filter((at) => at >= pausedAt + 300).length, 15, 'every other caller went after it, none during');
});

test('an unlimited throttle only waits for a pause', async () => {
  const t = new Throttle(0);
  await t.take();
  t.pause(100);
  const paused = performance.now();
  await t.take();
  assert.ok(performance.now() - paused >= 100);
});
