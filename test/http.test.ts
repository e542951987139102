import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { ShiftedClock } from './support/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import { isLoopback, startHttpServer } from '../src/http/server.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { createTestDb, type TestDb } from './support/db.ts';
import { until } from './support/wait.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';

const logger = createLogger({ level: 'silent' });
const REMOTE = '127.0.0.2';
/** 127.0.0.2 plays a client on another machine: the server is told it is not local. */
const isLocal = (a: string | undefined) => isLoopback(a) && a?.replace(/^::ffff:/, '') !== REMOTE;

function get(
  url: string,
  opts: { from?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      url,
      { ...(opts.from ? { localAddress: opts.from } : {}), headers: opts.headers ?? {} },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
  });
}

describe('HTTP: /healthz, /metrics, the status page and who may see them', () => {
  let emu: BotApiEmulator;
  let tdb: TestDb;
  let svc: Service;
  const clock = new ShiftedClock('2026-11-29T10:00:30Z');
  const SECRET = 'status-secret-123';

  before(async () => {
    emu = await BotApiEmulator.start();
    tdb = await createTestDb('sqlite');
    svc = await startService(
      loadConfig({
        DATABASE_URL: tdb.url,
        BOT_TOKEN: emu.token,
        BOT_API_ROOT: emu.url,
        HTTP_PORT: '0',
        STATUS_TOKEN: SECRET,
        TELEGRAM_RATE: '0',
        TELEGRAM_RETRIES: '0',
        SCHEDULE_TOKEN_CLEANUP: '* * * * *',
        SCHEDULE_MESSAGE_DELETER: '0 0 1 1 *',
        SCHEDULE_BROADCAST_DELETER: 'off',
        SCHEDULE_TOKEN_COUNT_RESET: 'off',
      }),
      logger,
      { clock, pollTimeoutS: 1, isLocal },
    );
  });
  after(async () => {
    await svc.stop();
    await tdb.drop();
    await emu.close();
  });

  test('/healthz is 200 while jobs succeed and 503 naming the job when one stops succeeding', async () => {
    const ok = await get(`${svc.http.url}/healthz`, { from: REMOTE });
    assert.equal(ok.status, 200, ok.body);
    assert.equal((JSON.parse(ok.body) as { ok: boolean }).ok, true);
    // token-cleanup now fails on every run (its table is gone) while the clock moves on three minutes.
    await svc.store.db.schema.alterTable('tokens').renameTo('tokens_away').execute();
    try {
      clock.set('2026-11-29T10:03:30Z');
      await until(async () => (await get(`${svc.http.url}/healthz`)).status === 503, '/healthz to turn 503', 8000);
      const bad = JSON.parse((await get(`${svc.http.url}/healthz`)).body) as { ok: boolean; problems: string[] };
      assert.equal(bad.ok, false);
      assert.match(bad.problems.join('\n'), /token-cleanup: no successful run/);
    } finally {
      await svc.store.db.schema.alterTable('tokens_away').renameTo('tokens').execute();
    }
    clock.set('2026-11-29T10:04:30Z');
    await until(async () => (await get(`${svc.http.url}/healthz`)).status === 200, '/healthz to recover', 8000);
  });

  test('/metrics carries the series operators alert on', async () => {
    const chat = 4242;
    await insertDeletion(svc.store, {
      userId: chat,
      chatId: chat,
      messageIds: [emu.addMessage(chat)],
      deleteAt: clock.now().getTime(),
      uniqueId: 'm1',
      createdAt: clock.now().getTime(),
    });
    await until(
      async () => (await svc.store.db.selectFrom('pending_deletions').select('id').execute()).length === 0,
      'the deletion',
    );
    const m = await get(`${svc.http.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'] ?? '', /text\/plain/);
    for (const series of [
      'tg_janitor_job_runs_total{job="token-cleanup",status="ok"}',
      'tg_janitor_job_runs_total{job="token-cleanup",status="error"}',
      'tg_janitor_job_run_duration_seconds_bucket{',
      'tg_janitor_job_last_success_timestamp_seconds{job="token-cleanup"}',
      'tg_janitor_pending_deletions 0',
      'tg_janitor_pending_deletions_overdue 0',
      'tg_janitor_deletion_lateness_seconds_bucket{',
      'tg_janitor_telegram_calls_total{method="deleteMessages",outcome="done"} 1',
      'tg_janitor_telegram_429_total',
      'tg_janitor_broadcast_recipients_remaining',
      'tg_janitor_messages_deleted_total 1',
      'process_cpu_user_seconds_total',
    ])
      assert.ok(m.body.includes(series), `missing ${series}`);
  });

  test('the status page and /metrics need the token from a non-loopback address; X-Forwarded-For is not trusted', async () => {
    const local = await get(`${svc.http.url}/`);
    assert.equal(local.status, 200);
    assert.match(local.body, /<table id="jobs"/);
    for (const path of ['/', '/metrics', '/status.json']) {
      const r = await get(`${svc.http.url}${path}`, { from: REMOTE, headers: { 'x-forwarded-for': '127.0.0.1' } });
      assert.equal(r.status, 401, path);
      assert.match(r.body, /needs the status token/);
      assert.doesNotMatch(r.body, new RegExp(SECRET));
    }
    assert.equal((await get(`${svc.http.url}/?token=wrong-token-000`, { from: REMOTE })).status, 401);
    // The token in the address is swapped for a cookie; the page it leads to never carries it.
    const byQuery = await get(`${svc.http.url}/?token=${SECRET}`, { from: REMOTE });
    assert.equal(byQuery.status, 303);
    assert.equal(byQuery.headers.location, '/');
    const cookie = byQuery.headers['set-cookie']![0]!.split(';')[0]!;
    const viaCookie = await get(`${svc.http.url}/`, { from: REMOTE, headers: { cookie } });
    assert.equal(viaCookie.status, 200);
    assert.doesNotMatch(viaCookie.body, new RegExp(`token=|${SECRET}`), 'no link or refresh carries the token');
    assert.equal(
      (await get(`${svc.http.url}/metrics`, { from: REMOTE, headers: { authorization: `Bearer ${SECRET}` } })).status,
      200,
    );
    assert.equal((await get(`${svc.http.url}/healthz`, { from: REMOTE })).status, 200, '/healthz is public');
    assert.equal(
      (await get(`${svc.http.url}/verify?token=unknown-token-x`, { from: REMOTE })).status,
      404,
      '/verify is public',
    );
  });

  test('without STATUS_TOKEN only this machine sees the status page', async () => {
    const srv = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger,
      isLocal,
      routes: { statusPage: async () => 'page', healthz: async () => ({ ok: true, body: {} }) },
    });
    try {
      assert.equal((await get(`${srv.url}/`, { from: REMOTE })).status, 403);
      assert.equal((await get(`${srv.url}/`)).status, 200);
      assert.equal((await get(`${srv.url}//healthz`)).status, 404, 'a path is never taken for a host');
    } finally {
      await srv.close();
    }
  });
});
