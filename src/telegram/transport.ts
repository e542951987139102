/**
 * A lean HTTP transport for grammY's `fetch` option: `node:http`/`node:https` with one keep-alive agent per origin,
 * the body written as it comes (JSON text, or grammY's multipart stream for uploads), the answer read whole and
 * parsed. It does what grammY's client asks of `fetch` — `res.json()` — and nothing else: node-fetch's general
 * machinery (header objects, body mixins, redirects, compression) is per call overhead a Bot API client never needs.
 * Keeping the connections alive saves the TCP (and TLS) set-up on every call.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

/** What grammY passes: a method, headers, a string or a stream, and its abort signal. */
interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Readable | AsyncIterable<Uint8Array>;
  signal?: AbortSignal | null;
}

/** The one thing grammY reads from the answer. */
interface LeanResponse {
  ok: boolean;
  status: number;
  json(): Promise<unknown>;
}

/** Options of {@link leanFetch}. */
export interface LeanFetchOptions {
  /**
   * Connections per origin (default 256: calls beyond wait for one). A paid broadcast at 1,000 copies a second over
   * 100 ms round trips keeps some 100 busy; idle ones close when the server drops them.
   */
  maxSockets?: number;
}

/** A `fetch` for grammY's `ApiClientOptions.fetch`. */
export function leanFetch(o: LeanFetchOptions = {}): typeof fetch {
  const agents = new Map<string, http.Agent>();
  const agentFor = (url: URL) => {
    let a = agents.get(url.origin);
    if (!a) {
      const opts = { keepAlive: true, maxSockets: o.maxSockets ?? 256, scheduling: 'lifo' as const };
      a = url.protocol === 'https:' ? new https.Agent(opts) : new http.Agent(opts);
      agents.set(url.origin, a);
    }
    return a;
  };
  const call = (input: string | URL, init: FetchInit = {}): Promise<LeanResponse> =>
    new Promise((resolve, reject) => {
      const url = typeof input === 'string' ? new URL(input) : input;
      const body = init.body;
      const headers: Record<string, string | number> = { ...init.headers };
      if (typeof body === 'string') headers['content-length'] = Buffer.byteLength(body);
      const request = url.protocol === 'https:' ? https.request : http.request;
      const req = request(url, { method: init.method ?? 'GET', headers, agent: agentFor(url) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          resolve({
            ok: status >= 200 && status < 300,
            status,
            json: () => Promise.resolve().then(() => JSON.parse(text) as unknown),
          });
        });
      });
      req.on('error', reject);
      const signal = init.signal;
      if (signal) {
        if (signal.aborted) return req.destroy(new Error('The operation was aborted'));
        signal.addEventListener('abort', () => req.destroy(new Error('The operation was aborted')), { once: true });
      }
      if (body === undefined) req.end();
      else if (typeof body === 'string') req.end(body);
      else (body instanceof Readable ? body : Readable.from(body)).on('error', (e) => req.destroy(e)).pipe(req);
    });
  // grammY types its option as the global fetch; it calls it with (url, init) and reads `json()` only.
  return call as unknown as typeof fetch;
}
