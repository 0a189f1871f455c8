/**
 * The chart's Grafana dashboard and alerts, run by a real Prometheus (Debian's prometheus package)
 * scraping a running tollgate that served real traffic: every panel's query and every alert's
 * expression is valid PromQL over tollgate's actual series, and the panels that describe traffic
 * return data. A metric renamed in src/observability/metrics.ts and not in the dashboard fails here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { ROOT, startBinary } from '../helpers/binary.js';
import { helmTemplate } from '../helpers/helm.js';
import { bearer, request } from '../helpers/http.js';
import { providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

interface Panel {
  title: string;
  targets: { expr: string }[];
}

async function until(check: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

t.test("the dashboard's queries and the alerts' expressions, against a real Prometheus", async (t) => {
  if (spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).error) {
    throw new Error("the prometheus binary is missing: install Debian's prometheus package (.ci/run does)");
  }
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startBinary(t, { upstream: { url: upstream.url }, providers: [providerEntry('acme', op.issuer)] });
  await until(async () => (await request(`${gate.adminUrl}/readyz`)).status === 200, 'tollgate ready', 15_000);
  const token = await op.mintToken();
  for (let i = 0; i < 5; i++) await request(`${gate.proxyUrl}/orders/${i}`, { headers: bearer(token) });
  await request(`${gate.proxyUrl}/orders`);
  await request(`${gate.proxyUrl}/orders`, { headers: bearer('not-a-real-token') });

  const dir = t.testdir({});
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const promPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      scrape_configs: [{ job_name: 'tollgate', static_configs: [{ targets: [new URL(gate.adminUrl).host] }] }],
    }),
  );
  const prom = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prom.stderr.setEncoding('utf8').on('data', (c: string) => (promLog += c));
  t.teardown(() => void prom.kill('SIGKILL'));
  const api = `http://127.0.0.1:${promPort}/api/v1`;
  const query = async (expr: string) => {
    const res = await request(`${api}/query?query=${encodeURIComponent(expr)}`);
    return res.json<{ status: string; error?: string; data?: { result: unknown[] } }>();
  };
  // rate() needs two scrapes in its window: wait for four (1 s apart), bounded.
  await until(
    async () => {
      try {
        const r = await query('count_over_time(up{job="tollgate"}[1m])');
        return Number((r.data?.result[0] as { value?: [number, string] } | undefined)?.value?.[1] ?? 0) >= 4;
      } catch {
        return false;
      }
    },
    `four scrapes of tollgate by Prometheus (its log: ${promLog.slice(-500)})`,
    60_000,
  );

  const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'helm/tollgate/dashboards/tollgate.json'), 'utf8')) as {
    panels: Panel[];
  };
  // Series that exist only after a reload or a breaker opening may be empty; traffic ones may not.
  const mayBeEmpty = new Set(['Configuration reloads']);
  for (const panel of dashboard.panels) {
    for (const target of panel.targets) {
      const expr = target.expr.replaceAll('$job', 'tollgate').replaceAll('$__rate_interval', '1m');
      const r = await query(expr);
      t.equal(r.status, 'success', `${panel.title}: valid PromQL`, { error: r.error, expr });
      if (!mayBeEmpty.has(panel.title)) t.ok((r.data?.result.length ?? 0) > 0, `${panel.title}: returns data`, { expr });
    }
  }
  const jobs = await request(`${api}/label/job/values?match[]=tollgate_requests_total`);
  t.same(jobs.json<{ data: string[] }>().data, ['tollgate'], "the dashboard's job variable finds the job");

  const rendered = helmTemplate([path.join(ROOT, 'examples/values-everything.yaml')]);
  const rule = rendered.objects.find((o) => o.kind === 'PrometheusRule') as unknown as {
    spec: { groups: { rules: { alert: string; expr: string }[] }[] };
  };
  for (const r of rule.spec.groups.flatMap((g) => g.rules)) {
    const expr = r.expr.replaceAll('namespace="shop", job="orders-tollgate"', 'job="tollgate"');
    const res = await query(expr);
    t.equal(res.status, 'success', `${r.alert}: valid PromQL over tollgate's series`, { error: res.error, expr });
  }
  // With traffic flowing and no fault, no alert on tollgate's own series holds.
  for (const r of rule.spec.groups.flatMap((g) => g.rules).filter((x) => x.alert !== 'TollgateNotReady')) {
    const res = await query(r.expr.replaceAll('namespace="shop", job="orders-tollgate"', 'job="tollgate"'));
    t.same(res.data?.result, [], `${r.alert} does not fire on a healthy tollgate`);
  }
});
