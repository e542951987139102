/**
 * What the message deleter sends for one chat's due rows, decided without I/O: how their message ids go into
 * `deleteMessages` calls, and how their "deleted" notices are shared — one notice for up to {@link NOTICE_ROWS} rows
 * of a chat, with a "Click Here" button per file. A user whose five files fall due together gets one notice instead
 * of five (which Telegram's one message a second per chat would also spread over five seconds), and a process kill
 * repeats at most that one notice.
 */
import { startLink } from '../telegram/links.ts';

/** The notice sent after a deletion when the `deleted_notice_text` setting is not set. */
export const DEFAULT_DELETED_NOTICE =
  '🗑️ The file you received has been deleted, as announced.\n\nClick the button below to get it again.';

/** Most ids `deleteMessages` takes in one call. */
export const DELETE_BATCH = 100;

/** Most rows one notice stands for (one button each, one under the other). */
export const NOTICE_ROWS = 10;

/** The default notice for `files` rows at once (the admin's own text is sent as it is, whatever the count). */
export function defaultNoticeFor(files: number): string {
  if (files <= 1) return DEFAULT_DELETED_NOTICE;
  return `🗑️ The ${files} files you received have been deleted, as announced.\n\nClick a button below to get one again.`;
}

/** One `deleteMessages` call: its ids and the rows (indexes into the chat's rows) whose messages they are. */
export interface DeleteCall {
  ids: number[];
  rows: number[];
}

/**
 * Packs the rows' message ids into `deleteMessages` calls of at most {@link DELETE_BATCH} ids, whole rows together
 * where they fit (a row with more ids than that gets calls of its own), in the rows' order. A call's outcome is its
 * rows' outcome.
 */
export function packDeletes(rows: readonly (readonly number[])[]): DeleteCall[] {
  const calls: DeleteCall[] = [];
  let open: DeleteCall | null = null;
  rows.forEach((ids, row) => {
    if (ids.length === 0) return;
    if (ids.length > DELETE_BATCH) {
      open = null;
      for (let i = 0; i < ids.length; i += DELETE_BATCH)
        calls.push({ ids: ids.slice(i, i + DELETE_BATCH), rows: [row] });
      return;
    }
    if (!open || open.ids.length + ids.length > DELETE_BATCH) {
      open = { ids: [], rows: [] };
      calls.push(open);
    }
    open.ids.push(...ids);
    open.rows.push(row);
  });
  return calls;
}

/** Splits rows needing a notice into notices of at most {@link NOTICE_ROWS}, in order. */
export function noticeGroups<T>(rows: readonly T[]): T[][] {
  const groups: T[][] = [];
  for (let i = 0; i < rows.length; i += NOTICE_ROWS) groups.push(rows.slice(i, i + NOTICE_ROWS));
  return groups;
}

/** The inline keyboard of a notice: "Click Here" for one file, "Click Here (n)" for each of several; none without. */
export function noticeMarkup(
  username: string | null,
  uniqueIds: readonly (string | null)[],
): { reply_markup?: { inline_keyboard: { text: string; url: string }[][] } } {
  if (!username) return {};
  const files = [...new Set(uniqueIds.filter((u): u is string => Boolean(u)))];
  if (files.length === 0) return {};
  const label = (i: number) => (files.length === 1 ? 'Click Here' : `Click Here (${i + 1})`);
  return { reply_markup: { inline_keyboard: files.map((u, i) => [{ text: label(i), url: startLink(username, u) }]) } };
}
