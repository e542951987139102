/**
 * A grammY bot whose messages delete themselves, through tg-janitor's auto-delete plugin. The deletions are rows in
 * a database, so a restart (or a crash) forgets none of them.
 *
 *   BOT_TOKEN=123456:ABC… npx tsx examples/auto-delete-bot.ts
 *
 * Environment: BOT_TOKEN (required); BOT_API_ROOT (a local Bot API server, default Telegram's); DATABASE_URL
 * (default sqlite:./data/auto-delete-bot.db; or postgres://…); AUTO_DELETE_AFTER (how long the bot's messages
 * live: '90s', '30m', '2h', '1h30m' or seconds; default 30m, at most 47h58m).
 *
 * /start — a reply that deletes itself; /secret — a document deleted with a "deleted" notice after it;
 * /forget — your own command deleted too; /keep — a reply that stays.
 */
import { Bot, InputFile, type Api, type Context } from 'grammy';
import { autoDelete, createJanitor, type AutoDeleteApiFlavor, type AutoDeleteFlavor } from 'tg-janitor';

// The flavours type `auto_delete` on ctx.reply, ctx.replyWith…, ctx.api and bot.api, and add ctx.deleteAfter.
type MyContext = Context & AutoDeleteFlavor;
type MyApi = Api & AutoDeleteApiFlavor;

const token = process.env.BOT_TOKEN;
if (!token) {
  console.error('Set BOT_TOKEN to the token @BotFather gave you.');
  process.exit(2);
}
const after = process.env.AUTO_DELETE_AFTER ?? '30m';
const apiRoot = process.env.BOT_API_ROOT;
const bot = new Bot<MyContext, MyApi>(token, apiRoot ? { client: { apiRoot } } : {});

// The janitor keeps the pending deletions and runs the message deleter on this bot's Api.
const janitor = await createJanitor({
  databaseUrl: process.env.DATABASE_URL ?? 'sqlite:./data/auto-delete-bot.db',
  bot,
});
// Every message the bot sends deletes itself after `after`, unless a send says otherwise. A bad delay (past
// 47h58m, say) throws here, before the bot starts.
const autoDeleter = autoDelete(janitor, { after });
bot.api.config.use(autoDeleter.transformer); // sends through bot.api, and through ctx.api, which copies it
bot.use(autoDeleter); // ctx.deleteAfter

bot.command('start', (ctx) =>
  ctx.reply(`Hi! This message deletes itself in ${after}. Try /secret, /forget and /keep.`),
);

bot.command('secret', (ctx) =>
  ctx.replyWithDocument(new InputFile(Buffer.from('The treasure is under the old oak.\n'), 'secret.txt'), {
    caption: `🤫 Gone in ${after}; you will be told when it is.`,
    // This one asks for the "deleted" notice after it is deleted.
    auto_delete: { after, notice: true },
  }),
);

bot.command('forget', async (ctx) => {
  await ctx.deleteAfter(after); // the user's own /forget
  await ctx.reply(`Your /forget and this answer both go in ${after}.`);
});

bot.command('keep', (ctx) => ctx.reply('This one stays.', { auto_delete: false }));

bot.catch((err) => janitor.logger.error({ err: err.message, update_id: err.ctx.update.update_id }, 'update failed'));

// A clean stop: polling ends (no update is left half-handled), then the schedulers finish what they hold.
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await bot.stop();
  await janitor.stop();
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());

await janitor.start();
await bot.start({ onStart: (me) => console.log(`@${me.username} is running; its messages delete themselves`) });
