/**
 * Admin commands (ADMIN_IDS only; everyone else gets silence): settings, share links, expiring broadcasts, status,
 * analytics and manual runs. Every command checks its arguments and answers clearly on bad input.
 */
import { Composer, type Context } from 'grammy';
import type { Clock } from '../clock.ts';
import { formatIn } from '../clock.ts';
import { isJobName, JOB_NAMES, SETTING_RANGES, type Config, type JobName } from '../config.ts';
import { logAtDebug, type Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import { createFile } from '../store/files.ts';
import { numberSetting, setSetting, type NumberSettingKey } from '../store/settings.ts';
import { insertBroadcast } from '../store/broadcasts.ts';
import { countAudience } from '../store/users.ts';
import { randomId, startLink } from '../telegram/links.ts';
import { classifyError } from '../telegram/errors.ts';
import type { SeedRunResult } from '../jobs/registry.ts';
import type { StatusSnapshot } from '../jobs/status.ts';
import { formatSummary } from '../jobs/overview.ts';
import { formatRate, formatRatio, formatSeconds, recentAnalytics, type AnalyticsDay } from '../jobs/analytics.ts';

/** The longest broadcast: Telegram deletes nothing older than 48 h, and the hourly deleter needs the margin. */
export const MAX_BROADCAST_HOURS = 47;

/**
 * Reads `/broadcast`'s duration: a bare number is hours (as it always was), or `30m`, `2h`, `1h30m`; from 1 minute
 * to {@link MAX_BROADCAST_HOURS} hours. Pure.
 */
export function parseBroadcastDuration(arg: string): { minutes: number } | { error: string } {
  const a = arg.trim().toLowerCase();
  if (!a) return { error: 'Give the duration.' };
  const m = /^(?:(\d{1,6})h?|(?:(\d{1,6})h)?(?:(\d{1,6})m))$/.exec(a);
  if (!m) return { error: `"${arg.trim().slice(0, 20)}" is not a duration.` };
  const minutes = m[1] !== undefined ? Number(m[1]) * 60 : Number(m[2] ?? 0) * 60 + Number(m[3]);
  if (minutes > MAX_BROADCAST_HOURS * 60) {
    return {
      error:
        `${formatMinutes(minutes)} is too long: at most ${MAX_BROADCAST_HOURS} hours. Telegram deletes nothing older ` +
        'than 48 hours, and the deletion needs the margin.',
    };
  }
  if (minutes < 1) return { error: 'At least 1 minute.' };
  return { minutes };
}

/** "30 min", "2 h", "1 h 30 min". */
export function formatMinutes(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return [h ? `${h} h` : '', m ? `${m} min` : ''].filter(Boolean).join(' ') || '0 min';
}

/** What the admin commands need. */
export interface AdminDeps {
  store: Store;
  config: Config;
  clock: Clock;
  logger: Logger;
  /** The user bot's username (share links point at it). */
  userBotUsername(): Promise<string>;
  /** Runs a job now. */
  runJob(job: JobName): Promise<SeedRunResult>;
  /** The service's status. */
  status(): Promise<StatusSnapshot>;
  /** Tells the broadcast sender there is work. */
  kickSender(): void;
  /** Set when the admin bot is a separate bot: broadcast content is copied to the storage channel with this Api. */
  separateAdminBot?: boolean;
}

const range = (k: NumberSettingKey) => `${SETTING_RANGES[k].min}–${SETTING_RANGES[k].max}`;

/** The commands that change a numeric setting (ranges in `SETTING_RANGES`, the fallback in store/settings.ts). */
const SETTING_COMMANDS: Record<string, { key: NumberSettingKey; what: string; describe: (n: number) => string }> = {
  setdeletetime: {
    key: 'delete_after_minutes',
    what: `minutes (${range('delete_after_minutes')}: Telegram deletes nothing older than 48 h)`,
    describe: (n) => `Files are deleted ${n} minutes after delivery.`,
  },
  settokenlimit: {
    key: 'token_generation_limit',
    what: `tokens per user per day (${range('token_generation_limit')})`,
    describe: (n) => `Users may create ${n} verification links a day.`,
  },
  setaccesscount: {
    key: 'media_access_count',
    what: `file accesses per verification (${range('media_access_count')})`,
    describe: (n) => `One verification grants ${n} file accesses.`,
  },
};

/** Parses a whole number in [min, max]; null when it is anything else. */
export function parseWhole(text: string, min: number, max: number): number | null {
  const t = text.trim();
  if (!/^\d{1,9}$/.test(t)) return null;
  const n = Number(t);
  return n >= min && n <= max ? n : null;
}

/** Parses `/link` arguments: `<id>` or `<first>-<last>` (at most 100 messages). */
export function parseLinkRange(text: string): number[] | string {
  const m = /^\s*(\d{1,10})\s*(?:-\s*(\d{1,10}))?\s*$/.exec(text);
  if (!m)
    return 'Usage: /link <message_id>, /link <first>-<last>, or reply /link to a message forwarded from the storage channel.';
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  if (a < 1 || b < a) return 'The range must be <first>-<last> with first ≤ last.';
  if (b - a >= 100) return 'A batch holds at most 100 messages.';
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** Days `/stats` shows, today included. */
export const STATS_COMMAND_DAYS = 7;

/** `/stats`' answer: each day's analytics, newest first, rates as percentages, `–` where nothing was counted. Pure. */
export function formatAnalyticsDays(days: AnalyticsDay[], timezone: string): string {
  const lines = [`📈 Analytics, last ${days.length} days (${timezone})`];
  for (const d of days)
    lines.push(
      '',
      d.day,
      `🎟️ tokens: ${formatRate(d.verification_rate)} verified, ${formatRate(d.bypass_rate)} bypassed (7 days: ${formatRate(d.bypass_rate_7d)})`,
      `🗑️ deletions: ${formatRate(d.on_time_share)} on time, lateness p50 ${formatSeconds(d.lateness_p50_s)}, p99 ${formatSeconds(d.lateness_p99_s)}`,
      `📦 ${formatRatio(d.deliveries_per_active_user)} files per active user · 📢 broadcast reach ${formatRate(d.broadcast_reach)}`,
    );
  return lines.join('\n');
}

/** The admin commands as a composer: install before the user handlers. */
export function adminBot(deps: AdminDeps): Composer<Context> {
  const { store, config, clock, logger } = deps;
  const c = new Composer<Context>();
  const admin = c.chatType('private').filter((ctx) => config.adminIds.includes(ctx.from.id));

  for (const [command, s] of Object.entries(SETTING_COMMANDS)) {
    admin.command(command, async (ctx) => {
      const current = await numberSetting(store, config, s.key);
      if (!ctx.match.trim()) return void (await ctx.reply(`${s.describe(current)}\nUsage: /${command} <${s.what}>`));
      const n = parseWhole(ctx.match, SETTING_RANGES[s.key].min, SETTING_RANGES[s.key].max);
      if (n === null)
        return void (await ctx.reply(
          `❌ "${ctx.match.trim().slice(0, 40)}" is not valid: give ${s.what}.\nNothing changed: ${s.describe(current)}`,
        ));
      await setSetting(store, s.key, n);
      logger.info({ setting: s.key, value: n, admin: ctx.from.id }, `setting ${s.key} = ${n}`);
      await ctx.reply(`✅ ${s.describe(n)} (was ${current})`);
    });
  }

  admin.command('link', async (ctx) => {
    if (!config.storageChannelId)
      return void (await ctx.reply(
        '❌ STORAGE_CHANNEL_ID is not set: files live in a storage channel the bot administers.',
      ));
    let ids: number[] | string;
    const origin = ctx.message.reply_to_message?.forward_origin;
    if (!ctx.match.trim() && origin) {
      if (origin.type !== 'channel' || origin.chat.id !== config.storageChannelId) {
        return void (await ctx.reply('❌ That message was not forwarded from the storage channel.'));
      }
      ids = [origin.message_id];
    } else ids = parseLinkRange(ctx.match);
    if (typeof ids === 'string') return void (await ctx.reply(`❌ ${ids}`));
    const uniqueId = randomId(12);
    await createFile(store, {
      uniqueId,
      channelId: config.storageChannelId,
      messageIds: ids,
      createdBy: ctx.from.id,
      createdAt: clock.now().getTime(),
    });
    const link = startLink(await deps.userBotUsername(), uniqueId);
    await ctx.reply(
      `🔗 Share link for ${ids.length === 1 ? `message ${ids[0]}` : `messages ${ids[0]}–${ids[ids.length - 1]}`}:\n${link}`,
    );
  });

  admin.command('broadcast', async (ctx) => {
    const usage =
      `Usage: reply /broadcast <duration> to the message to send: hours (2), or 30m, 2h, 1h30m — ` +
      `1 minute to ${MAX_BROADCAST_HOURS} hours, then it is deleted from every chat.`;
    const source = ctx.message.reply_to_message;
    const duration = parseBroadcastDuration(ctx.match);
    if ('error' in duration) return void (await ctx.reply(`❌ ${duration.error}\n${usage}`));
    const hours = duration.minutes / 60;
    if (!source) return void (await ctx.reply(`❌ Reply to the message you want to broadcast.\n${usage}`));
    let fromChatId = ctx.chat.id;
    let messageId = source.message_id;
    if (deps.separateAdminBot) {
      // One bot cannot copy another bot's chat: the admin bot puts the content in the storage channel first.
      if (!config.storageChannelId)
        return void (await ctx.reply(
          '❌ STORAGE_CHANNEL_ID is not set: a separate admin bot sends broadcasts through it.',
        ));
      try {
        messageId = (await ctx.api.copyMessage(config.storageChannelId, ctx.chat.id, source.message_id)).message_id;
        fromChatId = config.storageChannelId;
      } catch (e) {
        return void (await ctx.reply(
          `❌ Could not copy the message to the storage channel: ${classifyError(e).reason}`,
        ));
      }
    }
    const recipients = await countAudience(store);
    const progress = await ctx.reply(`📢 Broadcast: sending to ${recipients} users…`);
    const text = 'text' in source ? (source.text ?? null) : null;
    const caption = 'caption' in source ? (source.caption ?? null) : null;
    const fileId =
      source.photo?.at(-1)?.file_id ??
      source.video?.file_id ??
      source.document?.file_id ??
      source.audio?.file_id ??
      null;
    const id = await insertBroadcast(store, {
      fromChatId,
      messageId,
      text,
      caption,
      fileId,
      durationHours: hours,
      createdAt: clock.now().getTime(),
      progressChatId: ctx.chat.id,
      progressMessageId: progress.message_id,
    });
    const after = formatMinutes(duration.minutes);
    logger.info(
      { broadcast_id: id, minutes: duration.minutes, recipients, admin: ctx.from.id },
      `📢 Broadcast ${id} queued for ${recipients} users, deleted after ${after}`,
    );
    deps.kickSender();
  });

  admin.command('status', async (ctx) => {
    const s = await deps.status();
    const tz = s.timezone;
    const lines = [`📊 Status (${tz})${s.health.ok ? '' : `\n⚠️ ${s.health.problems.join('; ')}`}`, ''];
    for (const j of s.jobs) {
      const last = j.last_run
        ? `${j.last_run.status} ${j.last_run.finished_at ? formatIn(new Date(j.last_run.finished_at), tz) : ''}`
        : 'never';
      lines.push(`• ${j.name}: next ${j.next_run_local ?? 'off'}; last ${last}`);
    }
    lines.push(
      '',
      `🗑️ Pending deletions: ${s.deletions.total} (${s.deletions.overdue} overdue, ${s.deletions.due_next_hour} due within an hour)`,
    );
    lines.push(
      `📢 Broadcasts: ${s.broadcasts.length ? s.broadcasts.map((b) => `#${b.id} ${b.status}, ${b.sent_count} sent, ${b.recipients_left} left`).join('; ') : 'none'}`,
    );
    await ctx.reply(lines.join('\n'));
  });

  admin.command('stats', async (ctx) => {
    const days = await recentAnalytics(store, config.timezone, clock.now(), STATS_COMMAND_DAYS);
    await ctx.reply(formatAnalyticsDays(days, config.timezone));
  });

  admin.command('run', async (ctx) => {
    const job = ctx.match.trim();
    if (!isJobName(job)) return void (await ctx.reply(`❌ Usage: /run <job>, one of ${JOB_NAMES.join(', ')}.`));
    await ctx.reply(`⏳ Running ${job}…`);
    // In the background: a long run must not hold up the bot's updates (or time out a webhook, which Telegram
    // would then deliver again and run the job twice).
    void (async () => {
      try {
        const r = await deps.runJob(job);
        const counts = formatSummary(r.summary);
        await ctx.reply(
          `${r.status === 'ok' ? '✅' : '❌'} ${job} ${r.status}${counts ? `: ${counts}` : ''}${r.error ? `\n${r.error}` : ''}`,
        );
      } catch (e) {
        await ctx
          .reply(`❌ ${job}: ${(e as Error).message}`)
          .catch(logAtDebug(deps.logger, 'could not tell the admin how /run ended'));
      }
    })();
  });

  return c;
}
