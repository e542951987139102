/**
 * Verification tokens from the bot's side: a new token only while the user's count for today (in TIMEZONE) is under
 * the limit, and its verify link — `PUBLIC_URL/verify?token=…`, shortened when a shortener is configured.
 */
import { dayIn, type Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { logAtDebug, type Logger } from '../log.ts';
import type { Store } from '../store/db.ts';
import { numberSetting } from '../store/settings.ts';
import { insertToken, takeTokenSlot } from '../store/tokens.ts';
import { countTokenEvent } from '../store/stats.ts';
import { randomId } from '../telegram/links.ts';

/** What asking for a token gave. */
export type NewToken =
  | { kind: 'created'; token: string; uniqueId: string; link: string; expiresAt: Date }
  | { kind: 'limit'; limit: number };

/** Creates a token for `userId` (remembering the file asked for) unless today's limit is reached. */
export async function newToken(
  deps: { store: Store; config: Config; clock: Clock; logger: Logger; localUrl: () => string },
  userId: number,
  fileUniqueId: string | null,
): Promise<NewToken> {
  const { store, config } = deps;
  const now = deps.clock.now();
  const limit = await numberSetting(store, config, 'token_generation_limit');
  const day = dayIn(now, config.timezone);
  if ((await takeTokenSlot(store.db, userId, day, limit)) === null) return { kind: 'limit', limit };
  const token = randomId(32);
  const uniqueId = randomId(10);
  const expiresAt = new Date(now.getTime() + config.tokenExpiryDays * 86400_000);
  const link = await verifyLink(config, token, deps.localUrl(), deps.logger);
  await insertToken(store.db, {
    token,
    unique_id: uniqueId,
    created_by: userId,
    created_at: now.getTime(),
    expires_at: expiresAt.getTime(),
    file_unique_id: fileUniqueId,
    direct_link: link.direct ? 1 : 0,
  });
  // The chart's counter only: the token exists either way.
  await countTokenEvent(store, day, 'created').catch(logAtDebug(deps.logger, 'could not count a token for the chart'));
  return { kind: 'created', token, uniqueId, link: link.url, expiresAt };
}

/**
 * The verify link for a token: through the shortener when one is set and answers, else direct. `direct` is true
 * when a shortener was configured but failed: that user cannot come from the shortener, so no referer is expected.
 */
export async function verifyLink(
  config: Config,
  token: string,
  localUrl: string,
  logger: Logger,
): Promise<{ url: string; direct: boolean }> {
  const url = `${config.publicUrl ?? localUrl}/verify?token=${encodeURIComponent(token)}`;
  if (!config.shortenerApiUrl) return { url, direct: false };
  try {
    return { url: await shorten(config.shortenerApiUrl, url), direct: false };
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'shortener failed; sending the direct verify link');
    return { url, direct: true };
  }
}

/**
 * Calls a GPLinks-style shortener: the template's `{url}` becomes the encoded link; the JSON answer carries the short
 * link as `shortenedUrl`, `shorturl`, `short_url` or `url`.
 */
export async function shorten(template: string, url: string, timeoutMs = 5000): Promise<string> {
  const res = await fetch(template.replace('{url}', encodeURIComponent(url)), {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`shortener answered HTTP ${res.status}`);
  const body = (await res.json()) as Record<string, unknown>;
  for (const key of ['shortenedUrl', 'shorturl', 'short_url', 'url']) {
    const v = body[key];
    if (typeof v === 'string' && /^https?:\/\/\S+$/.test(v)) return v;
  }
  throw new Error('shortener answer has no shortenedUrl, shorturl, short_url or url');
}
