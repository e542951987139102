/**
 * Nothing secret leaks through the public doors: a `?token=` is swapped for a cookie and never copied into the
 * page, the public /healthz names what failed without the raw error, and /healthz answers while the database hangs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import pg from 'pg';
import { FakeClock } from '../src/clock.ts';
import { until } from './support/wait.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startService } from '../src/service.ts';
import { isLoopback, startHttpServer, STATUS_COOKIE, type HttpServer } from '../src/http/server.ts';
import { createTestDb, PG_URL } from './support/db.ts';

/** /healthz's JSON body, as far as these tests read it. */
interface HealthBody {
  ok?: boolean;
  failing?: string[];
  problems?: string[];
}

const logger = createLogger({ level: 'silent' });
const REMOTE = '127.0.0.2';
/** 127.0.0.2 plays a client on another machine: the server is told it is not local. */
const isLocal = (a: string | undefined) => isLoopback(a) && a?.replace(/^::ffff:/, '') !== REMOTE;
const SECRET = 'status-secret-456';

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** GET with a deadline: a server that does not answer fails the test instead of hanging it. */
function get(
  url: string,
  opts: { from?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Answer> {
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
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
  });
}

/** The one Set-Cookie of an answer, split into its `name=value` and its attributes (lower-cased). */
function setCookie(a: Answer): { pair: string; attrs: string[] } {
  const all = a.headers['set-cookie'] ?? [];
  assert.equal(all.length, 1, 'one cookie');
  const [pair, ...attrs] = all[0]!.split(';').map((p) => p.trim());
  return { pair: pair!, attrs: attrs.map((x) => x.toLowerCase()) };
}

describe('the status token: a cookie instead of a token in the address', () => {
  let srv: HttpServer;
  const seen: boolean[] = [];
  before(async () => {
    srv = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger,
      isLocal,
      statusToken: SECRET,
      routes: {
        statusPage: async () => '<p>the page</p>',
        statusJson: async () => ({ fine: true }),
        healthz: async ({ detailed }) => {
          seen.push(detailed);
          return { ok: true, body: { detailed } };
        },
      },
    });
  });
  after(() => srv.close());

  test('a right ?token= gets an HttpOnly, SameSite=Strict cookie (not the token) and a 303 to the address without it', async () => {
    const r = await get(`${srv.url}/?token=${SECRET}`, { from: REMOTE });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/');
    const c = setCookie(r);
    assert.ok(c.pair.startsWith(`${STATUS_COOKIE}=`));
    assert.ok(
      !c.pair.includes(SECRET) && !c.pair.includes(encodeURIComponent(SECRET)),
      'the cookie does not carry the token',
    );
    for (const attr of ['httponly', 'samesite=strict', 'path=/']) assert.ok(c.attrs.includes(attr), attr);
    assert.ok(!c.attrs.includes('secure'), 'plain HTTP: a Secure cookie would never come back');
    assert.doesNotMatch(r.body, new RegExp(SECRET));
    // The cookie opens the page; the page carries no token.
    const page = await get(`${srv.url}/`, { from: REMOTE, headers: { cookie: `other=1; ${c.pair}` } });
    assert.equal(page.status, 200);
    assert.equal(page.body, '<p>the page</p>');
    // Behind an HTTPS proxy the cookie is Secure; other query parameters stay.
    const https = await get(`${srv.url}/status.json?x=1&token=${SECRET}`, {
      from: REMOTE,
      headers: { 'x-forwarded-proto': 'https' },
    });
    assert.equal(https.status, 303);
    assert.equal(https.headers.location, '/status.json?x=1');
    assert.ok(setCookie(https).attrs.includes('secure'));
    // Always exchanged, even from this machine, so the token leaves the address bar.
    assert.equal((await get(`${srv.url}/?token=${SECRET}`)).status, 303);
  });

  test('a wrong ?token= gets 401 and no cookie; a forged cookie is refused', async () => {
    for (const from of [REMOTE, undefined]) {
      const r = await get(`${srv.url}/?token=not-the-token`, from ? { from } : {});
      assert.equal(r.status, 401);
      assert.equal(r.headers['set-cookie'], undefined);
    }
    assert.equal(
      (await get(`${srv.url}/`, { from: REMOTE, headers: { cookie: `${STATUS_COOKIE}=${SECRET}` } })).status,
      401,
    );
    assert.equal((await get(`${srv.url}/`, { from: REMOTE, headers: { cookie: `${STATUS_COOKIE}=x` } })).status, 401);
    assert.equal(
      (await get(`${srv.url}/`, { from: REMOTE, headers: { authorization: `Bearer ${SECRET}` } })).status,
      200,
    );
  });

  test('/healthz gives details to this machine, the bearer token or the cookie only; it never reads ?token=', async () => {
    const cookie = setCookie(await get(`${srv.url}/?token=${SECRET}`, { from: REMOTE })).pair;
    seen.length = 0;
    await get(`${srv.url}/healthz`, { from: REMOTE });
    await get(`${srv.url}/healthz`, { from: REMOTE, headers: { authorization: `Bearer ${SECRET}` } });
    await get(`${srv.url}/healthz`, { from: REMOTE, headers: { cookie } });
    await get(`${srv.url}/healthz`);
    await get(`${srv.url}/healthz`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    const byQuery = await get(`${srv.url}/healthz?token=${SECRET}`, { from: REMOTE });
    assert.equal(byQuery.status, 200, 'no redirect: health checkers do not follow one');
    assert.deepEqual(seen, [false, true, true, true, false, false]);
  });
});

describe('/healthz on the service', () => {
  test('the public answer names the failed check, not the database error; this machine and the token see it', async () => {
    const tdb = await createTestDb('sqlite');
    const env = {
      DATABASE_URL: tdb.url,
      HTTP_PORT: '0',
      STATUS_TOKEN: SECRET,
      SCHEDULE_TOKEN_CLEANUP: '0 0 1 1 *',
      SCHEDULE_TOKEN_COUNT_RESET: 'off',
    };
    const svc = await startService(loadConfig(env), logger, { clock: new FakeClock('2026-11-29T10:00:00Z'), isLocal });
    try {
      assert.equal((await get(`${svc.http.url}/healthz`, { from: REMOTE })).status, 200);
      await svc.store.db.schema.alterTable('job_runs').renameTo('job_runs_away').execute();
      try {
        const pub = await get(`${svc.http.url}/healthz`, { from: REMOTE });
        assert.equal(pub.status, 503);
        const body = JSON.parse(pub.body) as HealthBody;
        assert.deepEqual(body.failing, ['database']);
        assert.equal(body.problems, undefined);
        assert.doesNotMatch(pub.body, /job_runs|no such table/, 'no raw error text');
        // This machine, then a remote client with the token.
        for (const opts of [{}, { from: REMOTE, headers: { authorization: `Bearer ${SECRET}` } }]) {
          const r = await get(`${svc.http.url}/healthz`, opts);
          assert.equal(r.status, 503);
          assert.match((JSON.parse(r.body) as HealthBody).problems!.join('\n'), /^database: .*job_runs/);
        }
      } finally {
        await svc.store.db.schema.alterTable('job_runs_away').renameTo('job_runs').execute();
      }
    } finally {
      await svc.stop();
      await tdb.drop();
    }
  });

  test('it answers 503 naming the database within its time-out when the database hangs', async () => {
    const tdb = await createTestDb('postgres');
    const env = {
      DATABASE_URL: tdb.url,
      HTTP_PORT: '0',
      SCHEDULE_TOKEN_CLEANUP: '0 0 1 1 *',
      SCHEDULE_TOKEN_COUNT_RESET: 'off',
    };
    const clock = new FakeClock('2026-11-29T10:00:00Z');
    const svc = await startService(loadConfig(env), logger, { clock, isLocal, healthTimeoutMs: 300 });
    // Another session holds job_runs locked: the health query waits like one sent into a TCP black hole.
    const blocker = new pg.Client({ connectionString: PG_URL });
    await blocker.connect();
    try {
      assert.equal((await get(`${svc.http.url}/healthz`)).status, 200);
      const schema = new URL(tdb.url).searchParams.get('schema')!;
      await blocker.query('BEGIN');
      await blocker.query(`LOCK TABLE "${schema}".job_runs IN ACCESS EXCLUSIVE MODE`);
      const waiting = clock.pending;
      const answers = Promise.all([
        get(`${svc.http.url}/healthz`, { from: REMOTE, timeoutMs: 5000 }),
        get(`${svc.http.url}/healthz`, { timeoutMs: 5000 }),
      ]);
      // Both requests wait on the one check in flight, each with its time-out on the service's clock.
      await until(() => clock.pending === waiting + 2, 'both requests to wait for the database');
      clock.advance(299);
      await new Promise((r) => setImmediate(r));
      assert.equal(clock.pending, waiting + 2, 'no answer before the time-out');
      clock.advance(1);
      const [pub, local] = await answers;
      assert.equal(pub.status, 503);
      assert.deepEqual((JSON.parse(pub.body) as HealthBody).failing, ['database']);
      assert.equal(local.status, 503);
      assert.deepEqual((JSON.parse(local.body) as HealthBody).problems, ['database: no answer within 0.3 s']);
      await blocker.query('ROLLBACK');
      assert.equal((await get(`${svc.http.url}/healthz`)).status, 200, 'healthy again once the database answers');
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end();
      await svc.stop();
      await tdb.drop();
    }
  });
});
