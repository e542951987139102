import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrammyError, HttpError } from 'grammy';
import { classifyCopyError, classifyError, classifyResponse, isIdempotent } from '../src/telegram/errors.ts';
import { parseStart, randomId, startLink, verifyPayload } from '../src/telegram/links.ts';
import { decide, refererAllowed } from '../src/http/verify.ts';
import { parseBroadcastDuration, parseLinkRange, parseWhole } from '../src/bot/admin.ts';
import { MissingChatWatch } from '../src/telegram/errors.ts';
import { faultBackoffMs } from '../src/store/faults.ts';
import { ROW_BACKOFF } from '../src/jobs/message-deleter.ts';
import { backoff } from '../src/backoff.ts';
import { describeUrl } from '../src/store/db.ts';
import { redact } from '../src/log.ts';
import { loadConfig, validDatabaseUrl } from '../src/config.ts';
import type { Token } from '../src/store/schema.ts';

test('every Bot API outcome maps to one action', () => {
  const cases: [number, string, string][] = [
    [400, 'Bad Request: message to delete not found', 'gone'],
    [400, "Bad Request: message can't be deleted for everyone", 'undeletable'],
    [400, "Bad Request: message can't be deleted", 'undeletable'],
    [403, 'Forbidden: bot was blocked by the user', 'unreachable'],
    [403, 'Forbidden: user is deactivated', 'unreachable'],
    [400, 'Bad Request: chat not found', 'unreachable'],
    [403, 'Forbidden: bot was kicked from the group chat', 'unreachable'],
    [429, 'Too Many Requests: retry after 5', 'transient'],
    [500, 'Internal Server Error', 'transient'],
    [502, 'Bad Gateway', 'transient'],
    [401, 'Unauthorized', 'fatal'],
    [404, 'Not Found', 'fatal'],
    [400, 'Bad Request: message identifiers are not specified', 'undeletable'],
  ];
  for (const [code, description, kind] of cases)
    assert.equal(classifyResponse(code, description).kind, kind, `${code} ${description}`);
  assert.equal(classifyResponse(429, 'Too Many Requests', 7).retryAfter, 7);
  assert.equal(
    classifyError(
      new GrammyError(
        'x',
        { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' },
        'sendMessage',
        {},
      ),
    ).kind,
    'unreachable',
  );
  assert.equal(
    classifyError(new HttpError("Network request for 'deleteMessages' failed!", new Error('ECONNRESET'))).kind,
    'transient',
  );
  assert.equal(classifyError(new Error('The operation was aborted')).kind, 'transient');
});

test("a failed copy: only the recipient's own refusal is theirs, only an answer says nothing was sent", () => {
  const refused = (code: number, description: string) =>
    classifyCopyError(new GrammyError('x', { ok: false, error_code: code, description }, 'copyMessage', {})).failure;
  assert.equal(refused(403, 'Forbidden: bot was blocked by the user'), 'recipient');
  assert.equal(refused(403, 'Forbidden: user is deactivated'), 'recipient');
  assert.equal(refused(400, 'Bad Request: message to copy not found'), 'missing');
  assert.equal(
    refused(400, 'Bad Request: chat not found'),
    'source',
    'the storage channel, not the user who just wrote',
  );
  assert.equal(refused(403, 'Forbidden: bot is not a member of the channel chat'), 'source');
  assert.equal(refused(429, 'Too Many Requests: retry after 5'), 'refused');
  assert.equal(refused(502, 'Bad Gateway'), 'unknown', 'a 5xx may come after the copy was made');
  assert.equal(refused(401, 'Unauthorized'), 'fatal');
  assert.equal(
    classifyCopyError(new HttpError("Network request for 'copyMessage' failed!", new Error('timeout'))).failure,
    'unknown',
  );
  const refusedConnection = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  assert.equal(
    classifyCopyError(new HttpError("Network request for 'copyMessage' failed!", refusedConnection)).failure,
    'refused',
    'the request never left: nothing sent',
  );
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  assert.equal(
    classifyCopyError(new HttpError("Network request for 'copyMessage' failed!", reset)).failure,
    'unknown',
    'cut after it was sent: maybe copied',
  );
  for (const m of ['deleteMessages', 'deleteMessage', 'editMessageText', 'getMe', 'getUpdates', 'setWebhook'])
    assert.ok(isIdempotent(m), m);
  for (const m of ['sendMessage', 'copyMessage', 'copyMessages', 'forwardMessage', 'sendDocument'])
    assert.ok(!isIdempotent(m), m);
});

test('/start payloads and deep links', () => {
  assert.deepEqual(parseStart(''), { kind: 'none' });
  assert.deepEqual(parseStart('verify_AbC123xyz9_123456789'), {
    kind: 'verify',
    tokenUniqueId: 'AbC123xyz9',
    userId: 123456789,
  });
  assert.deepEqual(parseStart('AbCd1234'), { kind: 'file', uniqueId: 'AbCd1234' });
  assert.deepEqual(parseStart('bad payload!'), { kind: 'invalid' });
  assert.equal(startLink('my_bot', 'x y'), 'https://t.me/my_bot?start=x%20y');
  const id = randomId(10);
  assert.match(id, /^[A-Za-z0-9]{10}$/);
  assert.ok(
    verifyPayload(randomId(10), 9_007_199_254_740_991).length <= 64,
    'a start parameter holds at most 64 characters',
  );
});

test('the verify decision: unknown, used, expired, too soon, wrong referer, verified', () => {
  const now = Date.UTC(2026, 10, 29, 12);
  const token = (over: Partial<Token> = {}): Token => ({
    token: 't',
    unique_id: 'u',
    created_by: 1,
    status: 'not_used',
    created_at: now - 300_000,
    expires_at: now + 86400_000,
    file_unique_id: null,
    direct_link: 0,
    ...over,
  });
  const o = { bypassMinSeconds: 120, shortenerDomains: ['short.example'] };
  assert.equal(decide(undefined, now, undefined, o), 'unknown');
  assert.equal(decide(token({ status: 'verified' }), now, 'https://short.example/', o), 'used');
  assert.equal(decide(token({ expires_at: now - 1 }), now, 'https://short.example/', o), 'expired');
  assert.equal(decide(token({ created_at: now - 60_000 }), now, 'https://short.example/', o), 'bypassed');
  assert.equal(decide(token(), now, undefined, o), 'bypassed');
  assert.equal(decide(token(), now, 'https://evil.example/', o), 'bypassed');
  assert.equal(decide(token(), now, 'https://go.short.example/a', o), 'verified');
  assert.equal(
    decide(token(), now, undefined, { bypassMinSeconds: 120, shortenerDomains: [] }),
    'verified',
    'no domains: no referer check',
  );
  assert.equal(
    decide(token({ direct_link: 1 }), now, undefined, o),
    'verified',
    'sent the direct link (shortener down): no referer to expect',
  );
  assert.equal(
    decide(token({ direct_link: 1, created_at: now - 60_000 }), now, undefined, o),
    'bypassed',
    'but still not too soon',
  );
  assert.equal(refererAllowed('https://notshort.example/', ['short.example']), false, 'a suffix is not a subdomain');
  assert.equal(refererAllowed('not a url', ['short.example']), false);
});

test('admin arguments are checked', () => {
  assert.equal(parseWhole('30', 1, 2880), 30);
  for (const bad of ['0', '2881', '-5', '1.5', 'abc', '', '1e3']) assert.equal(parseWhole(bad, 1, 2880), null, bad);
  assert.deepEqual(parseLinkRange('7'), [7]);
  assert.deepEqual(parseLinkRange(' 3 - 5 '), [3, 4, 5]);
  assert.match(parseLinkRange('5-3') as string, /first ≤ last/);
  assert.match(parseLinkRange('1-101') as string, /at most 100/);
  assert.match(parseLinkRange('x') as string, /Usage/);
});

test('back-off: 30 s, doubling, capped at 15 min', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((n) => backoff(n, ROW_BACKOFF)),
    [30_000, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000],
  );
});

test('secrets are masked: database URLs, bot tokens in any text', () => {
  assert.equal(
    describeUrl('postgres://app:p@ss:w0rd@db:5432/prod?password=x&schema=s'),
    'postgres://app:***@db:5432/prod?schema=s',
  );
  assert.equal(
    redact('call https://api.telegram.org/bot123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ/getMe', []),
    'call https://api.telegram.org/bot***/getMe',
  );
  assert.equal(redact('the secret hook-secret-1 leaked', ['hook-secret-1']), 'the secret *** leaked');
  for (const bad of [
    'sqlite:',
    'postgres://',
    'postgres://u@h:99999/db',
    'mysql://x',
    'postgres://h/db?schema=a;drop',
    'postgres://h/db?schema=Upper',
  ])
    assert.equal(validDatabaseUrl(bad), false, bad);
  assert.throws(
    () => loadConfig({ DATABASE_URL: 'postgres://u:topsecret@h:99999/db' }),
    (e: Error) => /DATABASE_URL/.test(e.message) && !/topsecret/.test(e.message),
  );
  assert.throws(() => loadConfig({ WEBHOOK_URL: 'https://x.example/hook' }), /WEBHOOK_SECRET is required/);
  const hook = { BOT_TOKEN: '1:abc', WEBHOOK_SECRET: 's' };
  assert.throws(
    () => loadConfig({ ...hook, WEBHOOK_URL: 'https://x.example' }),
    /path must not be one of \/, \/verify/,
  );
  assert.throws(() => loadConfig({ ...hook, WEBHOOK_URL: 'https://x.example/healthz' }), /WEBHOOK_URL/);
  assert.throws(() => loadConfig({ WEBHOOK_URL: 'https://x.example/tg', WEBHOOK_SECRET: 's' }), /BOT_TOKEN is not/);
  assert.throws(
    () => loadConfig({ SHORTENER_API_URL: 'https://gplinks.in/api?api=MY_SECRET_KEY&url=' }),
    (e: Error) => /SHORTENER_API_URL/.test(e.message) && !/MY_SECRET_KEY/.test(e.message),
  );
});

test("the library derives token cleanup's schedule from the hours it is given, unless given a schedule", async () => {
  const { createJanitor } = await import('../src/janitor.ts');
  const { createLogger } = await import('../src/log.ts');
  const { createTestDb } = await import('./support/db.ts');
  const tdb = await createTestDb('sqlite');
  try {
    const logger = createLogger({ level: 'silent' });
    const a = await createJanitor({ store: await tdb.open(), config: { tokenCleanupHours: [3, 15] }, logger });
    assert.equal(a.engine.definitions.find((d) => d.name === 'token-cleanup')!.schedule, '0 3,15 * * *');
    const b = await createJanitor({
      store: await tdb.open(),
      config: { tokenCleanupHours: [3], schedules: { 'token-cleanup': '*/5 * * * *' } },
      logger,
    });
    assert.equal(b.engine.definitions.find((d) => d.name === 'token-cleanup')!.schedule, '*/5 * * * *');
  } finally {
    await tdb.drop();
  }
});

test('/broadcast durations: a bare number is hours, or 30m, 2h, 1h30m; 1 minute to 47 hours', () => {
  const minutes = (a: string) => {
    const d = parseBroadcastDuration(a);
    return 'minutes' in d ? d.minutes : d.error;
  };
  assert.equal(minutes('2'), 120);
  assert.equal(minutes('30m'), 30);
  assert.equal(minutes('2h'), 120);
  assert.equal(minutes(' 1H30M '), 90);
  assert.equal(minutes('1m'), 1);
  assert.equal(minutes('47h'), 47 * 60);
  assert.equal(minutes('2820m'), 2820);
  assert.match(String(minutes('2821m')), /too long: at most 47 hours/);
  assert.match(String(minutes('48')), /48 h is too long/);
  assert.match(String(minutes('0m')), /At least 1 minute/);
  assert.match(String(minutes('0')), /At least 1 minute/);
  assert.match(String(minutes('1.5h')), /is not a duration/);
  assert.match(String(minutes('-2')), /is not a duration/);
  assert.match(String(minutes('')), /Give the duration/);
});

test('the "chat not found" watch: 20 distinct chats with no success between trip it; a success settles the held', () => {
  const w = new MissingChatWatch<string>(20);
  for (let i = 0; i < 19; i++) assert.equal(w.hold(i, `row${i}`), false);
  assert.equal(w.hold(3, 'again'), false, 'the same chat twice is still 19 chats');
  assert.deepEqual(w.success().length, 20, 'a success hands back every held item as single answers');
  for (let i = 0; i < 19; i++) w.hold(100 + i, `r${i}`);
  assert.equal(w.hold(200, 'last'), true, 'the 20th distinct chat is a storm');
  assert.equal(w.tripped, true);
  assert.deepEqual(w.success(), [], 'after a storm nothing is handed back: it all stays as it was');
  assert.equal(w.heldItems().length, 20);
});

test('setup-fault back-off: 1 minute, doubling, at most 15', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 9].map(faultBackoffMs), [60_000, 120_000, 240_000, 480_000, 900_000, 900_000]);
});

test('backoff: base after the first failure, doubling, capped; no overflow for long outages', () => {
  const b = { base: 500, cap: 30_000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoff(n, b)),
    [500, 500, 1000, 2000, 4000, 8000, 16_000, 30_000],
  );
  assert.equal(backoff(5000, b), 30_000, 'a very long outage stays at the cap');
});
