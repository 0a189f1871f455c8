/**
 * `npm run schema:chart`: puts tollgate's configuration schema (config/tollgate.schema.json) into
 * the Helm chart's values.schema.json as `$defs.tollgateConfig`, so `helm install` checks
 * `config` as tollgate itself would — with what the chart sets removed: `listen` and
 * `admin_listen` come from `ports` (setting them is an error), `upstream.url` defaults to the API
 * in the pod. A test fails when the committed chart schema is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CHART_SCHEMA = path.join(ROOT, 'helm/tollgate/values.schema.json');

type Json = Record<string, unknown>;

/** tollgate's schema as the chart's `config` value must satisfy it. */
export function chartConfigSchema(configSchema: Json): Json {
  const schema = structuredClone(configSchema) as Json & { properties: Record<string, Json>; required?: string[] };
  delete schema.$schema;
  delete schema.title;
  delete schema.properties.listen;
  delete schema.properties.admin_listen;
  schema.required = (schema.required ?? []).filter((k) => k !== 'upstream');
  const upstream = schema.properties.upstream as Json & { required?: string[] };
  upstream.required = (upstream.required ?? []).filter((k) => k !== 'url');
  // zod writes `format: starts_with` beside its pattern; no JSON Schema validator knows it.
  const strip = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(strip);
    else if (typeof node === 'object' && node !== null) {
      const o = node as Json;
      if (o.format === 'starts_with') delete o.format;
      Object.values(o).forEach(strip);
    }
  };
  strip(schema);
  return { description: "tollgate.yaml (README's configuration reference), less what the chart sets", ...schema };
}

export function chartValuesSchema(): string {
  const chart = JSON.parse(readFileSync(CHART_SCHEMA, 'utf8')) as Json & { $defs: Json };
  const config = JSON.parse(readFileSync(path.join(ROOT, 'config/tollgate.schema.json'), 'utf8')) as Json;
  chart.$defs = { ...chart.$defs, tollgateConfig: chartConfigSchema(config) };
  return `${JSON.stringify(chart, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(CHART_SCHEMA, chartValuesSchema());
  process.stdout.write(`wrote ${CHART_SCHEMA}\n`);
}
