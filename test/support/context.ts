import type { Clock } from '../../src/clock.ts';
import type { Logger } from '../../src/log.ts';
import type { RunContext } from '../../src/scheduler/job.ts';

/** What a job function is given in a test: one clock for its decisions and its leases, not a dry run. */
export function runContext(
  clock: Clock,
  logger: Logger,
  signal: AbortSignal = new AbortController().signal,
): Pick<RunContext, 'clock' | 'wallClock' | 'dryRun' | 'signal' | 'logger'> {
  return { clock, wallClock: clock, dryRun: false, signal, logger };
}
