/**
 * `cache.shared` as configured: defaults, every problem reported by its path in one run, and the
 * TLS and password settings against a real redis-server that requires both.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { createPki } from '../helpers/pki.js';
import { startRedis } from '../helpers/redis.js';
import { providerEntry, startTollgate, testTree, waitFor } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const base = { upstream: { url: 'http://127.0.0.1:8080' }, providers: [providerEntry('acme', 'https://idp.example')] };

t.test('defaults: no shared cache unless configured; then prefix tollgate: and 50 ms', async (t) => {
  const none = validateConfig(testTree(base));
  t.ok(none.ok && none.config.cache.shared === undefined, 'off by default');
  const on = validateConfig(testTree({ ...base, cache: { shared: { url: 'redis://127.0.0.1:6379/0' } } }));
  if (!on.ok) return t.fail(JSON.stringify(on.problems));
  t.same(on.config.cache.shared, {
    url: 'redis://127.0.0.1:6379/0',
    password_file: null,
    ca_file: null,
    key_prefix: 'tollgate:',
    timeout_ms: 50,
  });
});

t.test('every problem of cache.shared, each with its path, in one run', async (t) => {
  const dir = t.testdir({ 'not-a-ca.pem': 'hello' });
  const bad = (shared: Record<string, unknown>) => {
    const result = validateConfig(testTree({ ...base, cache: { shared } }), { baseDir: dir });
    return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
  };
  t.match(bad({ url: 'http://127.0.0.1:6379' }), [/^cache\.shared\.url: expected a redis:\/\/ or rediss:\/\//]);
  // One problem per path: the unreadable file is named, the schema's verdict on it would repeat it.
  t.same(bad({ url: 'redis://127.0.0.1', ca_file: 'not-a-ca.pem' }).length, 1);
  t.match(bad({ url: 'redis://127.0.0.1', ca_file: 'not-a-ca.pem' }), [/^cache\.shared\.ca_file: not-a-ca\.pem holds no PEM/]);
  t.match(bad({ url: 'rediss://127.0.0.1', ca_file: 'not-a-ca.pem' }), [/^cache\.shared\.ca_file: not-a-ca\.pem holds no PEM/]);
  t.match(bad({ url: 'redis://:pw@127.0.0.1', password_file: 'missing' }), [
    /^cache\.shared\.password_file: cannot read missing: ENOENT/,
  ]);
  const all = bad({ url: 'redis://127.0.0.1', timeout_ms: 0, key_prefx: 'x', password_file: 'missing' });
  t.match(all.join('\n'), /cache\.shared\.timeout_ms/);
  t.match(all.join('\n'), /key_prefx/);
  t.match(all.join('\n'), /cache\.shared\.password_file: cannot read missing/);
});

t.test('rediss:// with a private CA and a password from a file', async (t) => {
  const dir = t.testdir({});
  const pki = createPki(dir);
  const ca = pki.ca('redis-ca');
  const server = pki.issue(ca, '127.0.0.1', 'server');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const redis = await startRedis(t, {
    tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile },
    password,
  });
  const passwordFile = path.join(dir, 'redis-password');
  writeFileSync(passwordFile, `${password}\n`); // as `echo` and Secrets write it
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  provider.answer(() => ({ active: true, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const raw = (shared: Record<string, unknown>) => ({
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer)],
    cache: { shared: { url: redis.url, timeout_ms: 1000, ...shared } },
  });
  const a = await startTollgate(t, raw({ ca_file: ca.certFile, password_file: passwordFile }));
  const b = await startTollgate(t, raw({ ca_file: ca.certFile, password_file: passwordFile }));
  await waitFor(async () => (await a.metric('tollgate_shared_cache_up')) === 1, 10_000, 'a did not connect over TLS');
  await waitFor(async () => (await b.metric('tollgate_shared_cache_up')) === 1, 10_000, 'b did not connect over TLS');
  const token = `tok-${randomBytes(8).toString('hex')}`;
  t.equal((await a.request('/', { headers: bearer(token) })).status, 200);
  await waitFor(async () => (await redis.cli('DBSIZE')).trim() === '1', 5000, 'nothing written over TLS');
  t.equal((await b.request('/', { headers: bearer(token) })).status, 200);
  t.equal(b.accessLines().at(-1)?.cache, 'shared_hit', 'shared over TLS with a password');
  t.equal(provider.callCount, 1);

  // Without the private CA the server is not trusted: no sharing, and nothing fails for it.
  const untrusting = await startTollgate(t, raw({ password_file: passwordFile }));
  t.equal((await untrusting.request('/', { headers: bearer(`tok-${randomBytes(8).toString('hex')}`) })).status, 200);
  t.equal(await untrusting.metric('tollgate_shared_cache_up'), 0);
  t.notOk(untrusting.rawLogs().includes(password), 'the password is never logged');
  t.notOk(a.rawLogs().includes(password));
});
