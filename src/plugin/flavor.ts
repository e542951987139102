/**
 * The auto-delete plugin's types: the `auto_delete` option on every send method, for `ctx` and an Api, as additive
 * flavours (`type MyContext = Context & AutoDeleteFlavor`, `Bot<MyContext, Api & AutoDeleteApiFlavor>`).
 *
 * grammY's `other` parameters are closed types, so a flavour adds a second signature to each send method whose
 * `other` also takes `auto_delete`: TypeScript picks it when the call passes the option (an intersection of two
 * function types is an overload pair), and every call that type-checked before still does.
 */
import type { Api, Context, RawApi } from 'grammy';
import type { Delay } from './delay.ts';

/**
 * What a send's `auto_delete` takes: a delay (`'30m'`, `'90s'`, `'2h'`, `'1h30m'` or seconds; at most 47h58m), the
 * same with the "deleted" notice asked for or declined (`{ after: '30m', notice: true }`), or `false` to keep a
 * message the plugin's default would delete.
 */
export type AutoDeleteOption = Delay | false | { after: Delay; notice?: boolean };

/** The option the flavours add to a send method's `other` parameter. */
export interface AutoDeleteOther {
  /** Delete the message(s) this call sends after a delay; see {@link AutoDeleteOption}. */
  auto_delete?: AutoDeleteOption;
}

/**
 * Every Bot API method that creates messages in the chat of its `chat_id`, and so takes `auto_delete`. Left out:
 * sendChecklist and any send with a `business_connection_id` (a business chat's messages are deleted through
 * another method), drafts, and what sends no message (sendChatAction, sendGift).
 */
export const AUTO_DELETE_METHODS = [
  'sendMessage',
  'sendRichMessage',
  'sendPhoto',
  'sendLivePhoto',
  'sendAudio',
  'sendDocument',
  'sendVideo',
  'sendAnimation',
  'sendVoice',
  'sendVideoNote',
  'sendSticker',
  'sendLocation',
  'sendVenue',
  'sendContact',
  'sendPoll',
  'sendDice',
  'sendInvoice',
  'sendGame',
  'sendMediaGroup',
  'sendPaidMedia',
  'copyMessage',
  'copyMessages',
  'forwardMessage',
  'forwardMessages',
] as const satisfies readonly (keyof RawApi)[];

/** A method that takes `auto_delete`. */
export type AutoDeleteMethod = (typeof AUTO_DELETE_METHODS)[number];

/** The context shortcuts of those methods (`ctx.reply` is `sendMessage` in the update's chat, …). */
type ContextSend =
  | 'reply'
  | 'replyWithRichMessage'
  | 'replyWithPhoto'
  | 'replyWithLivePhoto'
  | 'replyWithAudio'
  | 'replyWithDocument'
  | 'replyWithVideo'
  | 'replyWithAnimation'
  | 'replyWithVoice'
  | 'replyWithVideoNote'
  | 'replyWithSticker'
  | 'replyWithLocation'
  | 'replyWithVenue'
  | 'replyWithContact'
  | 'replyWithPoll'
  | 'replyWithDice'
  | 'replyWithInvoice'
  | 'replyWithGame'
  | 'replyWithMediaGroup'
  | 'replyWithPaidMedia'
  | 'copyMessage'
  | 'copyMessages'
  | 'forwardMessage'
  | 'forwardMessages';

/** `F` with its `other` parameter (the last but one: every send method ends with `other?, signal?`) also taking `auto_delete`. */
type WithAutoDelete<F> = F extends (...args: infer P) => infer R
  ? Required<P> extends [...infer Head, infer Other, infer Signal]
    ? (...args: [...head: Head, other?: Other & AutoDeleteOther, signal?: Signal]) => R
    : F
  : F;

/** A raw method (`(payload, signal?)`) whose payload also takes `auto_delete`. */
type RawWithAutoDelete<F> = F extends (...args: infer P) => infer R
  ? P extends [infer Payload, ...infer Rest]
    ? (payload: Payload & AutoDeleteOther, ...rest: Rest) => R
    : F
  : F;

/** Options of {@link AutoDeleteFlavor.deleteAfter}. */
export interface DeleteAfterOptions {
  /** Send the "deleted" notice after deleting the message (default: the plugin's `notice`, itself default false). */
  notice?: boolean;
}

/**
 * An additive API flavour: `auto_delete` on every send method of an Api (and its `raw` methods). For `bot.api`:
 * `new Bot<MyContext, Api & AutoDeleteApiFlavor>(token)`.
 */
export type AutoDeleteApiFlavor = { [M in AutoDeleteMethod]: WithAutoDelete<Api[M]> } & {
  raw: { [M in AutoDeleteMethod]: RawWithAutoDelete<RawApi[M]> };
};

/**
 * An additive context flavour: `type MyContext = Context & AutoDeleteFlavor`. Adds `auto_delete` to the send
 * shortcuts (`ctx.reply`, `ctx.replyWithPhoto`, `ctx.copyMessage`, …) and to `ctx.api`, and `ctx.deleteAfter`.
 */
export type AutoDeleteFlavor = { [K in ContextSend]: WithAutoDelete<Context[K]> } & {
  api: AutoDeleteApiFlavor;
  /**
   * Deletes the message this update carries (`ctx.msg`: a user's command, a channel post, …) in its chat after
   * `delay`, durably like a sent one. Resolves once the deletion is recorded.
   * @throws AutoDeleteError when the update carries no message, the delay is not one, or the message would be
   *   older than 47h58m by then.
   */
  deleteAfter(delay: Delay, opts?: DeleteAfterOptions): Promise<void>;
};
