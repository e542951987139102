/** The Bot API emulator in its own process, so a benchmark measures the client's time and memory, not the server's. */
import { BotApiEmulator } from '../test/support/bot-api-emulator.ts';

const emu = await BotApiEmulator.start();
process.on('message', (m: { cmd: string; chats?: number[]; perChat?: number; id?: number }) => {
  if (m.cmd === 'seed') {
    const ids = m.chats!.map((c) => Array.from({ length: m.perChat! }, () => emu.addMessage(c)));
    process.send!({ id: m.id, ids });
  } else if (m.cmd === 'stats') {
    const methods: Record<string, number> = {};
    for (const c of emu.calls) methods[c.method] = (methods[c.method] ?? 0) + 1;
    process.send!({ id: m.id, methods });
  } else if (m.cmd === 'close') void emu.close().then(() => process.exit(0));
});
process.send!({ ready: true, url: emu.url, token: emu.token });
