/**
 * The message deleter works a chat's due rows together: their ids packed into as few deleteMessages calls as fit,
 * one "deleted" notice for up to 10 rows (a button per file), the rows removed with it; outcomes stay per row.
 */
import { beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { deleteDueMessages, type MessageDeleterDeps } from '../src/jobs/message-deleter.ts';
import {
  DEFAULT_DELETED_NOTICE,
  defaultNoticeFor,
  NOTICE_ROWS,
  noticeGroups,
  noticeMarkup,
  packDeletes,
} from '../src/jobs/deleted-notice.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { setSetting } from '../src/store/settings.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS } from './support/db.ts';
import { deleterWorld } from './support/deleter-world.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { runContext } from './support/context.ts';
import { noticeRows } from './support/deliveries.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-12-06T10:00:00Z').getTime();
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('deleted-notice (pure)', () => {
  test('packDeletes keeps rows whole in calls of at most 100 ids, a bigger row in calls of its own', () => {
    const calls = packDeletes([range(1, 60), range(100, 30), range(200, 20), [], range(300, 250), range(600, 5)]);
    assert.deepEqual(
      calls.map((c) => [c.ids.length, c.rows]),
      [
        [90, [0, 1]],
        [20, [2]],
        [100, [4]],
        [100, [4]],
        [50, [4]],
        [5, [5]],
      ],
    );
    assert.deepEqual(calls[0]!.ids, [...range(1, 60), ...range(100, 30)]);
    assert.deepEqual(packDeletes([]), []);
  });

  test('notices stand for at most 10 rows; the default text counts the files, buttons one per distinct file', () => {
    assert.deepEqual(
      noticeGroups(range(0, 23)).map((g) => g.length),
      [NOTICE_ROWS, NOTICE_ROWS, 3],
    );
    assert.equal(defaultNoticeFor(1), DEFAULT_DELETED_NOTICE);
    assert.match(defaultNoticeFor(3), /The 3 files you received have been deleted/);
    assert.deepEqual(noticeMarkup('bot', ['a']), {
      reply_markup: { inline_keyboard: [[{ text: 'Click Here', url: 'https://t.me/bot?start=a' }]] },
    });
    assert.deepEqual(
      noticeMarkup('bot', ['a', null, 'b', 'a']).reply_markup?.inline_keyboard.map((row) => row.map((b) => b.text)),
      [['Click Here (1)'], ['Click Here (2)']],
    );
    assert.deepEqual(noticeMarkup('bot', [null, null]), {});
    assert.deepEqual(noticeMarkup(null, ['a']), {});
  });
});

for (const backend of BACKENDS) {
  describe(`message deleter, a chat's rows together, on ${backend}`, () => {
    const w = deleterWorld(backend, {
      now: T0,
      owner: 'chats',
      tables: ['pending_deletions', 'settings', 'day_counters'],
    });
    let emu: BotApiEmulator;
    let store: Store;
    let deps: MessageDeleterDeps;
    beforeEach(() => ({ emu, store, deps } = w));

    /** A due row of `n` fresh messages in `chat`; returns the messages. */
    const due = async (chat: number, n: number, o: { uniqueId?: string; notice?: boolean; at?: number } = {}) => {
      const ids = Array.from({ length: n }, () => emu.addMessage(chat, { text: 'file', sentAt: T0 - 60_000 }));
      await insertDeletion(store, {
        userId: chat,
        chatId: chat,
        messageIds: ids,
        deleteAt: o.at ?? T0 - 1000,
        uniqueId: o.uniqueId,
        notice: o.notice,
        createdAt: T0 - 60_000,
      });
      return ids;
    };
    const rowsLeft = async () => (await store.db.selectFrom('pending_deletions').select('id').execute()).length;

    test('three rows of one chat: one deleteMessages, one notice with a button per file, all rows removed', async () => {
      const ids = [
        ...(await due(81_001, 2, { uniqueId: 'fileA' })),
        ...(await due(81_001, 3, { uniqueId: 'fileB' })),
        ...(await due(81_001, 1, { uniqueId: 'fileC' })),
      ];
      const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
      assert.deepEqual(
        { rows: s.rows, messages: s.messages_deleted, notices: s.notices_sent, removed: s.removed },
        { rows: 3, messages: 6, notices: 1, removed: 3 },
      );
      assert.equal(emu.callsOf('deleteMessages').length, 1);
      assert.deepEqual(emu.callsOf('deleteMessages')[0]!.params.message_ids, ids);
      for (const m of ids) assert.equal(emu.hasMessage(81_001, m), false);
      const notices = emu.messages(81_001);
      assert.equal(notices.length, 1);
      assert.equal(notices[0]!.text, defaultNoticeFor(3));
      assert.deepEqual(noticeRows(notices[0]!), ['fileA', 'fileB', 'fileC']);
      assert.deepEqual(
        notices[0]!.reply_markup?.inline_keyboard?.map((r) => r[0]?.text),
        ['Click Here (1)', 'Click Here (2)', 'Click Here (3)'],
      );
      assert.equal(await rowsLeft(), 0);
    });

    test("12 rows of one chat take two notices (10 and 2); the admin's text is sent as set", async () => {
      await setSetting(store, 'deleted_notice_text', 'Gone. Tap to get it back.');
      for (let i = 0; i < 12; i++) await due(81_002, 1, { uniqueId: `file${i}` });
      const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
      assert.equal(s.notices_sent, 2);
      const notices = emu.messages(81_002);
      assert.deepEqual(
        notices.map((m) => [m.text, noticeRows(m, 'Gone. Tap to get it back.').length]),
        [
          ['Gone. Tap to get it back.', 10],
          ['Gone. Tap to get it back.', 2],
        ],
      );
      assert.equal(await rowsLeft(), 0);
    });

    test('silent rows go without a notice beside rows that want one; a row not yet due is left', async () => {
      await due(81_003, 2, { notice: false });
      await due(81_003, 1, { uniqueId: 'fileD' });
      const later = await due(81_003, 1, { uniqueId: 'fileE', at: T0 + 60_000 });
      const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
      assert.deepEqual([s.rows, s.messages_deleted, s.notices_sent, s.removed], [2, 3, 1, 2]);
      const notices = emu.messages(81_003).filter((m) => noticeRows(m).length > 0);
      assert.deepEqual(
        notices.map((m) => [m.text, noticeRows(m)]),
        [[DEFAULT_DELETED_NOTICE, ['fileD']]],
      );
      assert.equal(emu.hasMessage(81_003, later[0]!), true);
      assert.equal(await rowsLeft(), 1);
    });

    test('one too-old message in a shared call: asked one by one, only its row counts as failed', async () => {
      const old = emu.addMessage(81_004, { sentAt: T0 - 49 * 3600_000 });
      await insertDeletion(store, {
        userId: 81_004,
        chatId: 81_004,
        messageIds: [old],
        deleteAt: T0 - 1000,
        uniqueId: 'old',
        createdAt: T0 - 60_000,
      });
      const fresh = await due(81_004, 2, { uniqueId: 'fresh' });
      const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
      assert.deepEqual([s.undeletable, s.messages_deleted, s.notices_sent, s.removed], [1, 2, 1, 2]);
      assert.equal(emu.callsOf('deleteMessages').length, 1);
      assert.equal(emu.callsOf('deleteMessage').length, 3, 'each id of the shared call asked alone');
      for (const m of fresh) assert.equal(emu.hasMessage(81_004, m), false);
      const day = await store.db.selectFrom('day_counters').selectAll().execute();
      const sum = (k: 'deletions_done' | 'deletions_failed') => day.reduce((n, d) => n + Number(d[k]), 0);
      assert.deepEqual([sum('deletions_done'), sum('deletions_failed')], [1, 1]);
    });

    test('a failed shared notice keeps all its rows with their messages deleted; the retry sends it once', async () => {
      await due(81_005, 1, { uniqueId: 'fileF' });
      await due(81_005, 1, { uniqueId: 'fileG' });
      emu.failNext('sendMessage', { kind: 'status', code: 500, description: 'Internal Server Error' });
      const clock = new FakeClock(T0);
      const s1 = await deleteDueMessages(deps, runContext(clock, logger));
      assert.deepEqual([s1.transient, s1.notices_sent, s1.removed], [2, 0, 0]);
      const kept = await store.db.selectFrom('pending_deletions').selectAll().execute();
      assert.deepEqual(
        kept.map((r) => [r.messages_deleted, r.attempts, r.claimed_by]),
        [
          [1, 1, null],
          [1, 1, null],
        ],
      );
      emu.resetCalls();
      clock.advance(31_000);
      const s2 = await deleteDueMessages(deps, runContext(clock, logger));
      assert.deepEqual([s2.notices_sent, s2.removed], [1, 2]);
      assert.equal(emu.callsOf('deleteMessages').length, 0, 'the delete is not repeated');
      assert.equal(await rowsLeft(), 0);
    });

    test('a chat that blocked the bot: every row of it dropped at the first call, the user marked once', async () => {
      await due(81_006, 1, { uniqueId: 'h' });
      await due(81_006, 2, { uniqueId: 'i' });
      emu.blockUser(81_006);
      const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
      assert.deepEqual([s.unreachable, s.removed, s.notices_sent], [2, 2, 0]);
      assert.equal(emu.callsOf('deleteMessages').length, 1);
      assert.equal(await rowsLeft(), 0);
    });
  });
}
