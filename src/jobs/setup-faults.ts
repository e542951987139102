/**
 * The back-off after a setup fault (a rejected bot token, a storm of "chat not found"), shared by every process:
 * scheduled runs and wake-ups rest until the recorded `retry_at` (1 min doubling to 15 min), a manual run tries at
 * once, and a run that works clears the fault.
 */
import type { Clock } from '../clock.ts';
import type { Trigger } from '../scheduler/job.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import type { Api, RawApi } from 'grammy';
import { clearFault, getFault, knownChats, recordFault } from '../store/faults.ts';
import { FatalTelegramError, isMissingChat, outcomeOf, SetupFaultError } from '../telegram/errors.ts';

/** True for the errors that are the setup's fault, not the work's. */
export function isSetupFault(e: unknown): e is SetupFaultError | FatalTelegramError {
  return e instanceof SetupFaultError || e instanceof FatalTelegramError;
}

/** What {@link underSetupFaultBackoff} needs. */
export interface FaultGate {
  store: Store;
  /** The job name (or `broadcast-sender`) the fault is recorded under. */
  job: string;
  /** Real time: the rest is compared across processes. */
  clock: Clock;
  logger: Logger;
  trigger: Trigger;
}

/**
 * Runs `work` unless the job is resting after a setup fault. While it rests a scheduled run fails with the fault's
 * message (recorded as `error`) and a wake-up resolves `null` without working; a manual run always works. A setup
 * fault met by `work` is recorded (starting or lengthening the rest) and rethrown. A run whose result `proved` the
 * setup (a call worked, or there was nothing to do) clears the fault it saw — not one another run recorded since.
 */
export async function underSetupFaultBackoff<S>(
  g: FaultGate,
  work: () => Promise<S>,
  proved: (result: S) => boolean = () => true,
): Promise<S | null> {
  const fault = await getFault(g.store, g.job);
  const now = g.clock.now().getTime();
  if (fault && fault.retry_at > now && g.trigger !== 'manual') {
    if (g.trigger === 'wake-up') return null;
    const at = new Date(Number(fault.retry_at)).toISOString();
    throw new SetupFaultError(`resting after a setup fault until ${at} (${fault.count} in a row): ${fault.message}`);
  }
  try {
    const result = await work();
    if (fault && proved(result) && (await clearFault(g.store, g.job, Number(fault.retry_at)))) {
      g.logger.info({ job: g.job }, `✅ ${g.job} works again after a setup fault (${fault.message.slice(0, 80)}…)`);
    }
    return result;
  } catch (e) {
    if (isSetupFault(e)) {
      const f = await recordFault(g.store, g.job, e.message, g.clock.now().getTime()).catch((err: unknown) => {
        g.logger.error({ job: g.job, err: (err as Error).message }, 'could not record a setup fault');
        return null;
      });
      if (f) {
        const rest = Math.round((f.retry_at - g.clock.now().getTime()) / 1000);
        g.logger.error(
          { job: g.job, retry_at: new Date(f.retry_at).toISOString(), faults_in_row: f.count },
          `❌ ${g.job}: setup fault, resting ${rest} s: ${e.message}`,
        );
      }
    }
    throw e;
  }
}

/** What a run's unconfirmed "chat not found" answers mean: the chats' own, the setup's, or not known yet. */
export type MissingChatsVerdict =
  { kind: 'single' } | { kind: 'setup'; error: SetupFaultError } | { kind: 'unknown'; reason: string };

/**
 * Judges "chat not found" answers that no success followed (the run ended, or a broadcast did): asks a chat that
 * answered lately (`known_chats`, not one of `held`) whether it is still there. It answers: the held chats are gone
 * for good. It is "not found" too, or the token is rejected: the setup is wrong, nothing may be removed. No answer:
 * not known yet. With no such chat on record (a new database) the answers keep their single meaning.
 */
export async function judgeMissingChats(
  store: Store,
  api: Api<RawApi>,
  held: Iterable<number>,
  /** Chats that answered earlier in this run: asked first. */
  recent: Iterable<number> = [],
): Promise<MissingChatsVerdict> {
  const heldChats = new Set(held);
  const probe = [...recent, ...(await knownChats(store))].find((c) => !heldChats.has(c));
  if (probe === undefined) return { kind: 'single' };
  const o = await outcomeOf(() => api.getChat(probe));
  if (o.kind === 'fatal' || (o.kind !== 'done' && isMissingChat(o.reason))) {
    return { kind: 'setup', error: SetupFaultError.probed(heldChats.size, probe, o.reason) };
  }
  if (o.kind === 'transient') return { kind: 'unknown', reason: o.reason };
  // It answered (or refused in its own name, e.g. blocked): this bot knows its chats.
  return { kind: 'single' };
}

/**
 * Asks each held chat itself, once the setup is known to work (a call just worked, or a chat that answered lately
 * still does): only a chat that is "not found" now is gone. A "chat not found" held from before may have come while
 * the setup was wrong and was fixed since (a token swapped back, a Bot API server restored); such a chat answers now,
 * and its work is tried again instead of its user being marked. Returns the chats confirmed gone.
 */
export async function confirmMissingChats(api: Api<RawApi>, held: Iterable<number>): Promise<Set<number>> {
  const gone = new Set<number>();
  for (const chatId of new Set(held)) {
    const o = await outcomeOf(() => api.getChat(chatId));
    if (o.kind !== 'done' && o.kind !== 'fatal' && isMissingChat(o.reason)) gone.add(chatId);
  }
  return gone;
}

/** Notes a chat that just answered, keeping only the newest few (a run may meet a million chats). */
export function noteAnswered(recent: Set<number>, chatId: number, keep = 5): void {
  recent.delete(chatId);
  recent.add(chatId);
  if (recent.size > keep) recent.delete(recent.values().next().value!);
}
