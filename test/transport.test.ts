/** The lean transport under grammY (issue 13, part 3): what grammY's client asks of `fetch`, over kept-alive sockets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Api, InputFile } from 'grammy';
import { leanFetch } from '../src/telegram/transport.ts';

async function server(handler: http.RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return {
    url,
    close: () => new Promise((r) => (s.closeAllConnections(), s.close(() => r()))),
  };
}

const body = (req: http.IncomingMessage) =>
  new Promise<string>((r) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += String(c)));
    req.on('end', () => r(b));
  });

test('JSON calls and a multipart upload through grammY, two calls on one kept-alive socket', async () => {
  const sockets = new Set<unknown>();
  const seen: { path: string; type: string; body: string }[] = [];
  const s = await server((req, res) => {
    sockets.add(req.socket);
    void body(req).then((b) => {
      seen.push({ path: req.url!, type: String(req.headers['content-type']), body: b });
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ ok: true, result: { message_id: seen.length, date: 0, chat: { id: 7, type: 'private' } } }),
      );
    });
  });
  try {
    const api = new Api('123:abc', { apiRoot: s.url, fetch: leanFetch() });
    const a = await api.sendMessage(7, 'héllo');
    const b = await api.sendDocument(7, new InputFile(Readable.from([Buffer.from('file body')]), 'a.txt'));
    assert.deepEqual([a.message_id, b.message_id], [1, 2]);
    assert.equal(seen[0]!.path, '/bot123:abc/sendMessage');
    assert.deepEqual(JSON.parse(seen[0]!.body), { chat_id: 7, text: 'héllo' });
    assert.match(seen[1]!.type, /^multipart\/form-data; boundary=/);
    assert.match(seen[1]!.body, /file body/);
    assert.equal(sockets.size, 1, 'the second call reused the first connection');
  } finally {
    await s.close();
  }
});

test('an abort ends the call; an answer that is not JSON rejects json(); an error status is still read', async () => {
  const s = await server((req, res) => {
    if (req.url!.endsWith('/slow')) return; // never answers
    if (req.url!.endsWith('/html')) return res.end('<html>Bad Gateway</html>');
    res.statusCode = 400;
    res.end(JSON.stringify({ ok: false, error_code: 400, description: 'Bad Request: chat not found' }));
  });
  try {
    const f = leanFetch();
    const ac = new AbortController();
    const slow = f(`${s.url}/slow`, { method: 'POST', body: '{}', signal: ac.signal });
    ac.abort();
    await assert.rejects(slow, /aborted/);
    const html = await f(`${s.url}/html`, { method: 'POST', body: '{}' });
    await assert.rejects(html.json(), SyntaxError);
    const bad = await f(`${s.url}/x`, { method: 'POST', body: '{}' });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { ok: false, error_code: 400, description: 'Bad Request: chat not found' });
  } finally {
    await s.close();
  }
});
