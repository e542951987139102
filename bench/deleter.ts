/**
 * Message-deleter throughput (benchmark A): due rows over chats of 5 rows each (1–5 messages a row, 15 a chat)
 * against the Bot API emulator in another process with no rate limit. Prints rows/s, messages/s, Bot API calls per
 * row and peak memory; {@link httpCeiling} measures what plain keep-alive `node:http` and grammY's default client
 * reach against the same emulator.
 *
 *   npm run bench:deleter                       # 100,000 rows (BENCH_ROWS), SQLite in a temporary folder
 *   BENCH_DATABASE_URL=postgres://root@127.0.0.1:5432/test?schema=bench npm run bench:deleter
 *   BENCH_ROWS_PER_CHAT=1 npm run bench:deleter  # one due row per chat instead of 5: a notice per row
 */
import { startEmulatorProcess, type EmulatorProcess } from './emulator-client.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { openStore, type Store } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';
import { createTelegram } from '../src/telegram/client.ts';
import { deleteDueMessages } from '../src/jobs/message-deleter.ts';

const PER_CHAT = 5;
/** Messages of a chat's k-th row: 1 to 5. */
const PER_ROW = [1, 2, 3, 4, 5];

/**
 * Benchmark A's data: `chatCount` chats from `firstChat`, each with `perChat` due rows (default 5) of 1–5 messages
 * (15 real messages a chat in the emulator at 5 rows). Returns the rows.
 */
export async function seedDueRows(
  store: Store,
  emu: EmulatorProcess,
  chatCount: number,
  firstChat: number,
  perChat = PER_CHAT,
): Promise<number> {
  const chats = Array.from({ length: chatCount }, (_, i) => firstChat + i);
  const sizes = Array.from({ length: perChat }, (_, k) => PER_ROW[k % PER_ROW.length]!);
  const offsets = sizes.map((_, k) => sizes.slice(0, k).reduce((a, b) => a + b, 0));
  const ids = await emu.seed(
    chats,
    sizes.reduce((a, b) => a + b, 0),
  );
  const now = Date.now();
  const rows = chats.flatMap((chat, c) =>
    Array.from({ length: perChat }, (_, k) => ({
      source_id: null,
      dedupe_key: `bench:${chat}:${k}`,
      user_id: chat,
      chat_id: chat,
      message_ids: JSON.stringify(ids[c]!.slice(offsets[k], offsets[k]! + sizes[k]!)),
      delete_at: now - 1000,
      unique_id: `f${k}`,
      created_at: now - 60_000,
      attempts: 0,
      next_attempt_at: now - 1000,
      last_error: null,
      messages_deleted: 0,
      claimed_by: null,
      claim_expires_at: null,
    })),
  );
  for (let i = 0; i < rows.length; i += 500)
    await store.db
      .insertInto('pending_deletions')
      .values(rows.slice(i, i + 500))
      .execute();
  return rows.length;
}

/** What one throughput run measured. */
export interface DeleterFigures {
  dialect: string;
  rows: number;
  /** Due rows per chat (a notice stands for up to 10 of one chat). */
  rowsPerChat: number;
  messages: number;
  seconds: number;
  rowsPerS: number;
  messagesPerS: number;
  callsPerRow: number;
  peakRssMiB: number;
}

export async function benchDeleter(
  rowsWanted = Number(process.env.BENCH_ROWS ?? 100_000),
  databaseUrl = process.env.BENCH_DATABASE_URL,
  perChat = Number(process.env.BENCH_ROWS_PER_CHAT ?? PER_CHAT),
): Promise<DeleterFigures> {
  const ROWS = Math.ceil(rowsWanted / perChat) * perChat;
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-'));
  const url = databaseUrl ?? `sqlite:${join(dir, 'bench.db')}`;
  const emu = await startEmulatorProcess();
  const store = await openStore(url, { poolSize: 20 });
  try {
    await migrateToLatest(store);
    await store.db.deleteFrom('pending_deletions').execute();
    await store.db.deleteFrom('day_counters').execute();
    await seedDueRows(store, emu, ROWS / perChat, 1_000_000, perChat);

    const telegram = createTelegram({ token: emu.token, apiRoot: emu.url, rate: 0 });
    let peakRss = 0;
    const sample = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
    const t = performance.now();
    const s = await deleteDueMessages(
      { store, telegram, owner: 'bench', concurrency: 64, batchSize: 1000 },
      {
        clock: systemClock,
        wallClock: systemClock,
        dryRun: false,
        signal: new AbortController().signal,
        logger: createLogger({ level: 'warn' }),
      },
    );
    const secs = (performance.now() - t) / 1000;
    clearInterval(sample);
    const methods = await emu.methods();
    const calls =
      (methods.deleteMessages ?? 0) + (methods.deleteMessage ?? 0) + (methods.sendMessage ?? 0) + (methods.getMe ?? 0);
    const figures: DeleterFigures = {
      dialect: store.dialect,
      rows: s.rows,
      rowsPerChat: perChat,
      messages: s.messages_deleted,
      seconds: secs,
      rowsPerS: s.rows / secs,
      messagesPerS: s.messages_deleted / secs,
      callsPerRow: calls / s.rows,
      peakRssMiB: peakRss / 2 ** 20,
    };
    console.log(
      `message-deleter on ${store.dialect}: ${s.rows} rows, ${s.messages_deleted} messages, ${s.notices_sent} notices in ${secs.toFixed(2)} s`,
    );
    console.log(
      `  ${figures.rowsPerS.toFixed(0)} rows/s, ${figures.messagesPerS.toFixed(0)} messages/s, ${figures.callsPerRow.toFixed(2)} calls/row (${JSON.stringify(methods)}), peak RSS ${figures.peakRssMiB.toFixed(0)} MiB`,
    );
    if (s.rows !== ROWS) throw new Error(`expected ${ROWS} rows, worked ${s.rows}`);
    return figures;
  } finally {
    await store.close();
    emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchDeleter();
