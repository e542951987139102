/**
 * The original bot's MongoDB collections as JSON Lines: parsing (including MongoDB Extended JSON as mongoexport
 * writes it), validation, and formatting back. Pure: no I/O, no clock (callers pass "now").
 *
 * Parsed documents come out in the shape of the database rows (instants as UTC epoch milliseconds, booleans 0/1,
 * JSON-encoded columns encoded), so the import only has to write them.
 */
import { daysIn, parseIso } from '../clock.ts';
import { pendingDeletionDedupeKey } from '../store/deletions.ts';
import { broadcastDedupeKey } from '../store/broadcasts.ts';
import type { NumberSettingKey } from '../store/settings.ts';
import { SETTING_RANGES } from '../config.ts';
import {
  TOKEN_STATUSES,
  type Broadcast,
  type BroadcastMessagesTable as BroadcastMessageRow,
  type BroadcastStatus,
  type PendingDeletion,
  type Token,
  type TokenCount,
  type User,
} from '../store/schema.ts';

export { COLLECTIONS, isCollection, type Collection } from './names.ts';
import type { Collection } from './names.ts';

/** Broadcast statuses a document may carry (the schema's {@link BroadcastStatus}). */
export const BROADCAST_STATUSES: readonly BroadcastStatus[] = ['sending', 'sent', 'deleting'];

/** A document that does not validate; `field` names it (`messages[2].chat_id`), null when the whole document is wrong. */
export class DocumentError extends Error {
  constructor(
    readonly field: string | null,
    readonly detail: string,
  ) {
    super(field === null ? detail : `field "${field}": ${detail}`);
    this.name = 'DocumentError';
  }
}

/** A bad line in an import: `line` is 1-based, `field` as in {@link DocumentError} (null for JSON syntax errors). */
export class ImportError extends Error {
  constructor(
    readonly line: number,
    readonly field: string | null,
    readonly detail: string,
  ) {
    super(field === null ? `line ${line}: ${detail}` : `line ${line}: field "${field}": ${detail}`);
    this.name = 'ImportError';
  }
}

/** A `users` document; `joined_at` is null when the document has none (the import keeps the row's, or uses now). */
export interface UserDoc extends Omit<User, 'joined_at'> {
  joined_at: number | null;
}

/** Columns only the app itself sets: never imported or exported. */
type Internal =
  | 'id'
  | 'messages_deleted'
  | 'claimed_by'
  | 'claim_expires_at'
  | 'from_chat_id'
  | 'send_cursor'
  | 'sent_count'
  | 'failed_count'
  | 'progress_chat_id'
  | 'progress_message_id';

/** A `pending_deletions` document as a row (`message_ids` still an array). */
export type PendingDeletionDoc = Omit<PendingDeletion, Internal | 'message_ids'> & { message_ids: number[] };

/** One recipient copy of a broadcast. */
export type BroadcastMessage = Pick<BroadcastMessageRow, 'chat_id' | 'message_id'>;

/** A `broadcasts` document as a row plus its recipients (unique by chat_id). */
export type BroadcastDoc = Omit<Broadcast, Internal | 'status'> & {
  status: BroadcastStatus;
  messages: BroadcastMessage[];
};

/** A `settings` document; `value` is JSON-encoded, as stored. */
export interface SettingDoc {
  key: string;
  value: string;
}

/** What {@link parseDocument} returns for each collection. */
export interface DocumentOf {
  users: UserDoc;
  tokens: Token;
  token_generator_count: TokenCount;
  pending_deletions: PendingDeletionDoc;
  broadcasts: BroadcastDoc;
  settings: SettingDoc;
}

type Doc = Record<string, unknown>;
type Parse<T> = (v: unknown, field: string) => T;

const INT4_MAX = 2_147_483_647;
// toISOString() writes a plain 4-digit year only inside this range, and only that form parses back.
const MIN_MS = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
const MAX_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
const DATE_FORMS = 'a date (ISO-8601 string, epoch milliseconds or {"$date": …}) between years 0000 and 9999';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

const isObj = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The single key of a `{"$…": …}` wrapper, or null. */
function wrapper(v: unknown): string | null {
  if (!isObj(v)) return null;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0]!.startsWith('$') ? keys[0]! : null;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  // JSON where there is any; String() for what JSON cannot spell (a function, a symbol).
  // eslint-disable-next-line @typescript-eslint/no-base-to-string
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function fail(field: string, expected: string, v: unknown): never {
  throw new DocumentError(field, `expected ${expected}, got ${show(v)}`);
}

function req<T>(doc: Doc, field: string, parse: Parse<T>): T {
  if (doc[field] === undefined) throw new DocumentError(field, 'is required');
  return parse(doc[field], field);
}

/** Missing and null both mean "not given". */
function opt<T>(doc: Doc, field: string, parse: Parse<T>): T | null {
  const v = doc[field];
  return v === undefined || v === null ? null : parse(v, field);
}

function integer(min: number, max: number, expected: string): Parse<number> {
  return (v, field) => {
    let n = v;
    const w = wrapper(v);
    if (w === '$numberLong' || w === '$numberInt') {
      const s = (v as Doc)[w];
      n = typeof s === 'string' && /^-?\d+$/.test(s) ? Number(s) : NaN;
    }
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) fail(field, expected, v);
    return n;
  };
}

const SAFE = Number.MAX_SAFE_INTEGER;
/** Telegram user ids: positive. */
const userId = integer(1, SAFE, `a positive safe integer (at most ${SAFE})`);
/** Chat and channel ids: channels and groups are negative. */
const chatId = integer(-SAFE, SAFE, `a safe integer (magnitude at most ${SAFE})`);
const messageId = integer(1, SAFE, `a positive safe integer (at most ${SAFE})`);
// These are 32-bit `integer` columns on PostgreSQL.
const count = integer(0, INT4_MAX, `a whole number from 0 to ${INT4_MAX}`);

function flag(v: unknown, field: string): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  return integer(0, 1, 'true, false, 0 or 1')(v, field);
}

function real(v: unknown, field: string): number {
  const w = wrapper(v);
  const n = w === '$numberDouble' || w === '$numberInt' || w === '$numberLong' ? Number((v as Doc)[w]) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) fail(field, 'a non-negative number', v);
  return n;
}

function str(nonEmpty: boolean): Parse<string> {
  return (v, field) => {
    if (typeof v !== 'string' || (nonEmpty && v === '')) fail(field, nonEmpty ? 'a non-empty string' : 'a string', v);
    // PostgreSQL text cannot hold NUL, and an unpaired surrogate would be replaced on the way in: both break round trips.
    if (v.includes('\u0000'))
      throw new DocumentError(field, 'contains a NUL character (\\u0000), which PostgreSQL cannot store');
    if (LONE_SURROGATE.test(v))
      throw new DocumentError(field, 'contains an unpaired UTF-16 surrogate (not valid Unicode)');
    return v;
  };
}
const text = str(false);
const name = str(true);

function oneOf<T extends string>(values: readonly T[]): Parse<T> {
  return (v, field) =>
    (values as readonly unknown[]).includes(v) ? (v as T) : fail(field, `one of ${values.join(', ')}`, v);
}

/** An instant: ISO string, epoch ms (a number or `{"$numberLong"}`), `{"$date": any of those}` → epoch ms. */
function instant(v: unknown, field: string): number {
  let inner = v;
  if (wrapper(v) === '$date') inner = (v as Doc).$date;
  let ms: number | null = null;
  if (typeof inner === 'number') ms = Number.isSafeInteger(inner) ? inner : null;
  else if (typeof inner === 'string') ms = parseIso(inner);
  else if (wrapper(inner) === '$numberLong') {
    const s = (inner as Doc).$numberLong;
    ms = typeof s === 'string' && /^-?\d+$/.test(s) ? Number(s) : null;
  }
  if (ms === null || !Number.isSafeInteger(ms) || ms < MIN_MS || ms > MAX_MS) fail(field, DATE_FORMS, v);
  return ms;
}

/** A calendar day: "YYYY-MM-DD" as is, or the UTC day of an instant. */
function day(v: unknown, field: string): string {
  if (typeof v === 'string' && DAY.test(v)) {
    const [y, m, d] = v.split('-').map(Number) as [number, number, number];
    if (m < 1 || m > 12 || d < 1 || d > daysIn(y, m)) fail(field, 'a real calendar date "YYYY-MM-DD"', v);
    return v;
  }
  try {
    return new Date(instant(v, field)).toISOString().slice(0, 10);
  } catch {
    // Neither a day nor an instant: reported with the forms a day may take.
    return fail(field, `a day "YYYY-MM-DD" or ${DATE_FORMS}`, v);
  }
}

/** `_id`: a string, a safe integer or `{"$oid": hex}` → string. */
function sourceId(v: unknown, field: string): string {
  if (wrapper(v) === '$oid') {
    const hex = (v as Doc).$oid;
    if (typeof hex === 'string' && /^[0-9a-fA-F]{24}$/.test(hex)) return hex;
    return fail(field, 'an ObjectId of 24 hex digits', v);
  }
  if (typeof v === 'string') return name(v, field);
  return String(integer(-SAFE, SAFE, 'a string, a safe integer or {"$oid": "…"}')(v, field));
}

function array<T>(item: Parse<T>): Parse<T[]> {
  return (v, field) => (Array.isArray(v) ? v.map((x, i) => item(x, `${field}[${i}]`)) : fail(field, 'an array', v));
}

function recipient(v: unknown, field: string): BroadcastMessage {
  if (!isObj(v)) fail(field, 'an object {"chat_id": …, "message_id": …}', v);
  const part = <T>(key: string, parse: Parse<T>): T => {
    if (v[key] === undefined) throw new DocumentError(`${field}.${key}`, 'is required');
    return parse(v[key], `${field}.${key}`);
  };
  return { chat_id: part('chat_id', chatId), message_id: part('message_id', messageId) };
}

// The keys live with the tables, so rows the app creates and rows imported dedupe the same way.
export { pendingDeletionDedupeKey, broadcastDedupeKey };

const parsers: { [C in Collection]: (doc: Doc, now: number) => DocumentOf[C] } = {
  users: (doc) => ({
    user_id: req(doc, 'user_id', userId),
    username: opt(doc, 'username', text),
    first_name: opt(doc, 'first_name', text),
    joined_at: opt(doc, 'joined_at', instant),
    is_banned: opt(doc, 'is_banned', flag) ?? 0,
    user_access_count: opt(doc, 'user_access_count', count) ?? 0,
    blocked_at: opt(doc, 'blocked_at', instant),
  }),
  tokens: (doc) => ({
    token: req(doc, 'token', name),
    unique_id: req(doc, 'unique_id', name),
    created_by: req(doc, 'created_by', userId),
    status: req(doc, 'status', oneOf(TOKEN_STATUSES)),
    created_at: req(doc, 'created_at', instant),
    expires_at: req(doc, 'expires_at', instant),
    file_unique_id: opt(doc, 'file_unique_id', text),
    // Internal, but it changes how the token verifies (no referer expected): kept across a move.
    direct_link: opt(doc, 'direct_link', flag) ?? 0,
  }),
  token_generator_count: (doc) => ({
    user_id: req(doc, 'user_id', userId),
    date: req(doc, 'date', day),
    token_generated: opt(doc, 'token_generated', count) ?? 0,
  }),
  pending_deletions: (doc, now) => {
    const d = {
      source_id: opt(doc, '_id', sourceId),
      user_id: req(doc, 'user_id', userId),
      chat_id: req(doc, 'chat_id', chatId),
      message_ids: req(doc, 'message_ids', array(messageId)),
      delete_at: req(doc, 'delete_at', instant),
      unique_id: opt(doc, 'unique_id', text),
      created_at: opt(doc, 'created_at', instant) ?? now,
      attempts: opt(doc, 'attempts', count) ?? 0,
      next_attempt_at: opt(doc, 'next_attempt_at', instant),
      last_error: opt(doc, 'last_error', text),
      // Rows made before the flag existed, and the original bot's, always had the notice.
      notice: opt(doc, 'notice', flag) ?? 1,
    };
    // Never workable before delete_at: an earlier retry time would only make the waker poll a row it cannot take.
    return {
      ...d,
      next_attempt_at: Math.max(d.next_attempt_at ?? d.delete_at, d.delete_at),
      dedupe_key: pendingDeletionDedupeKey(d),
    };
  },
  broadcasts: (doc) => {
    const d = {
      source_id: opt(doc, '_id', sourceId),
      message_id: opt(doc, 'message_id', messageId),
      text: opt(doc, 'text', text),
      caption: opt(doc, 'caption', text),
      file_id: opt(doc, 'file_id', text),
      duration_hours: opt(doc, 'duration_hours', real),
      channel_message_id: opt(doc, 'channel_message_id', messageId),
      created_at: opt(doc, 'created_at', instant),
      delete_at: req(doc, 'delete_at', instant),
      status: opt(doc, 'status', oneOf(BROADCAST_STATUSES)) ?? 'sent',
    };
    // One row per recipient chat (the table's key): the first copy listed wins.
    const messages = new Map<number, BroadcastMessage>();
    for (const m of opt(doc, 'messages', array(recipient)) ?? [])
      if (!messages.has(m.chat_id)) messages.set(m.chat_id, m);
    // A missing created_at is derived from delete_at and the duration, never from the import's clock: importing the
    // same file twice, or re-importing its export, gives the same key.
    const created_at = d.created_at ?? d.delete_at - Math.round((d.duration_hours ?? 0) * 3600_000);
    const full = { ...d, created_at };
    return { ...full, dedupe_key: broadcastDedupeKey(full), messages: [...messages.values()] };
  },
  settings: (doc) => {
    const key = req(doc, 'key', name);
    if (doc.value === undefined) throw new DocumentError('value', 'is required');
    // The settings the bots read are checked as the admin's commands check them; other keys are kept as they are.
    if (Object.hasOwn(SETTING_RANGES, key)) {
      const r = SETTING_RANGES[key as NumberSettingKey];
      // mongoexport writes numbers as {"$numberInt": "30"}: read like every other number, stored as a plain one.
      const n = integer(r.min, r.max, `a whole number ${r.min}–${r.max} for ${key}`)(doc.value, 'value');
      return { key, value: JSON.stringify(n) };
    }
    if (key === 'deleted_notice_text' && typeof doc.value !== 'string')
      fail('value', 'a string for deleted_notice_text', doc.value);
    return { key, value: JSON.stringify(doc.value) };
  },
};

/**
 * Validates one parsed JSON value as a document of `collection`. Unknown fields are ignored.
 * @param now epoch ms used for defaults that mean "the import instant".
 * @throws DocumentError for the first problem found.
 */
export function parseDocument<C extends Collection>(collection: C, value: unknown, now: number): DocumentOf[C] {
  if (!isObj(value)) throw new DocumentError(null, `expected a JSON object, got ${show(value)}`);
  return parsers[collection](value, now);
}

/**
 * Parses and validates JSON Lines text (blank lines skipped, a leading BOM and CRLF endings tolerated).
 * @throws ImportError for the first bad line.
 */
export function parseLines<C extends Collection>(collection: C, text: string, now: number): DocumentOf[C][] {
  const out: DocumentOf[C][] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new ImportError(i + 1, null, `not valid JSON: ${(e as Error).message}`);
    }
    try {
      out.push(parseDocument(collection, value, now));
    } catch (e) {
      if (e instanceof DocumentError) throw new ImportError(i + 1, e.field, e.detail);
      throw e;
    }
  }
  return out;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** A `users` row as a JSON line (no newline). */
export function formatUser(r: User): string {
  const { user_id, username, first_name, joined_at, is_banned, user_access_count, blocked_at } = r;
  return JSON.stringify({
    user_id,
    username,
    first_name,
    joined_at: iso(joined_at),
    is_banned: is_banned !== 0,
    user_access_count,
    blocked_at: isoOrNull(blocked_at),
  });
}

/** A `tokens` row as a JSON line; `file_unique_id` only when set. */
export function formatToken(r: Token): string {
  const { token, unique_id, created_by, status, created_at, expires_at, file_unique_id, direct_link } = r;
  const doc = { token, unique_id, created_by, status, created_at: iso(created_at), expires_at: iso(expires_at) };
  return JSON.stringify({
    ...doc,
    ...(file_unique_id === null ? {} : { file_unique_id }),
    ...(direct_link ? { direct_link: true } : {}),
  });
}

/** A `token_generator_count` row as a JSON line. */
export function formatTokenCount(r: TokenCount): string {
  return JSON.stringify({ user_id: r.user_id, date: r.date, token_generated: r.token_generated });
}

/** A `pending_deletions` row as a JSON line: `_id` only when it was imported with one; no internal columns. */
export function formatPendingDeletion(
  r: Omit<PendingDeletionDoc, 'dedupe_key' | 'message_ids'> & { message_ids: string },
): string {
  const ids: unknown = JSON.parse(r.message_ids);
  if (!Array.isArray(ids))
    throw new Error(`pending deletion with delete_at ${iso(r.delete_at)}: message_ids is not a JSON array`);
  return JSON.stringify({
    ...(r.source_id === null ? {} : { _id: r.source_id }),
    user_id: r.user_id,
    chat_id: r.chat_id,
    message_ids: ids,
    delete_at: iso(r.delete_at),
    unique_id: r.unique_id,
    created_at: iso(r.created_at),
    attempts: r.attempts,
    next_attempt_at: iso(r.next_attempt_at),
    last_error: r.last_error,
    // Only when false: an export of rows that keep the notice (all of them before the flag) is unchanged.
    ...(r.notice ? {} : { notice: false }),
  });
}

/** A `broadcasts` row and its recipients (pass them ordered by chat_id) as a JSON line. */
export function formatBroadcast(
  r: Omit<BroadcastDoc, 'dedupe_key' | 'messages' | 'status'> & { status: string },
  messages: readonly BroadcastMessage[],
): string {
  return JSON.stringify({
    ...(r.source_id === null ? {} : { _id: r.source_id }),
    message_id: r.message_id,
    text: r.text,
    caption: r.caption,
    file_id: r.file_id,
    duration_hours: r.duration_hours,
    channel_message_id: r.channel_message_id,
    created_at: iso(r.created_at),
    delete_at: iso(r.delete_at),
    status: r.status,
    messages: messages.map((m) => ({ chat_id: m.chat_id, message_id: m.message_id })),
  });
}

/** A `settings` row as a JSON line, the value decoded. */
export function formatSetting(r: SettingDoc): string {
  let value: unknown;
  try {
    value = JSON.parse(r.value);
  } catch {
    // A value someone stored without JSON-encoding it: export it as the string it is rather than fail the export.
    value = r.value;
  }
  return JSON.stringify({ key: r.key, value });
}
