/**
 * The verification page, `GET /verify?token=…`: marks the token `verified`, or `bypassed` when opened too soon
 * after it was made or not coming from an allowed shortener, as the original bot's bypass server did; then sends
 * the user back to the bot. Unknown tokens get 404, used or expired ones 410 — clear pages, never a stack trace.
 */
import { logAtDebug, type Logger } from '../log.ts';
import { dayIn, type Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Store } from '../store/db.ts';
import type { Token } from '../store/schema.ts';
import { getToken, markToken } from '../store/tokens.ts';
import { countTokenEvent } from '../store/stats.ts';
import { startLink, verifyPayload } from '../telegram/links.ts';
import { escapeHtml, page } from './html.ts';

/** How a verification attempt ends. */
export type VerifyDecision = 'unknown' | 'used' | 'expired' | 'verified' | 'bypassed';

/** True when `referer`'s host is one of `domains` or a subdomain of one. */
export function refererAllowed(referer: string | undefined, domains: readonly string[]): boolean {
  if (!referer) return false;
  let host: string;
  try {
    host = new URL(referer).hostname.toLowerCase();
  } catch {
    // A referer that is not a URL comes from no shortener.
    return false;
  }
  return domains.some((d) => host === d || host.endsWith(`.${d}`));
}

/** Pure: what opening the page at `nowMs` with this `referer` does to `token`. */
export function decide(
  token: Token | undefined,
  nowMs: number,
  referer: string | undefined,
  o: { bypassMinSeconds: number; shortenerDomains: readonly string[] },
): VerifyDecision {
  if (!token) return 'unknown';
  if (token.status !== 'not_used') return 'used';
  if (token.expires_at < nowMs) return 'expired';
  if (nowMs - token.created_at < o.bypassMinSeconds * 1000) return 'bypassed';
  // A user sent the direct link (the shortener was down) cannot come from the shortener.
  if (o.shortenerDomains.length > 0 && !token.direct_link && !refererAllowed(referer, o.shortenerDomains))
    return 'bypassed';
  return 'verified';
}

/** What the verify route needs. */
export interface VerifyDeps {
  store: Store;
  config: Config;
  clock: Clock;
  logger: Logger;
  /** The user bot's username, for the link back. */
  botUsername(): Promise<string>;
}

/** Handles one request; returns the status and the HTML page. */
export async function handleVerify(
  deps: VerifyDeps,
  tokenParam: string | null,
  referer: string | undefined,
): Promise<{ status: number; html: string }> {
  const { store, config } = deps;
  const bot = await deps.botUsername();
  const back = `https://t.me/${bot}`;
  const token =
    tokenParam && /^[A-Za-z0-9_-]{8,128}$/.test(tokenParam) ? await getToken(store.db, tokenParam) : undefined;
  const nowMs = deps.clock.now().getTime();
  let decision = decide(token, nowMs, referer, config);
  if ((decision === 'verified' || decision === 'bypassed') && token) {
    // Conditional update: of two tabs opened at once, one decides.
    if (await markToken(store.db, token.token, decision)) {
      // The chart's counter only: the token is decided either way.
      await countTokenEvent(store, dayIn(new Date(token.created_at), config.timezone), decision).catch(
        logAtDebug(deps.logger, 'could not count a token event for the chart'),
      );
    } else decision = 'used';
  }
  switch (decision) {
    case 'unknown':
      return {
        status: 404,
        html: page(
          'Link not found',
          `<p>This verification link is not known.</p><p>Open the bot and use /create_new_token for a new one.</p><p><a class="btn" href="${escapeHtml(back)}">Back to the bot</a></p>`,
        ),
      };
    case 'used':
      return {
        status: 410,
        html: page(
          'Link already used',
          `<p>This verification link was already used.</p><p>Open the bot and use /create_new_token for a new one.</p><p><a class="btn" href="${escapeHtml(back)}">Back to the bot</a></p>`,
        ),
      };
    case 'expired':
      return {
        status: 410,
        html: page(
          'Link expired',
          `<p>This verification link has expired.</p><p>Open the bot and use /create_new_token for a new one.</p><p><a class="btn" href="${escapeHtml(back)}">Back to the bot</a></p>`,
        ),
      };
    default: {
      const target = startLink(bot, verifyPayload(token!.unique_id, token!.created_by));
      const ok = decision === 'verified';
      const body = `<p>${ok ? '✅ Verified. Taking you back to the bot…' : '⚠️ This verification was not completed properly. The bot will explain.'}</p>
<p class="count">Opening the bot in <span id="n">3</span> s…</p>
<p><a class="btn" href="${escapeHtml(target)}">Open the bot now</a></p>
<script>let n=3;const e=document.getElementById('n');setInterval(()=>{n=Math.max(0,n-1);e.textContent=n;if(n===0)location.href=${JSON.stringify(target)}},1000)</script>`;
      return {
        status: 200,
        html: page(ok ? 'Verified' : 'Verification bypassed', body, { refresh: { seconds: 3, url: target } }),
      };
    }
  }
}
