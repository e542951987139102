import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { BACKENDS, withTestDb } from './support/db.ts';
import type { Store } from '../src/store/db.ts';
import { COLLECTIONS, ImportError, importCollection, isCollection, type Collection } from '../src/transfer/import.ts';
import { exportCollection } from '../src/transfer/export.ts';
import { finishSending, insertBroadcast } from '../src/store/broadcasts.ts';
import { broadcastDedupeKey, pendingDeletionDedupeKey } from '../src/transfer/documents.ts';

const NOW = new Date('2024-06-01T00:00:00Z');
const MAX = 9007199254740991;
const CHANNEL = -1001234567890;

/** A document of every shape each collection accepts. */
const FIXTURES: Record<Collection, string> = {
  users: [
    `{"_id":{"$oid":"65a1b2c3d4e5f6a7b8c9d0e1"},"user_id":{"$numberLong":"${MAX}"},"username":"big","first_name":"Big","joined_at":{"$date":{"$numberLong":"1700000000000"}},"is_banned":false,"user_access_count":{"$numberInt":"3"},"blocked_at":null}`,
    `{"user_id":42,"username":null,"first_name":"Ann ✓","joined_at":"2024-01-02T03:04:05","is_banned":1,"user_access_count":0,"blocked_at":{"$date":"2024-02-01T00:00:00.000Z"}}`,
    `{"user_id":7,"joined_at":1704067200000,"some_unknown_field":"ignored"}`,
  ].join('\n'),
  tokens: [
    `{"token":"tok-a","unique_id":"u2","created_by":{"$numberLong":"${MAX}"},"status":"verified","created_at":"2024-05-01 10:00:00.123456","expires_at":1714730400000}`,
    `{"token":"Tok-b","unique_id":"u1","created_by":42,"status":"not_used","created_at":{"$date":"2024-05-01T10:00:00Z"},"expires_at":{"$date":"2024-05-03T10:00:00+0200"},"file_unique_id":"AgAD"}`,
    `{"token":"_z","unique_id":"u3","created_by":7,"status":"bypassed","created_at":{"$date":1714557600000},"expires_at":"2024-05-03T10:00:00.5+05:30"}`,
  ].join('\n'),
  token_generator_count: [
    `{"user_id":42,"date":"2024-05-01","token_generated":3}`,
    `{"user_id":42,"date":{"$date":"2024-05-02T23:30:00-02:00"},"token_generated":{"$numberInt":"1"}}`,
    `{"user_id":7,"date":1714608000000}`,
  ].join('\n'),
  pending_deletions: [
    `{"_id":{"$oid":"6650a1b2c3d4e5f6a7b8c9d0"},"user_id":42,"chat_id":42,"message_ids":[10,11],"delete_at":{"$date":"2024-06-01T00:30:00Z"},"unique_id":"u1","created_at":{"$date":"2024-06-01T00:00:00Z"}}`,
    `{"id":99,"user_id":${MAX},"chat_id":${CHANNEL},"message_ids":[{"$numberInt":"5"}],"delete_at":"2024-06-01T01:00:00","attempts":2,"next_attempt_at":"2024-06-01T01:05:00Z","last_error":"Too Many Requests"}`,
  ].join('\n'),
  broadcasts: [
    `{"_id":"b-1","message_id":100,"text":"hello","caption":null,"file_id":null,"duration_hours":24,"channel_message_id":5,"created_at":{"$date":"2024-05-31T00:00:00Z"},"delete_at":{"$date":"2024-06-01T00:00:00Z"},"status":"sent","messages":[{"chat_id":42,"message_id":1000},{"chat_id":7,"message_id":1001},{"chat_id":${CHANNEL},"message_id":{"$numberLong":"77"}}]}`,
    `{"message_id":101,"caption":"pic","file_id":"AgAC","duration_hours":1.5,"created_at":"2024-05-31T12:00:00Z","delete_at":"2024-05-31T13:30:00Z"}`,
  ].join('\n'),
  settings:
    [
      `{"key":"token_generation_limit","value":20}`,
      `{"key":"welcome","value":"hi \\"there\\" ✓"}`,
      `{"key":"obj","value":{"b":[1,2.5,{"c":null}],"a":true}}`,
    ].join('\n') + '\n',
};

async function dump(store: Store, collection: Collection): Promise<string> {
  let out = '';
  await exportCollection(store, collection, (line) => {
    out += `${line}\n`;
  });
  return out;
}

async function rowCount(store: Store, table: string): Promise<number> {
  const r = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(store.db);
  return Number(r.rows[0]!.n);
}

async function importError(p: Promise<unknown>): Promise<ImportError> {
  const e = await p.then(
    () => assert.fail('expected an ImportError'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof ImportError, `not an ImportError: ${String(e)}`);
  return e;
}

test('COLLECTIONS and isCollection', () => {
  assert.deepEqual(
    [...COLLECTIONS],
    ['users', 'tokens', 'token_generator_count', 'pending_deletions', 'broadcasts', 'settings'],
  );
  assert.equal(isCollection('tokens'), true);
  assert.equal(isCollection('job_runs'), false);
});

test('Extended JSON dates and ids, ISO without offset as UTC, exported as ISO UTC', async () => {
  await withTestDb('sqlite', async (store) => {
    const r = await importCollection(store, 'users', FIXTURES.users, { now: NOW });
    assert.deepEqual(r, { read: 3, inserted: 3, updated: 0, unchanged: 0 });
    const rows = await store.db.selectFrom('users').selectAll().orderBy('user_id').execute();
    assert.deepEqual(rows, [
      {
        user_id: 7,
        username: null,
        first_name: null,
        joined_at: 1704067200000,
        is_banned: 0,
        user_access_count: 0,
        blocked_at: null,
      },
      {
        user_id: 42,
        username: null,
        first_name: 'Ann ✓',
        joined_at: Date.UTC(2024, 0, 2, 3, 4, 5),
        is_banned: 1,
        user_access_count: 0,
        blocked_at: Date.UTC(2024, 1, 1),
      },
      {
        user_id: MAX,
        username: 'big',
        first_name: 'Big',
        joined_at: 1700000000000,
        is_banned: 0,
        user_access_count: 3,
        blocked_at: null,
      },
    ]);
    assert.equal(
      await dump(store, 'users'),
      [
        '{"user_id":7,"username":null,"first_name":null,"joined_at":"2024-01-01T00:00:00.000Z","is_banned":false,"user_access_count":0,"blocked_at":null}',
        '{"user_id":42,"username":null,"first_name":"Ann ✓","joined_at":"2024-01-02T03:04:05.000Z","is_banned":true,"user_access_count":0,"blocked_at":"2024-02-01T00:00:00.000Z"}',
        `{"user_id":${MAX},"username":"big","first_name":"Big","joined_at":"2023-11-14T22:13:20.000Z","is_banned":false,"user_access_count":3,"blocked_at":null}`,
        '',
      ].join('\n'),
    );
    await importCollection(store, 'tokens', FIXTURES.tokens, { now: NOW });
    const tokens = await store.db
      .selectFrom('tokens')
      .select(['token', 'created_at', 'expires_at'])
      .orderBy('token')
      .execute();
    assert.deepEqual(tokens, [
      { token: 'Tok-b', created_at: Date.UTC(2024, 4, 1, 10), expires_at: Date.UTC(2024, 4, 3, 8) },
      { token: '_z', created_at: 1714557600000, expires_at: Date.UTC(2024, 4, 3, 4, 30, 0, 500) },
      // Microseconds are cut to milliseconds; no offset means UTC.
      { token: 'tok-a', created_at: Date.UTC(2024, 4, 1, 10, 0, 0, 123), expires_at: 1714730400000 },
    ]);
  });
});

test('token_generator_count: "YYYY-MM-DD" kept, an instant becomes its UTC day, exported as a day', async () => {
  await withTestDb('sqlite', async (store) => {
    await importCollection(store, 'token_generator_count', FIXTURES.token_generator_count, { now: NOW });
    assert.equal(
      await dump(store, 'token_generator_count'),
      '{"user_id":7,"date":"2024-05-02","token_generated":0}\n' +
        '{"user_id":42,"date":"2024-05-01","token_generated":3}\n' +
        '{"user_id":42,"date":"2024-05-03","token_generated":1}\n',
    );
    await importCollection(store, 'token_generator_count', '{"user_id":1,"date":"2024-02-29"}', { now: NOW });
    const e = await importError(
      importCollection(store, 'token_generator_count', '{"user_id":1,"date":"2023-02-29"}', { now: NOW }),
    );
    assert.equal(e.message, 'line 1: field "date": expected a real calendar date "YYYY-MM-DD", got "2023-02-29"');
  });
});

for (const kind of BACKENDS) {
  test(`${kind}: a bad line 2 names the line and field and writes nothing`, async () => {
    await withTestDb(kind, async (store) => {
      await importCollection(store, 'tokens', FIXTURES.tokens, { now: NOW });
      const before = await dump(store, 'tokens');
      const bad = [
        '{"token":"new-1","unique_id":"x","created_by":1,"status":"not_used","created_at":0,"expires_at":0}',
        '{"token":"new-2","unique_id":"x","created_by":1,"status":"done","created_at":0,"expires_at":0}',
      ].join('\n');
      const e = await importError(importCollection(store, 'tokens', bad, { now: NOW }));
      assert.equal(e.message, 'line 2: field "status": expected one of not_used, verified, bypassed, got "done"');
      assert.equal(e.line, 2);
      assert.equal(e.field, 'status');
      assert.equal(await rowCount(store, 'tokens'), 3);
      assert.equal(await dump(store, 'tokens'), before);
    });
  });

  test(`${kind}: a database error mid-way rolls the whole import back`, async () => {
    await withTestDb(kind, async (store) => {
      // Refuse user 7 at the database (validation cannot see it), in the second chunk of writes.
      if (kind === 'sqlite')
        await sql`create trigger no7 before insert on users when new.user_id = 7 begin select raise(abort, 'no 7'); end`.execute(
          store.db,
        );
      else await sql`alter table users add constraint no7 check (user_id <> 7)`.execute(store.db);
      const lines = Array.from({ length: 600 }, (_, i) => JSON.stringify({ user_id: 1000 + i, joined_at: 0 }));
      lines.push('{"user_id":7,"joined_at":0}');
      await assert.rejects(importCollection(store, 'users', lines.join('\n'), { now: NOW }), /no ?7/);
      assert.equal(await rowCount(store, 'users'), 0);
    });
  });

  test(`${kind}: importing twice never duplicates, for every collection`, async () => {
    await withTestDb(kind, async (store) => {
      for (const c of COLLECTIONS) {
        const first = await importCollection(store, c, FIXTURES[c], { now: NOW });
        assert.equal(first.inserted, first.read, c);
        const exported = await dump(store, c);
        // Later: the same file again, and the export of it, with a different "now".
        const later = new Date(NOW.getTime() + 3_600_000);
        assert.deepEqual(
          await importCollection(store, c, FIXTURES[c], { now: later }),
          { read: first.read, inserted: 0, updated: 0, unchanged: first.read },
          c,
        );
        assert.deepEqual(
          await importCollection(store, c, exported, { now: later }),
          { read: first.read, inserted: 0, updated: 0, unchanged: first.read },
          c,
        );
        assert.equal(await dump(store, c), exported, c);
      }
      assert.equal(await rowCount(store, 'broadcast_messages'), 3);
    });
  });
}

test('upserts replace fields; a missing joined_at keeps the existing one; pending state is never reset', async () => {
  await withTestDb('postgres', async (store) => {
    await importCollection(store, 'users', '{"user_id":5,"username":"a","joined_at":"2020-01-01T00:00:00Z"}', {
      now: NOW,
    });
    const r = await importCollection(
      store,
      'users',
      '{"user_id":5,"username":"b"}\n{"user_id":6}\n{"user_id":6,"is_banned":true}',
      { now: NOW },
    );
    assert.deepEqual(r, { read: 3, inserted: 1, updated: 2, unchanged: 0 });
    const users = await store.db
      .selectFrom('users')
      .select(['user_id', 'username', 'joined_at', 'is_banned'])
      .orderBy('user_id')
      .execute();
    assert.deepEqual(users, [
      { user_id: 5, username: 'b', joined_at: Date.UTC(2020, 0, 1), is_banned: 0 },
      { user_id: 6, username: null, joined_at: NOW.getTime(), is_banned: 1 },
    ]);

    await importCollection(store, 'pending_deletions', FIXTURES.pending_deletions, { now: NOW });
    await store.db.updateTable('pending_deletions').set({ attempts: 5, messages_deleted: 1 }).execute();
    assert.equal(
      (await importCollection(store, 'pending_deletions', FIXTURES.pending_deletions, { now: NOW })).unchanged,
      2,
    );
    const pend = await store.db
      .selectFrom('pending_deletions')
      .select(['source_id', 'dedupe_key', 'attempts', 'next_attempt_at', 'created_at'])
      .orderBy('id')
      .execute();
    assert.deepEqual(pend, [
      {
        source_id: '6650a1b2c3d4e5f6a7b8c9d0',
        dedupe_key: '_id:6650a1b2c3d4e5f6a7b8c9d0',
        attempts: 5,
        next_attempt_at: Date.UTC(2024, 5, 1, 0, 30),
        created_at: Date.UTC(2024, 5, 1),
      },
      {
        source_id: null,
        dedupe_key: pendingDeletionDedupeKey({
          user_id: MAX,
          chat_id: CHANNEL,
          message_ids: [5],
          delete_at: Date.UTC(2024, 5, 1, 1),
          unique_id: null,
        }),
        attempts: 5,
        next_attempt_at: Date.UTC(2024, 5, 1, 1, 5),
        created_at: NOW.getTime(),
      },
    ]);
    assert.match(pend[1]!.dedupe_key, /^sha256:[0-9a-f]{64}$/);
  });
});

test('broadcasts with recipients round trip; recipients missing from an existing broadcast are added', async () => {
  await withTestDb('sqlite', async (store) => {
    await importCollection(store, 'broadcasts', FIXTURES.broadcasts, { now: NOW });
    const out = await dump(store, 'broadcasts');
    assert.equal(
      out.split('\n')[0],
      `{"_id":"b-1","message_id":100,"text":"hello","caption":null,"file_id":null,"duration_hours":24,"channel_message_id":5,"created_at":"2024-05-31T00:00:00.000Z","delete_at":"2024-06-01T00:00:00.000Z","status":"sent","messages":[{"chat_id":${CHANNEL},"message_id":77},{"chat_id":7,"message_id":1001},{"chat_id":42,"message_id":1000}]}`,
    );
    assert.equal(
      out.split('\n')[1],
      '{"message_id":101,"text":null,"caption":"pic","file_id":"AgAC","duration_hours":1.5,"channel_message_id":null,"created_at":"2024-05-31T12:00:00.000Z","delete_at":"2024-05-31T13:30:00.000Z","status":"sent","messages":[]}',
    );
    const second = await store.db
      .selectFrom('broadcasts')
      .select('dedupe_key')
      .where('message_id', '=', 101)
      .executeTakeFirstOrThrow();
    const key = broadcastDedupeKey({
      message_id: 101,
      caption: 'pic',
      file_id: 'AgAC',
      created_at: Date.UTC(2024, 4, 31, 12),
      delete_at: Date.UTC(2024, 4, 31, 13, 30),
    });
    assert.equal(second.dedupe_key, key);

    const more =
      '{"_id":"b-1","delete_at":0,"messages":[{"chat_id":42,"message_id":1},{"chat_id":8,"message_id":1002},{"chat_id":8,"message_id":9}]}';
    assert.deepEqual(await importCollection(store, 'broadcasts', more, { now: NOW }), {
      read: 1,
      inserted: 0,
      updated: 1,
      unchanged: 0,
    });
    const msgs = await store.db
      .selectFrom('broadcast_messages')
      .select(['chat_id', 'message_id'])
      .orderBy('chat_id')
      .execute();
    assert.deepEqual(msgs, [
      { chat_id: CHANNEL, message_id: 77 },
      { chat_id: 7, message_id: 1001 },
      { chat_id: 8, message_id: 1002 },
      { chat_id: 42, message_id: 1000 },
    ]);
  });
});

test('a broadcast without _id and created_at: importing it twice, or its own export, adds it once', async () => {
  await withTestDb('sqlite', async (store) => {
    const doc = '{"text":"no id","duration_hours":2,"delete_at":"2024-06-01T10:00:00Z"}';
    assert.equal((await importCollection(store, 'broadcasts', doc, { now: NOW })).inserted, 1);
    assert.equal(
      (await importCollection(store, 'broadcasts', doc, { now: new Date('2025-01-01T00:00:00Z') })).inserted,
      0,
    );
    const exported = await dump(store, 'broadcasts');
    assert.match(
      exported,
      /"created_at":"2024-06-01T08:00:00.000Z"/,
      'created_at derived from delete_at and the duration',
    );
    assert.equal((await importCollection(store, 'broadcasts', exported, { now: NOW })).inserted, 0);
    assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 1);
  });
});

test('a broadcast the bot made: importing its export again adds nothing', async () => {
  await withTestDb('sqlite', async (store) => {
    const created = Date.parse('2024-06-01T08:00:00.123Z');
    await insertBroadcast(store, {
      fromChatId: -100777,
      messageId: 42,
      text: 'news',
      caption: null,
      fileId: null,
      durationHours: 2,
      createdAt: created,
      progressChatId: null,
      progressMessageId: null,
    });
    await finishSending(store, (await store.db.selectFrom('broadcasts').select('id').executeTakeFirstOrThrow()).id);
    const exported = await dump(store, 'broadcasts');
    assert.equal((await importCollection(store, 'broadcasts', exported, { now: NOW })).inserted, 0);
    assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 1);
  });
});

test('a token sent the direct link (shortener down) keeps that mark across export and import', async () => {
  await withTestDb('sqlite', async (store) => {
    const line =
      '{"token":"tok-direct","unique_id":"u1","created_by":5,"status":"not_used","created_at":"2024-05-31T00:00:00.000Z","expires_at":"2024-06-02T00:00:00.000Z","direct_link":true}';
    await importCollection(store, 'tokens', line, { now: NOW });
    assert.equal((await store.db.selectFrom('tokens').select('direct_link').executeTakeFirstOrThrow()).direct_link, 1);
    assert.equal((await dump(store, 'tokens')).trim(), line);
  });
});

test('settings values of any JSON type round trip', async () => {
  await withTestDb('sqlite', async (store) => {
    await importCollection(store, 'settings', FIXTURES.settings, { now: NOW });
    const row = await store.db.selectFrom('settings').selectAll().where('key', '=', 'obj').executeTakeFirstOrThrow();
    assert.equal(row.value, '{"b":[1,2.5,{"c":null}],"a":true}');
    assert.equal(
      await dump(store, 'settings'),
      '{"key":"obj","value":{"b":[1,2.5,{"c":null}],"a":true}}\n{"key":"token_generation_limit","value":20}\n{"key":"welcome","value":"hi \\"there\\" ✓"}\n',
    );
    const r = await importCollection(
      store,
      'settings',
      '{"key":"welcome","value":"bye"}\n{"key":"welcome","value":"bye"}',
      { now: NOW },
    );
    assert.deepEqual(r, { read: 2, inserted: 0, updated: 1, unchanged: 1 });
  });
});

test('invalid lines: JSON syntax, unsafe or fractional ids, missing fields, bad dates', async () => {
  await withTestDb('sqlite', async (store) => {
    const cases: [Collection, string, string][] = [
      ['users', '{"user_id":1}\n\n{"user_id":2,}', 'line 3: not valid JSON: '],
      ['users', '[1]', 'line 1: expected a JSON object, got [1]'],
      [
        'users',
        '{"user_id":9007199254740993}',
        `line 1: field "user_id": expected a positive safe integer (at most ${MAX}), got 9007199254740992`,
      ],
      [
        'users',
        '{"user_id":{"$numberLong":"9007199254740993"}}',
        'line 1: field "user_id": expected a positive safe integer',
      ],
      ['users', '{"user_id":1.5}', 'line 1: field "user_id": expected a positive safe integer'],
      ['users', '{"user_id":"12"}', 'line 1: field "user_id": expected a positive safe integer'],
      ['users', '{"username":"x"}', 'line 1: field "user_id": is required'],
      ['users', '{"user_id":1,"joined_at":"2024-13-01"}', 'line 1: field "joined_at": expected a date'],
      ['users', '{"user_id":1,"joined_at":"yesterday"}', 'line 1: field "joined_at": expected a date'],
      [
        'users',
        '{"user_id":1,"is_banned":"yes"}',
        'line 1: field "is_banned": expected true, false, 0 or 1, got "yes"',
      ],
      [
        'pending_deletions',
        '{"user_id":1,"chat_id":1,"message_ids":[1,-2],"delete_at":0}',
        'line 1: field "message_ids[1]": expected a positive safe integer',
      ],
      [
        'broadcasts',
        '{"delete_at":0,"messages":[{"chat_id":1}]}',
        'line 1: field "messages[0].message_id": is required',
      ],
      [
        'broadcasts',
        '{"delete_at":0,"status":"active"}',
        'line 1: field "status": expected one of sending, sent, deleting, got "active"',
      ],
      ['settings', '{"key":"a"}', 'line 1: field "value": is required'],
      ['tokens', '{"token":"a\\u0000b"}', 'line 1: field "token": contains a NUL character'],
    ];
    for (const [c, text, prefix] of cases) {
      const e = await importError(importCollection(store, c, text, { now: NOW }));
      assert.ok(e.message.startsWith(prefix), `${e.message} does not start with ${prefix}`);
    }
    assert.equal(await rowCount(store, 'users'), 0);
  });
});

test('cross-backend round trip: SQLite → PostgreSQL → SQLite exports byte-identical lines', async () => {
  await withTestDb('sqlite', (sa) =>
    withTestDb('postgres', (pb) =>
      withTestDb('sqlite', async (sc) => {
        // A linguistic collation on PostgreSQL ("_z" < "tok-a" < "Tok-b") must not change the export's byte order.
        const icu = await sql<{ n: number }>`select 1 as n from pg_collation where collname = 'en-x-icu'`.execute(
          pb.db,
        );
        if (icu.rows.length > 0) {
          await sql`alter table tokens alter column token type text collate "en-x-icu"`.execute(pb.db);
          await sql`alter table settings alter column key type text collate "en-x-icu"`.execute(pb.db);
        }
        for (const col of COLLECTIONS) await importCollection(sa, col, FIXTURES[col], { now: NOW });
        for (const col of COLLECTIONS) {
          const first = await dump(sa, col);
          assert.ok(first.length > 0, col);
          await importCollection(pb, col, first);
          const second = await dump(pb, col);
          assert.equal(second, first, `${col}: PostgreSQL export differs`);
          await importCollection(sc, col, second);
          assert.equal(await dump(sc, col), first, `${col}: SQLite re-export differs`);
        }
        assert.match(await dump(pb, 'users'), new RegExp(`"user_id":${MAX}`));
        assert.match(await dump(pb, 'pending_deletions'), new RegExp(`"chat_id":${CHANNEL}`));
      }),
    ),
  );
});

test('export pages through more rows than one page, in key order', async () => {
  for (const kind of BACKENDS) {
    await withTestDb(kind, async (store) => {
      const lines = Array.from({ length: 2500 }, (_, i) =>
        JSON.stringify({
          token: `t${String(2500 - i).padStart(5, '0')}`,
          unique_id: 'u',
          created_by: 1,
          status: 'not_used',
          created_at: 0,
          expires_at: 0,
        }),
      );
      await importCollection(store, 'tokens', lines.join('\n'), { now: NOW });
      const out = (await dump(store, 'tokens')).trimEnd().split('\n');
      assert.equal(out.length, 2500, kind);
      assert.deepEqual(
        out,
        [...lines].reverse().map((l) =>
          JSON.stringify({
            ...JSON.parse(l),
            created_at: '1970-01-01T00:00:00.000Z',
            expires_at: '1970-01-01T00:00:00.000Z',
          }),
        ),
        kind,
      );
      // A composite key (user_id, date) across pages.
      const counts = Array.from({ length: 1200 }, (_, i) => ({
        user_id: 3 - (i % 3),
        date: new Date(Date.UTC(2020, 0, 1 + Math.floor(i / 3))).toISOString().slice(0, 10),
        token_generated: i,
      }));
      await importCollection(store, 'token_generator_count', counts.map((d) => JSON.stringify(d)).join('\n'), {
        now: NOW,
      });
      const sorted = [...counts].sort((x, y) => x.user_id - y.user_id || (x.date < y.date ? -1 : 1));
      assert.equal(
        await dump(store, 'token_generator_count'),
        sorted.map((d) => `${JSON.stringify(d)}\n`).join(''),
        kind,
      );
    });
  }
});

for (const backend of BACKENDS) {
  test(`${backend}: imported tokens feed the per-day token counters, once, on their creation day in TIMEZONE`, () =>
    withTestDb(backend, async (store) => {
      const stats = async () =>
        (await store.db.selectFrom('token_stats').selectAll().orderBy('day').execute()).map((r) =>
          [r.day, r.created, r.verified, r.bypassed].map(String).join(' '),
        );
      const doc = (token: string, status: string, createdAt: string) =>
        JSON.stringify({ token, unique_id: token, created_by: 1, status, created_at: createdAt, expires_at: 1 });
      const text = [
        doc('t1', 'verified', '2026-11-28T18:29:59Z'), // 23:59:59 on the 28th in Kolkata
        doc('t2', 'not_used', '2026-11-28T18:30:00Z'), // 00:00 on the 29th
        doc('t3', 'bypassed', '2026-11-29T10:00:00Z'),
      ].join('\n');
      await importCollection(store, 'tokens', text, { now: NOW, timezone: 'Asia/Kolkata' });
      assert.deepEqual(await stats(), ['2026-11-28 1 1 0', '2026-11-29 2 0 1']);
      await importCollection(store, 'tokens', text, { now: NOW, timezone: 'Asia/Kolkata' });
      assert.deepEqual(await stats(), ['2026-11-28 1 1 0', '2026-11-29 2 0 1'], 'the same documents again: no change');
      // An unused token imported again as verified counts its outcome, not a second creation.
      await importCollection(store, 'tokens', doc('t2', 'verified', '2026-11-28T18:30:00Z'), {
        now: NOW,
        timezone: 'Asia/Kolkata',
      });
      assert.deepEqual(await stats(), ['2026-11-28 1 1 0', '2026-11-29 2 1 1']);
    }));
}
