/**
 * Fault scenario 3, Telegram down: deliveries fall due, then for 60 s every Bot API call gets a 5xx or hangs until
 * the client times out; then Telegram is healthy again. Everything due is done within 3 minutes of the outage's end,
 * nothing is dropped, and no row gets more than 20 calls during the outage (the back-off works, no tight loop).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BotApiEmulator, type Failure } from '../support/bot-api-emulator.ts';
import { createTestDb } from '../support/db.ts';
import { JanitorProcess, secs, serviceEnv, waitUntil } from '../support/janitor-process.ts';
import { messagesLeft, noticeFigures, noticesPerRow, rng, seedDeliveries, workLeft } from '../support/deliveries.ts';

const OUTAGE_MS = 60_000;
const RECOVERY_BOUND_MS = 180_000;
const MAX_CALLS_PER_ROW = 20;

const OUTAGE: Failure[] = [
  {
    kind: 'status',
    code: 502,
    description: 'Bad Gateway',
    rawBody: '<html><body><h1>502 Bad Gateway</h1></body></html>',
  },
  { kind: 'timeout' },
  { kind: 'status', code: 503, description: 'Service Unavailable' },
  { kind: 'timeout' },
  { kind: 'status', code: 500, description: 'Internal Server Error' },
];

test('Telegram down: 60 s of 5xx and time-outs for every call, then healthy', { timeout: 420_000 }, async (t) => {
  const emu = await BotApiEmulator.start();
  const tdb = await createTestDb('postgres');
  const svc = new JanitorProcess(
    'instance-1',
    serviceEnv({ databaseUrl: tdb.url, emu, extra: { TELEGRAM_TIMEOUT_S: '3' } }),
  );
  try {
    const store = await tdb.open();
    await svc.start();
    // One row per chat, so a chat's calls are its row's calls.
    const chats = Array.from({ length: 200 }, (_, i) => 30_001 + i);
    emu.failAll(OUTAGE);
    const tDown = Date.now();
    const deliveries = await seedDeliveries(store, emu, {
      rows: chats.length,
      chats,
      deleteAt: () => tDown,
      maxMessages: 3,
      random: rng(3),
      prefix: 'd',
    });
    await sleep(OUTAGE_MS - (Date.now() - tDown)); // the outage lasts this long: a fault's duration, not a check
    emu.failAll(null);
    const tUp = Date.now();
    const alive = svc.alive;

    const perChat = new Map<number, number>(chats.map((c) => [c, 0]));
    const statuses: Record<string, number> = {};
    let withoutChat = 0;
    for (const c of emu.calls) {
      if (c.at < tDown || c.at >= tUp) continue;
      statuses[c.status] = (statuses[c.status] ?? 0) + 1;
      const chat = Number(c.params.chat_id);
      if (perChat.has(chat)) perChat.set(chat, perChat.get(chat)! + 1);
      else withoutChat++;
    }
    const rowCalls = [...perChat.values()];
    const maxPerRow = Math.max(...rowCalls);
    const meanPerRow = Math.round((rowCalls.reduce((a, b) => a + b, 0) / rowCalls.length) * 10) / 10;

    let left = await workLeft(store);
    let recovered = false;
    try {
      await waitUntil(
        async () => {
          left = await workLeft(store);
          return left.deletions === 0 && messagesLeft(emu, deliveries) === 0;
        },
        'every due row done after the outage',
        RECOVERY_BOUND_MS,
      );
      recovered = true;
    } catch {
      // reported below with the figures
    }
    const tDone = Date.now();
    const counts = noticesPerRow(emu, deliveries);
    const { missing, repeats } = noticeFigures(counts);
    const figures = {
      rows: deliveries.length,
      outage_s: secs(tDown, tUp),
      calls_during_outage: rowCalls.reduce((a, b) => a + b, 0) + withoutChat,
      calls_per_row_max: maxPerRow,
      calls_per_row_mean: meanPerRow,
      calls_without_chat: withoutChat,
      outage_answers: statuses,
      seconds_to_recover: recovered ? secs(tUp, tDone) : `> ${RECOVERY_BOUND_MS / 1000}`,
      rows_left: left.deletions,
      messages_left: messagesLeft(emu, deliveries),
      notices_missing: missing.length,
      notices_repeated: repeats,
    };
    t.diagnostic(`telegram-down figures: ${JSON.stringify(figures)}`);

    assert.ok(alive, 'the service stayed up through the outage');
    assert.ok(
      maxPerRow <= MAX_CALLS_PER_ROW,
      `at most ${MAX_CALLS_PER_ROW} calls per row during the outage (max ${maxPerRow})`,
    );
    assert.ok(
      recovered,
      `everything due done within ${RECOVERY_BOUND_MS / 1000} s of the outage's end (${left.deletions} rows, ${figures.messages_left} messages left)`,
    );
    assert.deepEqual(missing, [], 'every row got its "deleted" notice');
    assert.equal(repeats, 0, 'no notice twice: a failed call never did anything');
    const exit = await svc.stop();
    assert.equal(exit?.code, 0, 'stopped cleanly on SIGTERM');
  } finally {
    if (svc.alive) await svc.current!.kill('SIGKILL');
    svc.saveLogs('telegram-down');
    await emu.close();
    await tdb.drop();
  }
});
