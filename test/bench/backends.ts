/**
 * The benchmark's backends, in a process of their own so neither the load generator nor the proxy
 * under test shares their event loop:
 * - the upstream: answers every request 200 with a small JSON body, keep-alive; a request body is
 *   read to its end and dropped;
 * - a fast introspection provider: plain node:http, RFC 7662 JSON after a fixed latency (default
 *   2 ms), discovery metadata for any number of issuers (`/t/NAME` is issuer NAME; `/` is the
 *   default issuer), and `GET /__stats` with the number of introspection calls so far.
 *
 * With BENCH_JWKS (a JWK Set as JSON), every issuer also publishes it at `ISSUER/jwks` and names it
 * as its `jwks_uri`: the keys of the JWT rows' tokens.
 *
 * Tokens starting with `slow-` are answered after BENCH_SLOW_MS instead, so that a burst of
 * requests with one fresh token is certain to arrive while its first call is still in flight.
 * Reports `{ upstream, provider }` to its parent over IPC once both listen.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const latencyMs = Number(process.env.BENCH_PROVIDER_LATENCY_MS ?? 2);
const slowMs = Number(process.env.BENCH_SLOW_MS ?? 250);
const jwks = process.env.BENCH_JWKS ? (JSON.parse(process.env.BENCH_JWKS) as unknown) : undefined;
let calls = 0;

const OK = Buffer.from('{"ok":true,"items":[1,2,3]}');
const upstream = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const answer = () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': OK.length }).end(OK);
  if (req.method === 'GET' || req.method === 'HEAD') return answer();
  req.on('data', () => {});
  req.on('end', answer);
});

let base = '';
const provider = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET') {
    if (url === '/__stats') return json(res, { calls });
    if (jwks !== undefined && /^(\/t\/[a-z0-9-]+)?\/jwks$/.test(url)) return json(res, jwks);
    const m = /^(\/t\/[a-z0-9-]+)?\/\.well-known\/(openid-configuration|oauth-authorization-server)$/.exec(url);
    if (m === null) return json(res, { error: 'not_found' }, 404);
    const issuer = base + (m[1] ?? '');
    return json(res, {
      issuer,
      introspection_endpoint: `${issuer}/introspect`,
      token_endpoint: `${issuer}/token`,
      ...(jwks === undefined ? {} : { jwks_uri: `${issuer}/jwks` }),
      introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
    });
  }
  if (req.method !== 'POST' || !url.endsWith('/introspect')) return json(res, { error: 'not_found' }, 404);
  const issuer = base + url.slice(0, -'/introspect'.length);
  readBody(req, (body) => {
    calls++;
    const token = new URLSearchParams(body).get('token') ?? '';
    const claims = {
      active: true,
      iss: issuer,
      sub: 'bench-user',
      client_id: 'bench-client',
      username: 'bench',
      scope: 'orders:read orders:write',
      exp: Math.floor(Date.now() / 1000) + 3600,
      token_type: 'Bearer',
    };
    setTimeout(() => json(res, claims), token.startsWith('slow-') ? slowMs : latencyMs);
  });
});

function readBody(req: IncomingMessage, then: (body: string) => void): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => then(body));
}

function json(res: ServerResponse, body: unknown, status = 200): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

const listen = (server: ReturnType<typeof createServer>) =>
  new Promise<string>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );

const [upstreamUrl, providerUrl] = await Promise.all([listen(upstream), listen(provider)]);
base = providerUrl;
process.send?.({ upstream: upstreamUrl, provider: providerUrl });
process.on('disconnect', () => process.exit(0));
