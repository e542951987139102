import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Api, Bot, GrammyError, HttpError } from 'grammy';
import { BotApiEmulator, DEFAULT_TOKEN } from './support/bot-api-emulator.ts';
import { until } from './support/wait.ts';
import { FakeClock } from '../src/clock.ts';

const STORAGE = -1001234567890;
const USER = 777001;

/** Raw Bot API call over HTTP; returns the HTTP status and the parsed body. */
/** A Bot API answer, as far as these tests read it. */
interface ApiAnswer {
  ok: boolean;
  result?: { id?: number; text?: string };
  description?: string;
  parameters?: { retry_after?: number };
}

async function call(emu: BotApiEmulator, method: string, params: object = {}, token = emu.token, signal?: AbortSignal) {
  const res = await fetch(`${emu.url}/bot${token}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(params),
    signal,
  });
  return { status: res.status, body: (await res.json()) as ApiAnswer };
}

/** Resolves once the emulator has received `n` calls of `method` (polls the log; no fixed sleeps). */
const received = (emu: BotApiEmulator, method: string, n = 1) =>
  until(() => emu.callsOf(method).length >= n, `${n} ${method} call(s)`, 2000);

async function grammyError(p: Promise<unknown>): Promise<GrammyError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof GrammyError, `expected GrammyError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

describe('BotApiEmulator', () => {
  let emu: BotApiEmulator;
  let api: Api;

  before(async () => {
    emu = await BotApiEmulator.start();
    api = new Api(emu.token, { apiRoot: emu.url });
  });
  after(() => emu.close());
  beforeEach(() => emu.resetCalls());

  test('getMe over fetch and grammY', async () => {
    assert.equal(emu.token, DEFAULT_TOKEN);
    assert.match(emu.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const raw = await call(emu, 'getMe');
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.body.ok, true);
    assert.equal(raw.body.result?.id, 123456);
    const me = await api.getMe();
    assert.equal(me.is_bot, true);
    assert.equal(me.first_name, 'Janitor Test');
    assert.equal(me.username, 'janitor_test_bot');
    assert.deepEqual(
      emu.calls.map((c) => [c.method, c.status]),
      [
        ['getMe', 200],
        ['getMe', 200],
      ],
    );
  });

  test('wrong token → 401, unknown method → 404, method names are case-insensitive', async () => {
    const bad = await call(emu, 'getMe', {}, '999:nope');
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, { ok: false, error_code: 401, description: 'Unauthorized' });
    const e = await grammyError(new Api('999:nope', { apiRoot: emu.url }).getMe());
    assert.equal(e.error_code, 401);

    const nf = await call(emu, 'frobnicate');
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.body, { ok: false, error_code: 404, description: 'Not Found' });
    assert.equal((await call(emu, 'getme')).status, 200);
  });

  test('sendMessage stores the message with its inline keyboard; deleteMessages semantics', async () => {
    const chat = 5001;
    const markup = { inline_keyboard: [[{ text: 'Click Here', url: 'https://t.me/janitor_test_bot?start=abc' }]] };
    const sent = await api.sendMessage(chat, 'hello', { reply_markup: markup, parse_mode: 'HTML' });
    assert.equal(sent.message_id, 1);
    assert.equal(sent.chat.id, chat);
    assert.equal(sent.chat.type, 'private');
    assert.equal(sent.text, 'hello');
    assert.equal(sent.from?.is_bot, true);
    assert.deepEqual(sent.reply_markup, markup);
    assert.deepEqual(emu.messages(chat)[0]?.reply_markup, markup);

    const second = await api.sendMessage(chat, 'again');
    assert.equal(second.message_id, 2);
    assert.equal(emu.addMessage(chat, { text: 'third' }), 3);

    // Partially missing ids: existing ones go, missing ones are skipped.
    assert.equal(await api.deleteMessages(chat, [1, 3, 42]), true);
    assert.deepEqual(
      emu.messages(chat).map((m) => m.message_id),
      [2],
    );
    assert.equal(emu.hasMessage(chat, 1), false);
    assert.equal(emu.hasMessage(chat, 2), true);

    // Nothing left among the ids → 400.
    const e = await grammyError(api.deleteMessages(chat, [1, 3]));
    assert.equal(e.error_code, 400);
    assert.equal(e.description, 'Bad Request: message to delete not found');
    assert.equal(emu.callsOf('deleteMessages').at(-1)?.status, 400);

    // Ids are never reused.
    assert.equal(emu.addMessage(chat), 4);

    const empty = await call(emu, 'deleteMessages', { chat_id: chat, message_ids: [] });
    assert.equal(empty.body.description, 'Bad Request: message identifiers are not specified');
    const many = await call(emu, 'deleteMessages', {
      chat_id: chat,
      message_ids: Array.from({ length: 101 }, (_, i) => i + 1),
    });
    assert.equal(many.status, 400);
    assert.equal(many.body.description, 'Bad Request: too many messages to delete');
  });

  test('deleteMessage and the 48 h rule (emulator clock)', async () => {
    let now = Date.UTC(2030, 0, 10);
    emu.setNow(() => now);
    try {
      const old = emu.addMessage(STORAGE, { sentAt: now - 49 * 3600_000 });
      const fresh = emu.addMessage(STORAGE, { text: 'file' });
      const e = await grammyError(api.deleteMessage(STORAGE, old));
      assert.equal(e.description, "Bad Request: message can't be deleted for everyone");
      assert.equal(await api.deleteMessage(STORAGE, fresh), true);
      const gone = await grammyError(api.deleteMessage(STORAGE, fresh));
      assert.equal(gone.description, 'Bad Request: message to delete not found');

      // deleteMessages: deletes what it can, still reports the undeletable one.
      const a = emu.addMessage(STORAGE);
      const e2 = await grammyError(api.deleteMessages(STORAGE, [old, a]));
      assert.equal(e2.description, "Bad Request: message can't be deleted for everyone");
      assert.equal(emu.hasMessage(STORAGE, a), false);
      assert.equal(emu.hasMessage(STORAGE, old), true);

      // Moving the clock makes a fresh message undeletable.
      const b = emu.addMessage(STORAGE);
      now += 48 * 3600_000;
      assert.equal((await call(emu, 'deleteMessage', { chat_id: STORAGE, message_id: b })).status, 400);
    } finally {
      emu.setNow(Date.now);
    }
  });

  test('copyMessage, copyMessages, editMessageText', async () => {
    const src = emu.addMessage(STORAGE, { text: 'the file' });
    const src2 = emu.addMessage(STORAGE, { text: 'file 2' });
    const chat = 5002;
    const copy = await api.copyMessage(chat, STORAGE, src);
    const stored = emu.messages(chat).find((m) => m.message_id === copy.message_id);
    assert.equal(stored?.text, 'the file');
    assert.deepEqual(stored?.copiedFrom, { chat_id: STORAGE, message_id: src });
    const e = await grammyError(api.copyMessage(chat, STORAGE, 999_999));
    assert.equal(e.description, 'Bad Request: message to copy not found');

    const copies = await api.copyMessages(chat, STORAGE, [src, 999_999, src2]);
    assert.equal(copies.length, 2);
    assert.deepEqual(
      copies.map((c) => emu.messages(chat).find((m) => m.message_id === c.message_id)?.text),
      ['the file', 'file 2'],
    );

    const sent = await api.sendMessage(chat, 'v1');
    const edited = await api.editMessageText(chat, sent.message_id, 'v2');
    assert.ok(edited !== true && 'text' in edited);
    assert.equal(edited.text, 'v2');
    assert.equal(emu.messages(chat).find((m) => m.message_id === sent.message_id)?.text, 'v2');
    const same = await grammyError(api.editMessageText(chat, sent.message_id, 'v2'));
    assert.match(same.description, /^Bad Request: message is not modified: /);
    const missing = await grammyError(api.editMessageText(chat, 999, 'x'));
    assert.equal(missing.description, 'Bad Request: message to edit not found');
  });

  test('urlencoded bodies and GET query strings are accepted', async () => {
    const chat = 5003;
    const id = emu.addMessage(chat);
    const form = await fetch(`${emu.url}/bot${emu.token}/deleteMessages`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ chat_id: String(chat), message_ids: JSON.stringify([id]) }),
    });
    assert.equal(form.status, 200);
    assert.deepEqual(await form.json(), { ok: true, result: true });
    assert.equal(emu.hasMessage(chat, id), false);

    const get = await fetch(`${emu.url}/bot${emu.token}/sendMessage?chat_id=${chat}&text=hi`);
    const body = (await get.json()) as ApiAnswer;
    assert.equal(body.result?.text, 'hi');
    assert.equal(emu.callsOf('sendMessage').at(-1)?.params.chat_id, String(chat));
  });

  test('blocked and deactivated users → 403', async () => {
    emu.blockUser(6001);
    emu.deactivateUser(6002);
    try {
      const blocked = await grammyError(api.sendMessage(6001, 'hi'));
      assert.equal(blocked.error_code, 403);
      assert.equal(blocked.description, 'Forbidden: bot was blocked by the user');
      const deact = await call(emu, 'deleteMessage', { chat_id: 6002, message_id: 1 });
      assert.equal(deact.status, 403);
      assert.deepEqual(deact.body, { ok: false, error_code: 403, description: 'Forbidden: user is deactivated' });
    } finally {
      emu.unblockUser(6001);
      emu.unblockUser(6002);
    }
    assert.equal((await api.sendMessage(6001, 'hi')).text, 'hi');
  });

  test('injected failures: failNext status codes, 429 with retry_after, failChat', async () => {
    emu.failNext('sendMessage', { kind: 'status', code: 500, description: 'Internal Server Error' });
    const e500 = await grammyError(api.sendMessage(7001, 'x'));
    assert.equal(e500.error_code, 500);
    assert.equal(e500.description, 'Internal Server Error');
    assert.equal((await api.sendMessage(7001, 'x')).text, 'x'); // only the next one failed

    emu.failNext(
      'deleteMessages',
      { kind: 'status', code: 429, description: 'Too Many Requests: retry after 7', retryAfter: 7 },
      2,
    );
    for (let i = 0; i < 2; i++) {
      const e = await grammyError(api.deleteMessages(7001, [1]));
      assert.equal(e.error_code, 429);
      assert.equal(e.parameters.retry_after, 7);
    }
    assert.equal(await api.deleteMessages(7001, [1]), true);

    emu.failNext('getMe', {
      kind: 'status',
      code: 502,
      description: 'Bad Gateway',
      rawBody: '<html>502 Bad Gateway</html>',
    });
    await assert.rejects(api.getMe(), HttpError);

    emu.failChat(7002, { kind: 'status', code: 400, description: 'Bad Request: chat not found' });
    assert.equal((await grammyError(api.sendMessage(7002, 'x'))).description, 'Bad Request: chat not found');
    assert.equal((await grammyError(api.deleteMessage(7002, 1))).error_code, 400);
    emu.failChat(7002, null);
    assert.equal((await api.sendMessage(7002, 'x')).chat.id, 7002);
    assert.deepEqual(
      emu.callsPerChat('sendMessage'),
      new Map([
        [7001, 2],
        [7002, 2],
      ]),
      'failed calls count too',
    );
    assert.deepEqual(emu.callsPerChat('getMe'), new Map(), 'calls without a chat_id are left out');
  });

  test('timeout: the request hangs until the client gives up; reset drops the socket', async () => {
    emu.failNext('sendMessage', { kind: 'timeout' });
    await assert.rejects(
      call(emu, 'sendMessage', { chat_id: 1, text: 'x' }, emu.token, AbortSignal.timeout(100)),
      (err: Error) => err.name === 'TimeoutError',
    );
    emu.failNext('getMe', { kind: 'timeout' });
    await assert.rejects(api.getMe(AbortSignal.timeout(100) as Parameters<Api['getMe']>[0]), HttpError);
    assert.equal(emu.callsOf('getMe').at(-1)?.status, 0);

    emu.failNext('getMe', { kind: 'reset' });
    await assert.rejects(call(emu, 'getMe'), TypeError); // fetch failed: socket hang up
    emu.failNext('getMe', { kind: 'reset' });
    await assert.rejects(api.getMe(), HttpError);
    assert.equal((await api.getMe()).username, 'janitor_test_bot');
  });

  test('slow: the work is done at once, the answer comes later (per method and per chat)', async () => {
    emu.failNext('sendMessage', { kind: 'slow', ms: 300 });
    const pending = api.sendMessage(77, 'late answer');
    await received(emu, 'sendMessage');
    assert.ok(
      emu.messages(77).some((m) => m.text === 'late answer'),
      'stored before the answer',
    );
    assert.equal(emu.callsOf('sendMessage').at(-1)?.status, 0, 'not answered yet');
    assert.equal((await pending).text, 'late answer');
    assert.equal(emu.callsOf('sendMessage').at(-1)?.status, 200);
    emu.failChat(78, { kind: 'slow', ms: 50 });
    assert.equal((await api.sendMessage(78, 'also late')).text, 'also late');
    emu.failChat(78, null);
  });

  test('latencyMs: every answer is held that long on its clock, as a round trip to Telegram would be', async () => {
    const clock = new FakeClock(Date.now());
    const slow = await BotApiEmulator.start({ clock, latencyMs: 80 });
    try {
      const sapi = new Api(slow.token, { apiRoot: slow.url });
      const pending = sapi.sendMessage(79, 'held');
      await received(slow, 'sendMessage');
      assert.ok(slow.messages(79).some((m) => m.text === 'held'));
      assert.equal(slow.callsOf('sendMessage').at(-1)?.status, 0, 'not answered before the latency');
      clock.advance(79);
      assert.equal(slow.callsOf('sendMessage').at(-1)?.status, 0, 'not answered a millisecond early');
      clock.advance(1);
      assert.equal((await pending).text, 'held');
      assert.equal(slow.callsOf('sendMessage').at(-1)?.status, 200);
    } finally {
      await slow.close();
    }
  });

  test('strictChats: unknown positive chats do not exist, channels always do', async () => {
    const strict = await BotApiEmulator.start({ strictChats: true, botUsername: 'other_bot', token: '42:abc' });
    try {
      const sapi = new Api(strict.token, { apiRoot: strict.url });
      assert.equal((await sapi.getMe()).id, 42);
      assert.equal((await sapi.getMe()).username, 'other_bot');
      const e = await grammyError(sapi.sendMessage(8001, 'x'));
      assert.equal(e.description, 'Bad Request: chat not found');
      strict.addChat(8001);
      assert.equal((await sapi.sendMessage(8001, 'x')).message_id, 1);
      assert.equal((await sapi.sendMessage(STORAGE, 'x')).chat.type, 'channel');
    } finally {
      await strict.close();
    }
  });
});

describe('BotApiEmulator rate limit', () => {
  test('past the limit → 429 "Too Many Requests: retry after N" with parameters.retry_after', async () => {
    const emu = await BotApiEmulator.start({ rateLimit: 3 });
    try {
      const api = new Api(emu.token, { apiRoot: emu.url });
      for (let i = 0; i < 3; i++) await api.getMe();
      const raw = await call(emu, 'getMe');
      assert.equal(raw.status, 429);
      assert.deepEqual(raw.body, {
        ok: false,
        error_code: 429,
        description: 'Too Many Requests: retry after 1',
        parameters: { retry_after: 1 },
      });
      const e = await grammyError(api.deleteMessage(1, 1));
      assert.equal(e.error_code, 429);
      assert.equal(e.parameters.retry_after, 1);
      emu.setRateLimit(null);
      assert.equal((await api.getMe()).is_bot, true);
    } finally {
      await emu.close();
    }
  });
});

describe('BotApiEmulator getUpdates', () => {
  test('long poll returns a pushed update; offset confirms; timeout returns []', async () => {
    // The emulator's waits run on a clock only the test moves: a poll that ends on its own ended for a reason.
    const clock = new FakeClock(Date.now());
    const emu = await BotApiEmulator.start({ clock });
    try {
      const api = new Api(emu.token, { apiRoot: emu.url });
      assert.deepEqual(await api.getUpdates({ timeout: 0 }), []);
      const pending = api.getUpdates({ timeout: 10 });
      await received(emu, 'getUpdates', 2);
      const pushed = emu.sendUserMessage({ id: USER, first_name: 'Ann', username: 'ann' }, '/start abc') as {
        update_id: number;
      };
      const updates = await pending;
      // Answered by the push, not by the 10 s time-out: the emulator's clock has not moved.
      assert.equal(clock.pending, 0, "the poll's time-out was cancelled by the answer");
      assert.equal(updates.length, 1);
      const u = updates[0]!;
      assert.equal(u.update_id, pushed.update_id);
      assert.equal(u.message?.text, '/start abc');
      assert.equal(u.message?.chat.id, USER);
      assert.equal(u.message?.from?.username, 'ann');
      assert.deepEqual(u.message?.entities, [{ offset: 0, length: 6, type: 'bot_command' }]);
      assert.ok(emu.hasMessage(USER, u.message.message_id));

      // Not confirmed yet: returned again; confirmed by offset: gone.
      assert.equal((await api.getUpdates({ timeout: 0 })).length, 1);
      assert.deepEqual(await api.getUpdates({ offset: u.update_id + 1, timeout: 0 }), []);

      // Nothing to return: the poll waits its whole second, then answers [].
      let answered: unknown = null;
      const empty = api.getUpdates({ offset: u.update_id + 1, timeout: 1 }).then((r) => (answered = r));
      await received(emu, 'getUpdates', 5);
      assert.equal(clock.nextAt(), clock.now().getTime() + 1000, 'its time-out is one second away');
      clock.advance(999);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(answered, null, 'no answer before the second is over');
      clock.advance(1);
      await empty;
      assert.deepEqual(answered, []);

      // A second getUpdates terminates the pending one with 409.
      const first = api.getUpdates({ timeout: 10 });
      await received(emu, 'getUpdates', 6);
      const second = api.getUpdates({ timeout: 0 });
      assert.equal((await grammyError(first)).error_code, 409);
      assert.deepEqual(await second, []);

      // Webhook blocks getUpdates.
      await api.setWebhook('https://example.invalid/hook');
      assert.equal((await api.getWebhookInfo()).url, 'https://example.invalid/hook');
      assert.equal((await grammyError(api.getUpdates())).error_code, 409);
      await api.deleteWebhook();
      assert.equal(await api.setMyCommands([{ command: 'start', description: 'Start' }]), true);
      assert.equal(await api.answerCallbackQuery('abc'), true);
    } finally {
      await emu.close();
    }
  });

  test('a grammY Bot polls the emulator and answers /start', async () => {
    const emu = await BotApiEmulator.start();
    try {
      const bot = new Bot(emu.token, { client: { apiRoot: emu.url } });
      bot.command('start', (ctx) =>
        ctx.reply(`hi ${ctx.match}`, {
          reply_markup: { inline_keyboard: [[{ text: 'Click Here', url: 'https://example.invalid/x' }]] },
        }),
      );
      const started = new Promise<void>((resolve) => void bot.start({ timeout: 10, onStart: () => resolve() }));
      await started;
      emu.sendUserMessage({ id: USER }, '/start tok123');
      await received(emu, 'sendMessage');
      const reply = emu.callsOf('sendMessage')[0]!;
      assert.equal(reply.status, 200);
      assert.equal(reply.params.chat_id, USER);
      const msgs = emu.messages(USER);
      assert.equal(msgs.length, 2);
      assert.equal(msgs[1]?.text, 'hi tok123');
      assert.equal(msgs[1]?.reply_markup?.inline_keyboard?.[0]?.[0]?.text, 'Click Here');
      await bot.stop();
    } finally {
      await emu.close();
    }
  });
});

describe('BotApiEmulator close', () => {
  test('close() ends hanging requests and pending long polls promptly', async () => {
    // On a clock that never moves, only close() can end the 30 s poll.
    const clock = new FakeClock(Date.now());
    const emu = await BotApiEmulator.start({ clock });
    const api = new Api(emu.token, { apiRoot: emu.url });
    emu.failNext('sendMessage', { kind: 'timeout' });
    // Attach the rejection checks right away so no rejection is ever unhandled.
    const hanging = assert.rejects(call(emu, 'sendMessage', { chat_id: 1, text: 'x' }));
    emu.failNext('getMe', { kind: 'timeout' });
    const grammyHanging = assert.rejects(api.getMe(), HttpError);
    await received(emu, 'sendMessage');
    await received(emu, 'getMe');
    const poll = api.getUpdates({ timeout: 30 });
    await received(emu, 'getUpdates');
    await emu.close();
    await hanging;
    await grammyHanging;
    assert.deepEqual(await poll, []);
    assert.equal(clock.pending, 0, "close() cancelled the poll's time-out; no time passed on the emulator's clock");
    await emu.close(); // idempotent
  });
});

describe('BotApiEmulator throughput', () => {
  test('serves thousands of concurrent deleteMessages calls over keep-alive', async () => {
    const emu = await BotApiEmulator.start();
    try {
      const api = new Api(emu.token, { apiRoot: emu.url });
      const chat = 9001;
      const n = 2000;
      for (let i = 0; i < n * 2; i++) emu.addMessage(chat);
      let next = 1;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next <= n * 2) {
            const id = next;
            next += 2;
            await api.deleteMessages(chat, [id, id + 1]);
          }
        }),
      );
      assert.equal(emu.messages(chat).length, 0);
      assert.equal(emu.callsOf('deleteMessages').length, n);
      assert.ok(
        emu.callsOf('deleteMessages').every((c) => c.status === 200),
        'every call answered 200',
      );
    } finally {
      await emu.close();
    }
  });
});

describe('BotApiEmulator fault knobs', () => {
  test('failAll: every call fails (rotating through a list) until cleared; a wrong token still gets 401', async () => {
    const emu = await BotApiEmulator.start();
    try {
      const api = new Api(emu.token, { apiRoot: emu.url });
      emu.addMessage(5001);
      emu.failAll({ kind: 'status', code: 502, description: 'Bad Gateway' });
      for (const p of [
        api.getMe(),
        api.sendMessage(5001, 'x'),
        api.deleteMessages(5001, [1]),
        api.getUpdates({ timeout: 0 }),
      ]) {
        assert.equal((await grammyError(p)).error_code, 502);
      }
      assert.equal((await call(emu, 'getMe', {}, '1:wrong')).status, 401);
      emu.failAll([
        { kind: 'status', code: 500, description: 'Internal Server Error' },
        { kind: 'timeout' },
        { kind: 'status', code: 503, description: 'Service Unavailable' },
      ]);
      assert.equal((await grammyError(api.sendMessage(5001, 'a'))).error_code, 500);
      await assert.rejects(
        call(emu, 'sendMessage', { chat_id: 5001, text: 'b' }, emu.token, AbortSignal.timeout(100)),
        (err: Error) => err.name === 'TimeoutError',
      );
      assert.equal((await grammyError(api.sendMessage(5001, 'c'))).error_code, 503);
      assert.equal((await grammyError(api.sendMessage(5001, 'd'))).error_code, 500, 'the list starts over');
      assert.equal(emu.messages(5001).length, 1, 'nothing was done during the outage');
      emu.failAll(null);
      assert.equal((await api.sendMessage(5001, 'e')).text, 'e');
      assert.equal(await api.deleteMessages(5001, [1]), true);
      assert.deepEqual(
        emu.callsOf('sendMessage').map((c) => c.status),
        [502, 500, 0, 503, 500, 200],
      );
    } finally {
      await emu.close();
    }
  });

  test('failAllChats: every call with a chat_id fails, calls without one work; a failChat comes first', async () => {
    const emu = await BotApiEmulator.start();
    try {
      const api = new Api(emu.token, { apiRoot: emu.url });
      const m = emu.addMessage(6001);
      emu.failAllChats({ kind: 'status', code: 400, description: 'Bad Request: chat not found' });
      emu.failChat(6003, { kind: 'status', code: 500, description: 'Internal Server Error' });
      assert.equal((await grammyError(api.deleteMessages(6001, [m]))).description, 'Bad Request: chat not found');
      assert.equal((await grammyError(api.sendMessage(6002, 'x'))).description, 'Bad Request: chat not found');
      assert.equal((await grammyError(api.sendMessage(6003, 'x'))).error_code, 500);
      assert.equal((await api.getMe()).is_bot, true);
      assert.ok(emu.hasMessage(6001, m));
      emu.failAllChats(null);
      assert.equal(await api.deleteMessages(6001, [m]), true);
      assert.equal((await grammyError(api.sendMessage(6003, 'x'))).error_code, 500, "the chat's own failure stays");
    } finally {
      await emu.close();
    }
  });

  test('rateLimitRetryAfter: the rate-limit 429 announces a longer flood wait', async () => {
    const emu = await BotApiEmulator.start({ rateLimit: 2, rateLimitRetryAfter: 4 });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await call(emu, 'getMe')).status, 200);
      const raw = await call(emu, 'getMe');
      assert.equal(raw.status, 429);
      assert.equal(raw.body.description, 'Too Many Requests: retry after 4');
      assert.deepEqual(raw.body.parameters, { retry_after: 4 });
      emu.setRateLimit(1, { retryAfter: 2 });
      assert.equal((await call(emu, 'getMe')).status, 200);
      assert.equal((await call(emu, 'getMe')).body.parameters?.retry_after, 2);
      emu.setRateLimit(1, { retryAfter: 0 });
      assert.equal((await call(emu, 'getMe')).status, 200);
      assert.equal((await call(emu, 'getMe')).body.parameters?.retry_after, 1, "back to the window's own wait");
    } finally {
      await emu.close();
    }
  });

  test("chatLimits: a private chat's second message within a second, a group's 21st within a minute → 429", async () => {
    const clock = new FakeClock(Date.now());
    const emu = await BotApiEmulator.start({ chatLimits: true, clock });
    try {
      const send = (chat: number) => call(emu, 'sendMessage', { chat_id: chat, text: 'x' });
      assert.equal((await send(7)).status, 200);
      const again = await send(7);
      assert.equal(again.status, 429);
      assert.deepEqual(again.body.parameters, { retry_after: 1 });
      assert.equal((await send(8)).status, 200, 'other chats are not held');
      assert.equal((await call(emu, 'deleteMessage', { chat_id: 7, message_id: 1 })).status, 200, 'not a message');
      clock.advance(1000);
      assert.equal((await send(7)).status, 200);
      for (let i = 0; i < 20; i++) assert.equal((await send(-100)).status, 200);
      const group = await send(-100);
      assert.equal(group.status, 429);
      assert.deepEqual(group.body.parameters, { retry_after: 60 });
      clock.advance(59_000);
      assert.equal((await send(-100)).status, 429);
      clock.advance(1000);
      assert.equal((await send(-100)).status, 200);
    } finally {
      await emu.close();
    }
  });
});
