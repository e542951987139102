/**
 * A broadcast at scale (benchmark D): deleting a broadcast sent to `recipients` chats, in its own process
 * (`tg-janitor run broadcast-deleter`, as an operator would run it), against the Bot API emulator in another process
 * that answers 429 past Telegram's limit. The service is configured at `rate` calls per second (TELEGRAM_RATE), the
 * emulator's limit 20 % above it, as the defaults are (25 against Telegram's 30). Measured: the time, the calls per
 * second against the rate, the 429s, and the deleting process's peak resident memory (VmHWM).
 *
 *   npm run bench:broadcast                         # 1,000,000 recipients (BENCH_RECIPIENTS), BENCH_RATE 2500/s
 */
import { statusKb } from './proc.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { openStore } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';
import { insertBroadcast } from '../src/store/broadcasts.ts';
import { startEmulatorProcess, type EmulatorProcess } from './emulator-client.ts';
import { HEAP_FLAGS } from '../test/support/dockerfile.ts';
import { setTimeout as sleep } from 'node:timers/promises';

const BIN = fileURLToPath(new URL('../bin/tg-janitor.js', import.meta.url));
/** The first recipient's chat id (private chats: positive). */
const FIRST_CHAT = 10_000_000;

/** What one broadcast run measured (deleting or sending). */
export interface BroadcastFigures {
  dialect: string;
  recipients: number;
  /** TELEGRAM_RATE the process ran at; the emulator answers 429 above `telegramLimit`. */
  rate: number;
  telegramLimit: number;
  /** Deleting: from the process's start to its exit; sending: until the broadcast was seen sent. */
  seconds: number;
  /** deleteMessage (copyMessage) calls per second between the first and the last one the emulator received. */
  callsPerS: number;
  /** `callsPerS / rate`. */
  ofRate: number;
  calls: number;
  answered429: number;
  peakRssMiB: number;
  /** Deleting: recipient rows left after the run (0: every one dealt with). */
  left?: number;
  /** Sending: recipients recorded with their copy's id (what the deleter will delete). */
  recorded?: number;
  /** Sending: how late the emulator's answers were, ms (0: at once). */
  latencyMs?: number;
}

export async function benchBroadcastDeletion(
  recipients = Number(process.env.BENCH_RECIPIENTS ?? 1_000_000),
  rate = Number(process.env.BENCH_RATE ?? 2500),
  databaseUrl = process.env.BENCH_DATABASE_URL,
): Promise<BroadcastFigures> {
  return withEmulator(rate, databaseUrl, false, 0, async ({ dir, url, telegramLimit, emu }) => {
    // Every recipient's copy, in the emulator (one message each) and in the database (its message id).
    for (let from = 0; from < recipients; from += 100_000) {
      const n = Math.min(100_000, recipients - from);
      await emu.seed(
        Array.from({ length: n }, (_, i) => FIRST_CHAT + from + i),
        1,
      );
    }
    const store = await openStore(url);
    let dialect: string = store.dialect;
    try {
      await migrateToLatest(store);
      const now = Date.now();
      const id = await insertBroadcast(store, {
        fromChatId: 1,
        messageId: 1,
        text: 'bench',
        caption: null,
        fileId: null,
        durationHours: 1,
        createdAt: now - 3600_000 - 1000,
        progressChatId: null,
        progressMessageId: null,
      });
      await store.db.updateTable('broadcasts').set({ status: 'sent' }).where('id', '=', id).execute();
      // Message id 1 in every chat: each chat's first message (see the seeding above).
      await sql`
        with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ${recipients})
        insert into broadcast_messages (broadcast_id, chat_id, message_id)
        select ${id}, ${FIRST_CHAT} + i, 1 from n`.execute(store.db);
    } finally {
      await store.close();
    }

    const { seconds, peakKb, out } = await runService(['run', 'broadcast-deleter', '--json'], {
      DATABASE_URL: url,
      BOT_TOKEN: emu.token,
      BOT_API_ROOT: emu.url,
      TELEGRAM_RATE: String(rate),
      BACKUP_DIR: join(dir, 'backups'),
    });
    const summary = JSON.parse(out) as { messages_deleted: number; broadcasts_done: number };

    const store2 = await openStore(url);
    let left: number;
    try {
      dialect = store2.dialect;
      const r = await store2.db
        .selectFrom('broadcast_messages')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      left = Number(r.n);
    } finally {
      await store2.close();
    }
    const figures: BroadcastFigures = {
      ...(await callFigures(emu, 'deleteMessage', rate)),
      dialect,
      recipients,
      telegramLimit,
      seconds,
      peakRssMiB: peakKb / 1024,
      left,
    };
    console.log(
      `broadcast deletion on ${dialect}: ${recipients} recipients at TELEGRAM_RATE ${rate} (429 above ${telegramLimit}): ` +
        `${summary.messages_deleted} deleted in ${seconds.toFixed(1)} s, ${figures.callsPerS.toFixed(0)} calls/s ` +
        `(${(figures.ofRate * 100).toFixed(1)} % of the rate), ${figures.answered429} 429s, peak RSS ${figures.peakRssMiB.toFixed(0)} MiB, ${left} left`,
    );
    return figures;
  });
}

/**
 * Sending a broadcast to `recipients` users: the service (`tg-janitor start`, its bot long-polling) sends a broadcast
 * an admin made as a paid broadcast (BROADCAST_PAID, at BROADCAST_PAID_RATE `rate`, default 1000), against the
 * emulator answering 429 20 % above it for paid copies and above 30/s for the rest, each answer `latencyMs` late
 * (BENCH_LATENCY_MS, default 0): real Telegram answers in 50–100 ms, which a sender must not wait out copy by copy.
 */
export async function benchBroadcastSending(
  recipients = Number(process.env.BENCH_RECIPIENTS ?? 1_000_000),
  rate = Number(process.env.BENCH_PAID_RATE ?? 1000),
  databaseUrl = process.env.BENCH_DATABASE_URL,
  latencyMs = Number(process.env.BENCH_LATENCY_MS ?? 0),
): Promise<BroadcastFigures> {
  const ADMIN = 42;
  return withEmulator(rate, databaseUrl, true, latencyMs, async ({ dir, url, telegramLimit, emu }) => {
    const [[source]] = (await emu.seed([ADMIN], 1)) as [[number]];
    const store = await openStore(url);
    try {
      await migrateToLatest(store);
      const now = Date.now();
      await sql`
        with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ${recipients})
        insert into users (user_id, username, first_name, joined_at, is_banned, user_access_count, blocked_at)
        select ${FIRST_CHAT} + i, null, 'U', ${now}, 0, 0, null from n`.execute(store.db);
      await insertBroadcast(store, {
        fromChatId: ADMIN,
        messageId: source,
        text: 'bench',
        caption: null,
        fileId: null,
        durationHours: 47,
        createdAt: now,
        progressChatId: null,
        progressMessageId: null,
      });
      const sent = async () => {
        const b = await store.db.selectFrom('broadcasts').select('status').executeTakeFirst();
        return b?.status === 'sent';
      };
      const { seconds, peakKb } = await runService(
        ['start'],
        {
          DATABASE_URL: url,
          BOT_TOKEN: emu.token,
          BOT_API_ROOT: emu.url,
          BROADCAST_PAID: 'true',
          BROADCAST_PAID_RATE: String(rate),
          BACKUP_DIR: join(dir, 'backups'),
          HTTP_PORT: '0',
          SHUTDOWN_TIMEOUT_S: '5',
        },
        sent,
      );
      const r = await store.db
        .selectFrom('broadcast_messages')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('message_id', '>', 0)
        .executeTakeFirstOrThrow();
      const figures: BroadcastFigures = {
        ...(await callFigures(emu, 'copyMessage', rate)),
        dialect: store.dialect,
        recipients,
        telegramLimit,
        seconds,
        peakRssMiB: peakKb / 1024,
        recorded: Number(r.n),
        latencyMs,
      };
      console.log(
        `broadcast sending on ${store.dialect}: ${recipients} users${latencyMs ? `, answers after ${latencyMs} ms` : ''}, paid, at BROADCAST_PAID_RATE ${rate} (429 above ${telegramLimit}): ` +
          `${figures.recorded ?? 0} copies recorded in ${seconds.toFixed(1)} s, ${figures.callsPerS.toFixed(0)} calls/s ` +
          `(${(figures.ofRate * 100).toFixed(1)} % of the rate), ${figures.answered429} 429s, peak RSS ${figures.peakRssMiB.toFixed(0)} MiB`,
      );
      return figures;
    } finally {
      await store.close();
    }
  });
}

/** What the emulator saw of `method`: its calls, their rate between the first and the last, its 429s. */
async function callFigures(emu: EmulatorProcess, method: string, rate: number) {
  const m = (await emu.report())[method];
  if (!m) throw new Error(`the emulator received no ${method}`);
  const callsPerS = m.calls / ((m.last - m.first) / 1000);
  return { rate, calls: m.calls, callsPerS, ofRate: callsPerS / rate, answered429: m.status['429'] ?? 0 };
}

/**
 * Runs `fn` with a temporary folder, the database (`databaseUrl`, or SQLite in that folder) and the emulator in its
 * own process answering 429 20 % above `rate` (no limit for 0; `paid`: for paid broadcast copies, and above 30/s for
 * the rest), each answer `latencyMs` late (a round trip to Telegram); cleans up after.
 */
async function withEmulator<T>(
  rate: number,
  databaseUrl: string | undefined,
  paid: boolean,
  latencyMs: number,
  fn: (w: { dir: string; url: string; telegramLimit: number; emu: EmulatorProcess }) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-bc-'));
  const telegramLimit = Math.round(rate * 1.2);
  // Paid broadcast copies have their own limit; the free one stays Telegram's 30/s for the rest.
  const limits = paid ? { rateLimit: 30, paidRateLimit: telegramLimit } : { rateLimit: telegramLimit };
  const emu = await startEmulatorProcess({ ...(rate > 0 ? limits : {}), ...(latencyMs > 0 ? { latencyMs } : {}) });
  try {
    return await fn({ dir, url: databaseUrl ?? `sqlite:${join(dir, 'bench.db')}`, telegramLimit, emu });
  } finally {
    emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs `tg-janitor <args>` as the shipped commands do (node with {@link HEAP_FLAGS}) until it exits, or until `done`
 * (asked every 500 ms) holds and a SIGTERM stops it; its time, peak resident memory (VmHWM) and stdout.
 */
async function runService(
  args: string[],
  env: Record<string, string>,
  done?: () => Promise<boolean>,
): Promise<{ seconds: number; peakKb: number; out: string }> {
  const t = performance.now();
  const child = spawn(process.execPath, [...HEAP_FLAGS, BIN, ...args], {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += String(c)));
  child.stderr.on('data', (c: Buffer) => (err = (err + String(c)).slice(-4000)));
  // VmHWM only grows: the last reading before the exit is the peak.
  let peakKb = 0;
  const sample = setInterval(() => {
    try {
      const v = statusKb(child.pid!, 'VmHWM');
      if (v > peakKb) peakKb = v;
    } catch {
      // The process has just exited.
    }
  }, 100);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let stopped = false;
  let seconds = 0;
  if (done) {
    for (;;) {
      const r = await Promise.race([exited.then(() => 'exit' as const), sleep(500).then(() => 'tick' as const)]);
      if (r === 'exit') break;
      if (await done()) {
        seconds = (performance.now() - t) / 1000;
        stopped = true;
        child.kill('SIGTERM');
        break;
      }
    }
  }
  const code = await exited;
  clearInterval(sample);
  if (!stopped) seconds = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error(`tg-janitor ${args[0]} exited ${code}: ${err}`);
  return { seconds, peakKb, out };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (!process.argv.includes('--send-only')) await benchBroadcastDeletion();
  if (!process.argv.includes('--delete-only')) await benchBroadcastSending();
}
