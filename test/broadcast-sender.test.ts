import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BroadcastSender,
  copiesInFlightFor,
  COPIES_IN_FLIGHT,
  type SenderOptions,
} from '../src/bot/broadcast-sender.ts';
import { FakeClock, systemClock, type Clock } from '../src/clock.ts';
import { driveUntil } from './support/clock.ts';
import { createLogger } from '../src/log.ts';
import { insertBroadcast } from '../src/store/broadcasts.ts';
import { createTelegram } from '../src/telegram/client.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS, withTestDb, type Backend } from './support/db.ts';
import { until } from './support/wait.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';

const logger = createLogger({ level: 'silent' });
const ADMIN = 4242;

/** Calls `onInsert(n)` as the n-th statement inserting into `broadcast_messages` (a reservation) is built. */
function onReservation(onInsert: (n: number) => void): KyselyPlugin {
  let n = 0;
  return {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      if (args.node.kind === 'InsertQueryNode' && JSON.stringify(args.node).includes('"broadcast_messages"'))
        onInsert(++n);
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      return args.result;
    },
  };
}

/** Ten users and a broadcast in `sending`; `sender(store)` makes a sender on this emulator. */
/**
 * Ten users, a broadcast in `sending` and a sender factory. With a fake `clock` every wait of the sender and its
 * client (back-offs, 429 pauses) runs on it, and `sendAll` moves it along.
 */
async function setup(emu: BotApiEmulator, store: Store, log = logger, clock: Clock = systemClock) {
  const users = Array.from({ length: 10 }, (_, i) => 30_000 + i);
  await store.db
    .insertInto('users')
    .values(
      users.map((u) => ({
        user_id: u,
        username: null,
        first_name: null,
        joined_at: 0,
        is_banned: 0,
        user_access_count: 0,
        blocked_at: null,
      })),
    )
    .execute();
  const source = emu.sendUserMessage({ id: ADMIN }, 'News') as { message: { message_id: number } };
  const id = await insertBroadcast(store, {
    fromChatId: ADMIN,
    messageId: source.message.message_id,
    text: 'News',
    caption: null,
    fileId: null,
    durationHours: 1,
    createdAt: Date.now(),
    progressChatId: null,
    progressMessageId: null,
  });
  // The service's own client: its retry rules are part of what is tested.
  const { api } = createTelegram({ token: emu.token, apiRoot: emu.url, rate: 0, clock });
  const sender = (s: Store, extra: Partial<Pick<SenderOptions, 'stopGraceMs' | 'api' | 'clock'>> = {}) =>
    new BroadcastSender({
      api,
      clock,
      logger: log,
      owner: 'test',
      timezone: 'UTC',
      pollMs: 50,
      store: s,
      ...extra,
    });
  const row = () => store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  /** Runs a fresh sender until the broadcast is `sent` (done or given up). */
  const sendAll = async () => {
    const s = sender(store);
    s.start();
    const sent = async () => (await row()).status === 'sent';
    try {
      if (clock instanceof FakeClock) await driveUntil(clock, sent, 'sending to finish');
      else await until(sent, 'sending to finish');
    } finally {
      await s.stop();
    }
  };
  /** Runs a fresh sender to the end, then checks everyone has exactly `copies(user)` copies and a record. */
  const finish = async (copies: (user: number) => number = () => 1) => {
    await sendAll();
    const perChat = emu.callsPerChat('copyMessage');
    assert.deepEqual([...perChat.keys()].sort(), users, 'every user was asked');
    assert.deepEqual(
      users.map((u) => perChat.get(u)),
      users.map(copies),
      'copies per user',
    );
    assert.equal(Number((await row()).sent_count), 10);
    assert.equal(
      (await store.db.selectFrom('broadcast_messages').select('chat_id').where('broadcast_id', '=', id).execute())
        .length,
      10,
    );
  };
  return { users, id, sender, row, finish, sendAll };
}

/** Runs `fn` with a fresh emulator and an empty database of `backend`, both removed afterwards. */
async function withWorld(backend: Backend, fn: (emu: BotApiEmulator, store: Store) => Promise<void>): Promise<void> {
  const emu = await BotApiEmulator.start();
  try {
    await withTestDb(backend, (store) => fn(emu, store));
  } finally {
    await emu.close();
  }
}

test('copies in flight follow the rate: a sixth of it (round trips up to ~170 ms), 8 to 500, 32 when unlimited', () => {
  assert.deepEqual([0, 25, 30, 100, 1000, 5000, Infinity].map(copiesInFlightFor), [
    COPIES_IN_FLIGHT,
    8,
    8,
    17,
    167,
    500,
    COPIES_IN_FLIGHT,
  ]);
});

for (const backend of BACKENDS) {
  describe(`${backend}: the broadcast sender stopped mid-way`, () => {
    test('a user the sender never asked is asked on the next start, not counted as sent', async () => {
      await withWorld(backend, async (emu, store) => {
        const { users, sender, row, finish } = await setup(emu, store);
        // Stop the sender while it reserves the 5th user: the moment between "this user is next" and asking
        // Telegram, where a stop used to count the user as sent without a copy.
        let first: BroadcastSender | null = null;
        let stopping: Promise<void> | null = null;
        first = sender({
          ...store,
          db: store.db.withPlugin(
            onReservation((n) => {
              if (n === 5) stopping = first!.stop();
            }),
          ),
        });
        first.start();
        await until(() => stopping !== null, 'the 5th reservation');
        // Assigned in the plugin above, which TypeScript's flow analysis does not see: it would still read `null` here.
        await (stopping as Promise<void> | null);
        // Copies go out side by side: which of the users reserved before the stop got theirs depends on timing.
        // What must hold is the same whatever it was.
        const b = await row();
        assert.equal(b.status, 'sending');
        const copied = emu.callsOf('copyMessage').map((c) => Number(c.params.chat_id));
        assert.ok(copied.length >= 1 && copied.length < 10, `the stop came mid-way (${copied.length} copies)`);
        const recs = await store.db.selectFrom('broadcast_messages').select(['chat_id', 'message_id']).execute();
        assert.deepEqual(
          recs.filter((r) => Number(r.message_id) === 0),
          [],
          'no reservation left behind: a user never asked is asked on the next start',
        );
        assert.deepEqual(
          recs.map((r) => Number(r.chat_id)).sort(),
          [...copied].sort(),
          'every copy made is recorded for the deleter',
        );
        const counted = Number(b.sent_count);
        assert.ok(counted <= copied.length, 'only users with a copy count as sent');
        if (counted > 0) {
          assert.equal(Number(b.send_cursor), users[counted - 1], 'the cursor stays on the last user counted');
          assert.deepEqual(
            users.slice(0, counted).filter((u) => !copied.includes(u)),
            [],
            'every user the cursor passed has a copy',
          );
        }
        await finish();
      });
    });

    test('a stop waits for a copy already asked of Telegram and records it: not sent twice, not left undeleted', async () => {
      await withWorld(backend, async (emu, store) => {
        const { users, sender, row, finish } = await setup(emu, store);
        // Telegram makes the first copy at once but its answer takes 400 ms; the stop comes in between.
        emu.failNext('copyMessage', { kind: 'slow', ms: 400 });
        const first = sender(store);
        first.start();
        await until(() => emu.callsOf('copyMessage').length === 1, 'the first copy to be asked');
        await first.stop();
        const b = await row();
        assert.equal(Number(b.sent_count), 1);
        assert.equal(Number(b.send_cursor), users[0]);
        const rec = await store.db.selectFrom('broadcast_messages').selectAll().execute();
        assert.deepEqual(
          rec.map((r) => [Number(r.chat_id), Number(r.message_id)]),
          [[users[0], emu.messages(users[0]!).find((m) => m.text === 'News')!.message_id]],
          'the copy is recorded for the deleter',
        );
        await finish();
      });
    });

    test('a copy that hangs past the grace is cut, logged with its chat, and asked again on the next start', async () => {
      const lines: string[] = [];
      await withWorld(backend, async (emu, store) => {
        const log = createLogger({
          level: 'info',
          destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }),
        });
        const { users, sender, row, finish } = await setup(emu, store, log);
        emu.failNext('copyMessage', { kind: 'timeout' });
        const first = sender(store, { stopGraceMs: 200 });
        first.start();
        await until(() => emu.callsOf('copyMessage').length === 1, 'the first copy to be asked');
        await first.stop();
        const b = await row();
        assert.equal(Number(b.sent_count), 0);
        assert.equal(Number(b.send_cursor), 0, 'the cursor stays before the user whose copy is unknown');
        assert.ok(
          lines.some((l) => l.includes(`chat ${users[0]}`) && /"level":50/.test(l)),
          'an error names the chat',
        );
        // The first copy never reached the emulator's store (it hung before the work): asked again, once more.
        await finish((u) => (u === users[0] ? 2 : 1));
      });
    });

    test('a source the bot cannot read stops the broadcast after three in a row, and marks nobody blocked', async () => {
      await withWorld(backend, async (emu, store) => {
        const { row, sendAll } = await setup(emu, store);
        emu.failNext('copyMessage', { kind: 'status', code: 400, description: 'Bad Request: chat not found' }, 100);
        await sendAll();
        assert.equal(emu.callsOf('copyMessage').length, 3, 'three tries, not one per user');
        const b = await row();
        assert.deepEqual([Number(b.sent_count), Number(b.failed_count)], [0, 3]);
        const blocked = await store.db
          .selectFrom('users')
          .select('user_id')
          .where('blocked_at', 'is not', null)
          .execute();
        assert.deepEqual(blocked, [], "the source's fault is nobody's block");
      });
    });

    test('one recipient who blocked the bot is marked; the others still get it', async () => {
      await withWorld(backend, async (emu, store) => {
        const { users, row, sendAll } = await setup(emu, store);
        emu.blockUser(users[2]!);
        await sendAll();
        const b = await row();
        assert.deepEqual([Number(b.sent_count), Number(b.failed_count)], [9, 1]);
        const blocked = await store.db
          .selectFrom('users')
          .select('user_id')
          .where('blocked_at', 'is not', null)
          .execute();
        assert.deepEqual(
          blocked.map((r) => Number(r.user_id)),
          [users[2]],
        );
      });
    });

    test('a 5xx on a copy is not asked again (the copy may exist); a 429 is, and arrives once', async () => {
      await withWorld(backend, async (emu, store) => {
        // The 429s' pauses and the sender's retry wait on a clock the test moves.
        const { users, row, sendAll } = await setup(emu, store, logger, new FakeClock(Date.now()));
        emu.failChat(users[1]!, { kind: 'status', code: 502, description: 'Bad Gateway' });
        emu.failNext(
          'copyMessage',
          { kind: 'status', code: 429, description: 'Too Many Requests: retry after 1', retryAfter: 1 },
          3,
        );
        await sendAll();
        assert.equal(
          emu.callsPerChat('copyMessage').get(users[1]!),
          1,
          'the 502 was neither retried by the client nor by the sender',
        );
        const b = await row();
        assert.deepEqual([Number(b.sent_count), Number(b.failed_count)], [9, 1]);
        assert.equal(
          emu.messages(users[0]!).filter((m) => m.text === 'News').length,
          1,
          'the 429s were retried and it arrived once',
        );
      });
    });
  });
}

/** A port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  return port;
}

/** Opens `port` and forwards every request to `target` (Telegram coming back after an outage). */
async function forward(port: number, target: string): Promise<http.Server> {
  const to = new URL(target);
  const server = http.createServer((req, res) => {
    const fwd = http.request(
      { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return server;
}

test('an outage (Telegram unreachable) delays a broadcast and fails nobody', async () => {
  await withWorld('sqlite', async (emu, store) => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'error',
      destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }),
    });
    const { users, sender, row } = await setup(emu, store, log);
    const port = await freePort();
    // The sender's back-offs run on a fake clock the test moves: the outage lasts as long as the test says.
    const clock = new FakeClock(Date.now());
    const { api } = createTelegram({ token: emu.token, apiRoot: `http://127.0.0.1:${port}`, rate: 0, clock });
    const s = sender(store, { api, clock });
    let telegram: http.Server | null = null;
    s.start();
    try {
      await driveUntil(
        clock,
        () => lines.some((l) => /not taking copies/.test(l)),
        'the sender to end a pass on refused connections',
      );
      const during = await row();
      assert.deepEqual(
        [during.status, Number(during.sent_count), Number(during.failed_count), Number(during.send_cursor)],
        ['sending', 0, 0, 0],
        'nobody failed, nobody skipped',
      );
      telegram = await forward(port, emu.url);
      await driveUntil(clock, async () => (await row()).status === 'sent', 'sending to finish once Telegram is back');
    } finally {
      await s.stop();
      telegram?.closeAllConnections();
      await new Promise((r) => (telegram ? telegram.close(r) : r(null)));
    }
    const b = await row();
    assert.deepEqual([Number(b.sent_count), Number(b.failed_count)], [10, 0]);
    const perChat = emu.callsPerChat('copyMessage');
    assert.deepEqual(
      users.map((u) => perChat.get(u)),
      users.map(() => 1),
      'everyone got it once',
    );
  });
});

/** Counts the sender's looks for a broadcast to send (a select from `broadcasts`). */
function onClaimLook(onLook: () => void): KyselyPlugin {
  return {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes('"broadcasts"')) onLook();
      return args.node;
    },
    async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      return args.result;
    },
  };
}

for (const backend of BACKENDS) {
  test(`${backend}: an idle sender looks again only after a write, a kick, or a minute`, async () => {
    await withWorld(backend, async (emu, store) => {
      let looks = 0;
      const clock = new FakeClock('2026-12-06T10:00:00Z');
      const { api } = createTelegram({ token: emu.token, apiRoot: emu.url, rate: 0, clock });
      const counted = { ...store, db: store.db.withPlugin(onClaimLook(() => looks++)) };
      const s = new BroadcastSender({ api, clock, logger, owner: 't', timezone: 'UTC', pollMs: 5000, store: counted });
      // Lets 5 s pass and waits until the sender waits again (its next pause armed 5 s on).
      const step = async () => {
        const next = clock.now().getTime() + 10_000;
        clock.advance(5000);
        await until(() => clock.nextAt() === next, 'the sender to wait again');
      };
      s.start();
      try {
        await until(() => looks === 1 && clock.nextAt() !== null, 'the first look');
        for (let i = 0; i < 5; i++) await step();
        assert.equal(looks, 1, 'nothing written for 25 s: no new look');
        // A broadcast already sent: written (one transaction: one change, one NOTIFY), but nothing to send.
        await store.db.transaction().execute(async (trx) => {
          const id = await insertBroadcast(
            { ...store, db: trx },
            {
              fromChatId: ADMIN,
              messageId: 1,
              text: 'News',
              caption: null,
              fileId: null,
              durationHours: 1,
              createdAt: clock.now().getTime(),
              progressChatId: null,
              progressMessageId: null,
            },
          );
          await trx.updateTable('broadcasts').set({ status: 'sent' }).where('id', '=', id).execute();
        });
        await until(async () => (await step(), looks === 2), 'a look after the write');
        await step();
        assert.equal(looks, 2, 'one look per write');
        s.kick();
        await until(() => looks === 3, 'a look when kicked');
        // A minute without writes: one look anyway (a claim that ran out is found then).
        for (let i = 0; i < 13 && looks === 3; i++) await step();
        assert.equal(looks, 4, 'a look within a minute');
      } finally {
        await s.stop();
      }
    });
  });
}
