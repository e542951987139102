/**
 * The Bot API client every job shares: grammY's `Api` pointed at `BOT_API_ROOT`, retries of 429s (after their
 * retry_after) and of 5xx (capped, only where safe), and one throttle for the whole process (priority lanes, per-chat
 * spacing, see throttle.ts), all waiting on one clock. The token stays inside grammY's URL: errors and reasons built here never contain it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Api, type RawApi } from 'grammy';
import { backoff } from '../backoff.ts';
import { systemClock, type Clock } from '../clock.ts';
import { Throttle } from './throttle.ts';
import { leanFetch } from './transport.ts';
import { routeOf, type Lane } from './lanes.ts';
import { classifyResponse, isIdempotent } from './errors.ts';

/** Options for {@link createTelegram}. */
export interface TelegramOptions {
  /** Bot token (never logged). */
  token: string;
  /** Bot API root (default `https://api.telegram.org`). */
  apiRoot?: string;
  /** Calls per second for the process, 0 = unlimited (default 25). */
  rate?: number;
  /**
   * Paid broadcast messages per second (bulk-lane messages sent with `allow_paid_broadcast: true`), spaced apart
   * from `rate` (default 1000); unlimited too when `rate` is 0.
   */
  paidRate?: number;
  /** Retries of a 429 or 5xx inside one call before it counts as transient (default 2). */
  retries?: number;
  /** The longest `retry_after` waited inside a call; longer ones count as transient (default 30 s). */
  maxRetryAfterS?: number;
  /** Seconds before a call times out (default 30). */
  timeoutSeconds?: number;
  /** Told about every HTTP attempt: method and outcome kind (`done`, `gone`, …) — for metrics. */
  onCall?: (method: string, outcome: string, errorCode?: number) => void;
  /** Where the throttle's and the retries' waits come from (default the system clock). */
  clock?: Clock;
}

/** A Bot API client and what the jobs need around it. */
export interface Telegram {
  api: Api<RawApi>;
  /** The bot's username from getMe, fetched once. */
  username(): Promise<string>;
}

/** Thrown instead of a call that would go out past its caller's deadline: nothing was sent. */
export class NotSentError extends Error {
  constructor(method: string) {
    super(`${method} not sent: its deadline passed while it waited for the throttle`);
    this.name = 'NotSentError';
  }
}

const deadlines = new AsyncLocalStorage<() => boolean>();
const lanes = new AsyncLocalStorage<Lane>();

/**
 * Runs `fn` so that every Bot API call it makes waits in the throttle's `lane`: `deletion` for on-time deletions
 * and their notices, `bulk` for broadcast work. Calls made outside any lane go in `reply`, the first, so a bot
 * author's own calls are never held behind the janitor's work.
 */
export function inLane<T>(lane: Lane, fn: () => Promise<T>): Promise<T> {
  return lanes.run(lane, fn);
}

/** The lane a Bot API call made here waits in (`reply` outside any {@link inLane}). */
export function currentLane(): Lane {
  return lanes.getStore() ?? 'reply';
}

/**
 * Runs `fn` so that every Bot API call it makes is checked against `expired` once the throttle lets it go: a call
 * whose deadline passed while it waited is not sent (it throws {@link NotSentError}). A broadcast copy that would
 * arrive after the broadcast's `delete_at` is never made this way.
 */
export function callsNotAfter<T>(expired: () => boolean, fn: () => Promise<T>): Promise<T> {
  return deadlines.run(expired, fn);
}

const ownCalls = new AsyncLocalStorage<true>();

/**
 * Runs `fn` so that every Bot API call it makes is known as tg-janitor's own (the jobs' deletions, notices and
 * alerts, through a bot author's Api when the janitor was given one): the auto-delete plugin's transformer leaves
 * them alone, so its defaults never schedule the janitor's own notices.
 */
export function asOwnCalls<T>(fn: () => Promise<T>): Promise<T> {
  return ownCalls.run(true, fn);
}

/** Whether the Bot API call being made comes from inside {@link asOwnCalls}. */
export function isOwnCall(): boolean {
  return ownCalls.getStore() === true;
}

/** Wraps an existing grammY Api (a bot author's) with the shared throttle, retries and instrumentation. */
export function instrument(
  api: Api<RawApi>,
  opts: Omit<TelegramOptions, 'token' | 'apiRoot' | 'timeoutSeconds'> = {},
): Telegram {
  const clock = opts.clock ?? systemClock;
  const throttle = new Throttle(opts.rate ?? 25, clock, { paidRate: opts.paidRate });
  const onCall = opts.onCall;
  // Innermost first: every HTTP attempt (retries too) is throttled and counted.
  api.config.use(async (prev, method, payload, signal) => {
    const { lane, chat, paid } = routeOf(method, payload, currentLane());
    const grantedAt = lane ? await throttle.take(lane, chat, paid) : await throttle.afterPause();
    if (deadlines.getStore()?.()) throw new NotSentError(method);
    try {
      const res = await prev(method, payload, signal);
      if (!res.ok && res.error_code === 429) {
        throttle.pause((res.parameters?.retry_after ?? 1) * 1000);
        // The lane that met the limit also slows down: pausing alone would bring it back at the pace that met it.
        if (lane) throttle.slowDown(lane, grantedAt);
      }
      if (onCall)
        onCall(
          method,
          res.ok ? 'done' : classifyResponse(res.error_code, res.description).kind,
          res.ok ? undefined : res.error_code,
        );
      return res;
    } catch (e) {
      onCall?.(method, 'transient');
      throw e;
    }
  });
  // Retries inside one call, every wait on the clock; past them the job keeps the work for later.
  // - A 429 is asked again once its retry_after is over: the throttle's pause (above) holds the next attempt until
  //   then, so nothing else waits here. A longer retry_after than maxRetryAfterS is the job's to wait out.
  // - A 5xx a few quick times, only for methods safe to repeat: a 5xx may come after Telegram sent the message, and
  //   a retry would send it twice.
  // - Network errors are not retried: the job backs off instead.
  const retries = opts.retries ?? 2;
  const maxRetryAfterS = opts.maxRetryAfterS ?? 30;
  api.config.use(async (prev, method, payload, signal) => {
    let res = await prev(method, payload, signal);
    for (let attempt = 1; attempt <= retries && !res.ok && !signal?.aborted; attempt++) {
      const retryAfter = res.parameters?.retry_after;
      if (typeof retryAfter === 'number') {
        if (retryAfter > maxRetryAfterS) break;
      } else if (res.error_code >= 500 && isIdempotent(method)) {
        await clock.sleep(backoff(attempt, { base: 250, cap: 2000 }));
      } else break;
      res = await prev(method, payload, signal);
    }
    return res;
  });
  let username: Promise<string> | undefined;
  return {
    api,
    username() {
      username ??= api
        .getMe()
        .then((me) => me.username)
        .catch((e) => {
          username = undefined;
          throw e;
        });
      return username;
    },
  };
}

/** A new client for `token` at `apiRoot`. */
export function createTelegram(opts: TelegramOptions): Telegram {
  const api = new Api(opts.token, {
    apiRoot: opts.apiRoot ?? 'https://api.telegram.org',
    timeoutSeconds: opts.timeoutSeconds ?? 30,
    // Plain node:http with keep-alive instead of node-fetch: see transport.ts.
    fetch: leanFetch(),
  });
  return instrument(api, opts);
}
