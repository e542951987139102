/**
 * Broadcast deleter (seed scheduler 3): for each broadcast whose `delete_at` passed, deletes every recipient's own
 * message (one row per recipient in `broadcast_messages`), throttled, paged in constant memory, resumable: a
 * recipient row goes as soon as its message is dealt with, the broadcast row when none is left.
 */
import type { Store } from '../store/db.ts';
import * as broadcasts from '../store/broadcasts.ts';
import { markBlocked } from '../store/users.ts';
import { countDeleted } from '../store/stats.ts';
import { addToDay } from '../store/daily-stats.ts';
import { dayIn } from '../clock.ts';
import { logAtDebug } from '../log.ts';
import { FatalTelegramError, isMissingChat, MissingChatWatch, outcomeOf, SetupFaultError } from '../telegram/errors.ts';
import { inLane, type Telegram } from '../telegram/client.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';
import { runOwner } from '../scheduler/run.ts';
import { workPool } from '../scheduler/pool.ts';
import { LeaseKeeper } from '../scheduler/lease-keeper.ts';
import { confirmMissingChats, judgeMissingChats, noteAnswered, underSetupFaultBackoff } from './setup-faults.ts';
import { rememberChats } from '../store/faults.ts';
import type { Broadcast } from '../store/schema.ts';

/** Counts of one broadcast-deleter run (`--json`). */
export interface BroadcastDeleterSummary {
  /** Broadcasts whose records were removed. */
  broadcasts_done: number;
  /** Recipient messages deleted (including ones already gone). */
  messages_deleted: number;
  gone: number;
  /** Messages Telegram will not delete (sent more than 48 h before): reported, not retried. */
  undeletable: number;
  /** Recipients who blocked the bot or are gone: marked. */
  unreachable: number;
  /**
   * Recipients of due broadcasts still to delete after the run (failed for now, or held by another process); not
   * counted by the wake-ups, which run again at once.
   */
  remaining?: number;
  /** Broadcasts without any recipient record (imported from the original bot): removed, nothing to delete. */
  without_recipients: number;
  /** Recipients whose copy was asked for but never confirmed (no message id to delete): logged and removed. */
  unconfirmed: number;
  would_delete?: number;
  would_delete_broadcasts?: number;
}

/** What the broadcast deleter needs. */
export interface BroadcastDeleterDeps {
  store: Store;
  telegram: Telegram;
  owner: string;
  /** Claim lease on a broadcast, renewed while it is worked (default 60 s). */
  leaseMs?: number;
  /** Recipients read per page (default 200). */
  pageSize?: number;
  /** Recipients worked at once (default 16); the throttle bounds the rate. */
  concurrency?: number;
  /** Told the recipients left after each page (metrics). */
  onProgress?: (broadcastId: number, left: number) => void;
  /** Told when a broadcast's deadline came while it was being sent and no sender held it (the admin's message). */
  onSendingCut?: (b: Broadcast) => void;
  /** The zone of the days the figures are counted in (default UTC). */
  timezone?: string;
}

/**
 * Deletes every expired broadcast at the run's clock. The seed's `delete_expired_broadcasts()`. `countRemaining`
 * (default true) counts what is left at the end; a wake-up, which runs again at once, skips that query.
 */
export async function deleteExpiredBroadcasts(
  deps: BroadcastDeleterDeps,
  ctx: Pick<RunContext, 'clock' | 'wallClock' | 'dryRun' | 'signal' | 'logger'>,
  { countRemaining = true }: { countRemaining?: boolean } = {},
): Promise<BroadcastDeleterSummary> {
  const { store } = deps;
  const owner = runOwner(deps.owner);
  const leaseMs = deps.leaseMs ?? 60_000;
  const s = emptySummary();
  if (ctx.dryRun) {
    const c = await broadcasts.countDueBroadcasts(store, ctx.clock.now().getTime());
    return { ...s, would_delete_broadcasts: c.broadcasts, would_delete: c.recipients };
  }
  const seen: number[] = [];
  const wall = ctx.wallClock;
  // One watch for the whole run: a storm of "chat not found" spread over broadcasts is still one storm.
  const run: RunState = { ...deps, owner, s, watch: new MissingChatWatch<number>(), goodChats: new Set(), fault: null };
  try {
    while (!ctx.signal.aborted && !run.fault) {
      const b = await broadcasts.claimDueBroadcast(
        store,
        owner,
        ctx.clock.now().getTime(),
        wall.now().getTime(),
        leaseMs,
        seen,
      );
      if (!b) break;
      const id = Number(b.id);
      seen.push(id);
      // Its deadline came while it was still being sent, with no sender holding it: the admin learns it here.
      if (b.was_sending) deps.onSendingCut?.(b);
      const keeper = new LeaseKeeper({
        what: `broadcast ${id}`,
        periodMs: Math.max(1000, leaseMs / 3),
        leaseMs,
        clock: wall,
        logger: ctx.logger,
        renew: () => broadcasts.renewBroadcastClaim(store, id, owner, wall.now().getTime() + leaseMs),
      }).start();
      let kept = 0;
      try {
        kept = await deleteOne(run, b, ctx, keeper);
      } finally {
        await keeper.stop();
        // Recipients that failed for now wait a minute before the broadcast is taken again (the waker would
        // otherwise retry them every second through a Telegram outage, starving everything else of the shared
        // throttle). After a setup fault the job's own back-off decides instead.
        const holdUntil = kept > 0 && !run.fault ? wall.now().getTime() + RETRY_HOLD_MS : null;
        if (!keeper.lost) {
          await broadcasts
            .releaseBroadcast(store, id, owner, holdUntil)
            .catch((e: unknown) =>
              ctx.logger.warn(
                { broadcast_id: id, err: (e as Error).message },
                'could not release a broadcast; it comes back when the lease ends',
              ),
            );
        }
      }
    }
  } finally {
    await rememberChats(store, run.goodChats, wall.now().getTime()).catch((e: unknown) =>
      ctx.logger.debug({ err: (e as Error).message }, 'could not remember the chats that answered'),
    );
  }
  if (run.fault) throw run.fault;
  // Counted, not summed from this run: recipients another process holds (or a dead one held) are left too.
  if (countRemaining) s.remaining = (await broadcasts.countDueBroadcasts(store, ctx.clock.now().getTime())).recipients;
  return s;
}

/** Counts a removed broadcast in the day's figures; a failed count changes nothing else. */
async function countDeletedBroadcast(run: RunState, ctx: Pick<RunContext, 'wallClock' | 'logger'>): Promise<void> {
  const day = dayIn(ctx.wallClock.now(), run.timezone ?? 'UTC');
  await addToDay(run.store, day, { broadcasts_deleted: 1 }).catch(
    logAtDebug(ctx.logger, 'could not count a deleted broadcast for the day'),
  );
}

/** Progress is logged every this many recipients of one broadcast. */
const PROGRESS_EVERY = 2000;

/** How long a broadcast with recipients left after a transient failure rests before it is taken again. */
export const RETRY_HOLD_MS = 60_000;

/**
 * How long after `delete_at` a reserved recipient (a copy asked for, not yet confirmed) is left alone: a sender that
 * stalled past its lease may still get the copy's answer and record it. After that the copy is taken as never
 * confirmed.
 */
export const RESERVED_GRACE_MS = 5 * 60_000;

/** What one run shares across its broadcasts. */
interface RunState extends BroadcastDeleterDeps {
  s: BroadcastDeleterSummary;
  /** Held recipients' chat ids (of the broadcast in hand: settled or forgotten before the next one). */
  watch: MissingChatWatch<number>;
  /** Chats that answered in this run. */
  goodChats: Set<number>;
  /** A setup fault that ends the run. */
  fault: SetupFaultError | null;
}

/**
 * Deletes one claimed broadcast's recipient messages; returns how many recipients were kept for later (failed for
 * now, or left by a setup fault). Stops when the claim is lost or the run meets a setup fault.
 */
async function deleteOne(
  run: RunState,
  b: Broadcast,
  ctx: Pick<RunContext, 'clock' | 'wallClock' | 'signal' | 'logger'>,
  keeper: LeaseKeeper,
): Promise<number> {
  const { store, telegram, owner, s, watch } = run;
  const id = Number(b.id);
  const wall = ctx.wallClock;
  const log = ctx.logger.child({ broadcast_id: id });
  const total = await broadcasts.countRecipients(store, id);
  if (total === 0) {
    await broadcasts.removeBroadcast(store, id);
    await countDeletedBroadcast(run, ctx);
    s.without_recipients++;
    s.broadcasts_done++;
    log.warn(
      `📢 Broadcast ${id} has no recipient records (imported from the original bot, or its deadline came before it was sent): nothing to delete per recipient; record removed`,
    );
    return 0;
  }
  log.info({ recipients: total }, `📢 Deleting broadcast ${id} from ${total} chats`);
  let done = 0;
  let kept = 0;
  let after: number | null = null;
  const blocked: number[] = [];
  const halted = () => ctx.signal.aborted || keeper.lost || watch.tripped;
  // Removes a dealt-with recipient while the claim is ours; a lost claim stops this broadcast's work.
  const finish = async (chatId: number): Promise<boolean> => {
    if (await broadcasts.removeRecipient(store, id, chatId, owner)) return true;
    keeper.markLost(`recipient ${chatId} could not be removed under our claim`);
    return false;
  };
  // Held "chat not found" recipients, the setup now known to work: each chat is asked itself; one that answers was
  // "not found" while the setup was wrong (fixed since) and stays for a later attempt.
  const applyHeld = async (held: number[]) => {
    if (held.length === 0) return;
    const gone = await confirmMissingChats(telegram.api, held);
    kept += held.length - gone.size;
    for (const chatId of gone) {
      if (!(await finish(chatId))) return;
      s.unreachable++;
      blocked.push(chatId);
      done++;
    }
  };
  while (!halted()) {
    const page = await broadcasts.recipientPage(store, id, after, run.pageSize ?? 200);
    if (page.length === 0) break;
    after = page[page.length - 1]!.chat_id;
    let fatal: FatalTelegramError | null = null;
    const before = s.messages_deleted;
    await workPool(
      page,
      { concurrency: run.concurrency ?? 16, halted: () => fatal !== null || halted() },
      async (r) => {
        if (Number(r.message_id) === broadcasts.RESERVED) {
          // A copy asked for and never confirmed. Left a while: a stalled sender may still record it.
          if (wall.now().getTime() < Number(b.delete_at) + RESERVED_GRACE_MS) {
            kept++;
            return;
          }
          log.warn(
            { chat_id: r.chat_id },
            `broadcast ${id}: the copy to chat ${r.chat_id} was never confirmed; nothing known to delete there`,
          );
          if (await finish(r.chat_id)) {
            s.unconfirmed++;
            done++;
          }
          return;
        }
        const o = await outcomeOf(() => telegram.api.deleteMessage(r.chat_id, r.message_id));
        const kind = o.kind;
        if (kind === 'fatal') {
          fatal = new FatalTelegramError(o);
          return;
        }
        if (kind === 'transient') {
          log.warn(
            { chat_id: r.chat_id, reason: o.reason },
            `Failed to delete broadcast message in ${r.chat_id}: ${o.reason} (will retry)`,
          );
          kept++;
          return;
        }
        if (kind === 'unreachable' && isMissingChat(o.reason)) {
          // Not removed until the run knows whether this chat is gone or the setup is wrong (a storm trips the watch,
          // which halts the pool).
          watch.hold(r.chat_id, r.chat_id);
          return;
        }
        if (kind === 'done' || kind === 'gone') {
          noteAnswered(run.goodChats, r.chat_id);
          await applyHeld(watch.success());
        }
        if (!(await finish(r.chat_id))) return;
        if (kind === 'done' || kind === 'gone') s.messages_deleted++;
        if (kind === 'gone') s.gone++;
        if (kind === 'undeletable') s.undeletable++;
        if (kind === 'unreachable') {
          s.unreachable++;
          blocked.push(r.chat_id);
        }
        if (++done % PROGRESS_EVERY === 0)
          log.info({ done, total }, `📢 Broadcast ${id}: ${done}/${total} recipients done`);
      },
    );
    const wallMs = wall.now().getTime();
    if (blocked.length) await markBlocked(store, blocked.splice(0), wallMs);
    await countDeleted(store, wallMs, s.messages_deleted - before).catch((e: unknown) =>
      log.debug({ err: (e as Error).message }, 'could not count deletions for the chart'),
    );
    run.onProgress?.(id, total - done);
    // Set inside the pool's work above, which TypeScript's flow analysis does not see: it would still read `null` here.
    const fatalSeen = fatal as FatalTelegramError | null;
    if (fatalSeen) throw fatalSeen;
  }
  if (watch.tripped) run.fault = SetupFaultError.missingChats(watch.stormSize);
  // Held recipients are this broadcast's: judged before it is left (its claim ends with it), or left untouched.
  if (watch.heldItems().length > 0 && !run.fault && !keeper.lost && !ctx.signal.aborted) {
    const verdict = await judgeMissingChats(store, telegram.api, watch.heldItems(), [...run.goodChats].reverse());
    if (verdict.kind === 'single') await applyHeld(watch.drain());
    else if (verdict.kind === 'setup') run.fault = verdict.error;
  }
  kept += watch.forget().length;
  if (blocked.length) await markBlocked(store, blocked.splice(0), wall.now().getTime());
  if (run.fault) return kept;
  if (kept === 0 && !halted() && (await broadcasts.countRecipients(store, id)) === 0) {
    await broadcasts.removeBroadcast(store, id);
    await countDeletedBroadcast(run, ctx);
    s.broadcasts_done++;
    log.info({ done, deleted: s.messages_deleted }, `📢 Broadcast ${id} done for ${done} chats; record removed`);
  } else if (kept > 0) {
    log.warn({ remaining: kept }, `📢 Broadcast ${id}: ${kept} recipients left for the next run`);
  }
  return kept;
}

/** Whether a run showed the setup works: a message was deleted, or it had nothing to do. */
function provedSetup(s: BroadcastDeleterSummary): boolean {
  const met = s.broadcasts_done + s.messages_deleted + s.undeletable + s.unreachable + s.unconfirmed;
  return s.messages_deleted > 0 || met === 0;
}

/** A run's counts before it worked anything. */
function emptySummary(): BroadcastDeleterSummary {
  const s = { broadcasts_done: 0, messages_deleted: 0, gone: 0, undeletable: 0, unreachable: 0 };
  return { ...s, without_recipients: 0, unconfirmed: 0 };
}

/**
 * The job definition for the engine (hourly by default), with its wake-ups at each broadcast's `delete_at`: a
 * 47-hour broadcast is deleted at 47 hours, with an hour of Telegram's 48-hour window to spare, not at the next
 * hourly sweep.
 */
export function broadcastDeleterJob(
  deps: BroadcastDeleterDeps,
  schedule: string,
): JobDefinition<BroadcastDeleterSummary, 'broadcast-deleter'> {
  return {
    name: 'broadcast-deleter',
    title: 'Broadcast Deleter',
    label: 'broadcast deletion',
    schedule,
    run: async (ctx) => {
      const gate = { store: deps.store, job: 'broadcast-deleter', ...ctx, clock: ctx.wallClock };
      // A wake-up runs again at once: it skips counting what is left. One while the job rests works nothing.
      const work = () =>
        inLane('bulk', () => deleteExpiredBroadcasts(deps, ctx, { countRemaining: ctx.trigger !== 'wake-up' }));
      return (await underSetupFaultBackoff(gate, work, provedSetup)) ?? emptySummary();
    },
    successLine: (s, at) =>
      s.would_delete !== undefined
        ? `📢 Would delete ${s.would_delete} messages of ${s.would_delete_broadcasts} broadcasts (dry run) at ${at}`
        : `✅ Broadcast cleanup completed at ${at} (${s.broadcasts_done} broadcasts, ${s.messages_deleted} messages deleted${s.remaining === undefined ? '' : `, ${s.remaining} left`})`,
    wake: {
      pollMs: 1000,
      changeToken: () => deps.store.changeToken(),
      earliest: (nowMs) => broadcasts.earliestDueBroadcast(deps.store, nowMs),
      worked: (s) => s.broadcasts_done + s.messages_deleted + s.undeletable + s.unreachable,
    },
  };
}
