/**
 * `tg-janitor demo`: the whole service against the built-in Bot API emulator and a temporary SQLite database, with
 * seeded users, tokens, deletions due within seconds and a short broadcast, and schedules compressed to seconds, so
 * every scheduler can be watched working within a minute. No Telegram token, no .env, no DATABASE_URL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dayIn } from '../clock.ts';
import { loadConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { startService } from '../service.ts';
import type { Store } from '../store/db.ts';
import { insertDeletion } from '../store/deletions.ts';
import { BotApiEmulator } from './bot-api-emulator.ts';

/** The compressed schedules the demo runs with. */
const DEMO_SCHEDULES = {
  SCHEDULE_TOKEN_CLEANUP: '*/10 * * * * *',
  SCHEDULE_MESSAGE_DELETER: '*/5 * * * * *',
  SCHEDULE_BROADCAST_DELETER: '*/10 * * * * *',
  SCHEDULE_TOKEN_COUNT_RESET: '*/15 * * * * *',
  SCHEDULE_STATS: '*/15 * * * * *',
  SCHEDULE_HEALTH_CHECK: '*/10 * * * * *',
  SCHEDULE_BACKUP: '*/30 * * * * *',
  BACKUP_KEEP: '3',
  SCHEDULE_ANALYTICS: '*/15 * * * * *',
};

/** A running demo. */
export interface Demo {
  url: string;
  /** Stops everything and removes the temporary database. */
  stop(): Promise<void>;
}

/** Starts the demo. Only HTTP_HOST, HTTP_PORT, TIMEZONE, LOG_* and STATUS_REFRESH_S are taken from `env`. */
export async function startDemo(env: Record<string, string | undefined>, logger: Logger): Promise<Demo> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-janitor-demo-'));
  const emulator = await BotApiEmulator.start({ botUsername: 'tg_janitor_demo_bot' });
  try {
    const pick = (k: string) => (env[k] ? { [k]: env[k] } : {});
    const config = loadConfig({
      ...pick('HTTP_HOST'),
      HTTP_PORT: env.HTTP_PORT || '0',
      ...pick('TIMEZONE'),
      ...pick('LOG_LEVEL'),
      ...pick('LOG_FORMAT'),
      ...pick('STATUS_REFRESH_S'),
      DATABASE_URL: `sqlite:${join(dir, 'demo.db')}`,
      BACKUP_DIR: join(dir, 'backups'),
      BOT_TOKEN: emulator.token,
      BOT_API_ROOT: emulator.url,
      ADMIN_IDS: '1',
      STORAGE_CHANNEL_ID: '-1001000000001',
      TELEGRAM_RATE: '25',
      ...DEMO_SCHEDULES,
    });
    const service = await startService(config, logger, { pollTimeoutS: 5 });
    // A failed seed must not leave the service running on a database about to be removed.
    await seed(service.store, emulator, config.timezone).catch(async (e: unknown) => {
      await service.stop();
      throw e;
    });
    return {
      url: `${service.http.url}/`,
      async stop() {
        await service.stop();
        await emulator.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await emulator.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

const DAY = 86400_000;

/** Users, tokens, counts, deletions due in the next seconds and a broadcast due in 12 s. */
async function seed(store: Store, emu: BotApiEmulator, tz: string): Promise<void> {
  const now = Date.now();
  const users = Array.from({ length: 24 }, (_, i) => 5_000_001 + i);
  await store.db
    .insertInto('users')
    .values(
      users.map((u, i) => ({
        user_id: u,
        username: `demo_user_${i + 1}`,
        first_name: `Demo ${i + 1}`,
        joined_at: now - (i + 1) * DAY,
        is_banned: 0,
        user_access_count: i % 5,
        blocked_at: null,
      })),
    )
    .execute();
  emu.blockUser(users[3]!);

  const statuses = ['verified', 'bypassed', 'not_used'] as const;
  await store.db
    .insertInto('tokens')
    .values(
      Array.from({ length: 18 }, (_, i) => ({
        token: `demo-token-${i}`,
        unique_id: `demo${i}`,
        created_by: users[i % users.length]!,
        status: statuses[i % 3]!,
        created_at: now - 3 * DAY + i * 3600_000,
        expires_at: i < 12 ? now - DAY + i * 60_000 : now + DAY,
        file_unique_id: null,
      })),
    )
    .execute();
  const yesterday = dayIn(new Date(now - DAY), tz);
  const today = dayIn(new Date(now), tz);
  await store.db
    .insertInto('token_generator_count')
    .values(
      users.slice(0, 8).map((u, i) => ({ user_id: u, date: i < 6 ? yesterday : today, token_generated: 1 + (i % 4) })),
    )
    .execute();
  // Two weeks of token history, so the chart has a shape from the start.
  await store.db
    .insertInto('token_stats')
    .values(
      Array.from({ length: 14 }, (_, i) => dayIn(new Date(now - (13 - i) * DAY), tz))
        .filter((d, i, a) => a.indexOf(d) === i)
        .map((day, i) => ({ day, created: 20 + ((i * 7) % 13), verified: 12 + ((i * 5) % 7), bypassed: 2 + (i % 3) })),
    )
    .execute();

  // Deliveries that delete themselves 2 to 18 seconds from now (one to the user who blocked the bot).
  for (let i = 0; i < 14; i++) {
    const chat = users[i]!;
    const ids = Array.from({ length: 1 + (i % 3) }, () => emu.addMessage(chat, { text: `demo file ${i + 1}` }));
    await insertDeletion(store, {
      userId: chat,
      chatId: chat,
      messageIds: ids,
      deleteAt: now + 2000 + i * 1200,
      uniqueId: `demoFile${i + 1}`,
      createdAt: now,
    });
  }

  const b = await store.db
    .insertInto('broadcasts')
    .values({
      source_id: null,
      dedupe_key: `demo:${now}`,
      message_id: 1,
      text: 'Demo broadcast: deleted 12 seconds after it was sent',
      caption: null,
      file_id: null,
      duration_hours: 12 / 3600,
      channel_message_id: null,
      created_at: now,
      delete_at: now + 12_000,
      status: 'sent',
      from_chat_id: 1,
      send_cursor: null,
      sent_count: users.length,
      failed_count: 0,
      claimed_by: null,
      claim_expires_at: null,
      progress_chat_id: null,
      progress_message_id: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await store.db
    .insertInto('broadcast_messages')
    .values(
      users.map((u) => ({
        broadcast_id: Number(b.id),
        chat_id: u,
        message_id: emu.addMessage(u, { text: 'Demo broadcast' }),
      })),
    )
    .execute();
}
