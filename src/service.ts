/**
 * The whole service behind `tg-janitor start`: database, schedulers, user bot, admin commands, broadcast sender,
 * HTTP server (verify page, status page, /healthz, /metrics, webhook). Stops the bots, the broadcast sender and the
 * schedulers side by side (each waiting for its work in flight, within SHUTDOWN_TIMEOUT_S), then HTTP, then the
 * database.
 */
import { Bot, GrammyError, webhookCallback, type BotError, type Context } from 'grammy';
import { backoff } from './backoff.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Config, JobName } from './config.ts';
import type { Logger } from './log.ts';
import { openStore, type Store } from './store/db.ts';
import { migrateToLatest } from './store/migrations.ts';
import { deletionStats } from './store/deletions.ts';
import { createJanitor, type Janitor } from './janitor.ts';
import { checkHealth, collectStatus, type Health, type StatusSnapshot } from './jobs/status.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { startHttpServer, type HttpServer } from './http/server.ts';
import { handleVerify } from './http/verify.ts';
import { renderStatusPage } from './http/status-page.ts';
import { instrument } from './telegram/client.ts';
import { leanFetch } from './telegram/transport.ts';
import { registration, userBot } from './bot/user-bot.ts';
import { adminBot } from './bot/admin.ts';
import { BroadcastSender, copiesInFlightFor } from './bot/broadcast-sender.ts';

/** Options for {@link startService}. */
export interface ServiceOptions {
  clock?: Clock;
  /** Long-polling timeout in seconds (default TELEGRAM_TIMEOUT_S − 5). */
  pollTimeoutS?: number;
  /** Which HTTP peers count as this machine (default loopback); tests use it to play a remote client. */
  isLocal?: (address: string | undefined) => boolean;
  /** How long /healthz waits for the database before it answers 503 naming it (default 3000 ms). */
  healthTimeoutMs?: number;
}

/** A running service. */
export interface Service {
  config: Config;
  store: Store;
  janitor: Janitor;
  metrics: Metrics;
  http: HttpServer;
  startedAt: Date;
  status(): Promise<StatusSnapshot>;
  stop(): Promise<void>;
}

/** Starts everything the configuration asks for. */
export async function startService(config: Config, logger: Logger, opts: ServiceOptions = {}): Promise<Service> {
  const clock = opts.clock ?? systemClock;
  const startedAt = clock.now();
  const store = await openStore(config.databaseUrl);
  try {
    // Not on the service's clock: the migration waits out other processes (their lock, their schema changes),
    // which happen in real time whatever clock the schedulers are given.
    await migrateToLatest(store);
  } catch (e) {
    await store.close();
    throw e;
  }
  const metrics = createMetrics();
  metrics.setPendingSource(async () => deletionStats(store, clock.now().getTime()));
  // A long poll holds its request open: it must end before the client's time-out, or every poll fails.
  const pollTimeoutS = opts.pollTimeoutS ?? Math.max(1, config.telegramTimeoutS - 5);
  // The bots' calls (and the jobs', made through the bot's Api) go over the lean keep-alive transport, as a client
  // of createTelegram's does, not node-fetch (see telegram/transport.ts).
  const client = {
    apiRoot: config.botApiRoot,
    timeoutSeconds: Math.max(config.telegramTimeoutS, pollTimeoutS + 5),
    fetch: leanFetch(),
  };
  const bot = config.botToken ? new Bot<Context>(config.botToken, { client }) : null;
  const janitor = await createJanitor({
    config,
    store,
    logger,
    clock,
    hooks: { ...metrics.hooks, onBroadcastCut: (b) => void sender?.tellCut(b) },
    migrate: false,
    ...(bot ? { bot } : {}),
  });
  const username = async () => (janitor.telegram ? janitor.telegram.username() : 'your_bot');
  const statusSource = () => ({
    config,
    store,
    clock,
    startedAt,
    engineRunning: janitor.engine.isRunning,
    telegram: Boolean(janitor.telegram),
  });
  const status = () => collectStatus(statusSource());

  // One health check at a time: while the database hangs, /healthz requests wait on the same one instead of each
  // holding a pool connection.
  let checking: Promise<Health> | null = null;
  const databaseDown = (why: string): Health => ({ ok: false, problems: [`database: ${why}`], failing: ['database'] });
  /** The health verdict, or the database named as failing when it does not answer within `ms` (a TCP black hole). */
  const healthWithin = async (ms: number): Promise<Health> => {
    checking ??= checkHealth(statusSource())
      .catch((e: unknown) => databaseDown((e as Error).message))
      .finally(() => (checking = null));
    const answered = new AbortController();
    const late = clock
      .sleep(ms, { unref: true, signal: answered.signal })
      .then(() => databaseDown(`no answer within ${ms / 1000} s`));
    try {
      return await Promise.race([checking, late]);
    } finally {
      answered.abort();
    }
  };

  let localUrl = '';
  // A port in use (or any start failure) must not leave the database open: the process could not exit cleanly.
  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    statusToken: config.statusToken,
    logger,
    ...(opts.isLocal ? { isLocal: opts.isLocal } : {}),
    routes: {
      healthz: async ({ detailed }) => {
        const h = await healthWithin(opts.healthTimeoutMs ?? 3000);
        // Anyone may learn which check failed; only this machine or the token sees why (a database error can name
        // a host or a user).
        const base = { ok: h.ok, failing: h.failing, started_at: startedAt.toISOString() };
        return { ok: h.ok, body: detailed ? { ...base, problems: h.problems } : base };
      },
      statusPage: async () => renderStatusPage(await status(), { refreshSeconds: config.statusRefreshS }),
      statusJson: status,
      metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
      ...(bot
        ? {
            verify: (token: string | null, referer: string | undefined) =>
              handleVerify({ store, config, clock, logger, botUsername: username }, token, referer),
          }
        : {}),
      // A slow update (a 429 wait, a retried write) is answered 200 after grammY's time-out and finishes in the
      // background: answering 500 would make Telegram deliver it again and run it twice.
      ...(bot && config.webhookUrl
        ? {
            webhook: {
              path: new URL(config.webhookUrl).pathname,
              handler: webhookCallback(bot, 'http', {
                ...(config.webhookSecret ? { secretToken: config.webhookSecret } : {}),
                onTimeout: 'return',
              }),
            },
          }
        : {}),
    },
  }).catch(async (e: unknown) => {
    await store.close();
    throw e;
  });
  localUrl = http.url;
  logger.info(
    { url: http.url },
    `🌐 HTTP server on ${http.url} (status page, /healthz, /metrics${bot ? ', /verify' : ''})`,
  );

  let sender: BroadcastSender | null = null;
  let adminOnly: Bot<Context> | null = null;
  const receivers: Bot<Context>[] = [];
  if (bot && janitor.telegram) {
    if (!config.publicUrl)
      logger.warn(`PUBLIC_URL is not set: verify links use ${localUrl}, which only works on this machine`);
    if (!config.storageChannelId)
      logger.warn('STORAGE_CHANNEL_ID is not set: /link and file delivery need the storage channel');
    const adminDeps = {
      store,
      config,
      clock,
      logger,
      userBotUsername: username,
      runJob: (job: JobName) => janitor.run(job),
      status,
      kickSender: () => sender?.kick(),
    };
    // Handlers run inside an error boundary: a failed update is logged and answered (a webhook gets 200, so Telegram
    // does not deliver it again), and an error never escapes as an unhandled rejection.
    const boundary = (name: string) => (err: BotError<Context>) =>
      logger.error(
        { err: err.message, update_id: err.ctx.update.update_id },
        `${name}: update ${err.ctx.update.update_id} failed: ${err.message}`,
      );
    const userSide = bot.errorBoundary(boundary('user bot'));
    userSide.use(registration({ store, clock, config, logger }));
    if (config.adminBotToken) {
      adminOnly = new Bot<Context>(config.adminBotToken, { client });
      // Telegram's limits are per bot: the admin bot has a throttle of its own, and its calls count in the metrics.
      instrument(adminOnly.api, {
        clock,
        rate: config.telegramRate,
        retries: config.telegramRetries,
        onCall: metrics.hooks.onTelegramCall,
      });
      adminOnly.errorBoundary(boundary('admin bot')).use(adminBot({ ...adminDeps, separateAdminBot: true }));
      receivers.push(adminOnly);
    } else {
      userSide.use(adminBot(adminDeps));
    }
    // The progress message lives in the chat of whichever bot took the /broadcast command.
    sender = new BroadcastSender({
      store,
      api: bot.api,
      progressApi: (adminOnly ?? bot).api,
      clock,
      logger,
      owner: janitor.engine.owner,
      timezone: config.timezone,
      leaseMs: config.claimLeaseS * 1000,
      stopGraceMs: config.shutdownTimeoutS * 1000,
      paid: config.broadcastPaid,
      copiesInFlight: copiesInFlightFor(config.broadcastPaid ? config.broadcastPaidRate : config.telegramRate),
    });
    userSide.use(
      userBot({
        store,
        config,
        clock,
        logger,
        scheduleDeletion: (d) => janitor.scheduleDeletion(d),
        localUrl: () => localUrl,
      }),
    );
    receivers.unshift(bot);
  }

  const stopping = new AbortController();
  await janitor.start();
  sender?.start();
  const polling: Promise<void>[] = [];
  for (const b of receivers) {
    if (b === bot && config.webhookUrl) polling.push(receiveByWebhook(b, config, { logger, clock }, stopping.signal));
    else
      polling.push(
        poll(b, { logger, clock }, pollTimeoutS, b === adminOnly ? 'admin bot' : 'user bot', stopping.signal),
      );
  }

  let stopped: Promise<void> | null = null;
  return {
    config,
    store,
    janitor,
    metrics,
    http,
    startedAt,
    status,
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        // The bots, the sender and the schedulers stop side by side, each within SHUTDOWN_TIMEOUT_S, so the whole
        // stop stays near that bound (one after another they could take three times it, past a supervisor's patience).
        const bots = (async () => {
          await Promise.race([Promise.allSettled(receivers.map((b) => b.stop())), clock.sleep(5000, { unref: true })]);
          // A poll stuck in its first getMe (Telegram unreachable) must not hold the shutdown past its time-out.
          await Promise.race([
            Promise.allSettled(polling),
            clock.sleep(config.shutdownTimeoutS * 1000, { unref: true }),
          ]);
        })();
        await Promise.allSettled([bots, sender?.stop(), janitor.stop()]);
        await http.close();
        await store.close();
      })();
      return stopped;
    },
  };
}

/** Back-off of a failed poll or webhook registration: 1 s doubling to a minute. */
const RECEIVE_BACKOFF = { base: 1000, cap: 60_000 };

/** The updates the bots handle (every button is a URL button: no callback queries), by polling and by webhook alike. */
const ALLOWED_UPDATES = ['message', 'my_chat_member'] as const;

/**
 * Long polling that outlives Telegram outages: a failed start is retried with back-off until stopped. A rejected
 * token stops it for good, loudly; a 409 means another instance polls this bot, and this one waits its turn.
 */
async function poll(
  bot: Bot<Context>,
  { logger, clock }: { logger: Logger; clock: Clock },
  timeout: number,
  name: string,
  signal: AbortSignal,
): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      await bot.start({
        timeout,
        allowed_updates: ALLOWED_UPDATES,
        onStart: (me) => logger.info({ bot: me.username }, `🤖 ${name} @${me.username} is polling for updates`),
      });
      return;
    } catch (e) {
      if (signal.aborted) return;
      const code = e instanceof GrammyError ? e.error_code : undefined;
      if (code === 401 || code === 404) {
        logger.error(
          `❌ ${name}: Telegram rejected the bot token (${code}); it receives no updates until BOT_TOKEN is fixed and the service restarted`,
        );
        return;
      }
      const wait = code === 409 ? 60_000 : backoff(attempt + 1, RECEIVE_BACKOFF);
      const why =
        code === 409 ? 'another instance is polling this bot; the schedulers here keep running' : (e as Error).message;
      logger.error({ err: (e as Error).message, retry_in_ms: wait }, `❌ ${name} could not poll: ${why}`);
      await clock.sleep(wait, { signal });
    }
  }
}

/** Registers the webhook with Telegram (with the secret) and resolves; updates arrive on the HTTP server. */
async function receiveByWebhook(
  bot: Bot<Context>,
  config: Config,
  { logger, clock }: { logger: Logger; clock: Clock },
  signal: AbortSignal,
): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      await bot.init();
      await bot.api.setWebhook(config.webhookUrl!, {
        allowed_updates: ALLOWED_UPDATES,
        ...(config.webhookSecret ? { secret_token: config.webhookSecret } : {}),
      });
      logger.info({ bot: bot.botInfo.username }, `🤖 user bot @${bot.botInfo.username} receives updates by webhook`);
      return;
    } catch (e) {
      const wait = backoff(attempt + 1, RECEIVE_BACKOFF);
      logger.error(
        { err: (e as Error).message, retry_in_ms: wait },
        `❌ could not set the webhook: ${(e as Error).message}`,
      );
      await clock.sleep(wait, { signal });
    }
  }
}
