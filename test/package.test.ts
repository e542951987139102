/**
 * The package as a bot author gets it: `npm pack`, installed into an empty folder, used from plain Node ESM and
 * type-checked from a strict TypeScript 5.9 project (`module: NodeNext`). Dependencies come from npm's cache
 * (`--offline`: no test reaches the network); better-sqlite3's native addon is the one this checkout built (its
 * install script would compile it again, which is better-sqlite3's business, not this package's).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const dir = mkdtempSync(join(tmpdir(), 'tgj-package-'));
const app = join(dir, 'app');

const npm = (args: string[], cwd: string) =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });

before(() => {
  // dist/ is built by `npm test` (and `prepare`); packing must not build again.
  const out = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  const [{ filename, files }] = JSON.parse(out) as [{ filename: string; files: { path: string }[] }];
  const paths = files.map((f) => f.path);
  assert.ok(
    paths.includes('dist/index.js') && paths.includes('dist/index.d.ts') && paths.includes('bin/tg-janitor.js'),
  );
  assert.ok(!paths.some((p) => p.startsWith('src/') || p.startsWith('test/')), 'sources and tests stay out');
  mkdirSync(app);
  // A lockfile for the bot's folder made from this checkout's: `npm ci --offline` then takes every dependency from
  // npm's cache (filled by this checkout's own `npm ci`) without asking the registry anything.
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const deps = { 'tg-janitor': `file:../${filename}` };
  const devDeps = { '@types/node': pkg.devDependencies['@types/node']! };
  const typesNode = ['node_modules/@types/node', 'node_modules/undici-types'];
  const packages: Record<string, object> = {
    '': { name: 'my-bot', dependencies: deps, devDependencies: devDeps },
    'node_modules/tg-janitor': {
      version: pkg.version,
      resolved: `file:../${filename}`,
      dependencies: pkg.dependencies,
      bin: { 'tg-janitor': 'bin/tg-janitor.js' },
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path || (entry.dev && !typesNode.includes(path))) continue;
    packages[path] = { ...entry, dev: typesNode.includes(path) };
  }
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'my-bot', private: true, type: 'module', dependencies: deps, devDependencies: devDeps }),
  );
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'my-bot', lockfileVersion: 3, packages }));
  npm(['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], app);
  cpSync(join(ROOT, 'node_modules/better-sqlite3/build'), join(app, 'node_modules/better-sqlite3/build'), {
    recursive: true,
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the packed package works from plain Node ESM: createJanitor, a recorded run, the CLI; internals stay out', () => {
  writeFileSync(
    join(app, 'main.mjs'),
    `import * as lib from 'tg-janitor';
import { createJanitor, JOB_NAMES } from 'tg-janitor';
const janitor = await createJanitor({ databaseUrl: 'sqlite:${join(app, 'bot.db')}', config: { logLevel: 'silent' } });
const r = await janitor.run('token-cleanup');
await janitor.stop();
let internal = 'hidden';
try { await import('tg-janitor/dist/janitor.js'); internal = 'reachable'; } catch {}
console.log(JSON.stringify({ status: r.status, summary: r.summary, jobs: JOB_NAMES.length, exports: Object.keys(lib).sort(), internal }));
`,
  );
  const r = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(out, {
    status: 'ok',
    summary: { deleted: 0 },
    jobs: 8,
    exports: [
      'AUTO_DELETE_METHODS',
      'AutoDeleteError',
      'ConfigError',
      'FakeClock',
      'JOB_NAMES',
      'MAX_DELAY_S',
      'autoDelete',
      'createJanitor',
      'createMetrics',
      'parseDelay',
    ],
    internal: 'hidden',
  });
  const help = spawnSync(join(app, 'node_modules', '.bin', 'tg-janitor'), ['--help'], { cwd: app, encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: tg-janitor <command>/);
  assert.ok(readdirSync(join(app, 'node_modules', 'tg-janitor')).includes('dist'));
});

test('a strict NodeNext TypeScript 5.9 project type-checks against it, and a wrong option type does not compile', () => {
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        types: ['node'],
        // As `tsc --init` sets it: grammY's own declarations want @types/node-fetch otherwise. The checks below that
        // must fail show that this package's types are real, not `any`.
        skipLibCheck: true,
      },
      files: ['good.ts'],
    }),
  );
  writeFileSync(
    join(app, 'good.ts'),
    `import { createJanitor, JOB_NAMES, type JanitorOptions, type JobName, type RunResultOf } from 'tg-janitor';
const options: JanitorOptions = { databaseUrl: 'sqlite:./bot.db', config: { timezone: 'Europe/Berlin', schedules: { stats: 'off' } } };
const janitor = await createJanitor(options);
const r: RunResultOf<'message-deleter'> = await janitor.run('message-deleter');
if (r.status === 'ok') console.log(r.summary.messages_deleted.toFixed(0));
const job: JobName = JOB_NAMES[0];
const id: number = await janitor.scheduleDeletion({ chatId: 1, messageIds: [2], afterMinutes: 30 });
console.log(job, id);
await janitor.stop();
`,
  );
  const good = spawnSync(process.execPath, [TSC, '-p', '.'], { cwd: app, encoding: 'utf8' });
  assert.equal(good.status, 0, good.stdout + good.stderr);
  writeFileSync(
    join(app, 'bad.ts'),
    `import { createJanitor } from 'tg-janitor';
await createJanitor({ databaseUrl: 42 });
const r = await (await createJanitor()).run('message-deleter');
if (r.status === 'ok') { const s: string = r.summary.messages_deleted; console.log(s); }
await (await createJanitor()).run('no-such-job');
`,
  );
  writeFileSync(join(app, 'tsconfig.bad.json'), JSON.stringify({ extends: './tsconfig.json', files: ['bad.ts'] }));
  const bad = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.bad.json'], { cwd: app, encoding: 'utf8' });
  assert.equal(bad.status, 2, 'the wrong option type fails to compile');
  const errors = bad.stdout.split('\n').filter((l) => l.includes('error TS'));
  assert.equal(errors.length, 3, bad.stdout);
  assert.match(errors[0]!, /bad\.ts\(2,.*TS2322: Type 'number' is not assignable to type 'string'/);
  assert.match(errors[1]!, /bad\.ts\(4,.*TS2322: Type 'number' is not assignable to type 'string'/);
  assert.match(errors[2]!, /bad\.ts\(5,.*TS2345: Argument of type '"no-such-job"'/);
});
