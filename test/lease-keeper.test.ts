import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { LeaseKeeper } from '../src/scheduler/lease-keeper.ts';

const logger = createLogger({ level: 'silent' });

test('the lease keeper: a renewal that changes nothing makes the lease lost; failures only after a whole lease', async () => {
  const clock = new FakeClock('2026-11-29T10:00:00Z');
  let answer: () => Promise<boolean> = async () => true;
  let renewals = 0;
  let lostCalls = 0;
  const keeper = new LeaseKeeper({
    what: 'test lease',
    periodMs: 1000,
    leaseMs: 3000,
    clock,
    logger,
    renew: () => (renewals++, answer()),
    onLost: () => lostCalls++,
  }).start();
  assert.equal(await clock.runNext(), clock.now().getTime(), 'a renewal one period after the start');
  assert.equal(renewals, 1);
  assert.equal(keeper.lost, false);
  // The database goes away: failures are retried while the lease may still be ours.
  answer = async () => {
    throw new Error('connection refused');
  };
  await clock.runNext();
  await clock.runNext();
  assert.equal(renewals, 3);
  assert.equal(keeper.lost, false, '2 s without a renewal, inside the 3 s lease');
  await clock.runNext();
  assert.equal(renewals, 4);
  assert.equal(keeper.lost, true, 'a whole lease without a renewal: another process may hold it');
  assert.equal(keeper.signal.aborted, true);
  assert.equal(lostCalls, 1);
  assert.equal(clock.pending, 0, 'no renewal is planned once lost');
  clock.advance(10_000);
  assert.equal(renewals, 4, 'no renewal once lost');
  await keeper.stop();

  const other = new LeaseKeeper({ what: 'taken', periodMs: 1000, clock, logger, renew: async () => false }).start();
  await clock.runNext();
  assert.equal(other.lost, true, 'a conditional renewal that changed nothing');
  await other.stop();

  const stopped = new LeaseKeeper({ what: 'stopped', periodMs: 1000, clock, logger, renew: async () => true }).start();
  await stopped.stop();
  assert.equal(clock.pending, 0, 'stop() cancels the next renewal');
});
