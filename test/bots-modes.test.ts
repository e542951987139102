import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import { createTestDb, type TestDb } from './support/db.ts';
import { until } from './support/wait.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';

const logger = createLogger({ level: 'silent' });
const ADMIN = 4242;
const CHANNEL = -1009876543210;
const ADMIN_TOKEN = '654321:ADMIN-token-abcdefghijklmnopqrstu';

/** One Bot API root for two bots: requests for the admin token go to the admin bot's emulator. */
async function router(user: BotApiEmulator, admin: BotApiEmulator): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const target = new URL(req.url!.includes(ADMIN_TOKEN) ? admin.url : user.url);
    const fwd = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('a separate admin bot and a webhook', () => {
  let userEmu: BotApiEmulator;
  let adminEmu: BotApiEmulator;
  let api: { url: string; close(): Promise<void> };
  let tdb: TestDb;
  let svc: Service;

  before(async () => {
    userEmu = await BotApiEmulator.start();
    adminEmu = await BotApiEmulator.start({
      token: ADMIN_TOKEN,
      botUsername: 'janitor_admin_bot',
      shareChatsWith: userEmu,
    });
    api = await router(userEmu, adminEmu);
    tdb = await createTestDb('sqlite');
    svc = await startService(
      loadConfig({
        DATABASE_URL: tdb.url,
        BOT_TOKEN: userEmu.token,
        ADMIN_BOT_TOKEN: ADMIN_TOKEN,
        BOT_API_ROOT: api.url,
        ADMIN_IDS: String(ADMIN),
        STORAGE_CHANNEL_ID: String(CHANNEL),
        HTTP_PORT: '0',
        TELEGRAM_RETRIES: '0',
        TELEGRAM_RATE: '0',
        WEBHOOK_URL: 'https://bot.example.com/tg/hook',
        WEBHOOK_SECRET: 'hook-secret_1',
        SCHEDULE_MESSAGE_DELETER: 'off',
        SCHEDULE_BROADCAST_DELETER: 'off',
        SCHEDULE_TOKEN_CLEANUP: 'off',
        SCHEDULE_TOKEN_COUNT_RESET: 'off',
      }),
      logger,
      { pollTimeoutS: 1 },
    );
    await until(() => userEmu.webhook === 'https://bot.example.com/tg/hook', 'the webhook to be set');
  });
  after(async () => {
    await svc.stop();
    await tdb.drop();
    await api.close();
    await adminEmu.close();
    await userEmu.close();
  });

  const post = (body: object, secret?: string) =>
    fetch(`${svc.http.url}/tg/hook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(secret ? { 'x-telegram-bot-api-secret-token': secret } : {}) },
      body: JSON.stringify(body),
    });
  const message = (from: number, text: string, id: number) => ({
    update_id: 100 + id,
    message: {
      message_id: id,
      date: Math.floor(Date.now() / 1000),
      chat: { id: from, type: 'private', first_name: 'U' },
      from: { id: from, is_bot: false, first_name: 'U' },
      text,
      entities: [{ type: 'bot_command', offset: 0, length: text.split(' ')[0]!.length }],
    },
  });

  test("the webhook checks Telegram's secret token and hands updates to the user bot", async () => {
    const wrong = await post(message(7001, '/start', 1), 'nope');
    assert.equal(wrong.status, 401);
    assert.equal(
      await svc.store.db.selectFrom('users').select('user_id').where('user_id', '=', 7001).executeTakeFirst(),
      undefined,
    );
    const ok = await post(message(7001, '/start', 2), 'hook-secret_1');
    assert.equal(ok.status, 200);
    await until(() => userEmu.messages(7001).some((m) => m.fromBot && /Welcome/.test(m.text ?? '')), 'the welcome');
    assert.ok(await svc.store.db.selectFrom('users').select('user_id').where('user_id', '=', 7001).executeTakeFirst());
  });

  test('a handler that fails still answers the webhook 200 (Telegram must not deliver it again)', async () => {
    userEmu.failNext('sendMessage', { kind: 'status', code: 400, description: 'Bad Request: something odd' });
    const r = await post(message(7001, '/help', 5), 'hook-secret_1');
    assert.equal(r.status, 200);
    const ok = await post(message(7001, '/help', 6), 'hook-secret_1');
    assert.equal(ok.status, 200);
    await until(
      () => userEmu.messages(7001).some((m) => m.fromBot && /Open a file link/.test(m.text ?? '')),
      'the next update to be answered',
    );
  });

  test('admin commands live in the admin bot; broadcast content goes through the storage channel', async () => {
    // The user bot ignores admin commands now. The webhook answers once the update is handled, so this is final.
    assert.equal((await post(message(ADMIN, '/setdeletetime 7', 3), 'hook-secret_1')).status, 200);
    assert.equal(await svc.store.db.selectFrom('settings').select('key').executeTakeFirst(), undefined);
    // The admin talks to the admin bot.
    adminEmu.sendUserMessage({ id: ADMIN }, '/setdeletetime 7');
    await until(
      async () => Boolean(await svc.store.db.selectFrom('settings').select('key').executeTakeFirst()),
      'the setting',
    );
    const source = adminEmu.sendUserMessage({ id: ADMIN }, 'Hello from the admin bot') as {
      message: Record<string, unknown>;
    };
    adminEmu.sendUserMessage({ id: ADMIN }, '/broadcast 2', { reply_to_message: source.message });
    await until(
      () => userEmu.messages(7001).some((m) => m.text === 'Hello from the admin bot'),
      'the broadcast to reach the user',
    );
    const b = await svc.store.db.selectFrom('broadcasts').selectAll().executeTakeFirstOrThrow();
    assert.equal(b.from_chat_id, CHANNEL, "copied from the storage channel, not the admin bot's chat");
    assert.ok(userEmu.messages(CHANNEL).some((m) => m.text === 'Hello from the admin bot'));
    await until(
      () => adminEmu.messages(ADMIN).some((m) => /✅ Broadcast #\d+ sent to/.test(m.text ?? '')),
      "the admin bot's progress message",
    );
  });
});

describe('a broadcast interrupted by a shutdown', () => {
  test('resumes on the next start where it stopped: every user gets exactly one copy', async () => {
    const emu = await BotApiEmulator.start();
    const tdb = await createTestDb('postgres');
    const config = loadConfig({
      DATABASE_URL: tdb.url,
      BOT_TOKEN: emu.token,
      BOT_API_ROOT: emu.url,
      ADMIN_IDS: String(ADMIN),
      HTTP_PORT: '0',
      TELEGRAM_RETRIES: '0',
      TELEGRAM_RATE: '150',
      SCHEDULE_MESSAGE_DELETER: 'off',
      SCHEDULE_BROADCAST_DELETER: 'off',
      SCHEDULE_TOKEN_CLEANUP: 'off',
      SCHEDULE_TOKEN_COUNT_RESET: 'off',
    });
    try {
      const store = await tdb.open();
      const users = Array.from({ length: 300 }, (_, i) => 20_000 + i);
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
      let svc = await startService(config, logger, { pollTimeoutS: 1 });
      const source = emu.sendUserMessage({ id: ADMIN }, 'Resumable news') as { message: Record<string, unknown> };
      emu.sendUserMessage({ id: ADMIN }, '/broadcast 3', { reply_to_message: source.message });
      await until(() => emu.callsOf('copyMessage').length >= 80, 'sending to start');
      await svc.stop();
      const afterStop = emu.callsOf('copyMessage').length;
      const sentBefore = (await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length;
      assert.ok(sentBefore < 301, `stopped midway (${sentBefore} sent)`);
      const b = await store.db.selectFrom('broadcasts').selectAll().executeTakeFirstOrThrow();
      assert.equal(b.status, 'sending');
      assert.equal(b.claimed_by, null, 'a clean stop releases the broadcast');
      svc = await startService(config, logger, { pollTimeoutS: 1 });
      try {
        await until(
          async () =>
            (await store.db.selectFrom('broadcasts').select('status').executeTakeFirstOrThrow()).status === 'sent',
          'sending to finish',
          20_000,
        );
      } finally {
        await svc.stop();
      }
      const perChat = new Map<number, number>();
      for (const c of emu.callsOf('copyMessage'))
        perChat.set(Number(c.params.chat_id), (perChat.get(Number(c.params.chat_id)) ?? 0) + 1);
      assert.equal(perChat.size, 301);
      assert.ok(
        [...perChat.values()].every((n) => n === 1),
        'nobody got it twice',
      );
      assert.ok(emu.callsOf('copyMessage').length > afterStop, 'the second start carried on');
      assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length, 301);
    } finally {
      await tdb.drop();
      await emu.close();
    }
  });
});
