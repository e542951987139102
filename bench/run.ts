/**
 * `npm run bench [-- --quick]`: every benchmark in one run on the machine at hand, each figure beside its target
 * (issue 13), printed and written to bench/results.md and bench/results.json. `--quick` (under 2 minutes here):
 * 10,000 rows instead of 100,000, idle over 10 s instead of 60, 10 s of contention instead of 60, broadcasts of
 * 20,000, 10,000 and 5,000; rougher figures.
 *
 * Measured: A (deleter throughput on SQLite and PostgreSQL, the HTTP ceiling, grammY's default client), B (the seed's
 * algorithm on the same data shape), C (lateness of deletions and replies at Telegram's limits, idle and under a
 * broadcast's deletion and sending; 60 s each), D (a 1,000,000-recipient broadcast deleted at 2,500
 * calls/s, one to 300,000 users sent at 1,000/s, and one to 30,000 with every answer 100 ms late, as from real
 * Telegram; each in its own process) and E
 * (idle CPU and memory, --help).
 */
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { benchDeleter } from './deleter.ts';
import { httpCeiling } from './ceiling.ts';
import { benchIdle } from './idle.ts';
import { benchSeedAlgorithm } from './seed-algorithm.ts';
import { benchContention, type Spread } from './contention.ts';
import { benchBroadcastDeletion, benchBroadcastSending, type BroadcastFigures } from './broadcast.ts';

const quick = process.argv.includes('--quick');
const PG = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const rows = quick ? 10_000 : 100_000;

const ceiling = await httpCeiling(quick ? 5000 : 20_000);
const sqlite = await benchDeleter(rows);
// For comparison, no target: one due row per chat, so a notice (and its round trip) per row.
const single = await benchDeleter(quick ? 5_000 : 30_000, undefined, 1);
const schema = `bench_${randomBytes(4).toString('hex')}`;
let postgres;
try {
  postgres = await benchDeleter(rows, `${PG}?schema=${schema}`);
} finally {
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  await c.query(`drop schema if exists "${schema}" cascade`);
  await c.end();
}
const seed = await benchSeedAlgorithm(quick ? 1000 : 5000);
const idle = (await benchIdle())['this version']!;
const cIdle = await benchContention({ seconds: quick ? 10 : 60, contention: false });
const cBusy = await benchContention({ seconds: quick ? 10 : 60 });
const bDelete = await benchBroadcastDeletion(quick ? 20_000 : 1_000_000, 2500);
// 300,000 at 1,000/s is five minutes; a million would be seventeen (the memory is flat: see the quick run's 10,000).
const bSend = await benchBroadcastSending(quick ? 10_000 : 300_000, 1000);
const bSendFar = await benchBroadcastSending(quick ? 5_000 : 30_000, 1000, undefined, 100);

// A row takes 2 calls at best (one deleteMessages, one notice): the ceiling in rows/s is half the calls/s.
const ceilingRows = ceiling.plainHttpPerS / 2;
const f = (n: number, d = 0) => n.toFixed(d);
const ok = (met: boolean) => (met ? 'met' : 'missed');
const spreadText = (x: Spread) =>
  `p50 ${f(x.p50)} ms, p99 ${f(x.p99)} ms, max ${f(x.max)} ms (${x.n} samples${x.missing ? `, ${x.missing} never seen` : ''})`;
const lines: [string, string, string, string][] = [
  [
    'HTTP ceiling: plain keep-alive node:http',
    `${f(ceiling.plainHttpPerS)} calls/s (${f(ceilingRows)} rows/s)`,
    '—',
    '',
  ],
  ['HTTP: grammY default client (node-fetch)', `${f(ceiling.grammyDefaultPerS)} calls/s`, '—', ''],
  ['HTTP: grammY on the lean transport', `${f(ceiling.grammyLeanPerS)} calls/s`, '—', ''],
  ...[sqlite, postgres].map(
    (d) =>
      [
        `A ${d.dialect}: ${d.rows} rows, ${d.messages} messages`,
        `${f(d.rowsPerS)} rows/s (${f(d.rowsPerS / ceilingRows, 2)} of the ceiling), ${f(d.messagesPerS)} messages/s, ` +
          `${f(d.callsPerRow, 2)} calls/row, peak RSS ${f(d.peakRssMiB)} MiB`,
        `≥ ${f(ceilingRows / 2)} rows/s, ≤ 2 calls/row`,
        ok(d.rowsPerS >= ceilingRows / 2 && d.callsPerRow <= 2.0001),
      ] as [string, string, string, string],
  ),
  [
    `A sqlite, one row per chat: ${single.rows} rows (for comparison)`,
    `${f(single.rowsPerS)} rows/s (${f(single.rowsPerS / ceilingRows, 2)} of the ceiling), ${f(single.callsPerRow, 2)} calls/row`,
    '—',
    '',
  ],
  ['E idle CPU, no bot', `${f(idle.alone.cpuPct, 2)} % of a core`, '< 0.5 %', ok(idle.alone.cpuPct < 0.5)],
  [
    'E idle CPU, a bot long-polling',
    `${f(idle.withBot.cpuPct, 2)} % of a core`,
    '< 0.5 %',
    ok(idle.withBot.cpuPct < 0.5),
  ],
  ['E idle RSS (no bot / with a bot)', `${f(idle.alone.rssMiB)} / ${f(idle.withBot.rssMiB)} MiB`, '—', ''],
  ['E tg-janitor --help', `${f(idle.helpS, 3)} s`, '< 0.5 s', ok(idle.helpS < 0.5)],
  [
    `B the seed's algorithm, same data shape (${seed.rows} rows, sqlite)`,
    `${f(seed.rowsPerS)} rows/s, ${f(seed.callsPerRow, 2)} calls/row; A sqlite is ${f(sqlite.rowsPerS / seed.rowsPerS, 1)}x`,
    'ratio',
    '',
  ],
  ...[
    ['C idle: deletion lateness (a delivery due every second)', cIdle.lateness, 100],
    ['C idle: /start reply time', cIdle.reply, 1000],
    [`C contention: deletion lateness (${cBusy.seconds} s)`, cBusy.lateness, 1000],
    ['C contention: /start reply time (a newcomer every second)', cBusy.reply, 1000],
  ].map(
    ([what, x, goal]) =>
      [
        what as string,
        spreadText(x as Spread),
        `p99 ≤ ${goal === 100 ? '100 ms' : '1 s'}`,
        ok((x as Spread).p99 <= (goal as number) && (x as Spread).missing === 0),
      ] as [string, string, string, string],
  ),
  [
    'C contention: bulk work meanwhile (broadcast deletions and copies), all calls, 429s',
    `${f(cBusy.bulkPerS, 1)} bulk calls/s of ${f(cBusy.callsPerS, 1)} calls/s; ${cBusy.answered429} 429s`,
    'bulk not starved, no 429',
    ok(cBusy.bulkPerS > 0 && cBusy.answered429 === 0),
  ],
  ...[
    [`D broadcast deletion: ${bDelete.recipients} recipients`, bDelete],
    [`D paid broadcast sending: ${bSend.recipients} users`, bSend],
    [`D paid broadcast sending, every answer 100 ms late: ${bSendFar.recipients} users`, bSendFar],
  ].map(([what, d]) => {
    const b = d as BroadcastFigures;
    return [
      `${what as string} (${b.dialect}, ${b === bDelete ? 'TELEGRAM_RATE' : 'BROADCAST_PAID_RATE'} ${b.rate}, 429 above ${b.telegramLimit})`,
      `${f(b.seconds)} s, ${f(b.callsPerS)} calls/s (${f(b.ofRate * 100, 1)} % of the rate), ${b.answered429} 429s, ` +
        `peak RSS ${f(b.peakRssMiB)} MiB (${f(b.peakRssMiB * 1.048576)} MB)`,
      '≥ 90 % of the rate, no 429, peak RSS < 150 MB',
      ok(b.ofRate >= 0.9 && b.answered429 === 0 && b.peakRssMiB * 1.048576 < 150),
    ] as [string, string, string, string];
  }),
];
const md = [
  `# Benchmarks${quick ? ' (--quick)' : ''}`,
  '',
  `${new Date().toISOString()}, Node ${process.version}, one run on this machine (figures move with its load).`,
  '',
  '| What | Measured | Target | |',
  '| --- | --- | --- | --- |',
  ...lines.map((l) => `| ${l.join(' | ')} |`),
  '',
].join('\n');
const here = new URL('.', import.meta.url);
writeFileSync(new URL('results.md', here), md);
writeFileSync(
  new URL('results.json', here),
  `${JSON.stringify({ at: new Date().toISOString(), quick, ceiling, deleter: [sqlite, postgres], deleterOneRowPerChat: single, seed, idle, contention: { idle: cIdle, busy: cBusy }, broadcast: { deletion: bDelete, sending: bSend, sendingFar: bSendFar } }, null, 2)}\n`,
);
console.log(`\n${md}`);
