/**
 * Property-based (fast-check, seeded and bounded): random mutations of a valid JWT — any character
 * of any part replaced by another base64url character, or removed, or one inserted — are never
 * accepted by the verifier, for RS256 and ES256 keys. The verifier is driven directly: each run
 * costs one verification, so thousands of mutations stay fast.
 */
import fc from 'fast-check';
import t from 'tap';
import { createLocalJWKSet } from 'jose';
import { createJwtVerifier } from '../../src/provider/jwt.js';
import { manualClock } from '../helpers/clock.js';
import { signJwt, testKey } from '../helpers/jwt.js';

const SEED = 20261208;
const RUNS = 1500;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const ISSUER = 'https://idp.example';

t.test('no mutation of a valid JWT is ever accepted', async (t) => {
  const clock = manualClock();
  const keys = [await testKey('RS256', 'rsa'), await testKey('ES256', 'ec')];
  const verify = createJwtVerifier(
    {
      issuer: ISSUER,
      audience: ['orders-api'],
      clockSkewS: 30,
      jwt: { jwks_uri: null, algorithms: ['RS256', 'ES256'], typ: null, scope_claims: ['scope'] },
    },
    { getKey: createLocalJWKSet({ keys: keys.map((k) => k.publicJwk) }), clock },
  );
  for (const key of keys) {
    const token = await signJwt(key, { iss: ISSUER, aud: 'orders-api', sub: 'u', scope: 'a b', exp: clock.nowS() + 600 });
    t.match(await verify(token), { sub: 'u', active: true }, `${key.alg}: the original verifies`);
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: token.length - 1 }),
        fc.constantFrom('replace', 'remove', 'insert'),
        fc.constantFrom(...ALPHABET),
        async (at, how, c) => {
          const mutated =
            how === 'replace'
              ? token.slice(0, at) + c + token.slice(at + 1)
              : how === 'remove'
                ? token.slice(0, at) + token.slice(at + 1)
                : token.slice(0, at) + c + token.slice(at);
          if (mutated === token) return true;
          tried++;
          const accepted = await verify(mutated).then(
            () => true,
            () => false,
          );
          return !accepted;
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    t.ok(tried > RUNS * 0.9, `${key.alg}: ${tried} distinct mutations, none accepted`);
  }
});
