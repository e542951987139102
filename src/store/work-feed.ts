/**
 * PostgreSQL's side of {@link Store.changeToken}: one pooled connection `LISTEN`s on this schema's work channel, which
 * the triggers of migration 0010 `NOTIFY` on every statement that adds or moves work (pending deletions, broadcasts),
 * whichever process or tool wrote it. Until it listens (or after it lost its connection) every token is new, so a
 * waker falls back to asking for due work each time.
 */
import type pg from 'pg';
import { systemClock } from '../clock.ts';

/** The channel of a schema: what the triggers of migration 0010 compute in SQL, cut to PostgreSQL's 63 bytes. */
export const workChannel = (schema: string): string => `tgj_work_${schema}`.slice(0, 63);

/** A connection failure waits this long before listening is tried again (tokens are new meanwhile). */
const RETRY_MS = 5000;

export class WorkFeed {
  private client: pg.PoolClient | null = null;
  private connecting: Promise<void> | null = null;
  private failedAt = 0;
  private seen = 0;
  private closed = false;

  constructor(private readonly pool: pg.Pool) {}

  /** The current token; starts listening on first use. */
  async token(): Promise<string> {
    if (!this.client && !this.closed) {
      // Retried at most every RETRY_MS: a database that is down must not be asked for a connection four times a second.
      if (!this.connecting && systemClock.now().getTime() - this.failedAt >= RETRY_MS) this.connecting = this.listen();
      if (this.connecting) await this.connecting;
    }
    // Not listening: a new token each time, so the caller queries as it would without a feed.
    return this.client ? String(this.seen) : `x${++this.seen}`;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connecting;
    const c = this.client;
    this.client = null;
    c?.release(true);
  }

  private async listen(): Promise<void> {
    let c: pg.PoolClient | null = null;
    try {
      c = await this.pool.connect();
      const { rows } = await c.query<{ s: string }>('select current_schema() as s');
      await c.query(`LISTEN "${workChannel(rows[0]!.s)}"`);
      c.on('notification', () => void this.seen++);
      const lost = () => {
        if (this.client !== c) return;
        this.client = null;
        this.failedAt = systemClock.now().getTime();
        this.seen++;
        c?.release(true);
      };
      c.on('error', lost);
      c.on('end', lost);
      if (this.closed) c.release(true);
      else this.client = c;
      // Whatever happened before the LISTEN is unknown: the next token differs from any earlier one.
      this.seen++;
    } catch {
      this.failedAt = systemClock.now().getTime();
      c?.release(true);
    } finally {
      this.connecting = null;
    }
  }
}
