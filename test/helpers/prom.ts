/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every line must be
 * a HELP, a TYPE or a sample of the family announced just before it, or the parse fails with the
 * line. It stands in for `promtool check metrics` where promtool is not installed, and gives tests
 * the families, types and samples to assert on.
 */
import { spawnSync } from 'node:child_process';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const VALUE = '(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|NaN|[+-]Inf)';
const HELP_LINE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL}="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (${VALUE})(?: -?\\d+)?$`);
const LABEL_PAIR = new RegExp(`(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`, 'g');

/** The sample names a family of this type may hold (histograms and summaries add suffixes). */
function belongs(sample: string, family: Family): boolean {
  if (sample === family.name) return family.type !== 'histogram';
  if (family.type === 'histogram')
    return [`${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`].includes(sample);
  if (family.type === 'summary') return [`${family.name}_sum`, `${family.name}_count`].includes(sample);
  return false;
}

/** Parses the whole text or throws naming the first line that is not valid exposition format. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  let current: Family | undefined;
  let pendingHelp: { name: string; help: string } | undefined;
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const fail = (why: string) => {
        throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
      };
      if (line === '') return;
      let m: RegExpExecArray | null;
      if ((m = HELP_LINE.exec(line))) {
        if (families.has(m[1]!)) fail('family announced twice');
        pendingHelp = { name: m[1]!, help: m[2]! };
        return;
      }
      if ((m = TYPE_LINE.exec(line))) {
        if (families.has(m[1]!)) fail('family announced twice');
        if (pendingHelp?.name !== m[1]) fail('TYPE without its HELP just before');
        current = { name: m[1]!, help: pendingHelp!.help, type: m[2]!, samples: [] };
        families.set(current.name, current);
        pendingHelp = undefined;
        return;
      }
      if (line.startsWith('#')) fail('unknown comment line');
      if (!(m = SAMPLE_LINE.exec(line))) fail('not a sample line');
      if (current === undefined || !belongs(m![1]!, current)) fail('sample outside its family');
      const labels: Record<string, string> = {};
      for (const pair of (m![2] ?? '').matchAll(LABEL_PAIR)) {
        if (Object.hasOwn(labels, pair[1]!)) fail(`label ${pair[1]} repeated`);
        labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
      current!.samples.push({ name: m![1]!, labels, value: Number(m![3]!.replace(/Inf$/, 'Infinity')) });
    });
  return families;
}

/** The value of the one sample with this name and exactly these labels (0 when absent). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = [...families.values()].find((f) => belongs(name, f));
  const want = Object.entries(labels);
  const hit = family?.samples.find(
    (s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v),
  );
  return hit?.value ?? 0;
}

/**
 * `promtool check metrics` on the text, when promtool is on PATH: `undefined` when it is not,
 * otherwise its exit status and what it printed.
 */
export function promtoolCheck(text: string): { status: number | null; output: string } | undefined {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
