/**
 * Fault scenario 5, the database down: `tg-janitor start` reaches PostgreSQL through a TCP proxy the test cuts for
 * 30 s (every connection dropped, one of them with a query in flight; new ones black-holed, or refused). The service stays up, /healthz answers 503
 * within 10 s of the cut and 200 within a minute of its end, and without a restart every delivery due before,
 * during and after the cut is done afterwards.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BotApiEmulator } from '../support/bot-api-emulator.ts';
import { PG_URL, createTestDb } from '../support/db.ts';
import { TcpProxy, type CutMode } from '../support/tcp-proxy.ts';
import { JanitorProcess, secs, serviceEnv, waitUntil } from '../support/janitor-process.ts';
import {
  messagesLeft,
  noticeFigures,
  noticesPerRow,
  rng,
  seedDeliveries,
  workLeft,
  type Delivery,
} from '../support/deliveries.ts';

const CUT_MS = 30_000;
const UNHEALTHY_WITHIN_MS = 10_000;
const HEALTHY_WITHIN_MS = 60_000;

describe('database down: PostgreSQL cut off for 30 s behind a proxy', { concurrency: true }, () => {
  for (const mode of ['blackhole', 'refuse'] as CutMode[]) {
    test(
      `${mode}: the service stays up, /healthz 503 then 200, every delivery done afterwards`,
      { timeout: 360_000 },
      async (t) => {
        const emu = await BotApiEmulator.start();
        const tdb = await createTestDb('postgres');
        const pgUrl = new URL(PG_URL);
        const proxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
        const viaProxy = new URL(tdb.url);
        viaProxy.port = String(proxy.port);
        const svc = new JanitorProcess(`instance-${mode}`, serviceEnv({ databaseUrl: viaProxy.toString(), emu }));
        // /healthz asked every 500 ms (each answer waited for up to 5 s); `at` is when the answer came.
        const health: { asked: number; at: number; status: number }[] = [];
        let polling = true;
        const poller = (async () => {
          while (polling) {
            const asked = Date.now();
            const h = await svc.healthz(5000);
            health.push({ asked, at: Date.now(), status: h.status });
            await sleep(Math.max(0, 500 - (Date.now() - asked)));
          }
        })();
        try {
          const store = await tdb.open(); // the test's own connection goes straight to PostgreSQL
          await svc.start();
          await waitUntil(() => health.some((h) => h.status === 200), 'the first /healthz 200', 30_000);
          const random = rng(5);
          const chats = (base: number) => Array.from({ length: 40 }, (_, i) => base + i);
          let now = Date.now();
          // Due before the cut (the cut comes while they are worked) and due after it (inserted now).
          const before = await seedDeliveries(store, emu, {
            rows: 40,
            chats: chats(60_001),
            deleteAt: () => now - 1000,
            random,
            prefix: 'b',
          });
          const after = await seedDeliveries(store, emu, {
            rows: 40,
            chats: chats(61_001),
            deleteAt: (i) => now + 2000 + CUT_MS + 5000 + i * 250,
            random,
            prefix: 'a',
          });
          // The cut comes with a query in flight (the next one the service sends), as a database usually goes.
          const tCut = await proxy.cutMidRequest(mode);
          // Due during the cut, inserted during it (as a bot on another connection would).
          now = Date.now();
          const during = await seedDeliveries(store, emu, {
            rows: 40,
            chats: chats(62_001),
            deleteAt: (i) => now + 2000 + i * 500,
            random,
            prefix: 'c',
          });
          await sleep(CUT_MS - (Date.now() - tCut)); // the cut lasts this long: a fault's duration, not a check
          const aliveThroughCut = svc.alive;
          const tRestore = Date.now();
          proxy.restore();
          const all: Delivery[] = [...before, ...during, ...after];
          let left = await workLeft(store);
          let done = false;
          try {
            await waitUntil(
              async () => {
                left = await workLeft(store);
                return (
                  left.deletions === 0 &&
                  messagesLeft(emu, all) === 0 &&
                  health.some((h) => h.asked >= tRestore && h.status === 200)
                );
              },
              'every delivery done and /healthz 200',
              180_000,
            );
            done = true;
          } catch {
            // reported below with the figures
          }
          const tDone = Date.now();
          polling = false;
          await poller;

          const first503 = health.find((h) => h.asked >= tCut && h.status === 503);
          const first200 = health.find((h) => h.asked >= tRestore && h.status === 200);
          const answers: Record<string, number> = {};
          for (const h of health.filter((x) => x.asked >= tCut && x.asked < tRestore)) {
            const k = h.status === 0 ? 'no answer in 5 s' : String(h.status);
            answers[k] = (answers[k] ?? 0) + 1;
          }
          const slowest = Math.max(
            0,
            ...health.filter((x) => x.asked >= tCut && x.status !== 0).map((x) => x.at - x.asked),
          );
          const { missing, repeats } = noticeFigures(noticesPerRow(emu, all));
          const figures = {
            mode,
            seconds_to_503: first503 ? secs(tCut, first503.at) : null,
            seconds_to_200: first200 ? secs(tRestore, first200.at) : null,
            healthz_during_cut: answers,
            slowest_healthz_answer_ms: slowest,
            rows_done: all.length - left.deletions,
            rows: all.length,
            messages_left: messagesLeft(emu, all),
            notices_missing: missing.length,
            notices_repeated: repeats,
            seconds_to_done: done ? secs(tRestore, tDone) : null,
            proxy: proxy.stats,
          };
          t.diagnostic(`database-down figures: ${JSON.stringify(figures)}`);

          assert.ok(aliveThroughCut && svc.alive, 'the process never exited');
          assert.ok(
            first503 && first503.at - tCut <= UNHEALTHY_WITHIN_MS,
            `/healthz 503 within ${UNHEALTHY_WITHIN_MS / 1000} s of the cut (${figures.seconds_to_503 ?? 'never'})`,
          );
          assert.ok(
            first200 && first200.at - tRestore <= HEALTHY_WITHIN_MS,
            `/healthz 200 within ${HEALTHY_WITHIN_MS / 1000} s of the restore (${figures.seconds_to_200 ?? 'never'})`,
          );
          assert.ok(
            done,
            `every delivery done after the cut (${left.deletions} rows, ${figures.messages_left} messages left)`,
          );
          assert.deepEqual(missing, [], 'every row got its "deleted" notice');
          const exit = await svc.stop();
          assert.equal(exit?.code, 0, 'stopped cleanly on SIGTERM');
        } finally {
          polling = false;
          await poller;
          if (svc.alive) await svc.current!.kill('SIGKILL');
          svc.saveLogs(`database-down-${mode}`);
          await proxy.close();
          await emu.close();
          await tdb.drop();
        }
      },
    );
  }
});
