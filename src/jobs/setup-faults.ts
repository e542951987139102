/**
 * The back-off after a setup fault (a rejected bot token, a storm of "chat not found"), shared by every process:
 * scheduled runs and wake-ups rest until the recorded `retry_at` (1 min doubling to 15 min), a manual run tries at
 * once, and a run that works clears the fault.
 */
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import { clearFault, getFault, recordFault } from '../store/faults.ts';
import { FatalTelegramError, SetupFaultError } from '../telegram/errors.ts';

/** What started a run: its schedule, an on-time wake-up, or a person (`run`, `/run`, the library's `run`). */
export type Trigger = 'schedule' | 'wake-up' | 'manual';

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
 * fault met by `work` is recorded (starting or lengthening the rest) and rethrown; a run that works clears it.
 */
export async function underSetupFaultBackoff<S>(g: FaultGate, work: () => Promise<S>): Promise<S | null> {
  const fault = await getFault(g.store, g.job);
  const now = g.clock.now().getTime();
  if (fault && fault.retry_at > now && g.trigger !== 'manual') {
    if (g.trigger === 'wake-up') return null;
    const at = new Date(Number(fault.retry_at)).toISOString();
    throw new SetupFaultError(`resting after a setup fault until ${at} (${fault.count} in a row): ${fault.message}`);
  }
  try {
    const result = await work();
    if (fault && (await clearFault(g.store, g.job))) {
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
        g.logger.error({ job: g.job, retry_at: new Date(f.retry_at).toISOString(), faults_in_row: f.count }, `❌ ${g.job}: setup fault, resting ${rest} s: ${e.message}`);
      }
    }
    throw e;
  }
}
