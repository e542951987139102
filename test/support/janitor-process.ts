/**
 * Drives real `tg-janitor start` processes for the fault suite: start one and learn its HTTP address from its log,
 * SIGKILL it and start it again (same environment: a new process, a new owner), ask its /healthz, and keep every
 * generation's log (written to test-artifacts/faults/ at the end, for the evidence of a failure).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliProcess } from './cli.ts';

export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/faults/', import.meta.url));

/** A pino JSON line of a service's log. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number; time?: number };

/** Parses the complete JSON lines of a process's stderr (a line still being written is skipped). */
export function parseLog(stderr: string): LogLine[] {
  const out: LogLine[] = [];
  for (const l of stderr.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as LogLine);
    } catch {
      // the line is not complete yet
    }
  }
  return out;
}

/** One instance of the service, restartable. */
export class JanitorProcess {
  /** Every process this instance ran, oldest first; the last is the current one. */
  readonly generations: CliProcess[] = [];
  /** The HTTP address of the current process (set once it logged its start). */
  url = '';
  kills = 0;

  constructor(
    readonly name: string,
    readonly env: Record<string, string>,
  ) {}

  get current(): CliProcess | undefined {
    return this.generations.at(-1);
  }

  /** True while the current process has not exited. */
  get alive(): boolean {
    const c = this.current;
    return Boolean(c && c.child.exitCode === null && c.child.signalCode === null);
  }

  /** Spawns a new process (the previous one must have exited). */
  spawn(): CliProcess {
    if (this.alive) throw new Error(`${this.name} is still running`);
    const p = new CliProcess(['start'], this.env);
    this.generations.push(p);
    this.url = '';
    return p;
  }

  /** Spawns and waits for "tg-janitor started"; sets `url`. */
  async start(ms = 60_000): Promise<void> {
    const p = this.spawn();
    await p.waitFor(/tg-janitor started/, ms);
    const line = parseLog(p.stderr).find((l) => /tg-janitor started/.test(l.msg ?? ''));
    this.url = typeof line?.url === 'string' ? line.url : ''; // the start line logs it as text
    if (!this.url) throw new Error(`${this.name}: no url in the start line`);
  }

  /** SIGKILL (no clean stop); resolves when the process is gone. */
  async kill9(): Promise<void> {
    const p = this.current;
    if (!p || !this.alive) return;
    this.kills++;
    await p.kill('SIGKILL');
  }

  /** SIGTERM and wait: the clean stop. Returns the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    const p = this.current;
    if (!p) return null;
    if (!this.alive) return p.exited;
    return p.kill('SIGTERM');
  }

  /** GET /healthz of the current process: its status, or 0 when no answer came within `timeoutMs`. */
  async healthz(timeoutMs = 2000): Promise<{ status: number; body: unknown }> {
    if (!this.url) return { status: 0, body: null };
    try {
      const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      return { status: res.status, body: (await res.json().catch(() => null)) as unknown };
    } catch {
      return { status: 0, body: null };
    }
  }

  /** Every generation's JSON log lines, with the generation's number added as `gen`. */
  logs(): LogLine[] {
    return this.generations.flatMap((g, i) => parseLog(g.stderr).map((l) => ({ ...l, gen: i })));
  }

  /** Writes each generation's stderr to test-artifacts/faults/<scenario>/<name>-<gen>.log. */
  saveLogs(scenario: string): string {
    const dir = join(ARTIFACTS, scenario);
    mkdirSync(dir, { recursive: true });
    this.generations.forEach((g, i) => writeFileSync(join(dir, `${this.name}-${i}.log`), g.stderr));
    return dir;
  }
}

/** Several instances of one service on one database. */
export class Fleet {
  readonly members: JanitorProcess[];

  constructor(n: number, env: Record<string, string> | ((i: number) => Record<string, string>), prefix = 'instance') {
    this.members = Array.from(
      { length: n },
      (_, i) => new JanitorProcess(`${prefix}-${i + 1}`, typeof env === 'function' ? env(i) : env),
    );
  }

  start(): Promise<void[]> {
    return Promise.all(this.members.map((m) => m.start()));
  }

  /** SIGTERM to every live instance; resolves with their exits. */
  stop() {
    return Promise.all(this.members.map((m) => m.stop()));
  }

  /** SIGKILL to every live instance (cleanup after a failure). */
  async killAll(): Promise<void> {
    await Promise.all(this.members.filter((m) => m.alive).map((m) => m.current!.kill('SIGKILL')));
  }

  get kills(): number {
    return this.members.reduce((n, m) => n + m.kills, 0);
  }

  saveLogs(scenario: string): string {
    let dir = '';
    for (const m of this.members) dir = m.saveLogs(scenario);
    return dir;
  }
}

/** The environment of a service against `emu` on `databaseUrl`: JSON logs, any free port, short leases. */
export function serviceEnv(o: {
  databaseUrl: string;
  emu?: { token: string; url: string };
  extra?: Record<string, string>;
}): Record<string, string> {
  return {
    DATABASE_URL: o.databaseUrl,
    LOG_FORMAT: 'json',
    HTTP_PORT: '0',
    CLAIM_LEASE_S: '5',
    JOB_LEASE_S: '5',
    SHUTDOWN_TIMEOUT_S: '10',
    // Backups are tested on their own; a service of a test never writes one into the working folder.
    SCHEDULE_BACKUP: 'off',
    ...(o.emu ? { BOT_TOKEN: o.emu.token, BOT_API_ROOT: o.emu.url } : {}),
    ...o.extra,
  };
}

/** Seconds between two epoch-ms instants, one decimal. */
export const secs = (fromMs: number, toMs: number) => Math.round((toMs - fromMs) / 100) / 10;

/**
 * Checks `cond` every `everyMs` (default 500 ms: the checks query databases other processes work on) until it
 * holds; throws naming `what` after `ms`. A deadline, never an assertion of a duration.
 */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms: number,
  everyMs = 500,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(ms / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
