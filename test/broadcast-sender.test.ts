import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api } from 'grammy';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { BroadcastSender } from '../src/bot/broadcast-sender.ts';
import { systemClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { insertBroadcast } from '../src/store/broadcasts.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS, createTestDb } from './support/db.ts';
import { until } from './support/wait.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';

const logger = createLogger({ level: 'silent' });
const ADMIN = 4242;

/** Calls `onSelect(n)` as the n-th query reading `broadcast_messages` is built, before it runs. */
function onRecipientLookup(onSelect: (n: number) => void): KyselyPlugin {
  let n = 0;
  return {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes('"broadcast_messages"')) onSelect(++n);
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      return args.result;
    },
  };
}

for (const backend of BACKENDS) {
  describe(`${backend}: the broadcast sender stopped between users`, () => {
    test('a user the sender never asked is asked on the next start, not counted as sent', async () => {
      const emu = await BotApiEmulator.start();
      const tdb = await createTestDb(backend);
      try {
        const store = await tdb.open();
        const users = Array.from({ length: 10 }, (_, i) => 30_000 + i);
        await store.db.insertInto('users').values(users.map((u) => ({ user_id: u, username: null, first_name: null, joined_at: 0, is_banned: 0, user_access_count: 0, blocked_at: null }))).execute();
        const source = emu.sendUserMessage({ id: ADMIN }, 'News') as { message: { message_id: number } };
        const id = await insertBroadcast(store, {
          fromChatId: ADMIN, messageId: source.message.message_id, text: 'News', caption: null, fileId: null, durationHours: 1,
          createdAt: Date.now(), progressChatId: null, progressMessageId: null,
        });
        const api = new Api(emu.token, { apiRoot: emu.url });
        const options = { api, clock: systemClock, logger, owner: 'test', timezone: 'UTC', pollMs: 50 };

        // Stop the sender while it looks up whether the 5th user already has a copy: the moment between "this user
        // is next" and asking Telegram, where a stop used to count the user as sent without a copy.
        let first: BroadcastSender | null = null;
        let stopping: Promise<void> | null = null;
        const plugged: Store = { ...store, db: store.db.withPlugin(onRecipientLookup((n) => { if (n === 5) stopping = first!.stop(); })) };
        first = new BroadcastSender({ ...options, store: plugged });
        first.start();
        await until(() => stopping !== null, 'the 5th recipient lookup');
        await stopping;
        const b = await store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        assert.equal(b.status, 'sending');
        assert.equal(Number(b.sent_count), 4, 'only the four users who got a copy count as sent');
        assert.equal(Number(b.send_cursor), users[3], 'the cursor stays on the last user with a copy');
        assert.equal(emu.callsOf('copyMessage').length, 4);

        const second = new BroadcastSender({ ...options, store });
        second.start();
        try {
          await until(async () => (await store.db.selectFrom('broadcasts').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status === 'sent', 'sending to finish');
        } finally {
          await second.stop();
        }
        const perChat = new Map<number, number>();
        for (const c of emu.callsOf('copyMessage')) perChat.set(Number(c.params.chat_id), (perChat.get(Number(c.params.chat_id)) ?? 0) + 1);
        assert.deepEqual([...perChat.keys()].sort(), users, 'every user was asked');
        assert.ok([...perChat.values()].every((n) => n === 1), 'nobody got it twice');
        const done = await store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        assert.equal(Number(done.sent_count), 10);
        assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').where('broadcast_id', '=', id).execute()).length, 10);
      } finally {
        await tdb.drop();
        await emu.close();
      }
    });
  });
}
