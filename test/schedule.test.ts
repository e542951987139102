import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeSchedule,
  latestFireAtOrBefore,
  nextFire,
  nextFires,
  staleAfterMs,
} from '../src/scheduler/schedule.ts';
import { dayIn } from '../src/clock.ts';

const iso = (d: Date | null) => d?.toISOString() ?? null;

test('midnight in Asia/Kolkata is 18:30 UTC the day before', () => {
  assert.equal(
    iso(nextFire('0 0 * * *', 'Asia/Kolkata', new Date('2026-11-28T12:00:00Z'))),
    '2026-11-28T18:30:00.000Z',
  );
  assert.equal(dayIn(new Date('2026-11-28T20:00:00Z'), 'Asia/Kolkata'), '2026-11-29');
  assert.equal(dayIn(new Date('2026-11-28T18:29:59Z'), 'Asia/Kolkata'), '2026-11-28');
});

test('token cleanup at 00:00 and 12:00 in America/New_York across the spring-forward day 2026-03-08', () => {
  const fires = nextFires('0 0,12 * * *', 'America/New_York', new Date('2026-03-07T12:00:00Z'), 4).map(iso);
  // EST (UTC-5) until 2026-03-08 02:00 local, then EDT (UTC-4).
  assert.deepEqual(fires, [
    '2026-03-07T17:00:00.000Z',
    '2026-03-08T05:00:00.000Z',
    '2026-03-08T16:00:00.000Z',
    '2026-03-09T04:00:00.000Z',
  ]);
});

test('a 02:30 job on the spring-forward day runs once, at 03:00 EDT, since 02:30 does not exist', () => {
  const fires = nextFires('30 2 * * *', 'America/New_York', new Date('2026-03-07T12:00:00Z'), 2).map(iso);
  assert.deepEqual(fires, ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
});

test('across the fall-back day 2026-11-01 midnight and noon keep their local times, and 01:30 runs once', () => {
  const fires = nextFires('0 0,12 * * *', 'America/New_York', new Date('2026-10-31T12:00:00Z'), 4).map(iso);
  assert.deepEqual(fires, [
    '2026-10-31T16:00:00.000Z',
    '2026-11-01T04:00:00.000Z',
    '2026-11-01T17:00:00.000Z',
    '2026-11-02T05:00:00.000Z',
  ]);
  const once = nextFires('30 1 * * *', 'America/New_York', new Date('2026-10-31T12:00:00Z'), 2).map(iso);
  assert.deepEqual(once, ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
});

test('hourly fires keep a one-hour gap over the fall-back hour', () => {
  const fires = nextFires('0 * * * *', 'America/New_York', new Date('2026-11-01T04:30:00Z'), 4).map((d) => d.getTime());
  for (let i = 1; i < fires.length; i++) assert.equal(fires[i]! - fires[i - 1]!, 3600_000);
});

test('latestFireAtOrBefore includes the instant itself and coalesces', () => {
  assert.equal(
    iso(latestFireAtOrBefore('0 0 * * *', 'UTC', new Date('2026-01-01T00:00:00Z'))),
    '2026-01-01T00:00:00.000Z',
  );
  assert.equal(
    iso(latestFireAtOrBefore('0 0 * * *', 'UTC', new Date('2026-01-03T13:00:00Z'))),
    '2026-01-03T00:00:00.000Z',
  );
  assert.equal(
    iso(latestFireAtOrBefore('*/2 * * * * *', 'UTC', new Date('2026-01-01T00:00:03.500Z'))),
    '2026-01-01T00:00:02.000Z',
  );
});

test('schedules in words', () => {
  assert.equal(describeSchedule('0 0,12 * * *'), 'at 00:00 and 12:00');
  assert.equal(describeSchedule('* * * * *'), 'every minute');
  assert.equal(describeSchedule('0 * * * *'), 'every hour');
  assert.equal(describeSchedule('0 0 * * *'), 'daily at midnight');
  assert.equal(describeSchedule('*/2 * * * * *'), 'every 2 seconds');
  assert.equal(describeSchedule('0 9 * * 1'), 'cron "0 9 * * 1"');
  assert.equal(describeSchedule('off'), 'off');
});

test('stale threshold is twice the gap between the next two fires', () => {
  assert.equal(staleAfterMs('* * * * *', 'UTC', new Date('2026-01-01T00:00:30Z')), 120_000);
  assert.equal(staleAfterMs('0 0,12 * * *', 'UTC', new Date('2026-01-01T01:00:00Z')), 2 * 12 * 3600_000);
});

test("the status page's 14 days are calendar days: none skipped or repeated across DST", async () => {
  const { lastDays } = await import('../src/clock.ts');
  // 00:30 in Europe/Berlin on 2026-03-30, the day after spring-forward.
  const today = dayIn(new Date('2026-03-29T22:30:00Z'), 'Europe/Berlin');
  assert.equal(today, '2026-03-30');
  const days = lastDays(today, 14);
  assert.equal(days.length, 14);
  assert.equal(days[0], '2026-03-17');
  assert.ok(days.includes('2026-03-29'));
  assert.equal(new Set(days).size, 14);
  assert.deepEqual(lastDays('2026-03-01', 2), ['2026-02-28', '2026-03-01']);
});
