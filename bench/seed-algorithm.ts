/**
 * Benchmark B: the seed's message deleter on benchmark A's data shape — query the due rows, then row by row: one
 * `deleteMessage` per message id, the "deleted" notice, then the record removed — through grammY's default client
 * against the emulator in its own process. Its rows/s beside the deleter's gives the ratio (the minute's wait
 * between polls is left out: this is the seed's best case).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Api } from 'grammy';
import { openStore } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';

const PER_ROW = [1, 2, 3, 4, 5];

/** What the seed's algorithm did. */
export interface SeedFigures {
  rows: number;
  seconds: number;
  rowsPerS: number;
  callsPerRow: number;
}

export async function benchSeedAlgorithm(rows = Number(process.env.BENCH_SEED_ROWS ?? 5000)): Promise<SeedFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-seed-'));
  const child = fork(fileURLToPath(new URL('./emulator-process.ts', import.meta.url)), {
    execArgv: ['--import', 'tsx'],
  });
  let seq = 0;
  const waiting = new Map<number, (v: unknown) => void>();
  type Reply = { id: number; ready?: boolean; url: string; token: string };
  const ready = new Promise<{ url: string; token: string }>((resolve) =>
    child.on('message', (m: Reply) => (m.ready ? resolve(m) : waiting.get(m.id)?.(m))),
  );
  const ask = (msg: object) =>
    new Promise<unknown>((resolve) => {
      const id = ++seq;
      waiting.set(id, resolve);
      child.send({ ...msg, id });
    });
  const emu = await ready;
  const store = await openStore(`sqlite:${join(dir, 'seed.db')}`);
  try {
    await migrateToLatest(store);
    const chats = Array.from({ length: Math.ceil(rows / PER_ROW.length) }, (_, i) => 5_000_000 + i);
    const { ids } = (await ask({ cmd: 'seed', chats, perChat: 15 })) as { ids: number[][] };
    const now = Date.now();
    const all = chats.flatMap((chat, c) => {
      let at = 0;
      return PER_ROW.map((n, k) => {
        const messageIds = ids[c]!.slice(at, (at += n));
        return {
          source_id: null,
          dedupe_key: `seed:${chat}:${k}`,
          user_id: chat,
          chat_id: chat,
          message_ids: JSON.stringify(messageIds),
          delete_at: now - 1000,
          unique_id: `f${k}`,
          created_at: now - 60_000,
          attempts: 0,
          next_attempt_at: now - 1000,
          last_error: null,
          messages_deleted: 0,
          claimed_by: null,
          claim_expires_at: null,
        };
      });
    });
    for (let i = 0; i < all.length; i += 500)
      await store.db
        .insertInto('pending_deletions')
        .values(all.slice(i, i + 500))
        .execute();
    const api = new Api(emu.token, { apiRoot: emu.url });
    let calls = 0;
    const t = performance.now();
    // The seed's flow: every due row, in turn.
    const due = await store.db
      .selectFrom('pending_deletions')
      .selectAll()
      .where('delete_at', '<=', Date.now())
      .execute();
    for (const row of due) {
      for (const m of JSON.parse(row.message_ids) as number[]) {
        calls++;
        await api.deleteMessage(row.chat_id, m).catch(() => undefined);
      }
      calls++;
      await api.sendMessage(row.chat_id, 'The file was deleted.', {
        reply_markup: { inline_keyboard: [[{ text: 'Click Here', url: `https://t.me/bot?start=${row.unique_id}` }]] },
      });
      await store.db.deleteFrom('pending_deletions').where('id', '=', row.id).execute();
    }
    const seconds = (performance.now() - t) / 1000;
    const figures = { rows: due.length, seconds, rowsPerS: due.length / seconds, callsPerRow: calls / due.length };
    console.log(
      `the seed's algorithm on sqlite: ${due.length} rows in ${seconds.toFixed(2)} s, ${figures.rowsPerS.toFixed(0)} rows/s, ${figures.callsPerRow.toFixed(2)} calls/row`,
    );
    return figures;
  } finally {
    await store.close();
    child.send({ cmd: 'close' });
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchSeedAlgorithm();
