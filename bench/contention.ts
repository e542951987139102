/**
 * Lateness under contention at Telegram's limits (benchmark C): the service (`tg-janitor start`, default
 * TELEGRAM_RATE) against the emulator enforcing Telegram's limits (30 calls/s, one message a second per private
 * chat, 429 beyond), while a `recipients`-recipient broadcast is deleted and another is sent to as many users; a
 * delivery falls due every second and a new user sends /start every second. Measured: each delivery's deletion
 * lateness (its deleteMessages reaching the emulator, against its delete_at), each /start's reply time (the update
 * given to the bot until its answer reaches the emulator), and what bulk work got meanwhile. Without `contention`
 * the same deliveries and users meet an idle service (the on-time wake-ups' own lateness).
 *
 *   npm run bench:contention [-- --quick]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { BotApiEmulator } from '../test/support/bot-api-emulator.ts';
import { HEAP_FLAGS } from '../test/support/dockerfile.ts';
import { openStore, type Store } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';
import { insertBroadcast } from '../src/store/broadcasts.ts';
import { insertDeletion } from '../src/store/deletions.ts';

const BIN = fileURLToPath(new URL('../bin/tg-janitor.js', import.meta.url));
const ADMIN = 42;
/** Chat ids of each population, far apart. */
const RECIPIENT = 10_000_000;
const AUDIENCE = 20_000_000;
const DELIVERY = 30_000_000;
const NEWCOMER = 40_000_000;
/** Telegram's limits as the emulator enforces them, and the service's default rate under them. */
const TELEGRAM_LIMIT = 30;
/** The deliveries' first delete_at, after the service's start. */
const LEAD_MS = 5000;

/** p50, p99, max (ms) of a sample, and how many were never seen. */
export interface Spread {
  n: number;
  p50: number;
  p99: number;
  max: number;
  missing: number;
}

/** What one contention run measured. */
export interface ContentionFigures {
  contention: boolean;
  seconds: number;
  /** Deletion lateness of the deliveries (ms after delete_at). */
  lateness: Spread;
  /** Reply time of /start (ms). */
  reply: Spread;
  /** Bulk calls per second over the window (broadcast deletions + copies). */
  bulkPerS: number;
  /** All calls per second the emulator admitted over the window (its limit is 30). */
  callsPerS: number;
  answered429: number;
}

function spread(samples: (number | undefined)[]): Spread {
  const seen = samples.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  const at = (q: number) => seen[Math.min(seen.length - 1, Math.ceil(q * seen.length) - 1)] ?? NaN;
  return {
    n: samples.length,
    p50: at(0.5),
    p99: at(0.99),
    max: seen.at(-1) ?? NaN,
    missing: samples.length - seen.length,
  };
}

export async function benchContention(
  opts: { seconds?: number; recipients?: number; contention?: boolean } = {},
): Promise<ContentionFigures> {
  const seconds = opts.seconds ?? 60;
  const recipients = opts.recipients ?? 20_000;
  const contention = opts.contention ?? true;
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-c-'));
  const url = `sqlite:${join(dir, 'bench.db')}`;
  const emu = await BotApiEmulator.start({ rateLimit: TELEGRAM_LIMIT, chatLimits: true });
  const store = await openStore(url);
  try {
    await migrateToLatest(store);
    const start = Date.now();
    const deleteAt = (k: number) => start + LEAD_MS + k * 1000;
    const deliveries = await seedDeliveries(store, emu, seconds, deleteAt);
    if (contention) await seedBroadcasts(store, emu, recipients, start);

    const child = spawn(process.execPath, [...HEAP_FLAGS, BIN, 'start'], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: url,
        BOT_TOKEN: emu.token,
        BOT_API_ROOT: emu.url,
        ADMIN_IDS: String(ADMIN),
        HTTP_PORT: '0',
        BACKUP_DIR: join(dir, 'backups'),
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
        SHUTDOWN_TIMEOUT_S: '5',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err = (err + String(c)).slice(-4000)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const pushedAt: number[] = [];
    try {
      // A newcomer every second, from the first delivery's delete_at on.
      await sleep(Math.max(0, deleteAt(0) - Date.now()));
      for (let k = 0; k < seconds; k++) {
        await sleep(Math.max(0, deleteAt(k) + 500 - Date.now()));
        if (child.exitCode !== null) throw new Error(`the service exited: ${err}`);
        pushedAt.push(Date.now());
        emu.sendUserMessage({ id: NEWCOMER + k, first_name: 'New' }, '/start');
      }
      await sleep(2000);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }

    // First arrival of a call by method and chat.
    const first = new Map<string, number>();
    for (const c of emu.calls) {
      const key = `${c.method}:${String(c.params.chat_id)}`;
      if (!first.has(key)) first.set(key, c.at);
    }
    const arrival = (method: string, chat: number) => first.get(`${method}:${chat}`);
    const lateness = deliveries.map((d) => {
      const at = arrival('deleteMessages', d.chat) ?? arrival('deleteMessage', d.chat);
      return at === undefined ? undefined : at - d.deleteAt;
    });
    const reply = pushedAt.map((t, k) => {
      const at = arrival('sendMessage', NEWCOMER + k);
      return at === undefined ? undefined : at - t;
    });
    const [from, to] = [deleteAt(0), deleteAt(seconds)];
    const inWindow = emu.calls.filter((c) => c.at >= from && c.at < to && c.method !== 'getUpdates');
    const bulk = inWindow.filter((c) => {
      const chat = Number(c.params.chat_id);
      return (c.method === 'deleteMessage' && chat >= RECIPIENT && chat < AUDIENCE) || c.method === 'copyMessage';
    });
    const figures: ContentionFigures = {
      contention,
      seconds,
      lateness: spread(lateness),
      reply: spread(reply),
      bulkPerS: bulk.filter((c) => c.status === 200).length / seconds,
      callsPerS: inWindow.filter((c) => c.status !== 429).length / seconds,
      answered429: emu.calls.filter((c) => c.status === 429).length,
    };
    const s = (x: Spread) =>
      `p50 ${x.p50} ms, p99 ${x.p99} ms, max ${x.max} ms${x.missing ? `, ${x.missing} missing` : ''}`;
    console.log(
      `${contention ? `contention (a ${recipients}-recipient broadcast deleted, another sent)` : 'idle'}, ${seconds} s: ` +
        `deletion lateness ${s(figures.lateness)}; /start reply ${s(figures.reply)}; bulk ${figures.bulkPerS.toFixed(1)}/s, ` +
        `all ${figures.callsPerS.toFixed(1)}/s, ${figures.answered429} 429s`,
    );
    return figures;
  } finally {
    await store.close();
    await emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A delivery (one message, with its "deleted" notice) in its own chat falling due each second; their chats and times. */
async function seedDeliveries(
  store: Store,
  emu: BotApiEmulator,
  seconds: number,
  deleteAt: (k: number) => number,
): Promise<{ chat: number; deleteAt: number }[]> {
  const out = Array.from({ length: seconds }, (_, k) => ({ chat: DELIVERY + k, deleteAt: deleteAt(k) }));
  const now = Date.now();
  for (const d of out) {
    const messageIds = [emu.addMessage(d.chat, { text: 'file', sentAt: now - 60_000 })];
    await insertDeletion(store, { userId: d.chat, chatId: d.chat, messageIds, deleteAt: d.deleteAt, createdAt: now });
  }
  return out;
}

/** A sent broadcast due now with `n` recipients, and one being sent to `n` users. */
async function seedBroadcasts(store: Store, emu: BotApiEmulator, n: number, now: number): Promise<void> {
  const source = emu.addMessage(ADMIN, { text: 'News', fromBot: false });
  const make = (createdAt: number, durationHours: number) =>
    insertBroadcast(store, {
      fromChatId: ADMIN,
      messageId: source,
      text: 'News',
      caption: null,
      fileId: null,
      durationHours,
      createdAt,
      progressChatId: null,
      progressMessageId: null,
    });
  const due = await make(now - 3600_000 - 1000, 1);
  await store.db.updateTable('broadcasts').set({ status: 'sent' }).where('id', '=', due).execute();
  for (let i = 0; i < n; i++) emu.addMessage(RECIPIENT + i, { text: 'News' });
  await sql`
    with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ${n})
    insert into broadcast_messages (broadcast_id, chat_id, message_id)
    select ${due}, ${RECIPIENT} + i, 1 from n`.execute(store.db);
  await sql`
    with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ${n})
    insert into users (user_id, username, first_name, joined_at, is_banned, user_access_count, blocked_at)
    select ${AUDIENCE} + i, null, 'U', ${now}, 0, 0, null from n`.execute(store.db);
  await make(now, 47);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  await benchContention({ seconds: quick ? 20 : 60, contention: false });
  await benchContention({ seconds: quick ? 20 : 60 });
}
