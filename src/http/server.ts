/**
 * The service's HTTP server: `/verify` and `/healthz` for everyone (/healthz names the failed checks to anyone and
 * says more only to loopback or the token); the status page (`/`, `/status.json`) and `/metrics` for loopback, or
 * with `STATUS_TOKEN` from anywhere else — as a bearer header, or the cookie that a `?token=` is exchanged for (a
 * 303 to the same address without it, so the token stays out of links, history and proxy logs). A request carrying
 * proxy headers (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`) counts as remote even from loopback, and those headers
 * are never trusted to make a client local; and the bot's webhook path when one is set. Errors never show a stack
 * trace.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.ts';
import { escapeHtml, page } from './html.ts';

/** A route's answer. */
export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/** What the server serves; every part is optional. */
export interface HttpRoutes {
  verify?: (token: string | null, referer: string | undefined) => Promise<{ status: number; html: string }>;
  /**
   * /healthz; `detailed` when the client is this machine or sent the status token (bearer or cookie), which may see
   * raw error texts; anyone else gets only the names of the failed checks.
   */
  healthz?: (o: { detailed: boolean }) => Promise<{ ok: boolean; body: unknown }>;
  /** The status page's HTML; its links never carry the token (the browser holds it as a cookie). */
  statusPage?: () => Promise<string>;
  statusJson?: () => Promise<unknown>;
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** The webhook: path and a Node handler (grammY's `webhookCallback(bot, 'http')`). */
  webhook?: { path: string; handler: (req: http.IncomingMessage, res: http.ServerResponse) => unknown };
}

/** Options for {@link startHttpServer}. */
export interface HttpOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Required for the status page and metrics from non-loopback addresses. */
  statusToken?: string | undefined;
  logger: Logger;
  routes: HttpRoutes;
  /** Which peer addresses count as this machine (default: loopback). Tests treat 127.0.0.2 as remote. */
  isLocal?: (address: string | undefined) => boolean;
}

/** A running server. */
export interface HttpServer {
  /** `http://host:port`, with the port actually bound. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** True for 127.0.0.0/8 and ::1 (also IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^::ffff:/, '');
  return a === '::1' || /^127\./.test(a);
}

function tokenMatches(given: string | null | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The cookie a `?token=` is exchanged for. */
export const STATUS_COOKIE = 'tgj_status';

/**
 * The status cookie's value for a token: an HMAC keyed with it, so the cookie never carries the token itself (a
 * leaked cookie does not reveal it) and changing STATUS_TOKEN invalidates every cookie.
 */
export function statusCookieValue(token: string): string {
  return createHmac('sha256', token).update('tg-janitor status cookie v1').digest('base64url');
}

/** The value of cookie `name` in a request's Cookie header, or undefined. */
function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether the client reached us over HTTPS, as the proxy in front says (only decides the cookie's Secure flag). */
function viaHttps(req: http.IncomingMessage): boolean {
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}

/** Starts the server; resolves once it listens. */
export async function startHttpServer(o: HttpOptions): Promise<HttpServer> {
  const { routes, logger } = o;
  const send = (res: http.ServerResponse, a: HttpAnswer) => {
    res.writeHead(a.status, {
      'content-type': a.contentType,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...a.headers,
    });
    res.end(a.body);
  };
  const html = (status: number, body: string, headers?: Record<string, string>): HttpAnswer => ({
    status,
    contentType: 'text/html; charset=utf-8',
    body,
    ...(headers ? { headers } : {}),
  });
  const json = (status: number, body: unknown): HttpAnswer => ({
    status,
    contentType: 'application/json',
    body: JSON.stringify(body),
  });

  /** Whether the client is this machine: loopback and not relayed by a proxy. */
  const isLocalClient = (req: http.IncomingMessage): boolean => {
    // A request relayed by a proxy on this machine comes from loopback too: it counts as remote.
    const h = req.headers;
    const proxied = h['x-forwarded-for'] !== undefined || h.forwarded !== undefined || h['x-real-ip'] !== undefined;
    return !proxied && (o.isLocal ?? isLoopback)(req.socket.remoteAddress);
  };
  /** Whether the request carries the status token: the bearer header, or the cookie a `?token=` was exchanged for. */
  const hasToken = (req: http.IncomingMessage): boolean => {
    if (!o.statusToken) return false;
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const fromCookie = cookie(req, STATUS_COOKIE);
    return tokenMatches(bearer, o.statusToken) || tokenMatches(fromCookie, statusCookieValue(o.statusToken));
  };

  /**
   * Loopback passes; elsewhere the status token is needed. A `?token=` never reaches a page: the right one is
   * exchanged for a cookie and a 303 to the same address without it, a wrong one gets 401 (and no cookie). Returns
   * an answer unless the request may go on.
   */
  const guard = (req: http.IncomingMessage, url: URL): HttpAnswer | null => {
    const given = url.searchParams.get('token');
    if (given !== null && o.statusToken) {
      if (!tokenMatches(given, o.statusToken)) return needToken();
      url.searchParams.delete('token');
      // The path is one of the guarded routes, never `//host`, so this stays on this server.
      const location = `${url.pathname}${url.search}`;
      const flags = `Path=/; HttpOnly; SameSite=Strict${viaHttps(req) ? '; Secure' : ''}`;
      const headers = { location, 'set-cookie': `${STATUS_COOKIE}=${statusCookieValue(o.statusToken)}; ${flags}` };
      return html(303, page('Signed in', `<p><a href="${escapeHtml(location)}">Continue</a></p>`), headers);
    }
    if (isLocalClient(req)) return null;
    if (!o.statusToken) {
      const why = 'The status page is only served to this machine. Set STATUS_TOKEN to open it from elsewhere.';
      return html(403, page('Not available', `<p>${why}</p>`));
    }
    return hasToken(req) ? null : needToken();
  };
  const needToken = (): HttpAnswer => {
    const how =
      'add <code>?token=…</code> to the address once (it is swapped for a cookie) or send ' +
      '<code>Authorization: Bearer …</code>';
    const body = page('Token required', `<p>This page needs the status token: ${how}.</p>`);
    return html(401, body, { 'www-authenticate': 'Bearer' });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    // Concatenated, not resolved: a path such as //x must stay a path, not become a host.
    const url = new URL(`http://localhost${req.url ?? '/'}`);
    const path = url.pathname;
    if (routes.webhook && path === routes.webhook.path) {
      if (req.method !== 'POST') return send(res, json(405, { error: 'POST only' }));
      await routes.webhook.handler(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, json(405, { error: 'GET only' }));
    // Link checkers and prefetchers send HEAD: it must never spend a token.
    if (path === '/verify' && req.method === 'HEAD' && routes.verify) return send(res, html(200, ''));
    if (path === '/verify' && routes.verify) {
      const r = await routes.verify(url.searchParams.get('token'), req.headers.referer);
      return send(res, html(r.status, r.html));
    }
    if (path === '/healthz' && routes.healthz) {
      // A `?token=` is not read here: health checkers do not follow redirects, and the token stays out of URLs.
      const h = await routes.healthz({ detailed: isLocalClient(req) || hasToken(req) });
      return send(res, json(h.ok ? 200 : 503, h.body));
    }
    if (
      (path === '/' && routes.statusPage) ||
      (path === '/status.json' && routes.statusJson) ||
      (path === '/metrics' && routes.metrics)
    ) {
      const refused = guard(req, url);
      if (refused) return send(res, refused);
      if (path === '/metrics') {
        const m = await routes.metrics!();
        return send(res, { status: 200, contentType: m.contentType, body: m.body });
      }
      if (path === '/status.json') return send(res, json(200, await routes.statusJson!()));
      return send(res, html(200, await routes.statusPage!()));
    }
    send(res, html(404, page('Not found', `<p>Nothing here at ${escapeHtml(path)}.</p>`)));
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      logger.error({ err: (e as Error).message, path: req.url?.split('?')[0] }, 'HTTP request failed');
      if (!res.headersSent)
        send(
          res,
          html(
            500,
            page(
              'Something went wrong',
              '<p>The service could not answer this request. Please try again in a minute.</p>',
            ),
          ),
        );
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host === '0.0.0.0' ? '127.0.0.1' : o.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
