/**
 * Every Bot API outcome becomes one of a few actions, decided here and nowhere else (as grammY's own
 * `core/error.ts` separates API errors from network errors). Pure: no I/O.
 */
import { GrammyError, HttpError } from 'grammy';

/**
 * What to do after a Bot API call:
 * - `done`: it worked.
 * - `gone`: the message is already deleted ("message to delete not found"): count it as deleted.
 * - `undeletable`: Telegram will never do it (messages older than 48 h, other permanent 400s): record, stop trying.
 * - `unreachable`: the chat blocked the bot, is deactivated or does not exist: mark the user, nothing more to do.
 * - `transient`: 429 after retries, 5xx, network, time-out: keep the work, try again later.
 * - `fatal`: the bot token is wrong (401, 404): stop the run loudly, keep everything.
 */
export type OutcomeKind = 'done' | 'gone' | 'undeletable' | 'unreachable' | 'transient' | 'fatal';

/** A classified outcome with a short reason safe to log and store (never the token). */
export interface Outcome {
  kind: OutcomeKind;
  /** Telegram's description or the network error, e.g. "400: Bad Request: message to delete not found". */
  reason: string;
  /** Seconds Telegram asked us to wait (429), when it said so. */
  retryAfter?: number;
}

const GONE = [/message to delete not found/i, /message_id_invalid/i];
const UNDELETABLE = [/message can't be deleted/i, /message can not be deleted/i];
const UNREACHABLE = [
  /bot was blocked by the user/i,
  /user is deactivated/i,
  /chat not found/i,
  /bot was kicked/i,
  /bot can't initiate conversation/i,
  /bot is not a member/i,
  /peer_id_invalid/i,
  /have no rights to send/i,
];

/** Classifies a Telegram error response by code and description. */
export function classifyResponse(code: number, description: string, retryAfter?: number): Outcome {
  const reason = `${code}: ${description}`;
  if (code === 429) return { kind: 'transient', reason, ...(retryAfter !== undefined ? { retryAfter } : {}) };
  if (code >= 500) return { kind: 'transient', reason };
  if (code === 401 || code === 404) return { kind: 'fatal', reason };
  if (GONE.some((r) => r.test(description))) return { kind: 'gone', reason };
  if (UNDELETABLE.some((r) => r.test(description))) return { kind: 'undeletable', reason };
  if (code === 403 || UNREACHABLE.some((r) => r.test(description))) return { kind: 'unreachable', reason };
  // Any other 4xx is about this request's data and will fail the same way next time: stop trying it.
  if (code >= 400 && code < 500) return { kind: 'undeletable', reason };
  return { kind: 'transient', reason };
}

/** Classifies whatever a grammY call threw. */
export function classifyError(err: unknown): Outcome {
  if (err instanceof GrammyError) return classifyResponse(err.error_code, err.description, err.parameters?.retry_after);
  if (err instanceof HttpError) return { kind: 'transient', reason: `network: ${err.message}` };
  const msg = err instanceof Error ? err.message : String(err);
  // Time-outs, aborted requests and anything unexpected keep the work: a delay, never a loss.
  return { kind: 'transient', reason: msg };
}

/**
 * What a failed copy (`copyMessage` / `copyMessages`) means, for the bot delivering a file and the broadcast sender:
 * - `fatal`: the bot token was rejected.
 * - `refused`: Telegram refused for now (429 after retries), or the request never left (connection refused, no
 *   DNS): nothing was copied; ask again later.
 * - `unknown`: no answer, or a 5xx: the copy may exist. Asking again could send it twice.
 * - `recipient`: the recipient blocked the bot or is deactivated: nothing was copied; mark them.
 * - `missing`: the source message is gone ("message to copy not found").
 * - `source`: any other refusal; for a copy from a channel to a user who talks to the bot that is the source chat
 *   (the bot not a member or without rights, a wrong channel id), never the recipient's fault.
 */
export type CopyFailure = 'fatal' | 'refused' | 'unknown' | 'recipient' | 'missing' | 'source';

const RECIPIENT_GONE = [/bot was blocked by the user/i, /user is deactivated/i, /bot can't initiate conversation/i];
const SOURCE_MISSING = [/messages? to copy not found/i, /no messages to copy/i];
/** Network errors raised before a request reached Telegram: nothing can have been done. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Classifies whatever a copy call threw; `reason` as in {@link Outcome}. */
export function classifyCopyError(err: unknown): { failure: CopyFailure; reason: string } {
  if (err instanceof Error && err.name === 'NotSentError') return { failure: 'refused', reason: err.message };
  const o = classifyError(err);
  if (o.kind === 'fatal') return { failure: 'fatal', reason: o.reason };
  if (err instanceof HttpError && NOT_SENT.has(String((err.error as { code?: unknown } | undefined)?.code)))
    return { failure: 'refused', reason: o.reason };
  // Otherwise only an answer tells that nothing was done: a 429 is Telegram refusing, a 5xx or no answer leaves it unknown.
  if (!(err instanceof GrammyError) || err.error_code >= 500) return { failure: 'unknown', reason: o.reason };
  if (err.error_code === 429) return { failure: 'refused', reason: o.reason };
  if (RECIPIENT_GONE.some((r) => r.test(err.description))) return { failure: 'recipient', reason: o.reason };
  if (SOURCE_MISSING.some((r) => r.test(err.description))) return { failure: 'missing', reason: o.reason };
  return { failure: 'source', reason: o.reason };
}

/**
 * Methods that do the same when asked twice, so a 5xx (which may come after Telegram did the work) can be retried
 * inside the call. Sending and copying are not among them: a retry could deliver twice.
 */
export function isIdempotent(method: string): boolean {
  return /^(get|delete|edit|set|answer|ban|unban|pin|unpin|leave|close|logOut)/i.test(method);
}

/** Makes a call and classifies how it ended: `done`, or what {@link classifyError} makes of the error. */
export async function outcomeOf(call: () => Promise<unknown>): Promise<Outcome> {
  try {
    await call();
    return { kind: 'done', reason: 'ok' };
  } catch (e) {
    return classifyError(e);
  }
}

/** Thrown to end a run when the bot token is rejected: everything stays for a later run. */
export class FatalTelegramError extends Error {
  constructor(readonly outcome: Outcome) {
    super(
      `Telegram rejected the bot token (${outcome.reason}); check BOT_TOKEN and BOT_API_ROOT. Nothing was removed.`,
    );
    this.name = 'FatalTelegramError';
  }
}

/** "chat not found" (or PEER_ID_INVALID): alone, the chat is gone; from every chat at once, the setup is wrong. */
export function isMissingChat(reason: string): boolean {
  return /chat not found|peer_id_invalid/i.test(reason);
}

/** Distinct chats answering "chat not found" with no success between them that make a run a setup fault. */
export const MISSING_CHATS_FOR_SETUP_FAULT = 20;

/**
 * Thrown to end a run when the setup is wrong rather than the chats: the bot token was rejected, or many chats in a
 * row answered "chat not found" (another bot's token, a local Bot API server that lost its state). Everything the run
 * met stays as it was; the job backs off and tries again.
 */
export class SetupFaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SetupFaultError';
  }

  /** The error when a chat that answered lately is "not found" too (or the token is refused). */
  static probed(chats: number, probe: number, reason: string): SetupFaultError {
    return new SetupFaultError(
      `${chats} chat${chats === 1 ? '' : 's'} answered "chat not found", and chat ${probe}, which answered lately, ` +
        `now answers "${reason}": the bot token or the Bot API server is not the one these chats know. Check ` +
        `BOT_TOKEN and BOT_API_ROOT. Nothing was removed and no user was marked; the work resumes by itself once ` +
        `chats answer again.`,
    );
  }

  /** The error for a storm of "chat not found" answers. */
  static missingChats(chats: number): SetupFaultError {
    return new SetupFaultError(
      `${chats} chats in a row answered "chat not found": the bot token or the Bot API server is not the one these ` +
        `chats know. Check BOT_TOKEN and BOT_API_ROOT. Nothing was removed and no user was marked; the work resumes ` +
        `by itself once chats answer again.`,
    );
  }
}

/**
 * Decides what a run's "chat not found" answers mean (pure, no I/O). Each one is held, not acted on, until the run
 * learns whether it is one chat's (a success comes after it, or the run ends) or the setup's
 * ({@link MISSING_CHATS_FOR_SETUP_FAULT} distinct chats with no success between). The caller keeps the held work
 * untouched until `success()` or `drain()` hands it back to be done as a single "chat not found".
 */
export class MissingChatWatch<T> {
  private held: T[] = [];
  private readonly chats = new Set<number>();
  private trippedAt: number | null = null;

  constructor(private readonly threshold = MISSING_CHATS_FOR_SETUP_FAULT) {}

  /** True once the run met a storm: it must stop and leave everything it holds as it was. */
  get tripped(): boolean {
    return this.trippedAt !== null;
  }

  /** Distinct chats in the storm (for the error). */
  get stormSize(): number {
    return this.trippedAt ?? this.chats.size;
  }

  /** Holds `item` for a "chat not found" from `chatId`; true when this makes the run a setup fault. */
  hold(chatId: number, item: T): boolean {
    this.held.push(item);
    this.chats.add(chatId);
    if (this.trippedAt === null && this.chats.size >= this.threshold) this.trippedAt = this.chats.size;
    return this.tripped;
  }

  /** A call worked: the held answers were single chats'. Returns them to be done (nothing once tripped). */
  success(): T[] {
    if (this.tripped) return [];
    this.chats.clear();
    return this.held.splice(0);
  }

  /** The run ended without a storm: what is held is done as single answers (nothing once tripped). */
  drain(): T[] {
    return this.success();
  }

  /**
   * Gives back what is held without a verdict (its work stopped: a lost lease); those chats still count toward a
   * storm.
   */
  forget(): T[] {
    return this.held.splice(0);
  }

  /** Everything held, for releasing untouched after a storm. */
  heldItems(): readonly T[] {
    return this.held;
  }
}
