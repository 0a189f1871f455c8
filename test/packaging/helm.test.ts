/**
 * helm/tollgate's sources, checked without rendering (helm-render.test.ts renders): every
 * `.Values.…` a template reads exists in values.yaml; values.schema.json describes every value
 * of values.yaml and carries tollgate's current configuration schema; Chart.yaml describes the
 * chart; the container runs as the image's user; README's recipe is examples/values-orders.yaml.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { CHART_SCHEMA, chartValuesSchema } from '../../dev/chart-schema.js';
import { ROOT } from '../helpers/binary.js';

const CHART = path.join(ROOT, 'helm/tollgate');

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Tree;
const templates = walk(path.join(CHART, 'templates')).map((f) => ({
  file: path.relative(CHART, f),
  // Template comments ({{/* … */}}) hold usage examples, not code.
  text: readFileSync(f, 'utf8').replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, ''),
}));

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
      if (isTree(node) && Object.keys(node).length === 0 && dotted.startsWith('config.')) break;
      if (!isTree(node) || !Object.hasOwn(node, key)) {
        ok = false;
        break;
      }
      node = node[key];
    }
    t.ok(ok, `.Values.${dotted} is in values.yaml`);
  }
});

t.test('values.schema.json: every value described, tollgate.yaml checked by its own schema', async (t) => {
  t.equal(
    readFileSync(CHART_SCHEMA, 'utf8'),
    chartValuesSchema(),
    'helm/tollgate/values.schema.json is up to date with config/tollgate.schema.json (npm run schema:chart)',
  );
  const schema = JSON.parse(readFileSync(CHART_SCHEMA, 'utf8')) as Tree;
  // Every key of values.yaml has a schema, down to the free-form Kubernetes objects.
  const visit = (node: unknown, at: Tree, where: string) => {
    if (!isTree(node)) return;
    const props = at.properties as Tree | undefined;
    if (at.$ref === '#/$defs/tollgateConfig') return;
    if (props === undefined) return; // a Kubernetes object or a string map: checked after rendering
    t.equal(at.additionalProperties, false, `${where || '(root)'}: unknown keys are refused`);
    for (const [k, v] of Object.entries(node)) {
      t.ok(Object.hasOwn(props, k), `${where}${k} has a schema`);
      if (Object.hasOwn(props, k)) visit(v, props[k] as Tree, `${where}${k}.`);
    }
  };
  visit(values, schema, '');
  const config = (schema.$defs as Tree).tollgateConfig as Tree & { properties: Tree };
  t.notOk('listen' in config.properties, 'config.listen is the chart’s (from ports)');
  t.ok('providers' in config.properties && 'routes' in config.properties);
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
  t.same(values.config, {}, 'no configuration applies silently: the example lives in examples/ and README');
});

t.test("tollgate's container: locked down, as the image's user, on the image's ports", async (t) => {
  const sc = values.securityContext as Tree;
  t.equal(sc.readOnlyRootFilesystem, true);
  t.equal(sc.runAsNonRoot, true);
  t.equal(sc.allowPrivilegeEscalation, false);
  t.same((sc.capabilities as Tree).drop, ['ALL']);
  const dockerUser = /^USER (\d+)/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  t.equal(String(sc.runAsUser), dockerUser, "runAsUser is the image's user");
  t.same(values.ports, { proxy: 7080, admin: 7081 }, "the image's EXPOSE");
  const resources = values.resources as Tree;
  t.ok(isTree(resources.requests) && isTree(resources.limits), 'resources requested and limited');
});

t.test("README's Kubernetes recipe is examples/values-orders.yaml", async (t) => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Running in Kubernetes');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const block = /`examples\/values-orders\.yaml`[\s\S]*?```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('README has no examples/values-orders.yaml block in "Running in Kubernetes"');
  const example = readFileSync(path.join(ROOT, 'examples/values-orders.yaml'), 'utf8');
  t.same(parse(block), parse(example), 'the same values');
  for (const command of [
    'helm lint --strict helm/tollgate',
    'helm template orders helm/tollgate',
    'helm upgrade --install orders helm/tollgate',
    'helm test orders',
  ]) {
    t.ok(section.includes(command), `README gives \`${command}\``);
  }
});
