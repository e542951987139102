/**
 * createJanitor checks its options with the environment's schema before it opens anything: a bad option is named
 * (as the library spells it), what is accepted is said, and a secret is never echoed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, configFromOptions, loadConfig } from '../src/config.ts';
import { createJanitor, type JanitorOptions } from '../src/janitor.ts';
import { createLogger } from '../src/log.ts';

const logger = createLogger({ level: 'silent' });

/** Asserts that createJanitor refuses `config` with a ConfigError naming `option` and matching `message`. */
async function refuses(config: unknown, option: string, message: RegExp, extra: Partial<JanitorOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-options-'));
  try {
    const databaseUrl = `sqlite:${join(dir, 'data', 'janitor.db')}`;
    await assert.rejects(
      createJanitor({ databaseUrl, logger, ...extra, config: config as JanitorOptions['config'] }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, `a ConfigError, not ${String(e)}`);
        assert.equal(e.variable, option);
        assert.match(e.message, message);
        return true;
      },
    );
    assert.equal(existsSync(join(dir, 'data')), false, 'nothing was opened or created');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a value the environment would refuse is refused as an option, named and with what is accepted', async () => {
  await refuses(
    { timezone: 'Nope' },
    'config.timezone',
    /^config\.timezone="Nope" is not valid: expected an IANA time zone name/,
  );
  await refuses(
    { telegramRate: -1 },
    'config.telegramRate',
    /^config\.telegramRate=-1 is not valid: expected a number from 0 to 10000$/,
  );
  await refuses(
    { jobLeaseS: 1.5 },
    'config.jobLeaseS',
    /^config\.jobLeaseS=1\.5 is not valid: expected a whole number from 5 to 3600$/,
  );
  await refuses({ httpPort: Number.NaN }, 'config.httpPort', /^config\.httpPort=NaN is not valid/);
  await refuses({ tokenCleanupHours: [0, 24] }, 'config.tokenCleanupHours', /hours 0-23; "24" is not one/);
  await refuses({ tokenCleanupHours: [] }, 'config.tokenCleanupHours', /expected at least one hour 0-23/);
  await refuses(
    { logLevel: 'loud' },
    'config.logLevel',
    /expected one of fatal, error, warn, info, debug, trace, silent/,
  );
});

test('unknown keys, wrong types and unknown jobs are refused', async () => {
  await refuses(
    { timeZone: 'UTC' },
    'config.timeZone',
    /^config\.timeZone is not an option; the options are databaseUrl, timezone, /,
  );
  await refuses(
    { telegramRate: '25' },
    'config.telegramRate',
    /^config\.telegramRate is not valid: expected a number, got a string$/,
  );
  await refuses({ catchUpMissed: 'yes' }, 'config.catchUpMissed', /expected true or false, got a string/);
  await refuses({ adminIds: '1,2' }, 'config.adminIds', /expected an array of numbers, got a string/);
  await refuses({ tokenCleanupHours: ['3'] }, 'config.tokenCleanupHours', /expected an array of numbers, got an array/);
  await refuses({ timezone: null }, 'config.timezone', /expected a string, got null/);
  await refuses('UTC', 'config', /config must be an object of options, not a string/);
});

test('schedules are checked per job, and databaseUrl too', async () => {
  await refuses(
    { schedules: { 'token-cleanup': 'every day' } },
    "config.schedules['token-cleanup']",
    /^config\.schedules\['token-cleanup'\]="every day" is not valid: expected a cron expression/,
  );
  await refuses(
    { schedules: { 'token-cleanup': 5 } },
    "config.schedules['token-cleanup']",
    /expected a string, got a number/,
  );
  await refuses(
    { schedules: { cleanup: '* * * * *' } },
    "config.schedules['cleanup']",
    /is not a job; the jobs are token-cleanup, message-deleter, broadcast-deleter, token-count-reset/,
  );
  await refuses({ schedules: 'off' }, 'config.schedules', /must be an object of job name/);
  const dir = mkdtempSync(join(tmpdir(), 'tgj-options-'));
  try {
    await assert.rejects(createJanitor({ databaseUrl: 'mysql://app:topsecret@db/prod', logger }), (e: Error) => {
      assert.match(e.message, /^databaseUrl is not valid: expected sqlite:<path> or postgres:/);
      assert.doesNotMatch(e.message, /topsecret/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await refuses(
    { databaseUrl: 'postgres://u:hunter22@h:99999/db' },
    'config.databaseUrl',
    /^config\.databaseUrl is not valid/,
  );
});

test('secret values are never echoed, and rules across options name the options', async () => {
  const secret = 'SECRETVALUE-9f3k';
  for (const [key, value] of [
    ['botToken', `not a token ${secret}`],
    ['adminBotToken', `x${secret}`],
    ['webhookSecret', `${secret}!`],
    ['shortenerApiUrl', `https://s.example/api?key=${secret}`],
  ] as const) {
    await refuses(
      { [key]: value },
      `config.${key}`,
      new RegExp(`^config\\.${key} is not valid: expected (?!.*${secret})`),
    );
  }
  await refuses(
    { statusToken: 'short' },
    'config.statusToken',
    /^config\.statusToken is not valid: expected at least 8 characters$/,
  );
  await refuses(
    { webhookUrl: 'https://x.example/tg', botToken: '1:abc' },
    'config.webhookSecret',
    /^config\.webhookSecret is required with config\.webhookUrl/,
  );
});

test('a configuration the environment produced passes through unchanged (the service hands its own)', () => {
  const env = {
    DATABASE_URL: 'postgres://app:pw@db:5432/prod?schema=janitor',
    TIMEZONE: 'Asia/Kolkata',
    TOKEN_EXPIRY_DAYS: '0.5',
    TOKEN_CLEANUP_HOURS: '15,3',
    BOT_TOKEN: '123456:ABC-def_1',
    ADMIN_IDS: '7,8',
    LOG_FORMAT: 'pretty',
    STORAGE_CHANNEL_ID: '-1001234567890',
    PUBLIC_URL: 'https://files.example.com/',
    SHORTENER_API_URL: 'https://s.example/api?url={url}',
    SHORTENER_DOMAINS: 'gplinks.co, Example.org',
    WEBHOOK_URL: 'https://files.example.com/tg/x',
    WEBHOOK_SECRET: 'hook-secret',
    STATUS_TOKEN: 'status-token-1',
    CATCH_UP_MISSED: 'no',
    SCHEDULE_MESSAGE_DELETER: '*/5 * * * * *',
    SCHEDULE_BROADCAST_DELETER: 'off',
  };
  const config = loadConfig(env);
  assert.deepEqual(configFromOptions(config), config);
  assert.deepEqual(configFromOptions({}), loadConfig({}));
  assert.equal(configFromOptions({ tokenCleanupHours: [15, 3] }).schedules['token-cleanup'], '0 3,15 * * *');
  assert.equal(
    configFromOptions({ databaseUrl: 'sqlite:a.db' }, 'sqlite:b.db').databaseUrl,
    'sqlite:b.db',
    'databaseUrl wins',
  );
});
