/**
 * The auto-delete example bot (examples/auto-delete-bot.ts) end to end against the emulator: a user sends /start,
 * /secret, /forget and /keep; once every deletion is recorded the bot is SIGKILLed, before any is due, and started
 * again. Every auto-deleted message — the bot's replies, the document, the user's own /forget — is deleted within
 * 2 s of its delete_at by the new process, once; the "deleted" notice goes out for the document only; /keep's
 * reply and the notice stay; a SIGTERM then stops the bot cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BotApiEmulator } from '../support/bot-api-emulator.ts';
import { cleanEnv } from '../support/cli.ts';
import { pendingRows } from '../support/world.ts';
import { waitUntil } from '../support/janitor-process.ts';
import { openStore } from '../../src/store/db.ts';
import { DEFAULT_DELETED_NOTICE } from '../../src/jobs/message-deleter.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const USER = 4242;
/** How long the bot's messages live: long enough for the kill and the restart (tsx compiles at start) before. */
const AFTER_S = 10;

/** One run of the example bot, its output collected. */
class ExampleBot {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(env: Record<string, string>) {
    // As a user runs it: node with tsx, from the package's folder, so `from 'tg-janitor'` resolves to the package.
    this.child = spawn(process.execPath, ['--import', 'tsx', 'examples/auto-delete-bot.ts'], {
      cwd: ROOT,
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d) => (this.stdout += d));
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  async running(): Promise<void> {
    await waitUntil(
      () => {
        if (this.child.exitCode !== null) throw new Error(`the example bot exited early:\n${this.stderr.slice(-3000)}`);
        return /is running/.test(this.stdout);
      },
      'the example bot to start',
      60_000,
      50,
    );
  }

  kill(signal: NodeJS.Signals) {
    this.child.kill(signal);
    return this.exited;
  }
}

test('the auto-delete example bot: its messages are deleted on time across a SIGKILL and a restart', async (t) => {
  const emu = await BotApiEmulator.start();
  const dir = mkdtempSync(join(tmpdir(), 'tgj-auto-delete-'));
  const databaseUrl = `sqlite:${join(dir, 'bot.db')}`;
  const env = {
    BOT_TOKEN: emu.token,
    BOT_API_ROOT: emu.url,
    DATABASE_URL: databaseUrl,
    AUTO_DELETE_AFTER: `${AFTER_S}s`,
  };
  const bots: ExampleBot[] = [];
  const store = await openStore(databaseUrl);
  try {
    bots.push(new ExampleBot(env));
    await bots[0]!.running();

    const user = { id: USER, first_name: 'Ada' };
    let lastUpdate = 0;
    for (const text of ['/start', '/secret', '/forget', '/keep'])
      lastUpdate = (emu.sendUserMessage(user, text) as { update_id: number }).update_id;
    // The user's four messages are 1-4 (sent at once); the bot answers them in turn: 5, 6, 7 and 8.
    await waitUntil(() => emu.messages(USER).length === 8, 'the bot to answer all four', 20_000, 50);
    const rows = () => pendingRows(store);
    await waitUntil(async () => (await rows()).length === 4, 'four deletions recorded', 10_000, 50);
    // Updates are confirmed by the next getUpdates: killed before it, a new process would get them again.
    await waitUntil(
      () => Number(emu.callsOf('getUpdates').at(-1)?.params.offset ?? 0) > lastUpdate,
      'the updates to be confirmed',
      10_000,
      50,
    );
    const recorded = await rows();
    assert.deepEqual(
      recorded.map(({ chat, ids, notice }) => ({ chat, ids, notice })),
      [
        { chat: USER, ids: [5], notice: 0 }, // /start's reply
        { chat: USER, ids: [6], notice: 1 }, // the secret document, with the notice
        { chat: USER, ids: [3], notice: 0 }, // the user's own /forget
        { chat: USER, ids: [7], notice: 0 }, // /forget's reply
      ],
    );
    for (const r of recorded) {
      const sent = emu.message(USER, r.ids[0]!)!.sentAt;
      // The delay counts from Telegram's answer (the user's /forget: from when the bot handled it).
      assert.ok(
        r.deleteAt - sent >= AFTER_S * 1000 && r.deleteAt - sent < AFTER_S * 1000 + 2000,
        `row ${r.ids.join(',')}`,
      );
    }
    const firstDue = Math.min(...recorded.map((r) => r.deleteAt));
    assert.ok(Date.now() < firstDue - 2000, 'killed well before the first deletion is due');

    await bots[0]!.kill('SIGKILL');
    t.diagnostic(`killed ${Math.round((firstDue - Date.now()) / 100) / 10} s before the first deletion was due`);
    const killedAt = Date.now();
    emu.resetCalls();
    bots.push(new ExampleBot(env));
    await bots[1]!.running();
    // On a loaded machine the restart may come up after the first deletion fell due, and rightly delete it at once:
    // what must hold is that nothing was deleted before its time (each row's call is checked below as well).
    assert.deepEqual(
      emu.callsOf('deleteMessages').filter((c) => c.at < firstDue),
      [],
      'nothing deleted before its time while the bot was down',
    );

    await waitUntil(async () => (await rows()).length === 0, 'every deletion done', 30_000, 100);
    await waitUntil(() => emu.messages(USER).length === 5, 'the notice', 5_000, 50);

    // Each row's messages went in one deleteMessages call of the new process (rows due together share one), within
    // 2 s of delete_at, and no message was asked twice.
    const deletes = emu.callsOf('deleteMessages');
    assert.equal(emu.callsOf('deleteMessage').length, 0);
    assert.ok(deletes.length >= 1 && deletes.every((c) => c.status === 200));
    const asked = deletes.flatMap((c) => c.params.message_ids as number[]);
    assert.deepEqual([...asked].sort(), recorded.flatMap((r) => r.ids).sort(), 'every message asked once');
    for (const r of recorded) {
      const call = deletes.filter((c) => r.ids.every((id) => (c.params.message_ids as number[]).includes(id)));
      assert.equal(call.length, 1, `messages ${r.ids.join(',')} deleted once`);
      assert.equal(Number(call[0]!.params.chat_id), USER);
      const lateness = call[0]!.at - r.deleteAt;
      t.diagnostic(`messages ${r.ids.join(',')}: deleted ${lateness} ms after delete_at`);
      assert.ok(lateness >= 0 && lateness <= 2000, `messages ${r.ids.join(',')}: ${lateness} ms after delete_at`);
      assert.ok(call[0]!.at > killedAt);
    }
    // What is left: the user's /start, /secret and /keep, /keep's reply, and the notice after the document.
    assert.deepEqual(
      emu.messages(USER).map((m) => [m.message_id, m.fromBot ? 'bot' : 'user', m.text]),
      [
        [1, 'user', '/start'],
        [2, 'user', '/secret'],
        [4, 'user', '/keep'],
        [8, 'bot', 'This one stays.'],
        [9, 'bot', DEFAULT_DELETED_NOTICE],
      ],
    );
    assert.deepEqual(
      emu.callsOf('sendMessage').map((c) => [Number(c.params.chat_id), c.params.text]),
      [[USER, DEFAULT_DELETED_NOTICE]],
      'one notice, for the document only',
    );
    assert.deepEqual(await rows(), [], "the notice has no deletion of its own, although the bot's default applies");

    const exit = await bots[1]!.kill('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, `a clean stop:\n${bots[1]!.stderr.slice(-2000)}`);
  } finally {
    for (const b of bots) if (b.child.exitCode === null && b.child.signalCode === null) await b.kill('SIGKILL');
    await store.close();
    await emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
