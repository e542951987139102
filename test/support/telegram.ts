/** The service's own Bot API client, pointed at a test emulator. */
import { createTelegram, type Telegram, type TelegramOptions } from '../../src/telegram/client.ts';
import type { BotApiEmulator } from './bot-api-emulator.ts';

/** `createTelegram` for `emu`: no throttle and no retries, unless `overrides` say otherwise. */
export function emulatorTelegram(emu: BotApiEmulator, overrides: Partial<TelegramOptions> = {}): Telegram {
  return createTelegram({ token: emu.token, apiRoot: emu.url, rate: 0, retries: 0, ...overrides });
}
