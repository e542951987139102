/** Runs the real `tg-janitor` binary in a child process, as a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/tg-janitor.js', import.meta.url));

/** The environment a child gets: nothing of the developer's tg-janitor settings leaks in. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TMPDIR', 'NODE_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  // Port 0: test services never collide with each other or with a service on 8080.
  return { ...env, LOG_FORMAT: 'json', HTTP_PORT: '0', ...extra };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `tg-janitor args…` to the end. `cwd` defaults to a folder without a .env. */
export function runCli(
  args: string[],
  env: Record<string, string>,
  opts: { stdin?: string; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: cleanEnv(env),
      cwd: opts.cwd ?? process.cwd(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/** A long-running `tg-janitor` (e.g. `start`) whose output is collected; `waitFor` waits for a log line. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], env: Record<string, string>, cwd?: string) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: cleanEnv(env),
      cwd: cwd ?? process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d) => (this.stdout += d));
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves when stderr matches `re`; rejects after `ms` with the output so far. */
  async waitFor(re: RegExp, ms = 20_000): Promise<void> {
    const until = Date.now() + ms;
    while (!re.test(this.stderr)) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${re}; stderr:\n${this.stderr.slice(-3000)}`);
      if (this.child.exitCode !== null)
        throw new Error(`process exited (${this.child.exitCode}) before ${re}; stderr:\n${this.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Parsed JSON log lines. */
  logs(): Record<string, unknown>[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM') {
    this.child.kill(signal);
    return this.exited;
  }
}

/**
 * Runs `tg-janitor args…` inside this process through `main()` (no .env, the given environment only): for checks
 * of arguments and configuration that need no process of their own. `code` is what the process would exit with.
 */
export async function runCliHere(args: string[], env: Record<string, string>): Promise<CliResult> {
  const { main } = await import('../../src/cli/main.ts');
  const { Writable } = await import('node:stream');
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) => new Writable({ write: (chunk, _e, cb) => (add(String(chunk)), cb()) });
  const code = await main(args, {
    env: { LOG_FORMAT: 'json', HTTP_PORT: '0', ...env },
    stdout: sink((s) => (stdout += s)),
    stderr: sink((s) => (stderr += s)),
  });
  return { code, signal: null, stdout, stderr };
}
