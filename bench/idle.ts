/**
 * The CLI's start-up and the idle service's memory: `tg-janitor --help` wall time over several runs, and the resident
 * memory (VmRSS, sampled every 500 ms, and its peak VmHWM) of `tg-janitor start` on a fresh SQLite database with no
 * bot, once /healthz answers, for 15 s. `BENCH_BASELINE_BIN=/path/to/other/bin/tg-janitor.js` measures that one too
 * (e.g. a checkout of an earlier version) and prints the ratios.
 *
 *   npm run bench:idle
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/tg-janitor.js', import.meta.url));
const HELP_RUNS = 9;
const SAMPLE_MS = 500;
const IDLE_S = 15;

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

const kb = (status: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);

async function idleMemory(bin: string): Promise<{ rssMiB: number; peakMiB: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tgj-bench-idle-'));
  const child = spawn(process.execPath, [bin, 'start'], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: `sqlite:${join(dir, 'idle.db')}`,
      BACKUP_DIR: join(dir, 'backups'),
      HTTP_PORT: '0',
      LOG_FORMAT: 'json',
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
    const rss: number[] = [];
    for (let i = 0; i < (IDLE_S * 1000) / SAMPLE_MS; i++) {
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
      rss.push(kb(readFileSync(`/proc/${child.pid}/status`, 'utf8'), 'VmRSS'));
    }
    const peak = kb(readFileSync(`/proc/${child.pid}/status`, 'utf8'), 'VmHWM');
    return { rssMiB: median(rss) / 1024, peakMiB: peak / 1024 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(bin: string) {
  const help = helpSeconds(bin);
  return { helpS: median(help), helpMin: Math.min(...help), helpMax: Math.max(...help), ...(await idleMemory(bin)) };
}

export async function benchIdle(): Promise<void> {
  const bins: [string, string][] = [['this version', BIN]];
  if (process.env.BENCH_BASELINE_BIN) bins.push(['baseline', process.env.BENCH_BASELINE_BIN]);
  const rows: Record<string, Awaited<ReturnType<typeof measure>>> = {};
  for (const [name, bin] of bins) rows[name] = await measure(bin);
  const f = (n: number, d = 3) => n.toFixed(d);
  console.log(`\nCLI start-up and idle memory (--help: median of ${HELP_RUNS} runs; RSS: median of ${IDLE_S} s)`);
  for (const [name, r] of Object.entries(rows))
    console.log(
      `  ${name.padEnd(13)} --help ${f(r.helpS)} s (${f(r.helpMin)}–${f(r.helpMax)})  idle RSS ${f(r.rssMiB, 1)} MiB  peak ${f(r.peakMiB, 1)} MiB`,
    );
  const [a, b] = [rows['this version'], rows.baseline];
  if (a && b)
    console.log(
      `  ratio         --help ${f(a.helpS / b.helpS, 2)}  idle RSS ${f(a.rssMiB / b.rssMiB, 2)}  peak ${f(a.peakMiB / b.peakMiB, 2)}`,
    );
}

if (import.meta.url === `file://${process.argv[1]}`) await benchIdle();
