/**
 * Due work for the fault suite: pending deletions whose messages exist in the emulator (inserted through the store
 * API, as the bot inserts them), broadcasts with recipients, and what the emulator shows afterwards (which
 * messages are left, which "deleted" notices each row got).
 */
import type { Store } from '../../src/store/db.ts';
import { insertDeletion } from '../../src/store/deletions.ts';
import { insertBroadcast } from '../../src/store/broadcasts.ts';
import { defaultNoticeFor, NOTICE_ROWS } from '../../src/jobs/deleted-notice.ts';
import type { BotApiEmulator, ReplyMarkup } from './bot-api-emulator.ts';

/** A small seeded PRNG (mulberry32): the same seed gives the same scenario. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One delivery: a pending deletion and its messages. */
export interface Delivery {
  id: number;
  chatId: number;
  userId: number;
  messageIds: number[];
  /** Distinct per row: the notice's "Click Here" link names it, so notices can be counted per row. */
  uniqueId: string;
  deleteAt: number;
}

/**
 * Creates `rows` deliveries over `chats` (row i in chat `chats[i % chats.length]`), each with `minMessages` to
 * `maxMessages` messages put into the emulator, and inserts their pending deletions. `deleteAt(i)` says when each is due.
 */
export async function seedDeliveries(
  store: Store,
  emu: BotApiEmulator,
  o: {
    rows: number;
    chats: number[];
    deleteAt: (i: number) => number;
    minMessages?: number;
    maxMessages?: number;
    random?: () => number;
    prefix?: string;
  },
): Promise<Delivery[]> {
  const random = o.random ?? Math.random;
  const min = o.minMessages ?? 1;
  const max = o.maxMessages ?? 5;
  const out: Delivery[] = [];
  for (let i = 0; i < o.rows; i++) {
    const chatId = o.chats[i % o.chats.length]!;
    const n = min + Math.floor(random() * (max - min + 1));
    const messageIds = Array.from({ length: n }, () => emu.addMessage(chatId, { text: `file ${i}` }));
    out.push({
      id: 0,
      chatId,
      userId: chatId,
      messageIds,
      uniqueId: `${o.prefix ?? 'row'}${i}`,
      deleteAt: o.deleteAt(i),
    });
  }
  await insertAll(store, out);
  return out;
}

/** Inserts the pending deletions of `deliveries` (sets their ids), a few at a time. */
export async function insertAll(store: Store, deliveries: Delivery[]): Promise<void> {
  const now = Date.now();
  for (let i = 0; i < deliveries.length; i += 8) {
    await Promise.all(
      deliveries.slice(i, i + 8).map(async (d) => {
        d.id = await insertDeletion(store, {
          userId: d.userId,
          chatId: d.chatId,
          messageIds: d.messageIds,
          deleteAt: d.deleteAt,
          uniqueId: d.uniqueId,
          createdAt: Math.min(now, d.deleteAt),
        });
      }),
    );
  }
}

/** A broadcast already sent to `chats` (one message each, in the emulator), due at `deleteAt`. */
export async function seedBroadcast(
  store: Store,
  emu: BotApiEmulator,
  o: { chats: number[]; deleteAt: number },
): Promise<{ id: number; messages: { chatId: number; messageId: number }[] }> {
  const hours = 1;
  const id = await insertBroadcast(store, {
    fromChatId: -1001234567890,
    messageId: 1,
    text: `broadcast ${o.deleteAt}`,
    caption: null,
    fileId: null,
    durationHours: hours,
    createdAt: o.deleteAt - hours * 3600_000,
    progressChatId: null,
    progressMessageId: null,
  });
  await store.db
    .updateTable('broadcasts')
    .set({ status: 'sent', sent_count: o.chats.length })
    .where('id', '=', id)
    .execute();
  const messages = o.chats.map((chatId) => ({ chatId, messageId: emu.addMessage(chatId, { text: 'broadcast' }) }));
  // The rows the sender records for each recipient's own message.
  for (let i = 0; i < messages.length; i += 500) {
    await store.db
      .insertInto('broadcast_messages')
      .values(messages.slice(i, i + 500).map((m) => ({ broadcast_id: id, chat_id: m.chatId, message_id: m.messageId })))
      .execute();
  }
  return { id, messages };
}

/** How many of the deliveries' messages are still in the emulator. */
export function messagesLeft(emu: BotApiEmulator, deliveries: Delivery[]): number {
  let n = 0;
  for (const d of deliveries) for (const m of d.messageIds) if (emu.hasMessage(d.chatId, m)) n++;
  return n;
}

/** The default "deleted" notice texts, for one file up to a notice's most. */
const DEFAULT_NOTICES = new Set(Array.from({ length: NOTICE_ROWS }, (_, i) => defaultNoticeFor(i + 1)));

/**
 * The rows (unique ids) a "deleted" notice names through its "Click Here" buttons, one per file; [] for any other
 * message. `text` is the admin's notice text, when one is set.
 */
export function noticeRows(message: { text?: unknown; reply_markup?: unknown }, text?: string): string[] {
  if (
    typeof message.text !== 'string' ||
    !(text === undefined ? DEFAULT_NOTICES.has(message.text) : message.text === text)
  )
    return [];
  const keyboard = (message.reply_markup as ReplyMarkup | undefined)?.inline_keyboard ?? [];
  return keyboard.flatMap((buttons) => {
    const url = String(buttons[0]?.url ?? '');
    const start = url ? new URL(url).searchParams.get('start') : null;
    return start === null ? [] : [start];
  });
}

/** The "deleted" notices in the emulator's chats, per row's unique id (what the user sees). */
export function noticesPerRow(emu: BotApiEmulator, deliveries: Delivery[], text?: string): Map<string, number> {
  const counts = new Map<string, number>(deliveries.map((d) => [d.uniqueId, 0]));
  for (const chat of new Set(deliveries.map((d) => d.chatId)))
    for (const m of emu.messages(chat))
      for (const start of noticeRows(m, text)) if (counts.has(start)) counts.set(start, counts.get(start)! + 1);
  return counts;
}

/** `{ rows with no notice, repeated notices (each copy past the first) }`. */
export function noticeFigures(counts: Map<string, number>): {
  missing: string[];
  repeats: number;
  repeatedRows: string[];
} {
  const missing: string[] = [];
  const repeatedRows: string[] = [];
  let repeats = 0;
  for (const [u, n] of counts) {
    if (n === 0) missing.push(u);
    if (n > 1) {
      repeats += n - 1;
      repeatedRows.push(u);
    }
  }
  return { missing, repeats, repeatedRows };
}

/** Calls per method in the emulator's log. */
export function callsByMethod(emu: BotApiEmulator, from = 0, to = Infinity): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of emu.calls) if (c.at >= from && c.at <= to) out[c.method] = (out[c.method] ?? 0) + 1;
  return out;
}

/** Rows left in the tables the deleters empty. */
export async function workLeft(store: Store): Promise<{ deletions: number; recipients: number; broadcasts: number }> {
  const count = async (table: 'pending_deletions' | 'broadcast_messages' | 'broadcasts') =>
    Number(
      (
        await store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    deletions: await count('pending_deletions'),
    recipients: await count('broadcast_messages'),
    broadcasts: await count('broadcasts'),
  };
}
