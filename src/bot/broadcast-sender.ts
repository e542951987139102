/**
 * Sends broadcasts: copies the admin's message to every user who is neither blocked nor banned, at the shared
 * throttle, recording each recipient's own message id as it goes (what the broadcast deleter later deletes) and
 * moving a cursor, so a restart resumes the sending where it stopped. Edits one progress message for the admin.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Api, RawApi } from 'grammy';
import type { Clock } from '../clock.ts';
import { formatIn } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import * as broadcasts from '../store/broadcasts.ts';
import { markBlocked, recipientsAfter } from '../store/users.ts';
import type { Broadcast } from '../store/schema.ts';
import { classifyCopyError, type CopyFailure } from '../telegram/errors.ts';

/** Options for {@link BroadcastSender}. */
export interface SenderOptions {
  store: Store;
  /** The user bot's Api (the recipients' bot), throttled. */
  api: Api<RawApi>;
  /** The Api that edits the admin's progress message (the admin bot's, or the same). */
  progressApi?: Api<RawApi>;
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
}

/** What became of one recipient (see `BroadcastSender.deliver`). */
type Delivery = { kind: 'sent' } | { kind: 'failed'; failure: CopyFailure; reason: string } | { kind: 'later'; reason: string } | { kind: 'stopped' };

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
  /** Cut at once by `stop()`: back-off sleeps. */
  private readonly abort = new AbortController();
  /** Cut only when `stop()`'s grace runs out: the copy in flight. */
  private readonly calls = new AbortController();

  constructor(private readonly o: SenderOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Look for work now instead of at the next poll. */
  kick(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    this.wake?.();
    const grace = this.o.stopGraceMs ?? 30_000;
    const finished = await Promise.race([this.loop?.then(() => true), sleep(grace, false, { ref: false })]);
    if (finished === false) {
      this.calls.abort();
      await this.loop;
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      let delay = this.o.pollMs ?? 5000;
      try {
        const b = await broadcasts.claimSendingBroadcast(this.o.store, this.o.owner, this.o.clock.now().getTime(), this.o.leaseMs ?? 60_000);
        if (b) {
          await this.send(b);
          delay = 0;
        }
        failures = 0;
      } catch (e) {
        failures++;
        delay = Math.min(60_000, 1000 * 2 ** failures);
        this.o.logger.error({ err: (e as Error).message, retry_in_ms: delay }, `❌ Error while sending a broadcast: ${(e as Error).message}`);
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Sends one claimed broadcast from its cursor to the end (or until stopped). */
  private async send(b: Broadcast): Promise<void> {
    const { store, clock, logger, owner } = this.o;
    const id = Number(b.id);
    const leaseMs = this.o.leaseMs ?? 60_000;
    let cursor = Number(b.send_cursor ?? 0);
    let sent = Number(b.sent_count);
    let failed = Number(b.failed_count);
    let lastProgress = 0;
    const renew = setInterval(() => void broadcasts.renewBroadcastClaim(store, id, owner, clock.now().getTime() + leaseMs).catch(() => {}), Math.max(1000, leaseMs / 3));
    logger.info({ broadcast_id: id, resume_after: cursor }, `📢 Sending broadcast ${id}${cursor ? ` (resuming after user ${cursor})` : ''}`);
    let sourceFailures = 0;
    let unknownInRow = 0;
    let sentThisPass = 0;
    // Ends the sending for good when the source cannot be copied: what was sent is still deleted on time.
    const giveUp = async (reason: string) => {
      await broadcasts.finishSending(store, id);
      const at = formatIn(new Date(b.delete_at), this.o.timezone);
      logger.error({ broadcast_id: id, sent, failed, reason }, `❌ Broadcast ${id} stopped: its message cannot be copied (${reason})`);
      await this.progress(b, `❌ Broadcast #${id} stopped: its message cannot be copied (${reason}). Sent to ${sent} users; those copies are deleted at ${at} ${this.o.timezone}.`);
    };
    try {
      // A broadcast imported while it was being sent has no source to copy from.
      if (b.from_chat_id == null || b.message_id == null) return await giveUp('no source message recorded');
      for (;;) {
        const page = await recipientsAfter(store, cursor, 100);
        if (page.length === 0) break;
        for (const userId of page) {
          if (!this.running) return;
          const result = await this.deliver(b, userId);
          // Stopped before the user's copy is known (never asked, or asked with no answer): the cursor stays here,
          // so the next start asks this user again. Counting them as done would skip them for good.
          if (result.kind === 'stopped') return;
          // Telegram kept refusing for now (or could not be reached): this user stays next, the pass ends, and the
          // sender backs off before trying again. An outage delays the broadcast; it fails nobody.
          if (result.kind === 'later') throw new Error(`Telegram is not taking copies (${result.reason}); broadcast ${id} resumes after user ${cursor}`);
          const fail = result.kind === 'failed' ? result : null;
          // Only the recipient's own refusal marks them: a source the bot cannot read must not mark everyone blocked.
          if (fail?.failure === 'recipient') await markBlocked(store, [userId], clock.now().getTime());
          if (fail) logger.debug({ broadcast_id: id, user_id: userId, failure: fail.failure, reason: fail.reason }, 'broadcast not delivered');
          await broadcasts.advanceSend(store, id, userId, fail ? 0 : 1, fail ? 1 : 0);
          if (fail) failed++;
          else {
            sent++;
            sentThisPass++;
          }
          cursor = userId;
          // The source message is gone: nobody can get it. An unreadable source chat looks like some recipients'
          // errors, so it ends the sending only when it comes three times in a row before any copy worked.
          if (fail?.failure === 'missing') return await giveUp(fail.reason);
          sourceFailures = fail?.failure === 'source' ? sourceFailures + 1 : 0;
          if (sourceFailures >= SOURCE_FAILURES_TO_STOP && sentThisPass === 0) return await giveUp(fail!.reason);
          unknownInRow = fail?.failure === 'unknown' ? unknownInRow + 1 : 0;
          if (unknownInRow >= UNKNOWN_TO_PAUSE) throw new Error(`${unknownInRow} copies in a row not confirmed (${fail!.reason}); broadcast ${id} resumes after user ${cursor}`);
          if (Date.now() - lastProgress >= (this.o.progressEveryMs ?? 2000)) {
            lastProgress = Date.now();
            await this.progress(b, `📢 Broadcast #${id}: sending… ${sent} sent, ${failed} failed`);
          }
        }
      }
      await broadcasts.finishSending(store, id);
      const at = formatIn(new Date(b.delete_at), this.o.timezone);
      await this.progress(b, `✅ Broadcast #${id} sent to ${sent} users (${failed} failed). It will be deleted at ${at} ${this.o.timezone}.`);
      logger.info({ broadcast_id: id, sent, failed }, `📢 Broadcast ${id} sent to ${sent} users, ${failed} failed`);
    } finally {
      clearInterval(renew);
      await broadcasts.releaseBroadcast(store, id, owner).catch(() => {});
    }
  }

  /**
   * One recipient: `sent` when their copy exists and is recorded (now or by an earlier run), `failed` when Telegram
   * refused it or did not answer (see `classifyCopyError`), `stopped` when the sender was stopped before that was known.
   */
  private async deliver(b: Broadcast, userId: number): Promise<Delivery> {
    const id = Number(b.id);
    // A crash after the copy but before the cursor moved would send twice: a recorded recipient is skipped.
    if (await broadcasts.hasRecipient(this.o.store, id, userId)) return { kind: 'sent' };
    for (let attempt = 0; ; attempt++) {
      if (!this.running) return { kind: 'stopped' };
      try {
        // Not cut by stop() at once: an answer on its way says whether the copy exists, and only then can it be
        // recorded for deletion.
        const copied = await this.o.api.copyMessage(userId, b.from_chat_id!, b.message_id!, {}, this.calls.signal as Parameters<Api['copyMessage']>[4]);
        // The copy exists: it must be recorded, or the deleter would never remove it. A database outage is waited
        // out; the copy is never sent again.
        return (await this.record(id, userId, copied.message_id)) ? { kind: 'sent' } : { kind: 'stopped' };
      } catch (e) {
        const { failure, reason } = classifyCopyError(e);
        if (failure === 'fatal') throw new Error(`Telegram rejected the bot token (${reason}); sending resumes later`);
        if (failure === 'unknown') {
          // The copy may exist: asking again could send it twice, so this user is not asked again in this run.
          const cut = this.calls.signal.aborted;
          this.o.logger.error(
            { broadcast_id: id, chat_id: userId, reason },
            cut
              ? `❌ stopped while copying broadcast ${id} to chat ${userId}: if that copy arrived it is not recorded, and the next start sends it again`
              : `❌ broadcast ${id} to chat ${userId} not confirmed (${reason}): if that copy arrived it is not recorded for deletion`,
          );
          return cut ? { kind: 'stopped' } : { kind: 'failed', failure, reason };
        }
        if (failure !== 'refused') return { kind: 'failed', failure, reason };
        // Refused for now (a 429 past the client's retries, or no connection): nothing was sent, asking again is safe.
        if (attempt >= 2) return { kind: 'later', reason };
        await sleep(1000 * 2 ** attempt, undefined, { signal: this.abort.signal }).catch(() => {});
      }
    }
  }

  /**
   * Records a recipient's copy, retrying until the database answers; false only when stop()'s grace ran out first
   * (logged with the ids, so the operator can delete it by hand).
   */
  private async record(broadcastId: number, userId: number, messageId: number): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await broadcasts.addRecipient(this.o.store, broadcastId, userId, messageId);
        return true;
      } catch (e) {
        if (this.calls.signal.aborted) {
          this.o.logger.error(
            { broadcast_id: broadcastId, chat_id: userId, message_id: messageId, err: (e as Error).message },
            `❌ could not record broadcast ${broadcastId}'s copy in chat ${userId} (message ${messageId}) before stopping: delete it by hand`,
          );
          return false;
        }
        const wait = Math.min(30_000, 250 * 2 ** attempt);
        this.o.logger.warn({ broadcast_id: broadcastId, err: (e as Error).message, retry_in_ms: wait }, 'could not record a broadcast copy; retrying');
        await sleep(wait, undefined, { signal: this.calls.signal }).catch(() => {});
      }
    }
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

