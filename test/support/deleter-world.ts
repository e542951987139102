/** The message deleter's suites' world: an emulator at a fixed instant, a test database and the deleter's deps. */
import { after, before, beforeEach } from 'node:test';
import type { MessageDeleterDeps } from '../../src/jobs/message-deleter.ts';
import type { Store } from '../../src/store/db.ts';
import { createTestDb, type Backend, type TestDb } from './db.ts';
import { BotApiEmulator } from './bot-api-emulator.ts';
import { emulatorTelegram } from './telegram.ts';

/** What a suite's tests use; filled in by the suite's `before`. */
export interface DeleterWorld {
  emu: BotApiEmulator;
  /** The suite's database (another connection: `tdb.open()`). */
  tdb: TestDb;
  store: Store;
  deps: MessageDeleterDeps;
}

/**
 * Registers the current suite's hooks: one emulator (its clock at `now`) and one database of `backend` for the suite,
 * and before each test no rows of `tables` and an empty call log (chat ids differ per test, so the emulator's chats
 * can stay). Read the world's fields inside tests.
 */
export function deleterWorld(
  backend: Backend,
  o: { now: number; owner: string; tables: ('pending_deletions' | 'users' | 'settings' | 'day_counters')[] },
): DeleterWorld {
  const w = {} as DeleterWorld;
  before(async () => {
    w.emu = await BotApiEmulator.start({ now: () => o.now });
    w.tdb = await createTestDb(backend);
    w.store = await w.tdb.open();
    w.deps = { store: w.store, telegram: emulatorTelegram(w.emu, { timeoutSeconds: 2 }), owner: o.owner };
  });
  after(async () => {
    await w.tdb.drop();
    await w.emu.close();
  });
  beforeEach(async () => {
    for (const t of o.tables) await w.store.db.deleteFrom(t).execute();
    w.emu.resetCalls();
  });
  return w;
}
