/** The benchmarks' side of emulator-process.ts: start it, seed messages, read its call counts, close it. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The emulator in its own process. */
export interface EmulatorProcess {
  url: string;
  token: string;
  /** Adds `perChat` messages to each chat; their ids, chat by chat. */
  seed(chats: number[], perChat: number): Promise<number[][]>;
  /** Calls received so far, by method. */
  methods(): Promise<Record<string, number>>;
  close(): void;
}

export async function startEmulatorProcess(): Promise<EmulatorProcess> {
  const child = fork(fileURLToPath(new URL('./emulator-process.ts', import.meta.url)), {
    execArgv: ['--import', 'tsx'],
  });
  let seq = 0;
  // What emulator-process.ts sends back: the ready message once, then one answer per `ask`, by id.
  type Reply = { id: number; ready?: boolean; url: string; token: string };
  const waiting = new Map<number, (v: unknown) => void>();
  const ready = new Promise<{ url: string; token: string }>((resolve) =>
    child.on('message', (m: Reply) => (m.ready ? resolve(m) : waiting.get(m.id)?.(m))),
  );
  const ask = (msg: object) =>
    new Promise<unknown>((resolve) => {
      const id = ++seq;
      waiting.set(id, resolve);
      child.send({ ...msg, id });
    });
  const { url, token } = await ready;
  return {
    url,
    token,
    seed: async (chats, perChat) => ((await ask({ cmd: 'seed', chats, perChat })) as { ids: number[][] }).ids,
    methods: async () => ((await ask({ cmd: 'stats' })) as { methods: Record<string, number> }).methods,
    close: () => child.send({ cmd: 'close' }),
  };
}
