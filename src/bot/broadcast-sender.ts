/**
 * Sends broadcasts: copies the admin's message to every user who is neither blocked nor banned, at the shared
 * throttle, recording each recipient's own message id as it goes (what the broadcast deleter later deletes) and
 * moving a cursor, so a restart resumes the sending where it stopped. Edits one progress message for the admin.
 */
import type { Api, RawApi } from 'grammy';
import { backoff } from '../backoff.ts';
import type { Clock } from '../clock.ts';
import { dayIn, formatIn } from '../clock.ts';
import { logAtDebug, type Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import * as broadcasts from '../store/broadcasts.ts';
import { countAudience, markBlocked, recipientsAfter } from '../store/users.ts';
import type { Broadcast } from '../store/schema.ts';
import {
  classifyCopyError,
  FatalTelegramError,
  isMissingChat,
  MissingChatWatch,
  SetupFaultError,
  type CopyFailure,
} from '../telegram/errors.ts';
import { callsNotAfter, inLane, NotSentError } from '../telegram/client.ts';
import { LeaseKeeper } from '../scheduler/lease-keeper.ts';
import { confirmMissingChats, judgeMissingChats, noteAnswered, underSetupFaultBackoff } from '../jobs/setup-faults.ts';
import { rememberChats } from '../store/faults.ts';
import { addToDay } from '../store/daily-stats.ts';

/** Options for {@link BroadcastSender}. */
export interface SenderOptions {
  store: Store;
  /** The user bot's Api (the recipients' bot), throttled. */
  api: Api<RawApi>;
  /** The Api that edits the admin's progress message (the admin bot's, or the same). */
  progressApi?: Api<RawApi>;
  /** Where now and every wait (polls, back-offs, the stop's grace) come from. */
  clock: Clock;
  logger: Logger;
  owner: string;
  timezone: string;
  /** Claim lease on a broadcast being sent (default 60 s). */
  leaseMs?: number;
  /** How often to look for broadcasts to send when not kicked (default 5 s). */
  pollMs?: number;
  /** Minimum time between progress edits (default 2 s). */
  progressEveryMs?: number;
  /**
   * How long `stop()` lets a copy already asked of Telegram finish before cutting it (default 30 s). Cutting it
   * loses track of that copy: Telegram may have made it, and nobody would record it for deletion.
   */
  stopGraceMs?: number;
  /**
   * Send each copy with `allow_paid_broadcast` (BROADCAST_PAID): Telegram lets it past its free ~30 messages a second
   * for Telegram Stars from the bot's balance, and the throttle spaces such copies at their own rate (default false).
   */
  paid?: boolean;
  /**
   * Most copies in flight at once (default {@link COPIES_IN_FLIGHT}); {@link copiesInFlightFor} gives what a rate
   * needs.
   */
  copiesInFlight?: number;
}

/** What became of one recipient (see `BroadcastSender.deliver`). */
type Delivery =
  | { kind: 'sent' }
  | { kind: 'failed'; failure: CopyFailure; reason: string }
  | { kind: 'later'; reason: string }
  | { kind: 'stopped' }
  | { kind: 'lost' };

/** The name the sender's setup faults are recorded under (it is not a scheduled job). */
export const SENDER_JOB = 'broadcast-sender';

/** One pass over one broadcast. */
interface SendState {
  b: Broadcast;
  id: number;
  /** The last user whose outcome is recorded in the broadcast's cursor. */
  cursor: number;
  sent: number;
  failed: number;
  copyWorked: boolean;
  /** Users whose "chat not found" waits to be judged (theirs, or the setup's). */
  watch: MissingChatWatch<number>;
  /** Outcomes decided but not yet in the cursor (held while a "chat not found" is pending before them). */
  pending: { to: number | null; sent: number; failed: number };
  keeper?: LeaseKeeper;
  /** Users whose copy worked in this pass (remembered, to probe the setup with later). */
  goodChats: Set<number>;
  /** When the cursor last moved (see `flushSometimes`). */
  flushedAt: number;
}

/** A look that found nothing to send: the store's change token then, and when. */
interface Quiet {
  token: string;
  at: number;
}

/** The longest an idle sender goes without looking for broadcasts when nothing is written meanwhile. */
const QUIET_LOOK_MS = 60_000;
/**
 * Most copies of one broadcast in flight at once: one at a time, a copy waits a whole round trip to Telegram (50 to
 * 100 ms), which would hold a sender to 10 to 20 copies a second whatever the rate. The window opens (doubling) with
 * each copy made and shuts to one after anything else; the throttle still sets the pace.
 */
export const COPIES_IN_FLIGHT = 32;

/**
 * Copies in flight that keep a sender at `rate` copies a second over round trips of up to about 170 ms: a sixth of
 * the rate, at least 8 and at most 500; {@link COPIES_IN_FLIGHT} for an unlimited rate (0). More than needed only
 * costs: a quarter of the rate (250 at 1,000/s) sent fewer copies a second than a sixth in benchmark D.
 */
export function copiesInFlightFor(rate: number): number {
  if (!(rate > 0) || !Number.isFinite(rate)) return COPIES_IN_FLIGHT;
  return Math.min(500, Math.max(8, Math.ceil(rate / 6)));
}
/** Outcomes gathered before the cursor moves (see `flushSometimes`). */
const FLUSH_EVERY = 100;
/** The longest the cursor lags the outcomes (the admin's progress reads the counts it carries). */
const FLUSH_EVERY_MS = 1000;

/**
 * Ambiguous source failures ("chat not found", no rights) in a row, with no copy made in this pass, that stop a
 * broadcast: one could be a recipient's odd error, three before any success are the source.
 */
const SOURCE_FAILURES_TO_STOP = 3;
/** Unconfirmed copies in a row after which the pass stops and backs off: Telegram is not answering. */
const UNKNOWN_TO_PAUSE = 3;

/** The background sender. `start()`, `kick()` after a new broadcast, `stop()` waits for the recipient in hand. */
export class BroadcastSender {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** kick() came since the last look: look even if nothing seems written. */
  private kicked = false;
  /** The store's change token when a look last found nothing to send, and when that was. */
  private quiet: Quiet | null = null;
  /** Cut at once by `stop()`: back-off sleeps. */
  private readonly abort = new AbortController();
  /** Cut only when `stop()`'s grace runs out: the copy in flight. */
  private readonly calls = new AbortController();

  constructor(private readonly o: SenderOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = inLane('bulk', () => this.run());
  }

  /** Look for work now instead of at the next poll. */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    this.wake?.();
    const grace = new AbortController();
    const waited = this.o.clock.sleep(this.o.stopGraceMs ?? 30_000, { unref: true, signal: grace.signal });
    const finished = await Promise.race([this.loop?.then(() => true), waited.then(() => false)]);
    grace.abort();
    if (finished === false) {
      this.calls.abort();
      await this.loop;
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    const gate = {
      store: this.o.store,
      job: SENDER_JOB,
      clock: this.o.clock,
      logger: this.o.logger,
      trigger: 'wake-up' as const,
    };
    while (this.running) {
      let delay = this.o.pollMs ?? 5000;
      try {
        const now = this.o.clock.now().getTime();
        // Nothing to send at the last look and nothing written since: the look is not repeated (an idle service
        // stays idle) until a kick, or QUIET_LOOK_MS, which finds a claim that ran out with nobody writing.
        const token = await this.o.store.changeToken().catch(() => null);
        const last = this.quiet;
        const same = last !== null && token === last.token && now - last.at < QUIET_LOOK_MS && !this.kicked;
        this.kicked = false;
        if (same) {
          failures = 0;
          await this.pause(delay);
          continue;
        }
        // After a setup fault the sender rests with the jobs' back-off (recorded, so every process rests).
        const pass = await underSetupFaultBackoff(
          gate,
          async () => {
            const now = this.o.clock.now().getTime();
            const b = await broadcasts.claimSendingBroadcast(this.o.store, this.o.owner, now, this.o.leaseMs ?? 60_000);
            return b ? { claimed: true, copies: await this.send(b) } : { claimed: false, copies: 0 };
          },
          // A pass with a copy made, or nothing to send, shows the setup works again.
          (r) => !r.claimed || r.copies > 0,
        );
        if (pass?.claimed) delay = 0;
        this.quiet = pass && !pass.claimed && token !== null ? { token, at: now } : null;
        failures = 0;
      } catch (e) {
        failures++;
        delay = backoff(failures, { base: 2000, cap: 60_000 });
        const msg = (e as Error).message;
        this.o.logger.error({ err: msg, retry_in_ms: delay }, `❌ Error while sending a broadcast: ${msg}`);
      }
      await this.pause(delay);
    }
  }

  /** Waits `ms` before the next look; kick() and stop() cut the wait short. */
  private async pause(ms: number): Promise<void> {
    if (!this.running) return;
    const kicked = new AbortController();
    this.wake = () => kicked.abort();
    await this.o.clock.sleep(ms, { signal: kicked.signal });
    this.wake = null;
  }

  /**
   * Sends one claimed broadcast from its cursor to the end, its deadline, a stop, or a lost claim; resolves to the
   * copies made in this pass.
   */
  private async send(b: Broadcast): Promise<number> {
    const { store, clock, logger, owner } = this.o;
    const id = Number(b.id);
    const leaseMs = this.o.leaseMs ?? 60_000;
    const st: SendState = {
      b,
      id,
      cursor: Number(b.send_cursor ?? 0),
      sent: Number(b.sent_count),
      failed: Number(b.failed_count),
      // A copy of this source worked for someone in this broadcast: a "chat not found" is then a recipient's.
      copyWorked: Number(b.sent_count) > 0,
      watch: new MissingChatWatch<number>(),
      pending: { to: null, sent: 0, failed: 0 },
      goodChats: new Set(),
      flushedAt: clock.now().getTime(),
    };
    const keeper = new LeaseKeeper({
      what: `broadcast ${id} (sending)`,
      periodMs: Math.max(1000, leaseMs / 3),
      leaseMs,
      clock,
      logger,
      renew: () => broadcasts.renewBroadcastClaim(store, id, owner, clock.now().getTime() + leaseMs),
    }).start();
    st.keeper = keeper;
    const resume = st.cursor ? ` (resuming after user ${st.cursor})` : '';
    logger.info({ broadcast_id: id, resume_after: st.cursor }, `📢 Sending broadcast ${id}${resume}`);
    let lastProgress = 0;
    /** Users whose copy failed in a row on the source's account, before any copy worked. */
    const sourceFailed: number[] = [];
    let unknownInRow = 0;
    let sentThisPass = 0;
    /** Copies asked for and not yet taken, oldest first, and how many may be (doubling on each copy made). */
    const inFlight: { userId: number; result: Promise<Delivery> }[] = [];
    let width = 1;
    // Copies still in flight when the pass ends early are let finish (each records its own copy, or gives its
    // reservation back) but not counted: the cursor stays before them, and the next pass finds them reserved or
    // recorded and counts them then.
    const drain = async () => {
      await Promise.allSettled(inFlight.splice(0).map((f) => f.result));
    };
    const at = formatIn(new Date(b.delete_at), this.o.timezone);
    // Ends the sending for good when the source cannot be copied: what was sent is still deleted on time.
    const giveUp = async (reason: string) => {
      await drain();
      await this.settle(st, false);
      await this.flush(st);
      if (await broadcasts.finishSending(store, id, owner)) await this.countSent(st);
      logger.error(
        { broadcast_id: id, sent: st.sent, failed: st.failed, reason },
        `❌ Broadcast ${id} stopped: its message cannot be copied (${reason})`,
      );
      await this.progress(
        b,
        `❌ Broadcast #${id} stopped: its message cannot be copied (${reason}). Sent to ${st.sent} users; those copies are deleted at ${at} ${this.o.timezone}.`,
      );
    };
    // Its delete_at came first: nobody else gets it, and what was sent is deleted now, as for a sent broadcast.
    const deadline = async () => {
      // Copies that left before the deadline and were made count, so the admin is told every user it reached.
      for (const f of inFlight.splice(0)) {
        const r = await f.result.catch(() => null);
        if (r?.kind === 'sent') st.pending = { to: f.userId, sent: st.pending.sent + 1, failed: st.pending.failed };
      }
      await this.settle(st, false);
      await this.flush(st);
      if (await broadcasts.finishSending(store, id, owner)) await this.countSent(st);
      logger.warn(
        { broadcast_id: id, sent: st.sent, failed: st.failed },
        `⏰ Broadcast ${id} reached its deletion time while sending: stopped after ${st.sent} users`,
      );
      await this.progress(
        b,
        `⏰ Broadcast #${id} reached its deletion time while sending: it reached ${st.sent} users (${st.failed} failed). Sending stopped; those copies are being deleted now.`,
      );
    };
    const expired = () => clock.now().getTime() >= Number(b.delete_at);
    try {
      // A broadcast imported while it was being sent has no source to copy from.
      if (b.from_chat_id == null || b.message_id == null) {
        await giveUp('no source message recorded');
        return sentThisPass;
      }
      // Pages follow the users asked, not the cursor: the cursor waits behind a held "chat not found".
      const users = (async function* () {
        for (let after = st.cursor; ;) {
          const page = await recipientsAfter(store, after, 100);
          if (page.length === 0) return;
          after = page[page.length - 1]!;
          yield* page;
        }
      })();
      let usersLeft = true;
      for (;;) {
        // Copies go out side by side (see COPIES_IN_FLIGHT), each reserved first; their outcomes are taken in user
        // order below, as if they had been made one by one.
        while (usersLeft && inFlight.length < width && this.running && !keeper.lost && !expired()) {
          const next = await users.next();
          if (next.done) usersLeft = false;
          else {
            const userId = next.value;
            const result = callsNotAfter(expired, () => this.deliver(b, userId, keeper));
            // Its failure is taken when its turn comes (or by drain): not an unhandled rejection meanwhile.
            result.catch(() => undefined);
            inFlight.push({ userId, result });
          }
        }
        const head = inFlight.shift();
        if (!head) {
          if (!this.running || keeper.lost) return sentThisPass;
          if (expired()) {
            await deadline();
            return sentThisPass;
          }
          break;
        }
        const userId = head.userId;
        {
          const result = await head.result;
          // One copy in flight after anything but a copy made: a failure, a stop or a refusal is dealt with alone.
          width = result.kind === 'sent' ? Math.min(this.o.copiesInFlight ?? COPIES_IN_FLIGHT, width * 2) : 1;
          // Stopped before the user's copy is known (never asked, or asked with no answer): the cursor stays here,
          // so the next start asks this user again. Counting them as done would skip them for good.
          if (result.kind === 'stopped') return sentThisPass;
          if (result.kind === 'lost') {
            keeper.markLost(`recipient ${userId} could not be reserved under our claim`);
            return sentThisPass;
          }
          if (result.kind === 'later' && expired()) {
            await deadline();
            return sentThisPass;
          }
          // Telegram kept refusing for now (or could not be reached): this user stays next, the pass ends, and the
          // sender backs off before trying again. An outage delays the broadcast; it fails nobody.
          if (result.kind === 'later')
            throw new Error(
              `Telegram is not taking copies (${result.reason}); broadcast ${id} resumes after user ${st.cursor}`,
            );
          const fail = result.kind === 'failed' ? result : null;
          if (!fail) {
            st.copyWorked = true;
            sentThisPass++;
            noteAnswered(st.goodChats, userId);
            // The held "chat not found" answers were those users' own: they are marked now, as single ones.
            await this.settle(st, true);
            st.pending = { to: userId, sent: st.pending.sent + 1, failed: st.pending.failed };
            if (!(await this.flushSometimes(st))) return sentThisPass;
          } else if (fail.failure === 'source' && st.copyWorked && isMissingChat(fail.reason)) {
            // After a copy worked, "chat not found" is the recipient's, unless it comes from too many chats in a
            // row: then it is the setup's, and everyone held stays exactly as they were. The cursor first moves
            // over what was decided before: it stays behind held users.
            if (st.watch.heldItems().length === 0 && !(await this.flush(st))) return sentThisPass;
            if (st.watch.hold(userId, userId)) throw SetupFaultError.missingChats(st.watch.stormSize);
          } else {
            // Only the recipient's own refusal marks them: a source the bot cannot read must not mark everyone.
            if (fail.failure === 'recipient') await markBlocked(store, [userId], clock.now().getTime());
            logger.debug(
              { broadcast_id: id, user_id: userId, failure: fail.failure, reason: fail.reason },
              'broadcast not delivered',
            );
            st.pending = { to: userId, sent: st.pending.sent, failed: st.pending.failed + 1 };
            // Source failures before any copy worked wait behind the cursor: if they turn out to be the setup's,
            // those users are asked again once it is fixed.
            const deferred = fail.failure === 'source' && !st.copyWorked;
            if (!deferred && !(await this.flushSometimes(st))) return sentThisPass;
          }
          // The source message is gone: nobody can get it. An unreadable source chat looks like some recipients'
          // errors, so it ends the sending only when it comes three times in a row before any copy worked.
          if (fail?.failure === 'missing') {
            await giveUp(fail.reason);
            return sentThisPass;
          }
          if (fail?.failure === 'source' && !st.copyWorked) sourceFailed.push(userId);
          else sourceFailed.length = 0;
          if (sourceFailed.length >= SOURCE_FAILURES_TO_STOP && sentThisPass === 0) {
            // "chat not found" from the first users could also be the setup (another bot's token): a chat that
            // answered lately tells which, before the broadcast is given up for good.
            if (isMissingChat(fail!.reason)) await this.confirmNotSetup(sourceFailed);
            await giveUp(fail!.reason);
            return sentThisPass;
          }
          unknownInRow = fail?.failure === 'unknown' ? unknownInRow + 1 : 0;
          if (unknownInRow >= UNKNOWN_TO_PAUSE)
            throw new Error(
              `${unknownInRow} copies in a row not confirmed (${fail!.reason}); broadcast ${id} resumes after user ${st.cursor}`,
            );
          if (clock.now().getTime() - lastProgress >= (this.o.progressEveryMs ?? 2000)) {
            lastProgress = clock.now().getTime();
            await this.progress(
              b,
              `📢 Broadcast #${id}: sending… ${st.sent + st.pending.sent} sent, ${st.failed + st.pending.failed} failed`,
            );
          }
        }
      }
      await this.settle(st, false);
      await this.flush(st);
      if (!(await broadcasts.finishSending(store, id, owner))) {
        keeper.markLost('finishing the sending changed nothing');
        return sentThisPass;
      }
      await this.countSent(st);
      await this.progress(
        b,
        `✅ Broadcast #${id} sent to ${st.sent} users (${st.failed} failed). It will be deleted at ${at} ${this.o.timezone}.`,
      );
      logger.info(
        { broadcast_id: id, sent: st.sent, failed: st.failed },
        `📢 Broadcast ${id} sent to ${st.sent} users, ${st.failed} failed`,
      );
      return sentThisPass;
    } catch (e) {
      if (e instanceof SetupFaultError) {
        await this.progress(b, `⚠️ Broadcast #${id} paused after ${st.sent + st.pending.sent} users: ${e.message}`);
      }
      throw e;
    } finally {
      await drain();
      // What was decided since the last flush (a stop, an error): the cursor moves over it now, not after a re-ask;
      // not over source failures before any copy worked, which wait to be asked again (see `deferred`).
      if (!keeper.lost && sourceFailed.length === 0)
        await this.flush(st).catch((e: unknown) =>
          logger.debug({ err: (e as Error).message }, 'could not move the sending cursor; those users are asked again'),
        );
      await rememberChats(store, st.goodChats, clock.now().getTime()).catch((e: unknown) =>
        logger.debug({ err: (e as Error).message }, 'could not remember the chats that answered'),
      );
      await keeper.stop();
      if (!keeper.lost) {
        await broadcasts
          .releaseBroadcast(store, id, owner)
          .catch((e: unknown) =>
            logger.warn(
              { broadcast_id: id, err: (e as Error).message },
              'could not release a broadcast; it comes back when its lease ends',
            ),
          );
      }
    }
  }

  /**
   * Settles held "chat not found" users: each asked itself, those still "not found" marked blocked and counted as
   * failed; one that answers ends the pass (thrown), so the next asks them again. `confirmed`: a copy just worked,
   * so the setup works; otherwise a chat that answered lately is asked first — "not found" too is a setup fault
   * (thrown; the held users stay as they were), no answer ends the pass for now.
   */
  private async settle(st: SendState, confirmed: boolean): Promise<void> {
    if (st.watch.heldItems().length === 0) return;
    if (!confirmed) {
      const held0 = st.watch.heldItems();
      const verdict = await judgeMissingChats(this.o.store, this.o.api, held0, [...st.goodChats].reverse());
      if (verdict.kind === 'setup') throw verdict.error;
      if (verdict.kind === 'unknown')
        throw new Error(
          `could not tell whose "chat not found" it is (${verdict.reason}); broadcast ${st.id} resumes after user ${st.cursor}`,
        );
    }
    // The setup works now; each held user is asked itself. One that answers was "not found" while the setup was
    // wrong (fixed since): the pass ends with the cursor before them, and the next pass asks them again.
    const gone = await confirmMissingChats(this.o.api, st.watch.heldItems());
    const answered = st.watch.heldItems().filter((u) => !gone.has(u));
    if (answered.length > 0) {
      st.watch.forget();
      throw new Error(
        `user ${answered[0]} answered after its "chat not found" (the setup was at fault then, fixed since); ` +
          `broadcast ${st.id} resumes after user ${st.cursor}`,
      );
    }
    const held = st.watch.drain();
    await markBlocked(this.o.store, held, this.o.clock.now().getTime());
    // Users come in id order: the cursor moves to whichever decided user is last.
    const to = Math.max(st.pending.to ?? 0, ...held);
    st.pending = { to, sent: st.pending.sent, failed: st.pending.failed + held.length };
    await this.flush(st);
  }

  /** Before giving a broadcast up over "chat not found": throws a setup fault when a chat that answered lately does. */
  private async confirmNotSetup(users: number[]): Promise<void> {
    const verdict = await judgeMissingChats(this.o.store, this.o.api, users);
    if (verdict.kind === 'setup') throw verdict.error;
    if (verdict.kind === 'unknown') throw new Error(`could not tell whose "chat not found" it is (${verdict.reason})`);
  }

  /**
   * Tells the admin that a broadcast's deadline came before it was fully sent, when no sender held it then (it was
   * queued or resting): the broadcast deleter calls this as it takes the broadcast.
   */
  async tellCut(b: Broadcast): Promise<void> {
    const text =
      `⏰ Broadcast #${b.id} reached its deletion time before it was fully sent: it reached ${b.sent_count} users ` +
      `(${b.failed_count} failed). Sending stopped; those copies are being deleted now.`;
    await this.progress(b, text);
  }

  /**
   * {@link flush}, once {@link FLUSH_EVERY} outcomes or {@link FLUSH_EVERY_MS} have gathered: one cursor write per
   * user would be a third of a copy's database work. A cursor left behind by a crash costs nothing sent twice: the
   * users after it are found reserved or recorded and counted as they were.
   */
  private async flushSometimes(st: SendState): Promise<boolean> {
    const p = st.pending;
    const due = p.sent + p.failed >= FLUSH_EVERY || this.o.clock.now().getTime() - st.flushedAt >= FLUSH_EVERY_MS;
    return due ? this.flush(st) : true;
  }

  /**
   * Moves the cursor over what is decided, unless a "chat not found" is held (the cursor must not pass a user whose
   * verdict may still be "the setup is wrong"). False when the claim was lost.
   */
  private async flush(st: SendState): Promise<boolean> {
    const p = st.pending;
    if (p.to === null || st.watch.heldItems().length > 0) return true;
    if (!(await broadcasts.advanceSend(this.o.store, st.id, this.o.owner, p.to, p.sent, p.failed))) {
      st.keeper?.markLost('the sending cursor could not be moved under our claim');
      return false;
    }
    st.cursor = p.to;
    st.flushedAt = this.o.clock.now().getTime();
    st.sent += p.sent;
    st.failed += p.failed;
    st.pending = { to: null, sent: 0, failed: 0 };
    return true;
  }

  /**
   * One recipient: `sent` when their copy exists and is recorded (now or by an earlier run), `failed` when Telegram
   * refused it or did not answer (see `classifyCopyError`), `stopped` when the sender was stopped before that was
   * known, `lost` when the broadcast's claim is no longer ours (nothing was asked).
   */
  private async deliver(b: Broadcast, userId: number, keeper: LeaseKeeper): Promise<Delivery> {
    const id = Number(b.id);
    const { store, logger, owner, clock } = this.o;
    // The reservation decides who copies to this user: one process, once (a crash after the copy never resends).
    const reserved = await broadcasts.reserveRecipient(store, id, userId, owner, clock.now().getTime());
    if (reserved === 'lost') return { kind: 'lost' };
    if (reserved === 'taken') {
      const m = await broadcasts.recipientMessage(store, id, userId);
      if (m !== broadcasts.RESERVED) return { kind: 'sent' };
      logger.warn(
        { broadcast_id: id, chat_id: userId },
        `broadcast ${id} to chat ${userId} was asked for before without an answer: not asked again`,
      );
      return { kind: 'failed', failure: 'unknown', reason: 'asked before, never confirmed' };
    }
    for (let attempt = 0; ; attempt++) {
      if (!this.running || keeper.lost) {
        await this.unreserve(id, userId);
        return { kind: 'stopped' };
      }
      try {
        // Not cut by stop() at once: an answer on its way says whether the copy exists, and only then can it be
        // recorded for deletion.
        const signal = this.calls.signal as Parameters<Api['copyMessage']>[4];
        const other = this.o.paid ? { allow_paid_broadcast: true } : {};
        const copied = await this.o.api.copyMessage(userId, b.from_chat_id!, b.message_id!, other, signal);
        // The copy exists: it must be recorded, or the deleter would never remove it. A database outage is waited
        // out; the copy is never sent again.
        return (await this.record(id, userId, copied.message_id)) ? { kind: 'sent' } : { kind: 'stopped' };
      } catch (e) {
        const { failure, reason } = classifyCopyError(e);
        if (failure === 'unknown') {
          // The copy may exist: the reservation stays, so no process asks this user again.
          const cut = this.calls.signal.aborted;
          logger.error(
            { broadcast_id: id, chat_id: userId, reason },
            cut
              ? `❌ stopped while copying broadcast ${id} to chat ${userId}: if that copy arrived it is not recorded for deletion`
              : `❌ broadcast ${id} to chat ${userId} not confirmed (${reason}): if that copy arrived it is not recorded for deletion`,
          );
          if (!cut) return { kind: 'failed', failure, reason };
          // Cut by the end of stop()'s grace, with the copy's fate unknown: the next start asks again (logged), so
          // the user is not left without it; a copy that did arrive stays in that chat, as logged.
          await this.unreserve(id, userId);
          return { kind: 'stopped' };
        }
        // Refused for now (a 429 past the client's retries, no connection): nothing was copied, asking again is
        // safe, and the reservation is kept for it.
        const retry = failure === 'refused' && attempt < 2 && !(e instanceof NotSentError);
        if (!retry) {
          // Telegram answered that nothing was copied: the user may be asked again, by whoever sends next.
          await this.unreserve(id, userId);
          if (failure === 'fatal') throw new FatalTelegramError({ kind: 'fatal', reason });
          return failure === 'refused' ? { kind: 'later', reason } : { kind: 'failed', failure, reason };
        }
        // stop() cuts the wait short: the loop's check then returns 'stopped'.
        await this.o.clock.sleep(backoff(attempt + 1, { base: 1000, cap: 4000 }), { signal: this.abort.signal });
      }
    }
  }

  /** Gives a reservation back (nothing was copied); a database error leaves it, so the user is not asked again. */
  private async unreserve(id: number, userId: number): Promise<void> {
    await broadcasts
      .dropReservation(this.o.store, id, userId)
      .catch((e: unknown) =>
        this.o.logger.warn(
          { broadcast_id: id, chat_id: userId, err: (e as Error).message },
          'could not give a reservation back; that user will not be asked again',
        ),
      );
  }

  /**
   * Records a recipient's copy, retrying until the database answers; false only when stop()'s grace ran out first
   * (logged with the ids, so the operator can delete it by hand).
   */
  private async record(broadcastId: number, userId: number, messageId: number): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (!(await broadcasts.recordCopy(this.o.store, broadcastId, userId, messageId))) {
          this.o.logger.error(
            { broadcast_id: broadcastId, chat_id: userId, message_id: messageId },
            `❌ broadcast ${broadcastId}'s copy in chat ${userId} (message ${messageId}) lost its reservation before it was recorded: delete it by hand`,
          );
        }
        return true;
      } catch (e) {
        if (this.calls.signal.aborted) {
          this.o.logger.error(
            { broadcast_id: broadcastId, chat_id: userId, message_id: messageId, err: (e as Error).message },
            `❌ could not record broadcast ${broadcastId}'s copy in chat ${userId} (message ${messageId}) before stopping: delete it by hand`,
          );
          return false;
        }
        const wait = backoff(attempt + 1, { base: 250, cap: 30_000 });
        this.o.logger.warn(
          { broadcast_id: broadcastId, err: (e as Error).message, retry_in_ms: wait },
          'could not record a broadcast copy; retrying',
        );
        // Cut by the end of stop()'s grace: the next attempt reports it.
        await this.o.clock.sleep(wait, { signal: this.calls.signal });
      }
    }
  }

  /**
   * Counts an ended sending, the users it reached and its audience in the day's figures (once: its end is
   * conditional). The audience is everyone it was meant for: those asked (reached or not), and those after the
   * cursor that a sending cut short (its deadline, a source that cannot be copied) never got to.
   */
  private async countSent(st: SendState): Promise<void> {
    const { store, clock, timezone } = this.o;
    const day = dayIn(clock.now(), timezone);
    const count = async () => {
      const audience = st.sent + st.failed + (await countAudience(store, st.cursor));
      await addToDay(store, day, { broadcasts_sent: 1, recipients_reached: st.sent, broadcast_audience: audience });
    };
    await count().catch(logAtDebug(this.o.logger, 'could not count a sent broadcast for the day'));
  }

  private async progress(b: Broadcast, text: string): Promise<void> {
    if (b.progress_chat_id == null || b.progress_message_id == null) return;
    try {
      await (this.o.progressApi ?? this.o.api).editMessageText(b.progress_chat_id, b.progress_message_id, text);
    } catch (e) {
      // "message is not modified" and the like: progress is a courtesy, never a reason to stop sending.
      this.o.logger.debug({ err: (e as Error).message }, 'progress edit failed');
    }
  }
}
