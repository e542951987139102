import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CliProcess, runCli } from './cli.ts';
import { createTestDb, type Backend } from './db.ts';
import { until } from './wait.ts';
import { BotApiEmulator } from './bot-api-emulator.ts';

const jsonl = (docs: object[]) => docs.map((d) => JSON.stringify(d)).join('\n') + '\n';

/** The deleters through the CLI on one backend (one test file per backend, so the two run side by side). */
export function deleterCliSuite(backend: Backend): void {
  describe(`deleters through the CLI on ${backend}`, () => {
    let emu: BotApiEmulator;
    before(async () => {
      emu = await BotApiEmulator.start();
    });
    after(async () => {
      await emu.close();
    });

    test('run message-deleter on imported deletions: due rows go (150 messages in 2 calls), Click Here, later rows stay', async () => {
      const tdb = await createTestDb(backend);
      try {
        const env = { DATABASE_URL: tdb.url, BOT_TOKEN: emu.token, BOT_API_ROOT: emu.url, TELEGRAM_RETRIES: '0' };
        const now = Date.now();
        const big = Array.from({ length: 150 }, () => emu.addMessage(111));
        const small = [emu.addMessage(222), emu.addMessage(222)];
        const later = [emu.addMessage(333)];
        const docs = [
          {
            _id: { $oid: '65f000000000000000000001' },
            user_id: 111,
            chat_id: 111,
            message_ids: big,
            delete_at: { $date: new Date(now - 5000).toISOString() },
            unique_id: 'AbC123',
            created_at: { $date: { $numberLong: String(now - 60_000) } },
          },
          {
            _id: { $oid: '65f000000000000000000002' },
            user_id: 222,
            chat_id: 222,
            message_ids: small,
            delete_at: now - 1000,
            unique_id: 'XyZ',
            created_at: now - 60_000,
          },
          {
            _id: { $oid: '65f000000000000000000003' },
            user_id: 333,
            chat_id: 333,
            message_ids: later,
            delete_at: now + 3600_000,
            unique_id: 'later',
            created_at: now,
          },
        ];
        const imp = await runCli(['import', 'pending_deletions', '-'], env, { stdin: jsonl(docs) });
        assert.equal(imp.code, 0, imp.stderr);
        emu.resetCalls();
        const r = await runCli(['run', 'message-deleter', '--json'], env);
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout) as Record<string, unknown>;
        assert.equal(j.status, 'ok');
        assert.equal(j.rows, 2);
        assert.equal(j.messages_deleted, 152);
        assert.equal(j.notices_sent, 2);
        for (const k of ['gone', 'undeletable', 'unreachable', 'transient']) assert.equal(j[k], 0, k);
        assert.equal(emu.callsOf('deleteMessages').filter((c) => Number(c.params.chat_id) === 111).length, 2);
        assert.ok(big.every((m) => !emu.hasMessage(111, m)));
        const notice = emu.messages(111).at(-1)!;
        assert.equal(notice.reply_markup?.inline_keyboard?.[0]?.[0]?.text, 'Click Here');
        assert.equal(
          notice.reply_markup?.inline_keyboard?.[0]?.[0]?.url,
          `https://t.me/${emu.botUsername}?start=AbC123`,
        );
        assert.ok(emu.hasMessage(333, later[0]!));
        const exp = await runCli(['export', 'pending_deletions'], env);
        assert.deepEqual(
          exp.stdout
            .trim()
            .split('\n')
            .map((l) => (JSON.parse(l) as { _id: unknown })._id),
          ['65f000000000000000000003'],
        );
        assert.doesNotMatch(
          r.stderr + r.stdout,
          new RegExp(emu.token.split(':')[1]!),
          'the token never appears in output',
        );
      } finally {
        await tdb.drop();
      }
    });

    test('start deletes rows due in 3-12 s, half imported after it started, never before delete_at (no minute sweep)', async () => {
      const tdb = await createTestDb(backend);
      const env = {
        DATABASE_URL: tdb.url,
        BOT_TOKEN: emu.token,
        BOT_API_ROOT: emu.url,
        SCHEDULE_MESSAGE_DELETER: 'off',
        SCHEDULE_BROADCAST_DELETER: 'off',
        SCHEDULE_TOKEN_CLEANUP: 'off',
        SCHEDULE_TOKEN_COUNT_RESET: 'off',
      };
      await tdb.open();
      const t0 = Date.now();
      const rows = Array.from({ length: 10 }, (_, i) => {
        const chat = 5000 + i;
        return {
          user_id: chat,
          chat_id: chat,
          message_ids: [emu.addMessage(chat), emu.addMessage(chat)],
          delete_at: t0 + 3000 + i * 1000,
          unique_id: `u${i}`,
        };
      });
      assert.equal(
        (await runCli(['import', 'pending_deletions', '-'], env, { stdin: jsonl(rows.slice(0, 5)) })).code,
        0,
      );
      // Wake-ups only: the sweep is set to once a year, so these deletions can only come from the waker.
      const svc = new CliProcess(['start'], { ...env, SCHEDULE_MESSAGE_DELETER: '0 0 1 1 *' });
      try {
        await svc.waitFor(/Message Deleter Scheduler started/);
        const imp = await runCli(['import', 'pending_deletions', '-'], env, { stdin: jsonl(rows.slice(5)) });
        assert.equal(imp.code, 0, imp.stderr);
        // Five seconds after the last is due, or after the import if a loaded machine made it later than that.
        const last = Math.max(rows.at(-1)!.delete_at, Date.now());
        while (Date.now() < last + 5000 && rows.some((r) => emu.hasMessage(r.chat_id, r.message_ids[0]!)))
          await new Promise((r) => setTimeout(r, 100));
        const lateness: number[] = [];
        for (const r of rows) {
          const call = emu.callsOf('deleteMessages').find((c) => Number(c.params.chat_id) === r.chat_id);
          assert.ok(call, `row due at +${r.delete_at - t0} ms was deleted`);
          assert.ok(call.at >= r.delete_at, `row ${r.chat_id} deleted ${r.delete_at - call.at} ms early`);
          lateness.push(call.at - r.delete_at);
          assert.ok(!emu.hasMessage(r.chat_id, r.message_ids[1]!));
        }
        // Reported, not asserted: speed is measured, not tested.
        console.log(`# on-time deletions (${backend}): lateness ms ${JSON.stringify(lateness)}`);
        assert.ok(svc.logs().some((l) => l.trigger === 'wake-up'));
      } finally {
        const exit = await svc.kill('SIGTERM');
        assert.equal(exit.code, 0, svc.stderr.slice(-2000));
        await tdb.drop();
      }
    });

    test('a 3,000-recipient broadcast killed with SIGKILL midway resumes: all deleted, record gone, finished recipients not redone', async () => {
      const tdb = await createTestDb(backend);
      try {
        // A short claim lease, so the second run may take over the killed run's broadcast within seconds.
        const env = {
          DATABASE_URL: tdb.url,
          BOT_TOKEN: emu.token,
          BOT_API_ROOT: emu.url,
          TELEGRAM_RATE: '1500',
          CLAIM_LEASE_S: '5',
        };
        const now = Date.now();
        const chats = Array.from({ length: 3000 }, (_, i) => 100_000 + i);
        const messages = chats.map((c) => ({ chat_id: c, message_id: emu.addMessage(c, { text: 'broadcast' }) }));
        const doc = {
          _id: 'bc-1',
          message_id: 9,
          text: 'Hello all',
          duration_hours: 1,
          created_at: now - 3600_000,
          delete_at: now - 1000,
          status: 'sent',
          messages,
        };
        assert.equal((await runCli(['import', 'broadcasts', '-'], env, { stdin: jsonl([doc]) })).code, 0);
        emu.resetCalls();
        const first = new CliProcess(['run', 'broadcast-deleter', '--json'], env);
        while (emu.callsOf('deleteMessage').length < 1000) {
          assert.equal(first.child.exitCode, null, 'the first run was still going');
          await new Promise((r) => setTimeout(r, 10));
        }
        const killed = await first.kill('SIGKILL');
        assert.equal(killed.signal, 'SIGKILL');
        const store = await tdb.open();
        const left = new Set(
          (await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).map((r) => r.chat_id),
        );
        assert.ok(left.size > 0 && left.size < 3000, `killed midway (${left.size} left)`);
        const callsBefore = emu.callsOf('deleteMessage').length;
        // The killed run's claim must expire before another run may take the broadcast: wait for its lease's end.
        const claim = await store.db
          .selectFrom('broadcasts')
          .select(['claimed_by', 'claim_expires_at'])
          .executeTakeFirstOrThrow();
        assert.ok(claim.claimed_by && claim.claim_expires_at, 'the killed run still holds the broadcast');
        await until(() => Date.now() > claim.claim_expires_at! + 50, "the killed run's lease to end", 15_000);
        const second = await runCli(['run', 'broadcast-deleter', '--json'], env);
        const j = JSON.parse(second.stdout) as Record<string, unknown>;
        assert.equal(j.broadcasts_done, 1, JSON.stringify(j));
        const redone = emu
          .callsOf('deleteMessage')
          .slice(callsBefore)
          .filter((c) => !left.has(Number(c.params.chat_id)));
        assert.equal(redone.length, 0, 'no finished recipient was redone');
        assert.ok(
          chats.every((c) => emu.messages(c).length === 0),
          'every message deleted',
        );
        assert.equal((await store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
        assert.equal((await store.db.selectFrom('broadcast_messages').select('chat_id').execute()).length, 0);
      } finally {
        await tdb.drop();
      }
    });
  });
}
