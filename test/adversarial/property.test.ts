/**
 * Property-based (fast-check, seeded and bounded): generated header sets (identity names in random
 * case with `_`/`.` for `-`, prefixes, hop-by-hop names, Connection lists) and generated paths (dot
 * segments plain and encoded, double encoding, `;params`, backslashes, NUL) against tollgate over
 * a raw socket. Invariants, for every input:
 * - the upstream never receives an identity header tollgate did not set (no spoofed value, no
 *   `_`/`.` spelling, never twice, none at all without a vouched-for token);
 * - nothing reaches the upstream without a token unless its normalised path is under the public
 *   route, and what reaches it is a normalised path;
 * - tollgate answers every request, and still answers a plain request afterwards.
 */
import fc from 'fast-check';
import t from 'tap';
import { head, rawRequest } from '../helpers/raw.js';
import { startGate } from '../helpers/gate.js';

const SEED = 20261129;
const RUNS = 300;

/** Normalised names of the headers tollgate sets with this configuration. */
const SET_BY_TOLLGATE = new Set(['x-auth-subject', 'x-user', 'x-auth-scope', 'x-auth-provider']);
// The test's own reading of a name, as a server behind tollgate may read it (not tollgate's code).
const isIdentityName = (name: string) => {
  const n = name.toLowerCase().replace(/[_.]/g, '-');
  return SET_BY_TOLLGATE.has(n) || n.startsWith('x-auth-') || n.startsWith('x-internal-');
};

/** A name with each letter in random case and each `-` as `-`, `_` or `.`. */
const spelling = (base: string) =>
  fc
    .tuple(
      fc.array(fc.boolean(), { minLength: base.length, maxLength: base.length }),
      fc.array(fc.constantFrom('-', '_', '.'), { minLength: base.length, maxLength: base.length }),
    )
    .map(([upper, dash]) =>
      [...base].map((c, i) => (c === '-' ? dash[i]! : upper[i] ? c.toUpperCase() : c.toLowerCase())).join(''),
    );

const identityNames = fc.constantFrom(
  'X-Auth-Subject',
  'X-Auth-Scope',
  'X-Auth-Provider',
  'X-User',
  'X-Auth-Roles',
  'X-Internal-Id',
  'X-Auth-',
);
const hopNames = fc.constantFrom(
  'Keep-Alive',
  'TE',
  'Trailer',
  'Upgrade',
  'Proxy-Authorization',
  'Proxy-Connection',
  'X-Forwarded-For',
  'X-Forwarded-Host',
  'X-Forwarded-Proto',
  'Cookie',
);
const otherNames = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+^`|~_.-]{1,16}$/);
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'expect', 'authorization', 'connection']);
const headerName = fc
  .oneof(
    { weight: 4, arbitrary: identityNames.chain(spelling) },
    { weight: 2, arbitrary: hopNames },
    { weight: 1, arbitrary: otherNames },
  )
  .filter((n) => !RESERVED.has(n.toLowerCase()));
const headerValue = fc.stringMatching(/^[\x21-\x7e]{0,12}$/).map((v) => `spoof${v}`);
const connection = fc
  .array(fc.oneof(identityNames.chain(spelling), hopNames, fc.constantFrom('close', 'keep-alive', 'upgrade', 'host')), {
    maxLength: 5,
  })
  .map((names) => names.join(', '));

const segment = fc.oneof(
  fc.constantFrom(
    'public',
    'admin',
    'orders',
    '..',
    '.',
    '%2e',
    '%2E%2e',
    '.%2e',
    '%2f',
    '%2F',
    '%252e',
    '%25252E',
    '%5c',
    '\\',
    ';x',
    '..;',
    '.;',
    '%00',
    '',
    '%zz',
    'a%20b',
    '%7e',
    '%41',
    '%c3%a9',
  ),
  fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{1,8}$/),
);
const path = fc
  .tuple(fc.array(segment, { maxLength: 6 }), fc.option(fc.constantFrom('?a=1', '?../../admin', '?x=%2e%2e'), { nil: undefined }))
  .map(([segments, query]) => `/${segments.join('/')}${query ?? ''}`);

const token = fc.constantFrom(undefined, 'good', 'admin', 'nope');

t.test('no generated request smuggles an identity header or reaches a protected path without a token', async (t) => {
  const g = await startGate(t, {
    config: {
      headers: {
        claims: { 'X-Auth-Subject': 'sub', 'X-User': 'sub', 'X-Auth-Scope': 'scope' },
        strip_prefixes: ['X-Auth-', 'X-Internal-'],
      },
    },
  });
  let forwarded = 0;
  await fc.assert(
    fc.asyncProperty(
      path,
      token,
      fc.array(fc.tuple(headerName, headerValue), { maxLength: 12 }),
      fc.option(connection, { nil: undefined }),
      async (target, tok, headers, conn) => {
        const before = g.upstream.requests.length;
        const lines: [string, string][] = [['Host', g.host], ...headers];
        if (tok !== undefined) lines.push(['Authorization', `Bearer ${tok}`]);
        if (conn !== undefined) lines.push(['Connection', conn]);
        lines.push(['Connection', 'close']);
        const res = await rawRequest(g.gate.url, head(`GET ${target} HTTP/1.1`, lines), { responses: 1 });
        const status = res.responses[0]?.status;
        if (status === undefined || ![200, 400, 401, 403].includes(status)) {
          throw new Error(`unexpected answer ${JSON.stringify(res.raw.slice(0, 200))}`);
        }
        const vouched = tok === 'good' || tok === 'admin';
        for (const seen of g.upstream.requests.slice(before)) {
          forwarded++;
          const pathname = seen.url.split('?')[0]!;
          if (/(^|\/)\.\.?(\/|$)|\\|%2f|%5c|%00|%25(25)*(2e|2f|5c|00)|%2e/i.test(pathname)) {
            throw new Error(`a path that is not normalised reached the upstream: ${seen.url}`);
          }
          const identity = Object.entries(seen.headers).filter(([name]) => isIdentityName(name));
          const isPublic = pathname.startsWith('/public');
          if (!vouched && !isPublic) throw new Error(`${seen.url} reached the upstream without a token`);
          for (const [name, values] of identity) {
            if (isPublic || !vouched) throw new Error(`${name} reached the upstream on a request tollgate vouched for nothing`);
            if (!SET_BY_TOLLGATE.has(name)) throw new Error(`${name} is not a header tollgate sets`);
            if (values.length !== 1) throw new Error(`${name} arrived ${values.length} times`);
            if (values[0]!.includes('spoof')) throw new Error(`${name} carried a spoofed value`);
          }
        }
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
  t.ok(forwarded > RUNS / 10, `a fair share of the generated requests was forwarded (${forwarded})`);
  const after = await g.gate.request('/orders', { headers: { authorization: 'Bearer good' } });
  t.equal(after.status, 200, 'tollgate still answers after every generated input');
  t.same(g.upstream.requests.at(-1)?.headers['x-auth-subject'], ['alice']);
});
