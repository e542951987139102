/**
 * The deploy files, checked without a Docker engine (none runs on these machines, so no image is built or run
 * here): the Dockerfile read by a small parser (test/support/dockerfile.ts) that is shown to catch broken copies,
 * its image's environment validated by the real configuration; docker-compose.yml parsed as YAML (PyYAML, as the
 * project has no YAML library and needs none; `docker compose config` would need the Compose plugin, not installed
 * here); the systemd unit by `systemd-analyze verify`, shown to fail on a broken copy.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.ts';
import {
  HEAP_FLAGS,
  dockerfileProblems,
  envOf,
  execForm,
  parseDockerfile,
  stagesOf,
  type Stage,
} from './support/dockerfile.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const DOCKERFILE = read('Dockerfile');
const [build, runtime] = stagesOf(parseDockerfile(DOCKERFILE)) as [Stage, Stage];
const args = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
/** The image's SHUTDOWN_TIMEOUT_S: the compose file's grace period is judged against it. */
const imageShutdownS = Number(envOf(runtime).SHUTDOWN_TIMEOUT_S);
/** The bots' own stop may take this long before SHUTDOWN_TIMEOUT_S counts (src/service.ts), and closing needs a bit. */
const BOTS_STOP_S = 5;
const CLOSING_S = 2;

describe('Dockerfile', () => {
  test('parses: known instructions, Node 20 stages, exec-form CMD and HEALTHCHECK, a non-root USER before CMD', () => {
    assert.deepEqual(dockerfileProblems(DOCKERFILE), []);
    assert.deepEqual(
      [build.name, build.from, runtime.name, runtime.from],
      ['build', 'node:20-bookworm-slim', 'runtime', 'node:20-bookworm-slim'],
    );
    assert.deepEqual(execForm(args(runtime, 'CMD').at(-1)!), ['node', ...HEAP_FLAGS, 'bin/tg-janitor.js', 'start']);
    assert.deepEqual(args(runtime, 'USER'), ['node']);
  });

  test('the parser is real: each broken copy is refused', () => {
    const broken: [string, string | RegExp, string, RegExp][] = [
      ['shell-form CMD', /^CMD .*$/m, 'CMD node bin/tg-janitor.js start', /CMD is not in exec form/],
      ['npm in CMD', /^CMD .*$/m, 'CMD ["npm", "start"]', /starts npm/],
      ['broken JSON', /^CMD .*$/m, 'CMD ["node", "bin/tg-janitor.js" "start"]', /not in exec form/],
      ['root', /^USER node$/m, 'USER root', /USER root is root/],
      ['no USER', /^USER node$/m, '', /no USER before CMD/],
      ['USER after CMD', /^USER node\n([^]*)$/m, '$1USER node\n', /no USER before CMD/],
      ['no HEALTHCHECK', /^HEALTHCHECK [^]*?\n(?=CMD|#)/m, '', /no HEALTHCHECK/],
      ['unknown instruction', /^COPY \. \.$/m, 'COPPY . .', /unknown instruction COPPY/],
      ['Node 18', 'FROM node:20-bookworm-slim AS runtime', 'FROM node:18-slim AS runtime', /not a Node 20 image/],
      ['unknown stage', '--from=build /app/dist', '--from=builder /app/dist', /no earlier stage builder/],
    ];
    for (const [what, from, to, problem] of broken) {
      const copy = DOCKERFILE.replace(from, to);
      assert.notEqual(copy, DOCKERFILE, `${what}: the copy differs`);
      assert.match(dockerfileProblems(copy).join('\n'), problem, what);
    }
  });

  test('build stage: build tools for the native addon, npm ci, the build, dev dependencies pruned', () => {
    const runs = args(build, 'RUN').join('\n');
    const installed = /apt-get install ([^&]*)/.exec(runs)?.[1]?.split(/\s+/) ?? [];
    for (const tool of ['python3', 'make', 'g++']) assert.ok(installed.includes(tool), `${tool} installed`);
    assert.match(runs, /npm ci\b/);
    assert.match(runs, /npm rebuild better-sqlite3/, 'the native addon built (scripts were off for npm ci)');
    assert.match(runs, /npm run build && npm prune --omit=dev/);
  });

  test('runtime stage: production files from the build only, no compiler, a /data volume, port and environment', () => {
    const copied = args(runtime, 'COPY').map((a) => /--from=build\s+\/app\/(\S+)/.exec(a)?.[1]);
    assert.deepEqual(copied.sort(), ['bin', 'dist', 'node_modules', 'package.json']);
    assert.doesNotMatch(args(runtime, 'RUN').join('\n'), /apt-get|npm|g\+\+/, 'nothing installed or built here');
    assert.deepEqual(args(runtime, 'VOLUME'), ['["/data"]']);
    assert.deepEqual(args(runtime, 'EXPOSE'), ['8080']);
    // The image's environment is a valid configuration, and says what the image means.
    const config = loadConfig(envOf(runtime));
    assert.equal(config.databaseUrl, 'sqlite:/data/tg-janitor.db');
    assert.equal(config.backupDir, '/data/backups');
    assert.equal(`${config.httpHost}:${config.httpPort}`, '0.0.0.0:8080', 'EXPOSE 8080 is where it listens');
    const onPlatform = loadConfig({ ...envOf(runtime), PORT: '5000' });
    assert.equal(`${onPlatform.httpHost}:${onPlatform.httpPort}`, '0.0.0.0:5000', "a platform's PORT is honoured");
    // Docker sends SIGKILL 10 s after SIGTERM unless told otherwise: the runs' grace and closing fit inside.
    assert.ok(imageShutdownS + CLOSING_S <= 10, `SHUTDOWN_TIMEOUT_S=${imageShutdownS} fits docker stop's 10 s`);
  });

  test('.dockerignore keeps local and secret files out, and nothing the build needs', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    for (const entry of ['node_modules', 'dist', 'data', 'test-artifacts', '.git', '.env']) {
      assert.ok(ignored.includes(entry), `${entry} ignored`);
    }
    for (const needed of ['package.json', 'package-lock.json', 'src', 'bin', 'tsconfig.json']) {
      assert.ok(!ignored.includes(needed), `${needed} kept`);
    }
  });
});

/** docker-compose.yml as PyYAML reads it (Debian's python3-yaml: this machine's, no npm dependency for one file). */
function composeFile(): Record<string, unknown> {
  const py = 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))';
  const r = spawnSync('python3', ['-c', py], { input: read('docker-compose.yml'), encoding: 'utf8' });
  assert.ifError(r.error);
  assert.equal(r.status, 0, `docker-compose.yml is YAML: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** `${VAR:-default}` as Compose interpolates it with VAR unset. */
const interpolate = (s: string) => s.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1] ?? NaN);

describe('docker-compose.yml', () => {
  test('the service from the Dockerfile on PostgreSQL 16, started once PostgreSQL is healthy', () => {
    const doc = composeFile();
    interface Service {
      build?: string;
      image?: string;
      environment: Record<string, string>;
      env_file?: { path: string; required: boolean }[];
      volumes: string[];
      ports?: string[];
      depends_on?: Record<string, { condition: string }>;
      healthcheck?: { test: string[] };
      stop_grace_period?: string;
    }
    const { services, volumes } = doc as { services: Record<string, Service>; volumes: Record<string, unknown> };
    const { janitor, postgres } = services as { janitor: Service; postgres: Service };
    assert.equal(janitor.build, '.');
    assert.match(postgres.image!, /^postgres:16(\.|-|$)/);
    assert.deepEqual(janitor.depends_on, { postgres: { condition: 'service_healthy' } });
    assert.match(postgres.healthcheck!.test.join(' '), /pg_isready/);
    // Named volumes, declared: the data outlives the containers.
    for (const [s, path] of [
      [janitor, '/data'],
      [postgres, '/var/lib/postgresql/data'],
    ] as const) {
      const name = s.volumes.map((v) => v.split(':')).find(([, p]) => p === path)?.[0];
      assert.ok(name && Object.hasOwn(volumes, name), `a named volume on ${path}`);
    }
    // .env gives BOT_TOKEN and the rest; the compose file's own settings win over it (Compose's precedence).
    assert.deepEqual(janitor.env_file, [{ path: '.env', required: false }]);
    const env = Object.fromEntries(Object.entries(janitor.environment).map(([k, v]) => [k, interpolate(String(v))]));
    const config = loadConfig(env);
    const db = new URL(config.databaseUrl);
    const pgEnv = Object.fromEntries(Object.entries(postgres.environment).map(([k, v]) => [k, interpolate(v)]));
    assert.deepEqual(
      [db.protocol, db.hostname, db.username, db.password, db.pathname],
      ['postgres:', 'postgres', pgEnv.POSTGRES_USER, pgEnv.POSTGRES_PASSWORD, `/${pgEnv.POSTGRES_DB}`],
    );
    assert.equal(config.httpHost, '0.0.0.0', 'reachable through the published port');
    assert.ok(
      janitor.ports!.some((p) => p.endsWith(`:${config.httpPort}`)),
      'the published port is the one it serves',
    );
    // The grace period covers the image's SHUTDOWN_TIMEOUT_S, the bots' own stop and the closing.
    const grace = seconds(janitor.stop_grace_period!);
    assert.ok(grace >= imageShutdownS + BOTS_STOP_S + CLOSING_S, `stop_grace_period ${grace} s`);
  });
});

describe('deploy/tg-janitor.service', () => {
  const UNIT = read('deploy/tg-janitor.service');

  /**
   * `systemd-analyze verify` on `text` saved as tg-janitor.service in a temporary folder: the problems it reports,
   * empty when none. It exits non-zero only for errors that stop the unit loading (a missing ExecStart binary);
   * a value it cannot parse or an unknown key it ignores with a warning and exit 0 — so its warnings about this
   * unit count too. It checks that ExecStart's binary is executable: where node is not /usr/bin/node (the unit's
   * path for Debian's and NodeSource's packages) that path is replaced by this Node's, the only change. Man pages
   * and generators are off: they concern the machine, not the unit.
   */
  function verify(text: string): string[] {
    let unit = text;
    try {
      accessSync('/usr/bin/node', constants.X_OK);
    } catch {
      unit = unit.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `);
    }
    const dir = mkdtempSync(join(tmpdir(), 'tgj-unit-'));
    try {
      writeFileSync(join(dir, 'tg-janitor.service'), unit);
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', './tg-janitor.service'], {
        cwd: dir,
        encoding: 'utf8',
      });
      if (r.error) throw r.error;
      const warnings = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes('tg-janitor'));
      return r.status === 0 ? warnings : [`exit ${r.status}`, ...warnings];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('systemd-analyze verify passes, and fails a broken copy', () => {
    assert.deepEqual(verify(UNIT), []);
    const badValue = UNIT.replace(/^Restart=on-failure$/m, 'Restart=sometimes');
    assert.match(verify(badValue).join('\n'), /restart specifier.*sometimes/);
    const unknownKey = UNIT.replace(/^NoNewPrivileges=/m, 'NoNewPrivilege=');
    assert.match(verify(unknownKey).join('\n'), /Unknown key 'NoNewPrivilege'/);
    const noBinary = UNIT.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/node');
    assert.match(verify(noBinary).join('\n'), /exit 1/);
  });

  test('runs the service as its own user, stops it within its grace, and writes only its data folder', () => {
    const service: Record<string, string | undefined> = Object.fromEntries(
      UNIT.slice(UNIT.indexOf('[Service]'), UNIT.indexOf('[Install]'))
        .split('\n')
        .filter((l) => /^[A-Za-z]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    assert.ok(['simple', 'exec'].includes(service.Type!));
    assert.equal(service.User, 'tg-janitor');
    assert.equal(service.WorkingDirectory, '/opt/tg-janitor');
    assert.equal(service.EnvironmentFile, '/etc/tg-janitor.env');
    assert.equal(service.ExecStart, `/usr/bin/node ${HEAP_FLAGS.join(' ')} /opt/tg-janitor/bin/tg-janitor.js start`);
    assert.equal(service.Restart, 'on-failure');
    assert.equal(service.KillSignal, 'SIGTERM');
    const stopS = Number(service.TimeoutStopSec);
    const defaults = loadConfig({});
    assert.ok(stopS >= defaults.shutdownTimeoutS + BOTS_STOP_S + CLOSING_S, `TimeoutStopSec=${stopS}`);
    for (const [k, v] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', PrivateTmp: 'yes' })) {
      assert.equal(service[k], v, k);
    }
    // The default database and backups, resolved from the working directory, lie in the one writable folder.
    const writable = service.ReadWritePaths!.split(/\s+/);
    for (const path of [defaults.databaseUrl.replace(/^sqlite:/, ''), defaults.backupDir]) {
      const abs = resolve(service.WorkingDirectory, path);
      assert.ok(
        writable.some((w) => abs.startsWith(`${w}/`)),
        `${abs} is writable`,
      );
    }
    assert.match(UNIT, /^\[Install\]\nWantedBy=multi-user\.target$/m);
  });
});
