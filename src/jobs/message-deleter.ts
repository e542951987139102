/**
 * Message deleter (seed scheduler 2): deletes the messages of due pending deletions, then sends the "deleted"
 * notice with a "Click Here" button, and removes the row only when that work is done or known impossible.
 *
 * Rows are claimed in batches with leases; chats are worked concurrently (sequentially within one chat), all calls
 * through the process's one throttle. Transient failures keep the row with exponential back-off. Besides the
 * every-minute sweep, the job's wake-ups run it at the earliest `delete_at`.
 */
import { dayIn } from '../clock.ts';
import { logAtDebug } from '../log.ts';
import type { Store } from '../store/db.ts';
import type { PendingDeletion } from '../store/schema.ts';
import * as deletions from '../store/deletions.ts';
import { getSetting } from '../store/settings.ts';
import { countDeleted } from '../store/stats.ts';
import { addToDay } from '../store/daily-stats.ts';
import { addLateness, emptyLateness } from '../store/analytics.ts';
import { MissingChatWatch, SetupFaultError } from '../telegram/errors.ts';
import { inLane, type Telegram } from '../telegram/client.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';
import { runOwner } from '../scheduler/run.ts';
import { workPool } from '../scheduler/pool.ts';
import { LeaseKeeper } from '../scheduler/lease-keeper.ts';
import { underSetupFaultBackoff } from './setup-faults.ts';
import { rememberChats } from '../store/faults.ts';
import { processChat, settleHeld, type DeletionTally, type HeldRow, type RunState } from './message-deleter-chat.ts';

export { DEFAULT_DELETED_NOTICE, DELETE_BATCH, NOTICE_ROWS, defaultNoticeFor } from './deleted-notice.ts';
export { ROW_BACKOFF } from './message-deleter-chat.ts';

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
  const customNotice = typeof custom === 'string' && custom.trim() ? custom : null;
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
    customNotice,
    clock: ctx.clock,
    wall,
    s,
    logger: ctx.logger,
    watch,
    unfinished,
    lost,
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
        await processChat(rows, run);
        if (watch.tripped) halt(SetupFaultError.missingChats(watch.stormSize));
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

const emptyTally = (): DeletionTally => ({
  deletions_done: 0,
  deletions_on_time: 0,
  deletions_late: 0,
  deletions_failed: 0,
});

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
      // Other processes' rows: their delete_at is minutes away as a rule, and each look is a wake-up of an idle
      // service. This process's own rows kick the waker (the janitor's scheduleDeletion).
      pollMs: 1000,
      changeToken: () => deps.store.changeToken(),
      earliest: (nowMs) => deletions.earliestWorkable(deps.store, nowMs),
      worked: (s) => s.rows,
    },
  };
}
