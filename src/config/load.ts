/**
 * From the outside world to a validated, frozen configuration (SPEC §1–2): the YAML file (or the
 * zero-file environment), `${VAR}` substitution, `*_file` secrets, `TOLLGATE_*` overrides and the
 * providers_dir files. Every problem is collected with its path; nothing stops at the first one.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { findIneffective } from './effect.js';
import { CONFIG_FILE_LIMIT_BYTES, KEY_FILE_LIMIT_BYTES, readBoundedText } from './files.js';
import { checkIntrospectRoutes } from './jwt-schema.js';
import { readProviderKeys, resolveKeyFilePaths } from './keys.js';
import { findShadowedRoutes } from './shadow.js';
import { resolveSharedCacheFiles } from '../cache/shared-files.js';
import { configSchema, identityJwtSchema, providerSchema, type Config, type ProviderConfig } from './schema.js';
import { quote, singleLine } from './text.js';
import { parseYamlTree, RESERVED_KEYS, type YamlProblem } from './yaml.js';
import { readSigningKey } from '../identity/keys.js';
import { nameVariable, PROVIDER_VARIABLES } from './zero-file.js';

export interface Problem {
  /** `providers[1].client_secret`, `providers_dir/acme.yaml: issuer`, `TOLLGATE_UPSTREAM_URL`. */
  readonly path: string;
  readonly message: string;
}

export type LoadResult = { ok: true; config: Config } | { ok: false; problems: Problem[] };

export interface LoadOptions {
  /** `--config FILE`; falls back to `TOLLGATE_CONFIG`, then to zero-file mode. */
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export class ConfigError extends Error {
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    super(`invalid configuration:\n${formatProblems(problems)}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** One line per problem, whatever the path or message holds (a file name may hold a newline). */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `  ${singleLine(p.path)}: ${singleLine(p.message)}`).join('\n');
}

/** pino's levels: TOLLGATE_LOG_LEVEL must be one of them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `['providers', 1, 'client_secret']` → `providers[1].client_secret`. */
export function formatPath(parts: readonly PropertyKey[]): string {
  let out = '';
  for (const part of parts) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Loads and validates; throws nothing for a bad configuration, returns its problems instead. */
export function loadConfig(options: LoadOptions = {}): LoadResult {
  const env = options.env ?? process.env;
  const problems: Problem[] = [];
  const configPath = options.configPath ?? nonEmpty(env.TOLLGATE_CONFIG);

  let raw: Tree = {};
  let baseDir = process.cwd();
  if (configPath !== undefined) {
    baseDir = path.dirname(path.resolve(configPath));
    const parsed = readYamlFile(configPath, configPath, (at) => (at.length === 0 ? configPath : formatPath(at)), problems);
    if (parsed === undefined) return { ok: false, problems };
    if (!isTree(parsed)) return { ok: false, problems: [{ path: configPath, message: 'expected a YAML mapping' }] };
    raw = substituteEnv(parsed, [], env, problems) as Tree;
  }
  applyEnvironment(raw, env, configPath !== undefined, problems);
  const level = env.TOLLGATE_LOG_LEVEL;
  if (level !== undefined && level !== '' && !(LOG_LEVELS as readonly string[]).includes(level)) {
    problems.push({ path: 'TOLLGATE_LOG_LEVEL', message: `expected one of ${LOG_LEVELS.join(', ')}` });
  }
  const result = validateConfig(raw, { env, baseDir, problems });
  if (result.ok || configPath !== undefined) return result;
  // Zero-file mode: a missing TOLLGATE_UPSTREAM_URL or TOLLGATE_ISSUER is reported under its own
  // name; the schema's `upstream.url: required` or "at least one provider" would say it twice.
  const named = new Set(result.problems.map((p) => p.path));
  const repeats = (p: Problem) =>
    (named.has('TOLLGATE_UPSTREAM_URL') && (p.path === 'upstream' || p.path === 'upstream.url')) ||
    (named.has('TOLLGATE_ISSUER') && p.path === 'providers');
  return { ok: false, problems: result.problems.filter((p) => !repeats(p)).map(nameVariable) };
}

export interface ValidateOptions {
  env?: NodeJS.ProcessEnv;
  /** Where relative `*_file` and providers_dir paths start; default the working directory. */
  baseDir?: string;
  /** Problems found before validation, reported with the rest. */
  problems?: Problem[];
}

/**
 * A raw tree (parsed YAML, or an object in a test) → a frozen configuration, or every problem.
 * Reads the `*_file` secrets and providers_dir it names; everything else is pure.
 */
export function validateConfig(input: Tree, options: ValidateOptions = {}): LoadResult {
  const env = options.env ?? process.env;
  const baseDir = options.baseDir ?? process.cwd();
  const problems = options.problems ?? [];
  const raw = clonePlain(input, [], new Set(), problems) as Tree;
  const inline = Array.isArray(raw.providers) ? raw.providers : [];
  inline.forEach((p, i) => {
    if (!isTree(p)) return;
    resolveSecretFiles(p, baseDir, (key, message) => problems.push({ path: formatPath(['providers', i, key]), message }));
    resolveKeyFilePaths(p, baseDir);
  });
  resolveSharedCacheFiles(raw, baseDir, (key, message) => problems.push({ path: formatPath(['cache', 'shared', key]), message }));

  const identity = isTree(raw.headers) && isTree(raw.headers.identity_jwt) ? raw.headers.identity_jwt : undefined;
  if (identity !== undefined && typeof identity.key_file === 'string' && identity.key_file !== '') {
    identity.key_file = path.resolve(baseDir, identity.key_file);
  }

  const parsed = configSchema.safeParse(raw, { error: describeIssue });
  if (!parsed.success) {
    // A path already named (an unset variable, an unreadable file) has its problem: the schema's
    // verdict on what was left in its place would only repeat it.
    const named = new Set(problems.map((p) => p.path));
    problems.push(...toProblems(parsed.error.issues, (parts) => formatPath(parts)).filter((p) => !named.has(p.path)));
  }
  // The signing key is read and checked whenever its section is valid on its own.
  const identitySettings = identity === undefined ? undefined : identityJwtSchema.safeParse(identity);
  if (identitySettings?.success && identitySettings.data.key_file !== undefined) {
    const settings = { ...identitySettings.data, key_file: identitySettings.data.key_file };
    readSigningKey(settings, (key, message) => problems.push({ path: `headers.identity_jwt.${key}`, message }));
  }
  // Key files are checked for every provider that is valid on its own, even when another part is not.
  inline.forEach((p, i) => {
    const provider = providerSchema.safeParse(p);
    if (provider.success)
      readProviderKeys(provider.data, (key, message) => problems.push({ path: formatPath(['providers', i, key]), message }));
  });

  let dirProviders: ProviderConfig[] = [];
  if (typeof raw.providers_dir === 'string' && raw.providers_dir !== '') {
    dirProviders = loadProvidersDir(path.resolve(baseDir, raw.providers_dir), env, problems);
  }
  problems.push(...findIneffective(raw));
  if (!parsed.success) {
    // Cross-section problems too, read from the raw tree, so one run lists everything.
    problems.push(...crossCheck(rawOutline(raw, dirProviders)));
    return { ok: false, problems };
  }

  const config = { ...parsed.data, providers: [...parsed.data.providers, ...dirProviders] };
  problems.push(...crossCheck({ providers: config.providers, inlineCount: parsed.data.providers.length, routes: config.routes }));
  problems.push(...findShadowedRoutes(config.routes));
  problems.push(...checkIntrospectRoutes(config.providers, config.routes).map((p) => ({ ...p, path: formatPath(p.path) })));
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: deepFreeze(config) };
}

/** What crossCheck reads: provider names (inline first) and the providers each route names. */
interface Outline {
  readonly providers: readonly { readonly name: unknown }[];
  readonly inlineCount: number;
  readonly routes: readonly { readonly providers?: readonly unknown[] | undefined }[];
}

/** The outline of a tree that failed validation: whatever of it can be read. */
function rawOutline(raw: Tree, dirProviders: readonly ProviderConfig[]): Outline {
  const inline = Array.isArray(raw.providers) ? raw.providers.map((p) => ({ name: isTree(p) ? p.name : undefined })) : [];
  const routes = Array.isArray(raw.routes)
    ? raw.routes.map((r) => ({ providers: isTree(r) && Array.isArray(r.providers) ? (r.providers as unknown[]) : undefined }))
    : [];
  // A providers key of the wrong type is its own problem; "at least one" would only repeat it.
  const unreadable = raw.providers !== undefined && !Array.isArray(raw.providers);
  return { providers: unreadable ? [{ name: undefined }] : [...inline, ...dirProviders], inlineCount: inline.length, routes };
}

/** Like loadConfig, but throws a ConfigError listing every problem. */
export function loadConfigOrThrow(options: LoadOptions = {}): Config {
  const result = loadConfig(options);
  if (!result.ok) throw new ConfigError(result.problems);
  return result.config;
}

/**
 * Reads one provider per `*.yaml` file (SPEC §2). The file name without `.yaml` is the default
 * name; a different `name` is an error. Problems are reported as `providers_dir/acme.yaml: issuer`.
 */
export function loadProvidersDir(dir: string, env: NodeJS.ProcessEnv, problems: Problem[]): ProviderConfig[] {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.yaml') && !f.startsWith('.'))
      .sort();
  } catch (err) {
    problems.push({ path: 'providers_dir', message: `cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` });
    return [];
  }
  const providers: ProviderConfig[] = [];
  for (const file of files) {
    const full = path.join(dir, file);
    const label = `providers_dir/${file}`;
    // Kubernetes ConfigMaps mount files as symlinks into a `..data` folder; follow them, skip
    // folders. Anything else (a FIFO, a device, a symlink loop) is named: reading it is refused.
    let isFolder = false;
    try {
      isFolder = statSync(full, { throwIfNoEntry: false })?.isDirectory() ?? true;
    } catch {
      // ELOOP and the like: readYamlFile names the reason.
    }
    if (isFolder) continue;
    const at = (parts: readonly PropertyKey[]) => `${label}: ${parts.length === 0 ? '(file)' : formatPath(parts)}`;
    const before = problems.length;
    const parsedYaml = readYamlFile(full, label, (parts) => (parts.length === 0 ? label : at(parts)), problems);
    if (problems.length > before) continue;
    if (!isTree(parsedYaml)) {
      problems.push({ path: label, message: 'expected a YAML mapping' });
      continue;
    }
    const stem = file.slice(0, -'.yaml'.length);
    const raw = substituteEnv(parsedYaml, [], env, problems, label) as Tree;
    if (raw.name === undefined) raw.name = stem;
    else if (raw.name !== stem)
      problems.push({ path: at(['name']), message: `must equal the file name (${quote(stem)}) or be left out` });
    resolveSecretFiles(raw, dir, (key, message) => problems.push({ path: at([key]), message }));
    resolveKeyFilePaths(raw, dir);
    const parsed = providerSchema.safeParse(raw, { error: describeIssue });
    if (parsed.success) {
      providers.push(parsed.data);
      readProviderKeys(parsed.data, (key, message) => problems.push({ path: at([key]), message }));
    } else problems.push(...toProblems(parsed.error.issues, at));
  }
  return providers;
}

/**
 * Checks that span the whole configuration. Duplicates among the inline providers are the
 * schema's to report; here, a providers_dir file that repeats a name.
 */
function crossCheck(outline: Outline): Problem[] {
  const problems: Problem[] = [];
  if (outline.providers.length === 0) {
    problems.push({ path: 'providers', message: 'at least one provider is required (here or in providers_dir)' });
  }
  // Inline duplicates are reported by the schema; here, a folder file that repeats any name.
  const where = (i: number, name: string) =>
    i < outline.inlineCount ? formatPath(['providers', i]) : `providers_dir/${name}.yaml`;
  const names = new Map<string, number>();
  outline.providers.forEach((p, i) => {
    if (typeof p.name !== 'string') return;
    const first = names.get(p.name);
    if (first === undefined) names.set(p.name, i);
    else if (i >= outline.inlineCount) {
      problems.push({
        path: `providers_dir/${p.name}.yaml: name`,
        message: `duplicate provider name ${p.name} (also in ${where(first, p.name)})`,
      });
    }
  });
  outline.routes.forEach((r, i) => {
    r.providers?.forEach((name, j) => {
      if (typeof name === 'string' && !names.has(name))
        problems.push({ path: formatPath(['routes', i, 'providers', j]), message: `unknown provider ${name}` });
    });
  });
  return problems;
}

/**
 * A bounded read (regular files only) and a bounded parse: any bytes end in a tree or in problems.
 * `at` names a path inside the file (empty: the file itself).
 */
function readYamlFile(file: string, label: string, at: (parts: readonly PropertyKey[]) => string, problems: Problem[]): unknown {
  const read = readBoundedText(file, CONFIG_FILE_LIMIT_BYTES);
  if (!read.ok) {
    problems.push({ path: label, message: `cannot read: ${read.reason}` });
    return undefined;
  }
  const found: YamlProblem[] = [];
  const parsed = parseYamlTree(read.text, found);
  for (const p of found) problems.push({ path: at(p.at), message: p.message });
  if (!parsed.ok) return undefined;
  return parsed.value ?? {};
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replaces `${NAME}` in every string of the tree; an unset NAME is a problem at that path. */
function substituteEnv(value: unknown, at: PropertyKey[], env: NodeJS.ProcessEnv, problems: Problem[], label?: string): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (whole, name: string) => {
      const v = env[name];
      if (v === undefined) {
        const where = label === undefined ? formatPath(at) : `${label}: ${formatPath(at)}`;
        problems.push({ path: where, message: `environment variable ${name} is not set` });
        return whole;
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...at, i], env, problems, label));
  if (isTree(value)) {
    const out: Tree = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, [...at, k], env, problems, label);
    return out;
  }
  return value;
}

/** Keys that hold a secret and so may instead be read from a file named by `<key>_file`. */
const SECRET_KEYS = ['client_secret'] as const;

function resolveSecretFiles(provider: Tree, baseDir: string, problem: (key: string, message: string) => void): void {
  for (const key of SECRET_KEYS) {
    const fileKey = `${key}_file`;
    const file = provider[fileKey];
    if (file === undefined) continue;
    if (typeof file !== 'string' || file === '') {
      problem(fileKey, 'expected a file path');
      continue;
    }
    if (provider[key] !== undefined) {
      problem(fileKey, `give ${key} or ${fileKey}, not both`);
      continue;
    }
    const read = readBoundedText(path.resolve(baseDir, file), KEY_FILE_LIMIT_BYTES);
    if (!read.ok) {
      problem(fileKey, `cannot read ${file}: ${read.reason}`);
      continue;
    }
    // A trailing newline is an artefact of `echo > file` or of the Secret's encoding, never part of the secret.
    provider[key] = read.text.replace(/\r?\n$/, '');
    delete provider[fileKey];
  }
}

const nonEmpty = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);

/**
 * The environment overrides the file (SPEC §1). With no file, TOLLGATE_ISSUER makes the single
 * provider `default` (zero-file mode). With a file, the provider variables override the file's
 * provider only when it has exactly one: with several, which one they meant would be a guess.
 */
function applyEnvironment(raw: Tree, env: NodeJS.ProcessEnv, fromFile: boolean, problems: Problem[]): void {
  const listen = nonEmpty(env.TOLLGATE_LISTEN);
  if (listen !== undefined) raw.listen = listen;
  const adminListen = nonEmpty(env.TOLLGATE_ADMIN_LISTEN);
  if (adminListen !== undefined) raw.admin_listen = adminListen;
  const upstreamUrl = nonEmpty(env.TOLLGATE_UPSTREAM_URL);
  if (upstreamUrl !== undefined) raw.upstream = { ...(isTree(raw.upstream) ? raw.upstream : {}), url: upstreamUrl };

  const providerVars = Object.fromEntries(
    Object.entries(PROVIDER_VARIABLES).map(([key, variable]) => [key, nonEmpty(env[variable])]),
  ) as Record<keyof typeof PROVIDER_VARIABLES, string | undefined>;
  const given = Object.entries(providerVars).filter(([, v]) => v !== undefined) as [string, string][];
  if (!fromFile) {
    if (raw.upstream === undefined) {
      problems.push({ path: 'TOLLGATE_UPSTREAM_URL', message: 'required without a configuration file (or give --config FILE)' });
      raw.upstream = {};
    }
    if (providerVars.issuer === undefined) {
      problems.push({ path: 'TOLLGATE_ISSUER', message: 'required without a configuration file (or give --config FILE)' });
      return;
    }
    raw.providers = [{ name: 'default', ...Object.fromEntries(given) }];
    return;
  }
  if (given.length === 0) return;
  const inline = Array.isArray(raw.providers) ? raw.providers : [];
  if (inline.length !== 1 || !isTree(inline[0])) {
    for (const [key] of given) {
      problems.push({
        path: `TOLLGATE_${key.toUpperCase()}`,
        message: 'applies only to a configuration file with exactly one provider',
      });
    }
    return;
  }
  Object.assign(inline[0], Object.fromEntries(given));
}

/**
 * zod's issues as problems: one per path (zod may report a value twice, as not an integer and as
 * too small), in words that never repeat the value (it may be a secret).
 */
function toProblems(issues: readonly z.core.$ZodIssue[], at: (parts: readonly PropertyKey[]) => string): Problem[] {
  const out = new Map<string, { message: string; weak: boolean }>();
  const add = (where: string, message: string, weak = false) => {
    const before = out.get(where);
    // A later issue replaces only a weak one: zod's "not a safe integer" bound, which says less
    // than the schema's own bound on the same value (-1e308 is better told "must be greater than 0").
    if (before === undefined || (before.weak && !weak)) out.set(where, { message, weak });
  };
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) add(at([...issue.path, key]), 'unknown key');
    } else if (issue.code === 'invalid_key') {
      add(at(issue.path), issue.issues[0]?.message ?? 'invalid key');
    } else {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.code === 'too_big' ? issue.maximum : undefined;
      add(at(issue.path), issue.message, bound !== undefined && Math.abs(Number(bound)) >= Number.MAX_SAFE_INTEGER);
    }
  }
  return [...out].map(([path, { message }]) => ({ path, message }));
}

/**
 * zod's error map for a parse: messages in the configuration's words (the schema's own messages,
 * such as a pattern's, take precedence). The value itself is never repeated: it may be a secret.
 */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      return `expected ${article(String(issue.expected))}, got ${kindOf(issue.input)}`;
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'string') return min <= 1 ? 'must not be empty' : `at least ${min} characters`;
      if (issue.origin === 'array') return `at least ${min} item${min === 1 ? '' : 's'}`;
      return issue.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'string') return `at most ${max} characters`;
      if (issue.origin === 'array') return `at most ${max} items`;
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_format':
      return issue.format === 'url' ? 'expected a URL (https://…)' : undefined;
    default:
      return undefined;
  }
}

const article = (expected: string): string =>
  expected === 'int'
    ? 'an integer'
    : expected === 'array' || expected === 'object'
      ? `an ${expected === 'object' ? 'mapping' : 'list'}`
      : `a ${expected}`;

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number')
    return Number.isInteger(value) ? 'an integer' : Number.isFinite(value) ? 'a number' : String(value);
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value;
}

/**
 * A copy of a tree given in code (tests, embedding) with only what YAML could hold: no reserved
 * keys, no other objects, no cycles — each refused as a problem at its path.
 */
function clonePlain(value: unknown, at: PropertyKey[], stack: Set<object>, problems: Problem[]): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') return value;
  if (value === undefined) return undefined;
  const where = () => (at.length === 0 ? '(configuration)' : formatPath(at));
  if (typeof value !== 'object') {
    problems.push({ path: where(), message: `unsupported value (${typeof value})` });
    return undefined;
  }
  if (stack.has(value)) {
    problems.push({ path: where(), message: 'a value that contains itself' });
    return undefined;
  }
  stack.add(value);
  try {
    if (Array.isArray(value)) return value.map((v, i) => clonePlain(v, [...at, i], stack, problems));
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      problems.push({ path: where(), message: 'unsupported value (not a plain mapping)' });
      return undefined;
    }
    const out: Tree = {};
    for (const key of Object.keys(value)) {
      if (RESERVED_KEYS.has(key)) {
        problems.push({ path: formatPath([...at, key]), message: 'reserved name, not accepted as a key' });
        continue;
      }
      out[key] = clonePlain((value as Tree)[key], [...at, key], stack, problems);
    }
    return out;
  } finally {
    stack.delete(value);
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
