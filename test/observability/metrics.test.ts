/**
 * SPEC §5's metrics, read from the admin listener after scripted traffic of every outcome: each
 * family present with its type and exactly its labels, and each counter moved by exactly what the
 * traffic should have caused. A real oidc-provider answers active and inactive; the fake provider
 * only the failure a real one won't give (a 500). The exposition is checked line by line here,
 * and by `promtool check metrics` where promtool is installed (.ci/run installs it when it can).
 */
import t from 'tap';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { startFakeProvider, json } from '../helpers/fake-provider.js';
import { bearer, request } from '../helpers/http.js';
import { parseExposition, promtoolCheck, sampleValue, type Family } from '../helpers/prom.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { LATENCY_BUCKETS_S } from '../../src/observability/metrics.js';

/** SPEC §5: name → type and label names (histograms: besides `le`). */
const SPEC_METRICS: Record<string, { type: string; labels: string[] }> = {
  tollgate_requests_total: { type: 'counter', labels: ['outcome', 'provider'] },
  tollgate_request_duration_seconds: { type: 'histogram', labels: ['outcome'] },
  tollgate_introspection_requests_total: { type: 'counter', labels: ['provider', 'result'] },
  tollgate_introspection_duration_seconds: { type: 'histogram', labels: ['provider'] },
  tollgate_cache_lookups_total: { type: 'counter', labels: ['result'] },
  tollgate_cache_entries: { type: 'gauge', labels: [] },
  tollgate_upstream_duration_seconds: { type: 'histogram', labels: ['status_class'] },
  tollgate_config_reloads_total: { type: 'counter', labels: ['result'] },
  tollgate_provider_circuit_open: { type: 'gauge', labels: ['provider'] },
};

const OUTCOMES = ['allowed', 'public', 'unauthenticated', 'forbidden', 'bad_request', 'provider_unavailable', 'upstream_error'];

/** prom-client's exposition names a counter family without `_total`; its samples carry it. */
const familyOf = (families: Map<string, Family>, metric: string) =>
  families.get(metric) ?? families.get(metric.replace(/_total$/, ''));

t.test('every SPEC §5 metric, moved by exactly the traffic', async (t) => {
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  const flaky = await startFakeProvider();
  t.teardown(() => flaky.close());
  flaky.script((_token, _req, res) => json(res, 500, { error: 'server_error' }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  upstream.handle((req, res) => {
    // The API resets the connection: tollgate answers 502 (upstream_error).
    if (req.url === '/boom') return void res.socket?.destroy();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });

  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', op.issuer), providerEntry('flaky', flaky.issuer)],
    routes: [
      { match: { path_prefix: '/public' }, public: true },
      { match: { path_prefix: '/admin' }, scopes: ['orders:admin'], providers: ['acme'] },
      { match: { path_prefix: '/flaky' }, providers: ['flaky'] },
      { match: { path_prefix: '/' }, providers: ['acme'] },
    ],
  });
  const scrape = async () => {
    const res = await request(`${gate.adminUrl}/metrics`);
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return { text: res.text, families: parseExposition(res.text) };
  };
  const before = (await scrape()).families;

  const token = await op.mintToken(undefined, undefined, 'orders:read');
  const statuses: number[] = [];
  const send = async (path: string, headers: Record<string, string> = {}) =>
    statuses.push((await gate.request(path, { headers })).status);
  await send('/orders/1', bearer(token)); // allowed: miss, introspection active
  await send('/orders/2', bearer(token)); // allowed: hit
  await send('/orders/3', bearer(token)); // allowed: hit
  await send('/public/a'); // public: no lookup
  await send('/public/b', bearer(token)); // public: a token is not even read
  await send('/orders'); // unauthenticated, no token: no lookup, provider none
  await send('/orders', bearer('random-never-issued-token')); // unauthenticated: miss, inactive
  await send('/admin/x', bearer(token)); // forbidden: hit
  await send('/orders%2F1', bearer(token)); // bad_request: an encoded slash
  await send('/flaky/x', bearer('another-token')); // provider_unavailable: miss, error
  await send('/boom', bearer(token)); // upstream_error: hit, the API resets
  t.same(statuses, [200, 200, 200, 200, 200, 401, 401, 403, 400, 503, 502], 'each request had its scripted outcome');

  const { text, families: after } = await scrape();

  t.test('each metric has its SPEC type and exactly its labels', async (t) => {
    for (const [metric, spec] of Object.entries(SPEC_METRICS)) {
      const family = familyOf(after, metric);
      if (!family) {
        t.fail(`${metric} is missing from /metrics`);
        continue;
      }
      t.equal(family.type, spec.type, `${metric} is a ${spec.type}`);
      t.ok(family.help.length > 0, `${metric} has help text`);
      for (const s of family.samples) {
        const names = Object.keys(s.labels).filter(
          (l) => !(spec.type === 'histogram' && s.name.endsWith('_bucket') && l === 'le'),
        );
        t.same(names.sort(), [...spec.labels].sort(), `${s.name} labels`);
      }
    }
    const outcomes = new Set(familyOf(after, 'tollgate_requests_total')!.samples.map((s) => s.labels.outcome));
    t.same([...outcomes].sort(), [...OUTCOMES].sort(), 'traffic of every outcome was counted');
  });

  t.test('counters moved by exactly the traffic', async (t) => {
    const delta = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);
    const requests = (outcome: string, provider: string) => delta('tollgate_requests_total', { outcome, provider });
    t.equal(requests('allowed', 'acme'), 3);
    t.equal(requests('public', 'none'), 2);
    t.equal(requests('unauthenticated', 'none'), 1);
    t.equal(requests('unauthenticated', 'acme'), 1);
    t.equal(requests('forbidden', 'acme'), 1);
    t.equal(requests('bad_request', 'none'), 1);
    t.equal(requests('provider_unavailable', 'flaky'), 1);
    t.equal(requests('upstream_error', 'acme'), 1);
    const total = familyOf(after, 'tollgate_requests_total')!.samples.reduce((sum, s) => sum + s.value, 0);
    t.equal(total, statuses.length, 'one count per request, no more');

    const durationCounts: Record<string, number> = {
      allowed: 3,
      public: 2,
      unauthenticated: 2,
      forbidden: 1,
      bad_request: 1,
      provider_unavailable: 1,
      upstream_error: 1,
    };
    for (const [outcome, n] of Object.entries(durationCounts)) {
      t.equal(delta('tollgate_request_duration_seconds_count', { outcome }), n, `request duration count ${outcome}`);
      t.equal(delta('tollgate_request_duration_seconds_bucket', { outcome, le: '+Inf' }), n, `+Inf bucket ${outcome}`);
    }

    t.equal(delta('tollgate_introspection_requests_total', { provider: 'acme', result: 'active' }), 1);
    t.equal(delta('tollgate_introspection_requests_total', { provider: 'acme', result: 'inactive' }), 1);
    t.equal(delta('tollgate_introspection_requests_total', { provider: 'acme', result: 'error' }), 0);
    t.equal(delta('tollgate_introspection_requests_total', { provider: 'flaky', result: 'error' }), 1);
    t.equal(delta('tollgate_introspection_duration_seconds_count', { provider: 'acme' }), 2);
    t.equal(delta('tollgate_introspection_duration_seconds_count', { provider: 'flaky' }), 1);

    t.equal(
      delta('tollgate_cache_lookups_total', { result: 'miss' }),
      3,
      'first use of the token, the random one, the flaky one',
    );
    t.equal(delta('tollgate_cache_lookups_total', { result: 'hit' }), 4);
    t.equal(delta('tollgate_cache_lookups_total', { result: 'coalesced' }), 0);
    t.equal(delta('tollgate_cache_lookups_total', { result: 'stale' }), 0);
    t.equal(sampleValue(after, 'tollgate_cache_entries'), 2, 'the active and the inactive answer; a failure is not kept');

    t.equal(delta('tollgate_upstream_duration_seconds_count', { status_class: '2xx' }), 5, 'allowed and public answers');
    t.equal(upstream.requests.filter((r) => r.url !== '/boom').length, 5, 'nothing refused reached the API');

    t.equal(sampleValue(after, 'tollgate_config_reloads_total', { result: 'success' }), 0, 'reloads start at 0');
    t.equal(sampleValue(after, 'tollgate_config_reloads_total', { result: 'failure' }), 0);
  });

  t.test('histograms use the sidecar buckets; process metrics carry the prefix', async (t) => {
    const les = familyOf(after, 'tollgate_request_duration_seconds')!
      .samples.filter((s) => s.name.endsWith('_bucket') && s.labels.outcome === 'allowed')
      .map((s) => s.labels.le);
    t.same(les, [...LATENCY_BUCKETS_S.map(String), '+Inf']);
    t.ok(LATENCY_BUCKETS_S[0]! < 0.001 && LATENCY_BUCKETS_S.at(-1)! >= 5, 'sub-millisecond to seconds');
    for (const name of [
      'tollgate_process_cpu_seconds_total',
      'tollgate_nodejs_eventloop_lag_seconds',
      'tollgate_process_start_time_seconds',
    ]) {
      t.ok(familyOf(after, name), `${name} is exported`);
    }
    const unprefixed = [...after.keys()].filter((n) => !n.startsWith('tollgate_'));
    t.same(unprefixed, [], 'every family carries the tollgate_ prefix');
  });

  t.test('no label value is a token, a path or a subject', async (t) => {
    for (const family of after.values()) {
      for (const s of family.samples) {
        for (const value of Object.values(s.labels)) {
          t.notOk(value.includes(token) || value.includes('random-never') || value.includes('/'), `${s.name} ${value}`);
        }
      }
    }
    t.notMatch(text, token);
  });

  t.test('promtool check metrics accepts the exposition', async (t) => {
    const check = promtoolCheck(text);
    if (check === undefined) {
      // The line-by-line parse above already holds the format; say so rather than pass silently.
      t.comment('promtool is not on PATH: checked by the strict parser only');
      t.ok(parseExposition(text).size > 0, 'the strict parser accepted every line');
      return;
    }
    // promtool lints names too. prom-client's default gauges nodejs_active_{handles,requests,
    // resources}_total end in _total (prom-client keeps them so the common Node.js dashboards
    // work); that finding, and only that one, on those three, is accepted. A parse error or any
    // other finding fails.
    t.notMatch(check.output, /error while linting|parsing error/, 'promtool parsed the whole exposition');
    const findings = check.output.split('\n').filter((l) => l.trim() !== '');
    const accepted =
      /^tollgate_nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    t.same(
      findings.filter((l) => !accepted.test(l)),
      [],
      'no promtool finding besides prom-client default gauges named *_total',
    );
    t.ok(check.status === 0 || findings.length > 0, `promtool exit ${check.status} is explained by its findings`);
  });
});

t.test('the strict parser refuses what promtool refuses', async (t) => {
  t.throws(() => parseExposition('x 1\n'), /sample outside its family/);
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx{a="1",a="2"} 1\n'), /repeated/);
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx{a=1} 1\n'), /not a sample/);
  t.throws(() => parseExposition('# HELP x h\n# TYPE x counter\nx 1'), /newline/);
  t.equal(
    parseExposition('# HELP x h\n# TYPE x histogram\nx_bucket{le="+Inf"} 2\nx_sum 0.5\nx_count 2\n').get('x')!.samples.length,
    3,
  );
});
