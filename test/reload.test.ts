/**
 * Live reload of providers (SPEC §7) against real providers: files added, changed and removed in
 * providers_dir while requests run; a Kubernetes ConfigMap-style `..data` symlink swap; invalid
 * files and failing discovery that leave the old set serving; settings that need a restart.
 * Reloads are triggered by the folder watch (tollgate's own debounce) and waited for by bounded
 * polling of the reload counter.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startOidcProvider, type OidcProvider } from '../dev/oidc-provider.js';
import { treeSource } from '../src/reload.js';
import { json, startFakeProvider } from './helpers/fake-provider.js';
import { bearer } from './helpers/http.js';
import { eventually, startTollgate, testTree, withTimeout, type TestTollgate } from './helpers/tollgate.js';
import { startUpstream } from './helpers/upstream.js';

const providerYaml = (issuer: string, extra = '') =>
  `issuer: "${issuer}"\nclient_id: tollgate\nclient_secret: tollgate-secret\n${extra}`;

function tempDir(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const reloads = (gate: TestTollgate, result: 'success' | 'failure') => gate.metric('tollgate_config_reloads_total', { result });

async function reloaded(gate: TestTollgate, result: 'success' | 'failure', count: number): Promise<void> {
  await eventually(async () => (await reloads(gate, result)) >= count, `expected ${count} reload(s) with result ${result}`);
}

/** Waits for a successful reload that added, changed or removed `name`. */
async function applied(gate: TestTollgate, kind: 'added' | 'changed' | 'removed', name: string): Promise<void> {
  await eventually(
    () => gate.logs.some((l) => l.msg === 'configuration reloaded' && (l[kind] as string[]).includes(name)),
    `a reload that ${kind} ${name}`,
  );
}

async function realProviders(t: Test, n: number): Promise<OidcProvider[]> {
  const ops = await Promise.all(Array.from({ length: n }, () => startOidcProvider()));
  t.teardown(() => Promise.all(ops.map((op) => op.close())));
  return ops;
}

t.test('add, change and remove a provider file while requests run', async (t) => {
  const [opA, opB, opC] = (await realProviders(t, 3)) as [OidcProvider, OidcProvider, OidcProvider];
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'a.yaml'), providerYaml(opA.issuer));
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers_dir: dir,
    provider_header: 'X-Tenant',
    // Every request asks its provider, so introspections are in flight whenever a swap happens.
    cache: { ttl_s: 0, negative_ttl_s: 0 },
    access_log: false,
  });
  const tokens = { a: await opA.mintToken(), b: await opB.mintToken(), c: await opC.mintToken() };

  // The request loop: tenant a must never fail; tenant b's answers are recorded per phase.
  let phase = 'only-a';
  let stop = false;
  const seen: { phase: string; tenant: string; token: string; status: number }[] = [];
  const deadline = performance.now() + 30_000;
  const worker = async () => {
    for (let i = 0; i < 2000 && !stop && performance.now() < deadline; i++) {
      const [tenant, token] = (
        [
          ['a', 'a'],
          ['b', 'b'],
          ['b', 'c'],
        ] as const
      )[i % 3]!;
      const at = phase;
      const res = await gate.request('/orders', { headers: { ...bearer(tokens[token]), 'x-tenant': tenant } });
      seen.push({ phase: at === phase ? at : 'switching', tenant, token, status: res.status });
    }
  };
  const workers = Promise.all([worker(), worker(), worker(), worker()]);
  const requestsIn = (p: string) => seen.filter((s) => s.phase === p).length;
  const atLeast = (p: string, n: number) => eventually(() => requestsIn(p) >= n, `requests in phase ${p}`);

  await atLeast('only-a', 30);
  phase = 'adding-b';
  writeFileSync(path.join(dir, 'b.yaml'), providerYaml(opB.issuer));
  await applied(gate, 'added', 'b');
  phase = 'b-is-B';
  await atLeast('b-is-B', 30);

  phase = 'moving-b';
  writeFileSync(path.join(dir, 'b.yaml'), providerYaml(opC.issuer)); // the tenant moved to another provider
  await applied(gate, 'changed', 'b');
  phase = 'b-is-C';
  await atLeast('b-is-C', 30);

  phase = 'removing-b';
  unlinkSync(path.join(dir, 'b.yaml'));
  await applied(gate, 'removed', 'b');
  phase = 'no-b';
  await atLeast('no-b', 30);
  stop = true;
  await workers;
  const perPhase: Record<string, number> = {};
  for (const s of seen) perPhase[s.phase] = (perPhase[s.phase] ?? 0) + 1;
  t.comment(`requests per phase: ${JSON.stringify(perPhase)}`);

  const statuses = (p: string, tenant: string, token: string) =>
    [...new Set(seen.filter((s) => s.phase === p && s.tenant === tenant && s.token === token).map((s) => s.status))].sort();
  t.same([...new Set(seen.filter((s) => s.tenant === 'a').map((s) => s.status))], [200], 'tenant a never failed, in any phase');
  t.notOk(
    seen.some((s) => s.status >= 500),
    'no request met a closed or half-built provider (no 5xx at all)',
  );
  t.same(statuses('only-a', 'b', 'b'), [401]);
  t.same(statuses('b-is-B', 'b', 'b'), [200], 'added: b serves at once');
  t.same(statuses('b-is-B', 'b', 'c'), [401]);
  t.same(statuses('b-is-C', 'b', 'b'), [401], "changed: the old issuer's answers are gone");
  t.same(statuses('b-is-C', 'b', 'c'), [200]);
  t.same(statuses('no-b', 'b', 'b'), [401], 'removed');
  t.same(statuses('no-b', 'b', 'c'), [401]);
  t.equal(await reloads(gate, 'failure'), 0);
  const done = gate.logs.filter(
    (l) => l.msg === 'configuration reloaded' && [l.added, l.changed, l.removed].some((names) => (names as string[]).length > 0),
  );
  t.same(
    done.map((l) => [l.added, l.changed, l.removed]),
    [
      [['b'], [], []],
      [[], ['b'], []],
      [[], [], ['b']],
    ],
  );
});

t.test("a removed provider's cache entries are dropped at once", async (t) => {
  const [opA, opB] = (await realProviders(t, 2)) as [OidcProvider, OidcProvider];
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'a.yaml'), providerYaml(opA.issuer));
  writeFileSync(path.join(dir, 'b.yaml'), providerYaml(opB.issuer));
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers_dir: dir, provider_header: 'X-Tenant' },
    { reload: { watch: false } },
  );
  const ta = await opA.mintToken();
  const tb1 = await opB.mintToken();
  const tb2 = await opB.mintToken();
  for (const [token, tenant] of [
    [ta, 'a'],
    [tb1, 'b'],
    [tb2, 'b'],
  ] as const) {
    t.equal((await gate.request('/x', { headers: { ...bearer(token), 'x-tenant': tenant } })).status, 200);
  }
  t.equal(await gate.metric('tollgate_cache_entries'), 3);
  unlinkSync(path.join(dir, 'b.yaml'));
  const result = await gate.app.reload();
  t.match(result, { ok: true, removed: ['b'], unchanged: ['a'] });
  t.equal(await gate.metric('tollgate_cache_entries'), 1, "only a's entry is left");
  const before = opA.introspections;
  t.equal((await gate.request('/x', { headers: { ...bearer(ta), 'x-tenant': 'a' } })).status, 200);
  t.equal(opA.introspections, before, 'an unchanged provider keeps its cache');
});

t.test('a ConfigMap-style ..data symlink swap is seen and applied', async (t) => {
  const [opA, opB, opC] = (await realProviders(t, 3)) as [OidcProvider, OidcProvider, OidcProvider];
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = tempDir(t);
  // What the kubelet does (AtomicWriter): files live in a timestamped folder, `..data` points at
  // it, and each visible file is a symlink through `..data`. An update writes a new folder and
  // renames a new `..data` over the old one; only visible names that appear or go are touched.
  let generation = 0;
  const publish = (files: Record<string, string>) => {
    const folder = `..2026_01_01_00_00_0${generation++}`;
    mkdirSync(path.join(dir, folder));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, folder, name), text);
    symlinkSync(folder, path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    for (const name of Object.keys(files)) {
      try {
        symlinkSync(path.join('..data', name), path.join(dir, name));
      } catch {
        // already visible: the swap alone changes what it points to
      }
    }
  };
  const unpublish = (name: string) => unlinkSync(path.join(dir, name));
  publish({ 'a.yaml': providerYaml(opA.issuer) });
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers_dir: dir, provider_header: 'X-Tenant' });
  const tb = await opB.mintToken();
  const tc = await opC.mintToken();
  t.equal((await gate.request('/x', { headers: { ...bearer(tb), 'x-tenant': 'b' } })).status, 401);

  publish({ 'a.yaml': providerYaml(opA.issuer), 'b.yaml': providerYaml(opB.issuer) });
  await applied(gate, 'added', 'b');
  t.equal((await gate.request('/x', { headers: { ...bearer(tb), 'x-tenant': 'b' } })).status, 200, 'b added');

  // Only `..data` changes here: no visible file is created, touched or removed.
  publish({ 'a.yaml': providerYaml(opA.issuer), 'b.yaml': providerYaml(opC.issuer) });
  await applied(gate, 'changed', 'b');
  t.equal((await gate.request('/x', { headers: { ...bearer(tc), 'x-tenant': 'b' } })).status, 200, 'b now at C');

  publish({ 'a.yaml': providerYaml(opA.issuer) });
  unpublish('b.yaml');
  await applied(gate, 'removed', 'b');
  t.equal((await gate.request('/x', { headers: { ...bearer(tc), 'x-tenant': 'b' } })).status, 401, 'b removed');
  t.equal(await reloads(gate, 'failure'), 0, 'no reload ever read half a swap');
});

t.test('an invalid file leaves the old set serving, counted and logged with the file', async (t) => {
  const [opA] = (await realProviders(t, 1)) as [OidcProvider];
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'a.yaml'), providerYaml(opA.issuer));
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers_dir: dir });
  const token = await opA.mintToken();
  const rejected = (file: string) =>
    gate.logs.filter((l) => String(l.msg).startsWith('configuration reload rejected') && l.file === file);

  t.test('YAML that does not parse', async (t) => {
    writeFileSync(path.join(dir, 'broken.yaml'), 'issuer: [unclosed\n');
    await reloaded(gate, 'failure', 1);
    const lines = rejected(path.join(dir, 'broken.yaml'));
    t.equal(lines.length, 1);
    t.match(lines[0], { level: 50, path: 'providers_dir/broken.yaml', problem: /^YAML: / });
    t.equal((await gate.request('/x', { headers: bearer(token) })).status, 200, 'the old set serves');
  });

  t.test('a provider without its issuer, found by an explicit reload', async (t) => {
    writeFileSync(path.join(dir, 'broken.yaml'), 'client_id: x\nclient_secret: y\n');
    const result = await gate.app.reload();
    t.match(result, { ok: false, problems: [{ path: 'providers_dir/broken.yaml: issuer', message: 'required' }] });
    t.ok(rejected(path.join(dir, 'broken.yaml')).some((l) => l.problem === 'required'));
    t.equal((await gate.request('/x', { headers: bearer(token) })).status, 200);
  });

  t.test('a provider whose discovery fails is rejected before it can replace anything', async (t) => {
    const down = await startOidcProvider();
    const downIssuer = down.issuer;
    await down.close(); // nothing listens there any more
    rmSync(path.join(dir, 'broken.yaml'));
    writeFileSync(path.join(dir, 'down.yaml'), providerYaml(downIssuer, 'timeout_ms: 500\n'));
    const failuresBefore = await reloads(gate, 'failure');
    const result = await gate.app.reload();
    t.match(result, {
      ok: false,
      problems: [{ path: 'providers_dir/down.yaml: issuer', message: /^provider down: discovery failed/ }],
    });
    t.ok(rejected(path.join(dir, 'down.yaml')).length >= 1, 'the log line names the file');
    t.ok((await reloads(gate, 'failure')) > failuresBefore);
    t.equal((await gate.request('/x', { headers: bearer(token) })).status, 200, 'a alone still serves');
    t.equal((await fetch(`${gate.adminUrl}/readyz`)).status, 200, 'readiness is not lost to a rejected provider');
    t.notMatch(gate.rawLogs(), 'tollgate-secret', 'no secret in any log line');
  });

  t.test('a symlink loop and a FIFO in the folder: named by their own files, never read', async (t) => {
    // Once, a file the loader could not stat threw out of it and was logged against the main file.
    symlinkSync('loop.yaml', path.join(dir, 'loop.yaml'));
    execFileSync('mkfifo', [path.join(dir, 'pipe.yaml')]);
    const result = await gate.app.reload();
    t.match(result, {
      ok: false,
      problems: [
        { path: 'providers_dir/loop.yaml', message: /^cannot read: ELOOP/ },
        { path: 'providers_dir/pipe.yaml', message: 'cannot read: not a regular file (a FIFO)' },
      ],
    });
    t.equal(rejected(path.join(dir, 'loop.yaml')).length, 1);
    t.equal(rejected(path.join(dir, 'pipe.yaml')).length, 1);
    t.equal((await fetch(`${gate.adminUrl}/healthz`)).status, 200, 'the server is not blocked');
    unlinkSync(path.join(dir, 'loop.yaml'));
    unlinkSync(path.join(dir, 'pipe.yaml'));
  });

  t.test('once the folder is right again, the reload succeeds', async (t) => {
    rmSync(path.join(dir, 'down.yaml'));
    const result = await gate.app.reload();
    t.match(result, { ok: true, added: [], removed: [], unchanged: ['a'] });
  });
});

t.test('listener addresses and other restart-only settings are kept, and said so', async (t) => {
  const [opA] = (await realProviders(t, 1)) as [OidcProvider];
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const raw = testTree({
    upstream: { url: upstream.url },
    providers: [{ name: 'a', issuer: opA.issuer, client_id: 'tollgate', client_secret: 'tollgate-secret' }],
  });
  const gate = await startTollgate(t, raw, { source: treeSource(raw) });
  raw.listen = '127.0.0.1:1';
  raw.routes = [{ match: { path_prefix: '/open' }, public: true }];
  const result = await gate.app.reload();
  t.match(result, { ok: true, unchanged: ['a'] });
  t.ok(gate.logs.some((l) => l.level === 40 && (l.ignored as string[] | undefined)?.includes('listen')));
  t.equal(gate.app.runtime().config.listen, '127.0.0.1:0', 'the listener stays where it is');
  t.equal((await gate.request('/open/x')).status, 200, 'the rest of the new configuration applies');
});

t.test('concurrent reloads share the next run', async (t) => {
  const [opA] = (await realProviders(t, 1)) as [OidcProvider];
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [{ name: 'a', issuer: opA.issuer, client_id: 'tollgate', client_secret: 'tollgate-secret' }],
  });
  const [first, second, third] = await Promise.all([gate.app.reload(), gate.app.reload(), gate.app.reload()]);
  t.match(first, { ok: true });
  t.match(second, { ok: true });
  t.equal(second, third, 'calls made during a reload share the one run after it');
  t.equal(await reloads(gate, 'success'), 2);
});

t.test('a request in flight through a removed provider finishes; the provider closes after it', async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrived!: () => void;
  const arrival = new Promise<void>((resolve) => (arrived = resolve));
  fake.script(async (_token, _req, res) => {
    arrived();
    await released;
    json(res, 200, { active: true, sub: 'held' });
  });
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'a.yaml'), providerYaml(fake.tenantIssuer('a')));
  writeFileSync(path.join(dir, 'b.yaml'), providerYaml(fake.tenantIssuer('b')));
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers_dir: dir, provider_header: 'X-Tenant' },
    { reload: { watch: false } },
  );
  const held = gate.request('/x', { headers: { ...bearer('opaque-held-token'), 'x-tenant': 'b' } });
  await withTimeout(arrival, 5000, 'the introspection call did not reach the provider');
  unlinkSync(path.join(dir, 'b.yaml'));
  t.match(await gate.app.reload(), { ok: true, removed: ['b'] }, 'the reload does not wait for requests in flight');
  release();
  const res = await held;
  t.equal(res.status, 200, 'the request that started before the swap was served by the provider it started with');
  t.same(upstream.single().headers['x-auth-provider'], ['b']);
  // Its answer landed in the cache after the swap; closing the retired provider drops it again.
  await eventually(
    async () => (await gate.metric('tollgate_cache_entries')) === 0,
    "the retired provider's late answer is dropped",
  );
  const after = await gate.request('/x', { headers: { ...bearer('opaque-held-token'), 'x-tenant': 'b' } });
  t.equal(after.status, 401, 'and a new request cannot choose it');
  t.same(fake.tenantCalls('b').length, 1);
});

t.test('a new provider whose discovery hangs is rejected when the wait runs out', async (t) => {
  const [opA] = (await realProviders(t, 1)) as [OidcProvider];
  // Accepts connections and never answers.
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'a.yaml'), providerYaml(opA.issuer));
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers_dir: dir },
    { reload: { watch: false, discoveryTimeoutMs: 200 } },
  );
  const port = (silent.address() as AddressInfo).port;
  writeFileSync(path.join(dir, 'slow.yaml'), providerYaml(`http://127.0.0.1:${port}`, 'timeout_ms: 60000\n'));
  const result = await gate.app.reload();
  t.match(result, {
    ok: false,
    problems: [
      {
        path: 'providers_dir/slow.yaml: issuer',
        message: 'provider slow: discovery failed: no metadata within 200 ms',
      },
    ],
  });
  t.same([...gate.app.runtime().providers.keys()], ['a'], 'the old set is in place');
  t.equal((await gate.request('/x', { headers: bearer(await opA.mintToken()) })).status, 200);
});
