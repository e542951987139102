/**
 * The HTTP ceiling beside benchmark A: how many `deleteMessage` calls a second reach the same emulator (in its own
 * process, no rate limit) through plain `node:http` with keep-alive, through grammY's default client (node-fetch), and
 * through grammY on this project's lean transport; 64 calls in flight each time.
 */
import { startEmulatorProcess } from './emulator-client.ts';
import http from 'node:http';
import { Api } from 'grammy';
import { leanFetch } from '../src/telegram/transport.ts';

const IN_FLIGHT = 64;

/** Calls per second of each client. */
export interface CeilingFigures {
  calls: number;
  plainHttpPerS: number;
  grammyDefaultPerS: number;
  grammyLeanPerS: number;
}

export async function httpCeiling(calls = Number(process.env.BENCH_CEILING_CALLS ?? 20_000)): Promise<CeilingFigures> {
  const emu = await startEmulatorProcess();
  try {
    // Three runs' worth of real messages: every call deletes one that exists.
    const chats = Array.from({ length: 1000 }, (_, i) => 3_000_000 + i);
    const perChat = Math.ceil((3 * calls + 6000) / chats.length);
    const ids = await emu.seed(chats, perChat);
    const targets = chats.flatMap((c, i) => ids[i]!.map((m) => [c, m] as const));
    let next = 0;
    const run = async (one: (chat: number, message: number) => Promise<unknown>) => {
      const start = next;
      next += calls;
      const t = performance.now();
      let i = start;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (i < start + calls) {
            const [c, m] = targets[i++]!;
            await one(c, m);
          }
        }),
      );
      return calls / ((performance.now() - t) / 1000);
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    const plain = (chat: number, message: number) =>
      new Promise<void>((resolve, reject) => {
        const body = JSON.stringify({ chat_id: chat, message_id: message });
        const req = http.request(
          `${emu.url}/bot${emu.token}/deleteMessage`,
          { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
          (res) => {
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const grammyDefault = new Api(emu.token, { apiRoot: emu.url });
    const grammyLean = new Api(emu.token, { apiRoot: emu.url, fetch: leanFetch({ maxSockets: IN_FLIGHT }) });
    // One round of each first, not counted: the JIT and the sockets warm up.
    const warm = calls;
    calls = Math.min(2000, calls);
    await run(plain);
    await run((c, m) => grammyDefault.deleteMessage(c, m));
    await run((c, m) => grammyLean.deleteMessage(c, m));
    calls = warm;
    const figures: CeilingFigures = {
      calls,
      plainHttpPerS: await run(plain),
      grammyDefaultPerS: await run((c, m) => grammyDefault.deleteMessage(c, m)),
      grammyLeanPerS: await run((c, m) => grammyLean.deleteMessage(c, m)),
    };
    agent.destroy();
    console.log(
      `HTTP ceiling, ${calls} deleteMessage calls, ${IN_FLIGHT} in flight: plain keep-alive ${figures.plainHttpPerS.toFixed(0)}/s, ` +
        `grammY default ${figures.grammyDefaultPerS.toFixed(0)}/s, grammY on the lean transport ${figures.grammyLeanPerS.toFixed(0)}/s`,
    );
    return figures;
  } finally {
    emu.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await httpCeiling();
