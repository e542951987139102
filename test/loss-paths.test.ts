/**
 * The loss paths of issue 9, part 1: a broadcast's deadline while it is sent, a storm of "chat not found" as a setup
 * fault, a recipient's "chat not found" after a copy worked, and ownership checked where work completes. Each test
 * fails on the code before these fixes.
 */
import { describe, test } from 'node:test';
import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';
import assert from 'node:assert/strict';
import { FakeClock, systemClock, type Clock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { BroadcastSender } from '../src/bot/broadcast-sender.ts';
import { deleteDueMessages, type MessageDeleterDeps } from '../src/jobs/message-deleter.ts';
import { deleteExpiredBroadcasts } from '../src/jobs/broadcast-deleter.ts';
import * as broadcasts from '../src/store/broadcasts.ts';
import * as deletions from '../src/store/deletions.ts';
import type { Store } from '../src/store/db.ts';
import { SetupFaultError } from '../src/telegram/errors.ts';
import { callsNotAfter, NotSentError } from '../src/telegram/client.ts';
import { BACKENDS, withTestDb, type Backend } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { until } from './support/wait.ts';
import { runContext } from './support/context.ts';
import { addUsers, adminBroadcast, blockedUsers } from './support/world.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();
const HOUR = 3600_000;
const ADMIN = 4242;

const ctx = (clock: Clock) => runContext(clock, logger);

async function withWorld(
  backend: Backend,
  opts: { strictChats?: boolean },
  fn: (emu: BotApiEmulator, store: Store) => Promise<void>,
): Promise<void> {
  const emu = await BotApiEmulator.start({ now: () => T0, ...opts });
  try {
    await withTestDb(backend, (store) => fn(emu, store));
  } finally {
    await emu.close();
  }
}

/** A broadcast in `sending` from the admin's chat to whoever is in `users`, due at `deleteAt`. */
const sendingBroadcast = (emu: BotApiEmulator, store: Store, deleteAt: number) =>
  adminBroadcast(emu, store, { admin: ADMIN, createdAt: T0, deleteAt });

const broadcastRow = (store: Store, id: number) =>
  store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

function sender(emu: BotApiEmulator, store: Store, clock: Clock, owner = 'sender-a', leaseMs?: number) {
  const { api } = emulatorTelegram(emu);
  return new BroadcastSender({
    store,
    api,
    clock,
    logger,
    owner,
    timezone: 'UTC',
    pollMs: 20,
    ...(leaseMs ? { leaseMs } : {}),
  });
}

/** Runs a sender until the broadcast is `sent` (done, given up, or stopped by its deadline). */
async function sendAll(emu: BotApiEmulator, store: Store, id: number, clock: Clock = new FakeClock(T0)): Promise<void> {
  const s = sender(emu, store, clock);
  s.start();
  try {
    await until(async () => (await broadcastRow(store, id)).status === 'sent', 'the sending to finish');
  } finally {
    await s.stop();
  }
}

for (const backend of BACKENDS) {
  describe(`${backend}: a broadcast's deadline while it is sent`, () => {
    test('the sending stops at delete_at: nobody gets it later, the admin is told how many it reached', async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const users = Array.from({ length: 10 }, (_, i) => 50_000 + i);
        await addUsers(store, users, T0);
        const id = await sendingBroadcast(emu, store, T0 + HOUR);
        // Time passes the deadline once the 4th copy is made (a slow send: 100,000 users at 25/s).
        const clock: Clock = {
          ...systemClock,
          now: () => new Date(T0 + (emu.callsOf('copyMessage').length >= 4 ? HOUR : 0)),
        };
        await sendAll(emu, store, id, clock);
        // Copies go out side by side: those already let out when the 4th arrived may still arrive; none is let
        // out after (callsNotAfter checks each as it leaves the throttle), so the sending stops well short of all.
        const copies = emu.callsOf('copyMessage').length;
        assert.ok(copies >= 4 && copies < 10, `no copy after delete_at (${copies} copies)`);
        const b = await broadcastRow(store, id);
        assert.equal(Number(b.sent_count), copies, 'every copy made counts');
        const edits = emu.callsOf('editMessageText').map((c) => String(c.params.text));
        assert.match(edits.at(-1) ?? '', new RegExp(`reached its deletion time.*reached ${copies} users`, 's'));
        const recorded = await store.db.selectFrom('broadcast_messages').select(['chat_id', 'message_id']).execute();
        assert.equal(recorded.length, copies, 'every copy made is recorded for deletion');
        assert.ok(recorded.every((r) => Number(r.message_id) > 0));
      });
    });

    test('the deleter takes a broadcast still sending at its delete_at and deletes what was sent', async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const id = await sendingBroadcast(emu, store, T0 - 1000);
        const chats = [60_001, 60_002, 60_003];
        for (const c of chats) await broadcasts.addRecipient(store, id, c, emu.addMessage(c, { text: 'News' }));
        const telegram = emulatorTelegram(emu);
        const s = await deleteExpiredBroadcasts({ store, telegram, owner: 'd' }, ctx(new FakeClock(T0)));
        assert.equal(s.messages_deleted, 3);
        for (const c of chats) assert.deepEqual(emu.messages(c), [], `chat ${c} is clean`);
        assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
      });
    });

    test('a broadcast whose delete_at passed is never taken for sending; one still before it is', async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const late = await sendingBroadcast(emu, store, T0 - 1);
        assert.equal(await broadcasts.claimSendingBroadcast(store, 'x', T0, 60_000), undefined);
        await store.db
          .updateTable('broadcasts')
          .set({ delete_at: T0 + 1 })
          .where('id', '=', late)
          .execute();
        assert.equal(Number((await broadcasts.claimSendingBroadcast(store, 'x', T0, 60_000))?.id), late);
      });
    });

    test('a call whose deadline passed while it waited for the throttle is not sent', async () => {
      const emu = await BotApiEmulator.start();
      try {
        const { api } = emulatorTelegram(emu);
        await assert.rejects(
          callsNotAfter(
            () => true,
            () => api.sendMessage(1, 'late'),
          ),
          (e: unknown) => e instanceof NotSentError,
        );
        assert.equal(emu.callsOf('sendMessage').length, 0);
        await callsNotAfter(
          () => false,
          () => api.sendMessage(1, 'on time'),
        );
        assert.equal(emu.callsOf('sendMessage').length, 1);
      } finally {
        await emu.close();
      }
    });
  });

  describe(`${backend}: a storm of "chat not found" is a setup fault`, () => {
    const chats = Array.from({ length: 25 }, (_, i) => 70_000 + i);

    test('message deleter: 20 chats in a row stop the run; rows and users stay exactly as they were', async () => {
      await withWorld(backend, { strictChats: true }, async (emu, store) => {
        await addUsers(store, chats, T0);
        for (const c of chats) {
          await deletions.insertDeletion(store, {
            userId: c,
            chatId: c,
            messageIds: [1, 2],
            deleteAt: T0 - 1000,
            uniqueId: 'f',
            createdAt: T0 - HOUR,
          });
        }
        const before = await store.db.selectFrom('pending_deletions').selectAll().orderBy('id').execute();
        // Batches of 7: the storm spans batches, and the first batches' held rows must stay untouched too.
        const deps: MessageDeleterDeps = {
          store,
          telegram: emulatorTelegram(emu),
          owner: 'a',
          concurrency: 4,
          batchSize: 7,
        };
        await assert.rejects(deleteDueMessages(deps, ctx(new FakeClock(T0))), (e: unknown) => {
          assert.ok(e instanceof SetupFaultError);
          assert.match(e.message, /BOT_TOKEN/);
          assert.match(e.message, /BOT_API_ROOT/);
          return true;
        });
        const after = await store.db.selectFrom('pending_deletions').selectAll().orderBy('id').execute();
        assert.deepEqual(after, before, 'no row removed, no attempt counted, no claim left');
        assert.deepEqual(await blockedUsers(store), [], 'no user marked blocked');
        assert.ok(emu.callsOf('deleteMessages').length < chats.length, 'the run stopped at the storm');
      });
    });

    test('message deleter: a sporadic "chat not found" keeps its meaning (row dropped, user marked)', async () => {
      await withWorld(backend, { strictChats: true }, async (emu, store) => {
        const live = chats.slice(0, 10);
        const gone = [79_001, 79_002];
        await addUsers(store, [...live, ...gone], T0);
        for (const c of [...gone, ...live]) {
          const ids = live.includes(c) ? [emu.addMessage(c, { text: 'file' })] : [1];
          await deletions.insertDeletion(store, {
            userId: c,
            chatId: c,
            messageIds: ids,
            deleteAt: T0 - 1000,
            createdAt: T0 - HOUR,
          });
        }
        const deps: MessageDeleterDeps = { store, telegram: emulatorTelegram(emu), owner: 'a', concurrency: 1 };
        const s = await deleteDueMessages(deps, ctx(new FakeClock(T0)));
        assert.equal(s.unreachable, 2);
        assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
        assert.deepEqual((await blockedUsers(store)).sort(), gone);
      });
    });

    test('broadcast deleter: 20 recipients in a row stop the run; recipients and users stay', async () => {
      await withWorld(backend, { strictChats: true }, async (emu, store) => {
        await addUsers(store, chats, T0);
        const id = await sendingBroadcast(emu, store, T0 - 1000);
        await broadcasts.finishSending(store, id);
        for (const c of chats) await broadcasts.addRecipient(store, id, c, 5);
        const telegram = emulatorTelegram(emu);
        await assert.rejects(
          deleteExpiredBroadcasts({ store, telegram, owner: 'd', concurrency: 4 }, ctx(new FakeClock(T0))),
          SetupFaultError,
        );
        const left = await store.db.selectFrom('broadcast_messages').select('chat_id').execute();
        assert.equal(left.length, chats.length, 'every recipient kept');
        assert.deepEqual(await blockedUsers(store), []);
        const b = await broadcastRow(store, id);
        assert.equal(b.claimed_by, null, 'released');
        assert.equal(b.claim_expires_at, null, 'not held for the minute of a transient failure: the job backs off');
      });
    });

    test('sender: after a copy worked, 20 users in a row answering "chat not found" pause it; nobody marked', async () => {
      await withWorld(backend, { strictChats: true }, async (emu, store) => {
        const first = 60_000; // before the storm's users in id order
        emu.addChat(first);
        await addUsers(store, [first, ...chats], T0);
        const id = await sendingBroadcast(emu, store, T0 + HOUR);
        const s = sender(emu, store, new FakeClock(T0));
        s.start();
        try {
          await until(() => emu.callsOf('copyMessage').length >= 21, 'the storm');
          await until(async () => (await broadcastRow(store, id)).claimed_by === null, 'the pass to end');
        } finally {
          await s.stop();
        }
        const b = await broadcastRow(store, id);
        assert.equal(b.status, 'sending', 'not given up: it resumes once chats answer');
        assert.deepEqual([Number(b.send_cursor), Number(b.sent_count), Number(b.failed_count)], [first, 1, 0]);
        assert.deepEqual(await blockedUsers(store), []);
        const fault = await store.db.selectFrom('job_faults').selectAll().execute();
        assert.equal(fault.length, 1);
        assert.match(fault[0]!.message, /BOT_TOKEN/);
      });
    });
  });

  describe(`${backend}: a recipient's "chat not found" after a copy worked`, () => {
    test("is the recipient's: marked, and the others still get it (three at the head of a resumed pass)", async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const users = Array.from({ length: 10 }, (_, i) => 90_000 + i);
        await addUsers(store, users, T0);
        const id = await sendingBroadcast(emu, store, T0 + HOUR);
        // An earlier pass reached the first user; this pass starts at three users whose chats are gone.
        await broadcasts.addRecipient(store, id, users[0]!, emu.addMessage(users[0]!, { text: 'News' }));
        await store.db
          .updateTable('broadcasts')
          .set({ send_cursor: users[0]!, sent_count: 1 })
          .where('id', '=', id)
          .execute();
        for (const u of users.slice(1, 4)) {
          emu.failChat(u, { kind: 'status', code: 400, description: 'Bad Request: chat not found' });
        }
        await sendAll(emu, store, id);
        const b = await broadcastRow(store, id);
        assert.deepEqual([Number(b.sent_count), Number(b.failed_count)], [7, 3]);
        assert.deepEqual((await blockedUsers(store)).sort(), users.slice(1, 4));
      });
    });
  });

  describe(`${backend}: held "chat not found" users across a page of recipients`, () => {
    test('each is asked once and counted once, though the cursor waits behind them', async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const users = Array.from({ length: 110 }, (_, i) => 91_000 + i);
        await addUsers(store, users, T0);
        const id = await sendingBroadcast(emu, store, T0 + HOUR);
        // The last ten of the first page of 100 are gone: held until the next page's first copy works.
        const gone = users.slice(90, 100);
        for (const u of gone)
          emu.failChat(u, { kind: 'status', code: 400, description: 'Bad Request: chat not found' });
        await sendAll(emu, store, id);
        const perChat = emu.callsPerChat('copyMessage');
        assert.deepEqual(
          users.filter((u) => perChat.get(u) !== 1),
          [],
          'every user asked exactly once',
        );
        const b = await broadcastRow(store, id);
        assert.deepEqual([Number(b.sent_count), Number(b.failed_count), Number(b.send_cursor)], [100, 10, users[109]]);
        assert.deepEqual((await blockedUsers(store)).sort(), gone);
      });
    });
  });

  describe(`${backend}: the database fails mid-run`, () => {
    test('the run ends at the first row it cannot remove: no notice goes out for rows it could not finish', async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const chats = [97_001, 97_002, 97_003, 97_004, 97_005];
        for (const c of chats) {
          const ids = [emu.addMessage(c, { text: 'file' })];
          await deletions.insertDeletion(store, {
            userId: c,
            chatId: c,
            messageIds: ids,
            deleteAt: T0 - 1,
            createdAt: T0 - HOUR,
          });
        }
        // Removing a row fails from now on, as when the database goes away mid-run.
        const failing: KyselyPlugin = {
          transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
            if (args.node.kind === 'DeleteQueryNode' && JSON.stringify(args.node).includes('"pending_deletions"')) {
              throw new Error('connection terminated unexpectedly');
            }
            return args.node;
          },
          async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
            return args.result;
          },
        };
        const broken = { ...store, db: store.db.withPlugin(failing) };
        const deps: MessageDeleterDeps = { store: broken, telegram: emulatorTelegram(emu), owner: 'a', concurrency: 5 };
        await assert.rejects(deleteDueMessages(deps, ctx(new FakeClock(T0))), /connection terminated/);
        assert.equal(emu.callsOf('sendMessage').length, 1, 'one notice: the row in hand when the removal failed');
        const left = await store.db.selectFrom('pending_deletions').select(['id', 'claimed_by']).execute();
        assert.equal(left.length, 5, 'every row is still there to finish');
        assert.ok(
          left.every((r) => r.claimed_by === null),
          'and free for the next run',
        );
      });
    });
  });

  describe(`${backend}: ownership is checked where work completes`, () => {
    test('a pending deletion is removed only by the process that still holds its claim', async () => {
      await withTestDb(backend, async (store) => {
        const id = await deletions.insertDeletion(store, {
          userId: 1,
          chatId: 1,
          messageIds: [1],
          deleteAt: T0,
          createdAt: T0,
        });
        assert.equal((await deletions.claimDue(store, 'a', T0, T0, 1000, 10)).length, 1);
        // a's lease runs out; b takes the row.
        assert.equal((await deletions.claimDue(store, 'b', T0, T0 + 5000, 1000, 10)).length, 1);
        assert.equal(await deletions.removeDeletion(store, id, 'a'), false);
        assert.equal(
          (await store.db.selectFrom('pending_deletions').select('claimed_by').executeTakeFirst())?.claimed_by,
          'b',
        );
        assert.equal(await deletions.removeDeletion(store, id, 'b'), true);
      });
    });

    test("a broadcast recipient is removed and the cursor moved only under the broadcast's claim", async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const id = await sendingBroadcast(emu, store, T0 + HOUR);
        await broadcasts.addRecipient(store, id, 7, 70);
        assert.ok(await broadcasts.claimSendingBroadcast(store, 'a', T0, 1000));
        assert.ok(await broadcasts.claimSendingBroadcast(store, 'b', T0 + 5000, 1000), "b takes it after a's lease");
        assert.equal(await broadcasts.removeRecipient(store, id, 7, 'a'), false);
        assert.equal(await broadcasts.advanceSend(store, id, 'a', 7, 1, 0), false);
        const b = await broadcastRow(store, id);
        assert.deepEqual([Number(b.send_cursor), Number(b.sent_count)], [0, 0]);
        assert.equal(await broadcasts.removeRecipient(store, id, 7, 'b'), true);
      });
    });

    test('two senders never both copy a broadcast to one recipient, even when one lost its lease mid-copy', async () => {
      await withWorld(backend, {}, async (emu, store) => {
        const users = [95_000, 95_001, 95_002];
        await addUsers(store, users, T0);
        const id = await sendingBroadcast(emu, store, T0 + 10 * HOUR);
        // a's copy to the first user is made at once but answered only after b has taken the broadcast over.
        emu.failNext('copyMessage', { kind: 'slow', ms: 600 });
        const a = sender(emu, store, { ...systemClock, now: () => new Date(T0) }, 'a', 5000);
        a.start();
        await until(() => emu.callsOf('copyMessage').length === 1, 'a to ask for the first copy');
        // b's clock is past a's lease: the broadcast looks abandoned to it.
        const b = sender(emu, store, { ...systemClock, now: () => new Date(T0 + 60_000) }, 'b', 5000);
        b.start();
        try {
          await until(async () => (await broadcastRow(store, id)).status === 'sent', 'b to finish', 10_000);
          const all = () => store.db.selectFrom('broadcast_messages').select('message_id').execute();
          await until(async () => (await all()).every((r) => Number(r.message_id) > 0), "a's late copy to be recorded");
        } finally {
          await Promise.all([a.stop(), b.stop()]);
        }
        const perChat = emu.callsPerChat('copyMessage');
        assert.deepEqual(
          users.map((u) => perChat.get(u) ?? 0),
          [1, 1, 1],
          'one copy per user',
        );
        const recorded = await store.db.selectFrom('broadcast_messages').selectAll().orderBy('chat_id').execute();
        assert.deepEqual(
          recorded.map((r) => Number(r.chat_id)),
          users,
          "a's late copy is recorded too (its reservation is its own), so the deleter removes it",
        );
        assert.ok(recorded.every((r) => Number(r.message_id) > 0));
      });
    });
  });
}
