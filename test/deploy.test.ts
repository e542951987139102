/**
 * Deploying where these bots run (issue 12, part 4): the platform's `PORT` (Heroku, Koyeb, Render, Railway) against
 * HTTP_HOST and HTTP_PORT, in the configuration and in a real `start` launched as the Procfile says; the Dockerfile's
 * HEALTHCHECK command run against it; and `.env.example` in step with the configuration schema. The deploy files'
 * own shapes are checked in deploy-files.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ConfigError, configFromOptions, envSchema, loadConfig } from '../src/config.ts';
import { runCli, runCliHere } from './support/cli.ts';
import { HEAP_FLAGS, healthcheckCommand, parseDockerfile, stagesOf } from './support/dockerfile.ts';
import { until } from './support/wait.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const address = (env: Record<string, string>) => {
  const c = loadConfig(env);
  return `${c.httpHost}:${c.httpPort}`;
};

describe('PORT, the platform’s port', () => {
  test('PORT alone: every interface, that port; HTTP_HOST keeps its host; HTTP_PORT wins over PORT', () => {
    assert.equal(address({}), '127.0.0.1:8080', 'nothing set: loopback, 8080');
    assert.equal(address({ PORT: '5000' }), '0.0.0.0:5000');
    assert.equal(address({ PORT: '5000', HTTP_HOST: '10.1.2.3' }), '10.1.2.3:5000');
    assert.equal(address({ PORT: '5000', HTTP_HOST: '127.0.0.1' }), '127.0.0.1:5000', 'the default written out is set');
    // HTTP_PORT is the operator's own choice: PORT is ignored altogether, so the host stays loopback (a PORT some
    // tool exports on a developer's machine must not open the server to the network).
    assert.equal(address({ PORT: '5000', HTTP_PORT: '9000' }), '127.0.0.1:9000');
    assert.equal(address({ PORT: '5000', HTTP_PORT: '8080' }), '127.0.0.1:8080', 'the default written out is set');
    assert.equal(address({ PORT: '5000', HTTP_PORT: '9000', HTTP_HOST: '::' }), ':::9000');
    assert.equal(address({ HTTP_HOST: '0.0.0.0' }), '0.0.0.0:8080');
    assert.equal(address({ HTTP_PORT: '9000' }), '127.0.0.1:9000');
    assert.equal(address({ PORT: '0' }), '0.0.0.0:0', '0 = any free port, as for HTTP_PORT');
    // Empty counts as unset, for PORT as for every variable (a `PORT=` line, an empty HTTP_PORT from a template).
    assert.equal(address({ PORT: ' ' }), '127.0.0.1:8080');
    assert.equal(address({ PORT: '5000', HTTP_PORT: '', HTTP_HOST: '' }), '0.0.0.0:5000');
  });

  test('a bad PORT is a configuration error naming PORT: exit 2, before anything runs', async () => {
    for (const bad of ['abc', '70000', '-1', '80.5', '5000x']) {
      assert.throws(
        () => loadConfig({ PORT: bad }),
        (e: unknown) => e instanceof ConfigError && e.variable === 'PORT' && e.message.includes(`PORT="${bad}"`),
        bad,
      );
    }
    // Validated even when HTTP_PORT wins: a wrong PORT is a wrong environment either way.
    assert.throws(() => loadConfig({ PORT: 'abc', HTTP_PORT: '9000' }), /PORT="abc" is not valid/);
    const dir = mkdtempSync(join(tmpdir(), 'tgj-deploy-'));
    try {
      const db = { DATABASE_URL: `sqlite:${join(dir, 'data', 'db.sqlite')}` };
      const here = await runCliHere(['start'], { ...db, PORT: '65536' });
      assert.equal(here.code, 2, here.stderr);
      assert.match(here.stderr, /configuration error: PORT="65536" is not valid: expected at most 65535/);
      // The real process once: its exit code.
      const real = await runCli(['migrate'], { ...db, PORT: 'eighty' }, { cwd: dir });
      assert.equal(real.code, 2, real.stderr);
      assert.match(real.stderr, /PORT="eighty"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('library options are unchanged: httpHost/httpPort as given, PORT neither an option nor read', () => {
    const saved = process.env.PORT;
    process.env.PORT = '5000';
    try {
      const c = configFromOptions({});
      assert.equal(`${c.httpHost}:${c.httpPort}`, '127.0.0.1:8080', 'the process environment is not read');
      assert.deepEqual(configFromOptions({}), loadConfig({}));
      const o = configFromOptions({ httpHost: '0.0.0.0', httpPort: 9000 });
      assert.equal(`${o.httpHost}:${o.httpPort}`, '0.0.0.0:9000');
      assert.throws(() => configFromOptions({ port: 5000 }), /config\.port is not an option/);
      assert.throws(() => configFromOptions({ httpPort: 70000 }), /config\.httpPort=70000 is not valid/);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });

  test('started as the Procfile says with only PORT: /healthz answers on every interface; the HEALTHCHECK passes', async () => {
    const web = /^web:\s*(.+)$/m.exec(read('Procfile'))?.[1]?.trim();
    assert.equal(
      web,
      `node ${HEAP_FLAGS.join(' ')} bin/tg-janitor.js start`,
      'the Procfile starts the service itself (no npm in between)',
    );
    // node, its flags, the script (relative to the app's folder), the command.
    const [, ...rest] = web.split(/\s+/);
    const flags = rest.filter((a) => a.startsWith('--'));
    const [script, ...args] = rest.filter((a) => !a.startsWith('--'));
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'tgj-deploy-'));
    // Exactly what a platform gives: PORT, no HTTP_HOST, no HTTP_PORT (absent, not empty); a folder without a .env.
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      LOG_FORMAT: 'json',
      PORT: String(port),
      SHUTDOWN_TIMEOUT_S: '8',
    };
    const child = spawn(process.execPath, [...flags, join(ROOT, script!), ...args], { env, cwd: dir, stdio: 'pipe' });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(() => stderr.includes('tg-janitor started') || child.exitCode !== null, 'the start', 30_000);
      assert.equal(child.exitCode, null, stderr);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(ok.status, 200, await ok.text());
      // 127.0.0.2 reaches a server bound to 0.0.0.0 but not one bound to 127.0.0.1: the wildcard bind, shown.
      const other = await fetch(`http://127.0.0.2:${port}/healthz`);
      assert.equal(other.status, 200);
      // The Dockerfile's HEALTHCHECK command, as Docker would run it (PORT decides, HTTP_PORT would win).
      assert.equal(healthcheck({ PORT: String(port) }), 0, 'healthy on PORT');
      assert.equal(healthcheck({ HTTP_PORT: String(port), PORT: '1' }), 0, 'HTTP_PORT wins, as in the config');
      assert.equal(healthcheck({ PORT: '1' }), 1, 'nothing listening: unhealthy');
      child.kill('SIGTERM');
      // A clean stop (the image's SHUTDOWN_TIMEOUT_S=8 bounds a busy one inside Docker's 10 s: deploy-files.test.ts).
      assert.equal(await exited, 0, `a clean stop on SIGTERM\n${stderr}`);
      assert.match(stderr, /tg-janitor stopped/);
      assert.equal(healthcheck({ PORT: String(port) }), 1, 'unhealthy once stopped');
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A port nothing listens on now (the kernel's pick, released at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '0.0.0.0', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Runs the Dockerfile's HEALTHCHECK command with `env` (its `node` is this Node); returns the exit code. */
function healthcheck(env: Record<string, string>): number | null {
  const runtime = stagesOf(parseDockerfile(read('Dockerfile'))).at(-1)!;
  const [cmd, ...args] = healthcheckCommand(runtime)!;
  assert.equal(cmd, 'node', 'a slim image has node, not curl or wget');
  return spawnSync(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }).status;
}

describe('.env.example', () => {
  /** Each variable of .env.example: its value as written (commented out or not) and the comment line above it. */
  const entries = () => {
    const lines = read('.env.example').split('\n');
    return lines.flatMap((line, i) => {
      const m = /^(# )?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
      return m ? [{ name: m[2]!, value: m[3]!, commented: Boolean(m[1]), meaning: lines[i - 1] ?? '' }] : [];
    });
  };
  const fields = envSchema.shape as unknown as Record<string, { safeParse(v: unknown): { data?: unknown } }>;

  test('lists every variable of the schema once, and nothing else, each with one line of meaning above it', () => {
    const names = entries().map((e) => e.name);
    assert.deepEqual([...names].sort(), Object.keys(envSchema.shape).sort());
    assert.equal(new Set(names).size, names.length, 'each once');
    for (const e of entries()) {
      assert.match(e.meaning, /^# \S.{10,}$/, `${e.name}: a line of meaning`);
      assert.doesNotMatch(e.meaning, /^# [A-Z][A-Z0-9_]*=/, `${e.name}: a line of meaning, not another variable`);
    }
  });

  test("each value written is the schema's default; only variables without one (or an empty list) are empty", () => {
    for (const { name, value } of entries()) {
      const field = fields[name]!;
      const byDefault = field.safeParse(undefined).data;
      if (value === '') {
        // Empty counts as unset: right only where nothing else could be written (no default, or an empty list).
        const empty = byDefault === undefined || (Array.isArray(byDefault) && byDefault.length === 0);
        assert.ok(empty, `${name} shows its default`);
      } else {
        assert.deepEqual(field.safeParse(value).data, byDefault, `${name}=${value} is the default`);
      }
    }
  });

  test('copied to .env as it is, or with every line uncommented, it gives the default configuration', () => {
    const text = read('.env.example');
    // node:util's parseEnv is what reads .env (readEnvironment in src/config.ts).
    assert.deepEqual(loadConfig(parseEnv(text)), loadConfig({}));
    const uncommented = text.replace(/^# ([A-Z][A-Z0-9_]*=)/gm, '$1');
    const all = parseEnv(uncommented);
    assert.equal(Object.keys(all).length, Object.keys(envSchema.shape).length, 'every line read');
    assert.equal(all.SCHEDULE_HEALTH_CHECK, '*/5 * * * *', 'a cron value with spaces, unquoted, read whole');
    assert.deepEqual(loadConfig(all), loadConfig({}));
  });
});
