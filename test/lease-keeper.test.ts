import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { FixedClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { LeaseKeeper } from '../src/scheduler/lease-keeper.ts';

const logger = createLogger({ level: 'silent' });
const settle = () => new Promise((r) => setImmediate(r));

test('the lease keeper: a renewal that changes nothing makes the lease lost; failures only after a whole lease', async () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const clock = new FixedClock('2026-11-29T10:00:00Z');
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
    mock.timers.tick(1000);
    await settle();
    assert.equal(renewals, 1);
    assert.equal(keeper.lost, false);
    // The database goes away: failures are retried while the lease may still be ours.
    answer = async () => {
      throw new Error('connection refused');
    };
    clock.advance(2000);
    mock.timers.tick(1000);
    await settle();
    assert.equal(keeper.lost, false, '2 s without a renewal, inside the 3 s lease');
    clock.advance(1000);
    mock.timers.tick(1000);
    await settle();
    assert.equal(keeper.lost, true, 'a whole lease without a renewal: another process may hold it');
    assert.equal(keeper.signal.aborted, true);
    assert.equal(lostCalls, 1);
    mock.timers.tick(5000);
    await settle();
    assert.equal(renewals, 3, 'no renewal once lost');
    await keeper.stop();

    const other = new LeaseKeeper({ what: 'taken', periodMs: 1000, logger, renew: async () => false }).start();
    mock.timers.tick(1000);
    await settle();
    assert.equal(other.lost, true, 'a conditional renewal that changed nothing');
    await other.stop();
  } finally {
    mock.timers.reset();
  }
});
