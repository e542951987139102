/**
 * Paid broadcasts (issue 13, part 4): BROADCAST_PAID and BROADCAST_PAID_RATE as the environment and createJanitor's
 * options take them, the emulator's paid window apart from its free one, and a broadcast sent by the service with
 * BROADCAST_PAID on (every copy paid, past a free limit it would break) and off (no copy paid).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, GrammyError } from 'grammy';
import { ConfigError, configFromOptions, loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startService } from '../src/service.ts';
import { BotApiEmulator, type EmulatorOptions } from './support/bot-api-emulator.ts';
import { runCliHere } from './support/cli.ts';
import { withTestDb } from './support/db.ts';
import { until } from './support/wait.ts';
import { addUsers, adminBroadcast } from './support/world.ts';

const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const ADMIN = 4242;

describe('the configuration', () => {
  test('off by default, at 1000 a second; the environment and the options take the same values', () => {
    const byDefault = loadConfig({});
    assert.equal(byDefault.broadcastPaid, false);
    assert.equal(byDefault.broadcastPaidRate, 1000);
    const on = loadConfig({ BROADCAST_PAID: 'yes', BROADCAST_PAID_RATE: '200' });
    assert.deepEqual([on.broadcastPaid, on.broadcastPaidRate], [true, 200]);
    const options = configFromOptions({ broadcastPaid: true, broadcastPaidRate: 1 });
    assert.deepEqual([options.broadcastPaid, options.broadcastPaidRate], [true, 1]);
  });

  test('a bad value is refused naming the variable (or the option), with what is accepted', () => {
    const refused = (f: () => unknown, variable: string, message: RegExp) =>
      assert.throws(f, (e: unknown) => {
        assert.ok(e instanceof ConfigError, `a ConfigError, not ${String(e)}`);
        assert.equal(e.variable, variable);
        assert.match(e.message, message);
        return true;
      });
    refused(
      () => loadConfig({ BROADCAST_PAID: 'maybe' }),
      'BROADCAST_PAID',
      /^BROADCAST_PAID="maybe" is not valid: expected true or false$/,
    );
    for (const [value, why] of [
      ['0', 'at least 1'],
      ['5000', 'at most 1000'],
      ['fast', 'a whole number from 1 to 1000'],
      ['2.5', 'a whole number from 1 to 1000'],
    ] as const) {
      refused(
        () => loadConfig({ BROADCAST_PAID_RATE: value }),
        'BROADCAST_PAID_RATE',
        new RegExp(`^BROADCAST_PAID_RATE="${value}" is not valid: expected ${why}$`),
      );
    }
    refused(
      () => configFromOptions({ broadcastPaidRate: 0 }),
      'config.broadcastPaidRate',
      /^config\.broadcastPaidRate=0 is not valid: expected at least 1$/,
    );
    refused(
      () => configFromOptions({ broadcastPaid: 'true' }),
      'config.broadcastPaid',
      /^config\.broadcastPaid is not valid: expected true or false, got a string$/,
    );
  });

  test('the CLI exits 2 on a bad value, naming the variable', async () => {
    for (const [k, v] of [
      ['BROADCAST_PAID', 'maybe'],
      ['BROADCAST_PAID_RATE', '5000'],
    ] as const) {
      const r = await runCliHere(['migrate'], { [k]: v, DATABASE_URL: 'sqlite::memory:' });
      assert.equal(r.code, 2, `${k}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${k}="${v}" is not valid`));
    }
  });
});

describe('the emulator', () => {
  /** The error a call met (it must fail). */
  const failure = async (p: Promise<unknown>): Promise<GrammyError> => {
    const e = await p.then(
      () => assert.fail('the call should fail'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof GrammyError, String(e));
    return e;
  };

  /** Runs `fn` with an emulator started with `opts` and a grammY Api on it; the emulator is closed afterwards. */
  async function withEmulator(opts: EmulatorOptions, fn: (emu: BotApiEmulator, api: Api) => Promise<void>) {
    const emu = await BotApiEmulator.start(opts);
    try {
      await fn(emu, new Api(emu.token, { apiRoot: emu.url }));
    } finally {
      await emu.close();
    }
  }

  test('paid broadcast messages count in a window of their own, 429 past it, and are counted', () =>
    withEmulator({ rateLimit: 2, paidRateLimit: 3 }, async (emu, api) => {
      const paid = { allow_paid_broadcast: true };
      const source = emu.addMessage(ADMIN, { text: 'News' });
      for (let i = 0; i < 2; i++) await api.getMe();
      // The free window is full; three paid copies still go, the fourth meets the paid limit.
      for (const chat of [1, 2, 3]) await api.copyMessage(chat, ADMIN, source, paid);
      const limited = await failure(api.sendMessage(4, 'paid too', paid));
      assert.equal(limited.description, 'Too Many Requests: retry after 1');
      assert.deepEqual(limited.parameters, { retry_after: 1 });
      assert.equal(emu.paidMessages, 3);
      // A free call, or the flag on a method that does not take it, counts in the full free window.
      assert.equal((await failure(api.copyMessage(5, ADMIN, source))).error_code, 429);
      // forwardMessage's types lack the parameter too: it is sent as a caller that ignores them would send it.
      assert.equal((await failure(api.forwardMessage(5, ADMIN, source, paid as never))).error_code, 429);
      assert.equal((await failure(api.sendMessage(5, 'x', { allow_paid_broadcast: false }))).error_code, 429);
      assert.equal(emu.paidMessages, 3);
      assert.equal(emu.messages(5).length, 0);
    }));

  test('a paid message Telegram refuses is not counted as paid', () =>
    withEmulator({}, async (emu, api) => {
      emu.blockUser(7);
      assert.equal((await failure(api.sendMessage(7, 'x', { allow_paid_broadcast: true }))).error_code, 403);
      await api.sendMessage(8, 'x', { allow_paid_broadcast: true });
      assert.equal(emu.paidMessages, 1);
    }));
});

describe('a broadcast sent by the service', () => {
  const USERS = Array.from({ length: 30 }, (_, i) => 5000 + i);

  /**
   * Starts the service with `env` on a fresh SQLite database holding USERS and a broadcast being sent, waits until
   * it is sent, stops the service; returns the broadcast's source message id.
   */
  async function broadcast(emu: BotApiEmulator, env: Record<string, string>): Promise<number> {
    return withTestDb('sqlite', async (store, tdb) => {
      await addUsers(store, USERS, Date.now());
      const id = await adminBroadcast(emu, store, { admin: ADMIN, createdAt: Date.now(), progress: false });
      const b = await store.db.selectFrom('broadcasts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const config = loadConfig({
        DATABASE_URL: tdb.url,
        BOT_TOKEN: emu.token,
        BOT_API_ROOT: emu.url,
        HTTP_PORT: '0',
        TELEGRAM_RETRIES: '0',
        // Only the sender works here.
        SCHEDULE_MESSAGE_DELETER: 'off',
        SCHEDULE_BROADCAST_DELETER: 'off',
        SCHEDULE_TOKEN_CLEANUP: 'off',
        SCHEDULE_TOKEN_COUNT_RESET: 'off',
        SCHEDULE_STATS: 'off',
        SCHEDULE_HEALTH_CHECK: 'off',
        SCHEDULE_BACKUP: 'off',
        SCHEDULE_ANALYTICS: 'off',
        ...env,
      });
      const svc = await startService(config, logger, { pollTimeoutS: 1 });
      try {
        const status = async () =>
          (await store.db.selectFrom('broadcasts').select('status').where('id', '=', id).executeTakeFirstOrThrow())
            .status;
        await until(async () => (await status()) === 'sent', 'the broadcast to be sent', 20_000);
      } finally {
        await svc.stop();
      }
      return Number(b.message_id);
    });
  }

  /** Whether every user got one copy of `source`. */
  const everyoneGot = (emu: BotApiEmulator, source: number) =>
    USERS.every((u) => emu.messages(u).filter((m) => m.copiedFrom?.message_id === source).length === 1);

  test('BROADCAST_PAID on: every copy is paid, spaced at BROADCAST_PAID_RATE, past a free limit without a 429', async () => {
    // 30 copies in the shared slots (25/s) would break the emulator's free 5/s and its paid 20/s alike, and so would
    // paid copies at the default 1000/s: only paid copies spaced at BROADCAST_PAID_RATE (15/s) pass both.
    const emu = await BotApiEmulator.start({ rateLimit: 5, paidRateLimit: 20 });
    try {
      const source = await broadcast(emu, { BROADCAST_PAID: 'true', BROADCAST_PAID_RATE: '15', TELEGRAM_RATE: '25' });
      const copies = emu.callsOf('copyMessage');
      assert.equal(copies.length, USERS.length);
      assert.ok(
        copies.every((c) => c.params.allow_paid_broadcast === true),
        'each copy carries allow_paid_broadcast',
      );
      assert.deepEqual(
        emu.calls.filter((c) => c.status === 429).map((c) => c.method),
        [],
        'no 429',
      );
      assert.equal(emu.paidMessages, USERS.length);
      assert.ok(everyoneGot(emu, source), 'every user got the copy');
    } finally {
      await emu.close();
    }
  });

  test('BROADCAST_PAID off: no copy carries the flag', async () => {
    const emu = await BotApiEmulator.start();
    try {
      const source = await broadcast(emu, { TELEGRAM_RATE: '0' });
      const copies = emu.callsOf('copyMessage');
      assert.equal(copies.length, USERS.length);
      assert.ok(copies.every((c) => !('allow_paid_broadcast' in c.params)));
      assert.equal(emu.paidMessages, 0);
      assert.ok(everyoneGot(emu, source), 'every user got the copy');
    } finally {
      await emu.close();
    }
  });
});
