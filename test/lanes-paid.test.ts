/**
 * Paid broadcasts in the throttle (issue 13, part 4): a bulk-lane message sent with `allow_paid_broadcast` takes the
 * paid budget (BROADCAST_PAID_RATE) instead of the shared rate's slot, and still waits out a 429 pause, its chat's
 * spacing and its lane's slow-down. The pure decision first, then the throttle and the client on a fake clock; they
 * assert order and counts in simulated time, never real speed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, type RawApi } from 'grammy';
import { FakeClock } from '../src/clock.ts';
import {
  book,
  emptyState,
  isPaid,
  limitsFor,
  nextGrant,
  queueOf,
  routeOf,
  slowDown,
  type Waiter,
} from '../src/telegram/lanes.ts';
import { inLane, instrument } from '../src/telegram/client.ts';
import { runUntil, T0, world } from './support/throttle-world.ts';

describe('the decision (pure)', () => {
  const limits = limitsFor(10, { paidRate: 100 }); // a shared slot every 100 ms, a paid one every 10 ms
  const state = (waiters: Waiter[]) => {
    const s = emptyState();
    for (const w of waiters) s.queues[queueOf(w)].push(w);
    return s;
  };

  test('a paid bulk message goes while the shared slot is taken; a free one waits for it', () => {
    const paid: Waiter = { lane: 'bulk', chat: 1, paid: true };
    const free: Waiter = { lane: 'bulk', chat: 2 };
    const s = state([free, paid]);
    s.nextFree = T0 + 100;
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'grant', waiter: paid, index: 0 }, 'past the older free one');
    // Its slot comes from the paid budget: the shared one is left as it was.
    book(s, limits, paid, T0);
    s.queues.paid.shift();
    assert.equal(s.nextFree, T0 + 100);
    assert.equal(s.paidNextFree, T0 + 10);
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'wait', at: T0 + 100 });
    // A free call booked moves the shared slot only.
    book(s, limits, free, T0 + 100);
    assert.deepEqual([s.nextFree, s.paidNextFree], [T0 + 200, T0 + 10]);
  });

  test('the paid budget spaces paid messages at its own rate, and a reply still goes first when both are free', () => {
    const next: Waiter = { lane: 'bulk', chat: 3, paid: true };
    const s = state([next]);
    s.paidNextFree = T0 + 10;
    assert.deepEqual(nextGrant(s, limits, T0 + 5), { kind: 'wait', at: T0 + 10 });
    const reply: Waiter = { lane: 'reply', chat: 4 };
    s.queues.reply.push(reply);
    assert.deepEqual(nextGrant(s, limits, T0 + 10), { kind: 'grant', waiter: reply, index: 0 });
  });

  test('a paid flag outside the bulk lane changes nothing: it takes a shared slot', () => {
    for (const lane of ['reply', 'deletion'] as const) {
      const w: Waiter = { lane, chat: 5, paid: true };
      assert.equal(isPaid(w), false, lane);
      const s = state([w]);
      s.nextFree = T0 + 100;
      assert.deepEqual(nextGrant(s, limits, T0), { kind: 'wait', at: T0 + 100 }, lane);
      book(s, limits, w, T0 + 100);
      assert.deepEqual([s.nextFree, s.paidNextFree], [T0 + 200, -Infinity], `${lane}: the shared slot was booked`);
    }
    assert.equal(isPaid({ lane: 'bulk', paid: true }), true);
  });

  test('a 429 pause, its chat spacing and its lane slow-down hold a paid message too', () => {
    const paid: Waiter = { lane: 'bulk', chat: 6, paid: true };
    const paused = state([paid]);
    paused.pausedUntil = T0 + 500;
    assert.deepEqual(nextGrant(paused, limits, T0), { kind: 'wait', at: T0 + 500 });
    const spaced = state([paid]);
    spaced.chatNext.set(6, T0 + 600);
    assert.deepEqual(nextGrant(spaced, limits, T0), { kind: 'wait', at: T0 + 600 });
    // Bulk halved to 5/s after a 429, its last call at T0: the next one, paid or not, 200 ms later.
    const slowed = state([paid]);
    slowDown(slowed, limits, 'bulk', T0, T0);
    slowed.lanes.bulk.last = T0;
    assert.deepEqual(nextGrant(slowed, limits, T0 + 50), { kind: 'wait', at: T0 + 200 });
    assert.equal(nextGrant(slowed, limits, T0 + 200).kind, 'grant');
  });

  test('routes: only a bulk-lane message sent with allow_paid_broadcast by a method that takes it is paid', () => {
    const flag = { chat_id: 7, from_chat_id: -100, message_id: 1, allow_paid_broadcast: true };
    assert.deepEqual(routeOf('copyMessage', flag, 'bulk'), { lane: 'bulk', chat: 7, paid: true });
    assert.deepEqual(routeOf('sendMessage', { chat_id: 7, allow_paid_broadcast: true }, 'bulk'), {
      lane: 'bulk',
      chat: 7,
      paid: true,
    });
    assert.deepEqual(routeOf('copyMessage', flag, 'reply'), { lane: 'reply', chat: 7 });
    assert.deepEqual(routeOf('copyMessage', flag, 'deletion'), { lane: 'deletion', chat: 7 });
    assert.deepEqual(routeOf('copyMessage', { ...flag, allow_paid_broadcast: false }, 'bulk'), {
      lane: 'bulk',
      chat: 7,
    });
    // Methods that do not take the parameter (Bot API 7.11's list) stay free calls whatever the payload says.
    assert.deepEqual(routeOf('forwardMessage', flag, 'bulk'), { lane: 'bulk', chat: 7 });
    assert.deepEqual(routeOf('copyMessages', flag, 'bulk'), { lane: 'bulk', chat: 7 });
    assert.deepEqual(routeOf('deleteMessage', flag, 'bulk'), { lane: 'bulk' });
    assert.deepEqual(routeOf('sendChatAction', flag, 'bulk'), { lane: 'reply' });
  });
});

describe('the throttle on a fake clock', () => {
  test('paid copies go at the paid rate while free calls keep the shared 30/s', async () => {
    const w = world(30, { paidRate: 100 });
    for (let i = 0; i < 300; i++) w.ask('bulk', 10_000 + i, true);
    for (let i = 0; i < 40; i++) w.ask('reply', 100 + i);
    for (let i = 0; i < 40; i++) w.ask('bulk');
    await w.after(2000);
    const inSecond = (s: number, p: (g: (typeof w.log)[number]) => boolean) =>
      w.count((g) => p(g) && g.at >= s * 1000 && g.at < (s + 1) * 1000);
    for (const s of [0, 1]) {
      assert.equal(
        inSecond(s, (g) => g.paid),
        100,
        `second ${s}: 100 paid copies`,
      );
      assert.equal(
        inSecond(s, (g) => !g.paid),
        30,
        `second ${s}: 30 free calls`,
      );
    }
    // The free calls in their lanes' order: the 40 replies took the first 40 shared slots.
    const free = w.log.filter((g) => !g.paid).slice(0, 40);
    assert.ok(free.every((g) => g.lane === 'reply'));
    assert.deepEqual(
      w.log.filter((g) => g.paid && g.at < 100).map((g) => g.at),
      [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
      'paid copies 10 ms apart',
    );
  });

  test('a 429 pause holds paid copies too, and the slow-down of the bulk lane paces them', async () => {
    const w = world(30, { paidRate: 100 });
    for (let i = 0; i < 200; i++) w.ask('bulk', 20_000 + i, true);
    await w.after(200);
    assert.equal(w.log.length, 21, 'at 0, 10, … 200 ms');
    // A paid copy let out at 200 ms met a 429 (retry_after 0.5 s).
    w.t.pause(500);
    w.t.slowDown('bulk', T0 + 200);
    await w.after(1700);
    assert.equal(
      w.count((g) => g.at > 200 && g.at < 700),
      0,
      'nothing during the pause',
    );
    // Bulk halved from the shared 30/s: paid copies at 15/s from the pause's end, not at their own 100/s.
    assert.equal(
      w.count((g) => g.at >= 700 && g.at < 1700),
      15,
    );
  });
});

describe('the client', () => {
  test('a paid copy in the bulk lane takes the paid budget; the same copy outside it takes a shared slot', async () => {
    const clock = new FakeClock(T0);
    const api = new Api<RawApi>('1:fake');
    const sent = new Map<number, number>();
    // Installed first, so innermost: it stands for HTTP, under the throttle.
    api.config.use(async (_prev, _method, payload) => {
      sent.set(Number((payload as { chat_id: number }).chat_id), clock.now().getTime() - T0);
      return { ok: true, result: { message_id: 1 } } as never;
    });
    instrument(api, { rate: 10, paidRate: 100, clock, retries: 0 });
    const paid = { allow_paid_broadcast: true };
    const copies = inLane('bulk', () =>
      Promise.all(Array.from({ length: 10 }, (_, i) => api.copyMessage(1000 + i, -100, 1, paid))),
    );
    const news = inLane('bulk', () => Promise.all([2000, 2001].map((c) => api.sendMessage(c, 'news'))));
    const replies = Promise.all([3000, 3001].map((c) => api.copyMessage(c, -100, 1, paid)));
    await runUntil(clock, () => sent.size === 14);
    await Promise.all([copies, news, replies]);
    const at = (chats: number[]) => chats.map((c) => sent.get(c));
    assert.deepEqual(
      at(Array.from({ length: 10 }, (_, i) => 1000 + i)),
      [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
      'the paid copies 10 ms apart, past the shared slots',
    );
    assert.deepEqual(at([3000, 3001]), [0, 100], "the reply lane's flagged copies in shared slots, 100 ms apart");
    assert.deepEqual(at([2000, 2001]), [200, 300], 'the free bulk messages in the shared slots the replies left');
  });
});
