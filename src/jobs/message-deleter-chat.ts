/**
 * The message deleter's work on one chat's claimed rows (message-deleter.ts claims them and runs chats side by
 * side): their messages deleted in as few `deleteMessages` calls as they fit, then one "deleted" notice per group
 * of rows (deleted-notice.ts decides both), each notice's rows removed in one statement right after it. Every row ends
 * removed, kept for a retry with back-off, or held (its chat answered "chat not found" and the run does not know yet
 * whether that is the chat's or the setup's).
 */
import { backoff } from '../backoff.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { PendingDeletion } from '../store/schema.ts';
import * as deletions from '../store/deletions.ts';
import { markBlocked } from '../store/users.ts';
import { latenessBucket, type LatenessCounts } from '../store/analytics.ts';
import {
  classifyError,
  FatalTelegramError,
  isMissingChat,
  MissingChatWatch,
  outcomeOf,
  type Outcome,
  type SetupFaultError,
} from '../telegram/errors.ts';
import { confirmMissingChats, isSetupFault, judgeMissingChats, noteAnswered } from './setup-faults.ts';
import { defaultNoticeFor, noticeGroups, noticeMarkup, packDeletes } from './deleted-notice.ts';
import type { MessageDeleterDeps, MessageDeleterSummary } from './message-deleter.ts';

/** Back-off for a row's next attempt after `attempts` failures: 30 s, doubling, capped at 15 min. */
export const ROW_BACKOFF = { base: 30_000, cap: 15 * 60_000 };

/** A row whose chat answered "chat not found", waiting to learn whether that was the chat's or the setup's. */
export interface HeldRow {
  row: PendingDeletion;
  outcome: Outcome;
}

/** Finished rows by outcome, for the day's figures: done (on time or late) or failed (nothing could be deleted). */
export type DeletionTally = Record<
  'deletions_done' | 'deletions_on_time' | 'deletions_late' | 'deletions_failed',
  number
>;

/** What one run shares with its chats. */
export interface RunState extends MessageDeleterDeps {
  /** The admin's notice text, or null for the default (worded for the number of files). */
  customNotice: string | null;
  clock: Clock;
  /** Real time, for facts (blocked_at) and leases. */
  wall: Clock;
  s: MessageDeleterSummary;
  logger: Logger;
  watch: MissingChatWatch<HeldRow>;
  /** Claimed rows not yet removed or kept (released at the end of the batch). */
  unfinished: Set<number>;
  /** Rows whose claim another process took (the lease keeper found out): left to it. */
  lost: Set<number>;
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

/** One claimed row as its chat's work goes on. */
interface RowWork {
  row: PendingDeletion;
  /** Seconds after its delete_at when its work started. */
  lateness: number;
  /** Its messages Telegram would not delete. */
  undeletable: number;
  /** Removed, kept, held or left to another process: nothing more to do here. */
  settled: boolean;
}

/**
 * Keeps a row for another attempt: attempts + 1, next try after the back-off counted from the run's clock, never
 * sooner than Telegram asked (429 retry_after). Returns the next attempt's instant, or null when the claim was lost.
 */
async function keepForLater(row: PendingDeletion, r: RunState, o: Outcome, messagesDeleted: boolean) {
  const attempts = row.attempts + 1;
  const next = r.clock.now().getTime() + Math.max(backoff(attempts, ROW_BACKOFF), (o.retryAfter ?? 0) * 1000);
  const kept = await deletions.retryDeletion(r.store, Number(row.id), r.owner, {
    attempts,
    nextAttemptAt: next,
    lastError: o.reason,
    messagesDeleted,
  });
  return kept ? next : null;
}

/** Counts a removed row: deleted within a second of its `delete_at` (on time) or later, or failed. */
function countRow(r: RunState, how: 'on_time' | 'late' | 'failed', lateness = 0): void {
  if (how === 'failed') r.day.deletions_failed++;
  else {
    r.day.deletions_done++;
    r.day[how === 'on_time' ? 'deletions_on_time' : 'deletions_late']++;
    r.lateness[latenessBucket(lateness)]!++;
  }
}

/**
 * Removes finished rows in one statement while this run still holds them; returns the ids removed. A row whose
 * claim was lost is logged and left to its owner.
 */
async function remove(rows: PendingDeletion[], r: RunState): Promise<Set<number>> {
  const ids = rows.map((row) => Number(row.id));
  for (const id of ids) r.unfinished.delete(id);
  const removed = await deletions.removeDeletions(r.store, ids, r.owner);
  r.s.removed += removed.size;
  for (const row of rows)
    if (!removed.has(Number(row.id)))
      r.logger.warn(
        { row: row.id, chat_id: row.chat_id },
        `pending deletion ${row.id} was claimed by another process meanwhile (our lease ran out); left to it`,
      );
  return removed;
}

/** The chats are gone for good (blocked, deactivated, or a single "chat not found"): users marked, rows dropped. */
async function dropUnreachable(rows: PendingDeletion[], o: Outcome, r: RunState): Promise<void> {
  // Only the rows' owner marks the users. Facts are stamped with real time, whatever instant the run decides at.
  const removed = await remove(rows, r);
  const dropped = rows.filter((row) => removed.has(Number(row.id)));
  if (dropped.length === 0) return;
  r.day.deletions_failed += dropped.length;
  await markBlocked(
    r.store,
    dropped.flatMap((row) => [row.user_id, row.chat_id]),
    r.wall.now().getTime(),
  );
  r.s.unreachable += dropped.length;
  for (const chat of new Set(dropped.map((row) => row.chat_id)))
    r.logger.info(
      { rows: dropped.filter((row) => row.chat_id === chat).map((row) => row.id), chat_id: chat, reason: o.reason },
      `Chat ${chat} is unreachable (${o.reason}); user marked, no notice`,
    );
}

/**
 * Held "chat not found" answers, now known not to be a storm and the setup known to work: each chat is asked itself.
 * Still "not found": gone (user marked, rows dropped). It answers: the "not found" came while the setup was wrong
 * (fixed since), so the rows are tried again later.
 */
async function applyHeld(held: HeldRow[], r: RunState): Promise<void> {
  if (held.length === 0) return;
  const gone = await confirmMissingChats(r.telegram.api, new Set(held.map((h) => h.row.chat_id)));
  const dropped = held.filter((h) => gone.has(h.row.chat_id));
  if (dropped.length)
    await dropUnreachable(
      dropped.map((h) => h.row),
      dropped[0]!.outcome,
      r,
    );
  for (const h of held)
    if (!gone.has(h.row.chat_id))
      await keepHeld(h, r, 'the chat answers now: that "chat not found" was the setup\'s, fixed since');
}

/** A held row whose chat's fate is not known: kept for a later attempt (its back-off), nobody marked. */
async function keepHeld(h: HeldRow, r: RunState, why: string): Promise<void> {
  r.unfinished.delete(Number(h.row.id));
  const o: Outcome = { kind: 'transient', reason: `"chat not found", not confirmed: ${why}` };
  if ((await keepForLater(h.row, r, o, Boolean(h.row.messages_deleted))) !== null) r.s.transient++;
}

/**
 * Settles the held rows at the end of a run: confirmed chat by chat (see {@link applyHeld}) when a chat that
 * answered lately still answers, left untouched (a setup fault, returned) when it is "not found" too, kept for a
 * retry when it cannot be asked.
 */
export async function settleHeld(r: RunState): Promise<SetupFaultError | null> {
  const held0 = r.watch.heldItems().map((h) => h.row.chat_id);
  const verdict = await judgeMissingChats(r.store, r.telegram.api, held0, [...r.goodChats].reverse());
  if (verdict.kind === 'setup') return verdict.error;
  const held = r.watch.drain();
  if (verdict.kind === 'single') await applyHeld(held, r);
  else for (const h of held) await keepHeld(h, r, verdict.reason);
  return null;
}

/**
 * Works one chat's claimed rows (in claim order) to their end. A setup fault ends the run; a database error ends it
 * too, with this chat's open rows kept for later: going on would send notices for rows it cannot remove.
 */
export async function processChat(rows: PendingDeletion[], r: RunState): Promise<void> {
  if (r.halted()) return;
  const work: RowWork[] = rows
    .filter((row) => !r.lost.has(Number(row.id)))
    .map((row) => {
      const lateness = Math.max(0, (r.clock.now().getTime() - row.delete_at) / 1000);
      r.s.rows++;
      r.s.max_lateness_s = Math.max(r.s.max_lateness_s, Math.round(lateness * 1000) / 1000);
      r.onLateness?.(lateness);
      return { row, lateness, undeletable: 0, settled: false };
    });
  if (work.length === 0) return;
  try {
    await workChat(work, r);
  } catch (e) {
    if (isSetupFault(e)) return r.halt(e);
    const msg = (e as Error).message;
    const open = work.filter((w) => !w.settled);
    r.logger.error(
      { rows: open.map((w) => w.row.id), err: msg },
      `Failed to process pending deletions of chat ${work[0]!.row.chat_id}: ${msg}`,
    );
    r.halt(e as Error);
    const o: Outcome = { kind: 'transient', reason: msg };
    for (const w of open) {
      const kept = await keepForLater(w.row, r, o, Boolean(w.row.messages_deleted)).then(
        () => true,
        (err: unknown) => (r.logger.debug({ row: w.row.id, err: (err as Error).message }, 'could not keep row'), false),
      );
      if (kept) {
        r.s.transient++;
        r.unfinished.delete(Number(w.row.id));
      }
    }
  }
}

async function workChat(work: RowWork[], r: RunState): Promise<void> {
  const { telegram, s, logger } = r;
  const chatId = work[0]!.row.chat_id;
  const open = () => work.filter((w) => !w.settled);

  const keep = async (w: RowWork, o: Outcome, messagesDeleted: boolean) => {
    w.settled = true;
    const id = Number(w.row.id);
    r.unfinished.delete(id);
    const next = await keepForLater(w.row, r, o, messagesDeleted);
    if (next === null) {
      logger.warn({ row: id }, `pending deletion ${id} was claimed by another process meanwhile; left to it`);
      return;
    }
    s.transient++;
    logger.warn(
      { row: id, chat_id: chatId, attempts: w.row.attempts + 1, next_attempt_at: new Date(next).toISOString() },
      `Failed to delete message ${id}: ${o.reason} (will retry)`,
    );
  };
  // Blocked or deactivated: the user's own verdict, at once, for every open row. "chat not found": held until the
  // run knows more.
  const unreachable = async (o: Outcome) => {
    const rest = open();
    for (const w of rest) w.settled = true;
    if (isMissingChat(o.reason)) for (const w of rest) r.watch.hold(chatId, { row: w.row, outcome: o });
    else
      await dropUnreachable(
        rest.map((w) => w.row),
        o,
        r,
      );
  };
  // What every answer means for the watch: a success proves the token and the server know the chats.
  const ask = async (call: () => Promise<unknown>): Promise<Outcome> => {
    const o = await outcomeOf(call);
    if (o.kind === 'fatal') throw new FatalTelegramError(o);
    if (o.kind === 'done' || o.kind === 'gone') {
      noteAnswered(r.goodChats, chatId);
      await applyHeld(r.watch.success(), r);
    }
    return o;
  };
  // Removes finished rows and counts them. A failed removal ends the run before the notice lane moves on, so no
  // other chat's notice goes out for rows the run could not remove (see processChat).
  const finish = async (ws: RowWork[]) => {
    const removed = await remove(
      ws.map((w) => w.row),
      r,
    ).catch((e: unknown) => {
      r.halt(e as Error);
      throw e;
    });
    for (const w of ws) {
      w.settled = true;
      if (removed.has(Number(w.row.id)))
        countRow(r, w.undeletable > 0 ? 'failed' : w.lateness <= 1 ? 'on_time' : 'late', w.lateness);
    }
  };

  const toDelete = work.filter((w) => !w.row.messages_deleted);
  const calls = packDeletes(toDelete.map((w) => JSON.parse(w.row.message_ids) as number[]));
  for (const call of calls) {
    const ws = call.rows.map((i) => toDelete[i]!).filter((w) => !w.settled);
    if (ws.length === 0) continue;
    if (r.halted()) return;
    const o = await ask(() => telegram.api.deleteMessages(chatId, call.ids));
    if (o.kind === 'transient') {
      for (const w of ws) await keep(w, o, false);
      continue;
    }
    if (o.kind === 'unreachable') return unreachable(o);
    if (o.kind === 'done' || o.kind === 'gone') {
      s.messages_deleted += call.ids.length;
      if (o.kind === 'gone') s.gone += call.ids.length;
      continue;
    }
    // One message can make deleteMessages fail (too old, …): ask message by message to learn which.
    const rowOf = new Map(ws.flatMap((w) => (JSON.parse(w.row.message_ids) as number[]).map((m) => [m, w] as const)));
    for (const m of call.ids) {
      const w = rowOf.get(m);
      if (!w || w.settled) continue;
      const one = await ask(() => telegram.api.deleteMessage(chatId, m));
      if (one.kind === 'transient') await keep(w, one, false);
      else if (one.kind === 'unreachable') return unreachable(one);
      else if (one.kind === 'undeletable') {
        s.undeletable++;
        w.undeletable++;
        logger.warn(
          { row: w.row.id, chat_id: chatId, message_id: m, reason: one.reason },
          `Failed to delete message ${m}: ${one.reason} (not retried)`,
        );
      } else {
        s.messages_deleted++;
        if (one.kind === 'gone') s.gone++;
      }
    }
  }

  // Rows that asked for no notice (the auto-delete plugin's default) are done once their messages are.
  const silent = open().filter((w) => !w.row.notice);
  if (silent.length) await finish(silent);

  for (const group of noticeGroups(open())) {
    const ws = group.filter((w) => !w.settled && !r.lost.has(Number(w.row.id)));
    if (ws.length === 0) continue;
    const wantsButton = ws.some((w) => w.row.unique_id);
    const username = wantsButton ? await telegram.username().catch((e) => e as Error) : null;
    if (username instanceof Error) {
      const o = classifyError(username);
      if (o.kind === 'fatal') throw new FatalTelegramError(o);
      for (const w of ws) await keep(w, o, true);
      continue;
    }
    const text = r.customNotice ?? defaultNoticeFor(ws.length);
    const markup = noticeMarkup(
      username,
      ws.map((w) => w.row.unique_id),
    );
    // From the moment Telegram has a notice until its rows are gone, a kill would send it again on the next try:
    // one notice at a time per process keeps that to at most one repeated notice per kill.
    await oneNoticeAtATime(telegram, async () => {
      // The run ended while these rows waited their turn: they stay (claimed, then released), the notice unsent.
      if (r.halted()) return;
      const sent = await ask(() => telegram.api.sendMessage(chatId, text, markup));
      if (sent.kind === 'transient') {
        for (const w of ws) await keep(w, sent, true);
        return;
      }
      if (sent.kind === 'unreachable') return unreachable(sent);
      if (sent.kind === 'done') s.notices_sent++;
      else
        logger.warn(
          { rows: ws.map((w) => w.row.id), chat_id: chatId, reason: sent.reason },
          `Deleted notice to ${chatId} was refused: ${sent.reason}`,
        );
      await finish(ws);
    });
  }
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
