/**
 * A TCP proxy a test controls, to cut a service off from its database (or anything else) and give it back.
 *
 * `cut('blackhole')` destroys every proxied connection and then accepts new ones without ever answering (a network
 * partition: connects "work", nothing comes back; the held sockets are joined to the target on `restore()`, as if
 * the network came back); `cut('refuse')` destroys every proxied connection and resets every new one at once (a
 * database that is down: ECONNRESET). `cutMidRequest()` does the same at the moment a client has just sent
 * something (a query) and before its answer can come back: the connection dies with a request in flight, as a
 * database's connections usually do. `restore()` proxies again.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export type CutMode = 'blackhole' | 'refuse';

export class TcpProxy {
  /** Connections accepted in all, and how many of them were proxied, held or refused. */
  readonly stats = { accepted: 0, proxied: 0, held: 0, refused: 0, destroyedByCut: 0 };
  private mode: 'open' | CutMode = 'open';
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private readonly heldSockets = new Set<net.Socket>();
  /** Set by cutMidRequest: the next chunk a client sends is forwarded, then everything is cut. */
  private armed: { mode: CutMode; resolve: (at: number) => void } | null = null;
  private frozen = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Listens on 127.0.0.1 (a free port) and forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const proxy = new TcpProxy(server, (server.address() as AddressInfo).port, target);
    server.on('connection', (socket) => proxy.onConnection(socket));
    return proxy;
  }

  get state(): 'open' | CutMode {
    return this.mode;
  }

  /** Live proxied connections. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Drops every live connection; new ones are held unanswered (`blackhole`) or reset (`refuse`) until `restore()`. */
  cut(mode: CutMode = 'blackhole'): void {
    this.mode = mode;
    for (const p of this.pairs) {
      this.stats.destroyedByCut++;
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  /**
   * Cuts (as {@link cut}) right after the next chunk any client sends has been passed on, so that request's answer
   * never arrives. Resolves with the instant of the cut.
   */
  cutMidRequest(mode: CutMode = 'blackhole'): Promise<number> {
    return new Promise((resolve) => {
      this.armed = { mode, resolve };
    });
  }

  /** Proxies again; connections held by a black hole are joined to the target now (what they sent is delivered). */
  restore(): void {
    this.mode = 'open';
    for (const s of this.heldSockets) {
      this.heldSockets.delete(s);
      if (!s.destroyed) this.pipe(s);
    }
  }

  async close(): Promise<void> {
    for (const s of this.heldSockets) s.destroy();
    this.heldSockets.clear();
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: net.Socket): void {
    this.stats.accepted++;
    socket.on('error', () => {});
    if (this.mode === 'refuse') {
      this.stats.refused++;
      socket.resetAndDestroy();
      return;
    }
    if (this.mode === 'blackhole') {
      this.stats.held++;
      // Not read: what the client sends stays buffered, for the target if the network comes back.
      socket.pause();
      this.heldSockets.add(socket);
      socket.on('close', () => this.heldSockets.delete(socket));
      return;
    }
    this.pipe(socket);
  }

  private pipe(client: net.Socket): void {
    this.stats.proxied++;
    const upstream = net.connect(this.target.port, this.target.host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', end);
    client.on('error', end);
    upstream.on('close', end);
    client.on('close', end);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      const armed = this.armed;
      if (armed) {
        this.armed = null;
        // No answer gets through any more; the cut itself comes after this turn, once the chunk is on its way.
        this.frozen = true;
        setImmediate(() => {
          this.cut(armed.mode);
          this.frozen = false;
          armed.resolve(Date.now());
        });
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!this.frozen) client.write(chunk);
    });
    client.resume();
  }
}
