/**
 * The throttle's priority lanes (issue 13, part 1), all on a fake clock: the pure decision (`lanes.ts`) asked
 * directly, then the throttle run by the clock, then the client's routing. They assert order and counts of calls in
 * simulated time, never real speed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, type RawApi } from 'grammy';
import { FakeClock } from '../src/clock.ts';
import {
  book,
  emptyState,
  laneRate,
  limitsFor,
  nextGrant,
  routeOf,
  slowDown,
  type Lane,
  type Waiter,
} from '../src/telegram/lanes.ts';
import { inLane, instrument } from '../src/telegram/client.ts';
import { runUntil, T0, world } from './support/throttle-world.ts';

describe('the decision (pure)', () => {
  const limits = limitsFor(10); // a slot every 100 ms
  const state = (waiters: Waiter[]) => {
    const s = emptyState();
    for (const w of waiters) s.queues[w.lane].push(w);
    return s;
  };

  test('the highest lane with a waiter goes first, its oldest waiter first', () => {
    const bulk: Waiter = { lane: 'bulk' };
    const del1: Waiter = { lane: 'deletion' };
    const del2: Waiter = { lane: 'deletion' };
    const s = state([bulk, del1, del2]);
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'grant', waiter: del1, index: 0 });
    const reply: Waiter = { lane: 'reply' };
    s.queues.reply.push(reply);
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'grant', waiter: reply, index: 0 });
    assert.deepEqual(nextGrant(state([]), limits, T0), { kind: 'idle' });
  });

  test('a pause, then the shared slot, come before any lane', () => {
    const s = state([{ lane: 'reply' }]);
    s.pausedUntil = T0 + 500;
    s.nextFree = T0 + 100;
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'wait', at: T0 + 500 });
    s.pausedUntil = T0 - 1;
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'wait', at: T0 + 100 });
  });

  test('a waiter whose chat is not ready is passed over for other chats and lower lanes; else the wait is for the first chat ready', () => {
    const busy: Waiter = { lane: 'reply', chat: 7 };
    const other: Waiter = { lane: 'reply', chat: 8 };
    const bulk: Waiter = { lane: 'bulk', chat: 9 };
    const s = state([busy, other, bulk]);
    s.chatNext.set(7, T0 + 600);
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'grant', waiter: other, index: 1 });
    s.chatNext.set(8, T0 + 400);
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'grant', waiter: bulk, index: 0 });
    s.chatNext.set(9, T0 + 900);
    assert.deepEqual(nextGrant(s, limits, T0), { kind: 'wait', at: T0 + 400 });
  });

  test('a 429 halves the lane that met it, once per slow-down, and it recovers ×1.25 every 10 s up to the rate', () => {
    const s = emptyState();
    assert.equal(laneRate(s, limits, 'bulk', T0), 10);
    slowDown(s, limits, 'bulk', T0, T0);
    assert.equal(laneRate(s, limits, 'bulk', T0), 5);
    assert.equal(laneRate(s, limits, 'reply', T0), 10, 'the other lanes keep the rate');
    // A call let out before the slow-down met the limit at the old pace: the same news, not a second halving.
    slowDown(s, limits, 'bulk', T0 - 50, T0 + 20);
    assert.equal(laneRate(s, limits, 'bulk', T0 + 20), 5);
    const at = (sec: number) => laneRate(s, limits, 'bulk', T0 + sec * 1000);
    assert.deepEqual([at(9.9), at(10), at(20), at(30), at(40)], [5, 6.25, 7.8125, 9.765625, 10]);
    // A call let out after it met the limit again: halved from where it had recovered, never below 1/s.
    slowDown(s, limits, 'bulk', T0 + 20_000, T0 + 20_000);
    assert.equal(laneRate(s, limits, 'bulk', T0 + 20_000), 7.8125 / 2);
    for (let i = 1; i <= 5; i++) slowDown(s, limits, 'bulk', T0 + 20_000 + i, T0 + 20_000 + i);
    assert.equal(laneRate(s, limits, 'bulk', T0 + 20_005), 1);
    // A slowed lane waits for its own pace even when the shared slot is free; the other lanes do not.
    const q = state([{ lane: 'bulk' }]);
    slowDown(q, limits, 'bulk', T0, T0);
    q.lanes.bulk.last = T0;
    assert.deepEqual(nextGrant(q, limits, T0 + 100), { kind: 'wait', at: T0 + 200 });
    q.queues.reply.push({ lane: 'reply' });
    assert.equal(nextGrant(q, limits, T0 + 100).kind, 'grant');
  });

  test('a wake-up late by less than the catch-up keeps the schedule (slots made up); a longer gap starts it again', () => {
    const fast = limitsFor(2000); // a slot every 0.5 ms: more than one per millisecond timer
    const s = emptyState();
    for (let i = 0; i < 10; i++) s.queues.bulk.push({ lane: 'bulk' });
    s.nextFree = T0;
    // The timer meant for T0 fires at T0 + 1: the slots of T0 and T0 + 0.5 both go now, the next waits for T0 + 1.5.
    const grantsAt = (now: number) => {
      let n = 0;
      for (let d = nextGrant(s, fast, now); d.kind === 'grant'; d = nextGrant(s, fast, now), n++) {
        s.queues.bulk.splice(d.index, 1);
        book(s, fast, d.waiter, now);
      }
      return n;
    };
    assert.equal(grantsAt(T0 + 1), 3);
    assert.equal(s.nextFree, T0 + 1.5);
    assert.equal(grantsAt(T0 + 1.2), 0);
    // 20 ms late (inside the 25 ms catch-up): every slot since is made up, the average rate holds.
    s.queues.bulk.push(...Array.from({ length: 60 }, () => ({ lane: 'bulk' as const })));
    assert.equal(grantsAt(T0 + 21.5), 41);
    // 30 ms of nobody waiting: the schedule starts from now, one call, no burst for the unused time.
    s.queues.bulk.push(...Array.from({ length: 5 }, () => ({ lane: 'bulk' as const })));
    const gapEnd = s.nextFree + 30;
    assert.equal(grantsAt(gapEnd), 1);
    assert.equal(s.nextFree, gapEnd + 0.5);
    // At Telegram's own rates (25/s: 40 ms a slot) the catch-up is one interval: a late timer never doubles a slot.
    assert.equal(limitsFor(25).catchUpMs, 40);
  });

  test('routes: getUpdates takes no slot, calls that send nothing go in reply, messages carry their chat', () => {
    assert.deepEqual(routeOf('getUpdates', { timeout: 25 }, 'bulk'), { lane: null });
    assert.deepEqual(routeOf('getMe', {}, 'bulk'), { lane: 'reply' });
    assert.deepEqual(routeOf('getChat', { chat_id: 5 }, 'deletion'), { lane: 'reply' });
    assert.deepEqual(routeOf('sendChatAction', { chat_id: 5 }, 'bulk'), { lane: 'reply' });
    assert.deepEqual(routeOf('copyMessage', { chat_id: 5, from_chat_id: -100 }, 'bulk'), { lane: 'bulk', chat: 5 });
    assert.deepEqual(routeOf('sendMessage', { chat_id: '-1001' }, 'deletion'), { lane: 'deletion', chat: -1001 });
    assert.deepEqual(routeOf('sendMessage', { chat_id: '@news' }, 'reply'), { lane: 'reply', chat: '@news' });
    assert.deepEqual(routeOf('editMessageText', { inline_message_id: 'x' }, 'bulk'), { lane: 'bulk' });
    // Deleting is not a message sent: no per-chat spacing (Telegram documents none for it).
    assert.deepEqual(routeOf('deleteMessages', { chat_id: 5 }, 'deletion'), { lane: 'deletion' });
    assert.deepEqual(routeOf('deleteMessage', { chat_id: 5 }, 'bulk'), { lane: 'bulk' });
  });
});

describe('the throttle on a fake clock', () => {
  test('a reply behind a bulk backlog of 100 goes at the next slot; bulk progresses while the others are idle', async () => {
    const w = world(10);
    for (let i = 0; i < 100; i++) w.ask('bulk', 1000 + i);
    await runUntil(w.clock, () => w.log.length === 5);
    assert.equal(
      w.count((g) => g.lane === 'bulk'),
      5,
      'bulk goes while nothing else waits',
    );
    w.ask('reply', 1);
    await runUntil(w.clock, () => w.log.length === 7);
    assert.deepEqual(
      w.log.map((g) => g.lane),
      ['bulk', 'bulk', 'bulk', 'bulk', 'bulk', 'reply', 'bulk'],
    );
    assert.deepEqual(
      w.log.map((g) => g.at),
      [0, 100, 200, 300, 400, 500, 600],
      'evenly spaced at the rate',
    );
  });

  test('replies, then deletions, then bulk; each lane first come, first served', async () => {
    const w = world(10);
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push(w.ask('bulk'), w.ask('deletion'), w.ask('reply'));
    await runUntil(w.clock, () => w.log.length === 12);
    // The first bulk call found the slot free; every later slot went by lane.
    assert.deepEqual(
      w.log.map((g) => g.lane),
      [
        'bulk',
        'reply',
        'reply',
        'reply',
        'reply',
        'deletion',
        'deletion',
        'deletion',
        'deletion',
        'bulk',
        'bulk',
        'bulk',
      ],
    );
    const inLaneOrder = (lane: Lane) => w.log.filter((g) => g.lane === lane).map((g) => g.id);
    for (const lane of ['reply', 'deletion', 'bulk'] as const)
      assert.deepEqual(
        inLaneOrder(lane),
        [...inLaneOrder(lane)].sort((a, b) => a - b),
      );
  });

  test('bulk is not starved by a steady trickle of replies below the rate, and each reply goes at the next slot', async () => {
    const w = world(10);
    for (let i = 0; i < 200; i++) w.ask('bulk', 5000 + i);
    const asked: number[] = [];
    for (let i = 0; i < 50; i++)
      w.clock.timeout(i * 200 + 50, () => {
        asked.push(w.clock.now().getTime() - T0);
        w.ask('reply', 100 + i);
      });
    await w.after(10_000);
    const replies = w.log.filter((g) => g.lane === 'reply');
    assert.equal(replies.length, 50);
    replies.forEach((g, i) => assert.equal(g.at, asked[i]! + 50, `reply ${i} at the first slot after it asked`));
    assert.equal(
      w.count((g) => g.lane === 'bulk' && g.at < 10_000),
      50,
      'bulk took every slot the replies left',
    );
  });

  test('two messages to one private chat are at least 1 s apart while other chats go in between', async () => {
    const w = world(10);
    w.ask('reply', 1);
    w.ask('reply', 1);
    w.ask('reply', 1);
    for (let c = 2; c <= 13; c++) w.ask('reply', c);
    await runUntil(w.clock, () => w.log.length === 15);
    const one = w.log.filter((g) => g.chat === 1).map((g) => g.at);
    assert.deepEqual(one, [0, 1000, 2000]);
    const between = w.log.filter((g) => g.at > one[0]! && g.at < one[1]!);
    assert.equal(between.length, 9, 'every slot between them went to another chat');
    assert.ok(between.every((g) => g.chat !== 1));
    // A chat waiting for its spacing in a higher lane does not hold up a lower lane either.
    const v = world(10);
    v.ask('reply', 7);
    v.ask('reply', 7);
    for (let i = 0; i < 20; i++) v.ask('bulk', 900 + i);
    await runUntil(v.clock, () => v.log.some((g) => g.lane === 'reply' && g.at > 0));
    assert.deepEqual(
      v.log.filter((g) => g.chat === 7).map((g) => g.at),
      [0, 1000],
    );
    assert.equal(
      v.count((g) => g.lane === 'bulk' && g.at < 1000),
      9,
    );
  });

  test('a group gets at most 20 messages in any 60 s; deletions in it are not spaced', async () => {
    const w = world(25);
    for (let i = 0; i < 50; i++) w.ask('bulk', -100_123);
    for (let i = 0; i < 10; i++) w.ask('deletion');
    await runUntil(w.clock, () => w.log.length === 60);
    const group = w.log.filter((g) => g.chat === -100_123).map((g) => g.at);
    assert.equal(group.length, 50);
    for (let i = 0; i + 20 < group.length; i++)
      assert.ok(group[i + 20]! - group[i]! >= 60_000, `messages ${i}..${i + 20} span a minute`);
    assert.equal(
      w.count((g) => g.lane === 'deletion' && g.at < 1000),
      10,
      'the deletions went in the first second',
    );
  });

  test('after a 429 in the bulk lane, bulk halves and recovers step by step; replies keep the rate after the shared pause', async () => {
    const w = world(20);
    for (let i = 0; i < 2000; i++) w.ask('bulk', 10_000 + i);
    await w.after(3000);
    const perSecond = (from: number, lane: Lane) =>
      w.count((g) => g.lane === lane && g.at >= from && g.at < from + 1000);
    assert.equal(perSecond(1000, 'bulk'), 20);
    // A bulk call let out at 3 s met a 429 (retry_after 1 s).
    const slowedAt = w.clock.now().getTime();
    w.t.pause(1000);
    w.t.slowDown('bulk', slowedAt);
    await w.after(4000);
    assert.equal(
      w.count((g) => g.at > 3000 && g.at < 4000),
      0,
      'nothing during the pause',
    );
    await w.after(9000);
    for (let s = 4000; s < 9000; s += 1000) assert.equal(perSecond(s, 'bulk'), 10, `halved in second ${s / 1000}`);
    // Replies during the slow-down go at the shared rate: 20 asked at once take the next 20 slots, 50 ms apart.
    const before = w.log.length;
    for (let i = 0; i < 20; i++) w.ask('reply', 300 + i);
    await w.after(11_000);
    const next = w.log.slice(before, before + 20);
    assert.ok(
      next.every((g) => g.lane === 'reply'),
      'the replies took every slot',
    );
    assert.equal(next[19]!.at - next[0]!.at, 19 * 50, 'not slowed with bulk');
    await w.after(63_000);
    // Ten-second windows from the slow-down: 10/s (the pause in the first), then ×1.25 a step, back to 20/s.
    const windows = [0, 1, 2, 3, 4].map((k) =>
      w.count((g) => g.lane === 'bulk' && g.at >= 13_000 + k * 10_000 && g.at < 23_000 + k * 10_000),
    );
    assert.ok(windows[0]! >= 124 && windows[0]! <= 126, `12.5/s in the second window: ${windows.join(', ')}`);
    for (let k = 1; k < 4; k++)
      assert.ok(windows[k]! > windows[k - 1]!, `recovering step by step: ${windows.join(', ')}`);
    assert.equal(windows[4], 200, 'back at the shared rate');
  });
});

describe('the client routes calls to their lanes', () => {
  /** An Api whose transport answers at once (or with `answer`'s response), instrumented on a fake clock. */
  function fakeApi(rate: number, answer?: (method: string, n: number) => Record<string, unknown> | null) {
    const clock = new FakeClock(T0);
    const api = new Api<RawApi>('1:fake');
    const sent: { method: string; at: number; chat: unknown }[] = [];
    // Installed first, so innermost: it stands for HTTP, under the throttle and the retries.
    api.config.use(async (_prev, method, payload) => {
      sent.push({
        method,
        at: clock.now().getTime() - T0,
        chat: (payload as { chat_id?: unknown } | undefined)?.chat_id,
      });
      const custom = answer?.(method, sent.length);
      if (custom) return custom as never;
      const result = method === 'getUpdates' ? [] : method === 'getMe' ? { id: 1, username: 'b' } : true;
      return { ok: true, result } as never;
    });
    instrument(api, { rate, clock, retries: 0 });
    return { clock, api, sent };
  }

  test('getUpdates and getMe are not held behind bulk work; deletions go before it', async () => {
    const { clock, api, sent } = fakeApi(5);
    const bulk = inLane('bulk', () =>
      Promise.all(Array.from({ length: 30 }, (_, i) => api.deleteMessage(-100_777, i + 1))),
    );
    await new Promise((r) => setImmediate(r));
    await api.getUpdates({ timeout: 0 });
    assert.equal(clock.now().getTime(), T0, 'the long poll went without waiting for a slot');
    assert.ok(sent.filter((s) => s.method === 'deleteMessage').length <= 1, 'while the bulk calls wait');
    const me = inLane('bulk', () => api.getMe());
    const del = inLane('deletion', () => api.deleteMessages(42, [1, 2]));
    await runUntil(clock, () => sent.length >= 4);
    await Promise.all([me, del]);
    assert.deepEqual(
      sent.filter((s) => s.method !== 'getUpdates').map((s) => s.method),
      ['deleteMessage', 'getMe', 'deleteMessages'],
      'getMe in the reply lane, then the deletion, before the 29 bulk calls left',
    );
    await runUntil(clock, () => sent.length === 33);
    await bulk;
  });

  test("a 429 met in the bulk lane pauses everyone and halves bulk's pace", async () => {
    const { clock, api, sent } = fakeApi(10, (method, n) =>
      n === 10
        ? { ok: false, error_code: 429, description: 'Too Many Requests', parameters: { retry_after: 1 } }
        : null,
    );
    const chats = Array.from({ length: 60 }, (_, i) => 1000 + i);
    const bulk = inLane('bulk', () =>
      Promise.all(chats.map((c) => api.sendMessage(c, 'news').catch((e: unknown) => e))),
    );
    await runUntil(clock, () => sent.length === 40);
    const at = sent.map((s) => s.at);
    assert.equal(at[9], 900, 'the 10th call met the 429');
    assert.equal(at[10], 1900, 'the next waited out retry_after');
    assert.deepEqual(
      at.slice(10, 15).map((t, i, a) => (i ? t - a[i - 1]! : 0)),
      [0, 200, 200, 200, 200],
      'then at half the rate',
    );
    await runUntil(clock, () => sent.length === 60);
    await bulk;
  });
});
