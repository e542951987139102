/**
 * A local Telegram Bot API emulator (for tests and `tg-janitor demo`): a plain `node:http` server on 127.0.0.1 that speaks the Bot API
 * wire format (`POST /bot<token>/<method>`, JSON / urlencoded / multipart bodies or query strings) and answers
 * exactly like Telegram: `{"ok":true,"result":...}` or `{"ok":false,"error_code":N,"description":"...",
 * "parameters":{...}}` with the HTTP status equal to `error_code`.
 *
 * Pass `emu.url` as grammY's `apiRoot` (or `BOT_API_ROOT`). It keeps chats and messages in memory (the 48 h
 * deletion rule included), logs every call, and has knobs for blocked users, rate limits (paid broadcasts apart),
 * injected failures (per method, per chat, for every chat, or for every call: an outage), hanging requests and
 * dropped connections.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { systemClock, type Clock, type Timer } from '../clock.ts';
import { RateWindow, takesPaidBroadcast } from './rate-window.ts';

export interface EmulatorOptions {
  /** The one valid bot token; any other token → 401 "Unauthorized". */
  token?: string;
  /** Username reported by getMe. The bot id is the token's numeric prefix. */
  botUsername?: string;
  /**
   * Max calls per second over all methods (sliding 1 s window); past it → 429. Paid broadcast messages are not
   * counted here but in `paidRateLimit`. Default: no limit.
   */
  rateLimit?: number;
  /**
   * Max paid broadcast messages per second — send* and copyMessage calls with `allow_paid_broadcast: true` — in a
   * sliding 1 s window of their own, apart from `rateLimit`; past it → 429 as for `rateLimit`. Default 1000 (Telegram:
   * "up to 1000 messages per second"); null: no limit.
   */
  paidRateLimit?: number | null;
  /**
   * The `retry_after` (seconds) a rate-limit 429 announces, when more than the default (the seconds until the
   * window has room again, at least 1): a flood wait longer than the window, as Telegram sometimes asks.
   */
  rateLimitRetryAfter?: number;
  /**
   * Telegram's per-chat limits (default off): a message (send*, copy*, forward*, edit*; not sendChatAction) to a
   * private chat within a second of the last one admitted there, or a 21st to a group or channel within a minute → 429.
   */
  chatLimits?: boolean;
  /**
   * When on, positive chat ids that were never added (addMessage / addChat / sendUserMessage) do not exist:
   * sendMessage / copyMessage(s) / deleteMessage(s) / editMessageText to them → 400 "Bad Request: chat not found".
   * Default off: every positive chat id exists. Chat ids ≤ 0 always exist (groups / channels).
   */
  strictChats?: boolean;
  /** Emulator clock (ms epoch) for message dates and the 48 h rule. Default Date.now. */
  now?: () => number;
  /**
   * Where its own time comes from: the rate limit's one-second window, long polls' time-outs and slow replies
   * (default the system clock). Message dates follow `now`.
   */
  clock?: Clock;
  /** Another emulator whose chats and messages this one shares: two bots in one Telegram, each its own updates. */
  shareChatsWith?: BotApiEmulator;
  /** Every answer is held this long, as a network round trip to Telegram would (default 0: at once). */
  latencyMs?: number;
}

/** A message's reply_markup as the caller sent it (kept as given); the inline keyboard is the part that is read back. */
export interface ReplyMarkup {
  inline_keyboard?: { text?: string; url?: string; callback_data?: string; [k: string]: unknown }[][];
  [k: string]: unknown;
}

export interface EmulatedMessage {
  message_id: number;
  chat_id: number;
  /** Unix seconds, as Telegram reports it. */
  date: number;
  text?: string;
  reply_markup?: ReplyMarkup;
  /** ms epoch (emulator clock) at which the message was sent. */
  sentAt: number;
  /** Whether the bot sent it (false: the user did). */
  fromBot: boolean;
  copiedFrom?: { chat_id: number; message_id: number };
  /** Set when a forward made it (the Message reports forward_origin). */
  forwarded?: boolean;
  /** What a media send made (`photo`, `document`, `location`, …); its caption, if any, is `text`. */
  kind?: string;
  edit_date?: number;
}

export type Failure =
  | {
      kind: 'status';
      code: number;
      description: string;
      retryAfter?: number;
      /** Send this raw body (as text/html) instead of Telegram's JSON error, like a proxy's 502 page. */
      rawBody?: string;
    }
  | { kind: 'timeout' } // never answers (hangs until the client gives up or the server closes)
  | { kind: 'reset' } // destroys the socket without an answer
  | { kind: 'slow'; ms: number }; // does the work at once and answers `ms` later (a slow network back)

export interface CallRecord {
  /** The method as Telegram knows it (canonical spelling for known methods, else as requested). */
  method: string;
  /** The parsed parameters (query string merged with the body). */
  params: Record<string, unknown>;
  /** Date.now() when the request was received. */
  at: number;
  /** HTTP status answered; 0 while unanswered, or when the request hung / the socket was reset. */
  status: number;
}

export const DEFAULT_TOKEN = '123456:TEST-token-abcdefghijklmnopqrstuvwxyz';
const DEFAULT_BOT_USERNAME = 'janitor_test_bot';
/** Messages older than this (by the emulator clock) can't be deleted for everyone. */
const H48 = 48 * 60 * 60 * 1000;

/** An error answer; thrown inside method handlers. */
class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly description: string,
    readonly parameters?: Record<string, unknown>,
  ) {
    super(description);
  }
}
const badRequest = (what: string) => new ApiError(400, `Bad Request: ${what}`);

interface ChatState {
  id: number;
  messages: Map<number, EmulatedMessage>;
  /** Highest message id ever used in this chat (ids are never reused). */
  lastId: number;
  /** Set when an explicit message id broke the id order of `messages`. */
  unordered: boolean;
  firstName?: string;
  username?: string;
}

interface PollWaiter {
  res: http.ServerResponse;
  record: CallRecord;
  offset: number | undefined;
  limit: number;
  allowed: string[] | undefined;
  timer: Timer;
  done: boolean;
}

interface PendingFailure {
  failure: Failure;
  remaining: number;
}

type Handler = (p: Params) => unknown;

/** Thin accessor over the parsed parameters that coerces form / query strings like Telegram does. */
class Params {
  constructor(readonly raw: Record<string, unknown>) {}

  has(name: string): boolean {
    const v = this.raw[name];
    return v !== undefined && v !== null && v !== '';
  }

  /** An integer parameter, or undefined when absent; a non-integer → 400. */
  int(name: string): number | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null || v === '') return undefined;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw badRequest(`invalid ${name} specified`);
    return n;
  }

  str(name: string): string | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null) return undefined;
    // A number or boolean from a JSON body reads as its text, as Telegram reads it.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    return typeof v === 'string' ? v : String(v);
  }

  bool(name: string): boolean {
    const v = this.raw[name];
    return v === true || v === 'true' || v === '1' || v === 1;
  }

  /** A JSON-valued parameter: already an object in JSON bodies, a JSON string in forms. */
  json(name: string): unknown {
    const v = this.raw[name];
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v);
    } catch {
      throw badRequest(`can't parse ${name} JSON object`);
    }
  }

  intArray(name: string, emptyText: string): number[] {
    const v = this.json(name);
    if (v === undefined || v === null || v === '') throw badRequest(emptyText);
    if (!Array.isArray(v)) throw badRequest(`can't parse ${name} JSON array`);
    return (v as unknown[]).map((x) => {
      const n = typeof x === 'string' && /^-?\d+$/.test(x) ? Number(x) : x;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw badRequest(`invalid ${name} specified`);
      return n;
    });
  }
}

export class BotApiEmulator {
  readonly url: string;
  readonly token: string;
  readonly botId: number;
  readonly botUsername: string;

  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly hanging = new Set<http.ServerResponse>();
  /** Answers held back by a `slow` failure, and for how long. */
  private readonly lateReplies = new WeakMap<http.ServerResponse, number>();
  private readonly chats: Map<number, ChatState>;
  private readonly blocked = new Map<number, 'blocked' | 'deactivated'>();
  private readonly chatFailures = new Map<number, Failure>();
  private readonly methodFailures = new Map<string, PendingFailure[]>();
  private readonly callLog: CallRecord[] = [];
  private readonly handlers = new Map<string, { name: string; fn: Handler }>();
  private readonly strictChats: boolean;
  private readonly latencyMs: number;
  private rateLimit: number | null;
  private rateLimitRetryAfter = 0;
  private readonly paidRateLimit: number | null;
  /** Paid broadcast messages sent (see {@link paidMessages}). */
  private paidCount = 0;
  /** Failures for every call (an outage), rotated call by call; empty = none. */
  private allFailures: Failure[] = [];
  private allFailureNext = 0;
  /** A failure for every call carrying any chat_id (after the per-chat ones); null = none. */
  private allChatsFailure: Failure | null = null;
  /** The calls admitted in the last second under `rateLimit`, and the paid broadcast messages under theirs. */
  private readonly rateWindow = new RateWindow();
  private readonly paidWindow = new RateWindow();
  /** With `chatLimits`: each chat's admitted messages in its window (the last second, or minute for groups). */
  private readonly chatStamps: Map<number, number[]> | null;
  private nowFn: () => number;
  private readonly clock: Clock;
  private updates: Array<Record<string, unknown>> = [];
  private lastUpdateId = 0;
  private pollWaiter: PollWaiter | null = null;
  private webhookUrl = '';
  private closing: Promise<void> | null = null;

  private constructor(server: http.Server, port: number, opts: EmulatorOptions) {
    this.server = server;
    this.url = `http://127.0.0.1:${port}`;
    this.token = opts.token ?? DEFAULT_TOKEN;
    this.botUsername = opts.botUsername ?? DEFAULT_BOT_USERNAME;
    this.botId = Number(/^(\d+):/.exec(this.token)?.[1] ?? 123456);
    this.rateLimit = opts.rateLimit ?? null;
    this.rateLimitRetryAfter = opts.rateLimitRetryAfter ?? 0;
    this.chatStamps = opts.chatLimits ? new Map() : null;
    this.paidRateLimit = opts.paidRateLimit === undefined ? 1000 : opts.paidRateLimit;
    this.strictChats = opts.strictChats ?? false;
    this.latencyMs = opts.latencyMs ?? 0;
    this.nowFn = opts.now ?? Date.now;
    this.clock = opts.clock ?? systemClock;
    // A second bot (e.g. a separate admin bot) sees the same chats and messages, with its own updates.
    this.chats = opts.shareChatsWith?.chats ?? new Map<number, ChatState>();
    this.registerMethods();
  }

  /** Starts an emulator on 127.0.0.1 with a free port. */
  static async start(opts: EmulatorOptions = {}): Promise<BotApiEmulator> {
    const server = http.createServer();
    // Longer than any client's idle keep-alive, so the server never closes a socket the client is about to reuse.
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 130_000;
    server.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const emu = new BotApiEmulator(server, (server.address() as AddressInfo).port, opts);
    server.on('connection', (socket) => {
      emu.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => emu.sockets.delete(socket));
    });
    server.on('request', (req, res) => emu.onRequest(req, res));
    return emu;
  }

  /**
   * Closes the server: pending getUpdates long polls are answered with [] first, everything else still open
   * (hanging requests, idle keep-alive sockets) is destroyed.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      const w = this.pollWaiter;
      if (w && !w.done) this.finishPoll(w, true);
      for (const res of this.hanging) res.socket?.destroy();
      this.hanging.clear();
      this.server.close(() => resolve());
      // Let the long-poll answers flush, then drop every connection that is left.
      setImmediate(() => {
        for (const s of this.sockets) s.destroy();
      });
    });
    return this.closing;
  }

  /**
   * With `chatLimits`: the retry_after (seconds) of a message `method` to a chat past Telegram's per-chat limit, or
   * null when it may go (and is counted).
   */
  private chatLimit(method: string, raw: Record<string, unknown>): number | null {
    if (!this.chatStamps || !/^(send|copy|forward|edit)/i.test(method) || /^sendChatAction$/i.test(method)) return null;
    const chat = Number(raw.chat_id);
    if (!Number.isFinite(chat)) return null;
    const [window, max] = chat > 0 ? [1000, 1] : [60_000, 20];
    const t = this.clock.now().getTime();
    const stamps = (this.chatStamps.get(chat) ?? []).filter((at) => at > t - window);
    if (stamps.length >= max) return Math.max(1, Math.ceil((stamps[0]! + window - t) / 1000));
    stamps.push(t);
    this.chatStamps.set(chat, stamps);
    return null;
  }

  // ------------------------------------------------------------------ state

  /**
   * Puts a message into a chat as if the bot had sent it (or the user, with `fromBot: false`); returns its id.
   * Ids are per chat, increasing from 1 and never reused; `messageId` forces a specific id (replacing any
   * message with that id). `sentAt` (ms epoch) defaults to the emulator clock, which defaults to Date.now().
   */
  addMessage(
    chatId: number,
    opts: { text?: string; sentAt?: number; fromBot?: boolean; reply_markup?: ReplyMarkup; messageId?: number } = {},
  ): number {
    const chat = this.chat(chatId);
    return this.store(chat, {
      text: opts.text,
      sentAt: opts.sentAt ?? this.nowFn(),
      fromBot: opts.fromBot ?? true,
      reply_markup: opts.reply_markup,
      messageId: opts.messageId,
    }).message_id;
  }

  /** Makes a chat known (matters only with `strictChats`). */
  addChat(chatId: number, info: { first_name?: string; username?: string } = {}): void {
    const chat = this.chat(chatId);
    if (info.first_name !== undefined) chat.firstName = info.first_name;
    if (info.username !== undefined) chat.username = info.username;
  }

  /** All messages currently in a chat, in id order (copies). */
  messages(chatId: number): EmulatedMessage[] {
    const chat = this.chats.get(chatId);
    if (!chat) return [];
    const list = [...chat.messages.values()].map((m) => ({ ...m }));
    if (chat.unordered) list.sort((a, b) => a.message_id - b.message_id);
    return list;
  }

  /** One message (a copy), or undefined. */
  message(chatId: number, messageId: number): EmulatedMessage | undefined {
    const m = this.chats.get(chatId)?.messages.get(messageId);
    return m ? { ...m } : undefined;
  }

  hasMessage(chatId: number, messageId: number): boolean {
    return this.chats.get(chatId)?.messages.has(messageId) ?? false;
  }

  /** Log of every call received, in arrival order. */
  get calls(): ReadonlyArray<CallRecord> {
    return this.callLog;
  }

  callsOf(method: string): CallRecord[] {
    const m = method.toLowerCase();
    return this.callLog.filter((c) => c.method.toLowerCase() === m);
  }

  /** How many calls of `method` each chat got, keyed by the calls' `chat_id` (calls without one are left out). */
  callsPerChat(method: string): Map<number, number> {
    const counts = new Map<number, number>();
    for (const c of this.callsOf(method)) {
      if (c.params.chat_id === undefined) continue;
      const chat = Number(c.params.chat_id);
      counts.set(chat, (counts.get(chat) ?? 0) + 1);
    }
    return counts;
  }

  resetCalls(): void {
    this.callLog.length = 0;
  }

  /**
   * Messages sent with `allow_paid_broadcast: true` (those refused are not counted): what a bot's Stars would pay
   * for, where Telegram charges the ones over its free 30 a second.
   */
  get paidMessages(): number {
    return this.paidCount;
  }

  /** The URL given to the last successful setWebhook ('' when none). Updates are not delivered to it. */
  get webhook(): string {
    return this.webhookUrl;
  }

  // ------------------------------------------------------------------ behaviour knobs

  /** Every call carrying this chat_id → 403 "Forbidden: bot was blocked by the user". */
  blockUser(chatId: number): void {
    this.blocked.set(chatId, 'blocked');
  }

  /** Every call carrying this chat_id → 403 "Forbidden: user is deactivated". */
  deactivateUser(chatId: number): void {
    this.blocked.set(chatId, 'deactivated');
  }

  /** Undoes blockUser / deactivateUser. */
  unblockUser(chatId: number): void {
    this.blocked.delete(chatId);
  }

  /** A failure for every call carrying this chat_id until cleared with null. */
  failChat(chatId: number, failure: Failure | null): void {
    if (failure) this.chatFailures.set(chatId, failure);
    else this.chatFailures.delete(chatId);
  }

  /** The next `times` calls of `method` fail (queued after any failures already pending for it). */
  failNext(method: string, failure: Failure, times = 1): void {
    if (times <= 0) return;
    const key = method.toLowerCase();
    let queue = this.methodFailures.get(key);
    if (!queue) this.methodFailures.set(key, (queue = []));
    queue.push({ failure, remaining: times });
  }

  /**
   * Every call (any method, getUpdates too; a wrong token still gets 401) fails until cleared with null: a Telegram
   * outage. With a list, the failures take turns call by call (e.g. a 502, then a time-out, then a 502 …).
   */
  failAll(failure: Failure | readonly Failure[] | null): void {
    // Array.isArray narrows a readonly array to any[], hence the spelled-out element type.
    this.allFailures =
      failure === null ? [] : Array.isArray(failure) ? [...(failure as readonly Failure[])] : [failure as Failure];
    this.allFailureNext = 0;
  }

  /**
   * A failure for every call carrying a chat_id, whatever the chat (e.g. 400 "chat not found" for all of them:
   * the bot token of another bot), until cleared with null. A failChat for the chat comes first.
   */
  failAllChats(failure: Failure | null): void {
    this.allChatsFailure = failure;
  }

  /** Sets the limit (null: none); `opts.retryAfter` as {@link EmulatorOptions.rateLimitRetryAfter}, when given. */
  setRateLimit(perSecond: number | null, opts: { retryAfter?: number } = {}): void {
    this.rateLimit = perSecond;
    if (opts.retryAfter !== undefined) this.rateLimitRetryAfter = opts.retryAfter;
    this.rateWindow.clear();
  }

  setNow(fn: () => number): void {
    this.nowFn = fn;
  }

  /** Queues an update for getUpdates (update_id assigned when missing). Returns the update. */
  pushUpdate(update: object): object {
    const given = (update as { update_id?: unknown }).update_id;
    let u: Record<string, unknown>;
    if (typeof given === 'number') {
      this.lastUpdateId = Math.max(this.lastUpdateId, given);
      u = { ...(update as Record<string, unknown>) };
    } else {
      u = { update_id: ++this.lastUpdateId, ...(update as Record<string, unknown>) };
      u.update_id = this.lastUpdateId;
    }
    this.updates.push(u);
    const w = this.pollWaiter;
    if (w && !w.done && this.pendingFor(w.offset, w.limit, w.allowed).length > 0) this.finishPoll(w, false);
    return u;
  }

  /**
   * Simulates a user writing to the bot in their private chat: stores the message in chat `from.id` and pushes a
   * `message` update (with a bot_command entity for /commands). `extra` is merged into the message. Returns the update.
   */
  sendUserMessage(
    from: { id: number; first_name?: string; username?: string },
    text: string,
    extra: object = {},
  ): object {
    const firstName = from.first_name ?? 'User';
    const chat = this.chat(from.id);
    chat.firstName = firstName;
    if (from.username !== undefined) chat.username = from.username;
    const stored = this.store(chat, { text, sentAt: this.nowFn(), fromBot: false });
    const user: Record<string, unknown> = { id: from.id, is_bot: false, first_name: firstName };
    if (from.username !== undefined) user.username = from.username;
    const message: Record<string, unknown> = {
      message_id: stored.message_id,
      from: user,
      chat: this.chatObject(from.id),
      date: stored.date,
      text,
    };
    const cmd = /^\/[^\s]+/.exec(text);
    if (cmd) message.entities = [{ offset: 0, length: cmd[0].length, type: 'bot_command' }];
    Object.assign(message, extra);
    return this.pushUpdate({ message });
  }

  // ------------------------------------------------------------------ internals: storage

  private chat(chatId: number): ChatState {
    let chat = this.chats.get(chatId);
    if (!chat) {
      chat = { id: chatId, messages: new Map(), lastId: 0, unordered: false };
      this.chats.set(chatId, chat);
    }
    return chat;
  }

  private store(
    chat: ChatState,
    m: {
      text?: string;
      sentAt: number;
      fromBot: boolean;
      reply_markup?: ReplyMarkup;
      copiedFrom?: EmulatedMessage['copiedFrom'];
      forwarded?: boolean;
      kind?: string;
      messageId?: number;
    },
  ): EmulatedMessage {
    let id: number;
    if (m.messageId !== undefined) {
      id = m.messageId;
      if (id < chat.lastId) chat.unordered = true;
      chat.lastId = Math.max(chat.lastId, id);
    } else {
      id = ++chat.lastId;
    }
    const msg: EmulatedMessage = {
      message_id: id,
      chat_id: chat.id,
      date: Math.floor(m.sentAt / 1000),
      sentAt: m.sentAt,
      fromBot: m.fromBot,
    };
    if (m.text !== undefined) msg.text = m.text;
    if (m.reply_markup !== undefined) msg.reply_markup = m.reply_markup;
    if (m.copiedFrom) msg.copiedFrom = m.copiedFrom;
    if (m.forwarded) msg.forwarded = true;
    if (m.kind !== undefined) msg.kind = m.kind;
    chat.messages.delete(id);
    chat.messages.set(id, msg);
    return msg;
  }

  private chatObject(chatId: number): Record<string, unknown> {
    if (chatId > 0) {
      const chat = this.chats.get(chatId);
      const o: Record<string, unknown> = { id: chatId, first_name: chat?.firstName ?? 'User' };
      if (chat?.username !== undefined) o.username = chat.username;
      o.type = 'private';
      return o;
    }
    if (chatId <= -1_000_000_000_000) return { id: chatId, title: 'Emulated Channel', type: 'channel' };
    return { id: chatId, title: 'Emulated Group', type: 'group' };
  }

  private botUser(): Record<string, unknown> {
    return { id: this.botId, is_bot: true, first_name: 'Janitor Test', username: this.botUsername };
  }

  /** The Message object Telegram returns for a stored message. */
  private messageObject(m: EmulatedMessage): Record<string, unknown> {
    const o: Record<string, unknown> = { message_id: m.message_id };
    if (m.fromBot) o.from = this.botUser();
    o.chat = this.chatObject(m.chat_id);
    o.date = m.date;
    if (m.edit_date !== undefined) o.edit_date = m.edit_date;
    if (m.forwarded) o.forward_origin = { type: 'user', sender_user: this.botUser(), date: m.date };
    if (m.kind !== undefined) {
      // Just enough of the media object for a client to tell what it got.
      const file = { file_id: `${m.kind}-${m.chat_id}-${m.message_id}`, file_unique_id: `u${m.message_id}` };
      o[m.kind] = m.kind === 'photo' ? [{ ...file, width: 1, height: 1 }] : file;
      if (m.text !== undefined) o.caption = m.text;
    } else if (m.text !== undefined) o.text = m.text;
    if (m.reply_markup !== undefined) o.reply_markup = m.reply_markup;
    return o;
  }

  /** The target chat of a call, or 400 "chat not found". */
  private targetChat(p: Params, name = 'chat_id'): ChatState {
    const raw = p.raw[name];
    if (raw === undefined || raw === null || raw === '') throw badRequest(`${name} is empty`);
    if (typeof raw === 'string' && !/^\s*-?\d+\s*$/.test(raw)) throw badRequest('chat not found'); // @username
    const id = p.int(name)!;
    const chat = this.chats.get(id);
    if (chat) return chat;
    if (this.strictChats && id > 0) throw badRequest('chat not found');
    if (id === 0) throw badRequest('chat not found');
    return this.chat(id);
  }

  private deletable(m: EmulatedMessage): boolean {
    return this.nowFn() - m.sentAt < H48;
  }

  // ------------------------------------------------------------------ internals: methods

  private def(name: string, fn: Handler): void {
    this.handlers.set(name.toLowerCase(), { name, fn });
  }

  private registerMethods(): void {
    this.def('getMe', () => ({
      ...this.botUser(),
      can_join_groups: true,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
    }));

    this.def('getChat', (p) => {
      this.targetChat(p);
      return this.chatObject(p.int('chat_id')!);
    });

    this.def('sendMessage', (p) => {
      const chat = this.targetChat(p);
      const text = p.str('text');
      if (!text || text.trim() === '') throw badRequest('message text is empty');
      if (text.length > 4096) throw badRequest('message is too long');
      const msg = this.store(chat, {
        text,
        sentAt: this.nowFn(),
        fromBot: true,
        reply_markup: p.has('reply_markup') ? (p.json('reply_markup') as ReplyMarkup) : undefined,
      });
      return this.messageObject(msg);
    });

    this.def('deleteMessage', (p) => {
      const chat = this.targetChat(p);
      const id = p.int('message_id');
      if (id === undefined) throw badRequest('message identifier is not specified');
      const m = chat.messages.get(id);
      if (!m) throw badRequest('message to delete not found');
      if (!this.deletable(m)) throw badRequest("message can't be deleted for everyone");
      chat.messages.delete(id);
      return true;
    });

    this.def('deleteMessages', (p) => {
      const chat = this.targetChat(p);
      const ids = p.intArray('message_ids', 'message identifiers are not specified');
      if (ids.length === 0) throw badRequest('message identifiers are not specified');
      if (ids.length > 100) throw badRequest('too many messages to delete');
      let found = 0;
      let undeletable = 0;
      for (const id of ids) {
        const m = chat.messages.get(id);
        if (!m) continue;
        found++;
        if (this.deletable(m)) chat.messages.delete(id);
        else undeletable++;
      }
      if (found === 0) throw badRequest('message to delete not found');
      if (undeletable > 0) throw badRequest("message can't be deleted for everyone");
      return true;
    });

    this.def('copyMessage', (p) => {
      const chat = this.targetChat(p);
      const from = this.targetChat(p, 'from_chat_id');
      const id = p.int('message_id');
      if (id === undefined) throw badRequest('message identifier is not specified');
      const src = from.messages.get(id);
      if (!src) throw badRequest('message to copy not found');
      const msg = this.store(chat, {
        text: p.has('caption') ? p.str('caption') : src.text,
        sentAt: this.nowFn(),
        fromBot: true,
        reply_markup: p.has('reply_markup') ? (p.json('reply_markup') as ReplyMarkup) : undefined,
        copiedFrom: { chat_id: from.id, message_id: id },
      });
      return { message_id: msg.message_id };
    });

    this.def('copyMessages', (p) => {
      const chat = this.targetChat(p);
      const from = this.targetChat(p, 'from_chat_id');
      const ids = p.intArray('message_ids', 'message identifiers are not specified');
      if (ids.length === 0) throw badRequest('message identifiers are not specified');
      if (ids.length > 100) throw badRequest('too many messages to copy');
      const sources = [...new Set(ids)]
        .sort((a, b) => a - b)
        .map((id) => from.messages.get(id))
        .filter((m): m is EmulatedMessage => m !== undefined);
      if (sources.length === 0) throw badRequest('message to copy not found');
      return sources.map((src) => ({
        message_id: this.store(chat, {
          text: p.bool('remove_caption') ? undefined : src.text,
          sentAt: this.nowFn(),
          fromBot: true,
          copiedFrom: { chat_id: from.id, message_id: src.message_id },
        }).message_id,
      }));
    });

    // Media and the other kinds of message: stored with their kind and caption, answered with a Message.
    const kinds: Record<string, string> = {
      sendPhoto: 'photo',
      sendAudio: 'audio',
      sendDocument: 'document',
      sendVideo: 'video',
      sendAnimation: 'animation',
      sendVoice: 'voice',
      sendVideoNote: 'video_note',
      sendSticker: 'sticker',
      sendLocation: 'location',
      sendVenue: 'venue',
      sendContact: 'contact',
      sendPoll: 'poll',
      sendDice: 'dice',
      sendPaidMedia: 'paid_media',
      sendInvoice: 'invoice',
      sendGame: 'game',
    };
    const files = new Set(['photo', 'audio', 'document', 'video', 'animation', 'voice', 'video_note', 'sticker']);
    for (const [method, kind] of Object.entries(kinds))
      this.def(method, (p) => {
        const chat = this.targetChat(p);
        // A file send needs its file: an id, a URL or an upload (a multipart part, parsed as { filename, size }).
        if (files.has(kind) && !p.has(kind)) throw badRequest(`there is no ${kind} in the request`);
        const caption = p.str('caption');
        return this.messageObject(this.store(chat, { text: caption, sentAt: this.nowFn(), fromBot: true, kind }));
      });

    this.def('sendMediaGroup', (p) => {
      const chat = this.targetChat(p);
      const media = p.json('media');
      if (!Array.isArray(media) || media.length < 2 || media.length > 10)
        throw badRequest('media must include 2-10 items');
      return (media as { type?: string; caption?: string }[]).map((item) =>
        this.messageObject(
          this.store(chat, { text: item.caption, sentAt: this.nowFn(), fromBot: true, kind: item.type ?? 'photo' }),
        ),
      );
    });

    this.def('forwardMessage', (p) => {
      const chat = this.targetChat(p);
      const from = this.targetChat(p, 'from_chat_id');
      const id = p.int('message_id');
      if (id === undefined) throw badRequest('message identifier is not specified');
      const src = from.messages.get(id);
      if (!src) throw badRequest('message to forward not found');
      const copy = { text: src.text, sentAt: this.nowFn(), fromBot: true, forwarded: true, kind: src.kind };
      return this.messageObject(this.store(chat, { ...copy, copiedFrom: { chat_id: from.id, message_id: id } }));
    });

    this.def('forwardMessages', (p) => {
      const chat = this.targetChat(p);
      const from = this.targetChat(p, 'from_chat_id');
      const ids = p.intArray('message_ids', 'message identifiers are not specified');
      if (ids.length === 0) throw badRequest('message identifiers are not specified');
      if (ids.length > 100) throw badRequest('too many messages to forward');
      const sources = [...new Set(ids)]
        .sort((a, b) => a - b)
        .map((id) => from.messages.get(id))
        .filter((m): m is EmulatedMessage => m !== undefined);
      if (sources.length === 0) throw badRequest('message to forward not found');
      return sources.map((src) => ({
        message_id: this.store(chat, {
          text: src.text,
          sentAt: this.nowFn(),
          fromBot: true,
          forwarded: true,
          kind: src.kind,
          copiedFrom: { chat_id: from.id, message_id: src.message_id },
        }).message_id,
      }));
    });

    this.def('editMessageText', (p) => {
      if (!p.has('chat_id') && p.has('inline_message_id')) return true;
      const chat = this.targetChat(p);
      const id = p.int('message_id');
      if (id === undefined) throw badRequest('message identifier is not specified');
      const text = p.str('text');
      if (!text || text.trim() === '') throw badRequest('message text is empty');
      const m = chat.messages.get(id);
      if (!m) throw badRequest('message to edit not found');
      if (!m.fromBot) throw badRequest("message can't be edited");
      const markup = p.has('reply_markup') ? (p.json('reply_markup') as ReplyMarkup) : undefined;
      if (m.text === text && JSON.stringify(m.reply_markup) === JSON.stringify(markup)) {
        throw badRequest(
          'message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message',
        );
      }
      m.text = text;
      if (markup === undefined) delete m.reply_markup;
      else m.reply_markup = markup;
      m.edit_date = Math.floor(this.nowFn() / 1000);
      return this.messageObject(m);
    });

    this.def('setWebhook', (p) => {
      this.webhookUrl = p.str('url') ?? '';
      if (p.bool('drop_pending_updates')) this.updates = [];
      return true;
    });
    this.def('deleteWebhook', (p) => {
      this.webhookUrl = '';
      if (p.bool('drop_pending_updates')) this.updates = [];
      return true;
    });
    this.def('getWebhookInfo', () => ({
      url: this.webhookUrl,
      has_custom_certificate: false,
      pending_update_count: this.updates.length,
    }));
    this.def('setMyCommands', () => true);
    this.def('answerCallbackQuery', () => true);
    this.def('getUpdates', () => {
      throw new Error('getUpdates is handled separately');
    });
  }

  /** Updates a getUpdates call would return (after dropping the ones `offset` confirms). */
  private pendingFor(
    offset: number | undefined,
    limit: number,
    allowed: string[] | undefined,
  ): Array<Record<string, unknown>> {
    if (offset !== undefined && offset !== 0) {
      if (offset < 0) {
        this.updates = this.updates.slice(offset);
      } else {
        this.updates = this.updates.filter((u) => (u.update_id as number) >= offset);
      }
    }
    let list = this.updates;
    if (allowed && allowed.length > 0) list = list.filter((u) => Object.keys(u).some((k) => allowed.includes(k)));
    return list.slice(0, limit);
  }

  private getUpdates(p: Params, res: http.ServerResponse, record: CallRecord): void {
    if (this.webhookUrl) {
      throw new ApiError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
      );
    }
    const offset = p.int('offset');
    const limit = Math.min(100, Math.max(1, p.int('limit') ?? 100));
    const timeout = Math.min(50, Math.max(0, p.int('timeout') ?? 0));
    const allowedRaw = p.has('allowed_updates') ? p.json('allowed_updates') : undefined;
    const allowed = Array.isArray(allowedRaw) ? allowedRaw.map(String) : undefined;

    // A new getUpdates request terminates the pending one, as on Telegram.
    const prev = this.pollWaiter;
    if (prev && !prev.done) {
      prev.done = true;
      prev.timer.cancel();
      this.reply(
        prev.res,
        prev.record,
        errorBody(
          409,
          'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
        ),
        409,
      );
    }
    this.pollWaiter = null;

    const now = this.pendingFor(offset, limit, allowed);
    if (now.length > 0 || timeout === 0 || this.closing) {
      this.reply(res, record, okBody(now), 200);
      return;
    }
    const w: PollWaiter = {
      res,
      record,
      offset,
      limit,
      allowed,
      done: false,
      timer: this.clock.timeout(timeout * 1000, () => this.finishPoll(w, true)),
    };
    this.pollWaiter = w;
    res.on('close', () => {
      if (!w.done) {
        w.done = true;
        w.timer.cancel();
        if (this.pollWaiter === w) this.pollWaiter = null;
      }
    });
  }

  private finishPoll(w: PollWaiter, empty: boolean): void {
    if (w.done) return;
    w.done = true;
    w.timer.cancel();
    if (this.pollWaiter === w) this.pollWaiter = null;
    const result = empty ? [] : this.pendingFor(w.offset, w.limit, w.allowed);
    this.reply(w.res, w.record, okBody(result), 200);
  }

  // ------------------------------------------------------------------ internals: HTTP

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        this.dispatch(req, res, Buffer.concat(chunks));
      } catch (err) {
        if (!res.headersSent) {
          const body = errorBody(500, `Internal Server Error: ${err instanceof Error ? err.message : String(err)}`);
          send(res, 500, body);
        }
      }
    });
    req.on('error', () => res.destroy());
  }

  private dispatch(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const match = /^\/bot([^/]*)\/([^/]*)\/?$/.exec(u.pathname);
    if (!match) {
      send(res, 404, errorBody(404, 'Not Found'));
      return;
    }
    const token = decodeURIComponent(match[1]!);
    const methodRaw = decodeURIComponent(match[2]!);
    const handler = this.handlers.get(methodRaw.toLowerCase());

    let raw: Record<string, unknown>;
    let parseError: string | null = null;
    try {
      raw = parseParams(u.searchParams, req.headers['content-type'], body);
    } catch (err) {
      raw = {};
      parseError = err instanceof Error ? err.message : String(err);
    }
    const record: CallRecord = { method: handler?.name ?? methodRaw, params: raw, at: Date.now(), status: 0 };
    this.callLog.push(record);
    if (this.latencyMs > 0) this.lateReplies.set(res, this.latencyMs);

    if (token !== this.token) return this.reply(res, record, errorBody(401, 'Unauthorized'), 401);
    if (!handler) return this.reply(res, record, errorBody(404, 'Not Found'), 404);

    // A global outage.
    if (this.allFailures.length > 0) {
      const failure = this.allFailures[this.allFailureNext++ % this.allFailures.length]!;
      if (failure.kind !== 'slow') return this.fail(res, record, failure);
      this.lateReplies.set(res, failure.ms);
    }

    // Injected per-method failure.
    const queue = this.methodFailures.get(handler.name.toLowerCase());
    const pending = queue?.[0];
    if (queue && pending) {
      if (--pending.remaining <= 0) queue.shift();
      if (pending.failure.kind !== 'slow') return this.fail(res, record, pending.failure);
      this.lateReplies.set(res, pending.failure.ms);
    }

    // Rate limits (sliding 1 s windows over admitted calls): paid broadcast messages count in their own.
    const params = new Params(raw);
    const paid = takesPaidBroadcast(handler.name) && params.bool('allow_paid_broadcast');
    const retryAfter = this.admit(paid);
    if (retryAfter !== null) {
      const body = errorBody(429, `Too Many Requests: retry after ${retryAfter}`, { retry_after: retryAfter });
      return this.reply(res, record, body, 429);
    }

    const chatLimited = this.chatLimit(handler.name, raw);
    if (chatLimited !== null) {
      const body = errorBody(429, `Too Many Requests: retry after ${chatLimited}`, { retry_after: chatLimited });
      return this.reply(res, record, body, 429);
    }

    if (parseError !== null) return this.reply(res, record, errorBody(400, `Bad Request: ${parseError}`), 400);

    try {
      // Per-chat state for every call that carries a chat_id.
      const chatId = params.has('chat_id') ? params.raw.chat_id : undefined;
      if (chatId !== undefined) {
        const id = typeof chatId === 'number' ? chatId : Number(chatId);
        const failure = this.chatFailures.get(id) ?? this.allChatsFailure ?? undefined;
        if (failure && failure.kind !== 'slow') return this.fail(res, record, failure);
        if (failure) this.lateReplies.set(res, failure.ms);
        const state = this.blocked.get(id);
        if (state === 'blocked') throw new ApiError(403, 'Forbidden: bot was blocked by the user');
        if (state === 'deactivated') throw new ApiError(403, 'Forbidden: user is deactivated');
      }
      if (handler.name === 'getUpdates') return this.getUpdates(params, res, record);
      const result = handler.fn(params);
      if (paid) this.paidCount++;
      this.reply(res, record, okBody(result), 200);
    } catch (err) {
      if (err instanceof ApiError) {
        this.reply(res, record, errorBody(err.code, err.description, err.parameters), err.code);
      } else {
        throw err;
      }
    }
  }

  /** Admits a call into its rate window now: null, or the retry_after (seconds) of the 429 it gets. */
  private admit(paid: boolean): number | null {
    const t = this.clock.now().getTime();
    if (paid) return this.paidRateLimit === null ? null : this.paidWindow.admit(t, this.paidRateLimit);
    if (this.rateLimit === null) return null;
    const wait = this.rateWindow.admit(t, this.rateLimit);
    return wait === null ? null : Math.max(wait, this.rateLimitRetryAfter);
  }

  private fail(res: http.ServerResponse, record: CallRecord, failure: Failure): void {
    switch (failure.kind) {
      case 'status': {
        if (failure.rawBody !== undefined) {
          record.status = failure.code;
          send(res, failure.code, failure.rawBody, 'text/html');
          return;
        }
        const parameters = failure.retryAfter !== undefined ? { retry_after: failure.retryAfter } : undefined;
        this.reply(res, record, errorBody(failure.code, failure.description, parameters), failure.code);
        return;
      }
      case 'timeout':
        this.hanging.add(res);
        res.on('close', () => this.hanging.delete(res));
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'slow':
        // Never reached: a slow answer is the normal answer, held back in reply().
        return;
    }
  }

  /** Answers with an already serialized JSON body and records the status. */
  private reply(res: http.ServerResponse, record: CallRecord, body: string, status: number): void {
    const late = this.lateReplies.get(res);
    if (late !== undefined) {
      this.lateReplies.delete(res);
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      this.clock.timeout(
        late,
        () => {
          this.hanging.delete(res);
          this.reply(res, record, body, status);
        },
        { unref: true },
      );
      return;
    }
    record.status = status;
    if (res.destroyed || res.writableEnded) return;
    send(res, status, body);
  }
}

function okBody(result: unknown): string {
  return JSON.stringify({ ok: true, result });
}

function errorBody(code: number, description: string, parameters?: Record<string, unknown>): string {
  const o: Record<string, unknown> = { ok: false, error_code: code, description };
  if (parameters) o.parameters = parameters;
  return JSON.stringify(o);
}

function send(res: http.ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Query string merged with a JSON, urlencoded or multipart body. */
function parseParams(query: URLSearchParams, contentType: string | undefined, body: Buffer): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of query) out[k] = v;
  if (body.length === 0) return out;
  const type = (contentType ?? '').toLowerCase();
  if (type.includes('application/x-www-form-urlencoded')) {
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) out[k] = v;
  } else if (type.includes('multipart/form-data')) {
    const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
    if (!boundary) throw new Error('multipart boundary not found');
    Object.assign(out, parseMultipart(body, boundary[1] ?? boundary[2]!));
  } else {
    // JSON (application/json, or no content type at all).
    let v: unknown;
    try {
      v = JSON.parse(body.toString('utf8'));
    } catch {
      throw new Error("can't parse JSON object");
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error("can't parse JSON object");
    Object.assign(out, v);
  }
  return out;
}

/** Minimal multipart/form-data parser: text fields as strings, files as `{ filename, size }`. */
function parseMultipart(body: Buffer, boundary: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const delim = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delim);
  while (pos !== -1) {
    const start = pos + delim.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delim, start);
    if (next === -1) break;
    const part = body.subarray(start + 2, next - 2); // skip CRLF after the delimiter and before the next
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd !== -1) {
      const headers = part.subarray(0, headerEnd).toString('utf8');
      const content = part.subarray(headerEnd + 4);
      const name = /name="([^"]*)"/i.exec(headers)?.[1];
      const filename = /filename="([^"]*)"/i.exec(headers)?.[1];
      if (name !== undefined) {
        out[name] = filename !== undefined ? { filename, size: content.length } : content.toString('utf8');
      }
    }
    pos = next;
  }
  return out;
}
