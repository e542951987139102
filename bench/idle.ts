/**
 * The CLI's start-up and the idle service: `tg-janitor --help` wall time over several runs, and for `tg-janitor
 * start` on a fresh SQLite database, once /healthz answers (plus 30 s, `--quick` 4 s: V8 still compiles after start,
 * and its memory reducer runs its full collections some 15 s after start-up's allocations stop), over 60 s (`--quick`: 10 s): its CPU (user + system, as a share of one core), its resident memory
 * (VmRSS sampled every 500 ms) and its peak (VmHWM) — without a bot, and with one long-polling the Bot API emulator. `BENCH_BASELINE_BIN=/path/to/other/bin/tg-janitor.js`
 * measures that one too (e.g. a checkout of an earlier version) and prints the ratios.
 *
 *   npm run bench:idle [-- --quick]
 */
import { statusKb } from './proc.ts';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BotApiEmulator } from '../src/demo/bot-api-emulator.ts';

const BIN = fileURLToPath(new URL('../bin/tg-janitor.js', import.meta.url));
const HELP_RUNS = 9;
const SAMPLE_MS = 500;
const QUICK = process.argv.includes('--quick');
const IDLE_S = QUICK ? 10 : 60;
/** How long after /healthz answers the idle window starts (`--quick`: shorter, a rougher figure). */
const SETTLE_MS = QUICK ? 4000 : 30_000;
/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const TICKS = 100;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

function helpSeconds(bin: string): number[] {
  const out: number[] = [];
  for (let i = 0; i <= HELP_RUNS; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${bin} --help failed: ${r.stderr}`);
    // The first run warms the file cache and is not counted.
    if (i > 0) out.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  return out;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  // The command name (field 2) may hold spaces: count the fields after its closing parenthesis.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS;
}

interface Idle {
  rssMiB: number;
  peakMiB: number;
  /** CPU over the window, percent of one core. */
  cpuPct: number;
}

async function idleService(bin: string, bot: { token: string; url: string } | null): Promise<Idle> {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-idle-'));
  const child = spawn(process.execPath, [bin, 'start'], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: `sqlite:${join(dir, 'idle.db')}`,
      BACKUP_DIR: join(dir, 'backups'),
      HTTP_PORT: '0',
      LOG_FORMAT: 'json',
      ...(bot ? { BOT_TOKEN: bot.token, BOT_API_ROOT: bot.url } : {}),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    // The service logs its URL once it listens.
    const url = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stderr.on('data', (c: Buffer) => {
        buf += String(c);
        const m = /"url":"(http:[^"]+)"/.exec(buf);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`the service exited (${code}): ${buf.slice(-500)}`)));
    });
    const health = await fetch(`${url}/healthz`);
    if (health.status !== 200) throw new Error(`/healthz answered ${health.status}`);
    // Start-up's own work (migrations, the first runs, the bot's first getUpdates) is not idling.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const pid = child.pid!;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const rss: number[] = [];
    for (let i = 0; i < (IDLE_S * 1000) / SAMPLE_MS; i++) {
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
      rss.push(statusKb(pid, 'VmRSS'));
    }
    const cpuPct = ((cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
    const peak = statusKb(pid, 'VmHWM');
    return { rssMiB: median(rss) / 1024, peakMiB: peak / 1024, cpuPct };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(bin: string, emu: BotApiEmulator) {
  const help = helpSeconds(bin);
  return {
    helpS: median(help),
    helpMin: Math.min(...help),
    helpMax: Math.max(...help),
    alone: await idleService(bin, null),
    withBot: await idleService(bin, { token: emu.token, url: emu.url }),
  };
}

/** What {@link benchIdle} measured, per version. */
export type IdleFigures = Record<string, Awaited<ReturnType<typeof measure>>>;

export async function benchIdle(): Promise<IdleFigures> {
  const bins: [string, string][] = [['this version', BIN]];
  if (process.env.BENCH_BASELINE_BIN) bins.push(['baseline', process.env.BENCH_BASELINE_BIN]);
  const emu = await BotApiEmulator.start();
  const rows: Record<string, Awaited<ReturnType<typeof measure>>> = {};
  try {
    for (const [name, bin] of bins) rows[name] = await measure(bin, emu);
  } finally {
    await emu.close();
  }
  const f = (n: number, d = 3) => n.toFixed(d);
  const idle = (i: Idle) => `CPU ${f(i.cpuPct, 2)} % of a core, RSS ${f(i.rssMiB, 1)} MiB (peak ${f(i.peakMiB, 1)})`;
  console.log(`\nCLI start-up (median of ${HELP_RUNS} runs; target < 0.5 s) and the idle service over ${IDLE_S} s`);
  console.log('(target: CPU < 0.5 % of a core without a bot and with one long-polling)');
  for (const [name, r] of Object.entries(rows)) {
    console.log(`  ${name}: --help ${f(r.helpS)} s (${f(r.helpMin)}–${f(r.helpMax)})`);
    console.log(`    no bot       ${idle(r.alone)}`);
    console.log(`    with a bot   ${idle(r.withBot)}`);
  }
  const [a, b] = [rows['this version'], rows.baseline];
  if (a && b)
    console.log(
      `  ratios: --help ${f(a.helpS / b.helpS, 2)}; no bot: CPU ${f(a.alone.cpuPct / b.alone.cpuPct, 2)}, RSS ` +
        `${f(a.alone.rssMiB / b.alone.rssMiB, 2)}; with a bot: CPU ${f(a.withBot.cpuPct / b.withBot.cpuPct, 2)}, RSS ` +
        `${f(a.withBot.rssMiB / b.withBot.rssMiB, 2)}`,
    );
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) await benchIdle();
