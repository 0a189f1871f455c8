/**
 * The real helm binary (from the npm package that .ci/fetch-helm.sh names, cached in .cache/helm)
 * and offline checks of what it renders: every object against Kubernetes' own OpenAPI schemas
 * (the kubernetes-models package; the Prometheus Operator's for its kinds).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './binary.js';

export const CHART = path.join(ROOT, 'helm/tollgate');

let helmPath: string | undefined;
/** Fetches helm on first use (npm registry only, about 40 MB once), then reuses it. */
export function helm(): string {
  helmPath ??= execFileSync('bash', [path.join(ROOT, '.ci/fetch-helm.sh')], { encoding: 'utf8', timeout: 400_000 }).trim();
  return helmPath;
}

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [k: string]: unknown };
  [k: string]: unknown;
};

export interface Rendered {
  status: number | null;
  output: string;
  objects: K8sObject[];
}

/** `helm template` of the chart with the given values files and `--set` pairs. */
export function helmTemplate(valuesFiles: string[], sets: string[] = [], extra: string[] = []): Rendered {
  const args = ['template', 'orders', CHART, '--namespace', 'shop', ...valuesFiles.flatMap((f) => ['-f', f])];
  for (const s of sets) args.push('--set', s);
  const run = spawnSync(helm(), [...args, ...extra], { encoding: 'utf8', timeout: 60_000 });
  const objects =
    run.status === 0
      ? parseAllDocuments(run.stdout)
          .map((d) => d.toJS() as K8sObject | null)
          .filter((o): o is K8sObject => o !== null)
      : [];
  return { status: run.status, output: `${run.stdout}${run.stderr}`, objects };
}

export function helmRun(args: string[]): { status: number | null; output: string } {
  const run = spawnSync(helm(), args, { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Throws with the schema's messages when the object is not valid for its apiVersion and kind. */
export async function validateObject(o: K8sObject): Promise<void> {
  const slash = o.apiVersion.indexOf('/');
  const group = slash === -1 ? undefined : o.apiVersion.slice(0, slash);
  const version = o.apiVersion.slice(slash + 1);
  const module =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`
      : `kubernetes-models/${group === undefined ? '' : `${group}/`}${version}/${o.kind}`;
  const models = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[o.kind];
  if (Model === undefined) throw new Error(`no model for ${o.apiVersion} ${o.kind}`);
  new Model(o).validate();
}
