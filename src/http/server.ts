/**
 * The service's HTTP server: `/verify` and `/healthz` for everyone; the status page (`/`, `/status.json`) and
 * `/metrics` for loopback, or with `STATUS_TOKEN` (bearer header or `?token=`) from anywhere else — a request
 * carrying proxy headers (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`) counts as remote even from loopback, and
 * those headers are never trusted to make a client local; and the bot's webhook path when one is set. Errors never
 * show a stack trace.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
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
  healthz?: () => Promise<{ ok: boolean; body: unknown }>;
  statusPage?: (tokenQuery: string) => Promise<string>;
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

/** Starts the server; resolves once it listens. */
export async function startHttpServer(o: HttpOptions): Promise<HttpServer> {
  const { routes, logger } = o;
  const send = (res: http.ServerResponse, a: HttpAnswer) => {
    res.writeHead(a.status, { 'content-type': a.contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...a.headers });
    res.end(a.body);
  };
  const html = (status: number, body: string, headers?: Record<string, string>): HttpAnswer => ({ status, contentType: 'text/html; charset=utf-8', body, ...(headers ? { headers } : {}) });
  const json = (status: number, body: unknown): HttpAnswer => ({ status, contentType: 'application/json', body: JSON.stringify(body) });

  /** Loopback passes; elsewhere the status token is needed. Returns an answer when refused. */
  const guard = (req: http.IncomingMessage, url: URL): HttpAnswer | null => {
    // A request relayed by a proxy on this machine comes from loopback too: it counts as remote.
    const proxied = req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined || req.headers['x-real-ip'] !== undefined;
    if (!proxied && (o.isLocal ?? isLoopback)(req.socket.remoteAddress)) return null;
    if (!o.statusToken) return html(403, page('Not available', '<p>The status page is only served to this machine. Set STATUS_TOKEN to open it from elsewhere.</p>'));
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (tokenMatches(bearer, o.statusToken) || tokenMatches(url.searchParams.get('token'), o.statusToken)) return null;
    return html(401, page('Token required', '<p>This page needs the status token: add <code>?token=…</code> to the address or send <code>Authorization: Bearer …</code>.</p>'), { 'www-authenticate': 'Bearer' });
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
      const h = await routes.healthz();
      return send(res, json(h.ok ? 200 : 503, h.body));
    }
    if ((path === '/' && routes.statusPage) || (path === '/status.json' && routes.statusJson) || (path === '/metrics' && routes.metrics)) {
      const refused = guard(req, url);
      if (refused) return send(res, refused);
      if (path === '/metrics') {
        const m = await routes.metrics!();
        return send(res, { status: 200, contentType: m.contentType, body: m.body });
      }
      if (path === '/status.json') return send(res, json(200, await routes.statusJson!()));
      const t = url.searchParams.get('token');
      return send(res, html(200, await routes.statusPage!(t ? `?token=${encodeURIComponent(t)}` : '')));
    }
    send(res, html(404, page('Not found', `<p>Nothing here at ${escapeHtml(path)}.</p>`)));
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      logger.error({ err: (e as Error).message, path: req.url?.split('?')[0] }, 'HTTP request failed');
      if (!res.headersSent) send(res, html(500, page('Something went wrong', '<p>The service could not answer this request. Please try again in a minute.</p>')));
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
