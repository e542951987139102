/** The Bot API emulator the tests start; it lives in src/demo because `tg-janitor demo` ships it too. */
export * from '../../src/demo/bot-api-emulator.ts';
