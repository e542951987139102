/** Deep links of the bot: file links, the verification return link, and parsing what `/start` receives. Pure. */
import { randomBytes } from 'node:crypto';

/** `https://t.me/<bot>?start=<payload>`: opens the bot and sends `/start <payload>`. */
export function startLink(botUsername: string, payload: string): string {
  return `https://t.me/${botUsername}?start=${encodeURIComponent(payload)}`;
}

/** The `/start` payload that brings a user back from the verification page. At most 64 characters. */
export function verifyPayload(tokenUniqueId: string, userId: number): string {
  return `verify_${tokenUniqueId}_${userId}`;
}

/** What a `/start` payload asks for. */
export type StartRequest =
  | { kind: 'none' }
  | { kind: 'verify'; tokenUniqueId: string; userId: number }
  | { kind: 'file'; uniqueId: string }
  | { kind: 'invalid' };

/** Reads a `/start` payload: empty, `verify_<id>_<user>`, or a file's unique id. */
export function parseStart(payload: string): StartRequest {
  const p = payload.trim();
  if (!p) return { kind: 'none' };
  const v = /^verify_([A-Za-z0-9-]{4,32})_(\d{1,16})$/.exec(p);
  if (v) return { kind: 'verify', tokenUniqueId: v[1]!, userId: Number(v[2]) };
  if (/^[A-Za-z0-9-]{4,64}$/.test(p)) return { kind: 'file', uniqueId: p };
  return { kind: 'invalid' };
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A random id of `length` letters and digits (no `_`, so it fits the `verify_<id>_<user>` payload). */
export function randomId(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  // Rejection sampling keeps every character equally likely.
  for (let i = 0; i < bytes.length && out.length < length; i++) if (bytes[i]! < 248) out += ALPHABET[bytes[i]! % 62];
  return out.length === length ? out : randomId(length);
}
