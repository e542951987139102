import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { Waker } from '../src/scheduler/waker.ts';

const T0 = new Date('2026-11-29T10:00:00Z').getTime();
const settle = () => new Promise((r) => setImmediate(r));

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
  const clock = new FakeClock(T0);
  const tries: number[] = [];
  const w = new Waker({
    name: 'test',
    clock,
    logger,
    pollMs: 100,
    earliest: async (now) => now, // always due
    work: async () => {
      tries.push(clock.now().getTime() - T0);
      throw new Error('Telegram rejected the bot token');
    },
  });
  w.start();
  try {
    await settle();
    for (let i = 0; i < 6; i++) await clock.runNext();
  } finally {
    await w.stop();
  }
  assert.deepEqual(
    lines.slice(0, 6).map((l) => l.retry_in_ms),
    [200, 400, 800, 1600, 3200, 6400],
  );
  // Each try comes exactly one back-off after the one before it.
  assert.deepEqual(tries.slice(0, 7), [0, 200, 600, 1400, 3000, 6200, 12_600]);
});

test('due work runs at its instant, not at the next poll; with nothing due the waker polls', async () => {
  const { logger } = capture();
  const clock = new FakeClock(T0);
  const dues = [T0 + 400, T0 + 620];
  const worked: number[] = [];
  const looked: number[] = [];
  const w = new Waker({
    name: 'test',
    clock,
    logger,
    pollMs: 250,
    earliest: async (now) => (looked.push(now - T0), dues[0] ?? null),
    work: async () => {
      worked.push(clock.now().getTime() - T0);
      dues.shift();
      return 1;
    },
  });
  w.start();
  try {
    await settle();
    while (worked.length < 2) await clock.runNext();
    await clock.runNext();
    await clock.runNext();
  } finally {
    await w.stop();
  }
  assert.deepEqual(worked, [400, 620], 'each at its due instant');
  // 0 and 250: not due yet (the poll); 400: due; at once after work: the next is 220 ms away; then idle polls.
  assert.deepEqual(looked.slice(0, 7), [0, 250, 400, 400, 620, 620, 870]);
});

test('a stop during the search for due work waits for it and starts no work after it', async () => {
  const { logger } = capture();
  const clock = new FakeClock(T0);
  let answer: (v: number) => void = () => {};
  let asked = 0;
  let worked = 0;
  const w = new Waker({
    name: 'test',
    clock,
    logger,
    earliest: () => {
      asked++;
      return new Promise<number>((r) => (answer = r));
    },
    work: async () => (worked++, 1),
  });
  w.start();
  await settle();
  assert.equal(asked, 1, 'the first search');
  let stopped = false;
  const stopping = w.stop().then(() => (stopped = true));
  await settle();
  assert.equal(stopped, false, 'stop() waits for the search in hand');
  answer(T0 - 1000); // due work arrives after the stop
  await stopping;
  assert.equal(worked, 0, 'no work started after the stop');
  assert.equal(asked, 1);
});

test("kick(): this process's own new work is found at once, not at the next poll, even mid-step", async () => {
  const { logger } = capture();
  const clock = new FakeClock(T0);
  let due: number | null = null;
  const worked: number[] = [];
  let looks = 0;
  let release: (() => void) | null = null;
  const w = new Waker({
    name: 'test',
    clock,
    logger,
    pollMs: 60_000,
    // The token never moves: only the kick can tell the waker about the new row.
    changeToken: async () => 'same',
    earliest: async () => {
      looks++;
      if (looks === 2) await new Promise<void>((r) => (release = r)); // the kick lands while this look runs
      return due;
    },
    work: async () => {
      worked.push(clock.now().getTime() - T0);
      due = null;
      return 1;
    },
  });
  w.start();
  try {
    await settle();
    assert.equal(looks, 1);
    // A row due now is written by this process: without the kick it would wait for the 60 s poll.
    due = T0;
    w.kick();
    await settle();
    assert.equal(looks, 2);
    due = T0 + 5;
    const first = release as (() => void) | null;
    release = null;
    // Another row, written while that look is still running: the step after it comes at once.
    due = T0;
    w.kick();
    first?.();
    for (let i = 0; i < 5; i++) await settle();
    assert.deepEqual(worked, [0], 'worked at the instant of the kick, no clock time passed');
    assert.equal(clock.now().getTime(), T0);
  } finally {
    await w.stop();
  }
});
