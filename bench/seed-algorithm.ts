/**
 * Benchmark B: the seed's message deleter on benchmark A's data shape — query the due rows, then row by row: one
 * `deleteMessage` per message id, the "deleted" notice, then the record removed — through grammY's default client
 * against the emulator in its own process. Its rows/s beside the deleter's gives the ratio (the minute's wait
 * between polls is left out: this is the seed's best case).
 */
import { startEmulatorProcess } from './emulator-client.ts';
import { seedDueRows } from './deleter.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api } from 'grammy';
import { openStore } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';

/** What the seed's algorithm did. */
export interface SeedFigures {
  rows: number;
  seconds: number;
  rowsPerS: number;
  callsPerRow: number;
}

export async function benchSeedAlgorithm(rows = Number(process.env.BENCH_SEED_ROWS ?? 5000)): Promise<SeedFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-seed-'));
  const emu = await startEmulatorProcess();
  const store = await openStore(`sqlite:${join(dir, 'seed.db')}`);
  try {
    await migrateToLatest(store);
    await seedDueRows(store, emu, Math.ceil(rows / 5), 5_000_000);
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
    emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchSeedAlgorithm();
