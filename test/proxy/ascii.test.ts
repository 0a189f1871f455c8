/**
 * startsWithLetters replaces `text.slice(0, n).toLowerCase() === letters` on the hot path: it must
 * answer exactly as that did for any ASCII or Latin-1 text (what a header value can hold), and never
 * take a character outside a–z/A–Z for a letter.
 */
import fc from 'fast-check';
import t from 'tap';
import { startsWithLetters } from '../../src/proxy/ascii.js';

const WORDS = ['bearer', 'host', 'authorization'];
/** Text near the words: their letters in either case, neighbours of the letters (`@`, `[`, `` ` ``, `{`), Latin-1. */
const nearWord = (word: string) =>
  fc
    .array(
      fc.oneof(
        fc.constantFrom(...word, ...word.toUpperCase(), '@', '[', '`', '{', '\x00', ' ', '-'),
        fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)),
      ),
      { maxLength: word.length + 3 },
    )
    .map((chars) => chars.join(''));

t.test('answers as slice + toLowerCase did, for any Latin-1 text', async (t) => {
  for (const word of WORDS) {
    fc.assert(
      fc.property(
        nearWord(word),
        (text) => startsWithLetters(text, word) === (text.slice(0, word.length).toLowerCase() === word),
      ),
      { numRuns: 5000 },
    );
  }
  t.pass('5,000 texts per word');
});

t.test('examples', async (t) => {
  t.ok(startsWithLetters('Bearer abc', 'bearer'));
  t.ok(startsWithLetters('BEARER', 'bearer'));
  t.ok(startsWithLetters('Host', 'host'));
  t.notOk(startsWithLetters('Beare', 'bearer'), 'too short');
  t.notOk(startsWithLetters('Bearer'.replace('B', '\x02'), 'bearer'), 'a control character is no letter');
  t.notOk(startsWithLetters('Basic abc', 'bearer'));
});
