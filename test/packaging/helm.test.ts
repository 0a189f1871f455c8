/**
 * helm/tollgate, checked without a helm binary (none can be installed here; README gives the
 * `helm lint` / `helm template` commands): every `.Values.…` a template reads exists in
 * values.yaml, plain YAML files parse, template actions balance, included templates exist, the
 * chart keeps SPEC §8's promises (probes on the admin port, Service to tollgate, checksum
 * annotation, locked-down securityContext matching the image's user), and the example
 * configuration in values.yaml passes `tollgate check-config` as the chart would render it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse, stringify } from 'yaml';
import { CLI, ROOT } from '../helpers/binary.js';

const CHART = path.join(ROOT, 'helm/tollgate');
const TEMPLATES = path.join(CHART, 'templates');

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Tree;
const templates = readdirSync(TEMPLATES).map((f) => ({
  file: f,
  // Template comments ({{/* … */}}) hold usage examples, not code.
  text: readFileSync(path.join(TEMPLATES, f), 'utf8').replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, ''),
}));
const source = (file: string) => templates.find((x) => x.file === file)!.text;

t.test('every .Values path a template reads exists in values.yaml', async (t) => {
  const used = new Set<string>();
  for (const { text } of templates) {
    for (const m of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) used.add(m[1]!.slice(1));
  }
  t.ok(used.size > 30, `templates read ${used.size} values`);
  for (const dotted of [...used].sort()) {
    let node: unknown = values;
    let ok = true;
    for (const key of dotted.split('.')) {
      // Below config the tree is tollgate.yaml, the user's to shape; the chart reads it with dig/default.
      if (!isTree(node) || !Object.hasOwn(node, key)) {
        ok = false;
        break;
      }
      node = node[key];
    }
    t.ok(ok, `.Values.${dotted} is in values.yaml`);
  }
});

t.test('plain YAML files parse; Chart.yaml describes the chart', async (t) => {
  const yamlFiles = walk(path.join(ROOT, 'helm')).filter((f) => /\.ya?ml$/.test(f));
  const plain = yamlFiles.filter((f) => !readFileSync(f, 'utf8').includes('{{'));
  t.ok(plain.some((f) => f.endsWith('Chart.yaml')) && plain.some((f) => f.endsWith('values.yaml')));
  for (const f of plain) t.doesNotThrow(() => parse(readFileSync(f, 'utf8')), `${path.relative(ROOT, f)} parses`);
  const chart = parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Tree;
  t.equal(chart.apiVersion, 'v2');
  t.equal(chart.name, 'tollgate');
  t.match(chart.version, /^\d+\.\d+\.\d+/);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  t.equal(chart.appVersion, pkg.version, "appVersion is the package's version (the image tag by default)");
});

t.test('template actions balance and every included template is defined', async (t) => {
  const defined = new Set<string>();
  for (const { file, text } of templates) {
    t.equal((text.match(/\{\{/g) ?? []).length, (text.match(/\}\}/g) ?? []).length, `${file}: {{ and }} pair up`);
    const actions = [...text.matchAll(/\{\{-?\s*([\s\S]*?)\s*-?\}\}/g)].map((m) => m[1]!);
    const opens = actions.filter((a) => /^(if|range|with|define|block)\b/.test(a)).length;
    const ends = actions.filter((a) => /^end\b/.test(a)).length;
    t.equal(opens, ends, `${file}: each if/range/with/define has its end`);
    for (const m of text.matchAll(/\{\{-?\s*define "([^"]+)"/g)) defined.add(m[1]!);
  }
  for (const { file, text } of templates) {
    for (const m of text.matchAll(/include "([^"]+)"/g)) t.ok(defined.has(m[1]!), `${file}: ${m[1]} is defined`);
  }
  for (const name of ['tollgate.sidecar', 'tollgate.volumes', 'tollgate.config']) t.ok(defined.has(name), `${name} is defined`);
});

t.test("the chart keeps SPEC §8's promises", async (t) => {
  const helpers = source('_helpers.tpl');
  const deployment = source('deployment.yaml');
  t.match(
    helpers,
    /readinessProbe:\s*\n\s*httpGet: \{ path: \/readyz, port: admin \}/,
    'readiness asks /readyz on the admin port',
  );
  t.match(
    helpers,
    /livenessProbe:\s*\n\s*httpGet: \{ path: \/healthz, port: admin \}/,
    'liveness asks /healthz on the admin port',
  );
  t.match(helpers, /checksum\/config: \{\{ include "tollgate\.config" \. \| sha256sum \}\}/, 'a config change rolls the pods');
  t.match(deployment, /include "tollgate\.podAnnotations"/);
  t.match(deployment, /terminationGracePeriodSeconds: \{\{ include "tollgate\.terminationGracePeriodSeconds" \. \}\}/);
  t.match(helpers, /drain_delay_s[\s\S]*timeout_s/, 'the grace period follows config.shutdown');
  t.match(deployment, /initContainers:\s*\n\s*\{\{- include "tollgate\.sidecar"/, 'native sidecar: an init container…');
  t.match(helpers, /if \.Values\.nativeSidecar \}\}\s*\n(?:\s*#.*\n)*\s*restartPolicy: Always/, '…with restartPolicy: Always');
  t.match(source('service.yaml'), /targetPort: proxy/, "the Service targets tollgate's port");
  t.notMatch(source('service.yaml'), /targetPort: api/, 'never the API');
  t.match(source('servicemonitor.yaml'), /kind: ServiceMonitor[\s\S]*port: admin[\s\S]*path: \/metrics/);
  t.match(source('pdb.yaml'), /kind: PodDisruptionBudget/);
  t.match(helpers, /secretName: \{\{ include "tollgate\.secretName" \. \}\}/);
  t.match(helpers, /existingSecret/, 'secrets from an existing Secret…');
  t.match(source('secret.yaml'), /kind: Secret/, '…or a created one');

  const sc = values.securityContext as Tree;
  t.equal(sc.readOnlyRootFilesystem, true);
  t.equal(sc.runAsNonRoot, true);
  t.equal(sc.allowPrivilegeEscalation, false);
  t.same((sc.capabilities as Tree).drop, ['ALL']);
  const dockerUser = /^USER (\d+)/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  t.equal(String(sc.runAsUser), dockerUser, "runAsUser is the image's user");
  t.same(values.ports, { proxy: 7080, admin: 7081 }, "SPEC §1's ports, the image's EXPOSE");
  const resources = values.resources as Tree;
  t.ok(isTree(resources.requests) && isTree(resources.limits), 'resources requested and limited');
});

/** Helm's merge of user values over the chart's: maps merge key by key, anything else replaces. */
function mergeValues(base: unknown, over: unknown): unknown {
  if (!isTree(base) || !isTree(over)) return structuredClone(over);
  const out: Tree = structuredClone(base);
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? mergeValues(out[k], v) : structuredClone(v);
  return out;
}

/** tollgate.yaml as tollgate.config in _helpers.tpl renders it, checked by the built binary. */
function checkRendered(t: Test, chartValues: Tree): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-helm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const secrets = chartValues.secrets as { mountPath: string };
  const config = structuredClone(chartValues.config) as Tree;
  // What tollgate.config adds: listen/admin_listen from ports, upstream.url from api.port.
  const ports = chartValues.ports as { proxy: number; admin: number };
  const upstream = (config.upstream ?? {}) as Tree;
  upstream.url ??= `http://127.0.0.1:${(chartValues.api as Tree).port as number}`;
  config.upstream = upstream;
  config.listen = `0.0.0.0:${ports.proxy}`;
  config.admin_listen = `0.0.0.0:${ports.admin}`;

  // The Secret's files, where the pod mounts them: here, a scratch folder.
  let rendered = stringify(config);
  const files = [...rendered.matchAll(new RegExp(`${secrets.mountPath.replace(/[/.]/g, '\\$&')}/([\\w.-]+)`, 'g'))].map(
    (m) => m[1]!,
  );
  t.ok(files.length > 0, 'the configuration reads its client secret from the mounted Secret');
  for (const f of files) writeFileSync(path.join(dir, f), 'example-secret\n');
  rendered = rendered.split(secrets.mountPath).join(dir);
  const file = path.join(dir, 'tollgate.yaml');
  writeFileSync(file, rendered);

  const check = spawnSync(process.execPath, [CLI, 'check-config', '--config', file], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? '' },
  });
  t.equal(check.status, 0, `check-config: ${check.stdout}${check.stderr}`);
  t.match(check.stdout, /configuration OK/);
  t.notMatch(check.stdout + check.stderr, /example-secret/, 'the secret is not printed');
}

t.test("values.yaml's example configuration passes check-config, as the chart renders it", async (t) => {
  t.match(source('_helpers.tpl'), /set \$upstream "url" \(printf "http:\/\/127\.0\.0\.1:%v" \.Values\.api\.port\)/);
  t.match(source('_helpers.tpl'), /set \$config "listen" \(printf "0\.0\.0\.0:%v" \.Values\.ports\.proxy\)/);
  checkRendered(t, values);
});

t.test("README's Kubernetes recipe: its values exist in the chart and its configuration passes check-config", async (t) => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(
    readme.indexOf('## Running in Kubernetes'),
    readme.indexOf('\n## ', readme.indexOf('## Running in Kubernetes') + 1),
  );
  const block = /`orders-values\.yaml`[\s\S]*?```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('README has no orders-values.yaml block in "Running in Kubernetes"');
  const recipe = parse(block) as Tree;
  const check = (over: unknown, base: unknown, at: string) => {
    if (!isTree(over) || !isTree(base)) return;
    for (const [k, v] of Object.entries(over)) {
      t.ok(Object.hasOwn(base, k), `${at}${k} is a chart value`);
      if (k !== 'config' || at !== '') check(v, base[k], `${at}${k}.`);
    }
  };
  check(recipe, values, '');
  checkRendered(t, mergeValues(values, recipe) as Tree);
  for (const command of [
    'helm lint helm/tollgate',
    'helm template orders helm/tollgate',
    'helm upgrade --install orders helm/tollgate',
  ]) {
    t.ok(section.includes(command), `README gives \`${command}\``);
  }
});
