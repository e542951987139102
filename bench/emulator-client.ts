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
  /** Per method: calls, answers by HTTP status, first and last arrival (ms epoch). */
  report(): Promise<Record<string, MethodReport>>;
  close(): void;
}

/** What the emulator saw of one method. */
export interface MethodReport {
  calls: number;
  /** Answers by HTTP status (0: none, the call hung or its socket was cut). */
  status: Record<string, number>;
  first: number;
  last: number;
}

/** Starts the emulator in a child process; `options` are its EmulatorOptions' plain fields (e.g. `rateLimit`). */
export async function startEmulatorProcess(options: Record<string, unknown> = {}): Promise<EmulatorProcess> {
  const child = fork(fileURLToPath(new URL('./emulator-process.ts', import.meta.url)), {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_EMU_OPTIONS: JSON.stringify(options) },
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
    report: async () => ((await ask({ cmd: 'stats' })) as { report: Record<string, MethodReport> }).report,
    close: () => child.send({ cmd: 'close' }),
  };
}
