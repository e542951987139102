/**
 * Fault scenario 4, a 429 storm: one `tg-janitor start` with many workers busy (1,000 due rows over 300 chats, the
 * default concurrency) against a Bot API that admits 80 calls a second and answers the rest 429 with
 * retry_after = 3. From the emulator's call log: after a 429 answered at T, no call arrives before T + 3 s, i.e.
 * every worker honours the pause announced to the process.
 *
 * Tolerance: a call that arrives soon after a 429 may have left the process before it read that 429. The process
 * reads it on its event loop's next turn, and the emulator stamps a call's arrival on its own loop's turn, so the
 * tolerance is BASE_MS (50 ms, the answer's way back and the middleware) plus the larger of the two loops' delays
 * measured in that second (the service's from its /metrics, `nodejs_eventloop_lag_max_seconds`, read every second;
 * the emulator's with monitorEventLoopDelay). Alone on the machine both delays stay near 10 ms; with the whole suite
 * on two cores they reach hundreds of milliseconds. Calls within the tolerance are counted apart ("in flight"), not
 * as inside the pause. The pause's end gets CLOCK_MS (5 ms) for the millisecond clocks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { BotApiEmulator } from '../support/bot-api-emulator.ts';
import { createTestDb } from '../support/db.ts';
import { JanitorProcess, secs, serviceEnv, waitUntil } from '../support/janitor-process.ts';
import { callsByMethod, messagesLeft, noticeFigures, noticesPerRow, rng, seedDeliveries, workLeft } from '../support/deliveries.ts';

const RATE = 80;
const RETRY_AFTER_S = 3;
const BASE_MS = 50;
const CLOCK_MS = 5;

/** Event-loop delay samples: the worst delay (ms) seen in the second ending at `at`. */
type LagSample = { at: number; ms: number };

/** The worst of `samples` over [from - 1 s, to + 1 s]: the loop delay a call between from and to may have met. */
function lagAround(samples: LagSample[], from: number, to: number): number {
  let worst = 0;
  for (const s of samples) if (s.at >= from - 1000 && s.at <= to + 2000) worst = Math.max(worst, s.ms);
  return worst;
}

test('429 storm: retry_after is honoured by every worker (no call inside an announced pause)', { timeout: 420_000 }, async (t) => {
  const emu = await BotApiEmulator.start({ rateLimit: RATE, rateLimitRetryAfter: RETRY_AFTER_S });
  const tdb = await createTestDb('postgres');
  // The process may call twice as fast as the emulator admits: it runs into the limit again and again.
  const svc = new JanitorProcess('instance-1', serviceEnv({ databaseUrl: tdb.url, emu, extra: { TELEGRAM_RATE: String(RATE * 2) } }));
  try {
    const store = await tdb.open();
    const now = Date.now();
    const chats = Array.from({ length: 300 }, (_, i) => 50_001 + i);
    const deliveries = await seedDeliveries(store, emu, { rows: 1000, chats, deleteAt: () => now - 1000, maxMessages: 3, random: rng(4), prefix: 's' });
    const t0 = Date.now();
    await svc.start();
    const serviceLag: LagSample[] = [];
    const emulatorLag: LagSample[] = [];
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(1000); // one sample a second
        emulatorLag.push({ at: Date.now(), ms: loop.max / 1e6 });
        loop.reset();
        const text = await fetch(`${svc.url}/metrics`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text(), () => '');
        const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
        if (m) serviceLag.push({ at: Date.now(), ms: Number(m[1]) * 1000 });
      }
    })();
    let left = await workLeft(store);
    await waitUntil(
      async () => {
        left = await workLeft(store);
        return left.deletions === 0;
      },
      'every row done',
      330_000,
    );
    const tDone = Date.now();
    sampling = false;
    await sampler;
    loop.disable();
    const exit = await svc.stop();

    // Pauses as the emulator announced them: [T, T + retry_after), merged where they overlap.
    const calls = [...emu.calls].sort((a, b) => a.at - b.at);
    const limited = calls.filter((c) => c.status === 429);
    const pauses: { from: number; to: number }[] = [];
    for (const c of limited) {
      const to = c.at + RETRY_AFTER_S * 1000;
      const lastPause = pauses.at(-1);
      if (lastPause && c.at <= lastPause.to) lastPause.to = Math.max(lastPause.to, to);
      else pauses.push({ from: c.at, to });
    }
    let inside = 0;
    let inFlight = 0;
    const examples: string[] = [];
    // How long after the earliest 429 whose pause it fell in each such call arrived, in buckets (ms).
    const buckets = [50, 100, 200, 300, 500, 1000, 2000, 3000];
    const offsets: Record<string, number> = {};
    let widest = 0;
    for (const c of calls) {
      // The 429s (other than this call) whose announced pause this call arrived in.
      const covering = limited.filter((l) => l !== c && l.at <= c.at && c.at < l.at + RETRY_AFTER_S * 1000 - CLOCK_MS);
      if (covering.length === 0) continue;
      const first = covering[0]!;
      const since = c.at - first.at;
      const bucket = `<${buckets.find((b) => since < b)}`;
      offsets[bucket] = (offsets[bucket] ?? 0) + 1;
      const tolerance = BASE_MS + Math.max(lagAround(serviceLag, first.at, c.at), lagAround(emulatorLag, first.at, c.at));
      if (since <= tolerance) {
        inFlight++;
        widest = Math.max(widest, since);
        continue;
      }
      inside++;
      if (examples.length < 10) examples.push(`${c.method} +${since} ms after a 429 (answered ${c.status}; tolerance then ${Math.round(tolerance)} ms)`);
    }
    const maxLag = (xs: LagSample[]) => Math.round(Math.max(0, ...xs.map((x) => x.ms)));
    const counts = noticesPerRow(emu, deliveries);
    const { missing, repeats } = noticeFigures(counts);
    const figures = {
      rows: deliveries.length,
      calls: calls.length,
      calls_by_method: callsByMethod(emu),
      '429s': limited.length,
      pauses: pauses.length,
      paused_s: Math.round(pauses.reduce((n, p) => n + p.to - p.from, 0) / 100) / 10,
      calls_inside_a_pause: inside,
      calls_in_flight_when_paused: inFlight,
      latest_in_flight_ms: widest,
      arrivals_after_a_429_ms: offsets,
      tolerance_ms: { base: BASE_MS, clock: CLOCK_MS, service_loop_lag_max: maxLag(serviceLag), emulator_loop_lag_max: maxLag(emulatorLag) },
      seconds_to_done: secs(t0, tDone),
      notices_repeated: repeats,
    };
    t.diagnostic(`storm-429 figures: ${JSON.stringify(figures)}`);
    if (examples.length) t.diagnostic(`calls inside a pause: ${examples.join('; ')}`);

    assert.ok(limited.length >= 10, `a storm: at least 10 answers 429 (${limited.length})`);
    assert.equal(inside, 0, 'no call arrived inside a pause announced to the process');
    assert.equal(messagesLeft(emu, deliveries), 0, 'every message deleted');
    assert.deepEqual(missing, [], 'every row got its "deleted" notice');
    assert.equal(exit?.code, 0, 'stopped cleanly on SIGTERM');
  } finally {
    if (svc.alive) await svc.current!.kill('SIGKILL');
    svc.saveLogs('storm-429');
    await emu.close();
    await tdb.drop();
  }
});
