/**
 * The grammY auto-delete plugin: what a bot sends deletes itself after a delay, durably — each send becomes a
 * pending deletion of the janitor, so the message deleter's batching per chat, on-time wake-ups, retries and restarts
 * all apply.
 *
 * ```ts
 * const janitor = await createJanitor({ databaseUrl, bot });
 * const autoDeleter = autoDelete(janitor, { after: '30m' });
 * bot.api.config.use(autoDeleter.transformer); // bot.api, and ctx.api (which copies bot.api's transformers)
 * bot.use(autoDeleter); // ctx.deleteAfter, and ctx.api when the line above is left out
 * ```
 *
 * A transformer sees every Bot API call: it takes `auto_delete` out of a send's payload (Telegram never sees it),
 * checks it before the call goes out (a bad delay throws and nothing is sent), and records the deletion as soon as
 * Telegram's answer names the messages, before the caller's promise resolves.
 */
import type { Context, MiddlewareFn, Transformer } from 'grammy';
import type { Janitor } from '../janitor.ts';
import { backoff } from '../backoff.ts';
import { isOwnCall } from '../telegram/client.ts';
import { AutoDeleteError, MAX_DELAY_S, parseDelay, type Delay } from './delay.ts';
import {
  AUTO_DELETE_METHODS,
  type AutoDeleteFlavor,
  type AutoDeleteMethod,
  type AutoDeleteOption,
  type DeleteAfterOptions,
} from './flavor.ts';

export { AutoDeleteError, MAX_DELAY_S, parseDelay, type Delay } from './delay.ts';
export {
  AUTO_DELETE_METHODS,
  type AutoDeleteApiFlavor,
  type AutoDeleteFlavor,
  type AutoDeleteMethod,
  type AutoDeleteOption,
  type AutoDeleteOther,
  type DeleteAfterOptions,
} from './flavor.ts';

/** The plugin's defaults, for sends that say nothing themselves. */
export interface AutoDeleteOptions {
  /**
   * Delete every message the bot sends after this delay unless the send says `auto_delete: false` (default `false`:
   * only sends that pass `auto_delete` are deleted).
   */
  after?: Delay | false;
  /** Send the "deleted" notice after each deletion (default false); a send's `{ after, notice }` overrides it. */
  notice?: boolean;
}

/** The middleware for `bot.use`, with the transformer for `bot.api.config.use` underneath. */
export interface AutoDeletePlugin extends MiddlewareFn<Context> {
  /** Reads `auto_delete` from every send through the Api it is installed on and records the deletions. */
  readonly transformer: Transformer;
}

/** What one send asked for. */
interface Plan {
  seconds: number;
  notice: boolean;
}

type Payload = Record<string, unknown>;

const covered = new Set<string>(AUTO_DELETE_METHODS);
/** Methods whose answer names the messages but not their chat: the chat must come from a numeric `chat_id`. */
const IDS_ONLY = new Set<AutoDeleteMethod>(['copyMessage', 'copyMessages', 'forwardMessages']);

/**
 * The auto-delete plugin on `janitor`'s store: a middleware (`bot.use`) with its `transformer` (`bot.api.config.use`).
 * The janitor must have a Telegram client (`createJanitor({ bot })`, or `config.botToken`) and a message deleter
 * that runs, and must be started: its message deleter does the deleting.
 * @throws AutoDeleteError when nothing would delete the messages, or when `defaults.after` is not a delay.
 */
export function autoDelete(janitor: Janitor, defaults: AutoDeleteOptions = {}): AutoDeletePlugin {
  if (!janitor.telegram)
    throw new AutoDeleteError(
      'autoDelete: the janitor has no Telegram client, so nothing would delete the messages: ' +
        'create it with createJanitor({ bot }) or config.botToken',
    );
  if (janitor.config.schedules['message-deleter'] === 'off')
    throw new AutoDeleteError(
      'autoDelete: the janitor\'s message-deleter is "off", so nothing would delete the messages',
    );
  const fallback = {
    seconds: defaults.after === undefined || defaults.after === false ? null : parseDelay(defaults.after, 'after'),
    notice: defaults.notice ?? false,
  };
  const record = recorder(janitor);

  const transformer: Transformer = async (prev, method, payload, signal) => {
    // The janitor's own calls (its notices and alerts through the bot's Api) are never the bot author's sends.
    if (isOwnCall()) return prev(method, payload, signal);
    const { plan, sent } = planOf(method, payload, fallback);
    // The same payload less one key grammY does not know: still the method's payload.
    const res = await prev(method, sent as typeof payload, signal);
    if (res.ok && plan) await record(method, sent, res.result, plan);
    return res;
  };

  const middleware = async (ctx: Context, next: () => Promise<void>) => {
    // ctx.api starts with bot.api's transformers: installed there already, it must not run twice.
    if (!ctx.api.config.installedTransformers().includes(transformer)) ctx.api.config.use(transformer);
    (ctx as Context & AutoDeleteFlavor).deleteAfter = (delay: Delay, opts: DeleteAfterOptions = {}) =>
      deleteReceived(janitor, ctx, parseDelay(delay, 'deleteAfter'), opts.notice ?? fallback.notice);
    await next();
  };
  return Object.assign(middleware, { transformer });
}

/**
 * What a call asked for, decided before it goes out: the plan (null: nothing to record) and the payload without
 * `auto_delete`. Throws an AutoDeleteError — and nothing is sent — for a bad delay, a method that creates no
 * message, a business chat, or a `@username` chat of a method whose answer would not name the chat.
 */
export function planOf(
  method: string,
  payload: Payload | undefined,
  fallback: { seconds: number | null; notice: boolean },
): { plan: Plan | null; sent: Payload | undefined } {
  const asked = payload?.auto_delete as AutoDeleteOption | undefined;
  const sent = payload && 'auto_delete' in payload ? withoutAutoDelete(payload) : payload;
  if (!covered.has(method)) {
    if (asked !== undefined && asked !== false)
      throw new AutoDeleteError(`auto_delete: ${method} sends no message the plugin can delete`);
    return { plan: null, sent };
  }
  if (asked === false || (asked === undefined && fallback.seconds === null)) return { plan: null, sent };
  if (sent?.business_connection_id !== undefined) {
    // A business chat's messages are deleted through deleteBusinessMessages, which the deleter does not use.
    if (asked === undefined) return { plan: null, sent };
    throw new AutoDeleteError(`auto_delete: ${method} on behalf of a business account cannot be auto-deleted`);
  }
  let plan: Plan;
  if (asked === undefined) plan = { seconds: fallback.seconds!, notice: fallback.notice };
  else if (typeof asked === 'object' && asked !== null)
    plan = { seconds: parseDelay(asked.after, 'auto_delete.after'), notice: asked.notice ?? fallback.notice };
  else plan = { seconds: parseDelay(asked, 'auto_delete'), notice: fallback.notice };
  if (IDS_ONLY.has(method as AutoDeleteMethod) && chatOf(sent?.chat_id) === null)
    throw new AutoDeleteError(
      `auto_delete: ${method} to ${JSON.stringify(sent?.chat_id)}: its answer does not name the chat, so chat_id must be a numeric id`,
    );
  return { plan, sent };
}

/** A shallow copy of `payload` without `auto_delete`: the caller's object is left as it was. */
function withoutAutoDelete(payload: Payload): Payload {
  const rest = { ...payload };
  delete rest.auto_delete;
  return rest;
}

/** A chat id from a payload's `chat_id`: a number, or a numeric string; null for a `@username`. */
function chatOf(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : null;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
  return null;
}

/** The chat and message ids Telegram's answer names: a Message, Message[], MessageId or MessageId[]. */
export function sentMessages(payload: Payload | undefined, result: unknown): { chatId: number | null; ids: number[] } {
  const list: unknown[] = Array.isArray(result) ? result : [result];
  const ids: number[] = [];
  let chatId: number | null = null;
  for (const m of list) {
    if (typeof m !== 'object' || m === null || typeof (m as { message_id?: unknown }).message_id !== 'number')
      // Not a message (`true` from a webhook reply): nothing names the messages.
      return { chatId: null, ids: [] };
    ids.push((m as { message_id: number }).message_id);
    chatId ??= chatOf((m as { chat?: { id?: unknown } }).chat?.id);
  }
  return { chatId: chatId ?? chatOf(payload?.chat_id), ids };
}

/**
 * Records a send's deletion at once (its delay counted from the janitor's clock at Telegram's answer). A failed
 * insert is tried twice more within ~0.3 s, with the same delete_at, so a retry after a lost answer finds the same
 * row; if it still fails the send stands — the caller gets its messages, since throwing would invite sending them
 * again — and the messages are logged at error level: they exist and nothing will delete them.
 */
function recorder(janitor: Janitor) {
  const { logger, clock } = janitor;
  return async (method: string, payload: Payload | undefined, result: unknown, plan: Plan): Promise<void> => {
    const { chatId, ids } = sentMessages(payload, result);
    if (ids.length === 0 && Array.isArray(result)) return; // copyMessages found nothing to copy: nothing was sent
    if (chatId === null || ids.length === 0) {
      logger.error(
        { method, chat_id: payload?.chat_id },
        `auto-delete: ${method} was sent but its answer names no message (a webhook reply?); it will not be deleted`,
      );
      return;
    }
    const deleteAt = new Date(clock.now().getTime() + plan.seconds * 1000);
    let last: unknown;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await janitor.scheduleDeletion({ chatId, messageIds: ids, deleteAt, notice: plan.notice });
        return;
      } catch (e) {
        last = e;
        if (attempt < 3) await clock.sleep(backoff(attempt, { base: 100, cap: 400 }));
      }
    }
    const err = (last as Error)?.message ?? String(last);
    logger.error(
      { method, chat_id: chatId, message_ids: ids, delete_at: deleteAt.toISOString(), err },
      `auto-delete: messages ${ids.join(', ')} in chat ${chatId} were sent but their deletion could not be recorded ` +
        `(${err}); they will not be deleted`,
    );
  };
}

/** `ctx.deleteAfter`: the update's message, deleted after `seconds`, if that still falls inside Telegram's 48 hours. */
async function deleteReceived(janitor: Janitor, ctx: Context, seconds: number, notice: boolean): Promise<void> {
  const msg = ctx.msg;
  const chatId = msg?.chat.id;
  if (!msg || chatId === undefined) throw new AutoDeleteError('deleteAfter: this update carries no message');
  if (msg.business_connection_id !== undefined)
    throw new AutoDeleteError("deleteAfter: a business chat's messages cannot be auto-deleted");
  const deleteAt = janitor.clock.now().getTime() + seconds * 1000;
  // The limit counts from when the message was sent, not from now: a late update has less of it left.
  const latest = msg.date * 1000 + MAX_DELAY_S * 1000;
  if (deleteAt > latest)
    throw new AutoDeleteError(
      `deleteAfter: message ${msg.message_id} was sent at ${new Date(msg.date * 1000).toISOString()}; ` +
        `${seconds} s from now is past the limit of 47h58m after it (Telegram deletes no message older than 48 hours)`,
    );
  await janitor.scheduleDeletion({ chatId, messageIds: [msg.message_id], deleteAt: new Date(deleteAt), notice });
}
