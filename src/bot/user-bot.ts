/**
 * The user bot: registers users, delivers files that delete themselves after N minutes, and hands out verification
 * tokens (daily limit) when a user has no file access left. What it creates, the schedulers clean.
 */
import { Composer, type Context } from 'grammy';
import { backoff } from '../backoff.ts';
import { dayIn, type Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { logAtDebug, type Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import { getFile } from '../store/files.ts';
import { addToDay, noteActive } from '../store/daily-stats.ts';
import { numberSetting } from '../store/settings.ts';
import { getTokenByUniqueId, markDirectLink, redeemVerifiedToken } from '../store/tokens.ts';
import { getUser, grantAccess, markBlocked, markUnblocked, spendAccess, upsertUser } from '../store/users.ts';
import type { User } from '../store/schema.ts';
import { classifyCopyError } from '../telegram/errors.ts';
import { parseStart, startLink } from '../telegram/links.ts';
import type { ScheduleDeletionInput } from '../jobs/message-deleter.ts';
import { newToken, verifyLink } from './verification.ts';

/** What the user bot needs. */
export interface UserBotDeps {
  store: Store;
  config: Config;
  clock: Clock;
  logger: Logger;
  /** Schedules a delivered file's deletion (the janitor's `scheduleDeletion`). */
  scheduleDeletion(d: ScheduleDeletionInput): Promise<number>;
  /** The service's own address, for verify links when PUBLIC_URL is not set. */
  localUrl(): string;
}

const users = new WeakMap<Context, User>();

/**
 * Registration, installed before everything else (admin commands too): any private message registers the user and
 * clears `blocked_at`; banned users get nothing from here on. Also follows Telegram's block/unblock updates.
 */
export function registration(deps: Pick<UserBotDeps, 'store' | 'clock' | 'config' | 'logger'>): Composer<Context> {
  const { store, clock, config, logger } = deps;
  const c = new Composer<Context>();
  // Users already counted active today: one write per user and day, however much they write.
  let today = '';
  const counted = new Set<number>();
  const noteActiveToday = async (userId: number) => {
    const day = dayIn(clock.now(), config.timezone);
    if (day !== today) {
      today = day;
      counted.clear();
    }
    if (counted.has(userId)) return;
    await noteActive(store, day, userId).then(
      () => counted.add(userId),
      logAtDebug(logger, 'could not note an active user for the day'),
    );
  };
  c.on('my_chat_member', async (ctx, next) => {
    const status = ctx.myChatMember.new_chat_member.status;
    if (ctx.chat.type === 'private' && status === 'kicked')
      await markBlocked(store, [ctx.chat.id], clock.now().getTime());
    else if (ctx.chat.type === 'private' && status === 'member') await markUnblocked(store, ctx.chat.id);
    await next();
  });
  c.chatType('private').on('message', async (ctx, next) => {
    if (ctx.from.is_bot) return;
    const user = await upsertUser(store, {
      userId: ctx.from.id,
      username: ctx.from.username ?? null,
      firstName: ctx.from.first_name ?? null,
      nowMs: clock.now().getTime(),
    });
    if (user.is_banned) return;
    await noteActiveToday(user.user_id);
    users.set(ctx, user);
    await next();
  });
  return c;
}

/** The user handlers as a grammY composer. Install after {@link registration} and the admin commands. */
export function userBot(deps: UserBotDeps): Composer<Context> {
  const { store, config, logger } = deps;
  const c = new Composer<Context>();
  const priv = c.chatType('private');

  priv.command('start', async (ctx) => {
    const req = parseStart(ctx.match);
    if (req.kind === 'file') return sendFile(ctx, deps, req.uniqueId);
    if (req.kind === 'verify') return finishVerification(ctx, deps, req.tokenUniqueId, req.userId);
    if (req.kind === 'invalid') return void (await ctx.reply('❌ This link is not valid. Ask for a new one.'));
    const user = users.get(ctx) ?? (await getUser(store, ctx.from.id));
    await ctx.reply(
      `👋 Welcome, ${user?.first_name ?? 'there'}!\n\nOpen a file link to receive the file. You have ${user?.user_access_count ?? 0} file accesses left.`,
    );
  });

  priv.command('create_new_token', (ctx) => offerToken(ctx, deps, null, 'asked'));

  priv.command('help', async (ctx) => {
    const minutes = await numberSetting(store, config, 'delete_after_minutes');
    await ctx.reply(
      `📁 Open a file link to receive the file; files delete themselves after ${minutes} minutes.\n` +
        '🔐 Without file accesses left, verify once through the link the bot sends you to get more.\n' +
        '/create_new_token — a new verification link',
    );
  });

  logger.debug('user bot handlers installed');
  return c;
}

/** `/start <unique_id>`: delivers the file when the user has an access left, else offers a verification. */
export async function sendFile(ctx: Context, deps: UserBotDeps, uniqueId: string): Promise<void> {
  const { store, config, clock, logger } = deps;
  const chatId = ctx.chat!.id;
  const userId = ctx.from!.id;
  const file = await getFile(store, uniqueId);
  if (!file) return void (await ctx.reply('❌ This file link is not valid, or the file was removed.'));
  // Everything the deletion needs is read before the access is spent and anything sent: a failed read costs nothing,
  // and a file never goes out without its deletion.
  const minutes = await numberSetting(store, config, 'delete_after_minutes');
  if (!(await spendAccess(store, userId))) return offerToken(ctx, deps, uniqueId, 'no_access');
  let copied: number[];
  try {
    copied = (await ctx.api.copyMessages(chatId, file.channel_id, file.message_ids)).map((m) => m.message_id);
  } catch (e) {
    const { failure, reason } = classifyCopyError(e);
    if (failure === 'unknown') {
      // No answer does not mean nothing was copied: no refund, and the operator is told, since files may be in
      // the chat with no deletion scheduled.
      logger.error(
        { user_id: userId, chat_id: chatId, file: uniqueId, reason },
        `❌ delivery of file ${uniqueId} to ${chatId} may have arrived without a scheduled deletion: ${reason}`,
      );
      return void (await ctx
        .reply('⚠️ Telegram did not confirm the delivery. If the file did not arrive, open the link again in a minute.')
        .catch(logAtDebug(logger, 'could not send a courtesy reply', { chat_id: chatId })));
    }
    // Telegram refused: nothing was delivered, the access goes back.
    await grantAccess(store, userId, 1);
    if (failure === 'recipient') return markBlocked(store, [userId], clock.now().getTime());
    if (failure === 'missing') {
      logger.error({ file: uniqueId, reason }, `file ${uniqueId} is gone from the storage channel`);
      return void (await ctx.reply('❌ This file is no longer available.'));
    }
    if (failure === 'refused') {
      logger.warn(
        { user_id: userId, file: uniqueId, reason },
        `Telegram asked to slow down; file ${uniqueId} not sent to ${chatId}`,
      );
      return void (await ctx
        .reply('⚠️ Telegram is busy right now. Please open the link again in a minute.')
        .catch(logAtDebug(logger, 'could not send a courtesy reply', { chat_id: chatId })));
    }
    // fatal or source: the token or the storage channel (wrong STORAGE_CHANNEL_ID, the bot not its admin), the operator's to fix.
    logger.error(
      { file: uniqueId, channel: file.channel_id, reason },
      `❌ cannot copy file ${uniqueId} from the storage channel: ${reason}`,
    );
    return void (await ctx.reply(
      "⚠️ The file cannot be sent right now; the bot's operator has been told. Please try again later.",
    ));
  }
  if (copied.length === 0) {
    // copyMessages skips messages it cannot find: none copied means the file is gone from the channel.
    await grantAccess(store, userId, 1);
    logger.error({ file: uniqueId }, `file ${uniqueId} is gone from the storage channel`);
    return void (await ctx.reply('❌ This file is no longer available.'));
  }
  const ids = [...copied];
  // Telegram deletes nothing older than 48 h: a 2,880-minute setting still deletes a little before that.
  const effective = Math.min(minutes, MAX_DELETE_MINUTES);
  try {
    const notice = await ctx.reply(
      `⏳ This file will be deleted in ${effective} minute${effective === 1 ? '' : 's'}. Forward it to your Saved Messages to keep it.`,
    );
    ids.push(notice.message_id);
  } catch (e) {
    logger.warn(
      { user_id: userId, err: (e as Error).message },
      'could not send the deletion notice; the files are scheduled anyway',
    );
  }
  const scheduled = await scheduleOrUndo(ctx, deps, {
    chatId,
    userId,
    messageIds: ids,
    afterMinutes: effective,
    uniqueId,
  });
  // The day's count of deliveries (the stats job reads it); a failed count changes nothing for the user.
  if (scheduled)
    await addToDay(store, dayIn(clock.now(), config.timezone), { files_delivered: 1 }).catch(
      logAtDebug(logger, 'could not count a delivery for the day'),
    );
}

/** Most minutes a delivery may wait: 47 h 58 min, so the deletion always lands inside Telegram's 48 hours. */
export const MAX_DELETE_MINUTES = 48 * 60 - 2;

/**
 * Schedules a delivery's deletion, retrying a database blip; if it still cannot be recorded, the files are deleted
 * at once (and the access refunded) rather than left in the chat with nothing to remove them. True when scheduled.
 */
async function scheduleOrUndo(
  ctx: Context,
  deps: UserBotDeps,
  d: ScheduleDeletionInput & { userId: number; afterMinutes: number },
): Promise<boolean> {
  // One instant for every attempt: a retry after a lost answer finds the same row instead of adding a second one.
  const deleteAt = new Date(deps.clock.now().getTime() + d.afterMinutes * 60_000);
  const row = {
    chatId: d.chatId,
    userId: d.userId,
    messageIds: d.messageIds,
    deleteAt,
    ...(d.uniqueId ? { uniqueId: d.uniqueId } : {}),
  };
  let last: unknown;
  for (let attempt = 1; attempt <= 4; attempt++) {
    try {
      await deps.scheduleDeletion(row);
      return true;
    } catch (e) {
      last = e;
      await deps.clock.sleep(backoff(attempt, { base: 500, cap: 4000 }));
    }
  }
  deps.logger.error(
    { user_id: d.userId, err: (last as Error)?.message },
    "could not schedule a delivery's deletion; deleting the files now",
  );
  for (let attempt = 0; ; attempt++) {
    try {
      await ctx.api.deleteMessages(d.chatId, d.messageIds);
      break;
    } catch (e) {
      if (attempt >= 2) {
        deps.logger.error(
          { user_id: d.userId, chat_id: d.chatId, message_ids: d.messageIds, err: (e as Error).message },
          `❌ a delivered file could neither be scheduled for deletion nor deleted: chat ${d.chatId}, messages ${d.messageIds.join(',')}`,
        );
        return false;
      }
      await deps.clock.sleep(1000);
    }
  }
  // The database just failed us: a refund that fails too is logged, the files are withdrawn either way.
  await grantAccess(deps.store, d.userId, 1).catch((e: unknown) =>
    deps.logger.warn({ user_id: d.userId, err: (e as Error).message }, 'could not give a withdrawn access back'),
  );
  await ctx
    .reply(
      '⚠️ Something went wrong on our side; the file was withdrawn and your access given back. Please try the link again in a minute.',
    )
    .catch(logAtDebug(deps.logger, 'could not send a courtesy reply', { chat_id: d.chatId }));
  return false;
}

/** Offers a new verification token (or says the daily limit is reached); `why` picks the wording. */
export async function offerToken(
  ctx: Context,
  deps: UserBotDeps,
  fileUniqueId: string | null,
  why: 'no_access' | 'asked',
): Promise<void> {
  const { store, config } = deps;
  const r = await newToken(deps, ctx.from!.id, fileUniqueId);
  if (r.kind === 'limit') {
    return void (await ctx.reply(
      `⛔ Daily limit reached: you can create ${r.limit} verification links a day. It resets at 00:00 ${config.timezone}.`,
    ));
  }
  const n = await numberSetting(store, config, 'media_access_count');
  await ctx.reply(
    `${why === 'no_access' ? '🔐 You have no file accesses left.\n\nVerify' : '🔐 Here is a new verification link.\n\nVerify'} once to get ${n} more file accesses: open the link below, complete it, and you will be sent back here. The link is valid for ${config.tokenExpiryDays} day${config.tokenExpiryDays === 1 ? '' : 's'}.`,
    { reply_markup: { inline_keyboard: [[{ text: '✅ Verify', url: r.link }]] } },
  );
}

/** `/start verify_<token unique id>_<user id>`: grants access for a verified token, explains anything else. */
export async function finishVerification(
  ctx: Context,
  deps: UserBotDeps,
  tokenUniqueId: string,
  userId: number,
): Promise<void> {
  const { store, config } = deps;
  if (ctx.from!.id !== userId)
    return void (await ctx.reply(
      '❌ This verification link belongs to another user. Use /create_new_token for your own.',
    ));
  const token = await getTokenByUniqueId(store.db, tokenUniqueId, userId);
  if (!token)
    return void (await ctx.reply(
      '❌ This verification link is unknown or was already used. Use /create_new_token for a new one.',
    ));
  if (token.status === 'bypassed') {
    // A new token made from the file link remembers the file, so the user still gets what they came for.
    const again = token.file_unique_id
      ? {
          reply_markup: {
            inline_keyboard: [[{ text: '🔁 Try again', url: startLink(ctx.me.username, token.file_unique_id) }]],
          },
        }
      : {};
    return void (await ctx.reply(
      `⚠️ This verification was bypassed: the link was opened too quickly or not through the verification page. No access was granted.\n\n${token.file_unique_id ? 'Tap "Try again" for a new verification link' : 'Use /create_new_token'} and complete the verification.`,
      again,
    ));
  }
  if (token.status === 'not_used') {
    const link = await verifyLink(config, token.token, deps.localUrl(), deps.logger);
    if (link.direct) await markDirectLink(store.db, token.token);
    return void (await ctx.reply(
      '⏳ Finish the verification first: open the link, complete it, and you will be sent back here.',
      {
        reply_markup: { inline_keyboard: [[{ text: '✅ Verify', url: link.url }]] },
      },
    ));
  }
  const n = await numberSetting(store, config, 'media_access_count');
  const left = await redeemVerifiedToken(store, token.token, userId, n);
  if (left === null)
    return void (await ctx.reply('❌ This verification link was already used. Use /create_new_token for a new one.'));
  await ctx.reply(`✅ Verified! You now have ${left} file accesses.`);
  if (token.file_unique_id) await sendFile(ctx, deps, token.file_unique_id);
}
