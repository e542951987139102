/**
 * One shared rate limit for every Bot API call a process makes, with priority lanes: calls are spaced evenly at
 * `rate` per second, and each free slot goes to the oldest waiter of the highest lane that can use it (its chat's
 * own spacing allowing). Paid broadcast messages of the bulk lane are spaced apart at their own `paidRate` instead.
 * The decisions are `lanes.ts`'s; this file owns the timers.
 */
import type { Clock, Timer } from '../clock.ts';
import {
  book,
  emptyState,
  limitsFor,
  nextGrant,
  prune,
  queueOf,
  shift,
  slowDown,
  type ChatKey,
  type Lane,
  type Limits,
  type Waiter,
} from './lanes.ts';

export type { ChatKey, Lane } from './lanes.ts';

/** Options of {@link Throttle} beyond its rate (each with its default). */
export interface ThrottleOptions {
  /** Spacing of messages to one private chat (default 1000 ms). */
  privateChatMs?: number;
  /** Spacing of messages to one group or channel (default 3000 ms: 20 a minute). */
  groupChatMs?: number;
  /** The slowest a lane goes after 429s, calls per second (default 1). */
  minRate?: number;
  /** A slowed lane speeds up one step after this long without a 429 (default 10 000 ms). */
  recoverEveryMs?: number;
  /** Each recovery step multiplies the lane's rate by this, up to the shared rate (default 1.25). */
  recoverFactor?: number;
  /** How far behind its schedule the throttle may fall and make the slots up (default 25 ms, at least one interval). */
  catchUpMs?: number;
  /**
   * Paid broadcast messages per second (`allow_paid_broadcast` in the bulk lane), spaced apart from the shared rate
   * (default 1000: Telegram's "up to 1000 messages per second").
   */
  paidRate?: number;
}

interface Pending extends Waiter {
  resolve: (grantedAt: number) => void;
}

/** Bookings between prunes of the per-chat spacing (each prune walks the chats still spaced). */
const PRUNE_EVERY = 1024;

/**
 * A leaky-bucket limiter with priority lanes on an injected clock. `take(lane, chat)` resolves when the caller may
 * make one call.
 */
export class Throttle {
  private pauses = 0;
  private lastNow = -Infinity;
  private readonly limits: Limits | null;
  private readonly state = emptyState<Pending>();
  private timer: Timer | null = null;
  /** A slot is given and its caller not yet told (one turn of the event loop, see `pump`). */
  private granting = false;
  private booked = 0;

  /**
   * @param rate calls per second; 0 or Infinity = unlimited (no lanes, no per-chat spacing: only 429 pauses wait).
   * @param clock where the slots' time and the waits come from.
   */
  constructor(
    rate: number,
    private readonly clock: Clock,
    opts: ThrottleOptions = {},
  ) {
    this.limits = rate > 0 && Number.isFinite(rate) ? limitsFor(rate, opts) : null;
  }

  /**
   * Holds every caller until `ms` from now: after a 429 the whole process waits as Telegram asked, instead of the
   * other workers running into the same limit.
   */
  pause(ms: number): void {
    this.state.pausedUntil = Math.max(this.state.pausedUntil, this.now() + ms);
    this.pauses++;
    this.pump();
  }

  /**
   * Slows `lane` after one of its calls, let out at `grantedAt` (what `take` resolved to), met a 429: the lane's
   * rate halves and recovers step by step (see `slowDown` in lanes.ts). Nothing for an unlimited throttle.
   */
  slowDown(lane: Lane, grantedAt: number): void {
    if (this.limits) slowDown(this.state, this.limits, lane, grantedAt, this.now());
  }

  /**
   * Waits for a slot in `lane` (default `reply`), spaced from the last message to `chat` when one is given; `paid`
   * (a paid broadcast message) takes the paid budget's slot instead of the shared rate's, in the bulk lane only.
   * Resolves to the instant the slot was given. No wait when unlimited and not paused.
   */
  take(lane: Lane = 'reply', chat?: ChatKey, paid = false): Promise<number> {
    if (!this.limits) return this.afterPause();
    return new Promise<number>((resolve) => {
      const w: Pending = { lane, chat, paid, resolve };
      this.state.queues[queueOf(w)].push(w);
      this.pump();
    });
  }

  /** Waits until no 429 pause holds calls (for calls that take no slot); resolves to the instant it let go. */
  async afterPause(): Promise<number> {
    for (;;) {
      const pauses = this.pauses;
      // Sleep until the pause is really over (a timer may fire a little early).
      for (let now = this.now(); now < this.state.pausedUntil; now = this.now())
        await this.clock.sleep(Math.max(1, this.state.pausedUntil - now));
      // See `pump`: a 429 already received announces its pause before this call leaves.
      await new Promise((r) => setImmediate(r));
      if (this.pauses === pauses) return this.now();
    }
  }

  /** Lets the next waiter go if one may go now, else sets one timer for when one may. */
  private pump(): void {
    if (this.granting || !this.limits) return;
    this.timer?.cancel();
    this.timer = null;
    const now = this.now();
    const d = nextGrant(this.state, this.limits, now);
    if (d.kind === 'idle') return;
    if (d.kind === 'wait') {
      // Whole milliseconds, never 0: a timer that fires a little early just decides again.
      const ms = Math.max(1, Math.ceil(d.at - now));
      this.timer = this.clock.timeout(ms, () => {
        this.timer = null;
        this.pump();
      });
      return;
    }
    const q = this.state.queues[queueOf(d.waiter)];
    q.splice(d.index, 1);
    const undo = book(this.state, this.limits, d.waiter, now);
    if (++this.booked % PRUNE_EVERY === 0) prune(this.state, now);
    const pauses = this.pauses;
    this.granting = true;
    // After a stalled event loop a timer runs before the I/O that came meanwhile: a 429 already received would
    // announce its pause only after this call left. One turn of the loop lets that I/O in first; a pause that came
    // voids the slot, and the waiter goes back where it was.
    setImmediate(() => {
      this.granting = false;
      if (this.pauses === pauses) d.waiter.resolve(now);
      else {
        undo();
        q.splice(d.index, 0, d.waiter);
      }
      this.pump();
    });
  }

  /** The clock's time; when it steps backwards (the wall clock was set back) the booked instants move with it. */
  private now(): number {
    const now = this.clock.now().getTime();
    if (now < this.lastNow) shift(this.state, now - this.lastNow);
    this.lastNow = now;
    return now;
  }
}
