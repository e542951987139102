import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MAX_DELAY_S, parseDelay } from '../src/plugin/delay.ts';
import { planOf, sentMessages } from '../src/plugin/auto-delete.ts';

test('delays: seconds, or hours, minutes and seconds in that order', () => {
  const cases: [string | number, number][] = [
    [90, 90],
    [1.5, 1.5],
    ['90', 90],
    ['90s', 90],
    ['30m', 1800],
    ['2h', 7200],
    ['1h30m', 5400],
    ['1h 30m 5s', 5405],
    [' 2H ', 7200],
    ['47h58m', 172_680],
    [172_680, 172_680],
  ];
  for (const [delay, seconds] of cases) assert.equal(parseDelay(delay), seconds, String(delay));
  assert.equal(MAX_DELAY_S, 172_680);
});

test('delays: nothing, negatives, garbage and anything past 47h58m are refused with what is accepted', () => {
  const forms = 'expected a number of seconds, or a string such as "90s", "30m", "2h" or "1h30m"';
  const refused: [unknown, string][] = [
    ['', `auto_delete: "" is not a delay: ${forms}`],
    ['soon', `auto_delete: "soon" is not a delay: ${forms}`],
    ['30m1h', `auto_delete: "30m1h" is not a delay: ${forms}`],
    ['1d', `auto_delete: "1d" is not a delay: ${forms}`],
    ['-5', `auto_delete: "-5" is not a delay: ${forms}`],
    ['1.5h', `auto_delete: "1.5h" is not a delay: ${forms}`],
    [Number.NaN, `auto_delete: NaN is not a delay: ${forms}`],
    [Infinity, `auto_delete: Infinity is not a delay: ${forms}`],
    [true, `auto_delete: true is not a delay: ${forms}`],
    [null, `auto_delete: null is not a delay: ${forms}`],
    [0, 'auto_delete: 0 is not a delay: it must be more than 0 seconds'],
    ['0s', 'auto_delete: "0s" is not a delay: it must be more than 0 seconds'],
    [-30, 'auto_delete: -30 is not a delay: it must be more than 0 seconds'],
    [
      '48h',
      'auto_delete: "48h" is past the limit of 47h58m (172680 s): Telegram deletes no message older than 48 hours',
    ],
    [
      172_680.5,
      'auto_delete: 172680.5 is past the limit of 47h58m (172680 s): Telegram deletes no message older than 48 hours',
    ],
  ];
  for (const [delay, message] of refused)
    assert.throws(() => parseDelay(delay, 'auto_delete'), { name: 'AutoDeleteError', message }, String(delay));
});

test('a send plan: defaults, per-call values and opt-outs, the option taken out of a copy of the payload', () => {
  const none = { seconds: null, notice: false };
  const tenMinutes = { seconds: 600, notice: false };
  const payload = { chat_id: 1, text: 'x', auto_delete: '1m' };
  assert.deepEqual(planOf('sendMessage', payload, none), {
    plan: { seconds: 60, notice: false },
    sent: { chat_id: 1, text: 'x' },
  });
  assert.equal(payload.auto_delete, '1m', "the caller's payload is left as it was");
  assert.deepEqual(planOf('sendMessage', { chat_id: 1, text: 'x' }, none), {
    plan: null,
    sent: { chat_id: 1, text: 'x' },
  });
  assert.deepEqual(planOf('sendPhoto', { chat_id: 1, photo: 'p' }, tenMinutes).plan, { seconds: 600, notice: false });
  assert.deepEqual(planOf('sendPhoto', { chat_id: 1, auto_delete: false }, tenMinutes), {
    plan: null,
    sent: { chat_id: 1 },
  });
  assert.deepEqual(planOf('copyMessage', { chat_id: '-100', auto_delete: { after: 30, notice: true } }, none).plan, {
    seconds: 30,
    notice: true,
  });
  assert.deepEqual(planOf('sendDice', { chat_id: 1, auto_delete: '2h' }, { seconds: null, notice: true }).plan, {
    seconds: 7200,
    notice: true,
  });
  // Methods that send nothing pass through; asking them to auto-delete is a mistake said at once.
  assert.deepEqual(planOf('getMe', undefined, tenMinutes), { plan: null, sent: undefined });
  assert.deepEqual(planOf('deleteMessage', { chat_id: 1, message_id: 2 }, tenMinutes).plan, null);
  assert.throws(
    () => planOf('editMessageText', { chat_id: 1, auto_delete: '1m' }, none),
    /editMessageText sends no message/,
  );
  // A business chat: the default skips it, an explicit ask is refused.
  assert.equal(planOf('sendMessage', { chat_id: 1, business_connection_id: 'b' }, tenMinutes).plan, null);
  assert.throws(() => planOf('sendMessage', { chat_id: 1, business_connection_id: 'b', auto_delete: 60 }, none));
  // Only the answers of copyMessage(s) and forwardMessages lack the chat.
  assert.equal(planOf('sendMessage', { chat_id: '@chan' }, tenMinutes).plan?.seconds, 600);
  assert.equal(planOf('forwardMessage', { chat_id: '@chan' }, tenMinutes).plan?.seconds, 600);
  for (const method of ['copyMessage', 'copyMessages', 'forwardMessages'])
    assert.throws(() => planOf(method, { chat_id: '@chan' }, tenMinutes), /chat_id must be a numeric id/, method);
});

test("the messages an answer names: a Message's own chat, else the payload's numeric chat_id", () => {
  assert.deepEqual(sentMessages({ chat_id: '@chan' }, { message_id: 7, chat: { id: -100123 } }), {
    chatId: -100123,
    ids: [7],
  });
  assert.deepEqual(
    sentMessages({ chat_id: 5 }, [
      { message_id: 3, chat: { id: 5 } },
      { message_id: 4, chat: { id: 5 } },
    ]),
    { chatId: 5, ids: [3, 4] },
  );
  assert.deepEqual(sentMessages({ chat_id: -100600 }, { message_id: 9 }), { chatId: -100600, ids: [9] });
  assert.deepEqual(sentMessages({ chat_id: '42' }, [{ message_id: 1 }, { message_id: 2 }]), {
    chatId: 42,
    ids: [1, 2],
  });
  assert.deepEqual(sentMessages({ chat_id: 1 }, []), { chatId: 1, ids: [] });
  // A webhook reply answers `true`: no message is named.
  assert.deepEqual(sentMessages({ chat_id: 1 }, true), { chatId: null, ids: [] });
});

test("the README's auto-delete example is examples/auto-delete-bot.ts, the file the fault suite runs", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const example = readFileSync(new URL('../examples/auto-delete-bot.ts', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Auto-delete plugin (grammY)'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  // The file less its opening comment (how to run it), which the README says in words.
  assert.equal(block, example.slice(example.indexOf('import { Bot')));
});
