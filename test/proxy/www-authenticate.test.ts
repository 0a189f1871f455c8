/**
 * RFC 9728 §5.1: with `resource` set, every Bearer challenge names the metadata document in
 * `resource_metadata`, beside `realm`, `error`, `error_description` and `scope`. Every challenge
 * tollgate sends is read here with a strict RFC 9110 §11.6.1 parser (one that refuses what a
 * lenient client would guess at), from the renderer directly and over HTTP for each refusal.
 */
import t, { type Test } from 'tap';
import { createRenderer, ERRORS, renderError, TollgateError, type ErrorCode } from '../../src/errors.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer, type Answer } from '../helpers/http.js';
import { head, rawRequest } from '../helpers/raw.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

interface Challenge {
  scheme: string;
  /** Lower-cased names (RFC 9110 §11.2: case-insensitive), values unquoted. */
  params: Record<string, string>;
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * RFC 9110 §11.6.1 `WWW-Authenticate = #challenge`, strictly: `auth-scheme [ 1*SP #auth-param ]`,
 * `auth-param = token BWS "=" BWS ( token / quoted-string )`, list elements separated by
 * `OWS "," OWS`; a quoted-string holds only qdtext and quoted-pairs (§5.6.4); a parameter name
 * occurs at most once per challenge (§11.2). Anything else throws. token68 is not accepted:
 * tollgate never sends one.
 */
function parseChallenges(header: string): Challenge[] {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at ${i} in ${JSON.stringify(header)}`);
  };
  const token = (): string => {
    const start = i;
    while (i < header.length && TCHAR.test(header[i]!)) i++;
    if (i === start) fail('expected a token');
    return header.slice(start, i);
  };
  const ows = () => {
    while (header[i] === ' ' || header[i] === '\t') i++;
  };
  const quoted = (): string => {
    if (header[i] !== '"') fail('expected a quoted-string');
    i++;
    let value = '';
    for (;;) {
      if (i >= header.length) fail('unterminated quoted-string');
      const c = header.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return value;
      }
      if (c === 0x5c) {
        const next = header.charCodeAt(i + 1);
        if (!(next === 0x09 || (next >= 0x20 && next <= 0x7e) || next >= 0x80)) fail('bad quoted-pair');
        value += header[i + 1];
        i += 2;
        continue;
      }
      if (!(c === 0x09 || c === 0x20 || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80)) {
        fail('a character a quoted-string cannot hold');
      }
      value += header[i];
      i++;
    }
  };
  const challenges: Challenge[] = [];
  while (i < header.length) {
    const scheme = token();
    const params: Record<string, string> = {};
    if (header[i] === ' ') {
      while (header[i] === ' ') i++;
      for (;;) {
        const at = i;
        const name = token().toLowerCase();
        ows();
        if (header[i] !== '=') {
          // The next challenge's scheme, after the comma that ended this challenge's list.
          i = at;
          break;
        }
        i++;
        ows();
        const value = header[i] === '"' ? quoted() : token();
        if (name in params) fail(`parameter ${name} repeated`);
        params[name] = value;
        ows();
        if (i >= header.length) break;
        if (header[i] !== ',') fail('expected a comma');
        i++;
        ows();
      }
    } else if (i < header.length) {
      if (header[i] !== ',') fail('expected a space or a comma after the scheme');
      i++;
      ows();
    }
    challenges.push({ scheme, params });
  }
  if (challenges.length === 0) fail('no challenge');
  return challenges;
}

/** The one Bearer challenge of a header, parsed strictly. */
function bearerChallenge(t: Test, header: unknown): Record<string, string> {
  t.type(header, 'string', 'a WWW-Authenticate header');
  const challenges = parseChallenges(header as string);
  t.equal(challenges.length, 1, 'one challenge');
  t.equal(challenges[0]!.scheme.toLowerCase(), 'bearer');
  return challenges[0]!.params;
}

t.test('the parser is strict', async (t) => {
  t.same(parseChallenges('Bearer realm="a\\"b", error=invalid_token'), [
    { scheme: 'Bearer', params: { realm: 'a"b', error: 'invalid_token' } },
  ]);
  t.same(parseChallenges('Basic, Bearer realm="x"'), [
    { scheme: 'Basic', params: {} },
    { scheme: 'Bearer', params: { realm: 'x' } },
  ]);
  for (const bad of [
    'Bearer realm="x',
    'Bearer realm="x" error="y"',
    'Bearer realm="x", realm="y"',
    'Bearer realm=x y',
    'Bearer realm="\u0001"',
  ]) {
    t.throws(() => parseChallenges(bad), bad);
  }
});

const URL_ = 'https://api.example.com/.well-known/oauth-protected-resource/mcp';

t.test('the renderer: every challenge, with and without resource metadata', async (t) => {
  const withMetadata = createRenderer(URL_);
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const err = new TollgateError(
      code,
      'say "no" \\ twice',
      code === 'insufficient_scope' ? { scope: 'tools:admin tools:read' } : {},
    );
    const plain = renderError(err).headers['www-authenticate'];
    const rendered = withMetadata(err).headers['www-authenticate'];
    if (ERRORS[code].challenge === undefined) {
      t.equal(rendered, undefined, `${code}: no challenge`);
      continue;
    }
    const params = bearerChallenge(t, rendered);
    t.equal(params.realm, 'tollgate', code);
    t.equal(params.resource_metadata, URL_, `${code}: resource_metadata`);
    if (ERRORS[code].challenge === null) {
      t.same(Object.keys(params), ['realm', 'resource_metadata'], `${code}: a bare challenge, and where to read more`);
    } else {
      t.equal(params.error, code, code);
      t.equal(params.error_description, 'say "no" \\ twice', `${code}: the description survives quoting`);
    }
    if (code === 'insufficient_scope') t.equal(params.scope, 'tools:admin tools:read');
    t.notOk('resource_metadata' in bearerChallenge(t, plain), `${code}: none without a resource`);
  }
  const err = new TollgateError('invalid_token', 'x');
  t.equal(withMetadata(err), withMetadata(err), 'rendered once, then shared');
  t.not(withMetadata(err), renderError(err), 'each renderer keeps its own');
});

t.test('over HTTP: every refusal carries the right resource_metadata', async (t) => {
  const op = await startFakeProvider();
  t.teardown(() => op.close());
  op.answer((token) => {
    if (token === 'inactive') return { active: false };
    if (token === 'elsewhere') return { active: true, aud: 'https://other.example.com/mcp', scope: 'tools:read' };
    return { active: true, sub: 'agent', aud: 'https://api.example.com/mcp', scope: 'tools:read' };
  });
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('idp', op.issuer)],
    token_sources: ['header', 'query'],
    resource: { identifier: 'https://api.example.com/mcp' },
    routes: [
      { match: { path_prefix: '/mcp/admin' }, scopes: ['tools:admin'] },
      { match: { path_prefix: '/mcp' }, scopes: ['tools:read'] },
    ],
  });

  const cases: [string, () => Promise<Answer>, number, string | undefined][] = [
    ['no token', () => gate.request('/mcp'), 401, undefined],
    ['another scheme', () => gate.request('/mcp', { headers: { authorization: 'Basic YTpi' } }), 401, undefined],
    ['a malformed token', () => gate.request('/mcp', { headers: bearer('a b') }), 401, 'invalid_token'],
    ['an inactive token', () => gate.request('/mcp', { headers: bearer('inactive') }), 401, 'invalid_token'],
    ["another resource's token", () => gate.request('/mcp', { headers: bearer('elsewhere') }), 401, 'invalid_token'],
    ['too little scope', () => gate.request('/mcp/admin', { headers: bearer('good') }), 403, 'insufficient_scope'],
    ['two tokens', () => gate.request('/mcp?access_token=good', { headers: bearer('good') }), 400, 'invalid_request'],
  ];
  for (const [name, send, status, error] of cases) {
    const res = await send();
    t.equal(res.status, status, name);
    const params = bearerChallenge(t, res.headers['www-authenticate']);
    t.equal(params.resource_metadata, `https://api.example.com/.well-known/oauth-protected-resource/mcp`, name);
    t.equal(params.realm, 'tollgate', name);
    t.equal(params.error, error, `${name}: error`);
    if (status === 403) t.equal(params.scope, 'tools:admin', `${name}: the scope to step up to`);
  }
  t.equal(upstream.requests.length, 0, 'nothing of a refused request reached the upstream');

  t.test('a refused WebSocket upgrade too', async (t) => {
    const upgrade = head('GET /mcp HTTP/1.1', [
      ['Host', 'api.example.com'],
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ]);
    const { responses } = await rawRequest(gate.url, upgrade, { responses: 1 });
    t.equal(responses[0]?.status, 401);
    const params = bearerChallenge(t, responses[0]?.headers['www-authenticate']?.[0]);
    t.equal(params.resource_metadata, 'https://api.example.com/.well-known/oauth-protected-resource/mcp');
  });
});
