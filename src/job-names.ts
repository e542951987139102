/** The scheduled jobs' names: a module of its own, with no dependencies, so `--help` loads nothing else. */
/** Names of the scheduled jobs, in the seed's order. */
export const JOB_NAMES = [
  'token-cleanup',
  'message-deleter',
  'broadcast-deleter',
  'token-count-reset',
  'stats',
  'health-check',
  'backup',
  'analytics',
] as const;
/** One of the scheduled jobs. */
export type JobName = (typeof JOB_NAMES)[number];
/** Whether `name` is one of the scheduled jobs. */
export const isJobName = (name: string): name is JobName => (JOB_NAMES as readonly string[]).includes(name);
