/**
 * YAML text → a plain tree of objects, arrays, strings, numbers, booleans and null, in time linear
 * in the text and with bounded output. yaml's own `toJS` is not used: its duplicate-key check is
 * quadratic (40,000 keys took 12.7 s), it assigns a `__proto__` key as the object's prototype (so
 * its values are read as defaults of every key), a self-referencing alias overflows the stack and
 * a merge key leaves a Symbol in the tree. Here the document's nodes are walked once:
 * - aliases are followed (anchors and `<<` merge keys are honoured) but the values they expand to
 *   are counted, so a billion-laughs file stops at MAX_VALUES, and an alias inside its own anchor
 *   is refused;
 * - nesting is limited to MAX_DEPTH, keys must be scalars and unique, and `__proto__`,
 *   `constructor` and `prototype` are refused wherever they appear;
 * - values other than plain scalars (`!!binary`, timestamps, sets) are refused.
 * Problems name their path; the text itself is never quoted (a line may hold a secret).
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, YAMLError, type Document, type Node, type Pair } from 'yaml';

/** Values (scalars and collections) one file may expand to, aliases included. */
export const MAX_VALUES = 100_000;
/** Nesting levels of collections; the configuration needs 5. */
export const MAX_DEPTH = 64;

/** Keys that would reach an object's prototype in code that copies with `obj[key] = value`. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export interface YamlProblem {
  /** Path parts inside the document; empty for the file as a whole. */
  readonly at: readonly PropertyKey[];
  readonly message: string;
}

/** Thrown inside the walk when a limit is reached: one problem, and the walk stops. */
class LimitReached {
  constructor(readonly problem: YamlProblem) {}
}

export function parseYamlTree(text: string, problems: YamlProblem[]): { ok: true; value: unknown } | { ok: false } {
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, {
      // Duplicates are found below, in linear time (yaml's own check compares every pair).
      uniqueKeys: false,
      merge: true,
      prettyErrors: false,
      logLevel: 'silent',
    });
  } catch (err) {
    // The parser recurses per nesting level: a very deep flow collection ends here.
    problems.push({ at: [], message: err instanceof RangeError ? 'YAML: nested too deeply' : 'YAML: cannot parse' });
    return { ok: false };
  }
  if (doc.errors.length > 0) {
    for (const err of doc.errors.slice(0, 1)) problems.push({ at: [], message: `YAML: ${describeYamlError(err, text)}` });
    return { ok: false };
  }
  const before = problems.length;
  try {
    const value = walk(doc, doc.contents, [], 0, new Set(), { values: 0 }, problems);
    return problems.length > before ? { ok: false } : { ok: true, value };
  } catch (err) {
    if (err instanceof LimitReached) {
      problems.push(err.problem);
      return { ok: false };
    }
    // The limits above should make this unreachable; should they not, still a problem, not a crash.
    if (err instanceof RangeError) {
      problems.push({ at: [], message: 'YAML: nested too deeply' });
      return { ok: false };
    }
    throw err;
  }
}

/** The error's code and position: yaml's message quotes the source, which may hold a secret. */
function describeYamlError(err: YAMLError, text: string): string {
  const what = err.code.toLowerCase().replace(/_/g, ' ');
  const offset = err.pos[0];
  if (!Number.isInteger(offset) || offset < 0) return what;
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `${what} at line ${line}, column ${offset - lineStart + 1}`;
}

interface Budget {
  values: number;
}

function walk(
  doc: Document.Parsed,
  node: Node | null | undefined,
  at: readonly PropertyKey[],
  depth: number,
  expanding: Set<Node>,
  budget: Budget,
  problems: YamlProblem[],
): unknown {
  if (++budget.values > MAX_VALUES) {
    throw new LimitReached({ at: [], message: `YAML: more than ${MAX_VALUES} values (aliases included)` });
  }
  if (node === null || node === undefined) return null;
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (target === undefined) {
      problems.push({ at, message: 'YAML: an alias without its anchor' });
      return null;
    }
    if (expanding.has(target)) {
      problems.push({ at, message: 'YAML: an alias inside the node it refers to' });
      return null;
    }
    return walk(doc, target, at, depth, expanding, budget, problems);
  }
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return v;
    if (typeof v === 'symbol') return '<<'; // a merge key used as a value
    problems.push({ at, message: 'YAML: only strings, numbers, booleans and null are accepted here' });
    return null;
  }
  if (depth >= MAX_DEPTH) throw new LimitReached({ at, message: `YAML: nested more than ${MAX_DEPTH} levels` });
  if (expanding.has(node)) {
    // Reached through a merge of a sequence that holds this very mapping.
    problems.push({ at, message: 'YAML: an alias inside the node it refers to' });
    return null;
  }
  expanding.add(node);
  try {
    if (isSeq(node)) {
      return node.items.map((item, i) => walk(doc, item as Node | null, [...at, i], depth + 1, expanding, budget, problems));
    }
    if (isMap(node)) return walkMap(doc, node.items as Pair<Node | null, Node | null>[], at, depth, expanding, budget, problems);
  } finally {
    expanding.delete(node);
  }
  problems.push({ at, message: 'YAML: unsupported node' });
  return null;
}

function walkMap(
  doc: Document.Parsed,
  pairs: readonly Pair<Node | null, Node | null>[],
  at: readonly PropertyKey[],
  depth: number,
  expanding: Set<Node>,
  budget: Budget,
  problems: YamlProblem[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const merges: { value: Node | null; at: readonly PropertyKey[] }[] = [];
  for (const pair of pairs) {
    let keyNode = pair.key;
    if (keyNode !== null && isAlias(keyNode)) keyNode = keyNode.resolve(doc) ?? null;
    const raw = keyNode === null ? null : isScalar(keyNode) ? keyNode.value : undefined;
    if (typeof raw === 'symbol') {
      merges.push({ value: pair.value, at });
      continue;
    }
    if (raw === undefined || (raw !== null && typeof raw === 'object')) {
      problems.push({ at, message: 'YAML: a key must be a plain string' });
      continue;
    }
    const key = String(raw);
    if (RESERVED_KEYS.has(key)) {
      problems.push({ at: [...at, key], message: 'reserved name, not accepted as a key' });
      continue;
    }
    if (Object.hasOwn(out, key)) {
      problems.push({ at: [...at, key], message: 'duplicate key' });
      continue;
    }
    out[key] = walk(doc, pair.value, [...at, key], depth + 1, expanding, budget, problems);
  }
  // `<<` (YAML 1.1 merge): keys written in the mapping win, then earlier sources over later ones.
  for (const merge of merges) {
    // Aliases are walked, not resolved here, so that walk() sees an alias to a node being expanded.
    const resolved = merge.value !== null && isAlias(merge.value) ? merge.value.resolve(doc) : merge.value;
    const sources =
      resolved !== null && resolved !== undefined && isSeq(resolved) ? (resolved.items as (Node | null)[]) : [merge.value];
    for (const item of sources) {
      const before = problems.length;
      const value = walk(doc, item ?? null, [...merge.at, '<<'], depth + 1, expanding, budget, problems);
      if (problems.length > before) continue;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        problems.push({ at: [...merge.at, '<<'], message: 'YAML: a merge (<<) takes a mapping or a list of mappings' });
        continue;
      }
      for (const [key, v] of Object.entries(value)) if (!Object.hasOwn(out, key)) out[key] = v;
    }
  }
  return out;
}
