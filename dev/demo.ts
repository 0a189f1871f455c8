/**
 * `npm run demo`: real OpenID providers (oidc-provider) for three tenants — two introspected, one
 * issuing JWT access tokens that tollgate verifies itself — a small "legacy API", and
 * tollgate — the built binary, started with a configuration file and a providers.d folder — in
 * front of it. Once everything is ready it prints curl lines that work as pasted. Ctrl-C stops
 * all of it.
 *
 * TOLLGATE_LISTEN / TOLLGATE_ADMIN_LISTEN choose tollgate's addresses (default 127.0.0.1:7080 and
 * :7081, or a free port when those are taken).
 *
 * `npm run demo -- --shared-cache` also starts a local redis-server (on a free port, nothing
 * saved) and a second tollgate replica, both sharing answers through it: a token used on one
 * replica and then on the other costs its provider one call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify } from 'yaml';
import { startLegacyApi } from './legacy-api.js';
import { startOidcProvider, TOLLGATE_CLIENT } from './oidc-provider.js';

/** The API the JWT tenant's tokens are issued for (their `aud`). */
const JWT_AUDIENCE = 'https://orders.demo.example';

/** The token with the first character of its signature changed. */
function tampered(token: string): string {
  const at = token.lastIndexOf('.') + 1;
  return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');

/** The preferred address, or port 0 (the system picks) when something else holds it. */
async function freeOr0(preferred: string): Promise<string> {
  const colon = preferred.lastIndexOf(':');
  const host = preferred.slice(0, colon);
  const port = Number(preferred.slice(colon + 1));
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer()
      .once('error', () => resolve(false))
      .listen(port, host, () => probe.close(() => resolve(true)));
  });
  return free ? preferred : `${host}:0`;
}

/** A local redis-server on a free loopback port, nothing saved; resolves once it accepts connections. */
async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--logfile', ''];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server was not ready within 10 s')), 10_000);
    child.once('error', () => reject(new Error('--shared-cache needs redis-server (apt-get install redis-server)')));
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { url: `redis://127.0.0.1:${port}/0`, child };
}

async function main(): Promise<void> {
  const withSharedCache = process.argv.includes('--shared-cache');
  const redis = withSharedCache ? await startRedis() : undefined;
  const sub = (clientId: string) => ({ sub: `service-account:${clientId}` });
  // Two tenants, each with its own provider: acme's is inline, globex's a providers.d file.
  const op = await startOidcProvider({ extraTokenClaims: sub });
  const globex = await startOidcProvider({ extraTokenClaims: sub });
  // A third tenant whose provider issues JWT access tokens (RFC 9068): tollgate checks them with
  // the provider's published keys and never calls it per token; it has no introspection here.
  const initech = await startOidcProvider({ jwtAccessTokens: { audience: JWT_AUDIENCE, alg: 'ES256' } });
  const api = await startLegacyApi();
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-demo-'));
  const configFile = path.join(dir, 'tollgate.yaml');
  mkdirSync(path.join(dir, 'providers.d'));
  writeFileSync(path.join(dir, 'providers.d', 'globex.yaml'), stringify({ issuer: globex.issuer, ...TOLLGATE_CLIENT }));
  writeFileSync(
    configFile,
    stringify({
      listen: await freeOr0(process.env.TOLLGATE_LISTEN || '127.0.0.1:7080'),
      admin_listen: await freeOr0(process.env.TOLLGATE_ADMIN_LISTEN || '127.0.0.1:7081'),
      upstream: { url: api.url },
      providers: [
        { name: 'demo', issuer: op.issuer, ...TOLLGATE_CLIENT },
        { name: 'initech', issuer: initech.issuer, audience: JWT_AUDIENCE, jwt: { typ: 'at+jwt' } },
      ],
      providers_dir: 'providers.d',
      routes: [
        { match: { path_prefix: '/health' }, public: true },
        // The tenant's host names the only provider that may vouch for tokens sent there.
        { match: { host: 'globex.localhost' }, providers: ['globex'] },
        { match: { host: 'initech.localhost' }, providers: ['initech'] },
        { match: { path_prefix: '/admin' }, scopes: ['orders:admin'], providers: ['demo'] },
        { match: {}, providers: ['demo'] },
      ],
      shutdown: { drain_delay_s: 0, timeout_s: 5 },
      ...(redis ? { cache: { shared: { url: redis.url } } } : {}),
    }),
  );

  // The environment's TOLLGATE_* would override the file; the file already holds the choices.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_')));
  const child = spawn(process.execPath, [cli, '--config', configFile], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let proxyUrl: string | undefined;
  let adminUrl: string | undefined;
  let bannerShown = false;
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`tollgate exited with code ${code} before it was ready`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = parseJson(line);
      if (entry?.msg === 'tollgate listening') {
        proxyUrl = String(entry.proxy);
        adminUrl = String(entry.admin);
        resolve();
      }
      // tollgate's own JSON log lines, after the banner so the curl lines stay readable.
      if (bannerShown) process.stdout.write(`tollgate | ${line}\n`);
    });
  });

  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (child.exitCode === null) {
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    for (const other of [replica?.child, redis?.child]) {
      if (other && other.exitCode === null) {
        other.kill('SIGINT');
        await new Promise((resolve) => other.once('exit', resolve));
      }
    }
    await Promise.all([api.close(), op.close(), globex.close(), initech.close()]);
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  // The second replica: the same configuration on free ports (it is in the demo's folder, so
  // providers.d resolves the same).
  let replica: { child: ChildProcess; proxyUrl: string; adminUrl: string } | undefined;
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    await listening;
    await waitReady(`${adminUrl}/readyz`);
    if (redis) {
      const second = path.join(dir, 'replica-2.yaml');
      const tree = parseYaml(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
      writeFileSync(second, stringify({ ...tree, listen: '127.0.0.1:0', admin_listen: '127.0.0.1:0' }));
      replica = await startReplica(second, env);
      await waitReady(`${replica.adminUrl}/readyz`);
    }
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    await stop(1);
    return;
  }
  const token = await op.mintToken(undefined, undefined, 'orders:read');
  const globexToken = await globex.mintToken(undefined, undefined, 'orders:read');
  const jwtToken = await initech.mintToken(undefined, undefined, 'orders:read');
  const sharedToken = replica ? await op.mintToken(undefined, undefined, 'orders:read') : '';

  process.stdout.write(`
tollgate demo is running:
  OpenID provider  ${op.issuer}   (oidc-provider, client_credentials + introspection)
  globex's provider ${globex.issuer}   (a second tenant, from ${path.join(dir, 'providers.d', 'globex.yaml')})
  initech's provider ${initech.issuer}   (a third tenant: JWT access tokens, verified by tollgate)
  legacy API       ${api.url}   (answers with the identity headers it received)
  tollgate         ${proxyUrl}   (admin: ${adminUrl})

A client_credentials token (scope orders:read, valid 1 hour) was minted for you. Try:

  # allowed: the API answers with the X-Auth-* headers tollgate added
  curl -i ${proxyUrl}/orders/42 -H 'Authorization: Bearer ${token}'

  # no token: 401 with WWW-Authenticate: Bearer realm="tollgate"
  curl -i ${proxyUrl}/orders/42

  # a route that demands scope orders:admin: 403 insufficient_scope
  curl -i -X POST ${proxyUrl}/admin/orders -H 'Authorization: Bearer ${token}'

  # a token the provider never issued: 401 invalid_token
  curl -i ${proxyUrl}/orders/42 -H 'Authorization: Bearer not-a-real-token'

  # tenant globex: its own provider vouches for its own token (X-Auth-Provider: globex)
  curl -i ${proxyUrl}/orders/7 -H 'Host: globex.localhost' -H 'Authorization: Bearer ${globexToken}'

  # the first token on globex's route: globex's provider does not know it, 401
  curl -i ${proxyUrl}/orders/7 -H 'Host: globex.localhost' -H 'Authorization: Bearer ${token}'

  # tenant initech: a JWT access token, verified with its provider's keys, no call to it (X-Auth-Provider: initech)
  curl -i ${proxyUrl}/orders/9 -H 'Host: initech.localhost' -H 'Authorization: Bearer ${jwtToken}'

  # the same JWT with one character of its signature changed: 401 invalid_token, still no call
  curl -i ${proxyUrl}/orders/9 -H 'Host: initech.localhost' -H 'Authorization: Bearer ${tampered(jwtToken)}'

  # a public route: no token needed, and a spoofed X-Auth-Subject is still removed
  curl -i ${proxyUrl}/health -H 'X-Auth-Subject: admin'

  # Prometheus metrics (look for tollgate_requests_total)
  curl -s ${adminUrl}/metrics
${
  replica && redis
    ? `
Shared cache: a second replica ${replica.proxyUrl} (admin: ${replica.adminUrl}) and both share
answers through redis-server ${redis.url}. A new token, used on the first replica, then the second:

  curl -s -o /dev/null -w '%{http_code}\\n' ${proxyUrl}/orders/1 -H 'Authorization: Bearer ${sharedToken}'
  curl -s -o /dev/null -w '%{http_code}\\n' ${replica.proxyUrl}/orders/1 -H 'Authorization: Bearer ${sharedToken}'

  # the second replica found the answer in Redis: result="shared_hit" 1, and no introspection call of its own
  curl -s ${replica.adminUrl}/metrics | grep -E 'cache_lookups_total|introspection_requests_total'
`
    : ''
}
Ctrl-C stops everything.
`);
  bannerShown = true;
  child.once('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`demo: tollgate exited (code ${code})\n`);
      void stop(code ?? 1);
    }
  });
}

/** A second tollgate process; its log is not shown (the first replica's is). */
async function startReplica(
  configFile: string,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; proxyUrl: string; adminUrl: string }> {
  const child = spawn(process.execPath, [cli, '--config', configFile], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the second replica exited with code ${code} before it was ready`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = parseJson(line);
      if (entry?.msg === 'tollgate listening') resolve({ child, proxyUrl: String(entry.proxy), adminUrl: String(entry.admin) });
    });
  });
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

async function waitReady(url: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const ready = await fetch(url).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`tollgate was not ready after 10 s (${url})`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
