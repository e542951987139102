/**
 * The throttle's decisions, pure: which waiting call goes next and when, given the shared rate, the paid budget, a
 * 429 pause, each lane's slow-down and each chat's own spacing. `throttle.ts` owns the timers and calls these; tests
 * call them directly with a state they build.
 */

/**
 * The throttle's priority lanes, highest first: `reply` (answers to users, file deliveries, and every call that
 * sends nothing to a chat), `deletion` (on-time deletions and their notices), `bulk` (broadcast copies and
 * broadcast deletions: what the other lanes leave).
 */
export type Lane = 'reply' | 'deletion' | 'bulk';

/** The lanes in priority order. */
export const LANES: readonly Lane[] = ['reply', 'deletion', 'bulk'];

/** Where a waiter queues: its lane's queue, or `paid` for the bulk lane's paid broadcast messages (their own budget). */
export type QueueKey = Lane | 'paid';

/**
 * Each lane's queues, in the order a free slot is offered: the bulk lane's free waiters, then its paid ones. Paid
 * waiters queue apart so that a decision never walks a long queue of free waiters to find them.
 */
const LANE_QUEUES: Record<Lane, readonly QueueKey[]> = {
  reply: ['reply'],
  deletion: ['deletion'],
  bulk: ['bulk', 'paid'],
};

/** A chat as the per-chat spacing knows it: a numeric id, or a `@username` (a channel or public group). */
export type ChatKey = number | string;

/** A call waiting for its slot. */
export interface Waiter {
  lane: Lane;
  /** The chat a message goes to; none for calls that send nothing to a chat (no per-chat spacing). */
  chat?: ChatKey | undefined;
  /**
   * A paid broadcast message (`allow_paid_broadcast`): in the bulk lane it takes the paid budget's slot instead of
   * the shared rate's; in the other lanes it changes nothing (see {@link isPaid}).
   */
  paid?: boolean | undefined;
}

/** The throttle's fixed numbers. */
export interface Limits {
  /** Milliseconds between any two calls (1000 / rate); > 0 — an unlimited throttle never asks these functions. */
  interval: number;
  /** Milliseconds between two paid broadcast messages (1000 / the paid rate; default 1: 1000 a second). */
  paidInterval: number;
  /** Spacing of messages to one private chat (default 1000 ms: Telegram's "about one message per second"). */
  privateChatMs: number;
  /** Spacing of messages to one group or channel (default 3000 ms: 20 per minute). */
  groupChatMs: number;
  /** The slowest a lane goes after 429s, calls per second (default 1, or the rate when lower). */
  minRate: number;
  /** A slowed lane speeds up one step after this long without a 429 of its own (default 10 s). */
  recoverEveryMs: number;
  /** Each step multiplies the lane's rate by this, up to the shared rate (default 1.25). */
  recoverFactor: number;
  /**
   * How far behind its schedule the throttle may run and still keep it, making the slots up (default 25 ms, never
   * less than one interval). A timer fires a millisecond late at best: at rates above a few hundred calls a second
   * the slots between two wake-ups are made up at once, or the rate would be capped near one call per wake-up. Longer
   * idle gaps start the schedule again from now, so no burst makes up for time nobody used.
   */
  catchUpMs: number;
}

/** A lane's own pace: its share of the rate after 429s, and its last call. */
export interface LaneState {
  /** Calls per second the lane was allowed at `since` (Infinity: not slowed). */
  rate: number;
  /** When `rate` was set: recovery steps count from here. */
  since: number;
  /** When the lane's last call went. */
  last: number;
  /** When the lane was last slowed: a 429 of a call let out before that was met at the old pace, and is not halved again. */
  slowedAt: number;
}

/** Everything the decision reads. */
export interface ThrottleState<W extends Waiter = Waiter> {
  /** Each queue's waiters ({@link queueOf}), oldest first. */
  queues: Record<QueueKey, W[]>;
  /** The earliest instant the next call may go (the shared rate). */
  nextFree: number;
  /** The earliest instant the next paid broadcast message may go (the paid budget, apart from the shared rate). */
  paidNextFree: number;
  /** No call goes before this (a 429's retry_after). */
  pausedUntil: number;
  /** Each chat's earliest next message; entries in the past mean nothing and are pruned now and then. */
  chatNext: Map<ChatKey, number>;
  lanes: Record<Lane, LaneState>;
}

/** What the throttle does now: let `waiter` (at `index` of its queue) go, wait until `at`, or nothing. */
export type Decision<W extends Waiter> =
  { kind: 'grant'; waiter: W; index: number } | { kind: 'wait'; at: number } | { kind: 'idle' };

/**
 * Limits for `rate` calls per second (> 0) and `paidRate` paid broadcast messages per second (> 0, default 1000:
 * Telegram's "up to 1000 messages per second"), the defaults filled in.
 */
export function limitsFor(
  rate: number,
  opts: Partial<Omit<Limits, 'interval' | 'paidInterval'>> & { paidRate?: number } = {},
): Limits {
  return {
    interval: 1000 / rate,
    paidInterval: 1000 / (opts.paidRate ?? 1000),
    privateChatMs: opts.privateChatMs ?? 1000,
    groupChatMs: opts.groupChatMs ?? 3000,
    minRate: Math.min(opts.minRate ?? 1, rate),
    recoverEveryMs: opts.recoverEveryMs ?? 10_000,
    recoverFactor: opts.recoverFactor ?? 1.25,
    catchUpMs: Math.max(1000 / rate, opts.catchUpMs ?? 25),
  };
}

/** A state with nobody waiting and nothing slowed. */
export function emptyState<W extends Waiter>(): ThrottleState<W> {
  const lane = (): LaneState => ({ rate: Infinity, since: 0, last: -Infinity, slowedAt: -Infinity });
  return {
    queues: { reply: [], deletion: [], bulk: [], paid: [] },
    nextFree: -Infinity,
    paidNextFree: -Infinity,
    pausedUntil: -Infinity,
    chatNext: new Map(),
    lanes: { reply: lane(), deletion: lane(), bulk: lane() },
  };
}

/** The spacing of messages to `chat`: private chats have positive ids; groups, channels and `@names` do not. */
export function chatSpacing(chat: ChatKey, limits: Limits): number {
  return typeof chat === 'number' && chat > 0 ? limits.privateChatMs : limits.groupChatMs;
}

/**
 * Whether `w` takes the paid budget's slot: a paid broadcast message in the bulk lane. Elsewhere the flag changes
 * nothing: replies and deletions are not broadcasts, and Telegram's paid limit is about broadcasting.
 */
export function isPaid(w: Waiter): boolean {
  return w.paid === true && w.lane === 'bulk';
}

/** The queue `w` waits in. */
export function queueOf(w: Waiter): QueueKey {
  return isPaid(w) ? 'paid' : w.lane;
}

/**
 * The calls per second `lane` may make at `now`: the shared rate, or less after a 429, stepping back up by
 * `recoverFactor` every `recoverEveryMs` since it was slowed. Computed, not stored, so the state changes only when
 * a call goes or a 429 comes.
 */
export function laneRate(s: ThrottleState, limits: Limits, lane: Lane, now: number): number {
  const rate = 1000 / limits.interval;
  const l = s.lanes[lane];
  if (l.rate >= rate) return rate;
  const steps = Math.max(0, Math.floor((now - l.since) / limits.recoverEveryMs));
  return Math.min(rate, l.rate * limits.recoverFactor ** steps);
}

/** The earliest instant `lane`'s next call may go by its own pace (the shared rate aside). */
function laneReadyAt(s: ThrottleState, limits: Limits, lane: Lane, now: number): number {
  const rate = laneRate(s, limits, lane, now);
  // At the shared rate the lane needs no spacing of its own: nextFree already spaces every call.
  return rate >= 1000 / limits.interval ? -Infinity : s.lanes[lane].last + 1000 / rate;
}

/**
 * Which waiter goes at `now`, or until when nothing can: after a pause, the highest lane whose own pace allows a call
 * gives the oldest waiter of a queue whose slot is free — the shared rate's, or the paid budget's for the bulk lane's
 * paid broadcast messages ({@link queueOf}) — and whose chat is ready. A waiter whose chat is not ready is passed
 * over, not waited for: other chats of its queue, then the next queues and lanes, take the slot.
 */
export function nextGrant<W extends Waiter>(s: ThrottleState<W>, limits: Limits, now: number): Decision<W> {
  if (Object.values(s.queues).every((q) => q.length === 0)) return { kind: 'idle' };
  if (now < s.pausedUntil) return { kind: 'wait', at: s.pausedUntil };
  let wake = Infinity;
  for (const lane of LANES) {
    const keys = LANE_QUEUES[lane].filter((key) => s.queues[key].length > 0);
    if (keys.length === 0) continue;
    const ready = laneReadyAt(s, limits, lane, now);
    if (ready > now) {
      wake = Math.min(wake, ready);
      continue;
    }
    for (const key of keys) {
      const slot = key === 'paid' ? s.paidNextFree : s.nextFree;
      if (slot > now) {
        wake = Math.min(wake, slot);
        continue;
      }
      const q = s.queues[key];
      for (let i = 0; i < q.length; i++) {
        const w = q[i]!;
        const at = w.chat === undefined ? now : (s.chatNext.get(w.chat) ?? now);
        if (at <= now) return { kind: 'grant', waiter: w, index: i };
        wake = Math.min(wake, at);
      }
    }
  }
  return { kind: 'wait', at: wake };
}

/**
 * Books the slot `w` takes at `now` (the shared rate's or the paid budget's, its lane's pace, its chat's spacing)
 * and returns how to undo it, for a grant a pause voids before the call leaves.
 */
export function book(s: ThrottleState, limits: Limits, w: Waiter, now: number): () => void {
  const before = { nextFree: s.nextFree, paidNextFree: s.paidNextFree, last: s.lanes[w.lane].last };
  const chatBefore = w.chat === undefined ? undefined : s.chatNext.get(w.chat);
  if (isPaid(w)) s.paidNextFree = nextSlot(s.paidNextFree, limits.paidInterval, limits.catchUpMs, now);
  else s.nextFree = nextSlot(s.nextFree, limits.interval, limits.catchUpMs, now);
  s.lanes[w.lane].last = now;
  if (w.chat !== undefined) s.chatNext.set(w.chat, now + chatSpacing(w.chat, limits));
  return () => {
    s.nextFree = before.nextFree;
    s.paidNextFree = before.paidNextFree;
    s.lanes[w.lane].last = before.last;
    if (w.chat === undefined) return;
    if (chatBefore === undefined) s.chatNext.delete(w.chat);
    else s.chatNext.set(w.chat, chatBefore);
  };
}

/** The slot after one taken at `now` from a schedule whose next free instant was `next`, `interval` apart. */
function nextSlot(next: number, interval: number, catchUpMs: number, now: number): number {
  // A timer that fired a little late keeps the schedule (the average rate holds; see `catchUpMs`); after a longer
  // idle gap the schedule starts again from now, so no burst makes up for time nobody used.
  const base = now - next < Math.max(interval, catchUpMs) ? next : now;
  return base + interval;
}

/**
 * A 429 met by a call of `lane` let out at `grantedAt`: the lane's rate halves (not below `minRate`) and recovers
 * step by step from now. A call let out before the lane's last slow-down went at the old pace: its 429 is the same
 * news, and halves nothing again (several calls in flight often meet one limit together).
 */
export function slowDown(s: ThrottleState, limits: Limits, lane: Lane, grantedAt: number, now: number): void {
  const l = s.lanes[lane];
  if (grantedAt < l.slowedAt) return;
  l.rate = Math.max(limits.minRate, laneRate(s, limits, lane, now) / 2);
  l.since = now;
  l.slowedAt = now;
}

/** Forgets chats whose spacing is over, so a broadcast to a million chats leaves no million entries behind. */
export function prune(s: ThrottleState, now: number): void {
  for (const [chat, at] of s.chatNext) if (at <= now) s.chatNext.delete(chat);
}

/** Moves every instant of the state by `delta` ms (the wall clock was set back: the waits keep their length). */
export function shift(s: ThrottleState, delta: number): void {
  s.nextFree += delta;
  s.paidNextFree += delta;
  s.pausedUntil += delta;
  for (const [chat, at] of s.chatNext) s.chatNext.set(chat, at + delta);
  for (const lane of LANES) {
    const l = s.lanes[lane];
    l.since += delta;
    l.last += delta;
    l.slowedAt += delta;
  }
}

/**
 * Where a Bot API call goes in the throttle: its lane (null: it takes no slot), the chat it sends to, and whether it
 * is a paid broadcast message.
 */
export interface Route {
  lane: Lane | null;
  chat?: ChatKey;
  paid?: true;
}

/** Methods that put or change a message in a chat but do not start with send/copy/forward/edit. */
const ALSO_SENDS = new Set(['stopPoll', 'stopMessageLiveLocation']);

/**
 * The lane and chat of `method` called from `callerLane`:
 * - `getUpdates` takes no slot: one long poll at a time per bot, it sends nothing and Telegram's message limits do
 *   not count it, and an update it brings late delays every reply behind it. It still waits out a 429 pause.
 * - Messages to a chat (send*, copy*, forward*, edit*, but not sendChatAction) go in the caller's lane with their
 *   chat's spacing: Telegram's per-chat limits are about messages sent.
 * - Deletions go in the caller's lane without per-chat spacing: Telegram documents no per-chat limit for them, and
 *   an on-time deletion should not wait a second behind the delivery it removes.
 * - Everything else (getMe, getChat, setWebhook, answerCallbackQuery…) sends nothing to a chat: lane `reply`
 *   whatever the caller, since someone usually waits on it; it still counts in the shared rate.
 * - A message of the bulk lane sent with `allow_paid_broadcast: true` by a method that takes it is paid: Telegram
 *   lets it past the free broadcast limit, so it takes the paid budget instead of the shared rate.
 */
export function routeOf(method: string, payload: unknown, callerLane: Lane): Route {
  if (method === 'getUpdates') return { lane: null };
  if (method === 'deleteMessage' || method === 'deleteMessages') return { lane: callerLane };
  const sends = /^(send|copy|forward|edit)/.test(method) && method !== 'sendChatAction';
  if (!sends && !ALSO_SENDS.has(method)) return { lane: 'reply' };
  const chat = chatOf(payload);
  const route: Route = chat === undefined ? { lane: callerLane } : { lane: callerLane, chat };
  if (callerLane === 'bulk' && takesPaidBroadcast(method) && paidFlag(payload)) route.paid = true;
  return route;
}

/**
 * Whether `method` takes `allow_paid_broadcast` (Bot API 7.11: the send* methods and copyMessage). forwardMessage(s)
 * and copyMessages do not take it: with the flag in their payload they are still free calls, in the shared rate.
 */
function takesPaidBroadcast(method: string): boolean {
  return method === 'copyMessage' || (method.startsWith('send') && method !== 'sendChatAction');
}

/** Whether a payload asks for a paid broadcast (`allow_paid_broadcast: true`). */
function paidFlag(payload: unknown): boolean {
  return (payload as { allow_paid_broadcast?: unknown } | null | undefined)?.allow_paid_broadcast === true;
}

/** The `chat_id` of a payload as a chat key (a numeric string becomes its number); none for inline messages. */
function chatOf(payload: unknown): ChatKey | undefined {
  const id = (payload as { chat_id?: unknown } | null | undefined)?.chat_id;
  if (typeof id === 'number') return id;
  if (typeof id !== 'string' || id === '') return undefined;
  const n = Number(id);
  return Number.isFinite(n) ? n : id;
}
