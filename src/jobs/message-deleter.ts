/**
 * Message deleter (seed scheduler 2): deletes the messages of due pending deletions, then sends the "deleted"
 * notice with a "Click Here" button, and removes the row only when that work is done or known impossible.
 *
 * Rows are claimed in batches with leases; chats are worked concurrently (sequentially within one chat), all calls
 * through the process's one throttle. Transient failures keep the row with exponential back-off. Besides the
 * every-minute sweep, the job's wake-ups run it at the earliest `delete_at`.
 */
import { backoff } from '../backoff.ts';
import { dayIn, type Clock } from '../clock.ts';
import { logAtDebug, type Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import type { PendingDeletion } from '../store/schema.ts';
import * as deletions from '../store/deletions.ts';
import { getSetting } from '../store/settings.ts';
import { markBlocked } from '../store/users.ts';
import { countDeleted } from '../store/stats.ts';
import { addToDay } from '../store/daily-stats.ts';
import { addLateness, emptyLateness, latenessBucket, type LatenessCounts } from '../store/analytics.ts';
import {
  classifyError,
  FatalTelegramError,
  isMissingChat,
  MissingChatWatch,
  outcomeOf,
  SetupFaultError,
  type Outcome,
} from '../telegram/errors.ts';
import { inLane, type Telegram } from '../telegram/client.ts';
import { startLink } from '../telegram/links.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';
import { runOwner } from '../scheduler/run.ts';
import { workPool } from '../scheduler/pool.ts';
import { LeaseKeeper } from '../scheduler/lease-keeper.ts';
import {
  confirmMissingChats,
  isSetupFault,
  judgeMissingChats,
  noteAnswered,
  underSetupFaultBackoff,
} from './setup-faults.ts';
import { rememberChats } from '../store/faults.ts';

/** The notice sent after a deletion when the `deleted_notice_text` setting is not set. */
export const DEFAULT_DELETED_NOTICE =
  '🗑️ The file you received has been deleted, as announced.\n\nClick the button below to get it again.';

/** Most ids `deleteMessages` takes in one call. */
export const DELETE_BATCH = 100;

/** Counts of one message-deleter run (`--json`). */
export interface MessageDeleterSummary {
  /** Rows worked. */
  rows: number;
  /** Messages deleted, including ones already gone. */
  messages_deleted: number;
  /** Messages that were already gone (counted as deleted). */
  gone: number;
  /** Messages Telegram will not delete (older than 48 h, …): recorded, not retried. */
  undeletable: number;
  /** Rows whose chat blocked the bot or is gone: user marked, no notice. */
  unreachable: number;
  notices_sent: number;
  /** Rows kept for a retry after a transient failure. */
  transient: number;
  /** Rows removed (done or impossible). */
  removed: number;
  /** Seconds each worked row was late after its delete_at (max). */
  max_lateness_s: number;
  /** Dry run only: rows and messages that would be deleted. */
  would_delete?: number;
  would_delete_messages?: number;
}

/** A deletion for the janitor's `scheduleDeletion` (and the bot): give `deleteAt` or `afterMinutes`. */
export interface ScheduleDeletionInput {
  chatId: number;
  /** Defaults to `chatId` (private chats). */
  userId?: number;
  messageIds: number[];
  deleteAt?: Date;
  afterMinutes?: number;
  /** What the "Click Here" button fetches again. */
  uniqueId?: string;
  /**
   * Whether the "deleted" notice (with "Click Here" when `uniqueId` is set) follows the deletion (default true);
   * false deletes the messages silently.
   */
  notice?: boolean;
}

/** Back-off for a row's next attempt after `attempts` failures: 30 s, doubling, capped at 15 min. */
export const ROW_BACKOFF = { base: 30_000, cap: 15 * 60_000 };

/** What the deleter needs. */
export interface MessageDeleterDeps {
  store: Store;
  telegram: Telegram;
  /** Identifies this process's claims. */
  owner: string;
  /** Claim lease (default 60 s). */
  leaseMs?: number;
  /** Rows claimed per batch (default 500). */
  batchSize?: number;
  /** Chats worked at once (default 32); the throttle bounds the call rate anyway. */
  concurrency?: number;
  /** Told each worked row's lateness in seconds (metrics). */
  onLateness?: (seconds: number) => void;
  /** The zone of the days the figures are counted in (default UTC). */
  timezone?: string;
}

/** Deletes the due messages at the run's clock. The seed's `delete_due_messages()`. */
export async function deleteDueMessages(
  deps: MessageDeleterDeps,
  ctx: Pick<RunContext, 'clock' | 'wallClock' | 'dryRun' | 'signal' | 'logger'>,
): Promise<MessageDeleterSummary> {
  const { store } = deps;
  const owner = runOwner(deps.owner);
  const leaseMs = deps.leaseMs ?? 60_000;
  const wall = ctx.wallClock;
  const s = emptySummary();
  if (ctx.dryRun) {
    const c = await deletions.countDue(store, ctx.clock.now().getTime());
    return { ...s, would_delete: c.rows, would_delete_messages: c.messages };
  }
  const custom = await getSetting(store, 'deleted_notice_text');
  // Only text the admin set (or imported as a string) is sent: anything else would make every notice fail.
  const noticeText = typeof custom === 'string' && custom.trim() ? custom : DEFAULT_DELETED_NOTICE;
  // One watch for the whole run: a storm of "chat not found" across batches is still one storm.
  const watch = new MissingChatWatch<HeldRow>();
  let stop: Error | null = null;
  // Claimed rows not yet removed or kept, over the whole run: held "chat not found" rows stay claimed across
  // batches until the run knows what they mean.
  const unfinished = new Set<number>();
  const lost = new Set<number>();
  // A batch can outlast its lease (a slow Telegram, a busy throttle): keep the claims alive while they are worked;
  // rows whose claim another process took are left to it.
  const keeper = new LeaseKeeper({
    what: 'pending deletions',
    periodMs: Math.max(500, leaseMs / 3),
    leaseMs,
    clock: wall,
    logger: ctx.logger,
    renew: async () => {
      const asked = [...unfinished];
      if (asked.length === 0) return true;
      const held = new Set(await deletions.renewClaims(store, owner, asked, wall.now().getTime() + leaseMs));
      const gone = asked.filter((id) => !held.has(id) && unfinished.has(id));
      for (const id of gone) {
        lost.add(id);
        unfinished.delete(id);
      }
      if (gone.length)
        ctx.logger.warn({ rows: gone }, `lost the claim on ${gone.length} pending deletions; left to their new owner`);
      // Rows finished while the renewal ran are not lost ones.
      return held.size > 0 || gone.length === 0;
    },
  }).start();
  const goodChats = new Set<number>();
  const halted = () => stop !== null || ctx.signal.aborted;
  const halt = (e: Error) => void (stop ??= e);
  const run: RunState = {
    ...deps,
    owner,
    noticeText,
    clock: ctx.clock,
    wall,
    s,
    logger: ctx.logger,
    watch,
    unfinished,
    goodChats,
    halted,
    halt,
    day: emptyTally(),
    lateness: emptyLateness(),
  };
  const release = async (ids: number[]) => {
    if (ids.length === 0) return;
    for (const id of ids) unfinished.delete(id);
    await deletions
      .releaseClaims(store, owner, ids)
      .catch((e: unknown) =>
        ctx.logger.warn(
          { err: (e as Error).message },
          'could not release deletion claims; they come back when the lease ends',
        ),
      );
  };
  // The day's deletion figures and lateness histogram, written after each batch (one upsert each) and at the end.
  const flushDay = async () => {
    const [tally, lateness] = [run.day, run.lateness];
    run.day = emptyTally();
    run.lateness = emptyLateness();
    const day = dayIn(wall.now(), deps.timezone ?? 'UTC');
    await addToDay(store, day, tally).catch(logAtDebug(ctx.logger, "could not count the day's deletions"));
    await addLateness(store, day, lateness).catch(logAtDebug(ctx.logger, "could not count the day's lateness"));
  };
  try {
    while (!ctx.signal.aborted && !stop && !keeper.lost) {
      const batch = await deletions.claimDue(
        store,
        owner,
        ctx.clock.now().getTime(),
        wall.now().getTime(),
        leaseMs,
        deps.batchSize ?? 500,
      );
      if (batch.length === 0) break;
      const byChat = new Map<number, PendingDeletion[]>();
      for (const row of batch) {
        unfinished.add(Number(row.id));
        const rows = byChat.get(row.chat_id);
        if (rows) rows.push(row);
        else byChat.set(row.chat_id, [row]);
      }
      const before = s.messages_deleted;
      // Chats side by side, one chat's rows in order.
      await workPool(byChat.values(), { concurrency: deps.concurrency ?? 32, halted }, async (rows) => {
        for (const row of rows) {
          if (halted()) return;
          if (lost.has(Number(row.id))) continue;
          try {
            await processRow(row, run);
          } catch (e) {
            if (isSetupFault(e)) {
              halt(e);
              continue;
            }
            // A database error mid-row: keep the row for later with back-off (if the database answers at all),
            // and end the run. Going on would send notices for rows it cannot remove, to be sent again later.
            const msg = (e as Error).message;
            ctx.logger.error({ row: row.id, err: msg }, `Failed to process pending deletion ${row.id}: ${msg}`);
            halt(e as Error);
            const o: Outcome = { kind: 'transient', reason: msg };
            const kept = await keepForLater(store, row, owner, ctx.clock, o, Boolean(row.messages_deleted)).then(
              () => true,
              (err: unknown) => (
                ctx.logger.debug({ row: row.id, err: (err as Error).message }, 'could not keep row'),
                false
              ),
            );
            if (kept) {
              s.transient++;
              unfinished.delete(Number(row.id));
            }
          }
          if (watch.tripped) halt(SetupFaultError.missingChats(watch.stormSize));
        }
      });
      // Feeds the status page's "deleted per hour" chart and the day's figures; a failure here must not fail the
      // deletions.
      await countDeleted(store, wall.now().getTime(), s.messages_deleted - before).catch((e: unknown) =>
        ctx.logger.debug({ err: (e as Error).message }, 'could not count deletions for the chart'),
      );
      await flushDay();
      // Rows not reached (a stop, a setup fault, a database blip) go back now instead of waiting for their lease;
      // held rows stay claimed for the next batch.
      const held = new Set(watch.heldItems().map((h) => Number(h.row.id)));
      await release([...unfinished].filter((id) => !held.has(id)));
    }
    // "chat not found" answers no success came after: a chat that answered lately tells whose fault they are.
    if (!stop && !ctx.signal.aborted && watch.heldItems().length > 0) stop = await settleHeld(run);
  } finally {
    await flushDay();
    await rememberChats(store, goodChats, wall.now().getTime()).catch((e: unknown) =>
      ctx.logger.debug({ err: (e as Error).message }, 'could not remember the chats that answered'),
    );
    await keeper.stop();
    await release([...unfinished]);
  }
  if (stop) throw stop;
  return s;
}

/**
 * Keeps a row for another attempt: attempts + 1, next try after the back-off counted from the run's clock, never
 * sooner than Telegram asked (429 retry_after). Returns the next attempt's instant, or null when the claim was lost.
 */
async function keepForLater(
  store: Store,
  row: PendingDeletion,
  owner: string,
  clock: Clock,
  o: Outcome,
  messagesDeleted: boolean,
): Promise<number | null> {
  const attempts = row.attempts + 1;
  const next = clock.now().getTime() + Math.max(backoff(attempts, ROW_BACKOFF), (o.retryAfter ?? 0) * 1000);
  const kept = await deletions.retryDeletion(store, Number(row.id), owner, {
    attempts,
    nextAttemptAt: next,
    lastError: o.reason,
    messagesDeleted,
  });
  return kept ? next : null;
}

/** A row whose chat answered "chat not found", waiting to learn whether that was the chat's or the setup's. */
interface HeldRow {
  row: PendingDeletion;
  outcome: Outcome;
}

/** What one run shares with its rows. */
interface RunState extends MessageDeleterDeps {
  noticeText: string;
  clock: Clock;
  /** Real time, for facts (blocked_at) and leases. */
  wall: Clock;
  s: MessageDeleterSummary;
  logger: Logger;
  watch: MissingChatWatch<HeldRow>;
  /** Claimed rows not yet removed or kept (released at the end of the batch). */
  unfinished: Set<number>;
  /** Chats that answered in this run (remembered for {@link judgeMissingChats}). */
  goodChats: Set<number>;
  /** True once the run is ending (a stop, a setup fault, a database error): no notice goes out then. */
  halted: () => boolean;
  /** Ends the run with this error (the first one wins). */
  halt: (e: Error) => void;
  /** Rows finished since the day's figures were last written. */
  day: DeletionTally;
  /** Rows done (not failed) since the day's figures were last written, per lateness bucket. */
  lateness: LatenessCounts;
}

/** Finished rows by outcome, for the day's figures: done (on time or late) or failed (nothing could be deleted). */
type DeletionTally = Record<'deletions_done' | 'deletions_on_time' | 'deletions_late' | 'deletions_failed', number>;

const emptyTally = (): DeletionTally => ({
  deletions_done: 0,
  deletions_on_time: 0,
  deletions_late: 0,
  deletions_failed: 0,
});

/**
 * Counts a removed row: deleted within a second of its `delete_at` (on time) or later, with its lateness in seconds,
 * or failed (a message Telegram would not delete, or the chat is gone).
 */
function countRow(r: RunState, how: 'on_time' | 'late' | 'failed', lateness = 0): void {
  if (how === 'failed') r.day.deletions_failed++;
  else {
    r.day.deletions_done++;
    r.day[how === 'on_time' ? 'deletions_on_time' : 'deletions_late']++;
    r.lateness[latenessBucket(lateness)]!++;
  }
}

/** The chat is gone for good (blocked, deactivated, or a single "chat not found"): mark the user, drop the row. */
async function dropUnreachable(row: PendingDeletion, o: Outcome, r: RunState): Promise<void> {
  const id = Number(row.id);
  // Only the row's owner marks the user. Facts are stamped with real time, whatever instant the run decides at.
  if (!(await remove(row, r))) return;
  countRow(r, 'failed');
  await markBlocked(r.store, [row.user_id, row.chat_id], r.wall.now().getTime());
  r.s.unreachable++;
  r.logger.info(
    { row: id, chat_id: row.chat_id, reason: o.reason },
    `Chat ${row.chat_id} is unreachable (${o.reason}); user marked, no notice`,
  );
}

/**
 * Removes a finished row while this run still holds it (true); a lost claim is logged and the row left to its
 * owner (false).
 */
async function remove(row: PendingDeletion, r: RunState): Promise<boolean> {
  const id = Number(row.id);
  r.unfinished.delete(id);
  if (await deletions.removeDeletion(r.store, id, r.owner)) {
    r.s.removed++;
    return true;
  }
  r.logger.warn(
    { row: id, chat_id: row.chat_id },
    `pending deletion ${id} was claimed by another process meanwhile (our lease ran out); left to it`,
  );
  return false;
}

/**
 * Held "chat not found" answers, now known not to be a storm and the setup known to work: each chat is asked itself.
 * Still "not found": gone (user marked, row dropped). It answers: the "not found" came while the setup was wrong
 * (fixed since), so the row is tried again later.
 */
async function applyHeld(held: HeldRow[], r: RunState): Promise<void> {
  if (held.length === 0) return;
  const gone = await confirmMissingChats(
    r.telegram.api,
    held.map((h) => h.row.chat_id),
  );
  for (const h of held) {
    if (gone.has(h.row.chat_id)) await dropUnreachable(h.row, h.outcome, r);
    else await keepHeld(h, r, 'the chat answers now: that "chat not found" was the setup\'s, fixed since');
  }
}

/** A held row whose chat's fate is not known: kept for a later attempt (its back-off), nobody marked. */
async function keepHeld(h: HeldRow, r: RunState, why: string): Promise<void> {
  r.unfinished.delete(Number(h.row.id));
  const o: Outcome = { kind: 'transient', reason: `"chat not found", not confirmed: ${why}` };
  if ((await keepForLater(r.store, h.row, r.owner, r.clock, o, Boolean(h.row.messages_deleted))) !== null)
    r.s.transient++;
}

/**
 * Settles the held rows at the end of a run: confirmed one by one (see {@link applyHeld}) when a chat that answered
 * lately still answers, left untouched (a setup fault, returned) when it is "not found" too, kept for a retry when
 * it cannot be asked.
 */
async function settleHeld(r: RunState): Promise<SetupFaultError | null> {
  const held0 = r.watch.heldItems().map((h) => h.row.chat_id);
  const verdict = await judgeMissingChats(r.store, r.telegram.api, held0, [...r.goodChats].reverse());
  if (verdict.kind === 'setup') return verdict.error;
  const held = r.watch.drain();
  if (verdict.kind === 'single') await applyHeld(held, r);
  else for (const h of held) await keepHeld(h, r, verdict.reason);
  return null;
}

/** A call worked: the chat and the token are fine, so any held "chat not found" was that chat's own. */
async function succeeded(r: RunState): Promise<void> {
  await applyHeld(r.watch.success(), r);
}

/**
 * Works one claimed row to its end: removed, kept for a retry, or held (its chat answered "chat not found" and the
 * run does not know yet whether that is the chat or the setup). Throws a setup fault on a bad token.
 */
async function processRow(row: PendingDeletion, r: RunState): Promise<void> {
  const { store, telegram, s, logger } = r;
  const id = Number(row.id);
  const chatId = row.chat_id;
  s.rows++;
  const lateness = Math.max(0, (r.clock.now().getTime() - row.delete_at) / 1000);
  // Messages of this row Telegram would not delete (the summary's count is shared by the chats worked side by side).
  let undeletable = 0;
  s.max_lateness_s = Math.max(s.max_lateness_s, Math.round(lateness * 1000) / 1000);
  r.onLateness?.(lateness);

  const keep = async (o: Outcome, messagesDeleted: boolean) => {
    r.unfinished.delete(id);
    const next = await keepForLater(store, row, r.owner, r.clock, o, messagesDeleted);
    if (next === null) {
      logger.warn({ row: id }, `pending deletion ${id} was claimed by another process meanwhile; left to it`);
      return;
    }
    s.transient++;
    logger.warn(
      {
        row: id,
        chat_id: chatId,
        attempts: row.attempts + 1,
        next_attempt_at: new Date(next).toISOString(),
        reason: o.reason,
      },
      `Failed to delete message ${id}: ${o.reason} (will retry)`,
    );
  };
  // Blocked or deactivated: the user's own verdict, at once. "chat not found": held until the run knows more.
  const unreachable = async (o: Outcome) => {
    if (isMissingChat(o.reason)) {
      r.watch.hold(chatId, { row, outcome: o });
      return;
    }
    await dropUnreachable(row, o, r);
  };
  // What every answer means for the watch: a success proves the token and the server know the chats.
  const ask = async (call: () => Promise<unknown>): Promise<Outcome> => {
    const o = await outcomeOf(call);
    if (o.kind === 'fatal') throw new FatalTelegramError(o);
    if (o.kind === 'done' || o.kind === 'gone') {
      noteAnswered(r.goodChats, chatId);
      await succeeded(r);
    }
    return o;
  };

  if (!row.messages_deleted) {
    const ids = JSON.parse(row.message_ids) as number[];
    for (let i = 0; i < ids.length; i += DELETE_BATCH) {
      const chunk = ids.slice(i, i + DELETE_BATCH);
      const o = await ask(() => telegram.api.deleteMessages(chatId, chunk));
      if (o.kind === 'transient') return keep(o, false);
      if (o.kind === 'unreachable') return unreachable(o);
      if (o.kind === 'done') s.messages_deleted += chunk.length;
      else if (o.kind === 'gone') {
        s.messages_deleted += chunk.length;
        s.gone += chunk.length;
      } else {
        // One message can make deleteMessages fail (too old, …): ask message by message to learn which.
        for (const m of chunk) {
          const one = await ask(() => telegram.api.deleteMessage(chatId, m));
          if (one.kind === 'transient') return keep(one, false);
          if (one.kind === 'unreachable') return unreachable(one);
          if (one.kind === 'done' || one.kind === 'gone') s.messages_deleted++;
          if (one.kind === 'gone') s.gone++;
          if (one.kind === 'undeletable') {
            s.undeletable++;
            undeletable++;
            logger.warn(
              { row: id, chat_id: chatId, message_id: m, reason: one.reason },
              `Failed to delete message ${m}: ${one.reason} (not retried)`,
            );
          }
        }
      }
    }
  }

  // Removes the finished row and counts it; a failed removal ends the run before the lane moves on, so no later
  // row's notice goes out for a row the run cannot remove.
  const finish = async () => {
    const removed = await remove(row, r).catch((e: unknown) => {
      r.halt(e as Error);
      throw e;
    });
    if (removed) countRow(r, undeletable > 0 ? 'failed' : lateness <= 1 ? 'on_time' : 'late', lateness);
  };
  // A row that asked for no notice (the auto-delete plugin's default) is done once its messages are.
  if (!row.notice) return finish();

  const username = row.unique_id ? await telegram.username().catch((e) => e as Error) : null;
  if (username instanceof Error) {
    const o = classifyError(username);
    if (o.kind === 'fatal') throw new FatalTelegramError(o);
    return keep(o, true);
  }
  const markup =
    username && row.unique_id
      ? { reply_markup: { inline_keyboard: [[{ text: 'Click Here', url: startLink(username, row.unique_id) }]] } }
      : {};
  // From the moment Telegram has the notice until the row is gone, a kill would send it again on the next try:
  // one notice at a time per process keeps that to at most one repeated notice per kill.
  await oneNoticeAtATime(telegram, async () => {
    // The run ended while this row waited its turn: its row stays (claimed, then released), the notice unsent.
    if (r.halted()) return;
    const sent = await ask(() => telegram.api.sendMessage(chatId, r.noticeText, markup));
    if (sent.kind === 'transient') return keep(sent, true);
    if (sent.kind === 'unreachable') return unreachable(sent);
    if (sent.kind === 'done') s.notices_sent++;
    else
      logger.warn(
        { row: id, chat_id: chatId, reason: sent.reason },
        `Deleted notice to ${chatId} was refused: ${sent.reason}`,
      );
    await finish();
  });
}

const noticeLanes = new WeakMap<object, Promise<unknown>>();

/** Runs `fn` after every earlier call for the same client has finished (the sweep and the wake-ups share one). */
async function oneNoticeAtATime(client: object, fn: () => Promise<void>): Promise<void> {
  const before = noticeLanes.get(client) ?? Promise.resolve();
  const mine = before.then(fn);
  // The lane goes on whether this one worked or failed; the caller gets its own outcome.
  noticeLanes.set(
    client,
    mine.catch(() => undefined),
  );
  await mine;
}

/** A run's counts before it worked anything. */
function emptySummary(): MessageDeleterSummary {
  const s = { rows: 0, messages_deleted: 0, gone: 0, undeletable: 0, unreachable: 0, notices_sent: 0 };
  return { ...s, transient: 0, removed: 0, max_lateness_s: 0 };
}

/** Whether a run showed the setup works: a call worked, or it had nothing to do. */
const provedSetup = (s: MessageDeleterSummary) => s.rows === 0 || s.messages_deleted + s.notices_sent > 0;

/**
 * The job definition for the engine (every minute by default), with its on-time wake-ups: the deleter also runs at
 * the earliest workable `next_attempt_at`, so files go within a second of their time instead of up to a minute
 * late, including rows other processes add.
 */
export function messageDeleterJob(
  deps: MessageDeleterDeps,
  schedule: string,
): JobDefinition<MessageDeleterSummary, 'message-deleter'> {
  return {
    name: 'message-deleter',
    title: 'Message Deleter',
    label: 'message deletion',
    schedule,
    run: async (ctx) => {
      const gate = { store: deps.store, job: 'message-deleter', ...ctx, clock: ctx.wallClock };
      // A wake-up while the job rests after a setup fault works nothing.
      const work = () => inLane('deletion', () => deleteDueMessages(deps, ctx));
      return (await underSetupFaultBackoff(gate, work, provedSetup)) ?? emptySummary();
    },
    successLine: (s, at) =>
      s.would_delete !== undefined
        ? `🗑️ Would delete ${s.would_delete_messages} messages in ${s.would_delete} rows (dry run) at ${at}`
        : `✅ Deleted ${s.messages_deleted} messages, ${s.undeletable + s.transient} failed at ${at}`,
    wake: {
      pollMs: 250,
      changeToken: () => deps.store.changeToken(),
      earliest: (nowMs) => deletions.earliestWorkable(deps.store, nowMs),
      worked: (s) => s.rows,
    },
  };
}
