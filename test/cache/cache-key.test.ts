/**
 * SPEC §3.6: the cache key is a hash of (provider name, token), never the token. The one-shot
 * hash of the hot path must keep the digest the streaming form gave.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { cacheKey } from '../../src/cache/answers.js';

t.test('the cache key is sha256(provider, NUL, token) and never contains the token', async (t) => {
  const token = 'opaque-token-\u00e9-1234567890';
  const expected = createHash('sha256').update('acme').update('\0').update(token).digest('base64url');
  t.equal(cacheKey('acme', token), expected);
  t.not(cacheKey('acme', token), cacheKey('other', token), 'one token at two providers is two entries');
  t.not(cacheKey('ab', 'c'), cacheKey('a', 'bc'), 'the separator keeps name and token apart');
  t.notOk(cacheKey('acme', token).includes('opaque'));
});
