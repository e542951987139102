import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Throttle } from '../src/telegram/throttle.ts';

test('a pause (after a 429) holds every caller, also those already waiting for a slot', async () => {
  const t = new Throttle(100);
  const done: number[] = [];
  const waiting = Array.from({ length: 20 }, () => t.take().then(() => done.push(performance.now())));
  await new Promise((r) => setTimeout(r, 45));
  const pausedAt = performance.now();
  t.pause(300);
  await Promise.all(waiting);
  const during = done.filter((at) => at > pausedAt + 1 && at < pausedAt + 299);
  assert.deepEqual(during, [], 'no caller went through during the pause');
  assert.ok(done.filter((at) => at >= pausedAt + 299).length >= 10, 'the waiting callers went after it');
});

test('an unlimited throttle only waits for a pause', async () => {
  const t = new Throttle(0);
  await t.take();
  t.pause(100);
  const paused = performance.now();
  await t.take();
  assert.ok(performance.now() - paused >= 99);
});
