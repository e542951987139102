import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { systemClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { Waker } from '../src/scheduler/waker.ts';
import { until } from './support/wait.ts';

/** A logger whose JSON lines land in `lines`. */
function capture(): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), cb()),
  });
  return { lines, logger: createLogger({ level: 'error', destination }) };
}

test('work that keeps failing backs off, doubling, even though finding due work succeeds', async () => {
  const { lines, logger } = capture();
  let calls = 0;
  const w = new Waker({
    name: 'test',
    clock: systemClock,
    logger,
    pollMs: 1,
    earliest: async (now) => now, // always due
    work: async () => {
      calls++;
      throw new Error('Telegram rejected the bot token');
    },
  });
  w.start();
  try {
    await until(() => lines.length >= 5, 'five failed wake-ups');
  } finally {
    await w.stop();
  }
  assert.deepEqual(
    lines.slice(0, 5).map((l) => l.retry_in_ms),
    [2, 4, 8, 16, 32],
  );
  assert.ok(calls >= 5);
});

test('a stop during the search for due work waits for it and starts no work after it', async () => {
  const { logger } = capture();
  let answer: (v: number) => void = () => {};
  let asked = 0;
  let worked = 0;
  const w = new Waker({
    name: 'test',
    clock: systemClock,
    logger,
    earliest: () => {
      asked++;
      return new Promise<number>((r) => (answer = r));
    },
    work: async () => (worked++, 1),
  });
  w.start();
  await until(() => asked === 1, 'the first search');
  let stopped = false;
  const stopping = w.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(stopped, false, 'stop() waits for the search in hand');
  answer(Date.now() - 1000); // due work arrives after the stop
  await stopping;
  assert.equal(worked, 0, 'no work started after the stop');
  assert.equal(asked, 1);
});
