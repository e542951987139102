/**
 * The Bot API emulator in its own process, so a benchmark measures the client's time and memory, not the server's.
 * `BENCH_EMU_OPTIONS` (JSON of EmulatorOptions' plain fields, e.g. `{"rateLimit":3000}`) sets it up.
 */
import { BotApiEmulator, type EmulatorOptions } from '../test/support/bot-api-emulator.ts';

const emu = await BotApiEmulator.start(JSON.parse(process.env.BENCH_EMU_OPTIONS ?? '{}') as EmulatorOptions);
process.on('message', (m: { cmd: string; chats?: number[]; perChat?: number; id?: number }) => {
  if (m.cmd === 'seed') {
    const ids = m.chats!.map((c) => Array.from({ length: m.perChat! }, () => emu.addMessage(c)));
    process.send!({ id: m.id, ids });
  } else if (m.cmd === 'stats') {
    // Per method: calls, answers by HTTP status, and the first and last call's arrival (ms epoch).
    const methods: Record<string, number> = {};
    const report: Record<string, { calls: number; status: Record<number, number>; first: number; last: number }> = {};
    for (const c of emu.calls) {
      methods[c.method] = (methods[c.method] ?? 0) + 1;
      const r = (report[c.method] ??= { calls: 0, status: {}, first: c.at, last: c.at });
      r.calls++;
      r.status[c.status] = (r.status[c.status] ?? 0) + 1;
      r.last = Math.max(r.last, c.at);
    }
    process.send!({ id: m.id, methods, report });
  } else if (m.cmd === 'close') void emu.close().then(() => process.exit(0));
});
process.send!({ ready: true, url: emu.url, token: emu.token });
