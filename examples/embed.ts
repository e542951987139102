/**
 * Embedding tg-janitor's schedulers in your own grammY bot.
 *
 *   npx tsx examples/embed.ts            # runs against ./data/example.db, no Telegram needed
 *
 * With a real bot, pass `bot` (a grammY Bot or Api) and the message and broadcast deleters run too.
 */
import { createJanitor } from 'tg-janitor';

const janitor = await createJanitor({
  databaseUrl: process.env.DATABASE_URL ?? 'sqlite:./data/example.db',
  config: { timezone: 'Europe/Berlin', logLevel: 'warn' },
  // bot,                       // your grammY Bot: enables message-deleter and broadcast-deleter
});

// The seed's manual-testing entry points, as methods:
const cleanup = await janitor.cleanupExpiredTokens();
const reset = await janitor.resetTokenCounts({ now: new Date('2026-11-29T00:00:05Z') });
console.log(`token-cleanup ${cleanup.status}: ${JSON.stringify(cleanup.summary)}`);
console.log(`token-count-reset ${reset.status}: ${JSON.stringify(reset.summary)}`);

// A bot schedules a deletion when it delivers a file (the message deleter removes it and sends "Click Here"):
const id = await janitor.scheduleDeletion({
  chatId: 123456789,
  messageIds: [10, 11],
  afterMinutes: 30,
  uniqueId: 'file-abc',
});
console.log(`scheduled deletion ${id}`);

await janitor.start(); // every scheduler on its cron, in the configured time zone
await janitor.stop(); // on shutdown: waits for runs in flight, closes the database
